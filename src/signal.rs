//! The signals the daemon answers, and what they mean:
//!
//! | signal           | meaning                                                                 |
//! |------------------|-------------------------------------------------------------------------|
//! | SIGTERM, SIGINT  | stop accepting, let requests in flight finish (at most `--drain-timeout`), exit 0 |
//! | the same, again  | exit at once, status 128 + the signal number (143 for SIGTERM, 130 for SIGINT) |
//!
//! Other signals keep their default meaning (SIGPIPE is ignored by the Rust runtime: a peer
//! that goes away is an I/O error on its connection, nothing more).

use std::fmt;
use std::io;

use tokio::signal::unix::{signal, Signal, SignalKind};

/// A signal asking us to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// SIGTERM: what service managers, spawn-fcgi users and mod_fcgid send.
    Term,
    /// SIGINT: Ctrl-C in a terminal.
    Int,
}

impl Stop {
    /// The exit status when this signal comes a second time: 128 + its number, as shells report
    /// a process killed by it.
    pub(crate) fn immediate_exit_status(self) -> i32 {
        128 + match self {
            Self::Term => libc::SIGTERM,
            Self::Int => libc::SIGINT,
        }
    }
}

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Term => "SIGTERM",
            Self::Int => "SIGINT",
        })
    }
}

/// The installed handlers. From installation on, SIGTERM and SIGINT no longer kill the process:
/// they are delivered here.
#[derive(Debug)]
pub(crate) struct Signals {
    term: Signal,
    int: Signal,
}

impl Signals {
    /// Installs the handlers. Must run inside the tokio runtime.
    pub(crate) fn install() -> io::Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// Waits for the next stop signal.
    ///
    /// # Cancel safety
    /// Cancel-safe: a signal that arrives while nobody waits is kept for the next call.
    pub(crate) async fn recv(&mut self) -> Stop {
        tokio::select! {
            _ = self.term.recv() => Stop::Term,
            _ = self.int.recv() => Stop::Int,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_statuses_follow_the_shell_convention() {
        assert_eq!(Stop::Term.immediate_exit_status(), 143);
        assert_eq!(Stop::Int.immediate_exit_status(), 130);
        assert_eq!(Stop::Term.to_string(), "SIGTERM");
    }
}
