//! What the kernel says of a process's use of the machine (`/proc/PID/...`): CPU time, resident
//! memory, open descriptors. Read at scrape time for the master and its workers.

/// Clock ticks per second of `/proc/PID/stat`'s times: `USER_HZ`, 100 on every Linux ABI.
const USER_HZ: u64 = 100;

/// Process figures summed over some processes.
#[derive(Debug, Clone, Default)]
pub(crate) struct Usage {
    /// User + system CPU time, microseconds.
    pub(crate) cpu_us: u64,
    /// Resident set size, bytes.
    pub(crate) resident_bytes: u64,
    /// Open file descriptors.
    pub(crate) open_fds: u64,
}

impl Usage {
    /// The sums over `pids` (a process gone meanwhile counts nothing).
    pub(crate) fn of(pids: &[u32]) -> Self {
        let mut u = Self::default();
        for &pid in pids {
            u.cpu_us += cpu_us(pid).unwrap_or(0);
            u.resident_bytes += resident_bytes(pid).unwrap_or(0);
            u.open_fds += open_fds(pid).unwrap_or(0);
        }
        u
    }
}

/// `utime + stime` of `/proc/PID/stat`, in microseconds.
pub(crate) fn cpu_us(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_cpu_ticks(&stat).map(|t| t * (1_000_000 / USER_HZ))
}

/// Fields 14 and 15 (utime, stime), counted after the command name, which is in parentheses
/// and may itself hold spaces and parentheses (ours does: "gatehouse: worker 1").
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // After the name: state is field 3, so utime (14) is the 12th word here.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// `VmRSS` of `/proc/PID/status`, in bytes.
fn resident_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Entries of `/proc/PID/fd`.
fn open_fds(pid: u32) -> Option<u64> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_a_name_of_spaces_and_parentheses() {
        let stat = "42 (gatehouse: worker (1)) S 1 42 42 0 -1 4194560 100 0 0 0 250 30 0 0 20 0 3 0 1000 0 0";
        assert_eq!(parse_cpu_ticks(stat), Some(280));
        assert_eq!(parse_cpu_ticks("garbage"), None);
    }

    #[test]
    fn this_process_is_seen() {
        let u = Usage::of(&[std::process::id()]);
        assert!(u.resident_bytes > 0);
        assert!(u.open_fds >= 3);
        assert!(cpu_us(std::process::id()).is_some());
    }
}
