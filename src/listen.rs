//! Making the listening sockets: which ones (flags, fd 0, or the default), and binding them with
//! socket2.
//!
//! - TCP: `SO_REUSEADDR` (a restart does not wait for TIME_WAIT), IPv6 sockets are v6-only so
//!   `[::]:9000` and `0.0.0.0:9000` can both be given, backlog from `--backlog`.
//! - Unix: a socket file left by a dead process is replaced (nothing accepts a connection on it),
//!   a live one is an error, any other file is never touched. `--socket-mode` is applied before
//!   `listen(2)`, so no client can connect while the mode is still the umask's. The file is removed
//!   when the listener closes, if it is still ours.
//! - `fd:N` and fd 0: adopted through [`crate::inherit`].
//!
//! Everything here runs before the runtime starts; [`crate::serve`] turns the results into tokio
//! listeners.

use std::fs;
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use socket2::{Domain, SockAddr, Socket, Type};

use crate::addr::ListenAddr;
use crate::error::Error;
use crate::inherit::{self, Inherited, Probe, FCGI_LISTENSOCK_FILENO};

/// The protocol served on a listener. SCGI and HTTP join here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// FastCGI 1.0.
    FastCgi,
}

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::FastCgi => "fastcgi",
        }
    }
}

/// How to bind.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BindOptions {
    pub(crate) backlog: i32,
    pub(crate) socket_mode: Option<u32>,
}

/// A bound, listening, non-blocking socket.
#[derive(Debug)]
pub(crate) enum StdListener {
    Tcp(std::net::TcpListener),
    Unix(std::os::unix::net::UnixListener, Option<SocketFile>),
}

/// A listener ready to be served.
#[derive(Debug)]
pub(crate) struct Bound {
    pub(crate) kind: Kind,
    /// What the logs call it: the real address (`127.0.0.1:41234` for port 0), `unix:/path`, or
    /// `fd:0 (127.0.0.1:9000)`.
    pub(crate) name: String,
    pub(crate) listener: StdListener,
}

/// The listeners to make: the ones given, else FastCGI on an inherited fd 0, else the default.
pub(crate) fn plan(fastcgi: &[ListenAddr]) -> Result<Vec<(Kind, ListenAddr)>, Error> {
    let mut planned: Vec<(Kind, ListenAddr)> =
        fastcgi.iter().map(|a| (Kind::FastCgi, a.clone())).collect();
    let mut fds: Vec<i32> = planned
        .iter()
        .filter_map(|(_, a)| match a {
            ListenAddr::Fd(fd) => Some(*fd),
            _ => None,
        })
        .collect();
    fds.sort_unstable();
    if let Some(w) = fds.windows(2).find(|w| w[0] == w[1]) {
        return Err(Error::Usage(format!("fd:{} is given twice", w[0])));
    }
    if planned.is_empty() {
        let stdin = inherit::probe(FCGI_LISTENSOCK_FILENO).map_err(|source| Error::Io {
            what: "cannot inspect fd 0",
            source,
        })?;
        let addr = if stdin.is_listener() {
            ListenAddr::Fd(FCGI_LISTENSOCK_FILENO)
        } else {
            crate::cli::DEFAULT_FASTCGI_ADDR
                .parse()
                .map_err(|e| Error::Usage(format!("{e}")))?
        };
        planned.push((Kind::FastCgi, addr));
    }
    Ok(planned)
}

/// Binds every planned listener, in order. A failure leaves nothing bound.
pub(crate) fn bind_all(
    planned: &[(Kind, ListenAddr)],
    opts: BindOptions,
) -> Result<Vec<Bound>, Error> {
    let mut bound = Vec::new();
    for (kind, addr) in planned {
        let listen_err = |source: io::Error| Error::Listen {
            addr: addr.to_string(),
            source,
        };
        match addr {
            ListenAddr::Tcp { addrs, .. } => {
                for a in addrs {
                    let l = bind_tcp(*a, opts.backlog).map_err(listen_err)?;
                    let name = l.local_addr().map_err(listen_err)?.to_string();
                    bound.push(Bound {
                        kind: *kind,
                        name,
                        listener: StdListener::Tcp(l),
                    });
                }
            }
            ListenAddr::Unix(path) => {
                let (l, file) = bind_unix(path, opts)?;
                bound.push(Bound {
                    kind: *kind,
                    name: addr.to_string(),
                    listener: StdListener::Unix(l, Some(file)),
                });
            }
            ListenAddr::Fd(fd) => {
                let (l, probed) = inherit::take(*fd).map_err(listen_err)?;
                bound.push(Bound {
                    kind: *kind,
                    name: format!("fd:{fd} ({})", describe(&probed)),
                    listener: match l {
                        Inherited::Tcp(l) => StdListener::Tcp(l),
                        Inherited::Unix(l) => StdListener::Unix(l, None),
                    },
                });
            }
        }
    }
    Ok(bound)
}

