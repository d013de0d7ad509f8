//! `--metrics ADDR`: the figures of the daemon (requests, durations, connections, WSGI and CGI
//! load, worker restarts, process use) and the HTTP listener that shows them: `/metrics`
//! (Prometheus text), `/status` (php-fpm style, `?json`, `?full`), `/ping`.
//!
//! ```text
//!  single process:  observer + accept loops ──► its block ◄── /metrics listener (same process)
//!  --workers N:     worker k: observer + accept loops ──► block k ┐ (memfd, mapped shared)
//!                   master: /metrics listener ── sums blocks + retired totals of dead workers
//! ```
//!
//! Each serving process writes its own [`table::Block`] with relaxed atomic additions (a request
//! costs a few of them and a slot for `/status?full`); see [`table`] for the layout. A master
//! owns the listener and the [`table`] of every worker ([`Master`]); a worker finds its block
//! in [`ENV_METRICS`].

mod process;
mod region;
mod render;
mod server;
pub(crate) mod table;

use std::os::fd::{OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gatehouse_channel_request::observe::{Observer, Outcome, RequestRecord};

use crate::cli::Cli;
use crate::error::Error;
use crate::listen::{self, Kind};

use region::Region;
use table::Block;

pub(crate) use server::Listener;

/// The metrics region a worker writes to: `FD BLOCK BLOCKS`.
pub(crate) const ENV_METRICS: &str = "GATEHOUSE_WORKER_METRICS";
/// How often a serving process copies its WSGI and CGI figures (and CPU time) to its block.
const PUBLISH_EVERY: Duration = Duration::from_millis(200);

/// This process's block, when figures are kept.
#[derive(Debug)]
pub(crate) struct Local {
    region: Region,
    index: usize,
    /// This process's worker number (0: a single process).
    worker: u16,
}

impl Local {
    fn block(&self) -> Block<'_> {
        let at = self.index * table::BLOCK_WORDS;
        Block(&self.region.cells()[at..at + table::BLOCK_WORDS])
    }
}

static LOCAL: OnceLock<Arc<Local>> = OnceLock::new();

fn local_block() -> Option<Block<'static>> {
    LOCAL.get().map(|l| l.block())
}

fn unix_us(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Sets up this process's block: a worker's from its master ([`ENV_METRICS`], read by
/// [`crate::worker::current`]), or a block of its own for a single process with `--metrics`.
/// Returns the observer to install, `None` when no figures are kept.
pub(crate) fn observer(
    cli: &Cli,
    worker: Option<&crate::worker::WorkerInfo>,
) -> Result<Option<Arc<dyn Observer>>, Error> {
    let local = match worker {
        Some(info) => {
            let Some((fd, index, blocks)) = info.metrics else {
                return Ok(None);
            };
            match Region::adopt(fd, blocks * table::BLOCK_WORDS) {
                Ok(region) if index < blocks => Local {
                    region,
                    index,
                    worker: info.id,
                },
                Ok(_) => {
                    return Err(Error::Usage(format!(
                        "{ENV_METRICS}: block {index} of {blocks}"
                    )))
                }
                Err(e) => {
                    tracing::warn!("cannot map the master's metrics region (fd {fd}): {e}; this worker's figures are not counted");
                    return Ok(None);
                }
            }
        }
        None if cli.metrics.is_some() => Local {
            region: Region::create(table::BLOCK_WORDS).map_err(|source| Error::Io {
                what: "cannot create the metrics region",
                source,
            })?,
            index: 0,
            worker: 0,
        },
        None => return Ok(None),
    };
    let block = local.block();
    block.clear();
    block.set(table::PID, u64::from(std::process::id()));
    block.set(table::STARTED_UNIX_US, unix_us(SystemTime::now()));
    let local = Arc::new(local);
    let _ = LOCAL.set(local);
    Ok(Some(Arc::new(Recorder)))
}

/// Copies the WSGI and CGI figures and this process's CPU time to its block every
/// [`PUBLISH_EVERY`], while the runtime runs. Call once serving.
pub(crate) fn spawn_publisher() {
    if LOCAL.get().is_none() {
        return;
    }
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PUBLISH_EVERY);
        loop {
            tick.tick().await;
            if let Some(b) = local_block() {
                publish_stats(b);
            }
        }
    });
}

