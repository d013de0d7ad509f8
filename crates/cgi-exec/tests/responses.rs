//! What scripts answer, and what they are given: environment, body, status, redirects, errors.

mod support;

use std::ffi::OsString;

use gatehouse_cgi_exec::{CgiApp, Group, User, DEFAULT_PATH};
use gatehouse_channel_request::Output;
use support::{app, config, get, run, tree, Logs};

#[tokio::test]
async fn env_dump_is_clean_and_complete() {
    let t = tree();
    let a = app(&t.cgi, config());
    let ans = run(
        &a,
        &[
            ("REQUEST_METHOD", "GET"),
            ("SCRIPT_NAME", ""),
            ("PATH_INFO", "/env.sh/extra/path"),
            ("QUERY_STRING", "x=1&y"),
            ("SERVER_NAME", "example.test"),
            ("SERVER_PORT", "80"),
            ("REMOTE_ADDR", "192.0.2.7"),
            ("HTTP_USER_AGENT", "curl/8"),
            ("HTTP_PROXY", "http://evil.test:3128"),
            ("CONTENT_LENGTH", ""),
            ("GIT_PROJECT_ROOT", "/srv/git"),
        ],
        b"",
    )
    .await;
    assert_eq!(ans.status(), 200, "{}", ans.text());
    assert_eq!(ans.end, Output::Finish);
    let cgi = t.cgi.display().to_string();
    assert_eq!(
        ans.var("ARGC").as_deref(),
        Some("0"),
        "argv is the script alone"
    );
    assert_eq!(
        ans.var("CWD"),
        Some(cgi.clone()),
        "cwd is the script's directory"
    );
    assert_eq!(ans.var("SCRIPT_NAME").as_deref(), Some("/env.sh"));
    assert_eq!(ans.var("PATH_INFO").as_deref(), Some("/extra/path"));
    assert_eq!(ans.var("SCRIPT_FILENAME"), Some(format!("{cgi}/env.sh")));
    assert_eq!(ans.var("QUERY_STRING").as_deref(), Some("x=1&y"));
    assert_eq!(ans.var("GATEWAY_INTERFACE").as_deref(), Some("CGI/1.1"));
    assert_eq!(ans.var("REQUEST_METHOD").as_deref(), Some("GET"));
    assert_eq!(ans.var("REMOTE_ADDR").as_deref(), Some("192.0.2.7"));
    assert_eq!(ans.var("HTTP_USER_AGENT").as_deref(), Some("curl/8"));
    assert_eq!(ans.var("GIT_PROJECT_ROOT").as_deref(), Some("/srv/git"));
    assert_eq!(ans.var("PATH").as_deref(), Some(DEFAULT_PATH));
    for absent in [
        "HTTP_PROXY",
        "CONTENT_LENGTH",
        "HOME",
        "CARGO_MANIFEST_DIR",
        "PATH_TRANSLATED",
    ] {
        assert_eq!(
            ans.var(absent),
            None,
            "{absent} leaked into the script's environment"
        );
    }
}

#[tokio::test]
async fn listed_daemon_variables_pass() {
    let t = tree();
    let mut c = config();
    c.pass_env = vec![
        OsString::from("CARGO_MANIFEST_DIR"),
        OsString::from("NO_SUCH_VAR_X"),
    ];
    let ans = get(&app(&t.cgi, c), "/env.pl").await;
    assert_eq!(ans.status(), 200);
    assert_eq!(
        ans.var("CARGO_MANIFEST_DIR").as_deref(),
        Some(env!("CARGO_MANIFEST_DIR"))
    );
    assert_eq!(ans.var("NO_SUCH_VAR_X"), None);
    assert_eq!(ans.var("HOME"), None);
}

