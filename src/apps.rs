//! Building what the command line names: each app (built-in, `wsgi:`, `cgi:`) and the
//! [`Dispatcher`] that mounts them.
//!
//! ```text
//!  APP (or $GATEHOUSE_APP as a CGI program, or hello) ──► mounted at /
//!  --mount PREFIX=APP ... ─────────────────────────────► mounted at PREFIX
//!        │ built-in: gatehouse_dispatch::builtin
//!        │ wsgi:     gatehouse_wsgi::WsgiApp::load (imports now: errors exit 2 with the traceback)
//!        │ cgi:      gatehouse_cgi_exec::CgiApp::new (checks the path now: errors exit 2)
//!        ▼
//!  Dispatcher (longest prefix wins; SCRIPT_NAME = prefix, PATH_INFO = the rest)
//! ```
//!
//! Everything here runs before any listener is bound, so an app that cannot start is reported
//! at once, not on the first request.
//!
//! As a CGI program the web server has already split the path: `SCRIPT_NAME` is where the
//! program itself lives (`/cgi-bin/gatehouse`) and `PATH_INFO` the rest. Mount points are then
//! taken below `SCRIPT_NAME`, so an app at `/` sees `SCRIPT_NAME=/cgi-bin/gatehouse` and
//! `PATH_INFO=/x`, as RFC 3875 and PEP 3333 intend (a Flask route `/x` matches), and
//! `--mount /api=echo` serves `/cgi-bin/gatehouse/api/...`.

use std::collections::HashSet;
use std::sync::Arc;

use gatehouse_channel_request::Application;
use gatehouse_dispatch::{builtin, Dispatcher, SpoolConfig, Spooled};

use crate::cli::{AppSpec, Cli, Mount, SpoolApps, DEFAULT_APP};
use crate::error::Error;

/// How the process serves: as a daemon, or as a CGI program (one request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Listeners, accept loops, many requests.
    Daemon,
    /// One request from the environment and stdin (the CGI front end).
    Cgi,
}

/// The app the command line names: APP at `/` (as a CGI program `GATEHOUSE_APP` stands in for
/// a missing APP; without APP and `--mount`, `hello`) and every `--mount`, in one dispatcher.
pub fn build_app(cli: &Cli, mode: Mode) -> Result<Arc<dyn Application>, Error> {
    let mounts = mounts(cli, mode)?;
    warn_unused_options(cli, &mounts);
    let base = match mode {
        Mode::Cgi => cgi_script_name(),
        Mode::Daemon => String::new(),
    };
    let mut dispatcher = Dispatcher::new();
    let mut loaded_python = false;
    for Mount { prefix, app } in &mounts {
        let built = match app {
            AppSpec::Builtin(name) => builtin::by_name(name)
                .ok_or_else(|| Error::Usage(format!("unknown app '{name}'")))?,
            AppSpec::Wsgi(spec) => {
                let app = wsgi::load(spec, cli, mode)?;
                if !loaded_python {
                    loaded_python = true;
                    wsgi::log_interpreter();
                }
                app
            }
            AppSpec::Cgi(path) => cgi_scripts(path, cli)?,
        };
        let built = spooled(built, app, cli)?;
        let prefix = below(&base, prefix);
        tracing::info!("serving {app} at {prefix}");
        dispatcher = dispatcher.mount(&prefix, built);
    }
    Ok(Arc::new(dispatcher))
}

/// `app` wrapped so that its requests reach it with their body read, when `--spool-request-body`
/// says so for its kind.
fn spooled(
    app: Arc<dyn Application>,
    spec: &AppSpec,
    cli: &Cli,
) -> Result<Arc<dyn Application>, Error> {
    let args = &cli.spool;
    let wanted = match args.spool_request_body {
        SpoolApps::Off => false,
        SpoolApps::All => true,
        SpoolApps::Cgi => matches!(spec, AppSpec::Cgi(_)),
    };
    if !wanted {
        return Ok(app);
    }
    let config = SpoolConfig {
        dir: spool_dir(cli)?,
        memory: usize::try_from(args.spool_memory).unwrap_or(usize::MAX),
        max_bytes: args.max_spool_bytes,
    };
    Ok(Arc::new(Spooled::new(app, config)))
}

/// `--spool-dir`, or the system's temp dir; it must be a directory.
pub(crate) fn spool_dir(cli: &Cli) -> Result<std::path::PathBuf, Error> {
    let dir = cli
        .spool
        .spool_dir
        .clone()
        .unwrap_or_else(std::env::temp_dir);
    if !dir.is_dir() {
        return Err(Error::Usage(format!(
            "--spool-dir {}: not a directory (request bodies and answers are spooled there)",
            dir.display()
        )));
    }
    Ok(dir)
}

