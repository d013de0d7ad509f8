//! End-to-end: the configuration (`--config FILE.toml`, `GATEHOUSE_*` variables,
//! `--check-config`, SIGHUP re-reading the file), with the built binary:
//!
//! - a config file that names the listener, the app and a mount is served as it says;
//! - precedence, command line > variable > file > default, on a few options, read from
//!   `--check-config`'s output (each line `key = value  # source`);
//! - each `--check-config` error (unknown key, bad value, TOML syntax error, a variable's bad
//!   value) exits 2 with one line naming the file, line and key;
//! - a `GATEHOUSE_*` variable sets a listener; an unknown one is warned about once (not once per
//!   worker), the binary's own `GATEHOUSE_APP` is not;
//! - with `--workers 2`: SIGHUP after the file names another WSGI app and another mount starts
//!   workers that serve them; SIGHUP after the file is broken logs one error naming the file,
//!   line and key and starts nothing, the workers keep serving, and a worker killed then is
//!   replaced by one with the settings the master last checked (not the broken file).
//!
//! No durations are asserted; every wait is bounded by `support::TIMEOUT`.

mod support;
#[path = "support/workers.rs"]
mod workers_support;

use std::path::Path;
use std::process::Command;

use support::daemon::{self, Daemon};
use support::{kill, wait_for};
use workers_support::{ready_workers, serving_pids, try_get, wait_gone};

/// Runs `gatehouse ARGS --check-config` with the extra environment `env`: status, stdout,
/// stderr.
fn check(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    cmd.args(args)
        .arg("--check-config")
        .envs(env.iter().copied());
    let (status, out, err) = daemon::run(cmd);
    (status.code(), out, err)
}

/// The value and the source of `key` in `--check-config`'s output.
fn effective<'a>(out: &'a str, key: &str) -> (&'a str, &'a str) {
    let line = out
        .lines()
        .find(|l| l.starts_with(&format!("{key} = ")))
        .unwrap_or_else(|| panic!("no `{key} = ` line in:\n{out}"));
    let (assignment, source) = line.split_once("  # ").expect("a source comment");
    let value = assignment[key.len() + 3..].trim_end();
    (value, source.trim())
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

#[test]
fn a_config_file_names_the_listener_and_the_apps() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("gatehouse.toml");
    write(
        &config,
        "# served as it says\n\
         http = [\"127.0.0.1:0\"]\n\
         app = \"echo\"\n\
         mount = \"/env=env\"\n",
    );
    let mut d = Daemon::start(&["--config", config.to_str().expect("utf-8")]);
    let addr = d.listener("http");
    let echo = try_get(&addr, "/some/path?q=1").expect("GET /some/path");
    assert_eq!(echo.status, 200, "{echo:?}");
    let json: serde_json::Value = serde_json::from_str(&echo.body).expect("echo answers JSON");
    assert_eq!(json["path"], "/some/path", "{json}");
    let env = try_get(&addr, "/env/x").expect("GET /env/x");
    assert!(env.body.contains("SCRIPT_NAME=/env"), "{}", env.body);
    assert!(env.body.contains("PATH_INFO=/x"), "{}", env.body);
    assert!(
        d.log().iter().all(|l| !l.contains(":8000")),
        "the file's listener replaces the default ones"
    );
    assert_eq!(d.stop().code(), Some(0));
}

