//! Finding the script a request names, and the `SCRIPT_NAME` / `PATH_INFO` split it sees.
//!
//! The request path is `SCRIPT_NAME` + `PATH_INFO` and `SCRIPT_NAME` is the app's mount point:
//! the dispatcher's split (its mount point, or the front server's own prefix when that is
//! longer, as an nginx `location ~ ^/git(/.*)$` passing `PATH_INFO $1` makes it). A file root
//! (one program for every request, git-http-backend style) gets exactly that split. Only when
//! nginx's `DOCUMENT_URI` says otherwise (the app driven without the dispatcher, on nginx's raw
//! variables) is the path `DOCUMENT_URI` and the mount point the dispatcher's reading of them:
//! `DOCUMENT_URI` without the `PATH_INFO` it ends with, else none.
//!
//! With a directory root the script is looked for, in this order:
//!
//! 1. `SCRIPT_FILENAME`, as nginx's `fastcgi.conf` and lighttpd send it; Apache
//!    mod_proxy_fcgi's `proxy:fcgi://host:port/path` form is stripped to `/path`. Its segments
//!    are walked to the first existing file, the rest being path info (Apache appends it). A
//!    `SCRIPT_FILENAME` naming a directory is ignored: lighttpd's `fastcgi.server` prefix `/`
//!    (without `fix-root-scriptname`) splits after the first segment (`/cgi-bin` | `/env.sh`)
//!    and sends the document root + that `SCRIPT_NAME`.
//! 2. `DOCUMENT_ROOT` + the request path.
//! 3. The request path below the mount point under the root; then the whole path under it
//!    (lighttpd's split again: `SCRIPT_NAME=/cgi-bin` is no mount point of ours).
//!
//! Walking (as Apache does) means appending one segment at a time until the path names
//! something that is not a directory: that is the script, and the rest of the request path is
//! `PATH_INFO`. A `..` segment is refused outright; empty and `.` segments are skipped. Where the
//! file lies and what it is gets checked afterwards ([`crate::safety`]).

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use gatehouse_channel_request::env::{DOCUMENT_ROOT, DOCUMENT_URI, SCRIPT_FILENAME};
use gatehouse_channel_request::Env;

use crate::error::{Error, Refusal};

/// The request path and the part of it the app is mounted at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RequestPath {
    /// The whole path, never empty.
    pub(crate) full: Bytes,
    /// Length of the mount point at the start of `full` (0 at `/`).
    pub(crate) mount_len: usize,
}

impl RequestPath {
    /// Reads the request path and the mount point from the meta-variables (see the module
    /// documentation).
    pub(crate) fn from_env(env: &Env) -> Result<Self, Error> {
        let (script_name, path_info) = (env.script_name(), env.path_info());
        let (full, mount_len) = match env.get(DOCUMENT_URI).filter(|d| !d.is_empty()) {
            Some(doc) if !is_split_of(doc, script_name, path_info) => {
                let front_len = if path_info.starts_with(b"/") && doc.ends_with(path_info) {
                    doc.len() - path_info.len()
                } else {
                    0
                };
                (doc.clone(), front_len)
            }
            _ if script_name.is_empty() && path_info.is_empty() => (Bytes::from_static(b"/"), 0),
            _ => (Bytes::from(env.path()), script_name.len()),
        };
        if full.contains(&0) {
            return Err(Error::BadPath(full.to_vec()));
        }
        Ok(Self { full, mount_len })
    }

    /// The mount point.
    pub(crate) fn mount(&self) -> &[u8] {
        &self.full[..self.mount_len]
    }

    /// `(SCRIPT_NAME, PATH_INFO)` when the script is the mount point itself (a file root): the
    /// dispatcher's split as it made it.
    pub(crate) fn split_at_mount(&self) -> (Bytes, Bytes) {
        self.split_at(self.mount_len)
    }

    fn split_at(&self, at: usize) -> (Bytes, Bytes) {
        (self.full.slice(..at), self.full.slice(at..))
    }
}

/// Whether `path` is `script_name` followed by `path_info`.
fn is_split_of(path: &[u8], script_name: &[u8], path_info: &[u8]) -> bool {
    path.len() == script_name.len() + path_info.len()
        && path.starts_with(script_name)
        && path.ends_with(path_info)
}

