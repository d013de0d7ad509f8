//! The access log (`--access-log PATH|-`): one line per request, whatever front end carried
//! it, in nginx's `combined` format or as JSON (`--access-log-format`).
//!
//! `AccessLog` is an [`Observer`] of every request: when a request is over it formats the
//! line on the I/O thread (a few hundred bytes, no I/O) and hands it to the writer thread
//! (`writer`) through a bounded buffer. The process's one access log is kept here so that
//! SIGUSR1 can `reopen` it and the exit `shutdown` can write its last lines.
//!
//! - `format`: the line formats and their escaping.
//! - `time`: the dates in them.
//! - `writer`: batching, the bounded buffer, reopening.

mod format;
mod time;
mod writer;

use std::sync::{Arc, OnceLock};

use gatehouse_channel_request::observe::{Observer, Outcome, RequestRecord};

pub use format::Format;
pub use writer::Target;

use crate::error::Error;
use writer::Writer;

/// Lines the access log dropped since the process started, because the disk was slower than
/// the requests (the buffer was full) or a write failed. For the metrics.
pub fn dropped_lines() -> u64 {
    writer::dropped()
}

/// The access log of this process, once opened.
static LOG: OnceLock<Arc<AccessLog>> = OnceLock::new();

/// Writes one line per request to the access log.
pub(crate) struct AccessLog {
    format: Format,
    context: format::Context,
    writer: Writer,
}

impl AccessLog {
    /// Opens the log (creating the file when missing) and starts its writer thread. `worker`
    /// is this worker's number with `--workers`.
    fn open(target: Target, format: Format, worker: Option<u16>) -> Result<Self, Error> {
        let writer = Writer::start(target.clone()).map_err(|source| Error::File {
            what: "cannot open the access log",
            path: target.to_string(),
            source,
        })?;
        Ok(Self {
            format,
            context: format::Context { worker },
            writer,
        })
    }
}

impl Observer for AccessLog {
    fn ended(&self, record: &Arc<RequestRecord>, outcome: &Outcome) {
        // One buffer per I/O thread, reused: a line costs no allocation.
        thread_local! {
            static LINE: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
        }
        LINE.with(|line| {
            let mut line = line.borrow_mut();
            line.clear();
            format::write_line(self.format, &self.context, record, outcome, &mut line);
            self.writer.push(line.as_bytes());
        });
    }
}

/// The access log the command line asks for, as an observer to install, or `None` without
/// `--access-log`. Opens it once per process (a second call returns the same log).
pub(crate) fn from_cli(cli: &crate::cli::Cli) -> Result<Option<Arc<dyn Observer>>, Error> {
    let Some(target) = cli.log.access_log.clone() else {
        return Ok(None);
    };
    if let Some(log) = LOG.get() {
        return Ok(Some(log.clone()));
    }
    let worker = crate::worker::current()?.map(|w| w.id);
    let log = Arc::new(AccessLog::open(target, cli.log.access_log_format, worker)?);
    let log = LOG.get_or_init(|| log).clone();
    Ok(Some(log))
}

/// Checks that the access log can be opened (creating the file), for a master before it
/// starts workers that each open it: a bad path is one clear error, not N failed workers.
pub(crate) fn check(cli: &crate::cli::Cli) -> Result<(), Error> {
    match &cli.log.access_log {
        Some(Target::File(path)) => {
            writer::open_append(path)
                .map(drop)
                .map_err(|source| Error::File {
                    what: "cannot open the access log",
                    path: path.display().to_string(),
                    source,
                })
        }
        _ => Ok(()),
    }
}

/// SIGUSR1: opens the access log's file again (logrotate moved it). `false` when there is no
/// access log in this process.
pub(crate) fn reopen() -> bool {
    match LOG.get() {
        Some(log) => {
            log.writer.reopen();
            true
        }
        None => false,
    }
}

/// Writes the access log's last lines and stops its writer thread; call it before the process
/// exits (a CGI program serves one request, then exits at once).
pub(crate) fn shutdown() {
    if let Some(log) = LOG.get() {
        log.writer.shutdown();
    }
}
