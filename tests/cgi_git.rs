//! End-to-end: git over smart HTTP through a real nginx (`fastcgi_pass`) to
//! `gatehouse cgi:/usr/lib/git-core/git-http-backend`, with `GIT_PROJECT_ROOT` and
//! `GIT_HTTP_EXPORT_ALL` passed by `fastcgi_param` (fixtures/conf/nginx/cgi-git.conf.tmpl).
//!
//! - clone (of an empty repository), commit, push, clone again: the commit is there, and a
//!   second push is fetched by the first clone;
//! - a push of an incompressible 4 MiB file: the request body streams to git-http-backend,
//!   which writes its response head before it reads the pack; nginx stops sending a request
//!   body once it has an upstream's response head, so gatehouse holds that head back until the
//!   body is all in (see the test's note);
//! - the other usual nginx form, a regex location passing `PATH_INFO $1`: the dispatcher keeps
//!   nginx's split (`SCRIPT_NAME=/prefixed`), so git-http-backend gets nginx's `PATH_INFO`.
//!
//! git runs with a clean HOME in the test's temp dir and `GIT_TERMINAL_PROMPT=0`; protocol
//! version 2 (git's default) is used. No timing assertions.

mod support;

#[path = "support/cgi_e2e.rs"]
mod cgi_support;

use std::fs;
use std::path::{Path, PathBuf};

use cgi_support::{git_http_backend, Git};
use support::daemon::Daemon;
use support::nginx::Nginx;
use support::{body, sha256_hex};

/// A bare repository served by nginx + gatehouse + git-http-backend, and git to talk to it.
struct GitRig {
    /// Holds `repos/`, `home/`, `nginx/` and the working copies.
    top: PathBuf,
    git: Git,
    gatehouse: Daemon,
    nginx: Nginx,
    _dir: tempfile::TempDir,
}

impl GitRig {
    /// `repos/proj.git` (bare, `http.receivepack true`) behind nginx and gatehouse.
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let top = fs::canonicalize(dir.path()).expect("canonical temp dir");
        let repos = top.join("repos");
        fs::create_dir_all(&repos).expect("repos dir");
        let git = Git::new(&top.join("home"));
        git.run(
            &repos,
            &[
                "init",
                "--quiet",
                "--bare",
                "--initial-branch=main",
                "proj.git",
            ],
        );
        git.run(
            &repos.join("proj.git"),
            &["config", "http.receivepack", "true"],
        );
        let backend = format!("cgi:{}", git_http_backend().display());
        let sock = top.join("gatehouse.sock");
        let gatehouse = Daemon::fastcgi_unix(&backend, &sock, &["--cgi-timeout", "60s"]);
        let nginx_dir = top.join("nginx");
        fs::create_dir_all(&nginx_dir).expect("nginx dir");
        let upstream = format!("unix:{}", sock.display());
        let git_root = repos.display().to_string();
        let nginx = Nginx::start_with(
            "cgi-git.conf.tmpl",
            &[("@UPSTREAM@", &upstream), ("@GIT_ROOT@", &git_root)],
            &nginx_dir,
        );
        Self {
            top,
            git,
            gatehouse,
            nginx,
            _dir: dir,
        }
    }

    /// The repository's URL through nginx (`prefix` empty or `/prefixed`).
    fn url(&self, prefix: &str) -> String {
        format!("http://127.0.0.1:{}{prefix}/proj.git", self.nginx.port)
    }

    /// Runs git in `cwd`, failing the test with nginx's and gatehouse's logs if it fails.
    fn git(&self, cwd: &Path, args: &[&str]) -> String {
        let r = self.git.try_run(cwd, args);
        assert!(
            r.status.success(),
            "git {args:?} failed ({}):\n{}{}\n--- nginx error.log:\n{}\n--- gatehouse log:\n{}",
            r.status,
            r.stdout,
            r.stderr,
            self.nginx.error_log(),
            self.gatehouse.log().join("\n")
        );
        r.stdout
    }

    /// Clones through nginx into `top/name`; returns the working copy.
    fn clone(&self, prefix: &str, name: &str) -> PathBuf {
        self.git(&self.top, &["clone", "--quiet", &self.url(prefix), name]);
        self.top.join(name)
    }

    /// Writes `file` in `work`, commits it, pushes to `main`; returns the commit id.
    fn commit_and_push(&self, work: &Path, file: &str, content: &[u8], message: &str) -> String {
        fs::write(work.join(file), content).expect("write file");
        self.git(work, &["add", file]);
        self.git(work, &["commit", "--quiet", "-m", message]);
        self.git(work, &["push", "--quiet", "origin", "HEAD:refs/heads/main"]);
        self.git(work, &["rev-parse", "HEAD"]).trim().to_owned()
    }
}

