//! The checks a file passes before it is ever executed.
//!
//! A script runs only if its canonical path lies inside the canonical root (or, with
//! `allow_symlinks`, the path as requested does and a symlink leads out), it is a regular file
//! with an execute bit, it has an allowed extension (when a list is set), and neither it nor any
//! directory from the root down to it is world-writable (unless `allow_world_writable`):
//! a world-writable directory lets anyone swap the script. Every refusal is an
//! [`Error::Forbidden`] or [`Error::NotFound`]; nothing is executed on the way.

use std::fs::{self, Metadata};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Refusal};

/// What a script must satisfy; built once per app.
#[derive(Debug, Clone)]
pub(crate) struct Policy {
    /// The canonical root directory.
    pub(crate) root: PathBuf,
    /// The root as configured (may go through symlinks).
    pub(crate) root_configured: PathBuf,
    /// Allow symlinks that lead out of the root.
    pub(crate) allow_symlinks: bool,
    /// Allow world-writable scripts and directories.
    pub(crate) allow_world_writable: bool,
    /// Allowed extensions (no leading dot), if restricted.
    pub(crate) extensions: Option<Vec<String>>,
}

const WORLD_WRITABLE: u32 = 0o002;
const ANY_EXECUTE: u32 = 0o111;

impl Policy {
    /// Checks the script found at `found` (as requested); returns its canonical path.
    pub(crate) fn check_script(&self, found: &Path) -> Result<PathBuf, Error> {
        let forbid = |path: &Path, why| Error::Forbidden {
            path: path.to_path_buf(),
            why,
        };
        if found.components().any(|c| c == Component::ParentDir) {
            return Err(forbid(found, Refusal::Traversal));
        }
        let canonical = fs::canonicalize(found).map_err(|e| io_refusal(found, &e))?;
        let inside = canonical.starts_with(&self.root);
        if !inside {
            let requested_inside =
                found.starts_with(&self.root) || found.starts_with(&self.root_configured);
            match (requested_inside, self.allow_symlinks) {
                (true, true) => {}
                (true, false) => return Err(forbid(found, Refusal::SymlinkEscape)),
                (false, _) => return Err(forbid(found, Refusal::OutsideRoot)),
            }
        }
        self.check_extension(found)?;
        self.check_extension(&canonical)?;
        let meta = fs::metadata(&canonical).map_err(|e| io_refusal(&canonical, &e))?;
        check_program(&canonical, &meta, self.allow_world_writable)?;
        if !self.allow_world_writable {
            let stop = if inside {
                self.root.as_path()
            } else {
                parent(&canonical)
            };
            check_directories(&canonical, stop)?;
        }
        Ok(canonical)
    }

    fn check_extension(&self, path: &Path) -> Result<(), Error> {
        let Some(allowed) = &self.extensions else {
            return Ok(());
        };
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if allowed.iter().any(|a| a == ext) {
            Ok(())
        } else {
            Err(Error::Forbidden {
                path: path.to_path_buf(),
                why: Refusal::Extension,
            })
        }
    }
}

/// Checks that `path` (with metadata `meta`, symlinks followed) is a program we may run: a
/// regular file with an execute bit, not world-writable unless allowed.
pub(crate) fn check_program(path: &Path, meta: &Metadata, allow_ww: bool) -> Result<(), Error> {
    let forbid = |why| Error::Forbidden {
        path: path.to_path_buf(),
        why,
    };
    if meta.is_dir() {
        return Err(forbid(Refusal::Directory));
    }
    if !meta.is_file() {
        return Err(forbid(Refusal::NotRegular));
    }
    let mode = meta.permissions().mode();
    if mode & ANY_EXECUTE == 0 {
        return Err(forbid(Refusal::NotExecutable));
    }
    if !allow_ww && mode & WORLD_WRITABLE != 0 {
        return Err(forbid(Refusal::WorldWritable));
    }
    Ok(())
}

/// Checks every directory from `program`'s parent up to and including `stop` for the
/// world-writable bit.
pub(crate) fn check_directories(program: &Path, stop: &Path) -> Result<(), Error> {
    for dir in program.ancestors().skip(1) {
        let meta = fs::metadata(dir).map_err(|e| io_refusal(dir, &e))?;
        if meta.permissions().mode() & WORLD_WRITABLE != 0 {
            return Err(Error::Forbidden {
                path: dir.to_path_buf(),
                why: Refusal::WorldWritable,
            });
        }
        if dir == stop || !dir.starts_with(stop) {
            break;
        }
    }
    Ok(())
}

/// The directory holding `path` (`/` for a top-level file).
pub(crate) fn parent(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new("/"))
}

