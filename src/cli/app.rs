//! What to serve: the APP argument (`hello`, `echo`, `env`, `wsgi:...`, `cgi:PATH`), the
//! `--mount PREFIX=APP` options, and the options of the WSGI and CGI-script apps.
//!
//! Only the spelling is checked here (a usage error, exit 2, before anything starts); loading a
//! WSGI app or checking a CGI directory happens in [`crate::apps`].

use std::fmt;
use std::path::PathBuf;

use clap::{ArgAction, Args, ValueEnum};

use super::values::{at_least_one, parse_extension, parse_timeout, HumanDuration};

/// An app, as APP or the right-hand side of `--mount` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppSpec {
    /// A built-in app of `gatehouse_dispatch::builtin`.
    Builtin(&'static str),
    /// `wsgi:MODULE[:CALLABLE]` or `wsgi:path/to/file.py[:CALLABLE]`: the text after `wsgi:`.
    Wsgi(String),
    /// `cgi:PATH`: a directory of CGI scripts, or one CGI program for every request.
    Cgi(PathBuf),
}

impl fmt::Display for AppSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Builtin(name) => f.write_str(name),
            Self::Wsgi(spec) => write!(f, "wsgi:{spec}"),
            Self::Cgi(path) => write!(f, "cgi:{}", path.display()),
        }
    }
}

impl std::str::FromStr for AppSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        parse_app(s)
    }
}

/// `--mount PREFIX=APP`: `app` serves the paths under `prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The mount point: `/` or `/a/b` (no trailing `/`).
    pub prefix: String,
    /// The app mounted there.
    pub app: AppSpec,
}

/// The options of `wsgi:` apps.
#[derive(Debug, Clone, Args)]
pub struct WsgiArgs {
    /// Python threads per WSGI app [default: 2 per core, 4 to 32; 1 under --cgi].
    ///
    /// Requests beyond them wait in a queue (--wsgi-queue); the GIL is released while a thread
    /// waits for the client.
    #[arg(long, value_name = "N", value_parser = at_least_one())]
    pub threads: Option<usize>,

    /// Requests waiting for a free Python thread; one more gets 503.
    #[arg(long, value_name = "N", default_value_t = wsgi_default_queue())]
    pub wsgi_queue: usize,

    /// A directory to put first on Python's sys.path (repeatable).
    #[arg(long, value_name = "DIR", action = ArgAction::Append)]
    pub pythonpath: Vec<PathBuf>,

    /// The virtualenv whose packages the app imports [default: $VIRTUAL_ENV].
    #[arg(long, value_name = "DIR")]
    pub venv: Option<PathBuf>,
}

/// The time limits of `wsgi:` and `cgi:` apps (uWSGI's harakiri, php-fpm's
/// `request_terminate_timeout` and `request_slowlog_timeout`).
#[derive(Debug, Clone, Args)]
pub struct TimeLimitArgs {
    /// Answer 504 to a request still running after this long, and free its thread or process
    /// [default: no limit].
    ///
    /// Counted from when the app admits the request: time waiting in the queue counts, and a
    /// request whose time runs out while queued is answered without running. WSGI: the Python
    /// traceback of the thread is logged and an exception is raised in it; a thread blocked in
    /// native code (time.sleep, a socket read) is replaced by a fresh one (at most --threads
    /// of them) and, with --workers, the worker is recycled. CGI scripts: the process group is
    /// killed (--cgi-timeout stays the limit on idle time). A response already begun is cut.
    #[arg(long, value_name = "DURATION", value_parser = parse_timeout)]
    pub request_timeout: Option<HumanDuration>,

    /// Log the Python traceback of a WSGI request still running after this long, once, and let
    /// it go on [default: off].
    #[arg(long, value_name = "DURATION", value_parser = parse_timeout)]
    pub slow_log_timeout: Option<HumanDuration>,
}

