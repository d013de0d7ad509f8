//! gatehouse: a gateway daemon that web servers hand requests to, and the library that lets a
//! Rust program be its own gateway app.
//!
//! ```text
//!  nginx / Apache / lighttpd / spawn-fcgi / curl           a web server's CGI module
//!        │ FastCGI, SCGI, HTTP/1.1                               │ environment + stdin
//!        │ (TCP, unix socket, or inherited fd 0)                 ▼
//!        ▼                                               gatehouse_cgi::run (one request)
//!  listeners ──► accept loops ──► front end ──► Request          │
//!  (cli, listen)   (serve)   (gatehouse_fastcgi,  │               │
//!                             _scgi, _http)       ▼               ▼
//!                            Dispatcher (APP at "/", --mount PREFIX=APP) (apps)
//!                                   │
//!        built-in app (hello, echo, env) │ wsgi: (gatehouse_wsgi) │ cgi: (gatehouse_cgi_exec)
//!        │ or your own Application
//! ```
//!
//! # Serving your own handler
//!
//! ```no_run
//! use gatehouse::{AppError, Application, BoxFuture, Request, Response};
//!
//! struct Hi;
//!
//! impl Application for Hi {
//!     fn call<'a>(&'a self, _req: Request, resp: &'a mut Response)
//!         -> BoxFuture<'a, Result<(), AppError>> {
//!         Box::pin(async move {
//!             resp.send_full(200, "text/plain", "hi\n").await?;
//!             Ok(())
//!         })
//!     }
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     gatehouse::serve(Hi)
//! }
//! ```
//!
//! The program then takes the same options as the `gatehouse` binary (`--fastcgi ADDR`,
//! `--scgi ADDR`, `--http ADDR`, limits, `--log-level`, ...), serves on an inherited fd 0 when
//! started by spawn-fcgi, answers one request when a web server runs it as a CGI program, and
//! drains on SIGTERM. See `examples/native_handler.rs`.
#![deny(missing_docs)]

pub mod access_log;
pub mod addr;
mod apps;
mod balance;
pub mod cli;
mod daemon;
mod error;
mod inherit;
mod listen;
mod master;
mod metrics;
mod notify;
mod privileges;
mod serve;
mod signal;
mod sys;
mod systemd;
mod worker;

use std::ffi::OsString;
use std::process::ExitCode;
use std::sync::Arc;

pub use apps::{build_app, Mode};
pub use error::Error;
pub use gatehouse_channel_request as channel_request;
pub use gatehouse_channel_request::{
    AppError, Application, BoxFuture, Env, Peer, Protocol, Request, RequestBody, RequestInfo,
    Response, ResponseHead,
};
pub use gatehouse_dispatch::{builtin, Dispatcher};

use crate::cli::Cli;

/// Serves `app` with the command line of the running program, as the `gatehouse` binary serves
/// its APP: parses the arguments (the same options, no APP), then either answers one request as
/// a CGI program (`--cgi`, or `GATEWAY_INTERFACE` set) or listens and serves until SIGTERM or
/// SIGINT, drains, and returns the exit status (0 after a clean shutdown, 2 for a usage error,
/// 1 when it cannot start).
pub fn serve(app: impl Application) -> ExitCode {
    let cli = match Cli::try_from_args_embedded(args_os()) {
        Ok(cli) => cli,
        Err(code) => return ExitCode::from(code),
    };
    if cli.config.check_config {
        init_logging(&cli, mode(&cli));
        return check_config(&cli, mode(&cli));
    }
    if let Mode::Daemon = mode(&cli) {
        if is_master(&cli) {
            init_logging(&cli, Mode::Daemon);
            return exit_code(run_master(&cli));
        }
    }
    match mode(&cli) {
        Mode::Cgi => {
            scrub_cgi_environment();
            init_logging(&cli, Mode::Cgi);
            let app = apps::cgi_dispatcher(Arc::new(app));
            std::process::exit(run_cgi(&cli, Arc::new(app)))
        }
        Mode::Daemon => exit_code(run(&cli, Arc::new(app))),
    }
}

/// Serves `app` at `/` with options already parsed: sets up logging (unless the program
/// installed its own `tracing` subscriber), listens, serves until a stop signal, drains.
pub fn run(cli: &Cli, app: Arc<dyn Application>) -> Result<(), Error> {
    run_dispatcher(cli, Arc::new(Dispatcher::single(app)))
}

/// Serves `app` as it is, without mounting it: for a [`Dispatcher`] from [`build_app`], which
/// already splits paths at its mount points. Otherwise as [`run`].
pub fn run_dispatcher(cli: &Cli, app: Arc<dyn Application>) -> Result<(), Error> {
    init_logging(cli, Mode::Daemon);
    daemon::run(cli, app)
}

