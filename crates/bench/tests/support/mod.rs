//! In-process servers for the tests: the real gatehouse FastCGI, SCGI and HTTP front ends
//! serving a built-in app on 127.0.0.1:0, each on its own runtime thread.

#![allow(dead_code)] // reason: each test binary uses some of the helpers
#![allow(clippy::unwrap_used)] // reason: test helpers; a failure is a test failure

use std::net::SocketAddr;
use std::sync::Arc;

use gatehouse_channel_request::{Application, CancellationToken, Peer};
use gatehouse_dispatch::builtin;

/// `hello` mounted at `/hello` only: every other path gets 404.
pub(crate) fn hello_at_hello() -> Arc<dyn Application> {
    let hello = builtin::by_name("hello").expect("hello");
    Arc::new(gatehouse_dispatch::Dispatcher::new().mount("/hello", hello))
}

/// `hello`, except that the first request waits `stall` before it answers: a server that
/// stalls once.
pub(crate) fn stalls_once(stall: std::time::Duration) -> Arc<dyn Application> {
    Arc::new(StallOnce {
        stall,
        stalled: std::sync::atomic::AtomicBool::new(false),
    })
}

struct StallOnce {
    stall: std::time::Duration,
    stalled: std::sync::atomic::AtomicBool,
}

impl Application for StallOnce {
    fn call<'a>(
        &'a self,
        req: gatehouse_channel_request::Request,
        resp: &'a mut gatehouse_channel_request::Response,
    ) -> gatehouse_channel_request::BoxFuture<'a, Result<(), gatehouse_channel_request::AppError>>
    {
        Box::pin(async move {
            if !self.stalled.swap(true, std::sync::atomic::Ordering::SeqCst) {
                tokio::time::sleep(self.stall).await;
            }
            builtin::Hello.call(req, resp).await
        })
    }
}

/// A TCP server that accepts connections and never answers (held for the process's life).
pub(crate) fn black_hole() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            held.push(stream);
        }
    });
    addr
}

/// Which front end.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Front {
    Fastcgi,
    Scgi,
    Http,
}

/// Starts `front` serving the built-in `app` and returns its address. The server lives as
/// long as the test process.
pub(crate) fn serve(front: Front, app: &str) -> SocketAddr {
    serve_app(front, builtin::by_name(app).expect("a built-in app"))
}

/// Starts `front` serving `app`.
pub(crate) fn serve_app(front: Front, app: Arc<dyn Application>) -> SocketAddr {
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    std_listener.set_nonblocking(true).unwrap();
    let addr = std_listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(accept_loop(front, app, std_listener));
    });
    addr
}

async fn accept_loop(front: Front, app: Arc<dyn Application>, listener: std::net::TcpListener) {
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    let shutdown = CancellationToken::new();
    let fcgi = gatehouse_fastcgi::Server::new(app.clone(), gatehouse_fastcgi::Config::default());
    let scgi = gatehouse_scgi::Server::new(app.clone(), gatehouse_scgi::Config::default());
    let http = gatehouse_http::Server::new(app, gatehouse_http::Config::default());
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let local = stream.local_addr().ok();
        let token = shutdown.clone();
        match front {
            Front::Fastcgi => {
                let s = fcgi.clone();
                tokio::spawn(gatehouse_fastcgi::serve_connection(
                    s,
                    stream,
                    Peer::Tcp(peer),
                    token,
                ));
            }
            Front::Scgi => {
                let s = scgi.clone();
                tokio::spawn(gatehouse_scgi::serve_connection(
                    s,
                    stream,
                    Peer::Tcp(peer),
                    token,
                ));
            }
            Front::Http => {
                let s = http.clone();
                tokio::spawn(gatehouse_http::serve_connection(
                    s,
                    stream,
                    Peer::Tcp(peer),
                    local,
                    token,
                ));
            }
        }
    }
}