/// The WSGI and CGI figures of this process into its block (absolute values: the block was
/// zeroed when the process started).
fn publish_stats(b: Block<'_>) {
    if let Some(cpu) = process::cpu_us(std::process::id()) {
        b.0[table::CPU_US].fetch_max(cpu, Ordering::Relaxed);
    }
    b.set(
        table::ACCESS_LOG_DROPPED,
        crate::access_log::dropped_lines(),
    );
    let cgi = gatehouse_cgi_exec::stats();
    #[cfg_attr(not(feature = "wsgi"), allow(unused_mut))]
    let mut timeouts = cgi.timeouts_total;
    #[cfg(feature = "wsgi")]
    {
        let w = gatehouse_wsgi::stats();
        b.set(table::WSGI_THREADS, w.threads as u64);
        b.set(table::WSGI_BUSY, w.busy as u64);
        b.set(table::WSGI_QUEUE, w.queued as u64);
        b.set(table::WSGI_QUEUE_MAX, w.queue_max_seen as u64);
        b.set(table::WSGI_STUCK, w.stuck_threads as u64);
        b.set(table::WSGI_REJECTED, w.rejected_total);
        b.set(table::SLOW_REQUESTS, w.slow_total);
        timeouts += w.timeouts_total;
    }
    b.set(table::REQUEST_TIMEOUTS, timeouts);
    b.set(table::CGI_RUNNING, cgi.running as u64);
    b.set(table::CGI_QUEUE, cgi.queued as u64);
    b.set(
        table::CGI_MAX_CHILDREN_REACHED,
        cgi.max_children_reached_total,
    );
    b.set(table::CGI_STARTED, cgi.started_total);
    for (i, (_, n)) in cgi.killed_by_reason().into_iter().enumerate() {
        b.set(table::CGI_KILLED + i, n);
    }
}

/// The observer of every request: counts it in this process's block.
struct Recorder;

impl Observer for Recorder {
    fn started(&self, record: &Arc<RequestRecord>) {
        let Some(b) = local_block() else { return };
        b.add(table::IN_FLIGHT, 1);
        b.claim(
            record.info.id,
            unix_us(record.started_at),
            &record.method,
            &record.uri,
        );
    }

    fn ended(&self, record: &Arc<RequestRecord>, outcome: &Outcome) {
        let Some(b) = local_block() else { return };
        b.release(record.info.id);
        b.sub(table::IN_FLIGHT);
        let p = table::protocol_index(record.info.protocol);
        let c = table::class_index(outcome.log_status());
        b.add(table::REQUESTS + p * table::CLASSES.len() + c, 1);
        let secs = outcome.duration.as_secs_f64();
        b.add(
            table::DURATION + p * table::NB + table::bucket_index(secs),
            1,
        );
        b.add(
            table::DURATION_SUM_US + p,
            outcome.duration.as_micros() as u64,
        );
    }
}

/// An open connection, counted while it lives.
#[derive(Debug)]
pub(crate) struct Connection(usize);

/// Counts a connection accepted on a listener of `kind` (nothing without `--metrics`); the
/// guard counts it closed when dropped.
pub(crate) fn connection(kind: Kind) -> Option<Connection> {
    let b = local_block()?;
    let p = match kind {
        Kind::FastCgi => 0,
        Kind::Scgi => 1,
        Kind::Http => 2,
        Kind::Uwsgi => 3,
    };
    b.add(table::ACCEPTED + p, 1);
    b.add(table::CONN_OPEN + p, 1);
    Some(Connection(p))
}

impl Drop for Connection {
    fn drop(&mut self) {
        if let Some(b) = local_block() {
            b.sub(table::CONN_OPEN + self.0);
        }
    }
}

/// Binds `--metrics` (not listening yet: see [`Listener::serve`]), before privileges are
/// dropped; `None` without the option.
pub(crate) fn bind(cli: &Cli) -> Result<Option<Listener>, Error> {
    let Some(addr) = &cli.metrics else {
        return Ok(None);
    };
    if matches!(addr, crate::addr::ListenAddr::Systemd(_)) {
        return Err(Error::Usage(format!(
            "--metrics {addr}: systemd sockets serve the front ends; give the metrics listener an address (HOST:PORT, unix:/path, fd:N)"
        )));
    }
    let planned = [listen::Planned {
        kind: Kind::Http,
        addr: addr.clone(),
        default: false,
    }];
    let opts = listen::BindOptions {
        backlog: cli.listen.backlog,
        socket_mode: cli.listen.socket_mode,
    };
    let bound = listen::bind_all_deferred(&planned, opts)?;
    Ok(Some(Listener::new(bound, opts)))
}

