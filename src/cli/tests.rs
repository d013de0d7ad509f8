//! Unit tests of the command line: defaults, repeats, usage errors, the embedded form, ISINDEX
//! arguments, and clap's own consistency checks.

use std::time::Duration;

use super::*;
use settings::{Failure, Inputs};

fn parse(args: &[&str]) -> Result<Cli, u8> {
    Cli::try_from_args(std::iter::once("gatehouse").chain(args.iter().copied()))
}

fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

#[test]
fn defaults() {
    let cli = parse(&[]).unwrap();
    assert_eq!(cli.app, None);
    assert!(cli.mount.is_empty());
    assert!(!cli.cgi);
    assert!(!cli.listen.any());
    assert_eq!(cli.listen.backlog, DEFAULT_BACKLOG);
    assert_eq!(cli.run.drain_timeout.0, Duration::from_secs(30));
    assert_eq!(cli.run.runtime_threads, None);
    assert_eq!(
        parse(&["--runtime-threads", "1"]).map(|c| c.run.runtime_threads),
        Ok(Some(1))
    );
    assert_eq!(cli.process.workers, 1);
    assert!(!cli.process.wants_master());
    assert!(parse(&["--workers", "2"]).unwrap().process.wants_master());
    assert!(parse(&["--master"]).unwrap().process.wants_master());
    assert_eq!(cli.process.max_requests, 0);
    let d = gatehouse_fastcgi::Config::default();
    assert_eq!(cli.limits.max_conns, d.max_conns);
    assert_eq!(cli.limits.idle_timeout.0, d.idle_timeout);
    let s = gatehouse_scgi::Config::default();
    assert_eq!(cli.scgi.scgi_max_header_bytes, s.max_header_bytes);
    assert_eq!(cli.scgi.scgi_header_timeout.0, s.header_timeout);
    assert_eq!(cli.scgi.scgi_idle_timeout.0, s.idle_timeout);
    assert!(!cli.scgi.scgi_strict_duplicates);
    let u = gatehouse_uwsgi::Config::default();
    assert_eq!(cli.uwsgi.uwsgi_max_vars_bytes, u.max_vars_bytes);
    assert_eq!(cli.uwsgi.uwsgi_header_timeout.0, u.header_timeout);
    assert_eq!(cli.uwsgi.uwsgi_idle_timeout.0, u.idle_timeout);
    assert!(cli.listen.uwsgi.is_empty(), "no default uwsgi listener");
    let h = gatehouse_http::Config::default();
    assert_eq!(cli.http.http_max_header_bytes, h.max_header_bytes);
    assert_eq!(cli.http.http_max_headers, h.max_headers);
    assert_eq!(cli.http.http_header_timeout.0, h.header_read_timeout);
    assert_eq!(cli.http.http_idle_timeout.0, h.idle_timeout);
    assert_eq!(cli.wsgi.threads, None);
    assert_eq!(
        cli.cgi_scripts.cgi_max,
        gatehouse_cgi_exec::DEFAULT_MAX_CHILDREN
    );
    assert_eq!(cli.cgi_scripts.cgi_timeout, None);
    assert_eq!(cli.cgi_scripts.cgi_stderr, CgiStderr::Log);
    assert_eq!(
        gatehouse_cgi_exec::StderrMode::from(cli.cgi_scripts.cgi_stderr),
        gatehouse_cgi_exec::Config::default().stderr
    );
}

#[test]
fn listeners_and_mounts_repeat() {
    let cli = parse(&[
        "echo",
        "--fastcgi",
        "127.0.0.1:0",
        "--fastcgi",
        "unix:/tmp/x",
        "--scgi",
        "127.0.0.1:0",
        "--http",
        "[::1]:0",
        "--http",
        "fd:3",
        "--mount",
        "/a=env",
        "--mount",
        "/b/=cgi:/srv/cgi-bin",
        "--pythonpath",
        "/x",
        "--pythonpath",
        "/y",
        "--cgi-env",
        "TZ",
        "--cgi-env",
        "LANG",
        "--cgi-extensions",
        "cgi,.sh",
    ])
    .unwrap();
    assert_eq!(cli.app, Some(AppSpec::Builtin("echo")));
    assert_eq!(cli.listen.fastcgi.len(), 2);
    assert_eq!(cli.listen.scgi.len(), 1);
    assert_eq!(cli.listen.http.len(), 2);
    assert_eq!(cli.mount.len(), 2);
    assert_eq!(cli.mount[1].prefix, "/b");
    assert_eq!(cli.wsgi.pythonpath.len(), 2);
    assert_eq!(cli.cgi_scripts.cgi_env, ["TZ", "LANG"]);
    assert_eq!(
        cli.cgi_scripts.cgi_extensions,
        Some(vec!["cgi".to_owned(), "sh".to_owned()])
    );
}

