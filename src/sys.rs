//! The system calls the binary needs that neither std nor tokio offer: sending a signal to one
//! process (a master to its workers).
#![allow(unsafe_code, reason = "kill(2) has no safe wrapper in std or tokio")]
#![deny(clippy::undocumented_unsafe_blocks)]

use std::io;

/// Sends signal `sig` to process `pid`. Refuses pids 0 and 1 and those that do not fit a
/// `pid_t` (0 and negative values would signal process groups, -1 every process we may).
pub(crate) fn kill(pid: u32, sig: libc::c_int) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid)
        .ok()
        .filter(|&p| p > 1)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "refusing pid <= 1"))?;
    // SAFETY: kill(2) takes two integers and touches no memory of ours; `pid` is a single
    // process (> 1, checked above).
    let rc = unsafe { libc::kill(pid, sig) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_groups_and_everyone() {
        assert!(kill(0, libc::SIGTERM).is_err());
        assert!(kill(1, libc::SIGTERM).is_err());
        assert!(kill(u32::MAX, libc::SIGTERM).is_err());
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        kill(child.id(), libc::SIGKILL).unwrap();
        let status = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL));
    }
}
