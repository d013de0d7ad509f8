//! The signals the daemon answers, and what they mean:
//!
//! | signal           | meaning                                                                 |
//! |------------------|-------------------------------------------------------------------------|
//! | SIGTERM, SIGINT, SIGQUIT | stop accepting, let requests in flight finish (at most `--drain-timeout`), exit 0 |
//! | the same, again  | exit at once, status 128 + the signal number (143 for SIGTERM, 130 for SIGINT) |
//! | SIGUSR2          | a master starts a new master from the binary on disk, handing it the listeners; others log and ignore it |
//! | SIGUSR1          | reopen the `--access-log` file (logrotate); a master passes it to its workers; without an access log, logged and ignored |
//! | SIGHUP           | a master reloads its workers (`crate::master`); one process logs it and goes on; a worker ignores it (its master reloads) |
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
    /// SIGQUIT: nginx's graceful stop (`nginx -s quit`), the same here.
    Quit,
}

impl Stop {
    /// The exit status when this signal comes a second time: 128 + its number, as shells report
    /// a process killed by it.
    pub(crate) fn immediate_exit_status(self) -> i32 {
        128 + self.raw()
    }

    /// The signal's number.
    pub(crate) fn raw(self) -> i32 {
        match self {
            Self::Term => libc::SIGTERM,
            Self::Int => libc::SIGINT,
            Self::Quit => libc::SIGQUIT,
        }
    }
}

impl fmt::Display for Received {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Stop(stop) => stop.fmt(f),
            Self::Hangup => f.write_str("SIGHUP"),
            Self::Upgrade => f.write_str("SIGUSR2"),
            Self::Reopen => f.write_str("SIGUSR1"),
        }
    }
}

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Term => "SIGTERM",
            Self::Int => "SIGINT",
            Self::Quit => "SIGQUIT",
        })
    }
}

/// A signal the daemon acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Received {
    /// SIGTERM or SIGINT.
    Stop(Stop),
    /// SIGHUP: reload.
    Hangup,
    /// SIGUSR2: upgrade the binary.
    Upgrade,
    /// SIGUSR1: nginx's "reopen the log files": the access log (`crate::access_log`) is
    /// opened again; without one it is logged and ignored rather than left to kill the process.
    Reopen,
}

/// The installed handlers. From installation on, SIGTERM, SIGINT and SIGHUP no longer kill the
/// process: they are delivered here.
#[derive(Debug)]
pub(crate) struct Signals {
    term: Signal,
    int: Signal,
    quit: Signal,
    hup: Signal,
    usr1: Signal,
    usr2: Signal,
}

impl Signals {
    /// Installs the handlers. Must run inside the tokio runtime.
    pub(crate) fn install() -> io::Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            quit: signal(SignalKind::quit())?,
            hup: signal(SignalKind::hangup())?,
            usr1: signal(SignalKind::user_defined1())?,
            usr2: signal(SignalKind::user_defined2())?,
        })
    }

    /// Waits for the next signal.
    ///
    /// # Cancel safety
    /// Cancel-safe: a signal that arrives while nobody waits is kept for the next call.
    pub(crate) async fn recv_any(&mut self) -> Received {
        tokio::select! {
            _ = self.term.recv() => Received::Stop(Stop::Term),
            _ = self.int.recv() => Received::Stop(Stop::Int),
            _ = self.quit.recv() => Received::Stop(Stop::Quit),
            _ = self.hup.recv() => Received::Hangup,
            _ = self.usr1.recv() => Received::Reopen,
            _ = self.usr2.recv() => Received::Upgrade,
        }
    }

    /// Waits for the next stop signal; the others are answered with `on_other` and waited past.
    ///
    /// # Cancel safety
    /// Cancel-safe, as [`Self::recv_any`].
    pub(crate) async fn recv_stop(&mut self, on_other: impl Fn(Received)) -> Stop {
        loop {
            match self.recv_any().await {
                Received::Stop(stop) => return stop,
                other => on_other(other),
            }
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
        assert_eq!(Stop::Quit.immediate_exit_status(), 131);
    }
}