#[test]
fn cgi_stderr_modes() {
    let mode = |m: &str| parse(&["--cgi-stderr", m]).map(|c| c.cgi_scripts.cgi_stderr);
    assert_eq!(mode("fastcgi"), Ok(CgiStderr::FastCgi));
    assert_eq!(mode("log"), Ok(CgiStderr::Log));
    assert_eq!(
        gatehouse_cgi_exec::StderrMode::from(CgiStderr::FastCgi),
        gatehouse_cgi_exec::StderrMode::FastCgi
    );
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["nope"][..],
        &["--fastcgi", "9000"],
        &["--scgi", "unix:"],
        &["--http", "localhost"],
        &["--socket-mode", "999"],
        &["--backlog", "0"],
        &["--drain-timeout", "5 parsecs"],
        &["--web-server-addrs", "10.0.0.300"],
        &["--log-level", "info,=[="],
        &["--scgi-max-header-bytes", "10"],
        &["--scgi-header-timeout", "0"],
        &["--uwsgi", "3031"],
        &["--uwsgi-max-vars-bytes", "10"],
        &["--uwsgi-max-vars-bytes", "65536"],
        &["--uwsgi-idle-timeout", "0s"],
        &["--http-max-headers", "0"],
        &["--http-idle-timeout", "0ms"],
        &["--threads", "0"],
        &["--runtime-threads", "0"],
        &["--workers", "2000"],
        &["--max-worker-memory", "12X"],
        &["--cgi-timeout", "0s"],
        &["--cgi-extensions", ","],
        &["--cgi-stderr", "syslog"],
        &["--mount", "api=echo"],
        &["--mount", "/api=nope"],
        &["--cgi", "--http", "127.0.0.1:0"],
        &["--fastcgi", "fd:5", "--http", "fd:5"],
        &["--no-such-flag"],
        &["cgi:"],
    ] {
        assert_eq!(parse(args).unwrap_err(), 2, "{args:?}");
    }
}

#[test]
fn embedded_refuses_app_options() {
    let embedded = |args: &[&str]| {
        Cli::try_from_args_embedded(std::iter::once("/x/my-app").chain(args.iter().copied()))
    };
    assert!(embedded(&["--fastcgi", "127.0.0.1:0", "--http", "127.0.0.1:0"]).is_ok());
    assert!(embedded(&["--cgi"]).is_ok());
    for args in [
        &["echo"][..],
        &["--mount", "/a=echo"],
        &["--threads", "2"],
        &["--cgi-max", "3"],
    ] {
        assert_eq!(embedded(args).unwrap_err(), 2, "{args:?}");
    }
}

#[test]
fn isindex_words_from_the_web_server_are_dropped() {
    let q = |s: &str| Some(OsString::from(s));
    // Apache runs `gatehouse env` for GET /cgi-bin/gatehouse?env.
    let args = without_isindex_args(os(&["gatehouse", "env"]), q("env").as_deref());
    assert_eq!(args, os(&["gatehouse"]));
    let args = without_isindex_args(os(&["gatehouse", "a b", "c"]), q("a%20b+c").as_deref());
    assert_eq!(args, os(&["gatehouse"]));
    // The operator's own arguments stay: a wrapper's `--cgi echo` is not the query's `echo`.
    let args = without_isindex_args(os(&["gatehouse", "--cgi", "echo"]), q("echo").as_deref());
    assert_eq!(args, os(&["gatehouse", "--cgi", "echo"]));
    // A query with `=` carries no arguments; outside a CGI environment nothing is dropped.
    let args = without_isindex_args(os(&["gatehouse", "echo"]), q("a=echo").as_deref());
    assert_eq!(args, os(&["gatehouse", "echo"]));
    let args = without_isindex_args(os(&["gatehouse", "echo"]), None);
    assert_eq!(args, os(&["gatehouse", "echo"]));
}

#[test]
fn help_is_consistent() {
    Cli::command().debug_assert();
    let embedded = Cli::try_from_args_embedded(["x", "--help"]);
    assert_eq!(embedded.unwrap_err(), 0);
}

