//! Spreading new connections over a master's worker processes.
//!
//! The workers share each listening socket and accept from it with blocking `accept(2)` calls
//! ([`crate::serve::Sharing::Shared`]): the kernel wakes one waiting acceptor per connection, so
//! connections that arrive one at a time alternate between the workers. A burst does not: the
//! worker that just accepted comes back to `accept(2)` and finds the rest of the burst queued
//! before the other worker's woken thread has run (measured: 7 of 8 connections opened at once
//! on one worker), and nginx opens its kept-alive upstream connections in such bursts, then
//! keeps them: one worker would serve them all while the other sits idle.
//!
//! So each worker publishes how many connections it has open in a small table that its master
//! creates (a file of one `u64` cell per worker, written with `pwrite` and read with `pread`),
//! and before each `accept(2)` a worker with more connections than the least loaded serving
//! worker waits its turn for a moment ([`TURN_WAIT`], at most [`MAX_TURN_WAITS`] times), so that
//! one takes the connection. Cells of workers that do not accept (starting, draining, gone) hold
//! [`NOT_ACCEPTING`] and are left out.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// A cell's value for a worker that is not accepting.
pub(crate) const NOT_ACCEPTING: u64 = u64::MAX;
/// How long a worker with more connections than another waits before it looks again.
pub(crate) const TURN_WAIT: Duration = Duration::from_micros(200);
/// How many times it waits before it accepts anyway (the other may be stuck: 5 ms in all).
pub(crate) const MAX_TURN_WAITS: u32 = 25;

/// The table of open connections, one cell per worker.
#[derive(Debug)]
pub(crate) struct LoadTable {
    file: File,
    cells: usize,
}

impl LoadTable {
    /// Creates the table at `path` (the master; the file is its own to remove), every cell
    /// [`NOT_ACCEPTING`].
    pub(crate) fn create(path: &Path, cells: usize) -> io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)?;
        let table = Self { file, cells };
        for i in 0..cells {
            table.set(i, NOT_ACCEPTING)?;
        }
        Ok(table)
    }

    /// Opens the table a master created (a worker).
    pub(crate) fn open(path: &Path, cells: usize) -> io::Result<Self> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(Self { file, cells })
    }

    /// Sets cell `index`.
    pub(crate) fn set(&self, index: usize, value: u64) -> io::Result<()> {
        if index >= self.cells {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "no such cell"));
        }
        self.file
            .write_all_at(&value.to_ne_bytes(), (index * 8) as u64)
    }

    /// Every cell.
    pub(crate) fn read(&self) -> io::Result<Vec<u64>> {
        let mut buf = vec![0u8; self.cells * 8];
        self.file.read_exact_at(&mut buf, 0)?;
        Ok(buf
            .chunks_exact(8)
            .map(|c| {
                let mut b = [0u8; 8];
                b.copy_from_slice(c);
                u64::from_ne_bytes(b)
            })
            .collect())
    }

    /// The number of cells.
    pub(crate) fn cells(&self) -> usize {
        self.cells
    }
}

/// A unique path for a master's table, in the temporary directory.
pub(crate) fn table_path() -> PathBuf {
    std::env::temp_dir().join(format!("gatehouse-{}-load", std::process::id()))
}

/// One worker's part: its open connections, published in its cell.
#[derive(Debug)]
pub(crate) struct Balancer {
    table: LoadTable,
    index: usize,
    open: AtomicU64,
    draining: AtomicBool,
}

impl Balancer {
    /// Starts accepting: the cell says 0.
    pub(crate) fn new(table: LoadTable, index: usize) -> Self {
        let b = Self {
            table,
            index,
            open: AtomicU64::new(0),
            draining: AtomicBool::new(false),
        };
        b.publish(0);
        b
    }

    fn publish(&self, value: u64) {
        if let Err(e) = self.table.set(self.index, value) {
            tracing::debug!("cannot update the connection table: {e}");
        }
    }

    /// A connection was accepted (published by the next [`Self::wait_turn`], which the acceptor
    /// calls at once).
    pub(crate) fn opened(&self) {
        self.open.fetch_add(1, Ordering::AcqRel);
    }

    /// A connection closed: published at once (an acceptor blocked in `accept(2)` would leave
    /// the others looking at its old count).
    pub(crate) fn closed(&self) {
        let n = self.open.fetch_sub(1, Ordering::AcqRel).saturating_sub(1);
        if !self.draining.load(Ordering::Acquire) {
            self.publish(n);
        }
    }

    /// No more accepting: the others stop waiting for this worker.
    pub(crate) fn drain(&self) {
        if !self.draining.swap(true, Ordering::AcqRel) {
            self.publish(NOT_ACCEPTING);
        }
    }

    /// Waits while another accepting worker has fewer connections open than this one (at most
    /// [`MAX_TURN_WAITS`] × [`TURN_WAIT`]), so that one takes the next connection.
    /// Publishes this worker's count first: the others see it as of its last look.
    pub(crate) fn wait_turn(&self) {
        if self.draining.load(Ordering::Acquire) {
            return;
        }
        self.publish(self.open.load(Ordering::Acquire));
        for _ in 0..MAX_TURN_WAITS {
            let Ok(cells) = self.table.read() else {
                return;
            };
            if !behind_another(&cells, self.index, self.open.load(Ordering::Acquire)) {
                return;
            }
            std::thread::sleep(TURN_WAIT);
        }
    }
}

/// Whether some accepting worker other than `index` has at least two connections fewer open
/// than `mine` (one apart is as even as an odd count allows, and connections that come and go
/// one per request keep the counts one apart all the time), or has none while this one has
/// some (two kept-alive connections must not both land on one worker).
fn behind_another(cells: &[u64], index: usize, mine: u64) -> bool {
    cells.iter().enumerate().any(|(i, &n)| {
        i != index && n != NOT_ACCEPTING && (n.saturating_add(1) < mine || (n == 0 && mine > 0))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_waits_only_for_a_less_loaded_accepting_one() {
        let cells = [3, NOT_ACCEPTING, 1, 3];
        assert!(behind_another(&cells, 0, 3), "worker 2 has fewer");
        assert!(
            !behind_another(&cells, 2, 1),
            "the least loaded never waits"
        );
        assert!(!behind_another(&[2, 2], 0, 2), "equal: no wait");
        assert!(
            !behind_another(&[5, NOT_ACCEPTING], 0, 5),
            "others not accepting"
        );
    }

    #[test]
    fn the_table_is_shared_through_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("load");
        let master = LoadTable::create(&path, 3).unwrap();
        assert_eq!(master.read().unwrap(), [NOT_ACCEPTING; 3]);
        let a = Balancer::new(LoadTable::open(&path, 3).unwrap(), 0);
        let b = Balancer::new(LoadTable::open(&path, 3).unwrap(), 2);
        a.opened();
        a.opened();
        b.opened();
        assert_eq!(
            master.read().unwrap(),
            [0, NOT_ACCEPTING, 0],
            "not yet published"
        );
        a.wait_turn();
        b.wait_turn();
        assert_eq!(master.read().unwrap(), [2, NOT_ACCEPTING, 1]);
        a.closed();
        assert_eq!(
            master.read().unwrap(),
            [1, NOT_ACCEPTING, 1],
            "a close is published"
        );
        b.drain();
        b.opened();
        b.wait_turn();
        assert_eq!(master.read().unwrap(), [1, NOT_ACCEPTING, NOT_ACCEPTING]);
        assert_eq!(master.cells(), 3);
        assert!(master.set(3, 0).is_err());
    }
}
