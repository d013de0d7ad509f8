//! The command line, `gatehouse [OPTIONS] [APP]`, parsed with clap.
//!
//! Everything a user can get wrong here is a usage error: a one-line message on stderr and exit
//! status 2, before any socket is touched. `--help` is written for someone who has never run a
//! FastCGI daemon.
//!
//! - `values`: durations, modes, IP lists, log filters.
//! - `front`: listeners and the limits of each front end.
//! - `app`: APP, `--mount`, and the options of WSGI and CGI-script apps.
//! - `spool`: which apps get their request body read first, and its limits; which front ends
//!   buffer answers for slow clients.
//! - `settings`: the merge of the command line, `GATEHOUSE_*` variables (`env`) and the
//!   `--config` file (`file`), with each option's key and variable read off clap (`keys`).

mod app;
mod env;
mod file;
mod front;
mod keys;
mod log;
mod process;
mod settings;
mod spool;
mod values;

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

use clap::{ArgAction, Args, CommandFactory, FromArgMatches, Parser};

use crate::addr::ListenAddr;

pub use app::{AppSpec, CgiScriptArgs, CgiStderr, Mount, TimeLimitArgs, WsgiArgs};
pub use front::{
    HttpArgs, LimitArgs, ListenArgs, PrivilegeArgs, ScgiArgs, UwsgiArgs, DEFAULT_BACKLOG,
};
pub use log::{LogArgs, LogFormat};
pub use process::{ProcessArgs, DEFAULT_WORKER_START_TIMEOUT, MAX_WORKERS};
pub use settings::{Setting, Settings, Source};
pub use spool::{ResponseSpoolArgs, SpoolApps, SpoolArgs, SpoolFrontEnds};
pub use values::{parse_duration, HumanDuration, IpList};

use settings::{Failure, Inputs};

/// `--drain-timeout` default, as written on the command line.
pub const DEFAULT_DRAIN_TIMEOUT: &str = "30s";
/// Where FastCGI is served when no listener is given and nothing is inherited on fd 0.
pub const DEFAULT_FASTCGI_ADDR: &str = "127.0.0.1:9000";
/// Where SCGI is served when no listener is given and nothing is inherited on fd 0.
pub const DEFAULT_SCGI_ADDR: &str = "127.0.0.1:4000";
/// Where HTTP is served when no listener is given and nothing is inherited on fd 0.
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:8000";
/// The app served when neither APP nor `--mount` (nor, as a CGI program, `GATEHOUSE_APP`)
/// names one.
pub const DEFAULT_APP: &str = "hello";

const ABOUT: &str = "A gateway daemon: web servers hand it requests over FastCGI, SCGI, \
                     HTTP or CGI, it runs an app for them";

const LONG_ABOUT: &str = "\
A gateway daemon: web servers (nginx, Apache, lighttpd) hand it requests over FastCGI, SCGI or
HTTP, or run it as a CGI program, and it runs an application for them: a built-in app, a Python
WSGI app, or CGI scripts.

With no listener option it serves FastCGI on 127.0.0.1:9000, SCGI on 127.0.0.1:4000 and HTTP on
127.0.0.1:8000; but when it inherits a listening socket on fd 0 (as spawn-fcgi, lighttpd's
bin-path and mod_fcgid start FastCGI programs) it serves FastCGI on that socket only. When a web
server runs it as a CGI program (GATEWAY_INTERFACE is set, or --cgi) it answers the one request
of its environment and exits.";

const EXAMPLES: &str = "\
Examples:
  gatehouse
      Serve the built-in `hello` app on FastCGI 127.0.0.1:9000, SCGI 127.0.0.1:4000 and
      HTTP 127.0.0.1:8000. Try: curl http://127.0.0.1:8000/
  gatehouse echo --http 127.0.0.1:8080
      Serve `echo` (describes each request as JSON) over HTTP only, on port 8080.
  gatehouse wsgi:myproject.wsgi:application --pythonpath /srv/myproject --fastcgi unix:/run/app.sock
      Serve a Python WSGI app (Django, Flask, ...) to nginx over a unix socket.
  gatehouse wsgi:/srv/app.py --threads 8 --venv /srv/venv --scgi 127.0.0.1:4000
      Serve the `application` (or `app`) of a Python file over SCGI, with a virtualenv.
  gatehouse cgi:/usr/lib/cgi-bin --fastcgi unix:/run/fcgiwrap.socket --socket-mode 660
      Run CGI scripts for nginx, as fcgiwrap does (nginx sends SCRIPT_FILENAME).
  gatehouse --mount /api=echo --mount /cgi-bin=cgi:/usr/lib/cgi-bin hello --http 127.0.0.1:8080
      Several apps by path prefix: /api/... to echo, /cgi-bin/... to scripts, the rest to hello.
  spawn-fcgi -n -s /run/gatehouse.sock -- /usr/local/bin/gatehouse echo
      Let spawn-fcgi make the socket; gatehouse serves the socket it gets on fd 0.
  #!/bin/sh
  exec /usr/local/bin/gatehouse --cgi wsgi:/srv/app.py
      A two-line wrapper: a web server runs it as a CGI program (or set GATEHOUSE_APP).

