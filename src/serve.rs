//! Accept loops: one task per listener, one task per connection, handed to the front end of the
//! listener's protocol (FastCGI, SCGI or HTTP).
//!
//! ```text
//!  listener ──► its own permit ──► accept ──► a permit of ──► peer allowed? ──► front end task
//!     ▲   (waits at the listener's     │      --max-conns            (TaskTracker; the
//!     │    budget: its backlog holds   │      (waits, with this      permits drop with it)
//!     │    the rest)                   │      one connection)
//!     └────────────────────────────────┴─ error: log, back off, retry
//! ```
//!
//! Each listener has its own budget within `--max-conns` (`--max-conns-per-listener`; three
//! quarters of it when there are several), taken before `accept`, so beyond it connections wait
//! in that listener's kernel backlog rather than costing us memory, and clients of one listener
//! (slow HTTP clients, a flood) cannot take every connection from another (the web server's
//! FastCGI socket). The global permit is taken after `accept`: an idle listener holds none, so a
//! small `--max-conns` never leaves another listener unanswered; at the global limit, at most
//! one accepted connection per listener waits for a permit. Accept errors (`EMFILE` and friends) are logged and
//! retried after a growing pause: they never stop the daemon. Shutdown cancels one token: the
//! accept loops end (closing the listeners) and each connection finishes what it has in flight.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gatehouse_channel_request::{CancellationToken, Peer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::task::TaskTracker;

use crate::balance::Balancer;
use crate::listen::{Bound, Kind, SocketFile, StdListener};

/// The front ends, one per protocol, shared by all listeners of that protocol.
#[derive(Clone)]
pub(crate) struct Frontends {
    pub(crate) fastcgi: Arc<gatehouse_fastcgi::Server>,
    pub(crate) scgi: Arc<gatehouse_scgi::Server>,
    pub(crate) http: Arc<gatehouse_http::Server>,
    pub(crate) uwsgi: Arc<gatehouse_uwsgi::Server>,
}

/// A connection, whatever the transport.
enum Conn {
    Tcp(TcpStream),
    Unix(UnixStream),
}

/// A tokio listener, with the socket file to remove when it closes.
enum Listener {
    Tcp(TcpListener),
    /// The socket file is held only to be removed when the listener is dropped.
    Unix {
        listener: UnixListener,
        _file: Option<SocketFile>,
    },
}

impl Listener {
    fn from_std(l: StdListener) -> io::Result<Self> {
        Ok(match l {
            StdListener::Tcp(l) => {
                // The front ends write whole records or messages; Nagle would only add delay.
                // Set once here (bound or inherited listener): accepted sockets inherit it, which
                // saves a setsockopt per connection.
                socket2::SockRef::from(&l).set_tcp_nodelay(true)?;
                Self::Tcp(TcpListener::from_std(l)?)
            }
            StdListener::Unix(l, file) => Self::Unix {
                listener: UnixListener::from_std(l)?,
                _file: file,
            },
        })
    }

    /// # Cancel safety
    /// Cancel-safe (tokio's `accept` is).
    async fn accept(&self) -> io::Result<(Conn, Peer)> {
        match self {
            Self::Tcp(l) => {
                let (s, addr) = l.accept().await?;
                Ok((Conn::Tcp(s), Peer::Tcp(addr)))
            }
            Self::Unix { listener, .. } => {
                let (s, addr) = listener.accept().await?;
                Ok((
                    Conn::Unix(s),
                    Peer::Unix(addr.as_pathname().map(Into::into)),
                ))
            }
        }
    }
}

/// The running accept loops and the connections they started.
pub(crate) struct Accepting {
    loops: JoinSet<()>,
    connections: TaskTracker,
    shutdown: CancellationToken,
}

/// Whose listeners these are, which decides how connections are accepted.
#[derive(Debug, Clone)]
pub(crate) enum Sharing {
    /// This process's alone: accepted by the runtime (epoll); `listening on` is logged.
    Own,
    /// Shared with the other worker processes of a master (and prepared by it with
    /// [`prepare_shared`]): each is accepted by a blocking `accept(2)` on a thread of its own.
    /// The kernel wakes one blocked acceptor per connection, the one that has waited longest,
    /// so the workers take new connections in turn. With epoll every worker would be woken and
    /// the busiest one, already running, would win nearly every race: measured, all 8 of
    /// nginx's kept-alive connections on one worker while the other sat idle. Bursts are
    /// spread by the master's connection table, when there is one ([`crate::balance`]).
    Shared(Option<Arc<Balancer>>),
}

