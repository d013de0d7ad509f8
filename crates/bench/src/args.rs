//! The command line: clap definitions, value parsers (durations, sizes, headers, escapes) and
//! their validation into a [`Plan`], the immutable description of one run.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use clap::{ArgGroup, Parser};

use crate::values::{parse_duration, parse_escaped, parse_header, parse_param, parse_size};

/// `gatehouse-bench` command-line options, as typed.
#[derive(Debug, Parser)]
#[command(
    name = "gatehouse-bench",
    version,
    about = "A load generator that speaks FastCGI, SCGI and HTTP/1.1 directly (no web server in between).",
    long_about = "A load generator that speaks FastCGI, SCGI and HTTP/1.1 directly (no web server in between).\n\n\
Closed loop by default: every connection sends its next request as soon as the previous answer is in.\n\
With --rate it runs open loop: requests are due on a fixed schedule, and a request held back by a\n\
busy connection is timed from when it was due, so a stalled server shows in the percentiles (no\n\
coordinated omission). A request whose connection was free is timed from when it went out (the\n\
runtime's timer may wake up to 1 ms late: that delay is the client's, not the server's).\n\
Every response is checked (2xx status; --expect-body: the exact body). Any error makes the run\n\
print ERRORS and exit 1.",
    group(ArgGroup::new("target").required(true).args(["fastcgi", "scgi", "http"])),
)]
pub struct Cli {
    /// FastCGI server: HOST:PORT or unix:/path.
    #[arg(long, value_name = "ADDR")]
    pub fastcgi: Option<String>,
    /// SCGI server: HOST:PORT or unix:/path (one request per connection, as SCGI defines).
    #[arg(long, value_name = "ADDR")]
    pub scgi: Option<String>,
    /// HTTP/1.1 server: `http://HOST[:PORT][/PATH]` or unix:/path (keep-alive).
    #[arg(long, value_name = "URL")]
    pub http: Option<String>,
    /// Connections held open at once.
    #[arg(short = 'c', long, default_value_t = 16, value_name = "N")]
    pub connections: usize,
    /// How long to measure (after the warm-up), e.g. 10s, 500ms, 2m. Default 10s.
    #[arg(short = 'd', long, value_parser = parse_duration, conflicts_with = "requests")]
    pub duration: Option<Duration>,
    /// Measure this many requests instead of a duration.
    #[arg(short = 'n', long, value_name = "N")]
    pub requests: Option<u64>,
    /// Open loop: this many requests per second in total, on a fixed schedule.
    #[arg(long, value_name = "R")]
    pub rate: Option<f64>,
    /// Send a body of N bytes (e.g. 512, 64KiB, 10MiB).
    #[arg(long, value_parser = parse_size, value_name = "N", conflicts_with = "body_file")]
    pub body_size: Option<u64>,
    /// Send the contents of this file as the body.
    #[arg(long, value_name = "FILE")]
    pub body_file: Option<PathBuf>,
    /// Add a request header, 'Name: value' (repeatable).
    #[arg(short = 'H', long = "header", value_parser = parse_header, value_name = "'NAME: VALUE'")]
    pub headers: Vec<(String, String)>,
    /// FastCGI and SCGI: add (or replace) a CGI variable, NAME=VALUE (repeatable), e.g.
    /// SCRIPT_FILENAME=/srv/cgi-bin/hello.sh for fcgiwrap.
    #[arg(short = 'P', long = "param", value_parser = parse_param, value_name = "NAME=VALUE")]
    pub params: Vec<(String, String)>,
    /// Request path, with an optional ?query. Default: the URL's path, else /.
    #[arg(long)]
    pub path: Option<String>,
    /// Request method. Default: POST with a body, else GET.
    #[arg(short = 'm', long)]
    pub method: Option<String>,
    /// FastCGI: set FCGI_KEEP_CONN and reuse connections (the default).
    #[arg(long, overrides_with = "no_keep_conn")]
    pub keep_conn: bool,
    /// FastCGI: a new connection per request (the server closes after FCGI_END_REQUEST).
    #[arg(long, overrides_with = "keep_conn")]
    pub no_keep_conn: bool,
    /// FastCGI: K requests in flight at once on each connection (distinct request ids).
    #[arg(long, default_value_t = 1, value_name = "K")]
    pub multiplex: usize,
    /// Run the load this long before measuring (same connections, nothing recorded).
    #[arg(long, value_parser = parse_duration, default_value = "0s")]
    pub warmup: Duration,
    /// Every response body must be exactly this text (escapes: \n \r \t \\ \xHH).
    #[arg(long, value_parser = parse_escaped, value_name = "TEXT")]
    pub expect_body: Option<Bytes>,
    /// Print one JSON object on stdout instead of the text report.
    #[arg(long)]
    pub json: bool,
    /// Client threads (one single-threaded runtime each). Default: CPU count, at most -c.
    #[arg(short = 't', long)]
    pub threads: Option<usize>,
    /// A request not answered within this time is an error and its connection is closed.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub timeout: Duration,
    /// No progress line on stderr.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Idle mode: open -c connections, send one request on each, then hold them all open and
    /// idle this long (for measuring a server's memory per connection).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub idle_hold: Option<Duration>,
}