nginx, in a server block:
  location / { include fastcgi_params; fastcgi_pass 127.0.0.1:9000; }
  location / { include scgi_params; scgi_pass 127.0.0.1:4000; }
  location / { proxy_pass http://127.0.0.1:8000; }

  gatehouse wsgi:/srv/app.py --workers 4 --fastcgi unix:/run/app.sock --max-requests 10000
      A master and 4 worker processes (Python on 4 cores); `kill -HUP` reloads the app.

Signals: SIGTERM or SIGINT stops accepting, lets requests in flight finish (at most
--drain-timeout) and exits 0; a second signal exits at once. SIGHUP reloads the workers (with
--workers N or --master: --config is re-read and checked, new workers start, then the old ones
drain); in one process it is logged and ignored. SIGUSR1 reopens the --access-log file (logrotate).";

/// The command line of the `gatehouse` binary.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "gatehouse",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = EXAMPLES,
    max_term_width = 100
)]
pub struct Cli {
    /// The app to serve at `/`: hello, echo or env, wsgi:..., cgi:PATH [default: hello].
    ///
    /// `hello` answers "Hello, world!"; `echo` describes each request as JSON (method, path,
    /// query, headers, body length and SHA-256); `env` lists the request's CGI variables.
    /// `wsgi:MODULE[:CALLABLE]` or `wsgi:path/to/file.py[:CALLABLE]` serves a Python WSGI app
    /// (callable `application`, else `app`). `cgi:PATH` runs the CGI scripts of directory PATH
    /// (or the one program PATH) per request. With --mount and no APP, paths no mount point
    /// matches get 404.
    #[arg(value_name = "APP", value_parser = app::parse_app)]
    pub app: Option<AppSpec>,

    /// Where to listen.
    #[command(flatten, next_help_heading = "Listeners")]
    pub listen: ListenArgs,

    /// Also serve APP under the path PREFIX (repeatable), e.g. /api=echo.
    ///
    /// The longest matching prefix wins; the app sees PREFIX as SCRIPT_NAME and the rest of the
    /// path as PATH_INFO. APP takes every form the APP argument takes.
    #[arg(long, value_name = "PREFIX=APP", action = ArgAction::Append,
          value_parser = app::parse_mount, help_heading = "Apps")]
    pub mount: Vec<Mount>,

    /// WSGI apps.
    #[command(flatten, next_help_heading = "Python WSGI apps (wsgi:...)")]
    pub wsgi: WsgiArgs,

    /// CGI scripts.
    #[command(flatten, next_help_heading = "CGI scripts (cgi:PATH)")]
    pub cgi_scripts: CgiScriptArgs,

    /// Time limits of WSGI apps and CGI scripts.
    #[command(flatten, next_help_heading = "Time limits (wsgi: and cgi: apps)")]
    pub time_limits: TimeLimitArgs,

    /// Answer one request as a CGI program (RFC 3875), then exit.
    ///
    /// The request comes from the environment and stdin, the answer goes to stdout. Implied
    /// when GATEWAY_INTERFACE is set (a web server runs us as a CGI program) and no listener
    /// option is given. Without APP, the app is $GATEHOUSE_APP, else hello.
    #[arg(long, help_heading = "Running as a CGI program",
          conflicts_with_all = ["fastcgi", "scgi", "http"])]
    pub cgi: bool,

    /// Serve /metrics (Prometheus), /status and /ping on their own HTTP listener at ADDR.
    ///
    /// Same ADDR forms as --fastcgi, except systemd:NAME; never one of the front ends, so the
    /// public front server cannot reach it. With --workers N the master serves it and every
    /// figure is the total over the workers. See README, "Metrics and status".
    #[arg(long, value_name = "ADDR", help_heading = "Metrics and status")]
    pub metrics: Option<ListenAddr>,

    /// Limits.
    #[command(flatten, next_help_heading = "Limits")]
    pub limits: LimitArgs,

    /// Request bodies.
    #[command(flatten, next_help_heading = "Request bodies")]
    pub spool: SpoolArgs,

    /// Response buffering.
    #[command(flatten, next_help_heading = "Response buffering")]
    pub response_spool: ResponseSpoolArgs,

    /// SCGI limits.
    #[command(flatten, next_help_heading = "SCGI")]
    pub scgi: ScgiArgs,

    /// HTTP limits.
    #[command(flatten, next_help_heading = "HTTP")]
    pub http: HttpArgs,

    /// uwsgi limits.
    #[command(flatten, next_help_heading = "uwsgi")]
    pub uwsgi: UwsgiArgs,

    /// Worker processes.
    #[command(flatten, next_help_heading = "Processes")]
    pub process: ProcessArgs,

    /// Logging and shutdown.
    #[command(flatten, next_help_heading = "Logging and shutdown")]
    pub run: RunArgs,

    /// The access log and the log format.
    #[command(flatten, next_help_heading = "Logging and shutdown")]
    pub log: LogArgs,

    /// The config file.
    #[command(flatten, next_help_heading = "Configuration")]
    pub config: ConfigArgs,

    /// Every option's value and where it came from (not an option).
    #[arg(skip)]
    pub settings: Settings,
}

