//! The master process of `--workers N` (or `--master`): it binds every listener, runs N worker
//! processes that share them, replaces a worker that dies, recycles workers (`--max-requests`,
//! `--max-worker-memory`), reloads them all on SIGHUP and stops them on SIGTERM. It runs no
//! app code and loads no Python: a worker is this same binary re-executed with the listening
//! sockets inherited (never a `fork()` of a process that runs threads), see [`crate::worker`].
//!
//! ```text
//!  start ──► N workers of generation 1 ──► all "ready" ──► serving (sd_notify READY=1)
//!  a worker dies ──► logged, replaced at once; one that dies before "ready": retried after
//!                    0.1, 0.2, 0.4, 0.8 s, then the master gives up (exit 1; exit 2 at first
//!                    start when the worker said the app cannot start)
//!  "recycle" / too much memory ──► a replacement starts; once ready, the old one drains
//!  SIGHUP ──► --config re-read and checked ──► N workers of generation G+1 ──► all ready ──►
//!             the older ones drain (the file is invalid ──► logged, nothing starts; one fails
//!             before ready ──► the new ones are stopped, the old ones keep serving)
//!  SIGTERM/SIGINT ──► every worker drains (--drain-timeout), then exit 0; again: at once
//!  SIGUSR2 ──► a new master from the binary on disk, handed the listeners ──► its workers
//!              ready ──► it sends this master SIGTERM (the socket files stay); it fails ──►
//!              this master goes on
//! ```
//!
//! The workers of a generation parse the config file's text as the master checked it (handed
//! over in `GATEHOUSE_WORKER_CONFIG`), not the file on disk: a worker replaced later (it died,
//! `--max-requests`) runs its generation's settings even when the file was edited or broken
//! since. The master itself keeps the settings it started with ([`MASTER_SETTINGS`]).

mod handover;
mod process;

use std::collections::BTreeMap;
use std::io;
use std::os::fd::AsRawFd;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use socket2::SockRef;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

use crate::apps::{self, Mode};
use crate::balance::{self, LoadTable};
use crate::cli::{Cli, Settings};
use crate::daemon;
use crate::error::Error;
use crate::metrics::{self, Restart};
use crate::notify::Notifier;
use crate::signal::{Received, Signals, Stop};
use crate::sys;
use crate::worker::{self, Message, WorkerInfo, ENV_CONFIG, ENV_LISTENERS, ENV_LOAD, ENV_WORKER};
use tokio_util::sync::CancellationToken;

use handover::{from_old_master, retitle, Listeners};
pub(crate) use handover::{ENV_TITLED, ENV_UPGRADE_FROM, ENV_UPGRADE_LISTENERS};
use process::{random_seed, resident_bytes, Status};

/// Consecutive failed starts of one worker slot before the master gives up.
const MAX_START_FAILURES: u32 = 5;
/// The pause before the first retry of a failed start; doubled each time.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// How long a draining worker may take beyond `--drain-timeout` before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How often the master looks at its workers (start time-outs, memory, retries).
const TICK: Duration = Duration::from_millis(250);
/// The options the master reads itself (listeners, identity, processes): a SIGHUP that changes
/// them says they need a restart or SIGUSR2. An option the master comes to read belongs here.
pub(crate) const MASTER_SETTINGS: &[&str] = &[
    "fastcgi",
    "scgi",
    "http",
    "uwsgi",
    "socket-mode",
    "socket-owner",
    "backlog",
    "user",
    "group",
    "workers",
    "master",
    "max-requests",
    "max-requests-jitter",
    "max-worker-memory",
    "worker-start-timeout",
    "drain-timeout",
    "log-level",
    "cgi",
    "metrics",
];

/// The variables no worker should see: they were meant for this process (systemd).
const MASTER_ONLY_ENV: &[&str] = &[
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
];