/// How long a blocked `accept(2)` on a shared listener waits (`SO_RCVTIMEO`) before it returns
/// to look for a shutdown.
pub(crate) const SHARED_ACCEPT_WAIT: Duration = Duration::from_millis(100);

/// Makes a listener ready to be shared by worker processes ([`Sharing::Shared`]): blocking
/// mode and an `accept(2)` time-out of [`SHARED_ACCEPT_WAIT`] (both belong to the socket's open
/// file description, which every worker shares), and `TCP_NODELAY` to be inherited by the
/// accepted connections. Called by the master before it starts any worker.
pub(crate) fn prepare_shared(fd: std::os::fd::BorrowedFd<'_>) -> io::Result<()> {
    let sock = socket2::SockRef::from(&fd);
    sock.set_nonblocking(false)?;
    sock.set_read_timeout(Some(SHARED_ACCEPT_WAIT))?;
    if sock.local_addr()?.as_socket().is_some() {
        sock.set_tcp_nodelay(true)?;
    }
    Ok(())
}

/// Starts one accept loop per listener. Logs `listening on <protocol> <address>` for each of
/// its own (a worker's master has said it already for shared ones: then only at debug).
/// Connection budgets: `total` over every listener, and each listener's share of it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    /// `--max-conns`.
    pub(crate) total: usize,
    /// `--max-conns-per-listener`; `None`: all of `total` for a single listener, three quarters
    /// of it (at least 1) for each of several.
    pub(crate) per_listener: Option<usize>,
}

impl Budget {
    fn per_listener(&self, listeners: usize) -> usize {
        let default = match listeners {
            0 | 1 => self.total,
            _ => (self.total * 3 / 4).max(1),
        };
        self.per_listener.unwrap_or(default).min(self.total)
    }
}

pub(crate) fn start(
    bound: Vec<Bound>,
    frontends: &Frontends,
    budget: Budget,
    sharing: Sharing,
) -> io::Result<Accepting> {
    let limit = Arc::new(Semaphore::new(budget.total));
    let own_limit = budget.per_listener(bound.len());
    let mut acc = Accepting {
        loops: JoinSet::new(),
        connections: TaskTracker::new(),
        shutdown: CancellationToken::new(),
    };
    for b in bound {
        match sharing {
            Sharing::Own => tracing::info!("listening on {} {}", b.kind.name(), b.name),
            Sharing::Shared(_) => tracing::debug!("serving {} {}", b.kind.name(), b.name),
        }
        let ctx = LoopCtx {
            kind: b.kind,
            name: Arc::from(b.name),
            frontends: frontends.clone(),
            limit: limit.clone(),
            own: Arc::new(Semaphore::new(own_limit)),
            connections: acc.connections.clone(),
            shutdown: acc.shutdown.clone(),
        };
        match &sharing {
            Sharing::Own => {
                let listener = Listener::from_std(b.listener)?;
                acc.loops.spawn(accept_loop(listener, ctx));
            }
            Sharing::Shared(balance) => {
                let rt = tokio::runtime::Handle::current();
                let listener = b.listener;
                let balance = balance.clone();
                acc.loops.spawn_blocking(move || {
                    accept_blocking(&listener, &ctx, balance.as_ref(), &rt);
                });
            }
        }
    }
    Ok(acc)
}

impl Accepting {
    /// Connections still open.
    pub(crate) fn open_connections(&self) -> usize {
        self.connections.len()
    }

    /// Stops the accept loops and waits until every listener is closed. Open connections are
    /// told to finish their requests in flight and close.
    pub(crate) async fn stop_accepting(&mut self) {
        self.shutdown.cancel();
        while self.loops.join_next().await.is_some() {}
    }

    /// Waits until every connection has closed, at most `timeout`. Returns whether they all did.
    pub(crate) async fn drain(&self, timeout: Duration) -> bool {
        self.connections.close();
        tokio::time::timeout(timeout, self.connections.wait())
            .await
            .is_ok()
    }
}

