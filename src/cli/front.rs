//! Where to listen (`--fastcgi`, `--scgi`, `--http`, socket options) and the limits of each front
//! end. Each option's default is the front-end crate's `DEFAULT_*` constant, so `--help`, the
//! README table and the code cannot disagree.

use clap::{ArgAction, Args};

use super::values::{
    at_least_one, parse_ip_list, parse_mode, parse_timeout, HumanDuration, IpList,
};
use crate::addr::ListenAddr;

/// `--backlog` default: the listen(2) queue length.
pub const DEFAULT_BACKLOG: i32 = 1024;

/// The listener options. Each protocol gets its own repeatable flag taking the same ADDR forms.
#[derive(Debug, Clone, Args)]
pub struct ListenArgs {
    /// Serve FastCGI on ADDR (repeatable).
    ///
    /// ADDR is `HOST:PORT` (`127.0.0.1:9000`, `0.0.0.0:9000`), `[V6]:PORT` (`[::1]:9000`),
    /// `unix:/path/to.sock`, `fd:N` (a listening socket inherited on descriptor N), or
    /// `systemd:NAME` (the sockets systemd passed with FileDescriptorName=NAME). Port 0 picks a
    /// free port; the log says which.
    #[arg(long = "fastcgi", value_name = "ADDR", action = ArgAction::Append)]
    pub fastcgi: Vec<ListenAddr>,

    /// Serve SCGI on ADDR (repeatable; same ADDR forms as --fastcgi).
    ///
    /// For nginx `scgi_pass`, Apache mod_proxy_scgi, lighttpd mod_scgi: one request per
    /// connection.
    #[arg(long = "scgi", value_name = "ADDR", action = ArgAction::Append)]
    pub scgi: Vec<ListenAddr>,

    /// Serve HTTP/1.1 on ADDR (repeatable; same ADDR forms as --fastcgi).
    ///
    /// For browsers, curl, or a proxy such as nginx `proxy_pass`: keep-alive, pipelining,
    /// chunked bodies.
    #[arg(long = "http", value_name = "ADDR", action = ArgAction::Append)]
    pub http: Vec<ListenAddr>,

    /// Serve the uwsgi protocol on ADDR (repeatable; same ADDR forms as --fastcgi).
    ///
    /// For nginx `uwsgi_pass`, Apache mod_proxy_uwsgi: one request per connection, answered
    /// in HTTP/1.1 as uWSGI does. uWSGI's magic UWSGI_* variables are dropped, never acted on.
    #[arg(long = "uwsgi", value_name = "ADDR", action = ArgAction::Append)]
    pub uwsgi: Vec<ListenAddr>,

    /// Permissions of the unix sockets we create, in octal (e.g. 660).
    ///
    /// A web server needs write permission on the socket to connect: `660` lets the owner and
    /// group in, `666` everyone. Without this option the umask decides.
    #[arg(long, value_name = "MODE", value_parser = parse_mode)]
    pub socket_mode: Option<u32>,

    /// Owner of the unix sockets we create: USER, USER:GROUP or :GROUP (names or ids).
    ///
    /// Set before the socket accepts anything, as --socket-mode is. Changing the owner needs
    /// root; with --user, the daemon binds and chowns as root, then drops to that user.
    #[arg(long, value_name = "USER[:GROUP]", value_parser = parse_owner)]
    pub socket_owner: Option<String>,

    /// Connections that may wait to be accepted (the listen(2) backlog).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_BACKLOG,
          value_parser = clap::value_parser!(i32).range(1..))]
    pub backlog: i32,

    /// Only these web server IPs may connect to FastCGI over TCP (comma-separated).
    ///
    /// Connections from other addresses are closed at once and logged. Unix sockets, SCGI and
    /// HTTP are not affected. Read from FCGI_WEB_SERVER_ADDRS when not given, as the FastCGI
    /// specification (section 3.2) says.
    #[arg(long, value_name = "IP,IP,...", env = "FCGI_WEB_SERVER_ADDRS",
          value_parser = parse_ip_list, hide_env_values = true)]
    pub web_server_addrs: Option<IpList>,

    /// Who the daemon runs as once its sockets are bound.
    #[command(flatten, next_help_heading = "Running as another user")]
    pub privileges: PrivilegeArgs,
}

impl ListenArgs {
    /// Whether any listener option was given.
    pub fn any(&self) -> bool {
        !(self.fastcgi.is_empty()
            && self.scgi.is_empty()
            && self.http.is_empty()
            && self.uwsgi.is_empty())
    }

    /// Every listener address, FastCGI first, then SCGI, HTTP, uwsgi.
    pub fn all(&self) -> impl Iterator<Item = &ListenAddr> {
        self.fastcgi
            .iter()
            .chain(&self.scgi)
            .chain(&self.http)
            .chain(&self.uwsgi)
    }

