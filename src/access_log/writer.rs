//! The access log's writer thread: the I/O threads append whole lines to a bounded buffer,
//! the writer thread writes them out in batches, so a slow disk never blocks a request.
//!
//! - A batch is written with one `write(2)` (more only on a short write) to a file opened with
//!   `O_APPEND`: workers sharing one file never interleave within a line.
//! - Lines reach the file at most [`FLUSH_INTERVAL`] after they are logged, sooner when
//!   [`HIGH_WATER`] bytes are waiting; everything is written on [`Writer::shutdown`].
//! - When the disk is slower than the requests and [`CAPACITY`] bytes already wait, new lines
//!   are dropped and counted ([`dropped`]); one warning per [`WARN_INTERVAL`] says how many.
//!   Lines of a batch whose write fails (disk full) count as dropped too.
//! - [`Writer::reopen`] (SIGUSR1) makes the thread write what waits to the old file, then
//!   open the path again (a new file after logrotate moved the old one).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Lines wait at most this long before they are written.
pub(crate) const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// Waiting bytes that make the writer write at once.
pub(crate) const HIGH_WATER: usize = 64 * 1024;
/// The most bytes that wait for the disk; lines beyond are dropped.
pub(crate) const CAPACITY: usize = 2 * 1024 * 1024;
/// At most one warning about dropped lines (or failed writes) this often.
pub(crate) const WARN_INTERVAL: Duration = Duration::from_secs(10);
/// How long shutdown waits for the last write (a hung disk must not hang the exit).
const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);

/// Lines dropped since the process started.
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Lines dropped since the process started: the buffer was full (the disk slower than the
/// requests) or their write failed.
pub(crate) fn dropped() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// Where the lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Standard output (`--access-log -`).
    Stdout,
    /// A file, opened for appending (created `0640` when missing).
    File(PathBuf),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Stdout => f.write_str("stdout"),
            Self::File(p) => p.display().fmt(f),
        }
    }
}

/// Opens `path` for appending lines.
pub(crate) fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .open(path)
}

fn open(target: &Target) -> io::Result<File> {
    match target {
        // A duplicate of fd 1, so writing it bypasses the (line-buffered) `Stdout`.
        Target::Stdout => Ok(File::from(io::stdout().as_fd().try_clone_to_owned()?)),
        Target::File(path) => open_append(path),
    }
}

#[derive(Default)]
struct State {
    buf: Vec<u8>,
    lines: u64,
    /// Dropped because the buffer was full, since the writer last looked.
    dropped: u64,
    reopen: bool,
    stop: bool,
}

impl State {
    /// Appends a whole line, or drops and counts it when the buffer is full (or the writer
    /// stopped); the buffer's length before and after when appended.
    fn append(&mut self, line: &[u8]) -> Option<(usize, usize)> {
        let before = self.buf.len();
        if self.stop || before + line.len() > CAPACITY {
            self.dropped += 1;
            DROPPED.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        self.buf.extend_from_slice(line);
        self.lines += 1;
        Some((before, self.buf.len()))
    }
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves a buffer of whole lines: still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The running writer thread and its buffer.
pub(crate) struct Writer {
    shared: Arc<Shared>,
    done: Mutex<Option<(JoinHandle<()>, mpsc::Receiver<()>)>>,
}

impl Writer {
    /// Opens `target` (errors come back here, before serving) and starts the writer thread.
    pub(crate) fn start(target: Target) -> io::Result<Self> {
        let file = open(&target)?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
        });
        let (done_tx, done_rx) = mpsc::channel();
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("gatehouse-log".into())
                .spawn(move || {
                    Thread::new(target, file).run(&shared);
                    let _ = done_tx.send(());
                })?
        };
        Ok(Self {
            shared,
            done: Mutex::new(Some((thread, done_rx))),
        })
    }

    /// Queues one whole line (ending in `\n`), or drops and counts it when the buffer is full.
    /// Never blocks beyond the short buffer lock.
    pub(crate) fn push(&self, line: &[u8]) {
        let mut state = self.shared.lock();
        let Some((before, after)) = state.append(line) else {
            return;
        };
        drop(state);
        // The writer sleeps until a first line comes, then until the batch is full enough.
        if before == 0 || (before < HIGH_WATER && after >= HIGH_WATER) {
            self.shared.wake.notify_one();
        }
    }

    /// Asks the writer to open the file again (after what waits is written to the old one).
    pub(crate) fn reopen(&self) {
        self.shared.lock().reopen = true;
        self.shared.wake.notify_one();
    }

    /// Writes what waits and stops the thread; waits for it a few seconds at most. Later lines
    /// are dropped.
    pub(crate) fn shutdown(&self) {
        self.shared.lock().stop = true;
        self.shared.wake.notify_one();
        let Some((thread, done)) = self.done.lock().unwrap_or_else(|e| e.into_inner()).take()
        else {
            return;
        };
        match done.recv_timeout(SHUTDOWN_WAIT) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                let _ = thread.join();
            }
            Err(mpsc::RecvTimeoutError::Timeout) => tracing::warn!(
                "access log: the last lines are still not written after {}s; exiting without them",
                SHUTDOWN_WAIT.as_secs()
            ),
        }
    }
}