struct LoopCtx {
    kind: Kind,
    name: Arc<str>,
    frontends: Frontends,
    /// `--max-conns`, over every listener.
    limit: Arc<Semaphore>,
    /// This listener's budget.
    own: Arc<Semaphore>,
    connections: TaskTracker,
    shutdown: CancellationToken,
}

async fn accept_loop(listener: Listener, ctx: LoopCtx) {
    let (mut warned_own, mut warned_full): (Option<Instant>, Option<Instant>) = (None, None);
    loop {
        let Some(own) = acquire_own(&ctx, &mut warned_own).await else {
            return;
        };
        let Some((conn, peer)) = accept_one(&listener, &ctx).await else {
            return;
        };
        let Some(global) = acquire_global(&ctx, &mut warned_full).await else {
            return;
        };
        let permit = (own, global);
        if !admit(&ctx, &peer) {
            continue;
        }
        let frontends = ctx.frontends.clone();
        let shutdown = ctx.shutdown.clone();
        let kind = ctx.kind;
        let counted = crate::metrics::connection(kind);
        ctx.connections.spawn(async move {
            serve_conn(kind, &frontends, conn, peer, shutdown).await;
            drop(counted);
            drop(permit);
        });
    }
}

/// The accept loop of a shared listener ([`Sharing::Shared`]), on a blocking thread: takes a
/// permit of the listener's budget, blocks in `accept(2)` (at most [`SHARED_ACCEPT_WAIT`] at a
/// time, to see a shutdown), takes a `--max-conns` permit and hands the connection to the
/// runtime.
fn accept_blocking(
    listener: &StdListener,
    ctx: &LoopCtx,
    balance: Option<&Arc<Balancer>>,
    rt: &tokio::runtime::Handle,
) {
    let (mut warned_own, mut warned_full): (Option<Instant>, Option<Instant>) = (None, None);
    let mut pause = Duration::from_millis(10);
    while !ctx.shutdown.is_cancelled() {
        // A free permit needs no trip through the runtime; waiting for one (or, for SCGI, for
        // the front end's slot) does.
        let free = match ctx.kind {
            Kind::Scgi => None,
            _ => ctx.own.clone().try_acquire_owned().ok(),
        };
        let own = match free {
            Some(permit) => permit,
            None => match rt.block_on(acquire_own(ctx, &mut warned_own)) {
                Some(permit) => permit,
                None => break,
            },
        };
        if let Some(b) = balance {
            b.wait_turn();
        }
        let accepted = accept_shared(listener);
        let (conn, peer) = match accepted {
            Ok(c) => {
                pause = Duration::from_millis(10);
                c
            }
            // SO_RCVTIMEO ran out (EAGAIN), or a signal: look at the shutdown token again.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(e) if is_per_connection(&e) => {
                tracing::debug!(listener = %ctx.name, error = %e, "a connection failed while being accepted");
                continue;
            }
            Err(e) => {
                tracing::warn!(listener = %ctx.name, error = %e, "accept failed; retrying in {}ms", pause.as_millis());
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let global = match ctx.limit.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => match rt.block_on(acquire_global(ctx, &mut warned_full)) {
                Some(permit) => permit,
                None => break,
            },
        };
        let permit = (own, global);
        if !admit(ctx, &peer) {
            continue;
        }
        let frontends = ctx.frontends.clone();
        let shutdown = ctx.shutdown.clone();
        let kind = ctx.kind;
        let counted = (balance.map(Counted::new), crate::metrics::connection(kind));
        ctx.connections.spawn_on(
            async move {
                match conn.into_tokio() {
                    Ok(conn) => serve_conn(kind, &frontends, conn, peer, shutdown).await,
                    Err(e) => tracing::debug!(%peer, error = %e, "cannot register a connection"),
                }
                drop(counted);
                drop(permit);
            },
            rt,
        );
    }
    if let Some(b) = balance {
        b.drain();
    }
}

/// A connection counted in this worker's cell of the connection table while it is open.
struct Counted(Arc<Balancer>);

impl Counted {
    fn new(b: &Arc<Balancer>) -> Self {
        b.opened();
        Self(b.clone())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.closed();
    }
}

