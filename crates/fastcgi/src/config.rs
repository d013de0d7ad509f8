//! Configuration of the FastCGI front end: limits, timeouts and the `FCGI_WEB_SERVER_ADDRS`
//! allow-list (FastCGI 1.0 section 3.2). Every default is a documented `pub const`.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use gatehouse_channel_request::ResponseSpool;

use crate::error::Error;

/// Default for [`Config::max_params_bytes`]: 64 KiB of `FCGI_PARAMS` per request. nginx sends
/// 1-4 KiB for a typical request; its own request-header limit is 8 KiB per line.
pub const DEFAULT_MAX_PARAMS_BYTES: usize = 64 * 1024;

/// Default for [`Config::max_reqs_per_conn`]: concurrent requests multiplexed on one connection.
pub const DEFAULT_MAX_REQS_PER_CONN: usize = 64;

/// Default for [`Config::max_reqs`]: concurrent requests in total, across connections.
pub const DEFAULT_MAX_REQS: usize = 1024;

/// Default for [`Config::max_conns`]: concurrent connections (enforced by the listener).
pub const DEFAULT_MAX_CONNS: usize = 1024;

/// Default for [`Config::idle_timeout`]. Longer than nginx's upstream `keepalive_timeout` (60 s)
/// so that on a kept-alive connection nginx, not us, normally closes first: a close racing a
/// new request would cost that request.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// Default for [`Config::linger_timeout`]: how long a closing connection drains the peer's input
/// (nginx's `lingering_timeout` is 5 s as well).
pub const DEFAULT_LINGER_TIMEOUT: Duration = Duration::from_secs(5);

/// Once shutdown is signalled, a lingering close lasts at most this long (and never more than
/// [`Config::linger_timeout`]): enough for a peer still sending to read our last answer, short
/// enough that a peer that neither stops sending nor closes does not hold up the daemon's exit.
pub const SHUTDOWN_LINGER_TIMEOUT: Duration = Duration::from_secs(1);

/// How long a request's response is held back while its body is still arriving (the core's
/// constant; see the crate docs' "Backpressure" section).
pub use gatehouse_channel_request::hold::RESPONSE_HOLD_TIMEOUT;

/// Default for [`Config::response_budget`]: response bytes queued per request before the app's
/// `write` waits (the core's default).
pub const DEFAULT_RESPONSE_BUDGET: usize =
    gatehouse_channel_request::queue::DEFAULT_RESPONSE_BUDGET;

/// Default for [`Config::body_queue_chunks`]: request body chunks (one per `FCGI_STDIN` record,
/// at most 64 KiB each) queued per request before the connection stops reading.
pub const DEFAULT_BODY_QUEUE_CHUNKS: usize =
    gatehouse_channel_request::body::DEFAULT_BODY_QUEUE_CHUNKS;

/// The environment variable naming the web servers allowed to connect (section 3.2).
pub const FCGI_WEB_SERVER_ADDRS: &str = "FCGI_WEB_SERVER_ADDRS";

/// Limits and policies of the FastCGI front end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Total `FCGI_PARAMS` bytes accepted per request. Beyond it the request is refused
    /// (`431` on `FCGI_STDOUT`, then `FCGI_END_REQUEST` with `FCGI_OVERLOADED`).
    pub max_params_bytes: usize,
    /// Concurrent requests on one connection. Beyond it a new request gets `FCGI_OVERLOADED`.
    pub max_reqs_per_conn: usize,
    /// Concurrent requests in total across connections. Beyond it a new request gets
    /// `FCGI_OVERLOADED`.
    pub max_reqs: usize,
    /// Concurrent connections: reported as `FCGI_MAX_CONNS`; the listener enforces it.
    pub max_conns: usize,
    /// A connection with no request in progress and no input for this long is closed.
    pub idle_timeout: Duration,
    /// How long a closing connection keeps reading (and discarding) the peer's input after
    /// shutting its write side, so the peer sees our last bytes rather than a reset. Only a
    /// connection whose peer may still be sending lingers (a request was answered or refused
    /// before its `FCGI_STDIN` ended, or part of a record is buffered); at shutdown, at most
    /// [`SHUTDOWN_LINGER_TIMEOUT`].
    pub linger_timeout: Duration,
    /// Response bytes queued per request before the app's `write` waits.
    pub response_budget: usize,
    /// Request body chunks queued per request before the connection stops reading.
    pub body_queue_chunks: usize,
    /// The web servers allowed to connect over TCP (`FCGI_WEB_SERVER_ADDRS`, section 3.2);
    /// `None` allows every peer.
    pub web_server_addrs: Option<Vec<IpAddr>>,
    /// Where answer bytes that the client has not taken yet spill (nginx's proxy buffering):
    /// with a spool, a slow client no longer makes the app's `write` wait; the app ends and
    /// frees its slot while the rest goes out from memory and a temp file. `None`: no spilling.
    pub response_spool: Option<Arc<ResponseSpool>>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_params_bytes: DEFAULT_MAX_PARAMS_BYTES,
            max_reqs_per_conn: DEFAULT_MAX_REQS_PER_CONN,
            max_reqs: DEFAULT_MAX_REQS,
            max_conns: DEFAULT_MAX_CONNS,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            linger_timeout: DEFAULT_LINGER_TIMEOUT,
            response_budget: DEFAULT_RESPONSE_BUDGET,
            body_queue_chunks: DEFAULT_BODY_QUEUE_CHUNKS,
            web_server_addrs: None,
            response_spool: None,
        }
    }
}

