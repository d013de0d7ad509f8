//! Response spilling (nginx's proxy buffering): the part of an answer a slow client has not
//! taken yet goes to an unlinked temp file, so the app finishes and frees its CGI slot or
//! Python thread, and N slow clients cost disk, not memory.
//!
//! ```text
//!   app ── QueueChannel ──► credit left and the process-wide memory budget not passed?
//!                             yes: Delivery(Body) in memory (as without a spool)
//!                             no:  bytes appended to the request's SpillFile, one marker queued
//!   driver ◄── DeliveryReceiver: a marker becomes Body chunks read back from the file, in order
//! ```
//!
//! [`ResponseSpool`] is the configuration and the process-wide count of response bytes queued
//! in memory over all requests. A request's `SpillFile` is made on its first spill (and never
//! for an answer that fits its credit); it is unlinked at once, so its space is freed when the
//! last reference goes: the request's channel, a queued marker, the receiver reading it. That is
//! when the response ends, the client goes or the connection closes.
//!
//! Order: while a request has bytes in its file that the driver has not read back, its next
//! chunks go to the file too (only one marker per request is outstanding); once the driver has
//! caught up, the file is rewound and chunks take the memory path again. Beyond the file's
//! limit the app waits for the driver, as without a spool.
//!
//! File I/O is synchronous (`pwrite`/`pread` of at most [`READ_CHUNK`] bytes, served by the
//! page cache), as nginx does without `aio`.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::Notify;

/// Default per-request limit of spilled bytes: 1 GiB (nginx's `proxy_max_temp_file_size`).
pub const DEFAULT_MAX_SPILL_BYTES: u64 = 1 << 30;

/// Default process-wide budget of response bytes queued in memory: 32 MiB.
pub const DEFAULT_MEMORY_BUDGET: usize = 32 << 20;

/// The most read back from a spill file at once.
pub const READ_CHUNK: usize = 64 << 10;

/// A new temp file `PREFIX-PID-N` in `dir`, mode 0600, unlinked at once: only this process can
/// reach it, and its space is freed when it is closed. The request-body spools and the response
/// spill files are made here.
pub fn unlinked_temp_file(dir: &Path, prefix: &str) -> io::Result<File> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let path = dir.join(format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(file)
}

/// A spill file rewound while at least this big is also truncated (its disk space returned).
const SHRINK_AT: u64 = 4 << 20;

/// Where answers spill, how much, and the process-wide memory budget. Share one (an `Arc`)
/// among every front end that spills; give it to channels with
/// [`QueueChannel::with_spool`](crate::QueueChannel::with_spool).
#[derive(Debug)]
pub struct ResponseSpool {
    dir: PathBuf,
    max_file_bytes: u64,
    memory_budget: usize,
    in_memory: AtomicUsize,
    files: AtomicUsize,
    spilled: AtomicU64,
}

impl ResponseSpool {
    /// A spool whose temp files go to `dir`, at most `max_file_bytes` per request, spilling
    /// every new chunk once `memory_budget` bytes of answers are queued in memory in all.
    pub fn new(dir: PathBuf, max_file_bytes: u64, memory_budget: usize) -> Arc<Self> {
        Arc::new(Self {
            dir,
            max_file_bytes,
            memory_budget,
            in_memory: AtomicUsize::new(0),
            files: AtomicUsize::new(0),
            spilled: AtomicU64::new(0),
        })
    }

    /// The directory of the temp files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The per-request limit of spilled bytes.
    pub fn max_file_bytes(&self) -> u64 {
        self.max_file_bytes
    }

    /// The process-wide budget of answer bytes queued in memory.
    pub fn memory_budget(&self) -> usize {
        self.memory_budget
    }

    /// Answer bytes queued in memory now (over every channel of this spool).
    pub fn in_memory_bytes(&self) -> usize {
        self.in_memory.load(Ordering::Relaxed)
    }

    /// Spill files open now.
    pub fn open_files(&self) -> usize {
        self.files.load(Ordering::Relaxed)
    }

    /// Bytes ever written to spill files.
    pub fn spilled_bytes(&self) -> u64 {
        self.spilled.load(Ordering::Relaxed)
    }

    /// Whether `len` more bytes in memory would pass the budget.
    pub(crate) fn over_budget(&self, len: usize) -> bool {
        self.in_memory_bytes().saturating_add(len) > self.memory_budget
    }

    /// Counts `bytes` as queued in memory until the charge is dropped.
    pub(crate) fn charge(self: &Arc<Self>, bytes: usize) -> MemoryCharge {
        self.in_memory.fetch_add(bytes, Ordering::Relaxed);
        MemoryCharge {
            spool: self.clone(),
            bytes,
        }
    }