/// A connection accepted from a shared listener, before the runtime takes it.
enum StdConn {
    Tcp(std::net::TcpStream),
    Unix(std::os::unix::net::UnixStream),
}

/// One connection from a shared (blocking) listener, accepted non-blocking.
fn accept_shared(listener: &StdListener) -> io::Result<(StdConn, Peer)> {
    use std::os::fd::AsFd;

    Ok(match listener {
        StdListener::Tcp(l) => {
            let (fd, addr) = crate::sys::accept_nonblocking(l.as_fd())?;
            let addr = addr
                .as_socket()
                .ok_or_else(|| io::Error::other("a TCP peer without an IP address"))?;
            (StdConn::Tcp(fd.into()), Peer::Tcp(addr))
        }
        StdListener::Unix(l, _) => {
            let (fd, addr) = crate::sys::accept_nonblocking(l.as_fd())?;
            let path = addr.as_pathname().map(Into::into);
            (StdConn::Unix(fd.into()), Peer::Unix(path))
        }
    })
}

impl StdConn {
    /// Registers the socket with the runtime; must run on it.
    fn into_tokio(self) -> io::Result<Conn> {
        Ok(match self {
            Self::Tcp(s) => Conn::Tcp(TcpStream::from_std(s)?),
            Self::Unix(s) => Conn::Unix(UnixStream::from_std(s)?),
        })
    }
}

/// How often a listener may say that the connection limit holds it back.
const LIMIT_WARNING_INTERVAL: Duration = Duration::from_secs(10);

/// How long a listener waits for its own budget before it says so: no connection may be
/// waiting at all (the permit is taken before `accept`), and one that just closed frees it.
const OWN_WAIT_QUIET: Duration = Duration::from_secs(1);

/// A permit of this listener's budget, or `None` at shutdown. Says so (at most every 10 s)
/// when it must wait. For SCGI also waits for a free slot of the front end, which then never
/// answers 503 to a connection we accepted.
async fn acquire_own(ctx: &LoopCtx, warned: &mut Option<Instant>) -> Option<OwnedSemaphorePermit> {
    let permit = wait_permit(
        ctx,
        &ctx.own,
        warned,
        "connection budget of this listener (--max-conns-per-listener) reached: new connections wait in its backlog",
        OWN_WAIT_QUIET,
    )
    .await?;
    if ctx.kind == Kind::Scgi {
        tokio::select! {
            _ = ctx.shutdown.cancelled() => return None,
            () = ctx.frontends.scgi.ready() => {}
        }
    }
    Some(permit)
}

/// A permit of `--max-conns`, for a connection just accepted; `None` at shutdown.
async fn acquire_global(
    ctx: &LoopCtx,
    warned: &mut Option<Instant>,
) -> Option<OwnedSemaphorePermit> {
    wait_permit(
        ctx,
        &ctx.limit,
        warned,
        "connection limit (--max-conns) reached: new connections wait",
        Duration::ZERO,
    )
    .await
}

async fn wait_permit(
    ctx: &LoopCtx,
    sem: &Arc<Semaphore>,
    warned: &mut Option<Instant>,
    what: &'static str,
    quiet_for: Duration,
) -> Option<OwnedSemaphorePermit> {
    if let Ok(permit) = sem.clone().try_acquire_owned() {
        return Some(permit);
    }
    // A permit freed a moment later (a connection just ending) is not worth a warning.
    tokio::select! {
        _ = ctx.shutdown.cancelled() => return None,
        permit = sem.clone().acquire_owned() => return permit.ok(),
        () = tokio::time::sleep(quiet_for) => {}
    }
    if warned.is_none_or(|at| at.elapsed() >= LIMIT_WARNING_INTERVAL) {
        *warned = Some(Instant::now());
        tracing::warn!(listener = %ctx.name, "{what}");
    }
    tokio::select! {
        _ = ctx.shutdown.cancelled() => None,
        permit = sem.clone().acquire_owned() => permit.ok(),
    }
}