/// For a WSGI app, where the rest of its body goes when it answers while still reading it
/// (unless `--spool-request-body off`; with `all` the whole body is read before the app runs).
#[cfg(feature = "wsgi")]
fn late_spool(cli: &Cli) -> Result<Option<gatehouse_wsgi::LateSpool>, Error> {
    if cli.spool.spool_request_body == SpoolApps::Off {
        return Ok(None);
    }
    Ok(Some(gatehouse_wsgi::LateSpool {
        dir: spool_dir(cli)?,
        memory: usize::try_from(cli.spool.spool_memory).unwrap_or(usize::MAX),
        max_bytes: cli.spool.max_spool_bytes,
    }))
}

/// What `--check-config` checks of the apps, as [`build_app`] would, without starting any: the
/// mount table, built-in names, CGI roots and users, the spool directory. A `wsgi:` app is not imported (only its
/// spelling was checked, by the command line).
pub(crate) fn check(cli: &Cli, mode: Mode) -> Result<(), Error> {
    for Mount { app, .. } in &mounts(cli, mode)? {
        match app {
            AppSpec::Builtin(name) => {
                builtin::by_name(name)
                    .ok_or_else(|| Error::Usage(format!("unknown app '{name}'")))?;
            }
            AppSpec::Wsgi(_) => {}
            AppSpec::Cgi(path) => {
                cgi_scripts(path, cli)?;
            }
        }
        spooled(Arc::new(Dispatcher::new()), app, cli)?;
    }
    Ok(())
}

/// `app` mounted where a CGI program's requests arrive (`SCRIPT_NAME`): for a program that
/// embeds gatehouse and runs as a CGI program.
pub(crate) fn cgi_dispatcher(app: Arc<dyn Application>) -> Dispatcher {
    Dispatcher::new().mount(&below(&cgi_script_name(), "/"), app)
}

/// This CGI program's own path, `SCRIPT_NAME` (RFC 3875 section 4.1.13), without a trailing
/// `/`; empty when absent or not UTF-8 (then the whole path is matched against the mounts).
fn cgi_script_name() -> String {
    let name = std::env::var_os("SCRIPT_NAME").unwrap_or_default();
    match name.into_string() {
        Ok(name) => name.trim_end_matches('/').to_owned(),
        Err(name) => {
            tracing::warn!(
                script_name = %std::os::unix::ffi::OsStrExt::as_bytes(name.as_os_str()).escape_ascii(),
                "SCRIPT_NAME is not UTF-8: mount points are matched against the whole path"
            );
            String::new()
        }
    }
}

/// Mount point `prefix` (`/` or `/a/b`) below `base` (empty or `/x/y`, no trailing `/`).
fn below(base: &str, prefix: &str) -> String {
    match (base, prefix) {
        ("", _) => prefix.to_owned(),
        (_, "/") => base.to_owned(),
        _ => format!("{base}{prefix}"),
    }
}

/// The mount table: APP (or its stand-in) at `/`, then the `--mount`s. A prefix given twice is
/// a usage error.
fn mounts(cli: &Cli, mode: Mode) -> Result<Vec<Mount>, Error> {
    let root = match (&cli.app, mode) {
        (Some(app), _) => Some(app.clone()),
        (None, Mode::Cgi) => app_from_env()?,
        (None, Mode::Daemon) => None,
    };
    let root = match root {
        None if cli.mount.is_empty() => Some(AppSpec::Builtin(DEFAULT_APP)),
        other => other,
    };
    let mut all: Vec<Mount> = root
        .map(|app| Mount {
            prefix: "/".to_owned(),
            app,
        })
        .into_iter()
        .collect();
    all.extend(cli.mount.iter().cloned());
    let mut seen = HashSet::new();
    for m in &all {
        if !seen.insert(m.prefix.as_str()) {
            let hint = if m.prefix == "/" {
                " (APP is mounted at /)"
            } else {
                ""
            };
            return Err(Error::Usage(format!(
                "mount point {} is given twice{hint}",
                m.prefix
            )));
        }
    }
    Ok(all)
}