#[test]
fn command_line_beats_variables_beat_the_file_beats_defaults() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("g.toml");
    write(
        &config,
        "cgi-max = 5\n\
         cgi-timeout = \"10s\"\n\
         wsgi-queue = 9\n\
         mount = [\"/a=echo\", \"/b=env\"]\n\
         http = \"127.0.0.1:0\"\n",
    );
    let path = config.to_str().expect("utf-8");
    let env = [
        ("GATEHOUSE_CGI_MAX", "6"),
        ("GATEHOUSE_CGI_TIMEOUT", "20s"),
        ("GATEHOUSE_IDLE_TIMEOUT", "7s"),
    ];
    let (status, out, err) = check(
        &["--config", path, "--cgi-max", "7", "--mount", "/c=hello"],
        &env,
    );
    assert_eq!(status, Some(0), "{err}");
    assert_eq!(effective(&out, "cgi-max"), ("7", "cli"));
    assert_eq!(
        effective(&out, "cgi-timeout"),
        ("\"20s\"", "env GATEHOUSE_CGI_TIMEOUT")
    );
    assert_eq!(
        effective(&out, "idle-timeout"),
        ("\"7s\"", "env GATEHOUSE_IDLE_TIMEOUT")
    );
    assert_eq!(
        effective(&out, "wsgi-queue"),
        ("9", format!("file {path}:3").as_str())
    );
    assert_eq!(
        effective(&out, "http"),
        ("[\"127.0.0.1:0\"]", format!("file {path}:5").as_str())
    );
    // A repeatable option on the command line replaces the file's list.
    assert_eq!(effective(&out, "mount"), ("[\"/c=hello\"]", "cli"));
    assert_eq!(effective(&out, "backlog"), ("1024", "default"));
    assert_eq!(effective(&out, "config").1, "cli");
    // Every option is listed, set or not.
    assert!(out.contains("\n# threads: not set "), "{out}");
    // Without the file, the variable gives the value.
    let (status, out, _) = check(&[], &env);
    assert_eq!(status, Some(0));
    assert_eq!(effective(&out, "cgi-max"), ("6", "env GATEHOUSE_CGI_MAX"));
    assert_eq!(effective(&out, "wsgi-queue").1, "default");
}

#[test]
fn check_config_errors_exit_2_naming_the_file_line_and_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("g.toml");
    let path = config.to_str().expect("utf-8");
    let cases = [
        (
            "workers = 2\ncgi-timout = \"3s\"\n",
            format!("error: {path}:2: unknown key 'cgi-timout'"),
        ),
        (
            "workers = 2\n\ncgi-timeout = \"5 parsecs\"\n",
            format!("error: {path}:3: key 'cgi-timeout': '5 parsecs': unknown unit"),
        ),
        (
            "# a comment\nfastcgi = [\"127.0.0.1:0\", \"9000\"]\n",
            format!("error: {path}:2: key 'fastcgi': bad address '9000'"),
        ),
        (
            "workers = 2\ncgi-timeout = 30s\n",
            format!("error: {path}:2: key 'cgi-timeout': invalid TOML"),
        ),
    ];
    for (text, want) in cases {
        write(&config, text);
        let (status, out, err) = check(&["--config", path], &[]);
        assert_eq!(status, Some(2), "{text:?}: {err}");
        assert!(err.starts_with(&want), "{text:?}: {err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(out.is_empty(), "no settings printed: {out}");
    }
    // What the daemon checks at start-up beyond each value: a CGI root that does not exist.
    write(&config, "mount = [\"/cgi-bin=cgi:/no/such/dir\"]\n");
    let (status, _, err) = check(&["--config", path], &[]);
    assert_eq!(status, Some(2), "{err}");
    assert!(err.contains("/no/such/dir"), "{err}");
    // A variable's bad value names the variable.
    let (status, _, err) = check(&[], &[("GATEHOUSE_WORKERS", "many")]);
    assert_eq!(status, Some(2));
    assert!(err.starts_with("error: GATEHOUSE_WORKERS: 'many'"), "{err}");
}

#[test]
fn variables_set_options_and_unknown_ones_are_warned_about_once() {
    let mut d = Daemon::start_env(
        &["echo", "--workers", "2"],
        &[
            ("GATEHOUSE_HTTP", "127.0.0.1:0"),
            ("GATEHOUSE_NO_SUCH_OPTION", "1"),
            ("GATEHOUSE_APP", "env"),
        ],
    );
    let addr = d.listener("http");
    serving_pids(&d);
    let got = try_get(&addr, "/x").expect("GET /x");
    assert!(got.body.contains("\"path\""), "echo serves: {}", got.body);
    let warned: Vec<String> = d
        .log()
        .into_iter()
        .filter(|l| l.contains("unknown variable"))
        .collect();
    assert_eq!(warned.len(), 1, "warned once, by the master: {warned:?}");
    assert!(warned[0].contains("GATEHOUSE_NO_SUCH_OPTION"), "{warned:?}");
    assert!(!warned[0].contains("GATEHOUSE_APP"), "{warned:?}");
    assert_eq!(d.stop().code(), Some(0));
}

