//! The worker side of the process model: what a master hands the worker processes it starts,
//! and what they tell it back.
//!
//! ```text
//!  master ── exec gatehouse (same arguments, argv[0] "gatehouse: worker N") ──► worker
//!     env GATEHOUSE_WORKER           "ID GENERATION CONTROL_FD MAX_REQUESTS"
//!     env GATEHOUSE_WORKER_LISTENERS one line per listener: "KIND FD NAME"
//!     the listening sockets and one end of a unix socket pair, inherited at those fds
//!  worker ──► control socket: "ready\n" once it serves, "recycle\n" after --max-requests,
//!             "recycle stuck\n" when a WSGI thread is stuck past --request-timeout
//!  master ──► SIGTERM: stop accepting, drain, exit 0 (as a single process does)
//!  control socket closed (the master died) ──► the worker drains and exits too
//! ```
//!
//! The variables are read once, removed from the process environment (apps and scripts never
//! see them), and the descriptors adopted through [`crate::inherit`].

use std::os::fd::RawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use gatehouse_channel_request::{AppError, Application, BoxFuture, Request, Response};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::error::Error;
use crate::inherit::{self, Inherited};
use crate::listen::{Bound, Kind, StdListener};

/// Who this worker is, set by its master.
pub(crate) const ENV_WORKER: &str = "GATEHOUSE_WORKER";
/// The listeners a worker inherits.
pub(crate) const ENV_LISTENERS: &str = "GATEHOUSE_WORKER_LISTENERS";
/// The master's connection table (`crate::balance`): `INDEX CELLS PATH`.
pub(crate) const ENV_LOAD: &str = "GATEHOUSE_WORKER_LOAD";
/// The `--config` file's text as the master last validated it (at start-up or SIGHUP): a
/// worker parses it instead of the file on disk, so a worker replaced after the file was
/// edited (or broken) runs its generation's settings.
pub(crate) const ENV_CONFIG: &str = "GATEHOUSE_WORKER_CONFIG";

/// What the master told this worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WorkerInfo {
    /// 1 to N: the slot this worker fills (a replacement keeps the number).
    pub(crate) id: u16,
    /// Which reload this worker belongs to (1 at start-up, +1 per SIGHUP).
    pub(crate) generation: u64,
    /// The worker's end of the control socket.
    pub(crate) control_fd: RawFd,
    /// Requests after which to ask for a replacement; 0: never.
    pub(crate) max_requests: u64,
    /// The listeners: protocol, descriptor, the name the master logged.
    pub(crate) listeners: Vec<(Kind, RawFd, String)>,
    /// This worker's cell in the master's connection table, the table's size and path.
    pub(crate) load: Option<(usize, usize, PathBuf)>,
    /// The master's metrics region (`--metrics`): descriptor, this worker's block, blocks.
    pub(crate) metrics: Option<(RawFd, usize, usize)>,
}

impl WorkerInfo {
    /// The two variables' values.
    pub(crate) fn to_env(&self) -> (String, String) {
        let worker = format!(
            "{} {} {} {}",
            self.id, self.generation, self.control_fd, self.max_requests
        );
        (worker, listeners_to_env(&self.listeners))
    }

    /// Parses the two variables' values.
    pub(crate) fn from_env(worker: &str, listeners: &str) -> Result<Self, String> {
        let bad = || format!("{ENV_WORKER}={worker:?} is not what a gatehouse master sets");
        let mut words = worker.split(' ');
        let mut next = || words.next().ok_or_else(bad);
        let id = next()?.parse().map_err(|_| bad())?;
        let generation = next()?.parse().map_err(|_| bad())?;
        let control_fd = next()?.parse().map_err(|_| bad())?;
        let max_requests = next()?.parse().map_err(|_| bad())?;
        let listeners = parse_listeners(listeners)?;
        let load = None;
        Ok(Self {
            id,
            generation,
            control_fd,
            max_requests,
            listeners,
            load,
            metrics: None,
        })
    }