/// The options of `cgi:PATH` apps (CGI scripts run per request, as fcgiwrap does).
#[derive(Debug, Clone, Args)]
pub struct CgiScriptArgs {
    /// Kill a script that makes no progress for this long [default: no limit].
    ///
    /// Progress: a byte from its stdout or to its stdin. Its process group gets SIGTERM, then
    /// SIGKILL.
    #[arg(long, value_name = "DURATION", value_parser = parse_timeout)]
    pub cgi_timeout: Option<HumanDuration>,

    /// Scripts running at once; more requests wait for a slot (0: no limit).
    #[arg(long, value_name = "N", default_value_t = gatehouse_cgi_exec::DEFAULT_MAX_CHILDREN)]
    pub cgi_max: usize,

    /// Pass this variable of gatehouse's own environment to scripts (repeatable).
    ///
    /// Scripts get a clean environment built from the request, PATH=/usr/local/bin:/usr/bin:/bin,
    /// and nothing else unless listed here.
    #[arg(long, value_name = "NAME", action = ArgAction::Append)]
    pub cgi_env: Vec<String>,

    /// Run scripts as this user (name or uid; gatehouse must run as root).
    #[arg(long, value_name = "USER")]
    pub cgi_user: Option<String>,

    /// Run scripts with this group (name or gid) [default: the user's primary group].
    #[arg(long, value_name = "GROUP")]
    pub cgi_group: Option<String>,

    /// Allow symlinks that lead out of the CGI directory.
    #[arg(long)]
    pub cgi_allow_symlinks: bool,

    /// Allow world-writable scripts and script directories.
    #[arg(long)]
    pub cgi_allow_world_writable: bool,

    /// Only run scripts with these extensions (comma-separated, e.g. cgi,sh,pl).
    #[arg(long, value_name = "EXT,EXT,...", value_delimiter = ',',
          value_parser = parse_extension)]
    pub cgi_extensions: Option<Vec<String>>,

    /// Where scripts' stderr goes.
    ///
    /// log: gatehouse's log, one warning per line, tagged with the script and the request.
    /// fastcgi: for requests that came over FastCGI, to the web server as the request's
    /// FCGI_STDERR stream, as `fcgiwrap -f` does (nginx writes it to its error log: "FastCGI
    /// sent in stderr"), and not to gatehouse's log; the response then ends once the script's
    /// stderr is closed (at most 1s after the script exited). Other front ends have no such
    /// stream: there it is logged as with log.
    #[arg(long, value_name = "MODE", value_enum, default_value_t = CgiStderr::Log)]
    pub cgi_stderr: CgiStderr,
}

/// `--cgi-stderr MODE`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum CgiStderr {
    /// gatehouse's log, one warning per line.
    #[default]
    Log,
    /// FCGI_STDERR records under FastCGI (the web server's error log); logged otherwise.
    #[value(name = "fastcgi")]
    FastCgi,
}

impl From<CgiStderr> for gatehouse_cgi_exec::StderrMode {
    fn from(mode: CgiStderr) -> Self {
        match mode {
            CgiStderr::Log => Self::Log,
            CgiStderr::FastCgi => Self::FastCgi,
        }
    }
}

#[cfg(feature = "wsgi")]
fn wsgi_default_queue() -> usize {
    gatehouse_wsgi::config::DEFAULT_QUEUE
}

#[cfg(not(feature = "wsgi"))]
fn wsgi_default_queue() -> usize {
    64
}

/// APP: a built-in name, `wsgi:...` or `cgi:PATH`.
pub(crate) fn parse_app(s: &str) -> Result<AppSpec, String> {
    if let Some(&name) = gatehouse_dispatch::builtin::NAMES.iter().find(|&&n| n == s) {
        return Ok(AppSpec::Builtin(name));
    }
    if let Some(spec) = s.strip_prefix("wsgi:") {
        return parse_wsgi(spec).map(|()| AppSpec::Wsgi(spec.to_owned()));
    }
    if let Some(path) = s.strip_prefix("cgi:") {
        if path.is_empty() {
            return Err("'cgi:' needs a path: cgi:/usr/lib/cgi-bin or cgi:/path/to/program".into());
        }
        return Ok(AppSpec::Cgi(PathBuf::from(path)));
    }
    Err(format!(
        "unknown app '{s}': the built-in apps are {}, or use wsgi:MODULE[:CALLABLE], \
         wsgi:path/to/file.py or cgi:PATH",
        gatehouse_dispatch::builtin::NAMES.join(", ")
    ))
}