/// The writer thread's own state.
struct Thread {
    target: Target,
    file: File,
    /// Dropped or lost lines not yet reported, and when the last report went out.
    unreported: u64,
    failed_writes: u64,
    last_error: Option<io::Error>,
    last_warning: Option<Instant>,
}

impl Thread {
    fn new(target: Target, file: File) -> Self {
        Self {
            target,
            file,
            unreported: 0,
            failed_writes: 0,
            last_error: None,
            last_warning: None,
        }
    }

    fn run(mut self, shared: &Shared) {
        let mut batch = Vec::new();
        let mut state = shared.lock();
        loop {
            while state.buf.is_empty() && !state.stop && !state.reopen {
                state = shared.wake.wait(state).unwrap_or_else(|e| e.into_inner());
            }
            // Let a batch gather, for at most the flush interval.
            let deadline = Instant::now() + FLUSH_INTERVAL;
            while state.buf.len() < HIGH_WATER && !state.stop && !state.reopen {
                let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                    break;
                };
                if left.is_zero() {
                    break;
                }
                state = shared
                    .wake
                    .wait_timeout(state, left)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            std::mem::swap(&mut state.buf, &mut batch);
            let lines = std::mem::take(&mut state.lines);
            let reopen = std::mem::take(&mut state.reopen);
            let stop = state.stop;
            self.unreported += std::mem::take(&mut state.dropped);
            drop(state);

            self.write(&batch, lines);
            batch.clear();
            if batch.capacity() > 4 * HIGH_WATER {
                batch.shrink_to(HIGH_WATER);
            }
            if reopen {
                self.reopen();
            }
            self.report(stop);
            if stop {
                return;
            }
            state = shared.lock();
        }
    }

    fn write(&mut self, batch: &[u8], lines: u64) {
        if batch.is_empty() {
            return;
        }
        if let Err(e) = self.file.write_all(batch) {
            DROPPED.fetch_add(lines, Ordering::Relaxed);
            self.unreported += lines;
            self.failed_writes += 1;
            self.last_error = Some(e);
        }
    }

    fn reopen(&mut self) {
        let Target::File(path) = &self.target else {
            tracing::info!("received SIGUSR1: the access log goes to stdout, nothing to reopen");
            return;
        };
        match open_append(path) {
            Ok(file) => {
                self.file = file;
                tracing::info!(path = %path.display(), "access log reopened");
            }
            Err(e) => tracing::error!(
                path = %path.display(),
                error = %e,
                "cannot reopen the access log; still writing to the file it had"
            ),
        }
    }

    /// One warning per interval about lines dropped or lost (and the last write error).
    fn report(&mut self, now_anyway: bool) {
        if self.unreported == 0 {
            return;
        }
        let due = self
            .last_warning
            .is_none_or(|t| t.elapsed() >= WARN_INTERVAL);
        if !due && !now_anyway {
            return;
        }
        match self.last_error.take() {
            Some(error) => tracing::warn!(
                target = %self.target,
                dropped = self.unreported,
                failed_writes = self.failed_writes,
                %error,
                "access log: writes failed; lines lost"
            ),
            None => tracing::warn!(
                target = %self.target,
                dropped = self.unreported,
                total_dropped = dropped(),
                "access log: the disk is slower than the requests; lines dropped (buffer full)"
            ),
        }
        self.unreported = 0;
        self.failed_writes = 0;
        self.last_warning = Some(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_written_on_shutdown_and_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let w = Writer::start(Target::File(path.clone())).unwrap();
        w.push(b"one\n");
        w.push(b"two\n");
        // Written within the flush interval, without shutdown.
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::fs::read(&path).unwrap() != b"one\ntwo\n" {
            assert!(Instant::now() < deadline, "lines not flushed");
            std::thread::sleep(Duration::from_millis(20));
        }
        let rotated = dir.path().join("access.log.1");
        std::fs::rename(&path, &rotated).unwrap();
        w.reopen();
        while !path.exists() {
            assert!(Instant::now() < deadline, "not reopened");
            std::thread::sleep(Duration::from_millis(20));
        }
        w.push(b"three\n");
        w.shutdown();
        w.push(b"late\n");
        assert_eq!(std::fs::read(&rotated).unwrap(), b"one\ntwo\n");
        assert_eq!(std::fs::read(&path).unwrap(), b"three\n");
    }

    #[test]
    fn a_full_buffer_drops_and_counts() {
        // The buffer itself, without the writer thread (which could take it meanwhile).
        let mut state = State {
            buf: vec![b'\n'; CAPACITY - 10],
            lines: 1,
            dropped: 0,
            reopen: false,
            stop: false,
        };
        let line = vec![b'x'; 1023]
            .into_iter()
            .chain([b'\n'])
            .collect::<Vec<_>>();
        let before = dropped();
        assert_eq!(state.append(&line), None);
        assert_eq!(state.append(&line), None);
        assert_eq!(
            state.append(b"short\n"),
            Some((CAPACITY - 10, CAPACITY - 4))
        );
        assert_eq!((state.dropped, state.lines), (2, 2));
        assert!(dropped() >= before + 2);
        assert_eq!(state.buf.len(), CAPACITY - 4, "a dropped line left bytes");
    }
}
