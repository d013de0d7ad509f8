//! The command line, `gatehouse [OPTIONS] [APP]`, parsed with clap.
//!
//! Everything a user can get wrong here is a usage error: a one-line message on stderr and exit
//! status 2, before any socket is touched. `--help` is written for someone who has never run a
//! FastCGI daemon.

use std::ffi::OsString;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use clap::{ArgAction, Args, CommandFactory, FromArgMatches, Parser};

use crate::addr::ListenAddr;

/// `--backlog` default: the listen(2) queue length.
pub const DEFAULT_BACKLOG: i32 = 1024;
/// `--drain-timeout` default, as written on the command line.
pub const DEFAULT_DRAIN_TIMEOUT: &str = "30s";
/// Where FastCGI is served when no listener is given and nothing is inherited on fd 0.
pub const DEFAULT_FASTCGI_ADDR: &str = "127.0.0.1:9000";

const ABOUT: &str =
    "A gateway daemon: web servers hand it requests over FastCGI, it runs an app for them";

const LONG_ABOUT: &str = "\
A gateway daemon: web servers (nginx, Apache, lighttpd) hand it requests over FastCGI and it
runs an application for them.

With no listener option it serves FastCGI on the listening socket it inherited on fd 0 (as
spawn-fcgi, lighttpd's bin-path and mod_fcgid start FastCGI programs), or else on 127.0.0.1:9000.";

const EXAMPLES: &str = "\
Examples:
  gatehouse
      Serve the built-in `hello` app over FastCGI on 127.0.0.1:9000.
  gatehouse echo --fastcgi 127.0.0.1:9001
      Serve `echo` (describes each request as JSON) on another port.
  gatehouse env --fastcgi unix:/run/gatehouse.sock --socket-mode 660
      Serve `env` on a unix socket that the web server's group may connect to.
  spawn-fcgi -n -s /run/gatehouse.sock -- /usr/local/bin/gatehouse echo
      Let spawn-fcgi make the socket; gatehouse serves the socket it gets on fd 0.

nginx, in a server block:
  location / { include fastcgi_params; fastcgi_pass 127.0.0.1:9000; }

Signals: SIGTERM or SIGINT stops accepting, lets requests in flight finish (at most
--drain-timeout) and exits 0; a second signal exits at once.";

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
    /// The app to serve: hello, echo or env.
    ///
    /// `hello` answers "Hello, world!"; `echo` describes each request as JSON (method, path,
    /// query, headers, body length and SHA-256); `env` lists the request's CGI variables.
    #[arg(value_name = "APP", default_value = "hello", value_parser = parse_app)]
    pub app: AppSpec,

    /// Where to listen.
    #[command(flatten, next_help_heading = "Listeners")]
    pub listen: ListenArgs,

    /// Limits.
    #[command(flatten, next_help_heading = "Limits")]
    pub limits: LimitArgs,

    /// Logging and shutdown.
    #[command(flatten, next_help_heading = "Logging and shutdown")]
    pub run: RunArgs,
}

/// The listener options. Each protocol gets its own repeatable flag taking the same ADDR forms.
#[derive(Debug, Clone, Args)]
pub struct ListenArgs {
    /// Serve FastCGI on ADDR (repeatable).
    ///
    /// ADDR is `HOST:PORT` (`127.0.0.1:9000`, `0.0.0.0:9000`), `[V6]:PORT` (`[::1]:9000`),
    /// `unix:/path/to.sock`, or `fd:N` (a listening socket inherited on descriptor N). Port 0
    /// picks a free port; the log says which.
    #[arg(long = "fastcgi", value_name = "ADDR", action = ArgAction::Append)]
    pub fastcgi: Vec<ListenAddr>,

    /// Permissions of the unix sockets we create, in octal (e.g. 660).
    ///
    /// A web server needs write permission on the socket to connect: `660` lets the owner and
    /// group in, `666` everyone. Without this option the umask decides.
    #[arg(long, value_name = "MODE", value_parser = parse_mode)]
    pub socket_mode: Option<u32>,

    /// Connections that may wait to be accepted (the listen(2) backlog).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_BACKLOG,
          value_parser = clap::value_parser!(i32).range(1..))]
    pub backlog: i32,

    /// Only these web server IPs may connect over TCP (comma-separated).
    ///
    /// Connections from other addresses are closed at once and logged. Unix sockets are not
    /// affected. Read from FCGI_WEB_SERVER_ADDRS when not given, as the FastCGI specification
    /// (section 3.2) says.
    #[arg(long, value_name = "IP,IP,...", env = "FCGI_WEB_SERVER_ADDRS",
          value_parser = parse_ip_list, hide_env_values = true)]
    pub web_server_addrs: Option<IpList>,
}