    /// A new spill file, unlinked at once (only this process can reach it).
    pub(crate) fn create(self: &Arc<Self>) -> io::Result<Arc<SpillFile>> {
        let file = unlinked_temp_file(&self.dir, "gatehouse-response")?;
        self.files.fetch_add(1, Ordering::Relaxed);
        Ok(Arc::new(SpillFile {
            spool: self.clone(),
            state: Mutex::new(SpillState {
                file,
                written: 0,
                read: 0,
                size: 0,
                outstanding: false,
                failed: false,
            }),
            drained: Notify::new(),
        }))
    }
}

impl PartialEq for ResponseSpool {
    /// Same configuration (not same counts).
    fn eq(&self, other: &Self) -> bool {
        (&self.dir, self.max_file_bytes, self.memory_budget)
            == (&other.dir, other.max_file_bytes, other.memory_budget)
    }
}

impl Eq for ResponseSpool {}

/// Answer bytes counted in [`ResponseSpool::in_memory_bytes`] until dropped.
#[derive(Debug)]
pub(crate) struct MemoryCharge {
    spool: Arc<ResponseSpool>,
    bytes: usize,
}

impl Drop for MemoryCharge {
    fn drop(&mut self) {
        self.spool
            .in_memory
            .fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// One request's spilled bytes: written by its channel, read back by the driver's receiver.
#[derive(Debug)]
pub(crate) struct SpillFile {
    spool: Arc<ResponseSpool>,
    state: Mutex<SpillState>,
    /// Signalled when the reader caught up (nothing outstanding any more).
    drained: Notify,
}

#[derive(Debug)]
struct SpillState {
    file: File,
    /// End of the bytes written (the file is rewound to 0 whenever the reader catches up).
    written: u64,
    /// Start of the bytes not read back yet.
    read: u64,
    /// The file's length (its high-water mark since the last truncation).
    size: u64,
    /// A marker is queued or being read: new chunks must go to the file, after it.
    outstanding: bool,
    /// A read failed: the response is lost.
    failed: bool,
}

/// What [`SpillFile::append`] did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Appended {
    /// Written; queue a marker (none was outstanding).
    NeedsMarker,
    /// Written, read back through the outstanding marker.
    Joined,
    /// Not written: the request's limit would be passed.
    Full,
}

impl SpillFile {
    fn lock(&self) -> MutexGuard<'_, SpillState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether bytes are waiting in the file (so the next chunk must go there too).
    pub(crate) fn outstanding(&self) -> bool {
        self.lock().outstanding
    }

    /// Appends `chunk`, unless that would pass the request's limit.
    pub(crate) fn append(&self, chunk: &[u8]) -> io::Result<Appended> {
        let mut st = self.lock();
        if st.failed {
            return Err(io::Error::other("the spill file could not be read back"));
        }
        let end = st.written + chunk.len() as u64;
        if end > self.spool.max_file_bytes {
            return Ok(Appended::Full);
        }
        st.file.write_all_at(chunk, st.written)?;
        st.written = end;
        st.size = st.size.max(end);
        self.spool
            .spilled
            .fetch_add(chunk.len() as u64, Ordering::Relaxed);
        Ok(if std::mem::replace(&mut st.outstanding, true) {
            Appended::Joined
        } else {
            Appended::NeedsMarker
        })
    }

    /// Waits until the reader caught up with the file (or is signalled spuriously: check
    /// [`outstanding`](Self::outstanding) again).
    pub(crate) async fn drained(&self) {
        self.drained.notified().await;
    }

    /// The next bytes to send, or `None` once the reader caught up: the marker is consumed,
    /// the file rewound, and the writer may use memory again.
    pub(crate) fn read_next(&self) -> io::Result<Option<Bytes>> {
        let mut st = self.lock();
        if st.read < st.written {
            let n = (st.written - st.read).min(READ_CHUNK as u64) as usize;
            let mut buf = vec![0; n];
            if let Err(e) = st.file.read_exact_at(&mut buf, st.read) {
                st.failed = true;
                st.outstanding = false;
                drop(st);
                self.drained.notify_one();
                return Err(e);
            }
            st.read += n as u64;
            return Ok(Some(Bytes::from(buf)));
        }
        st.outstanding = false;
        st.read = 0;
        st.written = 0;
        if st.size >= SHRINK_AT && st.file.set_len(0).is_ok() {
            st.size = 0;
        }
        drop(st);
        self.drained.notify_one();
        Ok(None)
    }
}

impl Drop for SpillFile {
    fn drop(&mut self) {
        self.spool.files.fetch_sub(1, Ordering::Relaxed);
    }
}