/// Runs the master until it is stopped (Ok: exit 0) or gives up on its workers.
pub(crate) fn run(cli: &Cli) -> Result<(), Error> {
    retitle();
    // The binary on disk now, for SIGUSR2 (a deploy may replace it while we run).
    let exe = std::env::current_exe().ok();
    let (bound, old_master) = match from_old_master()? {
        Some((bound, old)) => {
            tracing::info!(
                "took over {} listener(s) from the old master (pid {old})",
                bound.len()
            );
            (bound, Some(old))
        }
        None => (Vec::new(), None),
    };
    // Systemd's variables are taken (and removed) in any case; a new master's listeners came
    // from the old one, so it binds nothing.
    // Bound before privileges are dropped, like the front ends' listeners. A new master
    // (SIGUSR2) finds the old one still holding the address: it takes it once that one exits.
    let (metrics_listener, metrics_later) = match metrics::bind(cli) {
        Ok(l) => (l, false),
        Err(e) if old_master.is_some() => {
            tracing::info!("--metrics: {e}; the old master still has it: binding it once it exits");
            (None, true)
        }
        Err(e) => return Err(e),
    };
    let metrics = metrics::Master::create(cli, 3 * usize::from(cli.process.workers) + 1)?;
    let (bound, notifier) = if bound.is_empty() {
        daemon::listeners_for_master(cli)?
    } else {
        (bound, Notifier::from_env())
    };
    for b in &bound {
        tracing::info!("listening on {} {}", b.kind.name(), b.name);
    }
    // Each worker opens the access log; a path it cannot open is one clear error here.
    crate::access_log::check(cli)?;
    let listeners = Listeners::share(bound).map_err(|source| Error::Io {
        what: "cannot pass the listeners to worker processes",
        source,
    })?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| Error::Io {
            what: "cannot start the runtime",
            source,
        })?;
    runtime.block_on(async {
        let signals = Signals::install().map_err(|source| Error::Io {
            what: "cannot install signal handlers",
            source,
        })?;
        if let Some(m) = &metrics {
            let mode = format!("master (workers: {})", cli.process.workers);
            let source = metrics::Source::Master(m.clone());
            match metrics_listener {
                Some(listener) => listener.serve(source, mode, CancellationToken::new())?,
                None if metrics_later => metrics::bind_when_free(cli.clone(), source, mode),
                None => {}
            }
        }
        let mut master = Master::new(cli, listeners, signals);
        master.metrics = metrics;
        master.exe = exe;
        master.old_master = old_master;
        master.notifier = notifier;
        master.run().await
    })
}

/// What happened to a worker.
enum Event {
    Exited {
        pid: u32,
        status: io::Result<ExitStatus>,
    },
    Said {
        pid: u32,
        msg: Message,
    },
    /// The new master of a SIGUSR2 exited (it failed, or this master is long gone).
    UpgradeExited {
        pid: u32,
        status: io::Result<ExitStatus>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Started, not yet ready.
    Starting,
    /// Serving.
    Ready,
    /// Told to stop (SIGTERM sent), draining.
    Stopping,
}

struct Worker {
    slot: u16,
    generation: u64,
    state: State,
    started: Instant,
    stop_sent: Option<Instant>,
    /// The worker this one replaces once it is ready (recycling, memory).
    replaces: Option<u32>,
    /// Over `--max-worker-memory` as soon as it was ready: replacing it would only start
    /// another like it, again and again.
    memory_exempt: bool,
    /// Its cell in the connection table ([`crate::balance`]).
    cell: Option<usize>,
    /// Its block of the metrics region ([`crate::metrics`]).
    block: Option<usize>,
    /// SIGUSR1 came while it was starting (its signal handlers maybe not yet installed): it
    /// is forwarded once the worker is ready.
    reopen_when_ready: bool,
}

/// The connection table the workers balance new connections with, and its file (removed when
/// the master exits).
struct Load {
    table: LoadTable,
    path: std::path::PathBuf,
}

impl Load {
    /// A table for `workers` workers: room for a serving, a starting and a draining one per
    /// slot (a reload or a recycling under way).
    fn create(workers: u16) -> Option<Self> {
        let path = balance::table_path();
        let _ = std::fs::remove_file(&path); // a master that was killed may have left it
        match LoadTable::create(&path, 3 * usize::from(workers) + 1) {
            Ok(table) => Some(Self { table, path }),
            Err(e) => {
                tracing::warn!(
                    "cannot create the connection table {}: {e}; workers accept without it",
                    path.display()
                );
                None
            }
        }
    }

