//! CGI helpers: a copy of `fixtures/cgi-bin` with modes set by the test (a fresh clone's umask
//! must not matter to the safety checks), and running the binary itself as a CGI program.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

/// A temporary web root `www/` whose `cgi-bin/` holds copies of the fixture scripts: `*.sh`,
/// `*.pl`, `*.py` executable (0755) except `not_exec.sh` (0644); directories 0755.
pub struct CgiTree {
    _dir: tempfile::TempDir,
    /// Canonical path of the temporary directory.
    pub top: PathBuf,
    /// `top/www`, a document root.
    pub www: PathBuf,
    /// `top/www/cgi-bin`, the CGI directory.
    pub cgi_bin: PathBuf,
}

/// Copies `fixtures/cgi-bin` into a fresh [`CgiTree`].
pub fn cgi_tree() -> CgiTree {
    let dir = tempfile::tempdir().expect("temp dir");
    let top = fs::canonicalize(dir.path()).expect("canonical temp dir");
    let www = top.join("www");
    let cgi_bin = www.join("cgi-bin");
    fs::create_dir_all(&cgi_bin).expect("cgi-bin");
    for entry in fs::read_dir(super::fixtures().join("cgi-bin")).expect("fixtures/cgi-bin") {
        let entry = entry.expect("entry");
        let name = entry.file_name();
        let dest = cgi_bin.join(&name);
        fs::copy(entry.path(), &dest).expect("copy fixture");
        let script = matches!(
            dest.extension().and_then(|e| e.to_str()),
            Some("sh" | "pl" | "py")
        );
        let mode = if script && name != "not_exec.sh" {
            0o755
        } else {
            0o644
        };
        set_mode(&dest, mode);
    }
    for d in [&top, &www, &cgi_bin] {
        set_mode(d, 0o755);
    }
    CgiTree {
        _dir: dir,
        top,
        www,
        cgi_bin,
    }
}

/// chmod.
pub fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// Writes an executable file (0755).
pub fn write_program(path: &Path, text: &str) {
    fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    set_mode(path, 0o755);
}

/// What a CGI program run by [`run_cgi`] did.
pub struct CgiRun {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl CgiRun {
    /// Stdout parsed as a CGI response (RFC 3875 section 6).
    pub fn response(&self) -> super::http::Response {
        super::http::Response::parse_cgi(&self.stdout)
    }
}

/// Runs the `gatehouse` binary with `args` as a web server runs a CGI program: an environment
/// of `vars` only (nothing inherited), `body` on stdin (closed after it).
pub fn run_cgi(args: &[&str], vars: &[(&str, &str)], body: &[u8]) -> CgiRun {
    let out = super::output_with_stdin(
        Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .args(args)
            .env_clear()
            .envs(vars.iter().copied()),
        body,
    );
    CgiRun {
        status: out.status,
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
