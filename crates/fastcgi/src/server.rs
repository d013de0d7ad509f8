//! [`Server`]: what every connection of a FastCGI listener shares: the app, the configuration,
//! the total-request limit and counters.

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use gatehouse_channel_request::{Application, Peer};

use crate::config::Config;

/// Shared state of a FastCGI front end: one per listener set, shared by its connections.
pub struct Server {
    app: Arc<dyn Application>,
    shared: Arc<Shared>,
}

/// The part of [`Server`] the sans-io core sees: limits and counters, no app.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: Config,
    slots: AtomicUsize,
    stats: Counters,
}

#[derive(Debug, Default)]
struct Counters {
    connections: AtomicUsize,
    requests: AtomicU64,
    rejected: AtomicU64,
    connection_errors: AtomicU64,
}

/// A snapshot of a server's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Connections being served now.
    pub connections: usize,
    /// Requests holding a slot now (from `FCGI_BEGIN_REQUEST` until their app task ends).
    pub requests_in_flight: usize,
    /// Requests dispatched to the app since start.
    pub requests: u64,
    /// Requests refused (`FCGI_OVERLOADED`, `FCGI_UNKNOWN_ROLE`, bad params) since start.
    pub rejected: u64,
    /// Connections closed because of a protocol error or a flood since start.
    pub connection_errors: u64,
}

impl Server {
    /// Shared state for serving `app` with `config`.
    pub fn new(app: Arc<dyn Application>, config: Config) -> Arc<Self> {
        Arc::new(Self {
            app,
            shared: Arc::new(Shared {
                config,
                slots: AtomicUsize::new(0),
                stats: Counters::default(),
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// The application requests are dispatched to.
    pub fn app(&self) -> &Arc<dyn Application> {
        &self.app
    }

    /// Whether `peer` may connect: TCP peers must be listed in `web_server_addrs` when it is set
    /// (FastCGI 1.0 section 3.2). Unix-socket and inherited peers are always allowed: file
    /// permissions guard them (the spec would refuse non-TCP peers whenever the list is set;
    /// we apply the list to TCP only, as the operator's flag documents).
    pub fn peer_allowed(&self, peer: &Peer) -> bool {
        match peer {
            Peer::Tcp(addr) => self.shared.config.allows_ip(addr.ip()),
            _ => true,
        }
    }

    /// The counters now.
    pub fn stats(&self) -> Stats {
        let c = &self.shared.stats;
        Stats {
            connections: c.connections.load(Ordering::Relaxed),
            requests_in_flight: self.shared.slots.load(Ordering::Relaxed),
            requests: c.requests.load(Ordering::Relaxed),
            rejected: c.rejected.load(Ordering::Relaxed),
            connection_errors: c.connection_errors.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("config", &self.shared.config)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// Shared state without an app, for the sans-io core's tests.
    #[cfg(test)]
    pub(crate) fn for_tests(config: Config) -> Arc<Self> {
        Arc::new(Self {
            config,
            slots: AtomicUsize::new(0),
            stats: Counters::default(),
        })
    }

    /// Takes one of the `max_reqs` request slots, if one is free.
    pub(crate) fn try_slot(self: &Arc<Self>) -> Option<RequestSlot> {
        let max = self.config.max_reqs;
        self.slots
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| RequestSlot(self.clone()))
    }

    pub(crate) fn count_request(&self) {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_rejected(&self) {
        self.stats.rejected.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_connection_error(&self) {
        self.stats.connection_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a connection for as long as the guard lives.
    pub(crate) fn connection_guard(self: &Arc<Self>) -> ConnectionGuard {
        self.stats.connections.fetch_add(1, Ordering::Relaxed);
        ConnectionGuard(self.clone())
    }
}

/// One of the server's `max_reqs` request slots, released on drop. Taken at
/// `FCGI_BEGIN_REQUEST`, moved into the app's task at dispatch, so a request counts until its
/// app's task ends.
#[derive(Debug)]
pub struct RequestSlot(Arc<Shared>);

impl Drop for RequestSlot {
    fn drop(&mut self) {
        self.0.slots.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Counts one live connection.
#[derive(Debug)]
pub(crate) struct ConnectionGuard(Arc<Shared>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.stats.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_bounded_and_released() {
        let shared = Shared::for_tests(Config {
            max_reqs: 2,
            ..Config::default()
        });
        let a = shared.try_slot().unwrap();
        let _b = shared.try_slot().unwrap();
        assert!(shared.try_slot().is_none());
        drop(a);
        assert!(shared.try_slot().is_some());
    }
}