    /// The cell says its worker is not accepting (gone, or told to stop).
    fn clear(&self, cell: Option<usize>) {
        if let Some(cell) = cell {
            let _ = self.table.set(cell, balance::NOT_ACCEPTING);
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

struct Master<'a> {
    cli: &'a Cli,
    listeners: Listeners,
    signals: Signals,
    events_tx: mpsc::UnboundedSender<Event>,
    events: mpsc::UnboundedReceiver<Event>,
    workers: BTreeMap<u32, Worker>,
    /// The generation that serves (all its workers were ready once).
    serving: u64,
    /// The newest generation started (> serving while a reload is under way).
    newest: u64,
    /// Consecutive failed starts per slot.
    failures: BTreeMap<u16, u32>,
    /// Slots to start again at a time (after a failed start).
    retries: Vec<(Instant, u16, u64, Option<u32>)>,
    /// Stopping: SIGTERM or SIGINT was received.
    stopping: Option<Stop>,
    /// Jitter source for --max-requests-jitter.
    seed: u64,
    /// The binary to start on SIGUSR2.
    exe: Option<std::path::PathBuf>,
    /// The new master started on SIGUSR2, while it runs.
    upgrade: Option<u32>,
    /// The master that started this one (SIGUSR2), to stop once this one serves.
    old_master: Option<u32>,
    /// systemd's `NOTIFY_SOCKET`, when it runs us.
    notifier: Notifier,
    /// When the last `WATCHDOG=1` went out.
    watchdog_sent: Option<Instant>,
    /// The connection table, when it could be made.
    load: Option<Load>,
    /// The workers' figures (`--metrics`).
    metrics: Option<std::sync::Arc<metrics::Master>>,
    /// The settings (and config file text) of the serving generation.
    settings: Settings,
    /// Those of a reload under way, once the file was re-read and checked.
    pending: Option<Settings>,
}

impl<'a> Master<'a> {
    fn new(cli: &'a Cli, listeners: Listeners, signals: Signals) -> Self {
        let (events_tx, events) = mpsc::unbounded_channel();
        Self {
            cli,
            listeners,
            signals,
            events_tx,
            events,
            workers: BTreeMap::new(),
            serving: 0,
            newest: 0,
            failures: BTreeMap::new(),
            retries: Vec::new(),
            stopping: None,
            seed: random_seed(),
            exe: None,
            upgrade: None,
            old_master: None,
            notifier: Notifier::default(),
            watchdog_sent: None,
            load: Load::create(cli.process.workers),
            metrics: None,
            settings: cli.settings.clone(),
            pending: None,
        }
    }

    fn n(&self) -> u16 {
        self.cli.process.workers
    }

    async fn run(mut self) -> Result<(), Error> {
        tracing::info!(
            "master {}: starting {} worker(s)",
            std::process::id(),
            self.n()
        );
        if let Err(e) = self.start_generation() {
            self.shutdown(Stop::Term);
            return Err(e);
        }
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Set when the master gives up: it stops the workers first, then returns it.
        let mut fatal: Option<Error> = None;
        loop {
            let step = tokio::select! {
                ev = self.events.recv() => match ev {
                    Some(ev) => self.on_event(ev),
                    // The master holds a sender: the channel never closes.
                    None => Ok(()),
                },
                sig = self.signals.recv_any() => {
                    self.on_signal(sig);
                    Ok(())
                }
                _ = tick.tick() => self.on_tick(),
            };
            if let Err(e) = step {
                if fatal.is_none() {
                    self.shutdown(Stop::Term);
                    fatal = Some(e);
                }
            }
            self.publish_workers();
            if self.stopping.is_some() && self.workers.is_empty() {
                return match fatal {
                    Some(e) => Err(e),
                    None => {
                        tracing::info!("all workers exited; master exiting");
                        Ok(())
                    }
                };
            }
        }
    }

    /// Starts N workers of a new generation.
    fn start_generation(&mut self) -> Result<(), Error> {
        self.newest += 1;
        let generation = self.newest;
        for slot in 1..=self.n() {
            self.spawn(slot, generation, None)?;
        }
        Ok(())
    }

    /// Starts one worker in `slot`.
    fn spawn(&mut self, slot: u16, generation: u64, replaces: Option<u32>) -> Result<(), Error> {
        let io_err = |source| Error::Io {
            what: "cannot start a worker process",
            source,
        };
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().map_err(io_err)?;
        SockRef::from(&theirs).set_cloexec(false).map_err(io_err)?;
        let cell = self.free_cell();
        let block = self.free_block();
        if self.metrics.is_some() && block.is_none() {
            tracing::warn!("worker {slot}: every block of the metrics region is taken (workers still draining): its requests are not counted");
        }
        let metrics_env = match (&self.metrics, block) {
            (Some(m), Some(b)) => Some(m.for_worker(b).map_err(io_err)?),
            _ => None,
        };
        let info = WorkerInfo {
            id: slot,
            generation,
            control_fd: theirs.as_raw_fd(),
            max_requests: self.max_requests(),
            listeners: self.listeners.table.clone(),
            load: match (&self.load, cell) {
                (Some(load), Some(cell)) => Some((cell, load.table.cells(), load.path.clone())),
                _ => None,
            },
            metrics: None,
        };
        let (worker_env, listeners_env) = info.to_env();
        let settings = match &self.pending {
            Some(pending) if generation > self.serving => pending,
            _ => &self.settings,
        };
        let config_env = settings
            .file_text()
            .map(|text| (ENV_CONFIG, text.to_owned()));
        let mut cmd = tokio::process::Command::new("/proc/self/exe");
        cmd.arg0(format!("gatehouse: worker {slot}"))
            .args(std::env::args_os().skip(1))
            .env(ENV_WORKER, worker_env)
            .env(ENV_LISTENERS, listeners_env)
            .envs(info.load_to_env().map(|v| (ENV_LOAD, v)))
            .envs(metrics_env.as_ref().map(|(v, _)| (metrics::ENV_METRICS, v)))
            .envs(config_env)
            // A worker of its own process group: a terminal's Ctrl-C reaches the master only,
            // which stops the workers in order.
            .process_group(0)
            .stdin(match &self.listeners.fd0 {
                Some(fd) => Stdio::from(fd.try_clone().map_err(io_err)?),
                None => Stdio::null(),
            });
        for name in MASTER_ONLY_ENV {
            cmd.env_remove(name);
        }
        let mut child = cmd.spawn().map_err(io_err)?;
        drop(theirs);
        drop(metrics_env);
        let Some(pid) = child.id() else {
            return Err(io_err(io::Error::other("the new worker exited at once")));
        };
        tracing::info!("worker {slot} (pid {pid}, generation {generation}) starting");
        self.workers.insert(
            pid,
            Worker {
                slot,
                generation,
                state: State::Starting,
                started: Instant::now(),
                stop_sent: None,
                replaces,
                memory_exempt: false,
                cell,
                block,
                reopen_when_ready: false,
            },
        );
        let tx = self.events_tx.clone();
        tokio::spawn(async move {
            let status = child.wait().await;
            let _ = tx.send(Event::Exited { pid, status });
        });
        let tx = self.events_tx.clone();
        ours.set_nonblocking(true).map_err(io_err)?;
        let stream = tokio::net::UnixStream::from_std(ours).map_err(io_err)?;
        tokio::spawn(async move {
            let mut lines = BufReader::new(stream).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                match Message::parse(&line) {
                    Some(msg) => {
                        if tx.send(Event::Said { pid, msg }).is_err() {
                            return;
                        }
                    }
                    None => {
                        tracing::warn!(pid, "a worker sent an unknown control message: {line:?}")
                    }
                }
            }
        });
        Ok(())
    }

    /// A cell of the connection table no live worker has.
    fn free_cell(&self) -> Option<usize> {
        let cells = self.load.as_ref()?.table.cells();
        (0..cells).find(|c| self.workers.values().all(|w| w.cell != Some(*c)))
    }

    /// A block of the metrics region no live worker has.
    fn free_block(&self) -> Option<usize> {
        let blocks = self.metrics.as_ref()?.blocks();
        (0..blocks).find(|b| self.workers.values().all(|w| w.block != Some(*b)))
    }

    /// The workers as `/status` shows them.
    fn publish_workers(&self) {
        let Some(m) = &self.metrics else { return };
        let views = self
            .workers
            .iter()
            .map(|(pid, w)| metrics::WorkerView {
                pid: *pid,
                slot: w.slot,
                generation: w.generation,
                state: match w.state {
                    State::Starting => "starting",
                    State::Ready => "ready",
                    State::Stopping => "stopping",
                },
                block: w.block,
            })
            .collect();
        m.set_workers(views);
    }

    /// Counts a worker replaced (`gatehouse_worker_restarts_total`).
    fn restarted(&self, why: Restart) {
        if let Some(m) = &self.metrics {
            m.restarted(why);
        }
    }

    /// `--max-requests` plus this worker's share of `--max-requests-jitter`.
    fn max_requests(&mut self) -> u64 {
        let p = &self.cli.process;
        if p.max_requests == 0 {
            return 0;
        }
        // xorshift64: a different jitter per worker, no two workers recycled together.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let jitter = match p.max_requests_jitter {
            0 => 0,
            j => self.seed % (j + 1),
        };
        p.max_requests.saturating_add(jitter)
    }

