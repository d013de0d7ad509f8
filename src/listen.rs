//! Making the listening sockets: which ones (flags, fd 0, or the defaults), and binding them
//! with socket2.
//!
//! - TCP: `SO_REUSEADDR` (a restart does not wait for TIME_WAIT), IPv6 sockets are v6-only so
//!   `[::]:9000` and `0.0.0.0:9000` can both be given, backlog from `--backlog`.
//! - Unix: a socket file left by a dead process is replaced (nothing accepts a connection on it),
//!   a live one is an error, any other file is never touched. `--socket-mode` is applied before
//!   `listen(2)`, so no client can connect while the mode is still the umask's. The file is removed
//!   when the listener closes, if it is still ours.
//! - `fd:N` and fd 0: adopted through [`crate::inherit`]; `systemd:NAME` and the sockets of
//!   socket activation: planned by [`crate::systemd`], then adopted the same way.
//! - [`bind_all_deferred`] binds without `listen(2)`, so `--socket-owner`, dropping privileges
//!   and building the app happen before anything accepts connections; [`listen_all`] then
//!   listens.
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
use crate::cli::ListenArgs;
use crate::error::Error;
use crate::inherit::{self, Inherited, Probe, FCGI_LISTENSOCK_FILENO};
use crate::systemd::Activation;

/// The protocol served on a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// FastCGI 1.0.
    FastCgi,
    /// SCGI.
    Scgi,
    /// HTTP/1.1.
    Http,
    /// The uwsgi protocol.
    Uwsgi,
}

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::FastCgi => "fastcgi",
            Self::Scgi => "scgi",
            Self::Http => "http",
            Self::Uwsgi => "uwsgi",
        }
    }

    /// The option that chooses this protocol's listeners.
    pub(crate) fn flag(self) -> &'static str {
        match self {
            Self::FastCgi => "--fastcgi",
            Self::Scgi => "--scgi",
            Self::Http => "--http",
            Self::Uwsgi => "--uwsgi",
        }
    }
}

/// A listener to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Planned {
    pub(crate) kind: Kind,
    pub(crate) addr: ListenAddr,
    /// Chosen by us (no listener option was given), not by the user: errors say so.
    pub(crate) default: bool,
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

/// The listeners to make: the ones given (FastCGI, SCGI, HTTP, each in the order given, with
/// `systemd:NAME` resolved), else the sockets systemd passed, else [`fallback`] for what fd 0 is.
pub(crate) fn plan(listen: &ListenArgs, systemd: &Activation) -> Result<Vec<Planned>, Error> {
    let given = [
        (Kind::FastCgi, &listen.fastcgi),
        (Kind::Scgi, &listen.scgi),
        (Kind::Http, &listen.http),
        (Kind::Uwsgi, &listen.uwsgi),
    ];
    let planned: Vec<Planned> = given
        .into_iter()
        .flat_map(|(kind, addrs)| {
            addrs.iter().map(move |a| Planned {
                kind,
                addr: a.clone(),
                default: false,
            })
        })
        .collect();
    listen.check().map_err(Error::Usage)?;
    if !planned.is_empty() {
        return systemd.resolve(planned);
    }
    if let Some(passed) = systemd.default_plan() {
        return Ok(passed);
    }
    let stdin = inherit::probe(FCGI_LISTENSOCK_FILENO).map_err(|source| Error::Io {
        what: "cannot inspect fd 0",
        source,
    })?;
    fallback(stdin.is_listener())
}

/// The listeners when no listener option is given: FastCGI on fd 0 when it is a listening
/// socket (`FCGI_LISTENSOCK_FILENO`: spawn-fcgi, lighttpd's `bin-path`, mod_fcgid), else FastCGI,
/// SCGI and HTTP on their default loopback addresses.
pub(crate) fn fallback(fd0_listens: bool) -> Result<Vec<Planned>, Error> {
    if fd0_listens {
        return Ok(vec![Planned {
            kind: Kind::FastCgi,
            addr: ListenAddr::Fd(FCGI_LISTENSOCK_FILENO),
            default: false,
        }]);
    }
    [
        (Kind::FastCgi, crate::cli::DEFAULT_FASTCGI_ADDR),
        (Kind::Scgi, crate::cli::DEFAULT_SCGI_ADDR),
        (Kind::Http, crate::cli::DEFAULT_HTTP_ADDR),
    ]
    .into_iter()
    .map(|(kind, text)| {
        let addr = text.parse().map_err(|e| Error::Usage(format!("{e}")))?;
        Ok(Planned {
            kind,
            addr,
            default: true,
        })
    })
    .collect()
}