/// `--config` and `--check-config`.
#[derive(Debug, Clone, Args)]
pub struct ConfigArgs {
    /// Read options from this TOML file: one key per long option, e.g. `workers = 2`,
    /// `cgi-timeout = "30s"`, `fastcgi = ["unix:/run/a.sock"]`, `app = "wsgi:/srv/app.py"`.
    ///
    /// Every option also has a variable: GATEHOUSE_ and its name in capitals with `_` for `-`
    /// (GATEHOUSE_CGI_TIMEOUT=30s; a repeatable option takes values separated by spaces). The
    /// command line beats the variables, which beat the file, which beats the defaults. With a
    /// master (--workers N), SIGHUP re-reads the file. Example: contrib/gatehouse.toml.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Check the options, GATEHOUSE_* variables and config file as the daemon would at
    /// start-up, without binding or starting apps; print every setting and where it comes
    /// from (cli, env, file, default), and exit 0 (2 with the error when something is wrong).
    #[arg(long)]
    pub check_config: bool,
}

/// Logging and shutdown options.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// On SIGTERM or SIGINT, how long requests in flight may take to finish.
    ///
    /// When it runs out, the daemon exits anyway (status 0) and says how many connections it
    /// cut.
    #[arg(long, value_name = "DURATION", default_value = DEFAULT_DRAIN_TIMEOUT)]
    pub drain_timeout: HumanDuration,

    /// Log level: error, warn, info, debug or trace [default: RUST_LOG, else info; warn as a
    /// CGI program].
    ///
    /// A filter such as `info,gatehouse_fastcgi=debug` works too. Logs go to stderr.
    #[arg(long, value_name = "LEVEL", value_parser = values::parse_log_filter)]
    pub log_level: Option<String>,

    /// Threads that run the network I/O and async apps, per process [default: one per CPU].
    ///
    /// WSGI apps and CGI scripts have their own threads and processes (--threads, --cgi-max).
    /// On a machine shared with the front server, 1 can be faster: fewer cross-thread wake-ups.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub runtime_threads: Option<u16>,
}

/// The options that choose or configure the app: a program embedding gatehouse is its own app
/// and takes none of them.
const APP_OPTIONS: &[&str] = &[
    "app",
    "mount",
    "threads",
    "wsgi_queue",
    "pythonpath",
    "venv",
    "cgi_timeout",
    "cgi_max",
    "cgi_env",
    "cgi_user",
    "cgi_group",
    "cgi_allow_symlinks",
    "cgi_allow_world_writable",
    "cgi_extensions",
    "cgi_stderr",
    "spool_request_body",
    "spool_dir",
    "spool_memory",
    "max_spool_bytes",
    "request_timeout",
    "slow_log_timeout",
];