/// `GATEHOUSE_APP`, for a CGI program run without arguments.
fn app_from_env() -> Result<Option<AppSpec>, Error> {
    let Some(value) = std::env::var_os(gatehouse_cgi::APP_ENV_VAR) else {
        return Ok(None);
    };
    let value = value.into_string().map_err(|v| {
        Error::Usage(format!(
            "{} is not UTF-8: {}",
            gatehouse_cgi::APP_ENV_VAR,
            v.to_string_lossy()
        ))
    })?;
    if value.is_empty() {
        return Ok(None);
    }
    value
        .parse::<AppSpec>()
        .map(Some)
        .map_err(|e| Error::Usage(format!("{}: {e}", gatehouse_cgi::APP_ENV_VAR)))
}

fn cgi_scripts(path: &std::path::Path, cli: &Cli) -> Result<Arc<dyn Application>, Error> {
    use gatehouse_cgi_exec::{CgiApp, Config, Group, User};

    let args = &cli.cgi_scripts;
    let spec = format!("cgi:{}", path.display());
    let failed = |e: gatehouse_cgi_exec::Error| Error::App {
        spec: spec.clone(),
        message: e.to_string(),
    };
    let config = Config {
        timeout: args.cgi_timeout.map(|d| d.0),
        request_timeout: cli.time_limits.request_timeout.map(|d| d.0),
        max_children: args.cgi_max,
        pass_env: args.cgi_env.iter().map(Into::into).collect(),
        user: args
            .cgi_user
            .as_deref()
            .map(User::lookup)
            .transpose()
            .map_err(failed)?,
        group: args
            .cgi_group
            .as_deref()
            .map(Group::lookup)
            .transpose()
            .map_err(failed)?,
        allow_symlinks: args.cgi_allow_symlinks,
        allow_world_writable: args.cgi_allow_world_writable,
        extensions: args.cgi_extensions.clone(),
        stderr: args.cgi_stderr.into(),
        ..Config::default()
    };
    let app = CgiApp::new(path.to_owned(), config).map_err(failed)?;
    Ok(Arc::new(app))
}

/// Says when options of an app kind are given but no such app is served.
fn warn_unused_options(cli: &Cli, mounts: &[Mount]) {
    let has = |f: fn(&AppSpec) -> bool| mounts.iter().any(|m| f(&m.app));
    let w = &cli.wsgi;
    let wsgi_options = w.threads.is_some() || !w.pythonpath.is_empty() || w.venv.is_some();
    let has_wsgi = has(|a| matches!(a, AppSpec::Wsgi(_)));
    if wsgi_options && !has_wsgi {
        tracing::warn!(
            "--threads, --pythonpath and --venv apply to wsgi: apps, and none is served"
        );
    }
    let t = &cli.time_limits;
    if t.slow_log_timeout.is_some() && !has_wsgi {
        tracing::warn!("--slow-log-timeout applies to wsgi: apps, and none is served");
    }
    if t.request_timeout.is_some() && !has_wsgi && !has(|a| matches!(a, AppSpec::Cgi(_))) {
        tracing::warn!("--request-timeout applies to wsgi: and cgi: apps, and none is served");
    }
    let c = &cli.cgi_scripts;
    let cgi_options = c.cgi_timeout.is_some()
        || !c.cgi_env.is_empty()
        || c.cgi_user.is_some()
        || c.cgi_group.is_some()
        || c.cgi_extensions.is_some();
    if cgi_options && !has(|a| matches!(a, AppSpec::Cgi(_))) {
        tracing::warn!("the --cgi-* script options apply to cgi: apps, and none is served");
    }
}

#[cfg(feature = "wsgi")]
mod wsgi {
    //! `wsgi:` apps, with the `wsgi` feature: an embedded CPython.

    use std::sync::Arc;

    use gatehouse_channel_request::Application;
    use gatehouse_wsgi::{Config, WsgiApp, WsgiSpec};

    use super::Mode;
    use crate::cli::Cli;
    use crate::error::Error;

    pub(super) fn load(spec: &str, cli: &Cli, mode: Mode) -> Result<Arc<dyn Application>, Error> {
        let failed = |message: String| Error::App {
            spec: format!("wsgi:{spec}"),
            message,
        };
        let parsed: WsgiSpec = spec
            .parse()
            .map_err(|e: gatehouse_wsgi::Error| failed(e.to_string()))?;
        let threads = match (cli.wsgi.threads, mode) {
            (Some(n), _) => n,
            // One request per process: one thread, started at once.
            (None, Mode::Cgi) => 1,
            (None, Mode::Daemon) => gatehouse_wsgi::config::default_threads(),
        };
        let config = Config {
            threads,
            queue: cli.wsgi.wsgi_queue,
            pythonpath: cli.wsgi.pythonpath.clone(),
            venv: cli.wsgi.venv.clone(),
            multiprocess: false,
            request_timeout: cli.time_limits.request_timeout.map(|d| d.0),
            slow_log_timeout: cli.time_limits.slow_log_timeout.map(|d| d.0),
            late_spool: super::late_spool(cli)?,
        };
        let app = WsgiApp::load(&parsed, config).map_err(|e| match e {
            gatehouse_wsgi::Error::Import { traceback, .. } => {
                failed(format!("the import failed:\n{}", traceback.trim_end()))
            }
            other => failed(other.to_string()),
        })?;
        tracing::info!(
            "wsgi:{spec}: {} python thread(s), {} queued request(s) at most",
            app.threads(),
            cli.wsgi.wsgi_queue
        );
        Ok(Arc::new(app))
    }

