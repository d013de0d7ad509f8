//! Listening sockets handed to us by our parent: fd 0 (`FCGI_LISTENSOCK_FILENO`, as spawn-fcgi,
//! lighttpd's `bin-path` and mod_fcgid pass it), `fd:N`, and systemd's (`crate::systemd`).
//!
//! One of the two modules of the binary with `unsafe` (the other, `crate::sys`, changes the
//! process's identity and reads the clock): a raw descriptor number becomes a socket
//! only here, after it was checked to be an open, listening stream socket, and each number is
//! taken at most once per process.
#![allow(
    unsafe_code,
    reason = "borrowing and adopting inherited file descriptors needs it"
)]
#![deny(clippy::undocumented_unsafe_blocks)]

use std::io;
use std::net::SocketAddr;
use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::Mutex;

use socket2::{Domain, SockRef, Socket, Type};

/// `FCGI_LISTENSOCK_FILENO` (FastCGI spec section 2.2): the descriptor on which a FastCGI
/// application started by its web server finds its listening socket.
pub(crate) const FCGI_LISTENSOCK_FILENO: RawFd = 0;

/// What a descriptor turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Probe {
    /// Not an open descriptor.
    Closed,
    /// Open, but not a socket (a terminal, `/dev/null`, a pipe, a file).
    NotSocket,
    /// A socket, but not a listening stream socket (a connected socket, a datagram socket).
    NotListening,
    /// A listening socket of another family than TCP/IP or unix.
    OtherFamily,
    /// A listening TCP socket bound to this address.
    Tcp(SocketAddr),
    /// A listening unix socket bound to this path (`None` if unnamed or abstract).
    Unix(Option<PathBuf>),
}

impl Probe {
    /// Whether this is a listening socket we can serve on.
    pub(crate) fn is_listener(&self) -> bool {
        matches!(self, Self::Tcp(_) | Self::Unix(_))
    }

    /// Why a descriptor cannot be served on, for error messages.
    pub(crate) fn problem(&self) -> &'static str {
        match self {
            Self::Closed => "not an open file descriptor",
            Self::NotSocket => "not a socket",
            Self::NotListening => "a socket, but not a listening stream socket",
            Self::OtherFamily => "a listening socket, but neither TCP/IP nor unix",
            Self::Tcp(_) | Self::Unix(_) => "usable",
        }
    }
}

/// An adopted listening socket, blocking mode off, close-on-exec on.
#[derive(Debug)]
pub(crate) enum Inherited {
    /// TCP over IPv4 or IPv6.
    Tcp(std::net::TcpListener),
    /// A unix-domain stream socket.
    Unix(std::os::unix::net::UnixListener),
}

/// Descriptors already adopted: adopting one twice would close it twice.
static TAKEN: Mutex<Vec<RawFd>> = Mutex::new(Vec::new());

fn is_open(fd: RawFd) -> bool {
    // SAFETY: fcntl(F_GETFD) only reads the descriptor's flags; any integer is a valid argument
    // (an unused one gives EBADF) and no memory is passed.
    fd >= 0 && unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1
}

/// Looks at descriptor `fd` without taking it.
pub(crate) fn probe(fd: RawFd) -> io::Result<Probe> {
    if !is_open(fd) {
        return Ok(Probe::Closed);
    }
    // SAFETY: `fd` is open (checked just above) and stays open for the borrow, which ends with
    // this function: this process closes only descriptors it owns, and it does not own this one
    // until `take` adopts it.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let sock = SockRef::from(&borrowed);
    match sock.is_listener() {
        Err(e) if e.raw_os_error() == Some(libc::ENOTSOCK) => return Ok(Probe::NotSocket),
        Err(e) => return Err(e),
        Ok(false) => return Ok(Probe::NotListening),
        Ok(true) => {}
    }
    if sock.r#type()? != Type::STREAM {
        return Ok(Probe::NotListening);
    }
    let local = sock.local_addr()?;
    if let Some(addr) = local.as_socket() {
        return Ok(Probe::Tcp(addr));
    }
    if local.domain() == Domain::UNIX {
        return Ok(Probe::Unix(local.as_pathname().map(PathBuf::from)));
    }
    Ok(Probe::OtherFamily)
}