    /// The value of [`ENV_LOAD`], when there is a table.
    pub(crate) fn load_to_env(&self) -> Option<String> {
        let (index, cells, path) = self.load.as_ref()?;
        Some(format!("{index} {cells} {}", path.display()))
    }

    /// Reads [`ENV_LOAD`]'s value into `self.load`.
    pub(crate) fn with_load_env(mut self, text: &str) -> Result<Self, String> {
        let bad = || format!("{ENV_LOAD}={text:?} is not what a gatehouse master sets");
        let mut parts = text.splitn(3, ' ');
        let index = parts.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
        let cells = parts.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
        let path = parts.next().ok_or_else(bad)?;
        self.load = Some((index, cells, PathBuf::from(path)));
        Ok(self)
    }

    /// Reads [`crate::metrics::ENV_METRICS`]'s value (`FD BLOCK BLOCKS`) into `self.metrics`.
    pub(crate) fn with_metrics_env(mut self, text: &str) -> Result<Self, String> {
        let env = crate::metrics::ENV_METRICS;
        let bad = || format!("{env}={text:?} is not what a gatehouse master sets");
        let mut parts = text.split(' ');
        let fd = parts.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
        let block = parts.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
        let blocks = parts.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
        self.metrics = Some((fd, block, blocks));
        Ok(self)
    }

    /// The worker's part of the connection table, when its master made one (balancing is
    /// skipped, with a log line, if the table cannot be opened).
    pub(crate) fn balancer(&self) -> Option<crate::balance::Balancer> {
        let (index, cells, path) = self.load.as_ref()?;
        match crate::balance::LoadTable::open(path, *cells) {
            Ok(table) => Some(crate::balance::Balancer::new(table, *index)),
            Err(e) => {
                tracing::warn!(
                    "cannot open the master's connection table {}: {e}; accepting without it",
                    path.display()
                );
                None
            }
        }
    }

    /// Adopts the inherited listeners, in the master's order.
    pub(crate) fn take_listeners(&self) -> Result<Vec<Bound>, Error> {
        take_listeners(&self.listeners, "the master")
    }
}

/// A listener table as [`WorkerInfo::to_env`] writes it: `KIND FD NAME` lines.
pub(crate) fn listeners_to_env(listeners: &[(Kind, RawFd, String)]) -> String {
    listeners
        .iter()
        .map(|(kind, fd, name)| format!("{} {fd} {name}\n", kind.name()))
        .collect()
}

/// Parses `KIND FD NAME` lines (at least one).
pub(crate) fn parse_listeners(text: &str) -> Result<Vec<(Kind, RawFd, String)>, String> {
    let listeners = text
        .lines()
        .map(|line| {
            let bad = || format!("{ENV_LISTENERS}: bad line {line:?}");
            let mut parts = line.splitn(3, ' ');
            let kind = match parts.next() {
                Some("fastcgi") => Kind::FastCgi,
                Some("scgi") => Kind::Scgi,
                Some("http") => Kind::Http,
                Some("uwsgi") => Kind::Uwsgi,
                _ => return Err(bad()),
            };
            let fd = parts.next().and_then(|f| f.parse().ok()).ok_or_else(bad)?;
            let name = parts.next().ok_or_else(bad)?.to_owned();
            Ok((kind, fd, name))
        })
        .collect::<Result<Vec<_>, String>>()?;
    if listeners.is_empty() {
        return Err(format!("{ENV_LISTENERS} names no listener"));
    }
    Ok(listeners)
}