/// A WSGI app file answering `VERSION PID`.
fn app_file(dir: &Path, name: &str, version: &str) -> String {
    let path = dir.join(name);
    write(
        &path,
        &format!(
            "import os\n\n\
             def application(environ, start_response):\n\
             \x20   body = f\"{version} {{os.getpid()}}\\n\".encode()\n\
             \x20   start_response(\"200 OK\", [(\"Content-Type\", \"text/plain\"), \
             (\"Content-Length\", str(len(body)))])\n\
             \x20   return [body]\n"
        ),
    );
    format!("wsgi:{}", path.display())
}

#[test]
fn sighup_rereads_the_file_and_a_broken_file_keeps_the_workers() {
    let dir = tempfile::tempdir().expect("temp dir");
    let v1 = app_file(dir.path(), "one.py", "v1");
    let v2 = app_file(dir.path(), "two.py", "v2");
    let config = dir.path().join("gatehouse.toml");
    let path = config.to_str().expect("utf-8");
    write(
        &config,
        &format!("workers = 2\nhttp = \"127.0.0.1:0\"\nthreads = 2\napp = \"{v1}\"\n"),
    );
    let mut d = Daemon::start(&["--config", path]);
    let addr = d.listener("http");
    let first = serving_pids(&d);
    assert!(try_get(&addr, "/").expect("GET /").body.starts_with("v1 "));
    assert_eq!(try_get(&addr, "/extra/").expect("GET /extra/").status, 200);

    // Another app and a mount: the new generation serves them.
    write(
        &config,
        &format!(
            "workers = 2\nhttp = \"127.0.0.1:0\"\nthreads = 2\napp = \"{v2}\"\n\
             mount = [\"/extra=echo\"]\n"
        ),
    );
    d.signal(libc::SIGHUP);
    let changed = d.wait_log("received SIGHUP: re-read");
    assert!(changed.contains("changed: app, mount"), "{changed}");
    d.wait_log("reload: generation 2 ready");
    // A draining worker may still answer a connection it accepted: wait until they are gone.
    for pid in first {
        wait_gone(pid);
    }
    for _ in 0..10 {
        let got = try_get(&addr, "/").expect("GET / after the reload");
        assert!(got.body.starts_with("v2 "), "{got:?}");
    }
    let echo = try_get(&addr, "/extra/y").expect("GET /extra/y");
    assert!(echo.body.contains("\"path\""), "the new mount: {echo:?}");

    // The file broken: one error naming file, line and key; no generation 3; v2 serves.
    write(
        &config,
        &format!("workers = 2\nhttp = \"127.0.0.1:0\"\nthreads = \"many\"\napp = \"{v1}\"\n"),
    );
    d.signal(libc::SIGHUP);
    let error = d.wait_log("not reloading");
    assert!(
        error.contains(&format!("{path}:3: key 'threads'")),
        "{error}"
    );
    assert!(error.contains("generation 2 keep serving"), "{error}");
    // A worker that dies now is replaced from the master's checked copy of the file.
    let before = ready_workers(&d).len();
    let victim = try_get(&addr, "/").expect("GET /").pid();
    kill(victim, libc::SIGKILL);
    wait_gone(victim);
    wait_for("the replacement worker", || {
        (ready_workers(&d).len() > before).then_some(())
    });
    for _ in 0..10 {
        let got = try_get(&addr, "/").expect("GET / after the broken reload");
        assert!(got.body.starts_with("v2 "), "{got:?}");
    }
    assert_eq!(d.count_log("generation 3"), 0, "no new generation");
    assert_eq!(d.stop().code(), Some(0));
}

#[test]
fn the_example_config_checks_and_names_only_options() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/gatehouse.toml");
    let path = example.to_str().expect("utf-8");
    let (status, out, err) = check(&["--config", path], &[]);
    assert_eq!(status, Some(0), "{err}");
    let text = std::fs::read_to_string(&example).expect("read the example");
    let line = 1 + text
        .lines()
        .position(|l| l.starts_with("workers = "))
        .expect("the example sets workers");
    assert_eq!(effective(&out, "workers").1, format!("file {path}:{line}"));
    // The commented-out settings name options too (`# key = value` lines).
    let commented: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# ")?.split_once(" = "))
        .map(|(key, _)| key.trim())
        .filter(|key| key.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'))
        .collect();
    assert!(commented.len() > 20, "{commented:?}");
    for key in commented {
        let listed = out
            .lines()
            .any(|l| l.starts_with(&format!("{key} = ")) || l.starts_with(&format!("# {key}: ")));
        assert!(listed, "the example names `{key}`, which is no option");
    }
}