/// Binds `--metrics` as soon as it is free (a new master waiting for the old one to exit), and
/// serves `source` there; tries every [`REBIND_EVERY`] for [`REBIND_FOR`], then gives up with
/// a warning.
pub(crate) fn bind_when_free(cli: Cli, source: Source, mode: String) {
    tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + REBIND_FOR;
        loop {
            tokio::time::sleep(REBIND_EVERY).await;
            match bind(&cli) {
                Ok(Some(listener)) => {
                    if let Err(e) =
                        listener.serve(source, mode, tokio_util::sync::CancellationToken::new())
                    {
                        tracing::warn!("--metrics: {e}; no metrics listener");
                    }
                    return;
                }
                Ok(None) => return,
                Err(e) if tokio::time::Instant::now() >= deadline => {
                    tracing::warn!("--metrics: {e}; giving up: no metrics listener");
                    return;
                }
                Err(_) => {}
            }
        }
    });
}

const REBIND_EVERY: Duration = Duration::from_millis(250);
const REBIND_FOR: Duration = Duration::from_secs(120);

/// Why a master replaced a worker, for `gatehouse_worker_restarts_total{reason}`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Restart {
    /// It exited by itself while serving.
    Exit,
    /// A signal killed it while serving.
    Signal,
    /// `--max-requests`.
    MaxRequests,
    /// `--max-worker-memory`.
    Memory,
    /// SIGHUP.
    Reload,
    /// A WSGI thread stuck past `--request-timeout` (blocked in native code).
    StuckThread,
}

/// Label values of [`Restart`], in its order.
pub(crate) const RESTART_REASONS: [&str; 6] = [
    "exit",
    "signal",
    "max-requests",
    "memory",
    "reload",
    "stuck-thread",
];

/// What `/status` shows of one worker.
#[derive(Debug, Clone)]
pub(crate) struct WorkerView {
    pub(crate) pid: u32,
    pub(crate) slot: u16,
    pub(crate) generation: u64,
    pub(crate) state: &'static str,
    pub(crate) block: Option<usize>,
}

/// A master's side: the region of every worker's block, the retired totals, the restarts.
#[derive(Debug)]
pub(crate) struct Master {
    region: Region,
    blocks: usize,
    retired: Mutex<Vec<u64>>,
    restarts: [AtomicU64; RESTART_REASONS.len()],
    workers: Mutex<Vec<WorkerView>>,
    started: SystemTime,
}

impl Master {
    /// A region of `blocks` blocks (a master with `--metrics`); `None` without the option.
    pub(crate) fn create(cli: &Cli, blocks: usize) -> Result<Option<Arc<Self>>, Error> {
        if cli.metrics.is_none() {
            return Ok(None);
        }
        let region = Region::create(blocks * table::BLOCK_WORDS).map_err(|source| Error::Io {
            what: "cannot create the metrics region",
            source,
        })?;
        Ok(Some(Arc::new(Self {
            region,
            blocks,
            retired: Mutex::new(vec![0; table::MAXIMA]),
            restarts: Default::default(),
            workers: Mutex::new(Vec::new()),
            started: SystemTime::now(),
        })))
    }

    fn block(&self, i: usize) -> Block<'_> {
        let at = i * table::BLOCK_WORDS;
        Block(&self.region.cells()[at..at + table::BLOCK_WORDS])
    }

    /// The number of blocks.
    pub(crate) fn blocks(&self) -> usize {
        self.blocks
    }

    /// For a worker about to start in block `index`: the value of [`ENV_METRICS`] and the
    /// descriptor it names (to drop once the worker is started).
    pub(crate) fn for_worker(&self, index: usize) -> std::io::Result<(String, OwnedFd)> {
        use std::os::fd::AsRawFd;
        let fd = self.region.inheritable()?;
        let raw: RawFd = fd.as_raw_fd();
        Ok((format!("{raw} {index} {}", self.blocks), fd))
    }

    /// A worker that wrote block `index` is gone: its counters join the retired totals and the
    /// block is zeroed for the next one.
    pub(crate) fn retire(&self, index: usize) {
        let b = self.block(index);
        let mut retired = self.retired.lock().unwrap_or_else(|p| p.into_inner());
        table::retire(b, &mut retired);
        b.clear();
    }

    /// Counts a worker replaced for `why`.
    pub(crate) fn restarted(&self, why: Restart) {
        self.restarts[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// The workers as `/status` shows them.
    pub(crate) fn set_workers(&self, workers: Vec<WorkerView>) {
        *self.workers.lock().unwrap_or_else(|p| p.into_inner()) = workers;
    }
}

/// Where a scrape reads from: a master's workers, or this single process.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    Master(Arc<Master>),
    Single(Arc<Local>, SystemTime),
}