#[tokio::test]
async fn proxy_header_never_reaches_python() {
    let t = tree();
    let a = app(&t.cgi, config());
    let ans = run(
        &a,
        &[
            ("REQUEST_METHOD", "GET"),
            ("PATH_INFO", "/env.py"),
            ("HTTP_PROXY", "http://evil.test/"),
            ("HTTP_X_OTHER", "kept"),
        ],
        b"",
    )
    .await;
    assert_eq!(ans.status(), 200, "{}", ans.text());
    assert_eq!(
        ans.header("content-type").as_deref(),
        Some("application/json")
    );
    let text = ans.text();
    assert!(!text.contains("HTTP_PROXY"), "{text}");
    assert!(!text.contains("evil.test"), "{text}");
    assert!(text.contains(r#""HTTP_X_OTHER": "kept""#), "{text}");
    let argv = format!(r#""argv": ["{}/env.py"]"#, t.cgi.display());
    assert!(text.contains(&argv), "argv is the script alone: {text}");
}

#[tokio::test]
async fn post_body_echoed_through_stdin() {
    let t = tree();
    let a = app(&t.cgi, config());
    // 4 MiB: far more than the pipes hold, so reading and writing must overlap.
    let body: Vec<u8> = (0..4 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let vars = [
        ("REQUEST_METHOD", "POST"),
        ("PATH_INFO", "/echo.py"),
        ("CONTENT_TYPE", "application/x-test"),
    ];
    let ans = run(&a, &vars, &body).await;
    assert_eq!(ans.status(), 200);
    assert_eq!(ans.header("content-length"), Some(body.len().to_string()));
    assert_eq!(ans.body.len(), body.len());
    assert!(ans.body == body, "echoed body differs");
}

#[tokio::test]
async fn status_header_sets_the_status() {
    let t = tree();
    let ans = get(&app(&t.cgi, config()), "/status.pl").await;
    assert_eq!(ans.status(), 404);
    assert_eq!(ans.head.reason(), b"Nothing Here");
    assert_eq!(ans.header("x-script").as_deref(), Some("status.pl"));
    assert!(ans.head.header("status").is_none());
    assert_eq!(ans.text(), "no such thing\n");
}

#[tokio::test]
async fn local_redirect_runs_the_new_path_as_get_without_body() {
    let t = tree();
    let a = app(&t.cgi, config());
    let vars = [
        ("REQUEST_METHOD", "POST"),
        ("PATH_INFO", "/redirect_local.sh"),
        ("CONTENT_TYPE", "text/plain"),
    ];
    let ans = run(&a, &vars, b"a body the redirect drops").await;
    assert_eq!(ans.status(), 200, "{}", ans.text());
    assert_eq!(ans.var("SCRIPT_NAME").as_deref(), Some("/env.sh"));
    assert_eq!(ans.var("PATH_INFO").as_deref(), Some("/extra"));
    assert_eq!(
        ans.var("QUERY_STRING").as_deref(),
        Some("redirected=1&from=POST")
    );
    assert_eq!(ans.var("REQUEST_METHOD").as_deref(), Some("GET"));
    assert_eq!(ans.var("CONTENT_LENGTH"), None);
    assert_eq!(ans.var("CONTENT_TYPE"), None);
}

#[tokio::test]
async fn local_redirect_loop_is_bounded() {
    let t = tree();
    let logs = Logs::default();
    let _g = logs.install();
    let ans = get(&app(&t.cgi, config()), "/redirect_loop.sh").await;
    assert_eq!(ans.status(), 500);
    assert!(logs.text().contains("local redirects"), "{}", logs.text());
}

#[tokio::test]
async fn client_redirect_is_302() {
    let t = tree();
    let ans = get(&app(&t.cgi, config()), "/redirect_client.pl").await;
    assert_eq!(ans.status(), 302);
    assert_eq!(
        ans.header("location").as_deref(),
        Some("http://example.test/elsewhere?x=1")
    );
    assert_eq!(
        ans.header("x-script").as_deref(),
        Some("redirect_client.pl")
    );
}

#[tokio::test]
async fn malformed_head_is_502_and_logged() {
    let t = tree();
    let logs = Logs::default();
    let _g = logs.install();
    let ans = get(&app(&t.cgi, config()), "/bad_head.sh").await;
    assert_eq!(ans.status(), 502);
    assert!(
        !ans.text().contains("body"),
        "script output must not leak: {}",
        ans.text()
    );
    let log = logs.text();
    assert!(log.contains("malformed response head"), "{log}");
    assert!(log.contains("bad_head.sh"), "{log}");
    assert!(log.contains("request_id"), "{log}");
}

#[tokio::test]
async fn exit_status_before_and_after_output() {
    let t = tree();
    let logs = Logs::default();
    let _g = logs.install();
    let a = app(&t.cgi, config());
    let ans = get(&a, "/no_output.sh").await;
    assert_eq!(ans.status(), 502);
    assert!(
        logs.text().contains("wrote no output (exit status: 3)"),
        "{}",
        logs.text()
    );
    let ans = get(&a, "/fail_after.sh").await;
    assert_eq!((ans.status(), ans.text().as_str()), (200, "done\n"));
    assert_eq!(ans.end, Output::Finish);
    assert!(
        logs.text().contains("failed after a complete response"),
        "{}",
        logs.text()
    );
}

#[tokio::test]
async fn stderr_lines_are_logged_with_the_script() {
    let t = tree();
    let logs = Logs::default();
    let _g = logs.install();
    let ans = get(&app(&t.cgi, config()), "/stderr.sh").await;
    assert_eq!((ans.status(), ans.text().as_str()), (200, "ok\n"));
    logs.wait_for("first complaint from the script").await;
    logs.wait_for(r"second \x01 line").await;
    let line = logs
        .text()
        .lines()
        .find(|l| l.contains("first complaint"))
        .map(str::to_owned)
        .unwrap_or_default();
    assert!(
        line.contains("stderr.sh") && line.contains("request_id"),
        "{line}"
    );
}

#[tokio::test]
async fn file_root_serves_every_path() {
    let t = tree();
    let a = CgiApp::new(t.cgi.join("env.sh"), config()).expect("file root");
    let ans = get(&a, "/repo.git/info/refs").await;
    assert_eq!(ans.status(), 200);
    assert_eq!(ans.var("SCRIPT_NAME").as_deref(), Some(""));
    assert_eq!(ans.var("PATH_INFO").as_deref(), Some("/repo.git/info/refs"));
    // Mounted at /git by the dispatcher: the mount point is SCRIPT_NAME.
    let ans = run(
        &a,
        &[("SCRIPT_NAME", "/git"), ("PATH_INFO", "/repo.git/HEAD")],
        b"",
    )
    .await;
    assert_eq!(ans.var("SCRIPT_NAME").as_deref(), Some("/git"));
    assert_eq!(ans.var("PATH_INFO").as_deref(), Some("/repo.git/HEAD"));
}

#[tokio::test]
async fn nginx_style_parameters() {
    let t = tree();
    let a = app(&t.cgi, config());
    let file = format!("{}/env.sh", t.cgi.display());
    let www = t.www.display().to_string();
    // fastcgi.conf's SCRIPT_FILENAME, fastcgi_params' SCRIPT_NAME = $uri, an extra
    // `fastcgi_param PATH_INFO $uri` (as fcgiwrap setups have), and the dispatcher's rewrite on
    // top: only DOCUMENT_URI still tells the real path.
    let ans = run(
        &a,
        &[
            ("SCRIPT_FILENAME", &file),
            ("DOCUMENT_ROOT", &www),
            ("SCRIPT_NAME", ""),
            ("PATH_INFO", "/cgi-bin/env.sh/p/cgi-bin/env.sh/p"),
            ("DOCUMENT_URI", "/cgi-bin/env.sh/p"),
            ("REQUEST_URI", "/cgi-bin/env.sh/p?q"),
            ("QUERY_STRING", "q"),
        ],
        b"",
    )
    .await;
    assert_eq!(ans.status(), 200, "{}", ans.text());
    assert_eq!(ans.var("SCRIPT_NAME").as_deref(), Some("/cgi-bin/env.sh"));
    assert_eq!(ans.var("PATH_INFO").as_deref(), Some("/p"));
    assert_eq!(ans.var("PATH_TRANSLATED"), Some(format!("{www}/p")));
    // Without SCRIPT_FILENAME: DOCUMENT_ROOT + path, with empty values as nginx sends them.
    let ans = run(
        &a,
        &[
            ("SCRIPT_FILENAME", ""),
            ("DOCUMENT_ROOT", &www),
            ("SCRIPT_NAME", "/cgi-bin/env.sh"),
            ("PATH_INFO", ""),
        ],
        b"",
    )
    .await;
    assert_eq!(ans.status(), 200, "{}", ans.text());
    assert_eq!(ans.var("SCRIPT_NAME").as_deref(), Some("/cgi-bin/env.sh"));
    assert_eq!(ans.var("PATH_INFO"), None);
}

#[tokio::test]
async fn apache_proxy_fcgi_script_filename() {
    let t = tree();
    let a = app(&t.cgi, config());
    let sf = format!(
        "proxy:fcgi://127.0.0.1:9000{}/env.sh/x%20y",
        t.cgi.display()
    );
    let ans = run(
        &a,
        &[
            ("SCRIPT_FILENAME", &sf),
            ("SCRIPT_NAME", "/cgi-bin/env.sh/x y"),
        ],
        b"",
    )
    .await;
    assert_eq!(ans.status(), 200, "{}", ans.text());
    assert_eq!(ans.var("SCRIPT_NAME").as_deref(), Some("/cgi-bin/env.sh"));
    assert_eq!(ans.var("PATH_INFO").as_deref(), Some("/x y"));
}

#[tokio::test]
async fn lighttpd_root_mount_split() {
    let t = tree();
    let a = app(&t.www, config());
    let dir = t.cgi.display().to_string();
    // lighttpd mounted at "/" splits after the first segment and points SCRIPT_FILENAME at it.
    let ans = run(
        &a,
        &[
            ("SCRIPT_FILENAME", &dir),
            ("SCRIPT_NAME", "/cgi-bin"),
            ("PATH_INFO", "/env.sh/z"),
        ],
        b"",
    )
    .await;
    assert_eq!(ans.status(), 200, "{}", ans.text());
    assert_eq!(ans.var("SCRIPT_NAME").as_deref(), Some("/cgi-bin/env.sh"));
    assert_eq!(ans.var("PATH_INFO").as_deref(), Some("/z"));
}

#[tokio::test]
async fn runs_as_the_configured_user() {
    let t = tree();
    let a = app(&t.cgi, config());
    let me = get(&a, "/whoami.sh").await;
    assert_eq!(me.status(), 200);
    if !me.text().starts_with("uid=0 ") {
        eprintln!(
            "not root: switching users cannot be tested here ({})",
            me.text()
        );
        return;
    }
    let mut c = config();
    c.user = Some(User::lookup("nobody").expect("user nobody"));
    let ans = get(&app(&t.cgi, c.clone()), "/whoami.sh").await;
    assert_eq!(ans.status(), 200, "{}", ans.text());
    let nobody = c.user.unwrap();
    let gid = nobody.gid.unwrap();
    assert_eq!(
        ans.text(),
        format!("uid={} gid={gid} groups={gid}\n", nobody.uid)
    );
    // An explicit group wins over the user's primary group; supplementary groups are cleared.
    c.group = Some(Group { gid: 4242 });
    let ans = get(&app(&t.cgi, c), "/whoami.sh").await;
    assert_eq!(
        ans.text(),
        format!("uid={} gid=4242 groups=4242\n", nobody.uid)
    );
}