impl Cli {
    /// Parses `args` (the first item is the program name), with the `GATEHOUSE_*` variables and
    /// the `--config` file. `Err` carries the exit status after the message was printed: 0 for
    /// `--help`/`--version`, 2 for a usage error.
    pub fn try_from_args<I, T>(args: I) -> Result<Self, u8>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let inputs = process_inputs(args.into_iter().map(Into::into).collect());
        let parsed = Self::parse_inputs(Self::command(), &inputs, false);
        take_config_snapshot();
        parsed.map_err(|f| report(&f))
    }

    /// Parses the command line of a program embedding gatehouse through [`crate::serve`]: the
    /// same options, but no APP argument and no app options (the program is the app).
    pub fn try_from_args_embedded<I, T>(args: I) -> Result<Self, u8>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let inputs = process_inputs(args.into_iter().map(Into::into).collect());
        let parsed = Self::parse_inputs(embedded_command(&inputs.args), &inputs, true);
        take_config_snapshot();
        parsed.map_err(|f| report(&f))
    }

    /// Parses this process's command line and environment again, with the config file as it
    /// is on disk now (SIGHUP): the new settings, or the error on one line.
    pub fn reparse(&self) -> Result<Self, String> {
        let inputs = process_inputs(crate::args_os());
        let embedded = self.settings.embedded();
        let cmd = if embedded {
            embedded_command(&inputs.args)
        } else {
            Self::command()
        };
        Self::parse_inputs(cmd, &inputs, embedded).map_err(|f| f.line())
    }

    /// The parse itself, over any arguments, environment and file reader (unit tests give
    /// their own).
    pub(crate) fn parse_inputs(
        cmd: clap::Command,
        inputs: &Inputs<'_>,
        embedded: bool,
    ) -> Result<Self, Failure> {
        let (matches, mut settings) = settings::parse(cmd, inputs)?;
        if embedded {
            settings.set_embedded();
            let given = APP_OPTIONS
                .iter()
                .filter_map(|id| settings.by_id(id))
                .find(|s| s.is_used());
            if let Some(s) = given {
                let what = if s.key == "app" {
                    "APP argument".to_owned()
                } else {
                    format!("--{} option", s.key)
                };
                let from = match &s.source {
                    Source::Cli => String::new(),
                    other => format!(" ({other})"),
                };
                return Err(Failure::Usage(format!(
                    "this program serves its own app and takes no {what}{from} (see --help)"
                )));
            }
        }
        let mut cli = Self::from_arg_matches(&matches).map_err(Failure::Clap)?;
        cli.listen
            .check()
            .map_err(|msg| Failure::Usage(format!("{msg} (see --help)")))?;
        cli.settings = settings;
        Ok(cli)
    }
}

/// The arguments and this process's environment; the file is read from disk.
fn process_inputs(args: Vec<OsString>) -> Inputs<'static> {
    Inputs {
        args,
        vars: std::env::vars_os().collect(),
        read: &|path| std::fs::read_to_string(path),
    }
}

/// A worker has parsed its master's copy of the config file: the (possibly long) variable
/// leaves the environment its app sees. Called at single-threaded start-up.
fn take_config_snapshot() {
    if std::env::var_os(crate::worker::ENV_CONFIG).is_some() {
        // Single-threaded start-up: nothing else reads the environment yet.
        #[allow(clippy::disallowed_methods)]
        std::env::remove_var(crate::worker::ENV_CONFIG);
    }
}

/// The command of a program embedding gatehouse: named after the program, app options hidden.
fn embedded_command(args: &[OsString]) -> clap::Command {
    let name = args
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .map_or_else(|| "app".to_owned(), |n| n.to_string_lossy().into_owned());
    let mut cmd = Cli::command()
        .name(name.clone())
        .bin_name(name)
        .about(
            "A Rust app served by gatehouse: web servers reach it over FastCGI, SCGI, HTTP or CGI",
        )
        .long_about(None)
        .after_help(
            "With no listener option it serves FastCGI on the listening socket inherited \
             on fd 0, or else FastCGI on 127.0.0.1:9000, SCGI on 127.0.0.1:4000 and HTTP \
             on 127.0.0.1:8000.\nSignals: SIGTERM or SIGINT drains and exits 0; a second \
             signal exits at once.",
        );
    for id in APP_OPTIONS {
        cmd = cmd.mut_arg(id, |a| a.hide(true));
    }
    cmd
}

/// Prints a parse failure: help and version as clap does, usage errors on one line. Returns
/// the exit status.
fn report(failure: &Failure) -> u8 {
    if let Failure::Clap(e) = failure {
        if !e.use_stderr() {
            let _ = e.print();
            return 0;
        }
    }
    match failure {
        Failure::Clap(_) => eprintln!("error: {} (see --help)", failure.line()),
        Failure::Usage(msg) => eprintln!("error: {msg}"),
    }
    2
}

/// The command line without the words a web server added from an ISINDEX query.
///
/// RFC 3875 section 4.4: for a query without an unencoded `=`, a server may pass its
/// `+`-separated words as arguments (Apache's mod_cgi does), so `GET /cgi-bin/gatehouse?env`
/// runs `gatehouse env`. When the arguments after the program name are exactly those words they
/// came from the client, not the operator, and are dropped. `query` is `QUERY_STRING` when the
/// process runs in a CGI environment, `None` otherwise (nothing is dropped).
pub fn without_isindex_args(mut args: Vec<OsString>, query: Option<&OsStr>) -> Vec<OsString> {
    use std::os::unix::ffi::OsStrExt;

    let Some(words) = query.and_then(|q| gatehouse_cgi::isindex_args(q.as_bytes())) else {
        return args;
    };
    if !words.is_empty() && args.get(1..) == Some(words.as_slice()) {
        args.truncate(1);
    }
    args
}

#[cfg(test)]
mod tests;