    fn on_event(&mut self, ev: Event) -> Result<(), Error> {
        match ev {
            Event::Said { pid, msg } => {
                self.on_message(pid, msg);
                Ok(())
            }
            Event::Exited { pid, status } => self.on_exit(pid, &status),
            Event::UpgradeExited { pid, status } => {
                self.upgrade = None;
                if self.stopping.is_none() {
                    tracing::error!(
                        "upgrade failed: the new master (pid {pid}) {} (its log is above); this master goes on serving",
                        Status(&status)
                    );
                }
                Ok(())
            }
        }
    }

    fn on_message(&mut self, pid: u32, msg: Message) {
        let Some(w) = self.workers.get_mut(&pid) else {
            return;
        };
        match msg {
            Message::Ready if w.state == State::Starting => {
                w.state = State::Ready;
                let (slot, generation, replaces) = (w.slot, w.generation, w.replaces.take());
                tracing::info!(
                    "worker {slot} (pid {pid}, generation {generation}) ready in {} ms",
                    w.started.elapsed().as_millis()
                );
                if let Some(limit) = self.cli.process.max_worker_memory {
                    let rss = resident_bytes(pid).unwrap_or(0);
                    if rss > limit {
                        w.memory_exempt = true;
                        tracing::warn!(
                            "worker {slot} (pid {pid}) uses {} MiB as soon as it is ready, more than --max-worker-memory ({} MiB): it will not be replaced for its memory",
                            rss >> 20,
                            limit >> 20
                        );
                    }
                }
                if std::mem::take(&mut w.reopen_when_ready) {
                    forward_reopen(pid);
                }
                self.failures.remove(&slot);
                if let Some(old) = replaces {
                    self.stop_worker(old, "replaced");
                }
                self.maybe_generation_ready(generation);
            }
            Message::Ready => {}
            Message::Recycle | Message::RecycleStuck => {
                let (slot, generation, state) = (w.slot, w.generation, w.state);
                if state != State::Ready || self.stopping.is_some() || self.replacing(pid) {
                    return;
                }
                let why = match msg {
                    Message::Recycle => "reached --max-requests",
                    _ => "has a wsgi thread stuck past --request-timeout",
                };
                tracing::info!("worker {slot} (pid {pid}) {why}: starting its replacement");
                self.restarted(match msg {
                    Message::Recycle => Restart::MaxRequests,
                    _ => Restart::StuckThread,
                });
                if let Err(e) = self.spawn(slot, generation, Some(pid)) {
                    tracing::error!("cannot start a replacement for worker {slot}: {e}");
                }
            }
        }
    }