/// The script a request names in a directory root, before the safety checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Found {
    /// The file as found (not canonicalised).
    pub(crate) path: PathBuf,
    /// `SCRIPT_NAME` for the script.
    pub(crate) script_name: Bytes,
    /// `PATH_INFO` for the script.
    pub(crate) path_info: Bytes,
}

/// Finds the script for `env` under the directory `root` (canonical), in the order the module
/// documentation gives.
pub(crate) fn find_in_dir(root: &Path, env: &Env, req: &RequestPath) -> Result<Found, Error> {
    if let Some(filename) = script_filename(env)? {
        let segs = segments(&filename, 0)?;
        match walk(Path::new("/"), &filename, &segs)? {
            Walk::File { path, end } => {
                let (script_name, path_info) =
                    split_by_filename(req, &filename[..end], &filename[end..]);
                return Ok(Found {
                    path,
                    script_name,
                    path_info,
                });
            }
            Walk::Missing(path) => return Err(Error::NotFound { path }),
            Walk::AllDirs(_) => {} // lighttpd's odd split: use the request path instead
        }
    }
    if let Some(doc_root) = env.get(DOCUMENT_ROOT).filter(|d| !d.is_empty()) {
        if doc_root.contains(&0) {
            return Err(Error::BadPath(doc_root.to_vec()));
        }
        let base = Path::new(OsStr::from_bytes(doc_root));
        return found_or_refused(walk(base, &req.full, &segments(&req.full, 0)?)?, req);
    }
    let below_mount = walk(root, &req.full, &segments(&req.full, req.mount_len)?)?;
    if req.mount_len > 0 && !matches!(below_mount, Walk::File { .. }) {
        let whole = walk(root, &req.full, &segments(&req.full, 0)?)?;
        if matches!(whole, Walk::File { .. }) {
            return found_or_refused(whole, req);
        }
    }
    found_or_refused(below_mount, req)
}

fn found_or_refused(walk: Walk, req: &RequestPath) -> Result<Found, Error> {
    match walk {
        Walk::File { path, end } => {
            let (script_name, path_info) = req.split_at(end);
            Ok(Found {
                path,
                script_name,
                path_info,
            })
        }
        Walk::Missing(path) => Err(Error::NotFound { path }),
        Walk::AllDirs(path) => Err(Error::Forbidden {
            path,
            why: Refusal::Directory,
        }),
    }
}

/// `SCRIPT_FILENAME` when sent, absolute and non-empty, with Apache's `proxy:` URL form
/// stripped and percent-decoded.
fn script_filename(env: &Env) -> Result<Option<Vec<u8>>, Error> {
    let Some(raw) = env.get(SCRIPT_FILENAME).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let path = match raw.strip_prefix(b"proxy:") {
        Some(url) => strip_proxy_url(url).map(percent_decode),
        None => Some(raw.to_vec()),
    };
    let Some(path) = path.filter(|p| p.starts_with(b"/")) else {
        return Ok(None);
    };
    if path.contains(&0) {
        return Err(Error::BadPath(path));
    }
    Ok(Some(path))
}

/// `fcgi://host:port/path` (mod_proxy_fcgi) → `/path`.
fn strip_proxy_url(url: &[u8]) -> Option<&[u8]> {
    let after_scheme = url.windows(3).position(|w| w == b"://")? + 3;
    let rest = &url[after_scheme..];
    let path_start = rest.iter().position(|&b| b == b'/')?;
    let path = &rest[path_start..];
    Some(path.split(|&b| b == b'?').next().unwrap_or(path))
}

pub(crate) use gatehouse_channel_request::env::percent_decode;

/// Splits the request path for a script found through `SCRIPT_FILENAME`: at the path info the
/// filename carried (Apache), else after the shortest leading part of the request path that the
/// script's file path ends with (`/cgi-bin/x.sh` for `/srv/www/cgi-bin/x.sh`), else at the mount
/// point (a fixed `SCRIPT_FILENAME` for every URL, as cgit setups send).
fn split_by_filename(req: &RequestPath, file: &[u8], leftover: &[u8]) -> (Bytes, Bytes) {
    let full = &req.full;
    if !leftover.is_empty() && full.len() > leftover.len() && full.ends_with(leftover) {
        return req.split_at(full.len() - leftover.len());
    }
    if let Ok(segs) = segments(full, 0) {
        if let Some(&(_, end)) = segs.iter().find(|&&(_, end)| file.ends_with(&full[..end])) {
            return req.split_at(end);
        }
    }
    req.split_at_mount()
}