    /// What the parser cannot see: one inherited descriptor given twice (for any protocols).
    pub(crate) fn check(&self) -> Result<(), String> {
        let mut fds: Vec<i32> = self
            .all()
            .filter_map(|a| match a {
                ListenAddr::Fd(fd) => Some(*fd),
                _ => None,
            })
            .collect();
        fds.sort_unstable();
        match fds.windows(2).find(|w| w[0] == w[1]) {
            Some(w) => Err(format!("fd:{} is given twice", w[0])),
            None => Ok(()),
        }
    }
}

/// `--user` and `--group`: the identity the daemon drops to after binding (as root).
#[derive(Debug, Clone, Args)]
pub struct PrivilegeArgs {
    /// After binding, run as this user (name or uid), with its primary group unless --group.
    ///
    /// gatehouse must start as root (or already be this user). It binds its sockets as root,
    /// then, before any app starts, drops to the user: no supplementary groups, the group, then
    /// the user, checked (getting root back must fail).
    #[arg(long, value_name = "USER", value_parser = parse_account)]
    pub user: Option<String>,

    /// After binding, run with this group (name or gid); without --user only the group changes.
    #[arg(long, value_name = "GROUP", value_parser = parse_account)]
    pub group: Option<String>,
}

/// A user or group name, or a numeric id: only its spelling here; it is looked up at start-up.
fn parse_account(s: &str) -> Result<String, String> {
    if s.is_empty() || s.contains(['\0', ':']) || s.chars().any(char::is_whitespace) {
        return Err(format!(
            "'{}' is not a user or group name or id",
            s.escape_default()
        ));
    }
    Ok(s.to_owned())
}

/// `USER`, `USER:GROUP` or `:GROUP`.
fn parse_owner(s: &str) -> Result<String, String> {
    let (user, group) = s.split_once(':').unwrap_or((s, ""));
    let ok = |part: &str| part.is_empty() || parse_account(part).is_ok();
    if (user.is_empty() && group.is_empty()) || !ok(user) || !ok(group) {
        return Err(format!(
            "'{}' is not USER, USER:GROUP or :GROUP",
            s.escape_default()
        ));
    }
    Ok(s.to_owned())
}

/// The limits: `--max-conns` covers every front end; the others are FastCGI's.
#[derive(Debug, Clone, Args)]
pub struct LimitArgs {
    /// Connections served at once, over all listeners and protocols.
    ///
    /// Further connections wait in the kernel's backlog until one closes.
    #[arg(long, value_name = "N", default_value_t = fastcgi_defaults().max_conns,
          value_parser = at_least_one())]
    pub max_conns: usize,

    /// Connections one listener may hold at once, within --max-conns [default: --max-conns
    /// with one listener; three quarters of it with several].
    ///
    /// So the web server's FastCGI socket keeps a share however many clients hold the HTTP
    /// listener (slow clients, a flood): each listener waits at its own budget, its further
    /// connections in its own backlog.
    #[arg(long, value_name = "N", value_parser = at_least_one())]
    pub max_conns_per_listener: Option<usize>,

    /// FastCGI: requests in progress at once, over all connections (of one worker).
    ///
    /// A request beyond it is refused with FCGI_OVERLOADED (nginx answers its client 502).
    /// Reported to FCGI_GET_VALUES as FCGI_MAX_REQS.
    #[arg(long, value_name = "N", default_value_t = fastcgi_defaults().max_reqs,
          value_parser = at_least_one())]
    pub fastcgi_max_reqs: usize,

    /// FastCGI: requests in progress at once on one connection (multiplexing).
    #[arg(long, value_name = "N", default_value_t = fastcgi_defaults().max_reqs_per_conn,
          value_parser = at_least_one(), alias = "max-requests-per-conn")]
    pub fastcgi_max_reqs_per_conn: usize,

    /// FastCGI: largest size of one request's CGI variables (PARAMS), in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = fastcgi_defaults().max_params_bytes,
          value_parser = at_least_one())]
    pub max_params_bytes: usize,

    /// FastCGI: close a connection idle for this long (e.g. 30s, 500ms, 2m).
    ///
    /// Idle: no request in progress and nothing received.
    #[arg(long, value_name = "DURATION",
          default_value_t = HumanDuration(fastcgi_defaults().idle_timeout))]
    pub idle_timeout: HumanDuration,
}

