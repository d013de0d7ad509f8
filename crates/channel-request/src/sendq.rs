//! How many bytes written to a socket its peer has not taken yet (`SIOCOUTQ`): the measure of a
//! slow reader's progress while our writes wait.
//!
//! A socket becomes writable again only once a good part of its send buffer has drained (a third
//! of several MiB for TCP, three quarters for a unix socket), so a client reading steadily but
//! slowly can go longer than the idle timeout between two of our writes. The queue shrinking is
//! progress all the same, as nginx's `send_timeout` counts it.
//!
//! Used by the HTTP and SCGI front ends, which time a peer that does not read. This is the crate's
//! only `unsafe` code: one `ioctl(2)` whose only precondition is a valid pointer to an `int`.
#![allow(unsafe_code)] // reason: SIOCOUTQ has no std, tokio or socket2 wrapper; SAFETY note below

use std::any::Any;
use std::os::fd::{AsRawFd, RawFd};

/// The send queue of one connection's socket, when the transport is one (tokio's TCP and unix
/// stream sockets; other transports, such as in-memory pipes in tests, have none).
#[derive(Debug, Clone, Copy)]
pub struct SendQueue(Option<RawFd>);

impl SendQueue {
    /// The probe for `io`. The descriptor is only used while the connection is served, which
    /// owns `io`; a late use on a closed (or reused) descriptor reads a wrong number, no memory.
    pub fn of<IO: 'static>(io: &IO) -> Self {
        let io = io as &dyn Any;
        let fd = io
            .downcast_ref::<tokio::net::TcpStream>()
            .map(AsRawFd::as_raw_fd)
            .or_else(|| {
                io.downcast_ref::<tokio::net::UnixStream>()
                    .map(AsRawFd::as_raw_fd)
            });
        Self(fd)
    }

    /// Bytes written but not yet taken by the peer (TCP: not acknowledged; unix: not read), or
    /// `None` when unknown.
    pub fn bytes(self) -> Option<u64> {
        let fd = self.0?;
        let mut queued: libc::c_int = 0;
        // SAFETY: SIOCOUTQ writes one `int` through the pointer, which points to `queued`, alive
        // for the call. An invalid descriptor makes the call fail (EBADF, ENOTTY), nothing more.
        let rc = unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut queued as *mut libc::c_int) };
        (rc == 0).then(|| u64::try_from(queued).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;

    #[tokio::test]
    async fn measures_a_socket_and_nothing_else() {
        let (mut a, b) = tokio::net::UnixStream::pair().expect("socket pair");
        let q = SendQueue::of(&a);
        assert_eq!(q.bytes(), Some(0));
        a.write_all(&[7; 1000]).await.expect("write");
        assert!(q.bytes().is_some_and(|n| n >= 1000), "{:?}", q.bytes());
        drop(b);
        let (duplex, _other) = tokio::io::duplex(64);
        assert_eq!(SendQueue::of(&duplex).bytes(), None);
    }
}