fn describe(p: &Probe) -> String {
    match p {
        Probe::Tcp(a) => format!("tcp {a}"),
        Probe::Unix(Some(path)) => format!("unix:{}", path.display()),
        Probe::Unix(None) => "unix, unnamed".to_owned(),
        other => other.problem().to_owned(),
    }
}

fn bind_tcp(addr: SocketAddr, backlog: i32) -> io::Result<std::net::TcpListener> {
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    sock.set_reuse_address(true)?;
    if addr.is_ipv6() {
        sock.set_only_v6(true)?;
    }
    sock.bind(&addr.into())?;
    sock.listen(backlog)?;
    sock.set_nonblocking(true)?;
    Ok(sock.into())
}

fn bind_unix(
    path: &Path,
    opts: BindOptions,
) -> Result<(std::os::unix::net::UnixListener, SocketFile), Error> {
    let listen_err = |source: io::Error| Error::Listen {
        addr: format!("unix:{}", path.display()),
        source,
    };
    clear_stale(path)?;
    let addr = SockAddr::unix(path).map_err(listen_err)?;
    let sock = Socket::new(Domain::UNIX, Type::STREAM, None).map_err(listen_err)?;
    sock.bind(&addr).map_err(listen_err)?;
    let file = SocketFile::record(path).map_err(listen_err)?;
    if let Some(mode) = opts.socket_mode {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(listen_err)?;
    }
    sock.listen(opts.backlog).map_err(listen_err)?;
    sock.set_nonblocking(true).map_err(listen_err)?;
    Ok((sock.into(), file))
}

/// Removes a socket file nobody listens on. A live socket or a non-socket file is an error.
fn clear_stale(path: &Path) -> Result<(), Error> {
    let listen_err = |source: io::Error| Error::Listen {
        addr: format!("unix:{}", path.display()),
        source,
    };
    let meta = match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(listen_err(e)),
        Ok(meta) => meta,
    };
    if !meta.file_type().is_socket() {
        return Err(Error::NotASocket(path.to_owned()));
    }
    // A non-blocking connect: a live listener with a full backlog answers EAGAIN instead of
    // making us wait.
    let probe = Socket::new(Domain::UNIX, Type::STREAM, None).map_err(listen_err)?;
    probe.set_nonblocking(true).map_err(listen_err)?;
    match probe.connect(&SockAddr::unix(path).map_err(listen_err)?) {
        Ok(()) => Err(Error::SocketInUse(path.to_owned())),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(Error::SocketInUse(path.to_owned())),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            tracing::info!(path = %path.display(), "replacing a stale socket file (nothing listens on it)");
            fs::remove_file(path).map_err(listen_err)
        }
        Err(e) => Err(listen_err(e)),
    }
}

/// The socket file we created, removed when dropped if it is still the same file.
#[derive(Debug)]
pub(crate) struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl SocketFile {
    fn record(path: &Path) -> io::Result<Self> {
        let meta = fs::symlink_metadata(path)?;
        Ok(Self {
            path: path.to_owned(),
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let ours = fs::symlink_metadata(&self.path)
            .is_ok_and(|m| m.dev() == self.dev && m.ino() == self.ino);
        if ours {
            if let Err(e) = fs::remove_file(&self.path) {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot remove our socket file");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTS: BindOptions = BindOptions {
        backlog: 16,
        socket_mode: Some(0o600),
    };

    #[test]
    fn unix_stale_live_and_foreign_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gh.sock");
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists(), "a dropped std listener leaves its file");

        let (live, file) = bind_unix(&path, OPTS).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        match bind_unix(&path, OPTS) {
            Err(Error::SocketInUse(p)) => assert_eq!(p, path),
            other => panic!("{other:?}"),
        }
        drop(live);
        drop(file);
        assert!(!path.exists(), "our socket file is removed on close");

        fs::write(&path, b"precious").unwrap();
        assert!(matches!(bind_unix(&path, OPTS), Err(Error::NotASocket(_))));
        assert_eq!(fs::read(&path).unwrap(), b"precious");
    }

    #[test]
    fn tcp_port_zero_and_plan() {
        let planned = plan(&["127.0.0.1:0".parse().unwrap()]).unwrap();
        let bound = bind_all(&planned, OPTS).unwrap();
        assert_eq!(bound.len(), 1);
        assert!(bound[0].name.starts_with("127.0.0.1:"));
        assert_ne!(bound[0].name, "127.0.0.1:0");
        assert!(matches!(
            plan(&[ListenAddr::Fd(5), ListenAddr::Fd(5)]),
            Err(Error::Usage(_))
        ));
    }
}
