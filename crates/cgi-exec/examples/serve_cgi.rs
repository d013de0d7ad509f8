//! Serves a CGI root over FastCGI the way `gatehouse cgi:ROOT --fastcgi ADDR` will once the
//! binary wires this crate in: `CgiApp` behind the dispatcher (mounted at `/`) behind the
//! FastCGI front end. The stand-in `benches/cgi-vs-fcgiwrap.sh` runs against fcgiwrap.
//!
//! ```text
//! cargo run --release -p gatehouse-cgi-exec --example serve_cgi -- ROOT ADDR [MAX_CHILDREN]
//! ```
//!
//! ADDR is `HOST:PORT` or `unix:/path` (a stale socket file is replaced). Logs (warnings and
//! up, or `RUST_LOG`) go to stderr. Stops on SIGTERM or SIGINT.
#![allow(clippy::unwrap_used)] // reason: a small example program; errors end it with a message

use std::path::PathBuf;
use std::sync::Arc;

use gatehouse_cgi_exec::{CgiApp, Config, DEFAULT_MAX_CHILDREN};
use gatehouse_channel_request::{Application, CancellationToken, Peer};
use gatehouse_dispatch::Dispatcher;
use tokio::net::{TcpListener, UnixListener};
use tokio::signal::unix::{signal, SignalKind};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: serve_cgi ROOT HOST:PORT|unix:PATH [MAX_CHILDREN]");
        std::process::exit(2);
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = Config {
        max_children: args
            .get(2)
            .map_or(DEFAULT_MAX_CHILDREN, |n| n.parse().unwrap()),
        ..Config::default()
    };
    let cgi = CgiApp::new(PathBuf::from(&args[0]), config).unwrap_or_else(|e| {
        eprintln!("error: {e}");
        std::process::exit(2);
    });
    let app: Arc<dyn Application> = Arc::new(Dispatcher::single(Arc::new(cgi)));
    let server = gatehouse_fastcgi::Server::new(app, gatehouse_fastcgi::Config::default());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(serve(server, &args[1]));
}

async fn serve(server: Arc<gatehouse_fastcgi::Server>, addr: &str) {
    let shutdown = CancellationToken::new();
    let mut term = signal(SignalKind::terminate()).unwrap();
    let mut int = signal(SignalKind::interrupt()).unwrap();
    if let Some(path) = addr.strip_prefix("unix:") {
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path).unwrap();
        eprintln!("serving FastCGI on unix:{path}");
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let peer = Peer::Unix(None);
                    let conn = gatehouse_fastcgi::serve_connection(server.clone(), stream, peer, shutdown.clone());
                    tokio::spawn(conn);
                }
                _ = term.recv() => break,
                _ = int.recv() => break,
            }
        }
    } else {
        let listener = TcpListener::bind(addr).await.unwrap();
        eprintln!("serving FastCGI on {}", listener.local_addr().unwrap());
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((stream, peer)) = accepted else { continue };
                    let _ = stream.set_nodelay(true);
                    let conn = gatehouse_fastcgi::serve_connection(server.clone(), stream, Peer::Tcp(peer), shutdown.clone());
                    tokio::spawn(conn);
                }
                _ = term.recv() => break,
                _ = int.recv() => break,
            }
        }
    }
    shutdown.cancel();
}
