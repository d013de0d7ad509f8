//! The few system calls that neither std nor tokio offer: signalling a process group, seeing
//! that a child exited without reaping it, and looking users and groups up through NSS.
//!
//! This is the crate's only `unsafe` code. Each call is a plain libc function whose only
//! preconditions are valid pointers, which the safe wrappers here guarantee.
#![allow(unsafe_code)] // reason: libc calls with no std equivalent; each block has a SAFETY note

use std::ffi::CString;
use std::io;
use std::ptr;

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

/// Largest buffer we offer getpwnam_r/getgrnam_r before giving up on ERANGE.
const MAX_NSS_BUFFER: usize = 1 << 20;

/// Looks user `name` up (files, LDAP, whatever NSS is configured with): `(uid, primary gid)`.
pub(crate) fn user_by_name(name: &str) -> io::Result<Option<(u32, u32)>> {
    let cname = CString::new(name).map_err(|_| io::ErrorKind::InvalidInput)?;
    let mut buf = vec![0u8; 1024];
    loop {
        // SAFETY: passwd is a plain C struct; all-zero is a valid value (null pointers, zeros).
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::passwd = ptr::null_mut();
        // SAFETY: every pointer is valid for the call: a NUL-terminated name, a writable struct,
        // a writable buffer of exactly `buf.len()` bytes, and a writable result pointer.
        let rc = unsafe {
            libc::getpwnam_r(
                cname.as_ptr(),
                &mut pwd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut found,
            )
        };
        if rc == libc::ERANGE && buf.len() < MAX_NSS_BUFFER {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        return Ok((!found.is_null()).then_some((pwd.pw_uid, pwd.pw_gid)));
    }
}

/// Looks group `name` up through NSS: its gid.
pub(crate) fn group_by_name(name: &str) -> io::Result<Option<u32>> {
    let cname = CString::new(name).map_err(|_| io::ErrorKind::InvalidInput)?;
    let mut buf = vec![0u8; 1024];
    loop {
        // SAFETY: group is a plain C struct; all-zero is a valid value.
        let mut grp: libc::group = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::group = ptr::null_mut();
        // SAFETY: as in `user_by_name`: valid name, struct, buffer of `buf.len()` bytes, result.
        let rc = unsafe {
            libc::getgrnam_r(
                cname.as_ptr(),
                &mut grp,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut found,
            )
        };
        if rc == libc::ERANGE && buf.len() < MAX_NSS_BUFFER {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        return Ok((!found.is_null()).then_some(grp.gr_gid));
    }
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
    fn looks_up_root() {
        assert_eq!(user_by_name("root").unwrap(), Some((0, 0)));
        assert_eq!(group_by_name("root").unwrap(), Some(0));
        assert_eq!(user_by_name("no-such-user-gatehouse").unwrap(), None);
        assert_eq!(group_by_name("no-such-group-gatehouse").unwrap(), None);
        assert!(user_by_name("a\0b").is_err());
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