/// The commit `main` points at in working copy `work`, and the content of `file` there.
fn head_of(rig: &GitRig, work: &Path, file: &str) -> (String, Vec<u8>) {
    let id = rig.git(work, &["rev-parse", "origin/main"]);
    rig.git(work, &["checkout", "--quiet", "origin/main"]);
    let content = fs::read(work.join(file)).expect("checked-out file");
    (id.trim().to_owned(), content)
}

#[test]
fn clone_commit_push_clone_again() {
    let rig = GitRig::start();

    // Clone of the empty repository (info/refs through git-http-backend), then a first push.
    let first = rig.clone("", "first");
    let c1 = rig.commit_and_push(&first, "README", b"hello over smart HTTP\n", "first commit");

    // A fresh clone sees it.
    let second = rig.clone("", "second");
    let (id, content) = head_of(&rig, &second, "README");
    assert_eq!(id, c1);
    assert_eq!(content, b"hello over smart HTTP\n");

    // A push from the second clone is fetched by the first.
    let c2 = rig.commit_and_push(&second, "NOTES", b"second line\n", "second commit");
    rig.git(&first, &["fetch", "--quiet", "origin"]);
    let (id, content) = head_of(&rig, &first, "NOTES");
    assert_eq!(id, c2);
    assert_eq!(content, b"second line\n");

    // The server-side repository agrees.
    let server = rig.git(&rig.top.join("repos/proj.git"), &["rev-parse", "main"]);
    assert_eq!(server.trim(), c2);
    let log = rig.git(
        &rig.top.join("repos/proj.git"),
        &["log", "--format=%s", "main"],
    );
    assert_eq!(log, "second commit\nfirst commit\n");
}

/// Streaming request bodies: a pack of a few MiB (incompressible, so the pack is as large).
///
/// git-http-backend answers `git-receive-pack` by writing its head
/// (`Content-Type: application/x-git-receive-pack-result`) before it reads the pack. nginx, once
/// it has an upstream's response head, stops sending the request body (its upstream module drops
/// the write handler when the head has gone to the client, unless `preserve_output`, which only
/// gRPC sets). Forwarding that head at once (as gatehouse did) left git-http-backend waiting for
/// the rest of the pack and nginx for the response, until `fastcgi_read_timeout`: git reported
/// "RPC failed" for anything above what the socket and pipe buffers hold (a few hundred KiB).
/// gatehouse now holds a response back while its request body is still arriving (as fcgiwrap,
/// which copies the whole body to the script before reading any output, in effect does).
#[test]
fn push_of_a_few_mib_streams_the_request_body() {
    let rig = GitRig::start();
    let work = rig.clone("", "work");
    let data = body(4 * 1024 * 1024 + 17, 42);
    let c1 = rig.commit_and_push(&work, "blob.bin", &data, "four MiB");
    let again = rig.clone("", "again");
    let (id, content) = head_of(&rig, &again, "blob.bin");
    assert_eq!(id, c1);
    assert_eq!(content.len(), data.len());
    assert_eq!(sha256_hex(&content), sha256_hex(&data));
}

/// The common fcgiwrap configuration `location ~ ^/prefixed(/.*)$` with
/// `fastcgi_param PATH_INFO $1`: git-http-backend must see `PATH_INFO=/proj.git/...` (it
/// appends it to `GIT_PROJECT_ROOT`), not the whole path.
///
/// nginx sends `SCRIPT_NAME` = the whole `$uri` (stock `fastcgi_params`), `PATH_INFO` =
/// `/proj.git/...` and `DOCUMENT_URI` = `/prefixed/proj.git/...`: `DOCUMENT_URI` ends with
/// `PATH_INFO`, so the dispatcher takes `/prefixed` as the front server's prefix and the
/// program, mounted at `/`, gets `SCRIPT_NAME=/prefixed` and nginx's `PATH_INFO`. Before,
/// gatehouse re-split the whole path at `/` and git-http-backend answered 404.
#[test]
fn prefixed_location_with_nginx_path_info() {
    let rig = GitRig::start();
    let work = rig.clone("/prefixed", "work");
    let c1 = rig.commit_and_push(&work, "README", b"prefixed\n", "prefixed");
    let again = rig.clone("/prefixed", "again");
    assert_eq!(
        head_of(&rig, &again, "README"),
        (c1, b"prefixed\n".to_vec())
    );
}