fn io_refusal(path: &Path, e: &io::Error) -> Error {
    if e.kind() == io::ErrorKind::PermissionDenied {
        Error::Forbidden {
            path: path.to_path_buf(),
            why: Refusal::Inaccessible,
        }
    } else {
        Error::NotFound {
            path: path.to_path_buf(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    struct Tree {
        _dir: tempfile::TempDir,
        top: PathBuf,
        root: PathBuf,
    }

    /// top/root/{ok.sh, plain.txt, ww.sh, sub/x.cgi}, top/outside.sh, symlinks in root.
    fn tree() -> Tree {
        let dir = tempfile::tempdir().unwrap();
        let top = fs::canonicalize(dir.path()).unwrap();
        let root = top.join("root");
        fs::create_dir_all(root.join("sub")).unwrap();
        let file = |p: PathBuf, mode| {
            fs::write(&p, "#!/bin/sh\n").unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        };
        file(root.join("ok.sh"), 0o755);
        file(root.join("plain.txt"), 0o644);
        file(root.join("ww.sh"), 0o777);
        file(root.join("sub/x.cgi"), 0o755);
        file(top.join("outside.sh"), 0o755);
        symlink(top.join("outside.sh"), root.join("escape.sh")).unwrap();
        symlink(root.join("ok.sh"), root.join("inner.sh")).unwrap();
        Tree {
            _dir: dir,
            top,
            root,
        }
    }

    fn policy(t: &Tree) -> Policy {
        Policy {
            root: t.root.clone(),
            root_configured: t.root.clone(),
            allow_symlinks: false,
            allow_world_writable: false,
            extensions: None,
        }
    }

    fn refusal(r: Result<PathBuf, Error>) -> Refusal {
        match r {
            Err(Error::Forbidden { why, .. }) => why,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn accepts_plain_and_inner_symlink() {
        let t = tree();
        let p = policy(&t);
        assert_eq!(
            p.check_script(&t.root.join("ok.sh")).unwrap(),
            t.root.join("ok.sh")
        );
        assert_eq!(
            p.check_script(&t.root.join("inner.sh")).unwrap(),
            t.root.join("ok.sh")
        );
    }

    #[test]
    fn refuses_unsafe_files() {
        let t = tree();
        let mut p = policy(&t);
        assert_eq!(
            refusal(p.check_script(&t.root.join("plain.txt"))),
            Refusal::NotExecutable
        );
        assert_eq!(
            refusal(p.check_script(&t.root.join("ww.sh"))),
            Refusal::WorldWritable
        );
        assert_eq!(
            refusal(p.check_script(&t.root.join("escape.sh"))),
            Refusal::SymlinkEscape
        );
        assert_eq!(
            refusal(p.check_script(&t.top.join("outside.sh"))),
            Refusal::OutsideRoot
        );
        assert_eq!(
            refusal(p.check_script(&t.root.join("sub"))),
            Refusal::Directory
        );
        assert_eq!(
            refusal(p.check_script(&t.root.join("sub/../ok.sh"))),
            Refusal::Traversal
        );
        p.allow_symlinks = true;
        assert_eq!(
            p.check_script(&t.root.join("escape.sh")).unwrap(),
            t.top.join("outside.sh")
        );
        assert_eq!(
            refusal(p.check_script(&t.top.join("outside.sh"))),
            Refusal::OutsideRoot
        );
        p.allow_world_writable = true;
        assert!(p.check_script(&t.root.join("ww.sh")).is_ok());
    }

    #[test]
    fn world_writable_directory_on_the_way() {
        let t = tree();
        let p = policy(&t);
        fs::set_permissions(t.root.join("sub"), fs::Permissions::from_mode(0o777)).unwrap();
        let Err(Error::Forbidden { path, why }) = p.check_script(&t.root.join("sub/x.cgi")) else {
            panic!("world-writable directory accepted");
        };
        assert_eq!((path, why), (t.root.join("sub"), Refusal::WorldWritable));
        fs::set_permissions(t.root.join("sub"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(&t.root, fs::Permissions::from_mode(0o1777)).unwrap();
        assert_eq!(
            refusal(p.check_script(&t.root.join("sub/x.cgi"))),
            Refusal::WorldWritable
        );
        fs::set_permissions(&t.root, fs::Permissions::from_mode(0o755)).unwrap();
        assert!(p.check_script(&t.root.join("sub/x.cgi")).is_ok());
    }

    #[test]
    fn extension_allow_list() {
        let t = tree();
        let mut p = policy(&t);
        p.extensions = Some(vec!["cgi".into()]);
        assert!(p.check_script(&t.root.join("sub/x.cgi")).is_ok());
        assert_eq!(
            refusal(p.check_script(&t.root.join("ok.sh"))),
            Refusal::Extension
        );
    }
}
