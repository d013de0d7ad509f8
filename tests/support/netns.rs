//! A private network namespace for tests that must bind fixed ports (the daemon's defaults,
//! 127.0.0.1:9000, :4000 and :8000): inside it nothing else listens, so such a test neither
//! fails because another program holds a port nor disturbs one that does.
//!
//! `unshare(CLONE_NEWNET)` moves the calling thread (and every process and thread it starts
//! afterwards) into a new namespace whose only interface is a loopback, down; we bring it up.
//! It needs CAP_SYS_ADMIN: root, as CI runs. Nextest runs each test in its own process; under
//! `cargo test` only the calling test's thread moves, which is what we want.
#![allow(
    unsafe_code,
    reason = "unshare(2) and the interface ioctls have no safe wrapper in std"
)]

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Moves the calling thread into a new network namespace with its loopback interface up.
/// `Err` when the system does not allow it (not root, or namespaces disabled).
pub fn enter_private_network() -> io::Result<()> {
    // SAFETY: unshare(2) takes a flag word and touches no memory of ours.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    loopback_up()
}

/// `ip link set lo up`, through SIOCGIFFLAGS / SIOCSIFFLAGS.
fn loopback_up() -> io::Result<()> {
    // SAFETY: socket(2) takes plain integers; the descriptor is owned right after.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a descriptor we just opened and nobody else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: ifreq is a plain C struct (a name and a union of integers): all zeroes is valid.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads the name and writes the flags of `req`, which lives on our
    // stack for the whole call.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS as _, &mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: after SIOCGIFFLAGS the union holds the flags; we only set a bit of them.
    unsafe {
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
    }
    // SAFETY: SIOCSIFFLAGS only reads `req`.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS as _, &req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