/// Adopts inherited listeners, in order; `from` names who handed them over, for errors.
pub(crate) fn take_listeners(
    listeners: &[(Kind, RawFd, String)],
    from: &str,
) -> Result<Vec<Bound>, Error> {
    listeners
        .iter()
        .map(|(kind, fd, name)| {
            let (listener, _) = inherit::take_shared(*fd).map_err(|source| Error::Listen {
                addr: format!("{name} (fd {fd} from {from})"),
                source,
            })?;
            Ok(Bound {
                kind: *kind,
                name: name.clone(),
                listener: match listener {
                    Inherited::Tcp(l) => StdListener::Tcp(l),
                    Inherited::Unix(l) => StdListener::Unix(l, None),
                },
            })
        })
        .collect()
}

static CURRENT: OnceLock<Result<Option<WorkerInfo>, String>> = OnceLock::new();

/// This process's worker description: `Ok(None)` when it is not a worker. The first call reads
/// the variables and removes them from the environment; call it early, while the process has
/// one thread (before logging, the runtime or Python start).
pub(crate) fn current() -> Result<Option<&'static WorkerInfo>, Error> {
    let info = CURRENT.get_or_init(|| {
        let Some(worker) = std::env::var_os(ENV_WORKER) else {
            return Ok(None);
        };
        let listeners = std::env::var_os(ENV_LISTENERS).unwrap_or_default();
        let load = std::env::var_os(ENV_LOAD);
        let metrics = std::env::var_os(crate::metrics::ENV_METRICS);
        // Single-threaded start-up (see above): nothing else reads the environment yet.
        #[allow(clippy::disallowed_methods)]
        {
            std::env::remove_var(ENV_WORKER);
            std::env::remove_var(ENV_LISTENERS);
            std::env::remove_var(ENV_LOAD);
            std::env::remove_var(crate::metrics::ENV_METRICS);
        }
        let (Some(worker), Some(listeners)) = (worker.to_str(), listeners.to_str()) else {
            return Err(format!("{ENV_WORKER} or {ENV_LISTENERS} is not UTF-8"));
        };
        let mut info = WorkerInfo::from_env(worker, listeners)?;
        if let Some(metrics) = metrics {
            let text = metrics
                .to_str()
                .ok_or_else(|| format!("{} is not UTF-8", crate::metrics::ENV_METRICS))?;
            info = info.with_metrics_env(text)?;
        }
        match load {
            None => Ok(Some(info)),
            Some(load) => {
                let load = load
                    .to_str()
                    .ok_or_else(|| format!("{ENV_LOAD} is not UTF-8"))?;
                info.with_load_env(load).map(Some)
            }
        }
    });
    match info {
        Ok(info) => Ok(info.as_ref()),
        Err(msg) => Err(Error::Usage(msg.clone())),
    }
}

/// What a worker tells its master.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Message {
    /// Listening and serving.
    Ready,
    /// Served `--max-requests`: please start a replacement, then stop me.
    Recycle,
    /// A WSGI thread is stuck past `--request-timeout` (blocked in native code): please start a
    /// replacement, then stop me (gracefully: the other requests finish).
    RecycleStuck,
}

impl Message {
    pub(crate) fn line(self) -> &'static str {
        match self {
            Self::Ready => "ready\n",
            Self::Recycle => "recycle\n",
            Self::RecycleStuck => "recycle stuck\n",
        }
    }

    pub(crate) fn parse(line: &str) -> Option<Self> {
        match line.trim_end() {
            "ready" => Some(Self::Ready),
            "recycle" => Some(Self::Recycle),
            "recycle stuck" => Some(Self::RecycleStuck),
            _ => None,
        }
    }
}

/// The worker's end of the control socket, running.
#[derive(Debug, Clone)]
pub(crate) struct Control {
    tx: mpsc::UnboundedSender<Message>,
    /// Cancelled when the master's end closes (the master died or exited).
    pub(crate) master_gone: CancellationToken,
}