/// Binds every planned listener, in order, without `listen(2)` on the sockets we create
/// (connections to them are refused until [`listen_all`]); inherited sockets already listen.
/// A failure leaves nothing bound.
pub(crate) fn bind_all_deferred(
    planned: &[Planned],
    opts: BindOptions,
) -> Result<Vec<Bound>, Error> {
    let mut bound = Vec::new();
    for Planned {
        kind,
        addr,
        default,
    } in planned
    {
        let listen_err = |source: io::Error| match default {
            true => Error::ListenDefault {
                protocol: kind.name(),
                addr: addr.to_string(),
                flag: kind.flag(),
                source,
            },
            false => Error::Listen {
                addr: addr.to_string(),
                source,
            },
        };
        match addr {
            ListenAddr::Tcp { addrs, .. } => {
                for a in addrs {
                    let l = bind_tcp(*a).map_err(listen_err)?;
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
            ListenAddr::Systemd(_) => {
                return Err(Error::Usage(format!(
                    "{addr}: not resolved to a socket systemd passed (plan first)"
                )))
            }
        }
    }
    Ok(bound)
}

/// `listen(2)` on each socket of `bound` that does not listen yet (the ones
/// [`bind_all_deferred`] made; inherited ones keep the backlog their parent chose).
///
/// A unix socket bound but not yet listening looks stale to another gatehouse starting on the
/// same path, which may replace the file meanwhile: once listening, each socket file must
/// still be ours, or this fails (then the other process has the path).
pub(crate) fn listen_all(bound: &[Bound], opts: BindOptions) -> Result<(), Error> {
    for b in bound {
        let sock = match &b.listener {
            StdListener::Tcp(l) => socket2::SockRef::from(l),
            StdListener::Unix(l, _) => socket2::SockRef::from(l),
        };
        let listen_err = |source| Error::Listen {
            addr: b.name.clone(),
            source,
        };
        if !sock.is_listener().map_err(listen_err)? {
            sock.listen(opts.backlog).map_err(listen_err)?;
        }
        if let StdListener::Unix(_, Some(file)) = &b.listener {
            if !file.is_ours() {
                return Err(listen_err(io::Error::other(
                    "another process replaced the socket file while we were starting",
                )));
            }
        }
    }
    Ok(())
}

fn describe(p: &Probe) -> String {
    match p {
        Probe::Tcp(a) => format!("tcp {a}"),
        Probe::Unix(Some(path)) => format!("unix:{}", path.display()),
        Probe::Unix(None) => "unix, unnamed".to_owned(),
        other => other.problem().to_owned(),
    }
}

fn bind_tcp(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    sock.set_reuse_address(true)?;
    if addr.is_ipv6() {
        sock.set_only_v6(true)?;
    }
    sock.bind(&addr.into())?;
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
    /// The socket's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the path still names the file we created.
    fn is_ours(&self) -> bool {
        fs::symlink_metadata(&self.path).is_ok_and(|m| m.dev() == self.dev && m.ino() == self.ino)
    }

    pub(crate) fn record(path: &Path) -> io::Result<Self> {
        let meta = fs::symlink_metadata(path)?;
        Ok(Self {
            path: path.to_owned(),
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }
}

impl SocketFile {
    /// Leaves the file in place when dropped: another process serves the socket now.
    pub(crate) fn keep(self) {
        std::mem::forget(self);
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        if self.is_ours() {
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
        socket2::SockRef::from(&live).listen(16).unwrap();
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
    fn deferred_sockets_listen_later_and_notice_a_replaced_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("late.sock");
        let planned = [
            Planned {
                kind: Kind::FastCgi,
                addr: ListenAddr::Unix(path.clone()),
                default: false,
            },
            Planned {
                kind: Kind::Http,
                addr: ListenAddr::tcp("127.0.0.1:0".parse().unwrap()),
                default: false,
            },
        ];
        let bound = bind_all_deferred(&planned, OPTS).unwrap();
        // Bound, not listening: connections are refused.
        let refused = std::os::unix::net::UnixStream::connect(&path).unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);
        let port = bound[1].name.clone();
        assert!(std::net::TcpStream::connect(&port).is_err());
        listen_all(&bound, OPTS).unwrap();
        std::os::unix::net::UnixStream::connect(&path).unwrap();
        std::net::TcpStream::connect(&port).unwrap();
        listen_all(&bound, OPTS).unwrap();
        drop(bound);

        let bound = bind_all_deferred(&planned[..1], OPTS).unwrap();
        fs::remove_file(&path).unwrap();
        let other = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let err = listen_all(&bound, OPTS).unwrap_err().to_string();
        assert!(err.contains("replaced the socket file"), "{err}");
        drop(bound);
        assert!(path.exists(), "the other process's file stays");
        drop(other);
    }

    fn plan_cli(listen: &ListenArgs) -> Result<Vec<Planned>, Error> {
        plan(listen, &Activation::default())
    }

    fn listen_args(args: &[&str]) -> ListenArgs {
        let argv = std::iter::once("gatehouse").chain(args.iter().copied());
        crate::cli::Cli::try_from_args(argv).unwrap().listen
    }

    #[test]
    fn tcp_port_zero() {
        let planned = plan_cli(&listen_args(&["--http", "127.0.0.1:0"])).unwrap();
        let bound = bind_all_deferred(&planned, OPTS).unwrap();
        assert_eq!(bound.len(), 1);
        assert_eq!(bound[0].kind, Kind::Http);
        assert!(bound[0].name.starts_with("127.0.0.1:"));
        assert_ne!(bound[0].name, "127.0.0.1:0");
    }

    #[test]
    fn plan_takes_the_options_in_protocol_order() {
        let planned = plan_cli(&listen_args(&[
            "--http",
            "127.0.0.1:1",
            "--scgi",
            "unix:/s",
            "--fastcgi",
            "fd:3",
            "--http",
            "127.0.0.1:2",
        ]))
        .unwrap();
        let got: Vec<(Kind, String, bool)> = planned
            .iter()
            .map(|p| (p.kind, p.addr.to_string(), p.default))
            .collect();
        assert_eq!(
            got,
            [
                (Kind::FastCgi, "fd:3".to_owned(), false),
                (Kind::Scgi, "unix:/s".to_owned(), false),
                (Kind::Http, "127.0.0.1:1".to_owned(), false),
                (Kind::Http, "127.0.0.1:2".to_owned(), false),
            ]
        );
        // One descriptor cannot serve two listeners, whatever their protocols.
        let mut twice = listen_args(&["--fastcgi", "fd:5"]);
        twice.http.push(ListenAddr::Fd(5));
        assert!(matches!(plan_cli(&twice), Err(Error::Usage(_))));
    }

    #[test]
    fn without_options_fd0_or_the_three_defaults() {
        let inherited = fallback(true).unwrap();
        assert_eq!(
            inherited,
            [Planned {
                kind: Kind::FastCgi,
                addr: ListenAddr::Fd(0),
                default: false,
            }]
        );
        let defaults = fallback(false).unwrap();
        let got: Vec<(Kind, String, bool)> = defaults
            .iter()
            .map(|p| (p.kind, p.addr.to_string(), p.default))
            .collect();
        assert_eq!(
            got,
            [
                (Kind::FastCgi, "127.0.0.1:9000".to_owned(), true),
                (Kind::Scgi, "127.0.0.1:4000".to_owned(), true),
                (Kind::Http, "127.0.0.1:8000".to_owned(), true),
            ]
        );
        let constants = [
            crate::cli::DEFAULT_FASTCGI_ADDR,
            crate::cli::DEFAULT_SCGI_ADDR,
            crate::cli::DEFAULT_HTTP_ADDR,
        ];
        assert_eq!(
            got.iter().map(|g| g.1.as_str()).collect::<Vec<_>>(),
            constants
        );
    }

    #[test]
    fn a_busy_default_address_names_its_option() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let planned = [Planned {
            kind: Kind::Scgi,
            addr: ListenAddr::tcp(taken.local_addr().unwrap()),
            default: true,
        }];
        let err = bind_all_deferred(&planned, OPTS).unwrap_err().to_string();
        assert!(err.contains("default scgi address"), "{err}");
        assert!(err.contains("--scgi ADDR"), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}