#[test]
fn time_limits() {
    let cli = parse(&[]).unwrap();
    assert_eq!(cli.time_limits.request_timeout, None);
    assert_eq!(cli.time_limits.slow_log_timeout, None);
    let cli = parse(&["--request-timeout", "30s", "--slow-log-timeout", "500ms"]).unwrap();
    assert_eq!(
        cli.time_limits.request_timeout.map(|d| d.0),
        Some(Duration::from_secs(30))
    );
    assert_eq!(
        cli.time_limits.slow_log_timeout.map(|d| d.0),
        Some(Duration::from_millis(500))
    );
    for bad in ["0", "soon", "-1s"] {
        assert_eq!(parse(&["--request-timeout", bad]).err(), Some(2), "{bad}");
        assert_eq!(parse(&["--slow-log-timeout", bad]).err(), Some(2), "{bad}");
    }
}

/// Parses `args` with the environment `vars` and, for `--config`, the files of `files`.
fn parse_with(
    args: &[&str],
    vars: &[(&str, &str)],
    files: &[(&str, &str)],
) -> Result<Cli, Failure> {
    let files: Vec<(String, String)> = files
        .iter()
        .map(|(p, t)| ((*p).to_owned(), (*t).to_owned()))
        .collect();
    let read = move |path: &std::path::Path| {
        files
            .iter()
            .find(|(p, _)| std::path::Path::new(p) == path)
            .map(|(_, t)| t.clone())
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
    };
    let inputs = Inputs {
        args: std::iter::once("gatehouse")
            .chain(args.iter().copied())
            .map(OsString::from)
            .collect(),
        vars: vars
            .iter()
            .map(|(n, v)| (OsString::from(n), OsString::from(v)))
            .collect(),
        read: &read,
    };
    Cli::parse_inputs(Cli::command(), &inputs, false)
}

fn source(cli: &Cli, key: &str) -> String {
    cli.settings.get(key).expect(key).source.to_string()
}

fn usage(result: Result<Cli, Failure>) -> String {
    match result {
        Err(Failure::Usage(msg)) => msg,
        Err(Failure::Clap(e)) => panic!("a clap error, not a usage error: {e}"),
        Ok(_) => panic!("parsed"),
    }
}