    /// Whether a worker is already starting to replace `pid`.
    fn replacing(&self, pid: u32) -> bool {
        self.workers.values().any(|w| w.replaces == Some(pid))
    }

    /// Once every worker of `generation` is ready: it serves, older generations drain.
    fn maybe_generation_ready(&mut self, generation: u64) {
        if generation <= self.serving || generation != self.newest {
            return;
        }
        let ready = self
            .workers
            .values()
            .filter(|w| w.generation == generation && w.state == State::Ready)
            .count();
        if ready < usize::from(self.n()) {
            return;
        }
        let first = self.serving == 0;
        self.serving = generation;
        if let Some(pending) = self.pending.take() {
            self.settings = pending;
        }
        let old: Vec<u32> = self
            .workers
            .iter()
            .filter(|(_, w)| w.generation < generation && w.state != State::Stopping)
            .map(|(pid, _)| *pid)
            .collect();
        let pids: Vec<String> = self
            .workers
            .iter()
            .filter(|(_, w)| w.generation == generation)
            .map(|(pid, _)| pid.to_string())
            .collect();
        let status = format!(
            "serving with {} worker(s), generation {generation} (pids {})",
            self.n(),
            pids.join(", ")
        );
        if first {
            tracing::info!(
                "{} worker(s) ready (pids {}); serving",
                self.n(),
                pids.join(", ")
            );
            if self.old_master.is_some() {
                self.notifier.main_pid(std::process::id());
            }
            self.notifier.ready(&status);
            if let Some(old) = self.old_master.take() {
                tracing::info!("stopping the old master (pid {old}): this one serves now");
                if let Err(e) = sys::kill(old, libc::SIGTERM) {
                    tracing::warn!("cannot signal the old master (pid {old}): {e}");
                }
            }
        } else {
            tracing::info!(
                "reload: generation {generation} ready ({} worker(s), pids {}); stopping {} old worker(s)",
                self.n(),
                pids.join(", "),
                old.len()
            );
            self.notifier.ready(&status);
            for _ in &old {
                self.restarted(Restart::Reload);
            }
        }
        for pid in old {
            self.stop_worker(pid, "reloaded");
        }
    }

    /// Sends SIGTERM to a worker: it stops accepting and drains.
    fn stop_worker(&mut self, pid: u32, why: &str) {
        let Some(w) = self.workers.get_mut(&pid) else {
            return;
        };
        if w.state == State::Stopping {
            return;
        }
        w.state = State::Stopping;
        w.stop_sent = Some(Instant::now());
        if let Some(load) = &self.load {
            load.clear(w.cell);
        }
        tracing::info!("stopping worker {} (pid {pid}): {why}", w.slot);
        if let Err(e) = sys::kill(pid, libc::SIGTERM) {
            tracing::debug!(pid, "SIGTERM to a worker: {e}");
        }
    }

