//! [`Config`] (limits and timeouts, each default a documented constant) and [`Server`] (the app
//! and the connection limit shared by every connection of a listener).

use std::sync::Arc;
use std::time::Duration;

use gatehouse_channel_request::{Application, ResponseSpool};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::Error;
use crate::head::Duplicates;

/// Default [`Config::max_header_bytes`]: 64 KiB, like FastCGI's PARAMS limit. nginx's stock
/// `scgi_params` plus a browser's headers take 1 to 4 KiB.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 64 * 1024;
/// Default [`Config::max_conns`].
pub const DEFAULT_MAX_CONNS: usize = 1024;
/// Default [`Config::header_timeout`]: a front server sends the head at once; 30 s leaves room
/// for a loaded machine and stops slowloris-style clients.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// Default [`Config::idle_timeout`].
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default [`Config::response_budget`]: the core's per-request budget (256 KiB).
pub const DEFAULT_RESPONSE_BUDGET: usize =
    gatehouse_channel_request::queue::DEFAULT_RESPONSE_BUDGET;
/// Default [`Config::body_queue_chunks`]: the core's default (4 chunks of at most
/// [`READ_CHUNK`] bytes, so 256 KiB of body queued per request).
pub const DEFAULT_BODY_QUEUE_CHUNKS: usize =
    gatehouse_channel_request::body::DEFAULT_BODY_QUEUE_CHUNKS;
/// Default [`Config::linger_timeout`].
pub const DEFAULT_LINGER_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the response is held back while the request body is still arriving (the core's
/// constant).
pub use gatehouse_channel_request::hold::RESPONSE_HOLD_TIMEOUT;
/// How many bytes one socket read asks for, and so the largest body chunk handed to the app.
pub const READ_CHUNK: usize = 64 * 1024;
/// The most bytes a lingering close reads and discards before it gives up and closes.
pub const LINGER_MAX_BYTES: usize = 1024 * 1024;

/// The smallest useful [`Config::max_header_bytes`]: `CONTENT_LENGTH\0N\0SCGI\01\0` and a
/// `REQUEST_METHOD`.
pub const MIN_HEADER_BYTES: usize = 64;

/// Limits and timeouts of the SCGI front end. Every field has a `DEFAULT_*` constant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The longest header netstring accepted (its announced length), checked before any of it
    /// is buffered. Longer heads get `400` (flag suggestion: `--max-scgi-header-bytes`).
    pub max_header_bytes: usize,
    /// Connections served at once by one [`Server`]; one more gets `503` and is closed.
    pub max_conns: usize,
    /// From accepting the connection to having the whole head. Past it: `400` and close.
    pub header_timeout: Duration,
    /// The longest the peer may make no progress while we wait on it: reading body bytes the
    /// app has room for, or writing response bytes. Past it, a body read is answered `400` (or
    /// the response cut) and the app cancelled; a stalled write cancels the app and closes. It
    /// does not run while the app itself is busy.
    pub idle_timeout: Duration,
    /// Response bytes the app may have queued but not yet written to the socket; its writes
    /// wait beyond it (backpressure from a slow client to the app).
    pub response_budget: usize,
    /// Body chunks queued for the app; the socket is not read while the queue is full.
    pub body_queue_chunks: usize,
    /// How long a closing connection keeps reading (and discarding) what the peer still sends,
    /// after our response, so the peer reads the response instead of a reset.
    pub linger_timeout: Duration,
    /// What to do with a header name sent twice. By default repeated `HTTP_*` names (nginx
    /// < 1.23 sends one per repeated request header) are joined and any other repeat is
    /// refused; [`Duplicates::Reject`] refuses every repeat, as the specification says.
    pub duplicates: Duplicates,
    /// Where answer bytes that the client has not taken yet spill (nginx's proxy buffering):
    /// with a spool, a slow client no longer makes the app's `write` wait; the app ends and
    /// frees its slot while the rest goes out from memory and a temp file. `None`: no spilling.
    pub response_spool: Option<Arc<ResponseSpool>>,
}

impl Config {
    /// Checks that the limits make sense: every count and budget at least 1, the head limit
    /// large enough for the two mandatory headers, no zero timeout.
    pub fn validate(&self) -> Result<(), Error> {
        let counts = [
            ("max_conns", self.max_conns),
            ("response_budget", self.response_budget),
            ("body_queue_chunks", self.body_queue_chunks),
        ];
        for (name, value) in counts {
            if value == 0 {
                return Err(Error::Config(format!("{name} must be at least 1")));
            }
        }
        if self.max_header_bytes < MIN_HEADER_BYTES {
            return Err(Error::Config(format!(
                "max_header_bytes must be at least {MIN_HEADER_BYTES}"
            )));
        }
        let timeouts = [
            ("header_timeout", self.header_timeout),
            ("idle_timeout", self.idle_timeout),
        ];
        for (name, value) in timeouts {
            if value.is_zero() {
                return Err(Error::Config(format!("{name} must not be zero")));
            }
        }
        Ok(())
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            max_conns: DEFAULT_MAX_CONNS,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            response_budget: DEFAULT_RESPONSE_BUDGET,
            body_queue_chunks: DEFAULT_BODY_QUEUE_CHUNKS,
            linger_timeout: DEFAULT_LINGER_TIMEOUT,
            duplicates: Duplicates::JoinHttpHeaders,
            response_spool: None,
        }
    }
}

/// What the connections of one SCGI listener share: the app, the configuration, the connection
/// limit. Make one per listener (or one for all SCGI listeners, to share the limit).
pub struct Server {
    app: Arc<dyn Application>,
    config: Config,
    slots: Arc<Semaphore>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("config", &self.config)
            .field("active_connections", &self.active_connections())
            .finish_non_exhaustive()
    }
}

impl Server {
    /// A server running `app` with `config` (check it first with [`Config::validate`]; zero
    /// counts are treated as 1).
    pub fn new(app: Arc<dyn Application>, config: Config) -> Arc<Self> {
        let permits = config.max_conns.clamp(1, Semaphore::MAX_PERMITS);
        Arc::new(Self {
            app,
            config,
            slots: Arc::new(Semaphore::new(permits)),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The app every request goes to.
    pub fn app(&self) -> &Arc<dyn Application> {
        &self.app
    }

    /// Connections being served now.
    pub fn active_connections(&self) -> usize {
        self.config
            .max_conns
            .clamp(1, Semaphore::MAX_PERMITS)
            .saturating_sub(self.slots.available_permits())
    }

    /// Waits until a connection slot is free, so an accept loop can stop accepting while the
    /// server is full (the kernel's backlog then holds new connections) instead of answering
    /// them `503`. A slot is only taken by `serve_connection` itself.
    ///
    /// # Cancel safety
    /// Cancel-safe.
    pub async fn ready(&self) {
        if let Ok(permit) = self.slots.acquire().await {
            drop(permit);
        }
    }

    /// Takes a connection slot, if one is free.
    pub(crate) fn try_admit(&self) -> Option<OwnedSemaphorePermit> {
        self.slots.clone().try_acquire_owned().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_refuses_unusable_limits() {
        assert!(Config::default().validate().is_ok());
        let bad = [
            Config {
                max_conns: 0,
                ..Config::default()
            },
            Config {
                max_header_bytes: 10,
                ..Config::default()
            },
            Config {
                header_timeout: Duration::ZERO,
                ..Config::default()
            },
            Config {
                body_queue_chunks: 0,
                ..Config::default()
            },
        ];
        for config in bad {
            let err = config.validate().unwrap_err().to_string();
            assert!(err.starts_with("bad SCGI configuration"), "{err}");
        }
    }
}