/// Adopts descriptor `fd` as a listener. Fails if it is not an open, listening TCP or unix
/// stream socket, or was adopted before.
pub(crate) fn take(fd: RawFd) -> io::Result<(Inherited, Probe)> {
    let probed = probe(fd)?;
    if !probed.is_listener() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("fd {fd} is {}", probed.problem()),
        ));
    }
    claim(fd)?;
    // SAFETY: `fd` is open and is a listening socket (probed above). Our parent handed it to us
    // to serve on; nothing else in this process reads, writes or closes it (stdin is never used
    // when fd 0 is a listening socket), and `TAKEN` guarantees a single owner.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let sock = Socket::from(owned);
    sock.set_nonblocking(true)?;
    if fd > 2 {
        // Child processes (CGI scripts) must not inherit the listener. Descriptors 0 to 2 are
        // replaced in children anyway.
        sock.set_cloexec(true)?;
    }
    let listener = match probed {
        Probe::Tcp(_) => Inherited::Tcp(sock.into()),
        _ => Inherited::Unix(sock.into()),
    };
    Ok((listener, probed))
}

/// Adopts descriptor `fd` as a connected unix stream socket (the control socket a master hands
/// its worker). Fails if it is not an open socket, or was adopted before. Close-on-exec is set
/// again, so the worker's own children (CGI scripts) do not inherit it.
pub(crate) fn take_stream(fd: RawFd) -> io::Result<std::os::unix::net::UnixStream> {
    match probe(fd)? {
        Probe::NotListening => {}
        other => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("fd {fd} is {}", other.problem()),
            ))
        }
    }
    claim(fd)?;
    // SAFETY: `fd` is open and is a socket (probed above); our master made it for us alone and
    // `TAKEN` guarantees a single owner in this process.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let sock = Socket::from(owned);
    if sock.domain()? != Domain::UNIX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("fd {fd} is not a unix socket"),
        ));
    }
    sock.set_cloexec(true)?;
    sock.set_nonblocking(true)?;
    Ok(sock.into())
}

/// Records `fd` as adopted; an error if it already was.
fn claim(fd: RawFd) -> io::Result<()> {
    let mut taken = TAKEN
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if taken.contains(&fd) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("fd {fd} is already used by another listener"),
        ));
    }
    taken.push(fd);
    Ok(())
}

/// Marks inherited descriptor `fd` close-on-exec without taking it (a socket systemd passed
/// that no listener uses), so CGI scripts do not inherit it. A closed descriptor is left alone.
pub(crate) fn set_cloexec(fd: RawFd) -> io::Result<()> {
    if !is_open(fd) {
        return Ok(());
    }
    // SAFETY: `fd` is open (checked just above) and stays open for the borrow, which ends with
    // this function; we only change its close-on-exec flag.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    SockRef::from(&borrowed).set_cloexec(true)
}

#[cfg(test)]
mod tests {
    use std::os::fd::{AsRawFd, IntoRawFd};

    use super::*;

    #[test]
    fn probes_tell_kinds_apart() {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = tcp.local_addr().unwrap();
        assert_eq!(probe(tcp.as_raw_fd()).unwrap(), Probe::Tcp(addr));

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let unix = std::os::unix::net::UnixListener::bind(&path).unwrap();
        assert_eq!(
            probe(unix.as_raw_fd()).unwrap(),
            Probe::Unix(Some(path.clone()))
        );

        let conn = std::os::unix::net::UnixStream::connect(&path).unwrap();
        assert_eq!(probe(conn.as_raw_fd()).unwrap(), Probe::NotListening);

        let file = std::fs::File::open("/dev/null").unwrap();
        assert_eq!(probe(file.as_raw_fd()).unwrap(), Probe::NotSocket);

        assert_eq!(probe(-1).unwrap(), Probe::Closed);
        assert_eq!(probe(1_000_000).unwrap(), Probe::Closed);
    }

    #[test]
    fn take_adopts_once() {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = tcp.local_addr().unwrap();
        let fd = tcp.into_raw_fd();
        let (Inherited::Tcp(adopted), _) = take(fd).unwrap() else {
            panic!("not tcp")
        };
        assert_eq!(adopted.local_addr().unwrap(), addr);
        assert!(take(fd).is_err(), "second adoption must fail");
        drop(adopted);

        let file = std::fs::File::open("/dev/null").unwrap();
        let err = take(file.as_raw_fd()).unwrap_err();
        assert!(err.to_string().contains("not a socket"), "{err}");
    }
}