    fn on_exit(&mut self, pid: u32, status: &io::Result<ExitStatus>) -> Result<(), Error> {
        let Some(w) = self.workers.remove(&pid) else {
            return Ok(());
        };
        if let Some(load) = &self.load {
            load.clear(w.cell);
        }
        if let (Some(m), Some(block)) = (&self.metrics, w.block) {
            m.retire(block);
        }
        let (slot, generation) = (w.slot, w.generation);
        let status_text = Status(status);
        match w.state {
            State::Stopping => {
                tracing::info!("worker {slot} (pid {pid}, generation {generation}) {status_text}");
                Ok(())
            }
            State::Ready => {
                if self.stopping.is_some() {
                    tracing::info!("worker {slot} (pid {pid}) {status_text}");
                    return Ok(());
                }
                tracing::warn!(
                    "worker {slot} (pid {pid}, generation {generation}) {status_text} while serving; starting a new one"
                );
                // A replacement already under way (recycling) takes its place.
                let mut replaced = false;
                for other in self.workers.values_mut() {
                    if other.replaces == Some(pid) {
                        other.replaces = None;
                        replaced = true;
                    }
                }
                if replaced || generation < self.serving {
                    return Ok(());
                }
                let killed = matches!(status, Ok(s) if std::os::unix::process::ExitStatusExt::signal(s).is_some());
                self.restarted(if killed {
                    Restart::Signal
                } else {
                    Restart::Exit
                });
                self.spawn(slot, generation, None)
            }
            State::Starting => self.on_failed_start(slot, generation, pid, w.replaces, status),
        }
    }

    /// A worker exited before it was ready.
    fn on_failed_start(
        &mut self,
        slot: u16,
        generation: u64,
        pid: u32,
        replaces: Option<u32>,
        status: &io::Result<ExitStatus>,
    ) -> Result<(), Error> {
        let status_text = Status(status);
        if self.stopping.is_some() {
            tracing::info!("worker {slot} (pid {pid}) {status_text} before it was ready");
            return Ok(());
        }
        if self.serving > 0 && generation > self.serving {
            // A reload that does not start: the serving generation goes on.
            self.pending = None;
            tracing::error!(
                "reload failed: worker {slot} (pid {pid}) of generation {generation} {status_text} before it was ready (its error is above); the workers of generation {} keep serving",
                self.serving
            );
            let doomed: Vec<u32> = self
                .workers
                .iter()
                .filter(|(_, w)| w.generation == generation)
                .map(|(pid, _)| *pid)
                .collect();
            for pid in doomed {
                self.stop_worker(pid, "its generation failed to start");
            }
            self.notifier.ready(&format!(
                "reload failed (generation {generation}); generation {} serves",
                self.serving
            ));
            return Ok(());
        }
        if self.serving == 0 && matches!(status, Ok(s) if s.code() == Some(2)) {
            // Exit status 2: a usage error or an app that cannot start (an import error), which
            // starting it again would not change.
            tracing::error!(
                "worker {slot} (pid {pid}) {status_text} before it was ready: the app cannot start (its error is above)"
            );
            return Err(Error::Workers {
                message: format!(
                    "worker {slot} could not start the app (exit status 2; its error is above)"
                ),
                status: 2,
            });
        }
        let failures = self.failures.entry(slot).or_insert(0);
        *failures += 1;
        if *failures >= MAX_START_FAILURES {
            tracing::error!(
                "worker {slot} (pid {pid}) {status_text} before it was ready, {MAX_START_FAILURES} times in a row: giving up"
            );
            return Err(Error::Workers {
                message: format!(
                    "worker {slot} failed to start {MAX_START_FAILURES} times in a row; the last one {status_text}"
                ),
                status: 1,
            });
        }
        let pause = FIRST_BACKOFF * 2u32.pow(*failures - 1);
        tracing::warn!(
            "worker {slot} (pid {pid}) {status_text} before it was ready; starting it again in {} ms",
            pause.as_millis()
        );
        // A replacement that failed to start leaves the worker it would replace serving.
        self.retries
            .push((Instant::now() + pause, slot, generation, replaces));
        Ok(())
    }