/// The next connection, retrying after errors; `None` at shutdown.
async fn accept_one(listener: &Listener, ctx: &LoopCtx) -> Option<(Conn, Peer)> {
    let mut pause = Duration::from_millis(10);
    loop {
        let accepted = tokio::select! {
            _ = ctx.shutdown.cancelled() => return None,
            r = listener.accept() => r,
        };
        let err = match accepted {
            Ok(c) => return Some(c),
            Err(e) => e,
        };
        if is_per_connection(&err) {
            tracing::debug!(listener = %ctx.name, error = %err, "a connection failed while being accepted");
            continue;
        }
        tracing::warn!(listener = %ctx.name, error = %err, "accept failed; retrying in {}ms", pause.as_millis());
        tokio::select! {
            _ = ctx.shutdown.cancelled() => return None,
            _ = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}

/// Errors that concern only the connection being accepted (retry at once), as opposed to
/// resource exhaustion such as `EMFILE` (retry after a pause).
fn is_per_connection(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ECONNABORTED | libc::ECONNRESET | libc::EPROTO | libc::EPERM | libc::EINTR)
    )
}

/// Whether an accepted connection is served: logs it, or its refusal (a FastCGI peer missing
/// from the web server addresses).
fn admit(ctx: &LoopCtx, peer: &Peer) -> bool {
    if !allowed(ctx, peer) {
        tracing::warn!(%peer, listener = %ctx.name, "connection refused: peer is not in the web server addresses (FCGI_WEB_SERVER_ADDRS / --web-server-addrs)");
        return false;
    }
    tracing::debug!(%peer, listener = %ctx.name, "accepted a connection");
    true
}

/// `FCGI_WEB_SERVER_ADDRS` concerns FastCGI alone.
fn allowed(ctx: &LoopCtx, peer: &Peer) -> bool {
    match ctx.kind {
        Kind::FastCgi => ctx.frontends.fastcgi.peer_allowed(peer),
        Kind::Scgi | Kind::Http | Kind::Uwsgi => true,
    }
}

async fn serve_conn(
    kind: Kind,
    frontends: &Frontends,
    conn: Conn,
    peer: Peer,
    shutdown: CancellationToken,
) {
    match conn {
        Conn::Tcp(s) => {
            // HTTP's SERVER_NAME/SERVER_PORT fallback when a request has no Host; the other
            // front ends never need it (a getsockname saved per connection).
            let local = if kind == Kind::Http {
                s.local_addr().ok()
            } else {
                None
            };
            serve_io(kind, frontends, s, peer, local, shutdown).await
        }
        Conn::Unix(s) => serve_io(kind, frontends, s, peer, None, shutdown).await,
    }
}

async fn serve_io<IO>(
    kind: Kind,
    frontends: &Frontends,
    io: IO,
    peer: Peer,
    local: Option<SocketAddr>,
    shutdown: CancellationToken,
) where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    match kind {
        Kind::FastCgi => {
            gatehouse_fastcgi::serve_connection(frontends.fastcgi.clone(), io, peer, shutdown).await
        }
        Kind::Scgi => {
            gatehouse_scgi::serve_connection(frontends.scgi.clone(), io, peer, shutdown).await
        }
        Kind::Uwsgi => {
            gatehouse_uwsgi::serve_connection(frontends.uwsgi.clone(), io, peer, shutdown).await
        }
        Kind::Http => {
            gatehouse_http::serve_connection(frontends.http.clone(), io, peer, local, shutdown)
                .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_connection_errors() {
        assert!(is_per_connection(&io::Error::from_raw_os_error(
            libc::ECONNABORTED
        )));
        assert!(!is_per_connection(&io::Error::from_raw_os_error(
            libc::EMFILE
        )));
        assert!(!is_per_connection(&io::Error::from_raw_os_error(
            libc::ENFILE
        )));
    }

    #[tokio::test]
    async fn accepted_tcp_connections_have_nodelay() {
        let std = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = std.local_addr().unwrap();
        std.set_nonblocking(true).unwrap();
        let listener = Listener::from_std(StdListener::Tcp(std)).unwrap();
        let _client = TcpStream::connect(addr).await.unwrap();
        let (conn, _) = listener.accept().await.unwrap();
        let Conn::Tcp(s) = conn else {
            panic!("not a TCP connection")
        };
        assert!(
            s.nodelay().unwrap(),
            "TCP_NODELAY is inherited from the listener"
        );
    }
}