#[cfg(feature = "wsgi")]
fn parse_wsgi(spec: &str) -> Result<(), String> {
    spec.parse::<gatehouse_wsgi::WsgiSpec>()
        .map(drop)
        .map_err(|e| e.to_string())
}

#[cfg(not(feature = "wsgi"))]
fn parse_wsgi(_spec: &str) -> Result<(), String> {
    Err(
        "'wsgi:' apps need Python support, and this gatehouse was built without the `wsgi` \
         feature"
            .into(),
    )
}

/// `--mount PREFIX=APP`.
pub(crate) fn parse_mount(s: &str) -> Result<Mount, String> {
    let Some((prefix, app)) = s.split_once('=') else {
        return Err(format!("'{s}' is not PREFIX=APP (like /api=echo)"));
    };
    if !prefix.starts_with('/') {
        return Err(format!("mount point '{prefix}' must start with '/'"));
    }
    if prefix.contains(['?', '#', '%']) || prefix.chars().any(char::is_whitespace) {
        return Err(format!(
            "mount point '{prefix}' may not hold '?', '#', '%' or spaces"
        ));
    }
    if prefix.split('/').any(|seg| seg == "." || seg == "..") {
        return Err(format!(
            "mount point '{prefix}' may not hold '.' or '..' segments"
        ));
    }
    let trimmed = prefix.trim_end_matches('/');
    Ok(Mount {
        prefix: if trimmed.is_empty() { "/" } else { trimmed }.to_owned(),
        app: parse_app(app)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_forms() {
        assert_eq!(parse_app("echo").unwrap(), AppSpec::Builtin("echo"));
        assert_eq!(
            parse_app("cgi:/usr/lib/cgi-bin").unwrap(),
            AppSpec::Cgi("/usr/lib/cgi-bin".into())
        );
        assert!(parse_app("cgi:").is_err());
        assert!(parse_app("nope").unwrap_err().contains("hello, echo, env"));
        for s in ["echo", "wsgi:app.py:application", "cgi:/srv/cgi-bin"] {
            if let Ok(app) = parse_app(s) {
                assert_eq!(app.to_string(), s);
            }
        }
    }

    #[cfg(feature = "wsgi")]
    #[test]
    fn wsgi_forms() {
        assert_eq!(
            parse_app("wsgi:pkg.mod:app").unwrap(),
            AppSpec::Wsgi("pkg.mod:app".into())
        );
        assert_eq!(
            parse_app("wsgi:fixtures/apps/hello.py").unwrap(),
            AppSpec::Wsgi("fixtures/apps/hello.py".into())
        );
        for bad in ["wsgi:", "wsgi:my-app", "wsgi:dir/app"] {
            assert!(parse_app(bad).is_err(), "{bad}");
        }
    }

    #[cfg(not(feature = "wsgi"))]
    #[test]
    fn wsgi_needs_the_feature() {
        assert!(parse_app("wsgi:app:application")
            .unwrap_err()
            .contains("`wsgi` feature"));
    }

    #[test]
    fn mounts() {
        let m = parse_mount("/api/=echo").unwrap();
        assert_eq!(
            (m.prefix.as_str(), m.app),
            ("/api", AppSpec::Builtin("echo"))
        );
        assert_eq!(parse_mount("/=hello").unwrap().prefix, "/");
        assert_eq!(
            parse_mount("/cgi-bin=cgi:/a=b").unwrap().app,
            AppSpec::Cgi("/a=b".into())
        );
        for bad in ["api=echo", "/api", "/a?b=echo", "/a/../b=echo", "/x=nope"] {
            assert!(parse_mount(bad).is_err(), "{bad}");
        }
    }
}