impl Control {
    /// Adopts the control socket and starts the task that writes messages and notices the
    /// master going away. Must run inside the runtime.
    pub(crate) fn start(info: &WorkerInfo) -> Result<Self, Error> {
        let io_err = |source| Error::Io {
            what: "cannot use the control socket from the master",
            source,
        };
        let std = inherit::take_stream(info.control_fd).map_err(io_err)?;
        let stream = tokio::net::UnixStream::from_std(std).map_err(io_err)?;
        let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
        let master_gone = CancellationToken::new();
        let gone = master_gone.clone();
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut lines = BufReader::new(read).lines();
            loop {
                tokio::select! {
                    msg = rx.recv() => {
                        let Some(msg) = msg else { return };
                        if write.write_all(msg.line().as_bytes()).await.is_err() {
                            break;
                        }
                    }
                    line = lines.next_line() => match line {
                        Ok(Some(_)) => {}
                        Ok(None) | Err(_) => break,
                    },
                }
            }
            gone.cancel();
        });
        Ok(Self { tx, master_gone })
    }

    /// Sends `msg` to the master (dropped if the master is gone).
    pub(crate) fn send(&self, msg: Message) {
        let _ = self.tx.send(msg);
    }
}

/// The app of a worker with `--max-requests`: counts the requests it starts and asks for a
/// replacement once, when the count reaches the limit. Requests keep being served until the
/// master stops this worker (the replacement is ready first).
pub(crate) struct Recycling {
    inner: Arc<dyn Application>,
    served: AtomicU64,
    limit: u64,
    worker: u16,
    control: Mutex<Option<Control>>,
}

impl Recycling {
    pub(crate) fn new(
        inner: Arc<dyn Application>,
        limit: u64,
        worker: u16,
        control: Control,
    ) -> Self {
        Self {
            inner,
            served: AtomicU64::new(0),
            limit,
            worker,
            control: Mutex::new(Some(control)),
        }
    }
}

impl Application for Recycling {
    fn call<'a>(
        &'a self,
        req: Request,
        resp: &'a mut Response,
    ) -> BoxFuture<'a, Result<(), AppError>> {
        let n = self.served.fetch_add(1, Ordering::Relaxed) + 1;
        if n == self.limit {
            let control = self
                .control
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .take();
            if let Some(control) = control {
                tracing::info!(
                    "worker {} has served {n} requests (--max-requests): asking the master for a replacement",
                    self.worker
                );
                control.send(Message::Recycle);
            }
        }
        self.inner.call(req, resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_round_trip() {
        let info = WorkerInfo {
            id: 3,
            generation: 7,
            control_fd: 9,
            max_requests: 1000,
            listeners: vec![
                (Kind::FastCgi, 0, "fd:0 (unix:/run/a b.sock)".to_owned()),
                (Kind::Http, 5, "127.0.0.1:8000".to_owned()),
            ],
            load: None,
            metrics: None,
        };
        let (w, l) = info.to_env();
        assert_eq!(WorkerInfo::from_env(&w, &l), Ok(info.clone()));
        let with = info.with_load_env("2 7 /tmp/a b").unwrap();
        assert_eq!(with.load, Some((2, 7, PathBuf::from("/tmp/a b"))));
        assert_eq!(with.load_to_env().as_deref(), Some("2 7 /tmp/a b"));
        assert!(with.clone().with_load_env("x").is_err());
        let m = with.with_metrics_env("7 2 13").unwrap();
        assert_eq!(m.metrics, Some((7, 2, 13)));
        assert!(m.with_metrics_env("7 2").is_err());
        assert!(WorkerInfo::from_env("3 7 9", &l).is_err());
        assert!(WorkerInfo::from_env(&w, "").is_err());
        assert!(WorkerInfo::from_env(&w, "gopher 3 x\n").is_err());
        assert!(WorkerInfo::from_env(&w, "http x y\n").is_err());
    }

    #[test]
    fn messages() {
        for m in [Message::Ready, Message::Recycle, Message::RecycleStuck] {
            assert_eq!(Message::parse(m.line()), Some(m));
        }
        assert_eq!(Message::parse("hello\n"), None);
    }
}