/// Answers the one request of a CGI program's environment with `app` (see
/// [`gatehouse_cgi::run`]), logging it to `--access-log` (written before this returns), and
/// returns the exit status.
pub fn run_cgi(cli: &Cli, app: Arc<dyn Application>) -> i32 {
    use gatehouse_channel_request::observe;
    if cli.log.access_log == Some(access_log::Target::Stdout) {
        eprintln!(
            "error: --access-log - writes to standard output, which is the response of a CGI \
             program; give a file"
        );
        return 2;
    }
    match access_log::from_cli(cli) {
        Ok(log) => {
            observe::install(log.into_iter().collect());
        }
        Err(e) => {
            eprintln!("error: {e}");
            return i32::from(e.exit_code());
        }
    }
    let status = gatehouse_cgi::run(app);
    access_log::shutdown();
    status
}

/// Whether this process is to be the master of worker processes (`--workers N` with N > 1, or
/// `--master`), rather than serve by itself. A worker process (started by a master) is never a
/// master. Call it early, while the process has one thread: the first call reads (and removes)
/// the variables a master hands its workers.
pub fn is_master(cli: &Cli) -> bool {
    cli.process.wants_master() && matches!(worker::current(), Ok(None))
}

/// Runs the master: binds the listeners, starts `--workers` worker processes (this program,
/// re-executed, inheriting them), supervises and reloads them until SIGTERM or SIGINT. The
/// master builds no app: each worker does.
pub fn run_master(cli: &Cli) -> Result<(), Error> {
    master::run(cli)
}

/// Builds the app the command line names ([`build_app`]) and serves it as a daemon, as the
/// `gatehouse` binary does: with `--user`/`--group` the app is built once the sockets are bound
/// and privileges dropped, so none of its code runs as root. Sets up logging like
/// [`run_dispatcher`].
pub fn serve_command_line(cli: &Cli) -> Result<(), Error> {
    init_logging(cli, Mode::Daemon);
    daemon::run_building(cli, || build_app(cli, Mode::Daemon))
}

/// `--check-config`: checks what the daemon (or CGI program) would check at start-up, without
/// binding or starting an app, then prints every setting and where it comes from on stdout
/// (exit 0); or prints the error on one line on stderr (exit 2).
pub fn check_config(cli: &Cli, mode: Mode) -> ExitCode {
    let checked = match mode {
        Mode::Daemon => daemon::check(cli),
        Mode::Cgi => Ok(()),
    }
    .and_then(|()| {
        // A program embedding gatehouse is its own app: nothing to check.
        if cli.settings.embedded() {
            Ok(())
        } else {
            apps::check(cli, mode)
        }
    });
    if let Err(e) = checked {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let mut out = std::io::stdout().lock();
    match cli.settings.write_effective(&mut out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: cannot write the settings: {e}");
            ExitCode::FAILURE
        }
    }
}

/// How the process serves: as a CGI program when `--cgi` is given, or when a web server runs it
/// as one (`GATEWAY_INTERFACE` is `CGI/1.x`) and no listener option is given; else as a daemon.
pub fn mode(cli: &Cli) -> Mode {
    if cli.cgi || (!cli.listen.any() && gatehouse_cgi::is_cgi_environment()) {
        Mode::Cgi
    } else {
        Mode::Daemon
    }
}

/// Removes `HTTP_PROXY` from this process's own environment when it runs as a CGI program.
///
/// A web server copies a client's `Proxy:` header into `HTTP_PROXY` (httpoxy); the dispatcher
/// already drops it from the request, but code that reads the process environment (Python's
/// `os.environ`, which `urllib` and `requests` consult for their proxy) would still see it. Call
/// this first thing in CGI mode, while the process has one thread and before Python starts.
pub fn scrub_cgi_environment() {
    if std::env::var_os("HTTP_PROXY").is_some() {
        // The one place we mutate our environment: single-threaded start-up of a CGI process,
        // before any thread (logging, runtime, Python) exists.
        #[allow(clippy::disallowed_methods)]
        std::env::remove_var("HTTP_PROXY");
    }
}

/// The process's arguments, without the words a web server added from an ISINDEX query when
/// the process runs as a CGI program (see [`cli::without_isindex_args`]).
pub fn args_os() -> Vec<OsString> {
    let query = gatehouse_cgi::is_cgi_environment()
        .then(|| std::env::var_os("QUERY_STRING"))
        .flatten();
    cli::without_isindex_args(std::env::args_os().collect(), query.as_deref())
}

