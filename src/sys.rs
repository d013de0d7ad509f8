//! The libc calls of the binary that std lacks, other than adopting inherited descriptors
//! ([`crate::inherit`]): changing the process's identity ([`crate::privileges`]), reading
//! `CLOCK_MONOTONIC` for systemd ([`crate::notify`]) and signalling one process (a master to its
//! workers, [`crate::master`]).
//!
//! Each function is one plain libc call on integers or on memory owned by the function.
#![allow(
    unsafe_code,
    reason = "setgroups/setgid/setuid, getres[ug]id, getgroups, clock_gettime, kill and accept4 have no std equivalent"
)]
#![deny(clippy::undocumented_unsafe_blocks)]

use std::io;

/// Real, effective and saved ids (user or group).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ResIds {
    pub(crate) real: u32,
    pub(crate) effective: u32,
    pub(crate) saved: u32,
}

impl ResIds {
    /// Whether all three are `id`.
    pub(crate) fn all(&self, id: u32) -> bool {
        self.real == id && self.effective == id && self.saved == id
    }
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The process's user ids.
pub(crate) fn user_ids() -> io::Result<ResIds> {
    let (mut real, mut effective, mut saved) = (0, 0, 0);
    // SAFETY: getresuid(2) writes three uid_t through pointers to our own locals, which live
    // across the call.
    check(unsafe { libc::getresuid(&mut real, &mut effective, &mut saved) })?;
    Ok(ResIds {
        real,
        effective,
        saved,
    })
}

/// The process's group ids.
pub(crate) fn group_ids() -> io::Result<ResIds> {
    let (mut real, mut effective, mut saved) = (0, 0, 0);
    // SAFETY: as in `user_ids`, for gid_t.
    check(unsafe { libc::getresgid(&mut real, &mut effective, &mut saved) })?;
    Ok(ResIds {
        real,
        effective,
        saved,
    })
}

/// The supplementary groups.
pub(crate) fn supplementary_groups() -> io::Result<Vec<u32>> {
    // SAFETY: with size 0, getgroups(2) only returns the count and writes nothing; a null list
    // is allowed then.
    let n = unsafe { libc::getgroups(0, std::ptr::null_mut()) };
    let n = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
    let mut list: Vec<libc::gid_t> = vec![0; n];
    let size = libc::c_int::try_from(list.len()).map_err(|_| io::ErrorKind::InvalidData)?;
    // SAFETY: `list` has room for exactly `size` gid_t and outlives the call.
    let got = unsafe { libc::getgroups(size, list.as_mut_ptr()) };
    let got = usize::try_from(got).map_err(|_| io::Error::last_os_error())?;
    list.truncate(got);
    Ok(list)
}

/// Replaces the supplementary groups with `groups` (needs CAP_SETGID).
pub(crate) fn set_supplementary_groups(groups: &[u32]) -> io::Result<()> {
    // SAFETY: setgroups(2) reads `groups.len()` gid_t from a slice that lives across the call;
    // an empty slice's dangling pointer is never read.
    check(unsafe { libc::setgroups(groups.len(), groups.as_ptr()) })
}

/// setgid(2): as root, sets the real, effective and saved group id. glibc applies it to every
/// thread of the process.
pub(crate) fn set_gid(gid: u32) -> io::Result<()> {
    // SAFETY: a plain integer argument; no memory is passed.
    check(unsafe { libc::setgid(gid) })
}

/// setuid(2): as root, sets the real, effective and saved user id (for good). glibc applies it
/// to every thread of the process.
pub(crate) fn set_uid(uid: u32) -> io::Result<()> {
    // SAFETY: a plain integer argument; no memory is passed.
    check(unsafe { libc::setuid(uid) })
}

/// `CLOCK_MONOTONIC` in microseconds (what systemd's `MONOTONIC_USEC=` wants).
pub(crate) fn monotonic_usec() -> io::Result<u64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime(2) writes one timespec into our local, which outlives the call.
    check(unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) })?;
    let secs = u64::try_from(ts.tv_sec).map_err(|_| io::ErrorKind::InvalidData)?;
    let nanos = u64::try_from(ts.tv_nsec).map_err(|_| io::ErrorKind::InvalidData)?;
    Ok(secs.saturating_mul(1_000_000).saturating_add(nanos / 1_000))
}

/// Sends signal `sig` to process `pid`. Refuses pids 0 and 1 and those that do not fit a
/// `pid_t` (0 and negative values would signal process groups, -1 every process we may).
pub(crate) fn kill(pid: u32, sig: libc::c_int) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid)
        .ok()
        .filter(|&p| p > 1)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "refusing pid <= 1"))?;
    // SAFETY: kill(2) takes two integers and touches no memory of ours; `pid` is a single
    // process (> 1, checked above).
    check(unsafe { libc::kill(pid, sig) })
}

/// `accept4(2)` on `listener` with `SOCK_NONBLOCK | SOCK_CLOEXEC`: the accepted connection,
/// ready for the runtime and kept from child processes, and its peer's address, in one system
/// call (std's accept would need a second one to make the socket non-blocking).
pub(crate) fn accept_nonblocking(
    listener: std::os::fd::BorrowedFd<'_>,
) -> io::Result<(std::os::fd::OwnedFd, socket2::SockAddr)> {
    use std::os::fd::{AsRawFd, FromRawFd};

    let raw = listener.as_raw_fd();
    let flags = libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
    // SAFETY: `try_init` hands us a zeroed address buffer and its length, both valid for the
    // call, which is what accept4(2) writes the peer's address into; `raw` is a descriptor the
    // borrow keeps open.
    let (fd, addr) = unsafe {
        socket2::SockAddr::try_init(|storage, len| {
            let fd = libc::accept4(raw, storage.cast(), len, flags);
            if fd < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(fd)
            }
        })
    }?;
    // SAFETY: accept4 returned a new descriptor that nothing else owns.
    Ok((unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }, addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kill_refuses_groups_and_everyone() {
        use std::os::unix::process::ExitStatusExt;

        assert!(kill(0, libc::SIGTERM).is_err());
        assert!(kill(1, libc::SIGTERM).is_err());
        assert!(kill(u32::MAX, libc::SIGTERM).is_err());
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        kill(child.id(), libc::SIGKILL).unwrap();
        assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
    }

    /// The numbers of a `/proc/self/status` line such as `Uid:\t0\t0\t0\t0`.
    fn proc_status(field: &str) -> Vec<u32> {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .unwrap_or_else(|| panic!("no {field} in /proc/self/status"));
        line.split_whitespace()
            .map(|n| n.parse().unwrap())
            .collect()
    }

    #[test]
    fn ids_agree_with_proc() {
        let u = user_ids().unwrap();
        assert_eq!(proc_status("Uid:")[..3], [u.real, u.effective, u.saved]);
        let g = group_ids().unwrap();
        assert_eq!(proc_status("Gid:")[..3], [g.real, g.effective, g.saved]);
        let mut groups = supplementary_groups().unwrap();
        groups.sort_unstable();
        let mut listed = proc_status("Groups:");
        listed.sort_unstable();
        assert_eq!(groups, listed);
        assert!(ResIds {
            real: 7,
            effective: 7,
            saved: 7
        }
        .all(7));
        assert!(!ResIds {
            real: 7,
            effective: 7,
            saved: 0
        }
        .all(7));
    }

    #[test]
    fn the_monotonic_clock_moves_forward() {
        let a = monotonic_usec().unwrap();
        let b = monotonic_usec().unwrap();
        assert!(b >= a, "the monotonic clock went back: {a} then {b}");
        assert!(a > 0);
    }
}
