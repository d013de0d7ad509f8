//! The process model: `--workers`, `--master`, recycling (`--max-requests`,
//! `--max-requests-jitter`, `--max-worker-memory`) and the worker start-up timeout. Names follow
//! gunicorn and Granian (`--workers`, `--max-requests`), uWSGI where they have none (`--master`,
//! `reload-on-rss` as `--max-worker-memory`).

use clap::Args;

use super::values::{parse_timeout, HumanDuration};

/// `--worker-start-timeout` default.
pub const DEFAULT_WORKER_START_TIMEOUT: &str = "60s";

/// How many processes serve, and when a worker is replaced.
#[derive(Debug, Clone, Args)]
pub struct ProcessArgs {
    /// Worker processes: 1 (one process, no master), N, or `auto`/`0` (one per CPU).
    ///
    /// With more than one, a master process binds the listeners and runs N workers that share
    /// them, each with its own runtime, Python interpreter and thread pool, CGI-script limits.
    /// The master replaces a worker that dies, and reloads them all on SIGHUP.
    #[arg(long, value_name = "N", default_value = "1", value_parser = parse_workers)]
    pub workers: u16,

    /// Run a master process even with one worker (for SIGHUP reloads and supervision).
    #[arg(long)]
    pub master: bool,

    /// Replace a worker after it has served N requests (0: never), as gunicorn does.
    ///
    /// The new worker starts first; the old one finishes its requests, then exits. Needs a
    /// master (--workers N or --master).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub max_requests: u64,

    /// Add a random 0..=J to each worker's --max-requests, so workers do not restart together.
    #[arg(long, value_name = "J", default_value_t = 0)]
    pub max_requests_jitter: u64,

    /// Replace a worker whose resident memory grows past SIZE (e.g. 512M, 2G; uWSGI's
    /// reload-on-rss). Checked every second by the master.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_worker_memory: Option<u64>,

    /// How long a new worker may take to start (import the app, listen) before the master
    /// gives up on it.
    #[arg(long, value_name = "DURATION", value_parser = parse_timeout,
          default_value = DEFAULT_WORKER_START_TIMEOUT)]
    pub worker_start_timeout: HumanDuration,
}

impl ProcessArgs {
    /// Whether a master process runs the workers (else this process serves by itself).
    pub fn wants_master(&self) -> bool {
        self.workers > 1 || self.master
    }
}

/// The most workers one master runs.
pub const MAX_WORKERS: u16 = 1024;

/// `N` from 1 to 1024, or `auto`/`0`: one per CPU this process may run on.
pub(crate) fn parse_workers(s: &str) -> Result<u16, String> {
    let n = match s {
        "auto" | "0" => std::thread::available_parallelism().map_or(1, |n| n.get()),
        _ => s.parse::<usize>().map_err(|_| {
            format!("'{s}' is not a number of workers (1 to {MAX_WORKERS}, or auto)")
        })?,
    };
    u16::try_from(n)
        .ok()
        .filter(|n| (1..=MAX_WORKERS).contains(n))
        .ok_or_else(|| format!("'{s}': workers must be 1 to {MAX_WORKERS}, or auto"))
}

/// A size in bytes: `1048576`, `512K`, `512M`, `2G` (powers of 1024; `KiB`, `MB`... accepted).
pub(crate) fn parse_size(s: &str) -> Result<u64, String> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a size like 512M or 2G"))?;
    let shift = match unit
        .to_ascii_lowercase()
        .trim_end_matches("ib")
        .trim_end_matches('b')
    {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        _ => return Err(format!("'{s}': unknown unit '{unit}' (use K, M or G)")),
    };
    match n.checked_mul(1 << shift) {
        Some(0) => Err(format!("'{s}': a size must be more than 0")),
        Some(bytes) => Ok(bytes),
        None => Err(format!("'{s}' is too large")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_and_sizes() {
        assert_eq!(parse_workers("2"), Ok(2));
        assert!(parse_workers("auto").unwrap() >= 1);
        assert_eq!(parse_workers("0"), parse_workers("auto"));
        assert!(parse_workers("1025").is_err());
        assert!(parse_workers("-1").is_err());
        assert!(parse_workers("two").is_err());
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("1k"), Ok(1024));
        assert_eq!(parse_size("100"), Ok(100));
        assert!(parse_size("0").is_err());
        assert!(parse_size("5T").is_err());
        assert!(parse_size("M").is_err());
    }
}