/// The limits, mapped onto the FastCGI front end's configuration.
#[derive(Debug, Clone, Args)]
pub struct LimitArgs {
    /// Connections served at once, over all listeners.
    ///
    /// Further connections wait in the kernel's backlog until one closes.
    #[arg(long, value_name = "N", default_value_t = fastcgi_defaults().max_conns,
          value_parser = at_least_one())]
    pub max_conns: usize,

    /// Requests in progress at once, over all connections.
    ///
    /// A request beyond it is refused with FCGI_OVERLOADED (nginx answers its client 502).
    #[arg(long, value_name = "N", default_value_t = fastcgi_defaults().max_reqs,
          value_parser = at_least_one())]
    pub max_requests: usize,

    /// Requests in progress at once on one connection (FastCGI multiplexing).
    #[arg(long, value_name = "N", default_value_t = fastcgi_defaults().max_reqs_per_conn,
          value_parser = at_least_one())]
    pub max_requests_per_conn: usize,

    /// Largest size of one request's CGI variables (FastCGI PARAMS), in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = fastcgi_defaults().max_params_bytes,
          value_parser = at_least_one())]
    pub max_params_bytes: usize,

    /// Close a connection idle for this long (e.g. 30s, 500ms, 2m).
    ///
    /// Idle: no request in progress and nothing received.
    #[arg(long, value_name = "DURATION",
          default_value_t = HumanDuration(fastcgi_defaults().idle_timeout))]
    pub idle_timeout: HumanDuration,
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

    /// Log level: error, warn, info, debug or trace [default: RUST_LOG, else info].
    ///
    /// A filter such as `info,gatehouse_fastcgi=debug` works too. Logs go to stderr.
    #[arg(long, value_name = "LEVEL", value_parser = parse_log_filter)]
    pub log_level: Option<String>,
}

/// The APP argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppSpec {
    /// A built-in app of `gatehouse_dispatch::builtin`.
    Builtin(&'static str),
}

impl fmt::Display for AppSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Builtin(name) => f.write_str(name),
        }
    }
}

/// A list of IP addresses (`--web-server-addrs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpList(pub Vec<IpAddr>);

impl Cli {
    /// Parses `args` (the first item is the program name). `Err` carries the exit status after
    /// the message was printed: 0 for `--help`/`--version`, 2 for a usage error.
    pub fn try_from_args<I, T>(args: I) -> Result<Self, u8>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        finish_parse(Self::command().try_get_matches_from(args), false)
    }

    /// Parses the command line of a program embedding gatehouse through [`crate::serve`]: the
    /// same options, but no APP argument (the program is the app).
    pub fn try_from_args_embedded<I, T>(args: I) -> Result<Self, u8>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        let name = args
            .first()
            .and_then(|a| std::path::Path::new(a).file_name())
            .map_or_else(|| "app".to_owned(), |n| n.to_string_lossy().into_owned());
        let cmd = Self::command()
            .name(name.clone())
            .bin_name(name)
            .about("A Rust app served by gatehouse: web servers reach it over FastCGI")
            .long_about(None)
            .after_help(
                "With no listener option it serves FastCGI on the listening socket inherited \
                 on fd 0, or else on 127.0.0.1:9000.\nSignals: SIGTERM or SIGINT drains and \
                 exits 0; a second signal exits at once.",
            )
            .mut_arg("app", |a| a.hide(true));
        finish_parse(cmd.try_get_matches_from(args), true)
    }
}

fn finish_parse(matches: Result<clap::ArgMatches, clap::Error>, embedded: bool) -> Result<Cli, u8> {
    let matches = matches.map_err(|e| report(&e))?;
    if embedded && matches.value_source("app") == Some(clap::parser::ValueSource::CommandLine) {
        eprintln!("error: this program serves its own app and takes no APP argument (see --help)");
        return Err(2);
    }
    Cli::from_arg_matches(&matches).map_err(|e| report(&e))
}

/// Prints a clap error: help and version as clap does, usage errors on one line.
fn report(e: &clap::Error) -> u8 {
    if !e.use_stderr() {
        let _ = e.print();
        return 0;
    }
    let text = e.to_string();
    let first = text.lines().next().unwrap_or("bad command line");
    eprintln!("{first} (see --help)");
    2
}

fn at_least_one() -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::new().range(1..)
}

fn fastcgi_defaults() -> gatehouse_fastcgi::Config {
    gatehouse_fastcgi::Config::default()
}

/// A duration written as `30s`, `500ms`, `2m`, `1h`, or a bare number of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d.subsec_nanos() % 1_000_000 != 0 {
            write!(f, "{}ms", d.as_millis().max(1))
        } else if d.subsec_millis() != 0 || d.as_secs() == 0 {
            write!(f, "{}ms", d.as_millis())
        } else {
            write!(f, "{}s", d.as_secs())
        }
    }
}