impl Config {
    /// Parses the value of `FCGI_WEB_SERVER_ADDRS` (section 3.2): a comma-separated list of IP
    /// addresses, e.g. `199.170.183.28,199.170.183.71`. Blanks around entries are allowed, and
    /// IPv6 addresses are accepted as an extension. An empty list is an error: it would lock
    /// out every web server, which is never what the operator meant.
    pub fn web_server_addrs_from_env(value: &str) -> Result<Vec<IpAddr>, Error> {
        let mut addrs = Vec::new();
        for entry in value.split(',') {
            let entry = entry.trim();
            if entry.is_empty() {
                continue;
            }
            let addr = entry.parse::<IpAddr>().map_err(|_| {
                Error::Config(format!(
                    "{FCGI_WEB_SERVER_ADDRS}: \"{}\" is not an IP address",
                    entry.escape_default()
                ))
            })?;
            addrs.push(addr.to_canonical());
        }
        if addrs.is_empty() {
            return Err(Error::Config(format!(
                "{FCGI_WEB_SERVER_ADDRS} is set but lists no address"
            )));
        }
        Ok(addrs)
    }

    /// Checks that the limits make sense (every count and budget at least 1).
    pub fn validate(&self) -> Result<(), Error> {
        let counts = [
            ("max_params_bytes", self.max_params_bytes),
            ("max_reqs_per_conn", self.max_reqs_per_conn),
            ("max_reqs", self.max_reqs),
            ("max_conns", self.max_conns),
            ("response_budget", self.response_budget),
            ("body_queue_chunks", self.body_queue_chunks),
        ];
        for (name, value) in counts {
            if value == 0 {
                return Err(Error::Config(format!("{name} must be at least 1")));
            }
        }
        if self.idle_timeout.is_zero() {
            return Err(Error::Config("idle_timeout must not be zero".into()));
        }
        Ok(())
    }

    /// Whether a TCP peer at `ip` may connect: always when no list is configured.
    pub fn allows_ip(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.web_server_addrs
            .as_ref()
            .is_none_or(|list| list.contains(&ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_spec_example() {
        let addrs = Config::web_server_addrs_from_env("199.170.183.28,199.170.183.71").unwrap();
        assert_eq!(
            addrs,
            vec![
                "199.170.183.28".parse::<IpAddr>().unwrap(),
                "199.170.183.71".parse().unwrap()
            ]
        );
    }

    #[test]
    fn blanks_ipv6_and_errors() {
        let addrs = Config::web_server_addrs_from_env(" 127.0.0.1 , ::1,").unwrap();
        assert_eq!(addrs.len(), 2);
        assert!(Config::web_server_addrs_from_env("").is_err());
        assert!(Config::web_server_addrs_from_env(" , ").is_err());
        let err = Config::web_server_addrs_from_env("127.0.0.1,nope").unwrap_err();
        assert!(err.to_string().contains("\"nope\""), "{err}");
        assert!(Config::web_server_addrs_from_env("256.1.1.1").is_err());
    }

    #[test]
    fn allow_list_matches_mapped_ipv4() {
        let mut cfg = Config::default();
        assert!(cfg.allows_ip("10.0.0.9".parse().unwrap()));
        cfg.web_server_addrs = Some(Config::web_server_addrs_from_env("127.0.0.1").unwrap());
        assert!(cfg.allows_ip("127.0.0.1".parse().unwrap()));
        assert!(cfg.allows_ip("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!cfg.allows_ip("127.0.0.2".parse().unwrap()));
    }

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().unwrap();
        let cfg = Config {
            max_reqs: 0,
            ..Config::default()
        };
        assert!(cfg.validate().is_err());
    }
}