/// Which protocol to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// FastCGI 1.0, Responder role.
    Fastcgi,
    /// SCGI 1.
    Scgi,
    /// HTTP/1.1.
    Http,
}

/// Where to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addr {
    /// A TCP address, resolved once at start.
    Tcp(SocketAddr),
    /// A unix socket.
    Unix(PathBuf),
}

/// When the measured part of a run ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// After this long.
    Duration(Duration),
    /// After this many requests were sent and answered.
    Requests(u64),
}

/// One run, validated.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Protocol spoken.
    pub protocol: Protocol,
    /// Where to.
    pub addr: Addr,
    /// The `Host` header / `SERVER_NAME`:`SERVER_PORT`.
    pub host: String,
    /// Connections.
    pub connections: usize,
    /// End of the measurement.
    pub stop: Stop,
    /// Open-loop rate in requests per second.
    pub rate: Option<f64>,
    /// Method.
    pub method: String,
    /// Path with query.
    pub path: String,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Extra CGI variables (FastCGI, SCGI).
    pub params: Vec<(String, String)>,
    /// Request body.
    pub body: Bytes,
    /// FastCGI `FCGI_KEEP_CONN`.
    pub keep_conn: bool,
    /// Requests in flight per connection.
    pub multiplex: usize,
    /// Warm-up.
    pub warmup: Duration,
    /// Exact expected body.
    pub expect_body: Option<Bytes>,
    /// JSON output.
    pub json: bool,
    /// Client threads.
    pub threads: usize,
    /// Per-request timeout.
    pub timeout: Duration,
    /// No progress line.
    pub quiet: bool,
    /// Idle mode.
    pub idle_hold: Option<Duration>,
}

/// The longest body the tool keeps in memory.
pub const MAX_BODY: u64 = 1 << 32;

impl Cli {
    /// Checks the options and builds the plan (reads `--body-file`, resolves the address).
    pub fn into_plan(self) -> Result<Plan, String> {
        let (protocol, spec) = match (&self.fastcgi, &self.scgi, &self.http) {
            (Some(a), None, None) => (Protocol::Fastcgi, a.as_str()),
            (None, Some(a), None) => (Protocol::Scgi, a.as_str()),
            (None, None, Some(a)) => (Protocol::Http, a.as_str()),
            _ => return Err("give exactly one of --fastcgi, --scgi, --http".into()),
        };
        let (addr, host, url_path) = parse_target(protocol, spec)?;
        let keep_conn = protocol != Protocol::Scgi && !self.no_keep_conn;
        self.check_counts(protocol, keep_conn)?;
        let body = self.load_body()?;
        let method = self
            .method
            .clone()
            .unwrap_or_else(|| if body.is_empty() { "GET" } else { "POST" }.to_owned());
        if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(format!("bad method {method:?}"));
        }
        let path = self.path.clone().or(url_path).unwrap_or_else(|| "/".into());
        if !path.starts_with('/') || path.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(format!(
                "bad path {path:?}: it starts with / and has no spaces"
            ));
        }
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(Plan {
            protocol,
            addr,
            host,
            connections: self.connections,
            stop: match (self.requests, self.duration) {
                (Some(n), _) => Stop::Requests(n),
                (None, d) => Stop::Duration(d.unwrap_or(Duration::from_secs(10))),
            },
            rate: self.rate,
            method,
            path,
            headers: self.headers,
            params: self.params,
            body,
            keep_conn,
            multiplex: self.multiplex,
            warmup: self.warmup,
            expect_body: self.expect_body,
            json: self.json,
            threads: self
                .threads
                .unwrap_or(cpus)
                .clamp(1, self.connections.max(1)),
            timeout: self.timeout,
            quiet: self.quiet,
            idle_hold: self.idle_hold,
        })
    }

    fn check_counts(&self, protocol: Protocol, keep_conn: bool) -> Result<(), String> {
        if self.connections == 0 {
            return Err("-c must be at least 1".into());
        }
        if self.requests == Some(0) {
            return Err("-n must be at least 1".into());
        }
        if self.duration == Some(Duration::ZERO) {
            return Err("-d must be longer than 0".into());
        }
        if let Some(r) = self.rate {
            if !(r.is_finite() && r > 0.0) {
                return Err(format!("--rate must be a positive number, not {r}"));
            }
        }
        if self.multiplex == 0 || self.multiplex > usize::from(u16::MAX) {
            return Err("--multiplex must be between 1 and 65535".into());
        }
        if self.multiplex > 1 && (protocol != Protocol::Fastcgi || !keep_conn) {
            return Err("--multiplex needs --fastcgi with keep-conn".into());
        }
        if !self.params.is_empty() && protocol == Protocol::Http {
            return Err("--param sets CGI variables: it needs --fastcgi or --scgi".into());
        }
        if self.threads == Some(0) {
            return Err("-t must be at least 1".into());
        }
        if self.idle_hold.is_some() && !(keep_conn && protocol != Protocol::Scgi) {
            return Err("--idle-hold needs kept-alive connections (FastCGI or HTTP)".into());
        }
        Ok(())
    }

    fn load_body(&self) -> Result<Bytes, String> {
        if let Some(file) = &self.body_file {
            return std::fs::read(file)
                .map(Bytes::from)
                .map_err(|e| format!("--body-file {}: {e}", file.display()));
        }
        let size = self.body_size.unwrap_or(0);
        if size > MAX_BODY {
            return Err(format!(
                "--body-size {size} is over the limit of {MAX_BODY}"
            ));
        }
        // A repeating printable pattern, so a body echoed back or logged stays readable.
        let pattern = b"gatehouse-bench body 0123456789abcdefghijklmnopqrstuvwxyz\n";
        Ok(pattern
            .iter()
            .copied()
            .cycle()
            .take(size as usize)
            .collect())
    }
}