    fn on_signal(&mut self, sig: Received) {
        match sig {
            Received::Stop(stop) if self.stopping.is_some() => {
                tracing::warn!("received {stop} again: stopping the workers at once and exiting");
                let raw = stop.raw();
                for pid in self.workers.keys() {
                    let _ = sys::kill(*pid, raw);
                }
                std::process::exit(stop.immediate_exit_status());
            }
            Received::Stop(stop) => {
                tracing::info!(
                    "received {stop}: stopping {} worker(s) (each lets its requests finish, at most {})",
                    self.workers.len(),
                    self.cli.run.drain_timeout
                );
                self.shutdown(stop);
            }
            Received::Upgrade => self.upgrade_binary(),
            Received::Reopen if self.cli.log.access_log.is_none() => {
                tracing::info!("received SIGUSR1: logs go to stderr, nothing to reopen; ignored");
            }
            Received::Reopen => {
                tracing::info!(
                    "received SIGUSR1: each worker reopens its access log ({} worker(s))",
                    self.workers.len()
                );
                for (pid, w) in &mut self.workers {
                    match w.state {
                        State::Starting => w.reopen_when_ready = true,
                        State::Ready | State::Stopping => forward_reopen(*pid),
                    }
                }
            }
            Received::Hangup if self.stopping.is_some() => {
                tracing::info!("received SIGHUP while stopping; ignored");
            }
            Received::Hangup => {
                let pending = match self.reread_config() {
                    Ok(pending) => pending,
                    Err(msg) => {
                        tracing::error!(
                            "received SIGHUP: {msg}; not reloading: the workers of generation {} keep serving",
                            self.serving
                        );
                        return;
                    }
                };
                // A reload still under way is abandoned for this newer one.
                let unfinished: Vec<u32> = self
                    .workers
                    .iter()
                    .filter(|(_, w)| w.generation > self.serving && w.state != State::Stopping)
                    .map(|(pid, _)| *pid)
                    .collect();
                for pid in unfinished {
                    self.stop_worker(pid, "a newer reload started");
                }
                tracing::info!(
                    "received SIGHUP: reloading (starting {} worker(s) of generation {})",
                    self.n(),
                    self.newest + 1
                );
                self.notifier.reloading();
                self.pending = pending;
                if let Err(e) = self.start_generation() {
                    self.pending = None;
                    tracing::error!("reload failed: {e}; the old workers keep serving");
                    self.notifier.ready("reload failed; the old workers serve");
                }
            }
        }
    }

    /// SIGHUP with `--config`: the settings of the next generation, the file re-read and
    /// checked (values, then the apps as `--check-config` checks them); `Ok(None)` without a
    /// config file. `Err` is the one-line reason.
    fn reread_config(&self) -> Result<Option<Settings>, String> {
        let Some(path) = self.settings.file() else {
            return Ok(None);
        };
        let new = self.cli.reparse()?;
        if !new.settings.embedded() {
            apps::check(&new, Mode::Daemon).map_err(|e| e.to_string())?;
        }
        let changed = new.settings.changed(&self.settings);
        let kept: Vec<&str> = changed
            .iter()
            .copied()
            .filter(|k| MASTER_SETTINGS.contains(k))
            .collect();
        if changed.is_empty() {
            tracing::info!(
                "received SIGHUP: re-read {}: no setting changed",
                path.display()
            );
        } else {
            tracing::info!(
                "received SIGHUP: re-read {}: changed: {}",
                path.display(),
                changed.join(", ")
            );
        }
        if !kept.is_empty() {
            tracing::warn!(
                "{} changed, and the master keeps the value(s) it started with: a restart (or SIGUSR2) applies them",
                kept.join(", ")
            );
        }
        Ok(Some(new.settings))
    }

    /// SIGUSR2: starts a new master from the binary on disk, handing it the listeners. It
    /// stops this one once its workers serve.
    fn upgrade_binary(&mut self) {
        if self.stopping.is_some() {
            tracing::info!("received SIGUSR2 while stopping; ignored");
            return;
        }
        if let Some(pid) = self.upgrade {
            tracing::warn!(
                "received SIGUSR2: a new master (pid {pid}) is already starting; ignored"
            );
            return;
        }
        let Some(exe) = self.exe.clone() else {
            tracing::error!("received SIGUSR2: the path of this binary is unknown; cannot upgrade");
            return;
        };
        let mut cmd = tokio::process::Command::new(&exe);
        cmd.args(std::env::args_os().skip(1))
            .env(
                ENV_UPGRADE_LISTENERS,
                worker::listeners_to_env(&self.listeners.table),
            )
            .env(ENV_UPGRADE_FROM, std::process::id().to_string())
            // The systemd sockets are handed over by the variable above; it notifies systemd in
            // our place (it becomes the service's main process).
            .env_remove("LISTEN_FDS")
            .env_remove("LISTEN_PID")
            .env_remove("LISTEN_FDNAMES")
            .envs(self.notifier.successor_env());
        let stdin = match &self.listeners.fd0 {
            Some(fd) => fd.try_clone().map(Stdio::from),
            None => Ok(Stdio::null()),
        };
        let spawned = stdin.and_then(|stdin| cmd.stdin(stdin).spawn());
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => {
                tracing::error!("received SIGUSR2: cannot start {}: {e}", exe.display());
                return;
            }
        };
        let Some(pid) = child.id() else {
            tracing::error!("received SIGUSR2: the new master exited at once");
            return;
        };
        tracing::info!(
            "received SIGUSR2: started a new master (pid {pid}) from {}; this master stops once it serves",
            exe.display()
        );
        self.upgrade = Some(pid);
        let tx = self.events_tx.clone();
        tokio::spawn(async move {
            let status = child.wait().await;
            let _ = tx.send(Event::UpgradeExited { pid, status });
        });
    }

