//! What is never executed: files outside the root, traversal, escaping symlinks, non-executable
//! and world-writable files, disallowed extensions. Each refusal is a 403/404 and a log line.

mod support;

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

use gatehouse_cgi_exec::{CgiApp, Error, Refusal};
use support::{app, config, get, run, tree, Logs};

/// A script outside the root that leaves a trace when it runs.
fn outside_script(dir: &Path) -> std::path::PathBuf {
    let marker = dir.join("ran");
    let script = dir.join("outside.sh");
    let text = format!(
        "#!/bin/sh\n: > {}\nprintf 'Content-Type: text/plain\\r\\n\\r\\noutside\\n'\n",
        marker.display()
    );
    fs::write(&script, text).expect("write script");
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).expect("chmod");
    script
}

#[tokio::test]
async fn non_executable_file_is_403_and_never_runs() {
    let t = tree();
    let logs = Logs::default();
    let _g = logs.install();
    let ans = get(&app(&t.cgi, config()), "/not_exec.sh").await;
    assert_eq!(ans.status(), 403);
    assert_eq!(ans.text(), "Forbidden\n");
    let log = logs.text();
    assert!(
        log.contains("not executable") && log.contains("not_exec.sh"),
        "{log}"
    );
}

#[tokio::test]
async fn traversal_is_refused() {
    let t = tree();
    let logs = Logs::default();
    let _g = logs.install();
    let a = app(&t.cgi, config());
    assert_eq!(get(&a, "/../../etc/passwd").await.status(), 403);
    assert_eq!(get(&a, "/cgi-bin/../../etc/passwd").await.status(), 403);
    let mounted = run(
        &a,
        &[
            ("SCRIPT_NAME", "/cgi-bin"),
            ("PATH_INFO", "/../../../etc/passwd"),
        ],
        b"",
    )
    .await;
    assert_eq!(mounted.status(), 403);
    assert!(logs.text().contains("'..' segment"), "{}", logs.text());
    // The front server's SCRIPT_FILENAME is checked like anything else: /bin/sh is not ours.
    let ans = run(
        &a,
        &[("SCRIPT_FILENAME", "/bin/sh"), ("PATH_INFO", "/env.sh")],
        b"",
    )
    .await;
    assert_eq!(ans.status(), 403);
    assert!(
        logs.text().contains("outside the CGI root"),
        "{}",
        logs.text()
    );
}

#[tokio::test]
async fn symlink_out_of_the_root() {
    let t = tree();
    let script = outside_script(&t.top);
    symlink(&script, t.cgi.join("escape.sh")).unwrap();
    let ans = get(&app(&t.cgi, config()), "/escape.sh").await;
    assert_eq!(ans.status(), 403);
    assert!(!t.top.join("ran").exists(), "the outside script ran");
    // A symlink inside the root is fine.
    symlink(t.cgi.join("env.sh"), t.cgi.join("alias.sh")).unwrap();
    let ans = get(&app(&t.cgi, config()), "/alias.sh").await;
    assert_eq!(ans.status(), 200);
    assert_eq!(
        ans.var("SCRIPT_FILENAME"),
        Some(format!("{}/env.sh", t.cgi.display()))
    );
    // With the flag, the escaping symlink runs.
    let mut c = config();
    c.allow_symlinks = true;
    let ans = get(&app(&t.cgi, c), "/escape.sh").await;
    assert_eq!((ans.status(), ans.text().as_str()), (200, "outside\n"));
}

#[tokio::test]
async fn world_writable_script_or_directory() {
    let t = tree();
    let sub = t.cgi.join("sub");
    fs::create_dir(&sub).unwrap();
    fs::copy(t.cgi.join("env.sh"), sub.join("env.sh")).unwrap();
    fs::set_permissions(sub.join("env.sh"), fs::Permissions::from_mode(0o757)).unwrap();
    let a = app(&t.cgi, config());
    assert_eq!(
        get(&a, "/sub/env.sh").await.status(),
        403,
        "world-writable script"
    );
    fs::set_permissions(sub.join("env.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(&sub, fs::Permissions::from_mode(0o777)).unwrap();
    assert_eq!(
        get(&a, "/sub/env.sh").await.status(),
        403,
        "world-writable directory"
    );
    let mut c = config();
    c.allow_world_writable = true;
    assert_eq!(get(&app(&t.cgi, c), "/sub/env.sh").await.status(), 200);
    fs::set_permissions(&sub, fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(get(&a, "/sub/env.sh").await.status(), 200);
}

#[tokio::test]
async fn missing_directory_and_extensions() {
    let t = tree();
    let a = app(&t.www, config());
    assert_eq!(get(&a, "/cgi-bin/nope.sh/x").await.status(), 404);
    assert_eq!(get(&a, "/cgi-bin/").await.status(), 403);
    assert_eq!(get(&a, "/cgi-bin/env.sh\0x").await.status(), 400);
    let mut c = config();
    c.extensions = Some(vec![".pl".into()]);
    let a = app(&t.cgi, c);
    assert_eq!(get(&a, "/env.sh").await.status(), 403);
    assert_eq!(get(&a, "/env.pl").await.status(), 200);
}

#[test]
fn unusable_roots_are_refused_at_start() {
    let t = tree();
    let refused = |r: Result<CgiApp, Error>| match r {
        Err(Error::Root { why, .. }) => why,
        other => panic!("expected a root error, got {other:?}"),
    };
    assert_eq!(
        refused(CgiApp::new(t.top.join("missing"), config())),
        "cannot be opened"
    );
    assert_eq!(
        refused(CgiApp::new(t.cgi.join("not_exec.sh"), config())),
        Refusal::NotExecutable.as_str()
    );
    fs::set_permissions(&t.cgi, fs::Permissions::from_mode(0o777)).unwrap();
    assert_eq!(
        refused(CgiApp::new(t.cgi.clone(), config())),
        "is world-writable"
    );
    assert_eq!(
        refused(CgiApp::new(t.cgi.join("env.sh"), config())),
        Refusal::WorldWritable.as_str()
    );
    let mut c = config();
    c.allow_world_writable = true;
    assert!(CgiApp::new(t.cgi.clone(), c).is_ok());
}