    /// The interpreter's version, prefix and library, once, at start-up.
    pub(super) fn log_interpreter() {
        tracing::info!("python: {}", gatehouse_wsgi::interpreter_info());
    }

    /// Runs `hook` whenever a WSGI thread is stuck past `--request-timeout`.
    pub(crate) fn on_stuck_thread(hook: impl Fn() + Send + Sync + 'static) {
        gatehouse_wsgi::on_stuck_thread(hook);
    }
}

#[cfg(not(feature = "wsgi"))]
mod wsgi {
    //! Without the `wsgi` feature: `wsgi:` is refused by the command line already.

    use std::sync::Arc;

    use gatehouse_channel_request::Application;

    use super::Mode;
    use crate::cli::Cli;
    use crate::error::Error;

    pub(super) fn load(spec: &str, _: &Cli, _: Mode) -> Result<Arc<dyn Application>, Error> {
        Err(Error::Usage(format!(
            "wsgi:{spec}: this gatehouse was built without the `wsgi` feature"
        )))
    }

    pub(super) fn log_interpreter() {}

    /// No WSGI threads, nothing to watch.
    pub(crate) fn on_stuck_thread(_hook: impl Fn() + Send + Sync + 'static) {}
}

pub(crate) use wsgi::on_stuck_thread;

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Cli {
        Cli::try_from_args(std::iter::once("gatehouse").chain(args.iter().copied())).unwrap()
    }

    fn table(args: &[&str], mode: Mode) -> Result<Vec<(String, String)>, Error> {
        Ok(mounts(&cli(args), mode)?
            .into_iter()
            .map(|m| (m.prefix, m.app.to_string()))
            .collect())
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    #[test]
    fn mount_tables() {
        assert_eq!(table(&[], Mode::Daemon).unwrap(), pairs(&[("/", "hello")]));
        assert_eq!(
            table(&["env", "--mount", "/api=echo"], Mode::Daemon).unwrap(),
            pairs(&[("/", "env"), ("/api", "echo")])
        );
        // --mount without APP: nothing at /, unmatched paths get 404.
        assert_eq!(
            table(&["--mount", "/api=echo"], Mode::Daemon).unwrap(),
            pairs(&[("/api", "echo")])
        );
        for args in [
            &["--mount", "/a=echo", "--mount", "/a/=env"][..],
            &["echo", "--mount", "/=env"],
        ] {
            let err = table(args, Mode::Daemon).unwrap_err();
            assert!(
                matches!(&err, Error::Usage(m) if m.contains("given twice")),
                "{err}"
            );
        }
    }

    #[test]
    fn mounts_below_a_cgi_program() {
        assert_eq!(below("", "/"), "/");
        assert_eq!(below("", "/api"), "/api");
        assert_eq!(below("/cgi-bin/gh", "/"), "/cgi-bin/gh");
        assert_eq!(below("/cgi-bin/gh", "/api"), "/cgi-bin/gh/api");
    }

    #[test]
    fn builtins_mount_in_a_dispatcher() {
        let app = build_app(&cli(&["echo", "--mount", "/e=env"]), Mode::Daemon);
        assert!(app.is_ok());
    }

    #[test]
    fn a_cgi_root_that_does_not_exist_is_an_app_error() {
        let err = build_app(&cli(&["cgi:/no/such/dir/gatehouse"]), Mode::Daemon)
            .err()
            .unwrap();
        assert_eq!(err.exit_code(), 2, "{err}");
        assert!(err.to_string().contains("/no/such/dir/gatehouse"), "{err}");
        let err = build_app(
            &cli(&["cgi:/tmp", "--cgi-user", "no-such-user-gh"]),
            Mode::Daemon,
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("no-such-user-gh"), "{err}");
    }
}