/// The exit status for a daemon's result, printing the error (on stderr) if any.
pub fn exit_code(result: Result<(), Error>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Logs to stderr: the `--log-level` filter, else `RUST_LOG`, else `info` (`warn` as a CGI
/// program, whose stderr is the web server's error log). Colours only on a terminal. Does
/// nothing when the program already installed a subscriber.
pub fn init_logging(cli: &Cli, mode: Mode) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;

    let fallback = match mode {
        Mode::Daemon => "info",
        Mode::Cgi => "warn",
    };
    let filter = match cli.run.log_level.as_deref() {
        Some(level) => EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new(fallback)),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(fallback)),
    };
    let tag = match worker::current() {
        Ok(Some(info)) => Some(format!("[worker {}]", info.id)),
        _ if mode == Mode::Daemon && is_master(cli) => Some("[master]".to_owned()),
        _ => None,
    };
    // Fails only when the program already installed a subscriber: then that one logs.
    let _ = match cli.log.log_format {
        cli::LogFormat::Text => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .event_format(Tagged {
                tag,
                inner: tracing_subscriber::fmt::format(),
            })
            .try_init(),
        cli::LogFormat::Json => {
            let process = match worker::current() {
                Ok(Some(info)) => Some(format!("\"process\":\"worker\",\"worker\":{},", info.id)),
                _ if tag.is_some() => Some("\"process\":\"master\",".to_owned()),
                _ => None,
            };
            tracing_subscriber::fmt()
                .json()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .event_format(TaggedJson {
                    fields: process,
                    inner: tracing_subscriber::fmt::format().json(),
                })
                .try_init()
        }
    };
    warn_unknown_env(cli);
}

/// The JSON log format, each object starting with the process's part when it has one
/// (`"process":"master"`, `"process":"worker","worker":2`).
struct TaggedJson<F> {
    /// The fields to add, each followed by a comma.
    fields: Option<String>,
    inner: F,
}

impl<S, N, F> tracing_subscriber::fmt::FormatEvent<S, N> for TaggedJson<F>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
    F: tracing_subscriber::fmt::FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let Some(fields) = &self.fields else {
            return self.inner.format_event(ctx, writer, event);
        };
        let mut line = String::new();
        self.inner.format_event(
            ctx,
            tracing_subscriber::fmt::format::Writer::new(&mut line),
            event,
        )?;
        match line.strip_prefix('{') {
            Some(rest) => write!(writer, "{{{fields}{rest}"),
            None => writer.write_str(&line),
        }
    }
}

/// Warns, once per process, about `GATEHOUSE_*` variables that name no option (a typo, or an
/// option this version does not have).
fn warn_unknown_env(cli: &Cli) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    let unknown = cli.settings.unknown_env();
    if !unknown.is_empty() {
        ONCE.call_once(|| {
            tracing::warn!(
                "unknown variable(s) {}: no option is called so (an option's variable is \
                 GATEHOUSE_ and its long name in capitals, e.g. GATEHOUSE_CGI_TIMEOUT); ignored",
                unknown.join(", ")
            );
        });
    }
}

/// The default log format, each line starting with the process's part when it has one
/// (`[master]`, `[worker 2]`): master and workers write to the same stderr.
struct Tagged<F> {
    tag: Option<String>,
    inner: F,
}

impl<S, N, F> tracing_subscriber::fmt::FormatEvent<S, N> for Tagged<F>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
    F: tracing_subscriber::fmt::FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        if writer.has_ansi_escapes() {
            // A terminal: the colours need the inner writer; the fields' own escaping holds.
            if let Some(tag) = &self.tag {
                write!(writer, "{tag} ")?;
            }
            return self.inner.format_event(ctx, writer, event);
        }
        let mut text = String::new();
        if let Some(tag) = &self.tag {
            text.push_str(tag);
            text.push(' ');
        }
        self.inner.format_event(
            ctx,
            tracing_subscriber::fmt::format::Writer::new(&mut text),
            event,
        )?;
        writer.write_str(&one_event(&text))
    }
}

/// Continuation lines of an event that spans several (a Python traceback) start with this, so no
/// line of one event can pass for another event.
const CONTINUATION: &str = "  | ";

/// A formatted event made safe for a line-oriented log, a net under the escaping of peer bytes
/// where they are logged: a newline inside the event starts a [`CONTINUATION`] line, never a
/// line of its own, and the other control characters (`\r`, ESC, ...) are escaped. The event's
/// final newline stays.
fn one_event(text: &str) -> std::borrow::Cow<'_, str> {
    use std::fmt::Write as _;
    let body = text.strip_suffix('\n').unwrap_or(text);
    if !body.chars().any(|c| c.is_control() && c != '\t') {
        return text.into();
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in body.chars() {
        match c {
            '\n' => {
                out.push('\n');
                out.push_str(CONTINUATION);
            }
            '\t' => out.push(c),
            c if c.is_control() => {
                let _ = write!(out, "{}", c.escape_default());
            }
            c => out.push(c),
        }
    }
    if body.len() < text.len() {
        out.push('\n');
    }
    out.into()
}

#[cfg(test)]
mod tests {
    use super::one_event;

    #[test]
    fn an_event_stays_one_log_entry() {
        assert_eq!(one_event("plain line\n"), "plain line\n");
        assert_eq!(one_event("tab\there\n"), "tab\there\n");
        assert_eq!(
            one_event("error=no script at /a\nFORGED line\n"),
            "error=no script at /a\n  | FORGED line\n"
        );
        assert_eq!(one_event("a\rb\x1b[31mc\n"), "a\\rb\\u{1b}[31mc\n");
        assert_eq!(one_event("no final newline\nx"), "no final newline\n  | x");
    }
}