/// The byte ranges of the segments of `path` from offset `from`, skipping empty and `.` ones.
/// A `..` segment is a traversal attempt.
fn segments(path: &[u8], from: usize) -> Result<Vec<(usize, usize)>, Error> {
    let mut out = Vec::new();
    let mut start = from;
    for end in (from..=path.len()).filter(|&i| i == path.len() || path[i] == b'/') {
        let seg = &path[start..end];
        match seg {
            b"" | b"." => {}
            b".." => {
                return Err(Error::Forbidden {
                    path: PathBuf::from(OsStr::from_bytes(path)),
                    why: Refusal::Traversal,
                })
            }
            _ => out.push((start, end)),
        }
        start = end + 1;
    }
    Ok(out)
}

/// How walking a path's segments from a base directory ended.
#[derive(Debug, PartialEq, Eq)]
enum Walk {
    /// Something that is not a directory, ending at byte `end` of the walked path.
    File { path: PathBuf, end: usize },
    /// Nothing exists at this path.
    Missing(PathBuf),
    /// Every segment was a directory.
    AllDirs(PathBuf),
}

/// Appends segments of `path` to `base` one at a time until one names a non-directory.
///
/// The whole path is tried first: when it exists, every leading part of it is a directory (a
/// path cannot go on through a file), so the answer is known after one `stat` instead of one
/// per segment. That is the usual request (nginx split the path info off, or there is none).
fn walk(base: &Path, path: &[u8], segs: &[(usize, usize)]) -> Result<Walk, Error> {
    if let Some(&(_, end)) = segs.last() {
        let mut whole = base.to_path_buf();
        for &(start, end) in segs {
            whole.push(OsStr::from_bytes(&path[start..end]));
        }
        match fs::metadata(&whole) {
            Ok(meta) if meta.is_dir() => return Ok(Walk::AllDirs(whole)),
            Ok(_) => return Ok(Walk::File { path: whole, end }),
            Err(_) => {} // path info follows the file, or nothing is there: walk to find out
        }
    }
    let mut current = base.to_path_buf();
    for &(start, end) in segs {
        current.push(OsStr::from_bytes(&path[start..end]));
        match fs::metadata(&current) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Ok(Walk::File { path: current, end }),
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                return Err(Error::Forbidden {
                    path: current,
                    why: Refusal::Inaccessible,
                })
            }
            // Not found, not a directory, a symlink loop, a name too long: nothing to run.
            Err(_) => return Ok(Walk::Missing(current)),
        }
    }
    Ok(Walk::AllDirs(current))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn env(pairs: &[(&'static str, &str)]) -> Env {
        pairs
            .iter()
            .map(|&(n, v)| (Bytes::from_static(n.as_bytes()), Bytes::from(v.to_owned())))
            .collect()
    }

    /// root/cgi-bin/env.sh, root/cgi-bin/sub/deep.sh, root/data/
    fn tree() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(dir.path()).unwrap();
        fs::create_dir_all(root.join("cgi-bin/sub")).unwrap();
        fs::create_dir_all(root.join("data")).unwrap();
        for f in ["cgi-bin/env.sh", "cgi-bin/sub/deep.sh"] {
            fs::write(root.join(f), "#!/bin/sh\n").unwrap();
            fs::set_permissions(root.join(f), fs::Permissions::from_mode(0o755)).unwrap();
        }
        (dir, root)
    }

    fn find(root: &Path, pairs: &[(&'static str, &str)]) -> Result<Found, Error> {
        let e = env(pairs);
        let req = RequestPath::from_env(&e)?;
        find_in_dir(root, &e, &req)
    }

    fn split(f: &Found) -> (&[u8], &[u8]) {
        (&f.script_name, &f.path_info)
    }

    fn mount_split(pairs: &[(&'static str, &str)]) -> (String, String) {
        let (name, info) = RequestPath::from_env(&env(pairs)).unwrap().split_at_mount();
        let text = |b: Bytes| String::from_utf8(b.to_vec()).unwrap();
        (text(name), text(info))
    }

    fn pair(name: &str, info: &str) -> (String, String) {
        (name.to_owned(), info.to_owned())
    }

    #[test]
    fn request_path_is_the_dispatchers_split() {
        // What the dispatcher gives: SCRIPT_NAME + PATH_INFO, DOCUMENT_URI agreeing or absent.
        let e = env(&[("SCRIPT_NAME", "/m"), ("PATH_INFO", "/x")]);
        let r = RequestPath::from_env(&e).unwrap();
        assert_eq!((&r.full[..], r.mount()), (&b"/m/x"[..], &b"/m"[..]));
        let e = env(&[
            ("SCRIPT_NAME", "/prefixed"),
            ("PATH_INFO", "/repo.git/info/refs"),
            ("DOCUMENT_URI", "/prefixed/repo.git/info/refs"),
        ]);
        let r = RequestPath::from_env(&e).unwrap();
        assert_eq!(r.mount(), b"/prefixed");
        assert_eq!(&r.full[..], b"/prefixed/repo.git/info/refs");
        // Taken as given, even where it does not end at a segment boundary.
        let r = RequestPath::from_env(&env(&[("SCRIPT_NAME", "/a"), ("PATH_INFO", "b")])).unwrap();
        assert_eq!((&r.full[..], r.mount_len), (&b"/ab"[..], 2));
        assert_eq!(&RequestPath::from_env(&env(&[])).unwrap().full[..], b"/");
        assert!(matches!(
            RequestPath::from_env(&env(&[("PATH_INFO", "/a\0b")])),
            Err(Error::BadPath(_))
        ));
    }

    #[test]
    fn raw_nginx_variables_read_as_the_dispatcher_reads_them() {
        // fcgiwrap style (both $uri): the whole path below no mount point.
        let e = env(&[
            ("SCRIPT_NAME", "/a/b"),
            ("PATH_INFO", "/a/b"),
            ("DOCUMENT_URI", "/a/b"),
        ]);
        let r = RequestPath::from_env(&e).unwrap();
        assert_eq!((&r.full[..], r.mount()), (&b"/a/b"[..], &b""[..]));
        // A regex location passing PATH_INFO $1: the front prefix is the mount point.
        let e = env(&[
            ("SCRIPT_NAME", "/p/a/b"),
            ("PATH_INFO", "/a/b"),
            ("DOCUMENT_URI", "/p/a/b"),
        ]);
        let r = RequestPath::from_env(&e).unwrap();
        assert_eq!((&r.full[..], r.mount()), (&b"/p/a/b"[..], &b"/p"[..]));
        // A SCRIPT_NAME that disagrees with DOCUMENT_URI is no mount point.
        let r =
            RequestPath::from_env(&env(&[("SCRIPT_NAME", "/m"), ("DOCUMENT_URI", "/mx")])).unwrap();
        assert_eq!((&r.full[..], r.mount_len), (&b"/mx"[..], 0));
        let e = env(&[("PATH_INFO", "/elsewhere"), ("DOCUMENT_URI", "/d/x")]);
        assert_eq!(RequestPath::from_env(&e).unwrap().mount_len, 0);
    }

    /// A file root (git-http-backend): the program gets the dispatcher's `PATH_INFO`, which
    /// keeps the front server's split, and without the dispatcher the same from nginx's
    /// variables.
    #[test]
    fn file_root_path_info() {
        let behind_dispatcher = [
            // nginx location ~ ^/prefixed(/.*)$ + PATH_INFO $1
            (
                &[
                    ("SCRIPT_NAME", "/prefixed"),
                    ("PATH_INFO", "/repo.git/info/refs"),
                    ("DOCUMENT_URI", "/prefixed/repo.git/info/refs"),
                ][..],
                pair("/prefixed", "/repo.git/info/refs"),
            ),
            // stock fastcgi_params at /, or our HTTP front end
            (
                &[
                    ("SCRIPT_NAME", ""),
                    ("PATH_INFO", "/repo.git/HEAD"),
                    ("DOCUMENT_URI", "/repo.git/HEAD"),
                ][..],
                pair("", "/repo.git/HEAD"),
            ),
            // --mount /git=cgi:...
            (
                &[("SCRIPT_NAME", "/git"), ("PATH_INFO", "/repo.git/HEAD")][..],
                pair("/git", "/repo.git/HEAD"),
            ),
            // a CGI program at /cgi-bin/gatehouse, PATH_INFO /repo.git/HEAD
            (
                &[
                    ("SCRIPT_NAME", "/cgi-bin/gatehouse"),
                    ("PATH_INFO", "/repo.git/HEAD"),
                ][..],
                pair("/cgi-bin/gatehouse", "/repo.git/HEAD"),
            ),
            // the request is the mount point itself
            (
                &[("SCRIPT_NAME", "/git"), ("PATH_INFO", "")][..],
                pair("/git", ""),
            ),
        ];
        for (vars, want) in behind_dispatcher {
            assert_eq!(mount_split(vars), want, "{vars:?}");
        }
        let raw_nginx = [
            (
                &[
                    ("SCRIPT_NAME", "/prefixed/repo.git/info/refs"),
                    ("PATH_INFO", "/repo.git/info/refs"),
                    ("DOCUMENT_URI", "/prefixed/repo.git/info/refs"),
                ][..],
                pair("/prefixed", "/repo.git/info/refs"),
            ),
            (
                &[
                    ("SCRIPT_NAME", "/repo.git/HEAD"),
                    ("PATH_INFO", "/repo.git/HEAD"),
                    ("DOCUMENT_URI", "/repo.git/HEAD"),
                ][..],
                pair("", "/repo.git/HEAD"),
            ),
        ];
        for (vars, want) in raw_nginx {
            assert_eq!(mount_split(vars), want, "{vars:?}");
        }
    }

    #[test]
    fn walks_under_root_below_mount_then_whole() {
        let (_d, root) = tree();
        let cgi = root.join("cgi-bin");
        // The dispatcher mounted us at /cgi-bin: the path below the mount is under the root.
        let f = find(
            &cgi,
            &[("SCRIPT_NAME", "/cgi-bin"), ("PATH_INFO", "/env.sh/x/y")],
        )
        .unwrap();
        assert_eq!(f.path, cgi.join("env.sh"));
        assert_eq!(split(&f), (&b"/cgi-bin/env.sh"[..], &b"/x/y"[..]));
        // Mounted at /: SCRIPT_NAME empty, everything in PATH_INFO.
        let f = find(
            &root,
            &[("SCRIPT_NAME", ""), ("PATH_INFO", "/cgi-bin/sub/deep.sh")],
        )
        .unwrap();
        assert_eq!(split(&f), (&b"/cgi-bin/sub/deep.sh"[..], &b""[..]));
        // lighttpd at / splitting after the first segment: found through the whole path.
        let f = find(
            &root,
            &[("SCRIPT_NAME", "/cgi-bin"), ("PATH_INFO", "/env.sh")],
        )
        .unwrap();
        assert_eq!(split(&f), (&b"/cgi-bin/env.sh"[..], &b""[..]));
        // Empty, "." and doubled segments are skipped; the split keeps the request's bytes.
        let f = find(&root, &[("PATH_INFO", "//cgi-bin/./env.sh/")]).unwrap();
        assert_eq!(split(&f), (&b"//cgi-bin/./env.sh"[..], &b"/"[..]));
    }

    #[test]
    fn missing_directory_and_traversal() {
        let (_d, root) = tree();
        assert!(matches!(
            find(&root, &[("PATH_INFO", "/cgi-bin/nope.sh/x")]),
            Err(Error::NotFound { path }) if path == root.join("cgi-bin/nope.sh")
        ));
        assert!(matches!(
            find(&root, &[("PATH_INFO", "/cgi-bin/sub/")]),
            Err(Error::Forbidden {
                why: Refusal::Directory,
                ..
            })
        ));
        assert!(matches!(
            find(&root, &[("PATH_INFO", "/cgi-bin/../../etc/passwd")]),
            Err(Error::Forbidden {
                why: Refusal::Traversal,
                ..
            })
        ));
        // A file in the middle of the path: the rest is path info, even if it says "..".
        assert!(matches!(
            find(&root, &[("PATH_INFO", "/cgi-bin/env.sh/../x")]),
            Err(Error::Forbidden {
                why: Refusal::Traversal,
                ..
            })
        ));
    }

    #[test]
    fn document_root_plus_path() {
        let (_d, root) = tree();
        let doc = root.to_str().unwrap();
        let f = find(
            &root.join("cgi-bin"),
            &[
                ("DOCUMENT_ROOT", doc),
                ("SCRIPT_NAME", "/cgi-bin/env.sh"),
                ("PATH_INFO", ""),
            ],
        )
        .unwrap();
        assert_eq!(f.path, root.join("cgi-bin/env.sh"));
        // nginx sends empty values: an empty DOCUMENT_ROOT is absent.
        let f = find(
            &root,
            &[
                ("DOCUMENT_ROOT", ""),
                ("SCRIPT_FILENAME", ""),
                ("PATH_INFO", "/cgi-bin/env.sh"),
            ],
        )
        .unwrap();
        assert_eq!(f.path, root.join("cgi-bin/env.sh"));
    }

    #[test]
    fn script_filename_forms() {
        let (_d, root) = tree();
        let file = root.join("cgi-bin/env.sh");
        let file_s = file.to_str().unwrap().to_owned();
        // nginx fastcgi.conf: $document_root$fastcgi_script_name; the URL splits after the file.
        let f = find(
            &root,
            &[
                ("SCRIPT_FILENAME", &file_s),
                ("DOCUMENT_URI", "/cgi-bin/env.sh/more"),
            ],
        )
        .unwrap();
        assert_eq!(f.path, file);
        assert_eq!(split(&f), (&b"/cgi-bin/env.sh"[..], &b"/more"[..]));
        // Apache mod_proxy_fcgi: proxy URL with the path info appended, percent-encoded.
        let apache = format!("proxy:fcgi://127.0.0.1:9000{}/a%20b", file_s);
        let f = find(
            &root,
            &[
                ("SCRIPT_FILENAME", &apache),
                ("SCRIPT_NAME", "/cgi-bin/env.sh/a b"),
            ],
        )
        .unwrap();
        assert_eq!(f.path, file);
        assert_eq!(split(&f), (&b"/cgi-bin/env.sh"[..], &b"/a b"[..]));
        // A fixed SCRIPT_FILENAME for every URL (cgit style): the path stays PATH_INFO.
        let f = find(
            &root,
            &[("SCRIPT_FILENAME", &file_s), ("PATH_INFO", "/repo/tree")],
        )
        .unwrap();
        assert_eq!(split(&f), (&b""[..], &b"/repo/tree"[..]));
        // lighttpd at /: SCRIPT_FILENAME names a directory; the request path decides.
        let dir = root.join("cgi-bin").to_str().unwrap().to_owned();
        let f = find(
            &root,
            &[
                ("SCRIPT_FILENAME", &dir),
                ("SCRIPT_NAME", "/cgi-bin"),
                ("PATH_INFO", "/sub/deep.sh"),
            ],
        )
        .unwrap();
        assert_eq!(f.path, root.join("cgi-bin/sub/deep.sh"));
        // Missing file named explicitly: 404, no guessing.
        let gone = format!("{}/cgi-bin/gone.sh", root.display());
        assert!(matches!(
            find(
                &root,
                &[("SCRIPT_FILENAME", &gone), ("PATH_INFO", "/cgi-bin/env.sh")]
            ),
            Err(Error::NotFound { .. })
        ));
        assert!(matches!(
            find(&root, &[("SCRIPT_FILENAME", "/srv/../etc/passwd")]),
            Err(Error::Forbidden {
                why: Refusal::Traversal,
                ..
            })
        ));
    }

    #[test]
    fn proxy_urls_and_decoding() {
        assert_eq!(strip_proxy_url(b"fcgi://h:9000/a/b?q"), Some(&b"/a/b"[..]));
        assert_eq!(strip_proxy_url(b"balancer://x/p"), Some(&b"/p"[..]));
        assert_eq!(strip_proxy_url(b"fcgi://h:9000"), None);
        assert_eq!(percent_decode(b"%41%4a%zz%4"), b"AJ%zz%4");
        assert_eq!(percent_decode(b"a%2"), b"a%2");
        assert_eq!(percent_decode(b"%20"), b" ");
    }
}