/// Splits `--fastcgi`/`--scgi` ADDR or `--http` URL into address, host name and URL path.
fn parse_target(protocol: Protocol, spec: &str) -> Result<(Addr, String, Option<String>), String> {
    if let Some(path) = spec.strip_prefix("unix:") {
        if path.is_empty() {
            return Err(format!("{spec:?}: unix: needs a path"));
        }
        return Ok((Addr::Unix(path.into()), "localhost".into(), None));
    }
    let (hostport, path, default_port) = match (protocol, spec.strip_prefix("http://")) {
        (Protocol::Http, Some(rest)) => match rest.find('/') {
            Some(i) => (&rest[..i], Some(rest[i..].to_owned()), Some(80)),
            None => (rest, None, Some(80)),
        },
        (Protocol::Http, None) if spec.contains("://") => {
            return Err(format!("{spec:?}: only http:// URLs are supported"))
        }
        _ => (spec, None, None),
    };
    let has_port = hostport.rsplit_once(':').is_some_and(|(h, p)| {
        !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && !h.ends_with(':')
    }) && !hostport.ends_with(']');
    let resolvable = match (has_port, default_port) {
        (true, _) => hostport.to_owned(),
        (false, Some(port)) => format!("{hostport}:{port}"),
        (false, None) => return Err(format!("{spec:?}: expected HOST:PORT or unix:/path")),
    };
    let sock = resolvable
        .to_socket_addrs()
        .map_err(|e| format!("{spec:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("{spec:?}: resolves to no address"))?;
    Ok((Addr::Tcp(sock), hostport.to_owned(), path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(args: &[&str]) -> Result<Plan, String> {
        let argv = std::iter::once("gatehouse-bench").chain(args.iter().copied());
        Cli::try_parse_from(argv)
            .map_err(|e| e.to_string())?
            .into_plan()
    }

    #[test]
    fn defaults() {
        let p = plan(&["--fastcgi", "127.0.0.1:9000"]).unwrap();
        assert_eq!(p.protocol, Protocol::Fastcgi);
        assert_eq!(p.addr, Addr::Tcp("127.0.0.1:9000".parse().unwrap()));
        assert_eq!(p.connections, 16);
        assert_eq!(p.stop, Stop::Duration(Duration::from_secs(10)));
        assert!(p.keep_conn);
        assert_eq!((p.method.as_str(), p.path.as_str()), ("GET", "/"));
        assert_eq!(p.multiplex, 1);
        assert!(p.body.is_empty() && p.rate.is_none() && !p.json);
        assert!(p.threads >= 1);
    }

    #[test]
    fn all_options() {
        let p = plan(&[
            "--fastcgi=unix:/tmp/x.sock",
            "-c256",
            "-n",
            "200",
            "--rate=1500.5",
            "--body-size",
            "10MiB",
            "-H",
            "X-A: b c ",
            "--header=Content-Type: text/plain",
            "--path=/echo?x=1",
            "--multiplex",
            "8",
            "--warmup",
            "500ms",
            "--expect-body",
            "Hello, world!\\n",
            "--json",
            "-t",
            "3",
            "--timeout=2s",
        ])
        .unwrap();
        assert_eq!(p.addr, Addr::Unix("/tmp/x.sock".into()));
        assert_eq!(p.connections, 256);
        assert_eq!(p.stop, Stop::Requests(200));
        assert_eq!(p.rate, Some(1500.5));
        assert_eq!(p.body.len(), 10 << 20);
        assert_eq!(p.method, "POST");
        assert_eq!(p.headers[0], ("X-A".into(), "b c".into()));
        assert_eq!(p.path, "/echo?x=1");
        assert_eq!(p.multiplex, 8);
        assert_eq!(p.warmup, Duration::from_millis(500));
        assert_eq!(p.expect_body.as_deref(), Some(&b"Hello, world!\n"[..]));
        assert_eq!((p.threads, p.timeout), (3, Duration::from_secs(2)));
        assert!(p.json);
    }

    #[test]
    fn keep_conn_flags_last_wins() {
        let p = plan(&["--fastcgi=127.0.0.1:1", "--no-keep-conn", "--keep-conn"]).unwrap();
        assert!(p.keep_conn);
        let p = plan(&["--fastcgi=127.0.0.1:1", "--keep-conn", "--no-keep-conn"]).unwrap();
        assert!(!p.keep_conn);
        assert!(!plan(&["--scgi=127.0.0.1:1"]).unwrap().keep_conn);
    }

    #[test]
    fn http_urls() {
        let p = plan(&["--http", "http://127.0.0.1:8080/a/b?q"]).unwrap();
        assert_eq!(p.addr, Addr::Tcp("127.0.0.1:8080".parse().unwrap()));
        assert_eq!(
            (p.host.as_str(), p.path.as_str()),
            ("127.0.0.1:8080", "/a/b?q")
        );
        let p = plan(&["--http", "http://127.0.0.1", "--path", "/x"]).unwrap();
        assert_eq!(p.addr, Addr::Tcp("127.0.0.1:80".parse().unwrap()));
        assert_eq!(p.path, "/x");
        let p = plan(&["--http", "http://[::1]:81/"]).unwrap();
        assert_eq!(p.addr, Addr::Tcp("[::1]:81".parse().unwrap()));
        assert!(plan(&["--http", "https://127.0.0.1/"]).is_err());
    }

    #[test]
    fn refusals() {
        for bad in [
            &["-c", "4"][..],
            &["--fastcgi=127.0.0.1:1", "--scgi=127.0.0.1:1"],
            &["--fastcgi=127.0.0.1"],
            &["--fastcgi=unix:"],
            &["--fastcgi=127.0.0.1:1", "-c0"],
            &["--fastcgi=127.0.0.1:1", "-n0"],
            &["--fastcgi=127.0.0.1:1", "-n5", "-d1s"],
            &["--fastcgi=127.0.0.1:1", "--rate=0"],
            &["--fastcgi=127.0.0.1:1", "--rate=-3"],
            &["--fastcgi=127.0.0.1:1", "--multiplex=0"],
            &["--fastcgi=127.0.0.1:1", "--multiplex=70000"],
            &["--fastcgi=127.0.0.1:1", "--multiplex=2", "--no-keep-conn"],
            &["--scgi=127.0.0.1:1", "--multiplex=2"],
            &["--scgi=127.0.0.1:1", "--idle-hold=1s"],
            &["--fastcgi=127.0.0.1:1", "--body-size=1Q"],
            &["--fastcgi=127.0.0.1:1", "--body-size=3", "--body-file=/x"],
            &["--fastcgi=127.0.0.1:1", "--body-file=/nonexistent/x"],
            &["--fastcgi=127.0.0.1:1", "-H", "NoColon"],
            &["--fastcgi=127.0.0.1:1", "-H", "Bad Name: x"],
            &["--fastcgi=127.0.0.1:1", "--path=nope"],
            &["--fastcgi=127.0.0.1:1", "--path=/a b"],
            &["--fastcgi=127.0.0.1:1", "-m", "GE T"],
            &["--fastcgi=127.0.0.1:1", "--expect-body=\\q"],
            &["--fastcgi=127.0.0.1:1", "-d", "0"],
            &["--fastcgi=127.0.0.1:1", "-d", "3 fortnights"],
            &["--http=http://127.0.0.1:1/", "--param", "A=b"],
            &["--fastcgi=127.0.0.1:1", "--param", "novalue"],
            &["--fastcgi=127.0.0.1:1", "--param", "=x"],
        ] {
            assert!(plan(bad).is_err(), "{bad:?} accepted");
        }
    }
}