/// SCGI limits.
#[derive(Debug, Clone, Args)]
pub struct ScgiArgs {
    /// Largest SCGI header netstring, in bytes; a larger one gets 400.
    #[arg(long, value_name = "BYTES", default_value_t = gatehouse_scgi::DEFAULT_MAX_HEADER_BYTES,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new()
              .range(gatehouse_scgi::MIN_HEADER_BYTES as u64..))]
    pub scgi_max_header_bytes: usize,

    /// From accepting an SCGI connection to having its whole head; then 400.
    #[arg(long, value_name = "DURATION", value_parser = parse_timeout,
          default_value_t = HumanDuration(gatehouse_scgi::DEFAULT_HEADER_TIMEOUT))]
    pub scgi_header_timeout: HumanDuration,

    /// How long an SCGI peer may make no progress reading or writing.
    #[arg(long, value_name = "DURATION", value_parser = parse_timeout,
          default_value_t = HumanDuration(gatehouse_scgi::DEFAULT_IDLE_TIMEOUT))]
    pub scgi_idle_timeout: HumanDuration,

    /// Refuse every repeated SCGI header name with 400, as the specification says.
    ///
    /// By default repeated HTTP_* names (older nginx sends one per repeated request header) are
    /// joined with ", " and other repeats refused.
    #[arg(long)]
    pub scgi_strict_duplicates: bool,
}

/// uwsgi limits.
#[derive(Debug, Clone, Args)]
pub struct UwsgiArgs {
    /// Largest uwsgi vars block (the packet's datasize), in bytes; a larger one gets 400.
    ///
    /// Checked on the 4-byte packet header, before the vars are read. uWSGI calls this
    /// buffer-size (default 4096 there); the protocol's most is 65535.
    #[arg(long, value_name = "BYTES", default_value_t = gatehouse_uwsgi::DEFAULT_MAX_VARS_BYTES,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new()
              .range(gatehouse_uwsgi::MIN_VARS_BYTES as u64..=gatehouse_uwsgi::MAX_DATASIZE as u64))]
    pub uwsgi_max_vars_bytes: usize,

    /// From accepting a uwsgi connection to having its whole packet (header and vars); then 400.
    #[arg(long, value_name = "DURATION", value_parser = parse_timeout,
          default_value_t = HumanDuration(gatehouse_uwsgi::DEFAULT_HEADER_TIMEOUT))]
    pub uwsgi_header_timeout: HumanDuration,

    /// How long a uwsgi peer may make no progress reading or writing.
    #[arg(long, value_name = "DURATION", value_parser = parse_timeout,
          default_value_t = HumanDuration(gatehouse_uwsgi::DEFAULT_IDLE_TIMEOUT))]
    pub uwsgi_idle_timeout: HumanDuration,
}

/// HTTP limits.
#[derive(Debug, Clone, Args)]
pub struct HttpArgs {
    /// Largest HTTP request head (request line and headers), in bytes; larger gets 431.
    #[arg(long, value_name = "BYTES", default_value_t = gatehouse_http::DEFAULT_MAX_HEADER_BYTES,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(64..))]
    pub http_max_header_bytes: usize,

    /// Most header lines in one HTTP request; more get 431.
    #[arg(long, value_name = "N", default_value_t = gatehouse_http::DEFAULT_MAX_HEADERS,
          value_parser = at_least_one())]
    pub http_max_headers: usize,

    /// Once an HTTP request head has started, it must be complete within this time.
    #[arg(long, value_name = "DURATION", value_parser = parse_timeout,
          default_value_t = HumanDuration(gatehouse_http::DEFAULT_HEADER_READ_TIMEOUT))]
    pub http_header_timeout: HumanDuration,

    /// How long an HTTP client may make no progress (also: idle keep-alive connections).
    #[arg(long, value_name = "DURATION", value_parser = parse_timeout,
          default_value_t = HumanDuration(gatehouse_http::DEFAULT_IDLE_TIMEOUT))]
    pub http_idle_timeout: HumanDuration,

    /// A request body may take this long, plus a second per --http-body-min-rate bytes
    /// (Apache's RequestReadTimeout body=20,MinRate=500); a slower one is cut. Only time spent
    /// waiting on the client counts.
    #[arg(long, value_name = "DURATION", value_parser = parse_timeout,
          default_value_t = HumanDuration(gatehouse_http::DEFAULT_BODY_MIN_RATE.grace))]
    pub http_body_timeout: HumanDuration,

    /// Bytes per second a request body must average past --http-body-timeout (0: no minimum
    /// rate, only --http-idle-timeout between pieces).
    #[arg(long, value_name = "BYTES", default_value_t = gatehouse_http::DEFAULT_BODY_MIN_RATE.rate)]
    pub http_body_min_rate: u64,
}

pub(crate) fn fastcgi_defaults() -> gatehouse_fastcgi::Config {
    gatehouse_fastcgi::Config::default()
}