impl std::str::FromStr for HumanDuration {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        parse_duration(s).map(Self)
    }
}

/// `30s`, `500ms`, `2m`, `1h`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a duration like 30s, 500ms or 2m"))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        _ => return Err(format!("'{s}': unknown unit '{unit}' (use ms, s, m or h)")),
    };
    Ok(d)
}

fn parse_app(s: &str) -> Result<AppSpec, String> {
    if let Some(&name) = gatehouse_dispatch::builtin::NAMES.iter().find(|&&n| n == s) {
        return Ok(AppSpec::Builtin(name));
    }
    if let Some((form, _)) = s.split_once(':') {
        if matches!(form, "wsgi" | "cgi") {
            return Err(format!(
                "'{form}:' apps are not available in this build yet"
            ));
        }
    }
    Err(format!(
        "unknown app '{s}': the built-in apps are {}",
        gatehouse_dispatch::builtin::NAMES.join(", ")
    ))
}

fn parse_mode(s: &str) -> Result<u32, String> {
    let digits = s.strip_prefix("0o").unwrap_or(s);
    match u32::from_str_radix(digits, 8) {
        Ok(mode) if !digits.is_empty() && mode <= 0o777 => Ok(mode),
        _ => Err(format!(
            "'{s}' is not an octal mode from 0 to 777 (like 660)"
        )),
    }
}

fn parse_ip_list(s: &str) -> Result<IpList, String> {
    gatehouse_fastcgi::Config::web_server_addrs_from_env(s)
        .map(IpList)
        .map_err(|e| e.to_string())
}

fn parse_log_filter(s: &str) -> Result<String, String> {
    tracing_subscriber::EnvFilter::try_new(s)
        .map(|_| s.to_owned())
        .map_err(|e| format!("'{s}' is not a log level or filter: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, u8> {
        Cli::try_from_args(std::iter::once("gatehouse").chain(args.iter().copied()))
    }

    #[test]
    fn defaults() {
        let cli = parse(&[]).unwrap();
        assert_eq!(cli.app, AppSpec::Builtin("hello"));
        assert!(cli.listen.fastcgi.is_empty());
        assert_eq!(cli.listen.backlog, DEFAULT_BACKLOG);
        assert_eq!(cli.run.drain_timeout.0, Duration::from_secs(30));
        let d = fastcgi_defaults();
        assert_eq!(cli.limits.max_conns, d.max_conns);
        assert_eq!(cli.limits.idle_timeout.0, d.idle_timeout);
    }

    #[test]
    fn listeners_repeat() {
        let cli = parse(&[
            "echo",
            "--fastcgi",
            "127.0.0.1:0",
            "--fastcgi",
            "unix:/tmp/x",
        ])
        .unwrap();
        assert_eq!(cli.app, AppSpec::Builtin("echo"));
        assert_eq!(cli.listen.fastcgi.len(), 2);
    }

    #[test]
    fn usage_errors_exit_2() {
        for args in [
            &["nope"][..],
            &["wsgi:app:application"],
            &["--fastcgi", "9000"],
            &["--socket-mode", "999"],
            &["--backlog", "0"],
            &["--drain-timeout", "5 parsecs"],
            &["--web-server-addrs", "10.0.0.300"],
            &["--log-level", "info,=[="],
            &["--no-such-flag"],
        ] {
            assert_eq!(parse(args).unwrap_err(), 2, "{args:?}");
        }
    }

    #[test]
    fn embedded_refuses_app() {
        let embedded = |args: &[&str]| {
            Cli::try_from_args_embedded(std::iter::once("/x/my-app").chain(args.iter().copied()))
        };
        assert!(embedded(&["--fastcgi", "127.0.0.1:0"]).is_ok());
        assert_eq!(embedded(&["echo"]).unwrap_err(), 2);
    }

    #[test]
    fn durations_modes_and_ips() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("7").unwrap(), Duration::from_secs(7));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("1.5s").is_err());
        for d in [
            Duration::from_millis(250),
            Duration::from_secs(90),
            Duration::ZERO,
        ] {
            assert_eq!(parse_duration(&HumanDuration(d).to_string()).unwrap(), d);
        }
        assert_eq!(parse_mode("660").unwrap(), 0o660);
        assert_eq!(parse_mode("0o600").unwrap(), 0o600);
        assert!(parse_mode("8").is_err());
        assert_eq!(parse_ip_list(" 127.0.0.1, ::1 ,").unwrap().0.len(), 2);
        assert!(parse_ip_list("").is_err());
    }

    #[test]
    fn help_is_consistent() {
        Cli::command().debug_assert();
    }
}
