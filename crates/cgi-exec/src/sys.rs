//! The few system calls that neither std nor tokio offer: signalling a process group, and seeing
//! that a child exited without reaping it (user and group look-ups are in `nss`).
//!
//! This and `nss` are the crate's only `unsafe` code. Each call is a plain libc function whose only
//! preconditions are valid pointers, which the safe wrappers here guarantee.
#![allow(unsafe_code)] // reason: libc calls with no std equivalent; each block has a SAFETY note

use std::io;

/// The signals the crate sends to a script's process group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    /// `SIGTERM`: please stop.
    Term,
    /// `SIGKILL`: stop now.
    Kill,
}

impl Signal {
    fn raw(self) -> libc::c_int {
        match self {
            Self::Term => libc::SIGTERM,
            Self::Kill => libc::SIGKILL,
        }
    }
}

/// Sends `sig` to every process of process group `pgid`.
///
/// Refuses `pgid` 0 and 1: `kill(0, ..)` would signal our own group and `kill(-1, ..)` every
/// process we may signal. Callers pass the pid of a child that is not yet reaped, so the group id
/// cannot have been reused.
pub(crate) fn signal_group(pgid: u32, sig: Signal) -> io::Result<()> {
    let pgid = libc::pid_t::try_from(pgid)
        .ok()
        .filter(|&p| p > 1)
        .ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "refusing process group <= 1")
        })?;
    // SAFETY: kill(2) takes plain integers and touches no memory of ours; a negative pid names
    // the process group `pgid`, which is > 1 (checked above).
    let rc = unsafe { libc::kill(-pgid, sig.raw()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether our child `pid` has exited, WITHOUT reaping it (`WNOWAIT`): while it stays a zombie,
/// its pid and so its process group id cannot be handed to another process.
pub(crate) fn exited_unreaped(pid: u32) -> io::Result<bool> {
    // SAFETY: siginfo_t is a plain C struct for which all-zero bytes are a valid value.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
    // SAFETY: `info` is a valid, writable siginfo_t that outlives the call.
    let rc = unsafe { libc::waitid(libc::P_PID, pid, &mut info, flags) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: waitid succeeded, so `info` was filled (si_pid stays 0 under WNOHANG when the child
    // has not changed state); reading si_pid of a SIGCHLD siginfo is what it is for.
    Ok(unsafe { info.si_pid() } != 0)
}

/// Whether this process runs with effective uid 0.
pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid(2) cannot fail and takes no arguments.
    unsafe { libc::geteuid() == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_own_group_and_everyone() {
        assert!(signal_group(0, Signal::Term).is_err());
        assert!(signal_group(1, Signal::Kill).is_err());
        assert!(signal_group(u32::MAX, Signal::Kill).is_err());
    }

    #[test]
    fn sees_exit_without_reaping() {
        let mut child = std::process::Command::new("/bin/true").spawn().unwrap();
        let pid = child.id();
        while !exited_unreaped(pid).unwrap() {
            std::thread::yield_now();
        }
        // Still a zombie: the status is still there to collect.
        assert!(exited_unreaped(pid).unwrap());
        assert!(child.wait().unwrap().success());
    }
}
