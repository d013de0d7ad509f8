//! The memory the figures live in: a `memfd` mapped shared, seen as `u64` atomics. A master
//! creates it and hands a descriptor to each worker it starts, so the workers' counters are
//! in memory the master reads without asking them; a single process makes one for itself.
#![allow(
    unsafe_code,
    reason = "memfd_create, mmap/munmap and fcntl have no std equivalent, and shared memory is seen through a pointer"
)]
#![deny(clippy::undocumented_unsafe_blocks)]

use std::ffi::CStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::AtomicU64;

/// A shared, zero-filled array of `u64` atomics.
#[derive(Debug)]
pub(crate) struct Region {
    ptr: *mut AtomicU64,
    words: usize,
    file: File,
}

// SAFETY: the mapping is only ever accessed through `AtomicU64`s, which are `Sync`; the pointer
// stays valid until `Drop`, which needs `&mut self`.
unsafe impl Send for Region {}
// SAFETY: as above: every access is an atomic operation.
unsafe impl Sync for Region {}

impl Region {
    /// A new region of `words` cells, all 0, close-on-exec.
    pub(crate) fn create(words: usize) -> io::Result<Self> {
        let name: &CStr = c"gatehouse-metrics";
        // SAFETY: memfd_create(2) reads a NUL-terminated name that lives across the call.
        let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: memfd_create returned a new descriptor that nothing else owns.
        let file = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        file.set_len((words * 8) as u64)?;
        Self::map(file, words)
    }

    /// Adopts the region a master handed this worker on descriptor `fd`: it must be a file of
    /// exactly `words` cells. Marks it close-on-exec (scripts the worker runs never see it).
    pub(crate) fn adopt(fd: RawFd, words: usize) -> io::Result<Self> {
        // SAFETY: fcntl(2) F_GETFD on an integer only tells whether it is an open descriptor.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the master passed this descriptor for us alone to take (checked open above);
        // nothing else in this process uses it.
        let file = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        set_cloexec(file.as_raw_fd(), true)?;
        let len = file.metadata()?.len();
        if len != (words * 8) as u64 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the metrics region is {len} bytes, expected {}", words * 8),
            ));
        }
        Self::map(file, words)
    }

    fn map(file: File, words: usize) -> io::Result<Self> {
        // SAFETY: a new shared mapping of the whole file, which has `words * 8` bytes; the
        // kernel picks the address. Nothing is read or written here.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                words * 8,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            ptr: ptr.cast(),
            words,
            file,
        })
    }

    /// The cells.
    pub(crate) fn cells(&self) -> &[AtomicU64] {
        // SAFETY: `ptr` maps `words` u64s (page-aligned, so aligned for AtomicU64) for as long as
        // `self` lives; other processes change them only through atomic operations too.
        unsafe { std::slice::from_raw_parts(self.ptr, self.words) }
    }

    /// A descriptor of the region for a child process to inherit: a duplicate without
    /// close-on-exec, to be dropped once the child is started.
    pub(crate) fn inheritable(&self) -> io::Result<OwnedFd> {
        let dup = self.file.try_clone()?;
        set_cloexec(dup.as_raw_fd(), false)?;
        Ok(OwnedFd::from(dup))
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `map`; no reference into it outlives
        // `self` (`cells` borrows `self`).
        unsafe {
            libc::munmap(self.ptr.cast(), self.words * 8);
        }
    }
}

fn set_cloexec(fd: RawFd, on: bool) -> io::Result<()> {
    // SAFETY: F_GETFD/F_SETFD on a descriptor we own change only its close-on-exec flag.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    let flags = if on {
        flags | libc::FD_CLOEXEC
    } else {
        flags & !libc::FD_CLOEXEC
    };
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, flags) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    #[test]
    fn two_mappings_see_the_same_cells() {
        let a = Region::create(16).unwrap();
        let fd = a.inheritable().unwrap();
        let raw = std::os::fd::IntoRawFd::into_raw_fd(fd);
        let b = Region::adopt(raw, 16).unwrap();
        a.cells()[3].fetch_add(5, Ordering::Relaxed);
        assert_eq!(b.cells()[3].load(Ordering::Relaxed), 5);
        assert_eq!(b.cells()[0].load(Ordering::Relaxed), 0);
        let raw = std::os::fd::IntoRawFd::into_raw_fd(a.inheritable().unwrap());
        assert!(Region::adopt(raw, 8).is_err(), "size mismatch");
    }
}