const FILE: &str = "\
cgi-max = 5
cgi-timeout = \"10s\"
wsgi-queue = 9
mount = [\"/a=echo\", \"/b=env\"]
pythonpath = \"/srv/lib\"
scgi-strict-duplicates = true
app = \"env\"
";

#[test]
fn command_line_beats_variables_beat_the_file_beats_defaults() {
    let vars = [("GATEHOUSE_CGI_MAX", "6"), ("GATEHOUSE_CGI_TIMEOUT", "20s")];
    let cli = parse_with(
        &["--config", "/etc/g.toml", "--cgi-max", "7"],
        &vars,
        &[("/etc/g.toml", FILE)],
    )
    .unwrap();
    assert_eq!(cli.cgi_scripts.cgi_max, 7);
    assert_eq!(source(&cli, "cgi-max"), "cli");
    assert_eq!(
        cli.cgi_scripts.cgi_timeout.map(|d| d.0),
        Some(Duration::from_secs(20))
    );
    assert_eq!(source(&cli, "cgi-timeout"), "env GATEHOUSE_CGI_TIMEOUT");
    assert_eq!(cli.wsgi.wsgi_queue, 9);
    assert_eq!(source(&cli, "wsgi-queue"), "file /etc/g.toml:3");
    assert_eq!(cli.listen.backlog, DEFAULT_BACKLOG);
    assert_eq!(source(&cli, "backlog"), "default");
    // Arrays, a single value for a repeatable option, flags and the positional APP.
    assert_eq!(cli.mount.len(), 2);
    assert_eq!(cli.wsgi.pythonpath, [PathBuf::from("/srv/lib")]);
    assert!(cli.scgi.scgi_strict_duplicates);
    assert_eq!(cli.app, Some(AppSpec::Builtin("env")));
    assert_eq!(source(&cli, "app"), "file /etc/g.toml:7");
    assert_eq!(
        cli.settings.file(),
        Some(std::path::Path::new("/etc/g.toml"))
    );
    assert_eq!(cli.settings.file_text(), Some(FILE));
}

#[test]
fn a_repeatable_option_on_the_command_line_replaces_the_file_list() {
    let files = [("g.toml", FILE)];
    let cli = parse_with(&["--config", "g.toml", "--mount", "/c=hello"], &[], &files).unwrap();
    assert_eq!(cli.mount.len(), 1);
    assert_eq!(cli.mount[0].prefix, "/c");
    let cli = parse_with(&["--config", "g.toml", "echo"], &[], &files).unwrap();
    assert_eq!(cli.app, Some(AppSpec::Builtin("echo")));
    // A variable replaces the file's list too; its values are split at whitespace.
    let vars = [
        ("GATEHOUSE_MOUNT", " /x=echo\t/y=env "),
        ("GATEHOUSE_CONFIG", "g.toml"),
    ];
    let cli = parse_with(&[], &vars, &files).unwrap();
    let prefixes: Vec<&str> = cli.mount.iter().map(|m| m.prefix.as_str()).collect();
    assert_eq!(prefixes, ["/x", "/y"]);
    assert_eq!(source(&cli, "config"), "env GATEHOUSE_CONFIG");
}

#[test]
fn variables_take_flags_lists_and_ignore_empty_values() {
    let vars = [
        ("GATEHOUSE_SCGI_STRICT_DUPLICATES", "yes"),
        ("GATEHOUSE_HTTP", "127.0.0.1:0 [::1]:0"),
        ("GATEHOUSE_THREADS", ""),
        ("GATEHOUSE_WORKERS", "2"),
    ];
    let cli = parse_with(&[], &vars, &[]).unwrap();
    assert!(cli.scgi.scgi_strict_duplicates);
    assert_eq!(cli.listen.http.len(), 2);
    assert_eq!(cli.wsgi.threads, None);
    assert_eq!(cli.process.workers, 2);
    // A flag the file sets is turned off by its variable.
    let files = [("g.toml", FILE)];
    let vars = [("GATEHOUSE_SCGI_STRICT_DUPLICATES", "off")];
    let cli = parse_with(&["--config", "g.toml"], &vars, &files).unwrap();
    assert!(!cli.scgi.scgi_strict_duplicates);
}

#[test]
fn bad_values_name_their_variable_or_file_line_and_key() {
    let msg = usage(parse_with(
        &[],
        &[("GATEHOUSE_CGI_TIMEOUT", "5 parsecs")],
        &[],
    ));
    assert!(msg.starts_with("GATEHOUSE_CGI_TIMEOUT: "), "{msg}");
    let msg = usage(parse_with(&[], &[("GATEHOUSE_CGI", "maybe")], &[]));
    assert!(
        msg.contains("GATEHOUSE_CGI: 'maybe' is not true or false"),
        "{msg}"
    );
    let cases = [
        (
            "workers = 2\ncgi-timout = \"3s\"\n",
            "g.toml:2: unknown key 'cgi-timout'",
        ),
        (
            "\n\ncgi-stderr = \"syslog\"\n",
            "g.toml:3: key 'cgi-stderr': invalid value 'syslog'",
        ),
        ("workers = 5000\n", "g.toml:1: key 'workers': "),
        ("workers = \"two\"\n", "g.toml:1: key 'workers': "),
        ("fastcgi = [9000]\n", "g.toml:1: key 'fastcgi': "),
        (
            "workers = [2]\n",
            "g.toml:1: key 'workers': takes one value",
        ),
        (
            "cgi = \"yes\"\n",
            "g.toml:1: key 'cgi': a flag takes true or false",
        ),
        (
            "idle-timeout = 1.5\n",
            "g.toml:1: key 'idle-timeout': expected a string or an integer",
        ),
        (
            "[mount]\napi = \"echo\"\n",
            "g.toml:1: key 'mount': a table is not an option",
        ),
        (
            "workers = 2\ncgi-timeout = 30s\n",
            "g.toml:2: key 'cgi-timeout': invalid TOML",
        ),
        ("workers = 2\nworkers = 3\n", "g.toml:2: "),
        (
            "config = \"other.toml\"\n",
            "g.toml:1: unknown key 'config': it cannot be set",
        ),
        ("help = true\n", "g.toml:1: unknown key 'help'"),
    ];
    for (text, want) in cases {
        let msg = usage(parse_with(
            &["--config", "g.toml"],
            &[],
            &[("g.toml", text)],
        ));
        assert!(msg.starts_with(want), "{text:?}: {msg}");
        assert!(!msg.contains('\n'), "{msg}");
    }
    let msg = usage(parse_with(&["--config", "none.toml"], &[], &[]));
    assert!(
        msg.starts_with("none.toml: cannot read the config file"),
        "{msg}"
    );
}

#[test]
fn conflicts_are_checked_across_sources() {
    let files = [("g.toml", "cgi = true\n")];
    let msg = usage(parse_with(
        &["--config", "g.toml", "--http", "127.0.0.1:0"],
        &[],
        &files,
    ));
    assert_eq!(
        msg,
        "--cgi (file g.toml:1) cannot be used with --http (cli)"
    );
    let msg = usage(parse_with(
        &["--cgi"],
        &[("GATEHOUSE_FASTCGI", "127.0.0.1:0")],
        &[],
    ));
    assert!(msg.contains("(env GATEHOUSE_FASTCGI)"), "{msg}");
    // A flag set to false is not "given".
    let files = [("g.toml", "cgi = false\nhttp = \"127.0.0.1:0\"\n")];
    assert!(parse_with(&["--config", "g.toml"], &[], &files).is_ok());
}

#[test]
fn a_worker_parses_its_masters_copy_of_the_file() {
    let vars = [
        (crate::worker::ENV_WORKER, "1 1 3 0"),
        (crate::worker::ENV_CONFIG, "wsgi-queue = 3\n"),
        ("GATEHOUSE_NO_SUCH_OPTION", "1"),
    ];
    let files = [("g.toml", "wsgi-queue = 4\n")];
    let cli = parse_with(&["--config", "g.toml"], &vars, &files).unwrap();
    assert_eq!(cli.wsgi.wsgi_queue, 3);
    // The master warned about unknown variables already.
    assert!(cli.settings.unknown_env().is_empty());
    // Not a worker: the snapshot variable is not an option, and the file on disk is read.
    let cli = parse_with(&["--config", "g.toml"], &vars[1..], &files).unwrap();
    assert_eq!(cli.wsgi.wsgi_queue, 4);
    assert_eq!(cli.settings.unknown_env(), ["GATEHOUSE_NO_SUCH_OPTION"]);
}

#[test]
fn every_option_has_a_key_and_a_variable_that_no_internal_variable_shadows() {
    let keys = keys::keys(&Cli::command());
    let long_options = Cli::command()
        .get_arguments()
        .filter(|a| a.get_long().is_some())
        .count();
    // Every long option but --check-config (an action).
    assert_eq!(
        keys.iter().filter(|k| k.var.is_some()).count(),
        long_options - 1
    );
    for key in &keys {
        if let Some(var) = &key.var {
            assert!(!keys::INTERNAL_ENV.contains(&var.as_str()), "{var}");
        }
        assert_eq!(key.in_file, key.name != "config", "{}", key.name);
    }
    assert!(keys.iter().any(|k| k.name == "app" && k.var.is_none()));
    let cli = parse(&[]).unwrap();
    for key in crate::master::MASTER_SETTINGS {
        assert!(
            cli.settings.get(key).is_some(),
            "MASTER_SETTINGS names no option {key}"
        );
    }
}

#[test]
fn effective_settings_read_back_as_the_same_settings() {
    let files = [("g.toml", FILE)];
    let cli = parse_with(&["--config", "g.toml", "--workers", "3"], &[], &files).unwrap();
    let mut out = Vec::new();
    cli.settings.write_effective(&mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("\nworkers = 3 "), "{text}");
    assert!(text.contains("\ncgi-timeout = \"10s\" "), "{text}");
    assert!(text.contains("\n# threads: not set "), "{text}");
    // Without the `config` line, the output is a config file giving the same settings.
    let again: String = text
        .lines()
        .filter(|l| !l.starts_with("config ="))
        .map(|l| format!("{l}\n"))
        .collect();
    let reread = parse_with(&["--config", "out.toml"], &[], &[("out.toml", &again)]).unwrap();
    for s in cli.settings.iter().filter(|s| s.key != "config") {
        assert_eq!(
            reread.settings.get(&s.key).map(|r| &r.values),
            Some(&s.values),
            "{}",
            s.key
        );
    }
    assert_eq!(cli.settings.changed(&reread.settings), ["config"]);
}

#[test]
fn the_embedded_form_refuses_app_options_from_any_source() {
    let inputs = Inputs {
        args: vec!["my-app".into(), "--config".into(), "g.toml".into()],
        vars: Vec::new(),
        read: &|_| Ok("threads = 2\n".to_owned()),
    };
    let cmd = embedded_command(&inputs.args);
    let msg = usage(Cli::parse_inputs(cmd, &inputs, true));
    assert!(
        msg.contains("takes no --threads option (file g.toml:1)"),
        "{msg}"
    );
}