impl Source {
    /// The single process's source, once [`observer`] made its block.
    pub(crate) fn single() -> Option<Self> {
        LOCAL
            .get()
            .map(|l| Self::Single(l.clone(), SystemTime::now()))
    }
}

/// One worker's figures for `/status`.
#[derive(Debug, Clone)]
pub(crate) struct WorkerFigures {
    pub(crate) view: WorkerView,
    pub(crate) requests: u64,
    pub(crate) in_flight: i64,
    pub(crate) started_unix_us: u64,
    pub(crate) running: Vec<table::Running>,
}

/// Everything a scrape shows, read at one moment.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    pub(crate) totals: table::Totals,
    pub(crate) restarts: [u64; RESTART_REASONS.len()],
    pub(crate) workers: Vec<WorkerFigures>,
    pub(crate) started: SystemTime,
    pub(crate) process: process::Usage,
    pub(crate) now: SystemTime,
}

impl Source {
    /// Reads every figure now. Folds the CPU time read from `/proc` into each block first, so a
    /// worker that dies later retires with at least what this scrape showed.
    pub(crate) fn snapshot(&self) -> Snapshot {
        let now = SystemTime::now();
        match self {
            Self::Single(local, started) => {
                let b = local.block();
                let pid = std::process::id();
                let process = process::Usage::of(&[pid]);
                b.0[table::CPU_US].fetch_max(process.cpu_us, Ordering::Relaxed);
                let view = WorkerView {
                    pid,
                    slot: local.worker,
                    generation: 1,
                    state: "ready",
                    block: Some(local.index),
                };
                let totals = table::Totals::of([b].into_iter(), &[]);
                Snapshot {
                    totals,
                    restarts: [0; RESTART_REASONS.len()],
                    workers: vec![figures(view, b)],
                    started: *started,
                    process,
                    now,
                }
            }
            Self::Master(m) => {
                let views = m.workers.lock().unwrap_or_else(|p| p.into_inner()).clone();
                let mut pids = vec![std::process::id()];
                let mut workers = Vec::new();
                for v in views {
                    if let Some(i) = v.block {
                        let b = m.block(i);
                        if let Some(cpu) = process::cpu_us(v.pid) {
                            b.0[table::CPU_US].fetch_max(cpu, Ordering::Relaxed);
                        }
                        workers.push(figures(v.clone(), b));
                    }
                    pids.push(v.pid);
                }
                let mut process = process::Usage::of(&pids);
                let retired = m.retired.lock().unwrap_or_else(|p| p.into_inner()).clone();
                // Blocks no worker has are zero: only the workers' are read (the others' pages
                // need not even exist).
                let blocks = workers
                    .iter()
                    .filter_map(|w| w.view.block)
                    .map(|i| m.block(i));
                let totals = table::Totals::of(blocks, &retired);
                // Workers' CPU from their blocks (and the retired ones'), the master's own.
                process.cpu_us =
                    totals.get(table::CPU_US) + process::cpu_us(std::process::id()).unwrap_or(0);
                Snapshot {
                    totals,
                    restarts: std::array::from_fn(|i| m.restarts[i].load(Ordering::Relaxed)),
                    workers,
                    started: m.started,
                    process,
                    now,
                }
            }
        }
    }
}

fn figures(view: WorkerView, b: Block<'_>) -> WorkerFigures {
    WorkerFigures {
        view,
        requests: b.requests(),
        in_flight: b.get(table::IN_FLIGHT) as i64,
        started_unix_us: b.get(table::STARTED_UNIX_US),
        running: b.running(),
    }
}
