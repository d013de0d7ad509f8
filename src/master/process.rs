//! What the master reads of its worker processes: how one ended (for the log), its resident
//! memory (`--max-worker-memory`), and a seed for `--max-requests-jitter`.

use std::fmt;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

/// How a worker process ended, for the log.
pub(super) struct Status<'a>(pub(super) &'a io::Result<ExitStatus>);

impl fmt::Display for Status<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Err(e) => write!(f, "cannot be waited for ({e})"),
            Ok(s) => match (s.code(), s.signal()) {
                (Some(code), _) => write!(f, "exited with status {code}"),
                (None, Some(sig)) => write!(
                    f,
                    "was killed by signal {sig} ({}){}",
                    signal_name(sig),
                    if s.core_dumped() { ", core dumped" } else { "" }
                ),
                _ => write!(f, "ended ({s})"),
            },
        }
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGKILL => "SIGKILL",
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGILL => "SIGILL",
        libc::SIGHUP => "SIGHUP",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGUSR2 => "SIGUSR2",
        _ => "another signal",
    }
}

/// A process's resident set size, from `/proc/PID/status` (`VmRSS: N kB`).
pub(super) fn resident_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_rss(&status)
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// A seed that differs between runs and processes.
pub(super) fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.finish() | 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_from_proc_status() {
        let status = "Name:\tgatehouse\nVmPeak:\t  9000 kB\nVmRSS:\t    7012 kB\nThreads:\t3\n";
        assert_eq!(parse_vm_rss(status), Some(7012 * 1024));
        assert_eq!(parse_vm_rss("Name: x\n"), None);
        assert!(resident_bytes(std::process::id()).unwrap() > 0);
    }

    #[test]
    fn exit_statuses_read_well() {
        let killed = ExitStatus::from_raw(libc::SIGKILL);
        assert_eq!(
            Status(&Ok(killed)).to_string(),
            "was killed by signal 9 (SIGKILL)"
        );
        let exited = ExitStatus::from_raw(3 << 8);
        assert_eq!(Status(&Ok(exited)).to_string(), "exited with status 3");
    }
}