    /// Stops every worker and closes the master's listeners (their socket files stay when a
    /// new master, started on SIGUSR2, takes over).
    fn shutdown(&mut self, stop: Stop) {
        self.stopping = Some(stop);
        if self.upgrade.is_none() {
            self.notifier.stopping();
        }
        // Else a new master serves in our place and speaks for the service (its MAINPID=):
        // our STOPPING=1 would stop it too.
        self.retries.clear();
        self.listeners.close(self.upgrade.is_some());
        let pids: Vec<u32> = self.workers.keys().copied().collect();
        for pid in pids {
            self.stop_worker(pid, "shutting down");
        }
    }

    fn on_tick(&mut self) -> Result<(), Error> {
        let now = Instant::now();
        let start_timeout = self.cli.process.worker_start_timeout.0;
        let stop_timeout = self.cli.run.drain_timeout.0 + STOP_GRACE;
        for (pid, w) in &self.workers {
            let overdue = match w.state {
                State::Starting => now.duration_since(w.started) > start_timeout,
                State::Stopping => w
                    .stop_sent
                    .is_some_and(|t| now.duration_since(t) > stop_timeout),
                State::Ready => false,
            };
            if overdue {
                tracing::warn!(
                    "worker {} (pid {pid}) {}; killing it",
                    w.slot,
                    match w.state {
                        State::Starting => "did not become ready within --worker-start-timeout",
                        _ => "is still running after --drain-timeout",
                    }
                );
                let _ = sys::kill(*pid, libc::SIGKILL);
            }
        }
        let due: Vec<(u16, u64, Option<u32>)> = self
            .retries
            .iter()
            .filter(|(at, ..)| *at <= now)
            .map(|(_, slot, generation, replaces)| (*slot, *generation, *replaces))
            .collect();
        self.retries.retain(|(at, ..)| *at > now);
        for (slot, generation, replaces) in due {
            let replaces = replaces.filter(|old| self.workers.contains_key(old));
            if generation >= self.serving {
                self.spawn(slot, generation, replaces)?;
            }
        }
        if let Some(limit) = self.cli.process.max_worker_memory {
            self.check_memory(limit);
        }
        if let Some(every) = self.notifier.watchdog_interval() {
            // From the master's own loop: a master that hangs stops pinging.
            if self
                .watchdog_sent
                .is_none_or(|at| now.duration_since(at) >= every)
            {
                self.notifier.watchdog();
                self.watchdog_sent = Some(now);
            }
        }
        Ok(())
    }

    /// Replaces serving workers whose resident memory is over `limit` bytes.
    fn check_memory(&mut self, limit: u64) {
        if self.stopping.is_some() {
            return;
        }
        let over: Vec<(u32, u16, u64, u64)> = self
            .workers
            .iter()
            .filter(|(_, w)| w.state == State::Ready && !w.memory_exempt)
            .filter_map(|(pid, w)| {
                let rss = resident_bytes(*pid)?;
                (rss > limit).then_some((*pid, w.slot, w.generation, rss))
            })
            .collect();
        for (pid, slot, generation, rss) in over {
            if self.replacing(pid) {
                continue;
            }
            tracing::warn!(
                "worker {slot} (pid {pid}) uses {} MiB, over --max-worker-memory ({} MiB): starting its replacement",
                rss >> 20,
                limit >> 20
            );
            self.restarted(Restart::Memory);
            if let Err(e) = self.spawn(slot, generation, Some(pid)) {
                tracing::error!("cannot start a replacement for worker {slot}: {e}");
            }
        }
    }
}

/// Sends SIGUSR1 to a worker (it has its handlers: a starting worker waits until ready).
fn forward_reopen(pid: u32) {
    if let Err(e) = sys::kill(pid, libc::SIGUSR1) {
        tracing::warn!("cannot send SIGUSR1 to worker pid {pid}: {e}");
    }
}
