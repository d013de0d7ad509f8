//! The daemon's life: bind the listeners, start the runtime, serve until a signal, drain, exit.
//!
//! ```text
//!  Cli ──► listen::plan ──► listen::bind_all ──► runtime ──► serve::start ──► wait for SIGTERM/SIGINT
//!           (flags, fd 0,     (before the runtime:     (FastCGI, SCGI,          │
//!            or defaults)      errors exit early)       HTTP front ends)        │
//!                                                        stop accepting ◄───────┘
//!                                                        drain (≤ --drain-timeout) ──► exit 0
//!                                                        a second signal ──► exit 128+N at once
//! ```

use std::sync::Arc;
use std::time::Duration;

use gatehouse_channel_request::Application;

use crate::addr::ListenAddr;
use crate::cli::{Cli, HumanDuration};
use crate::error::Error;
use crate::listen::{self, BindOptions, Kind};
use crate::serve::{self, Frontends};
use crate::signal::Signals;
use crate::worker::{self, Control, Message, Recycling, WorkerInfo};

/// Serves `app` (the dispatcher, already holding every mount) as the command line says until a
/// stop signal, then drains. A worker process (see [`crate::worker`]) serves the listeners its
/// master handed it instead of binding its own, and also stops when its master goes away.
pub(crate) fn run(cli: &Cli, app: Arc<dyn Application>) -> Result<(), Error> {
    let configs = Configs::from_cli(cli)?;
    let worker = worker::current()?;
    let bound = match worker {
        Some(info) => info.take_listeners()?,
        None => {
            warn_master_options(cli);
            bind(cli)?
        }
    };
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = runtime_threads(cli, worker.is_some()) {
        runtime.worker_threads(threads);
    }
    let runtime = runtime
        .enable_all()
        .thread_name("gatehouse")
        .build()
        .map_err(|source| Error::Io {
            what: "cannot start the runtime",
            source,
        })?;
    let result = runtime.block_on(serve_until_signal(cli, app, configs, bound, worker));
    // Connections still open after the drain timeout are dropped here.
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

/// I/O threads: `--runtime-threads`, else tokio's default (one per CPU) for a single process,
/// and the CPUs shared out among the workers for a worker (at least one each), so N workers
/// do not start N threads per core between them.
fn runtime_threads(cli: &Cli, worker: bool) -> Option<usize> {
    match cli.run.runtime_threads {
        Some(n) => Some(usize::from(n)),
        None if worker => {
            let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
            Some((cpus / usize::from(cli.process.workers)).max(1))
        }
        None => None,
    }
}

/// Options that only a master acts on, given to a single process.
fn warn_master_options(cli: &Cli) {
    let p = &cli.process;
    let given: Vec<&str> = [
        (p.max_requests > 0, "--max-requests"),
        (p.max_worker_memory.is_some(), "--max-worker-memory"),
    ]
    .into_iter()
    .filter_map(|(on, name)| on.then_some(name))
    .collect();
    if !given.is_empty() {
        tracing::warn!(
            "{} need(s) a master process (--workers N or --master); ignored",
            given.join(" and ")
        );
    }
}

/// Makes the listeners the command line asks for (or fd 0, or the defaults), warning about
/// options that apply to none of them. Runs before any runtime or thread exists.
pub(crate) fn bind(cli: &Cli) -> Result<Vec<listen::Bound>, Error> {
    let planned = listen::plan(&cli.listen)?;
    if cli.listen.socket_mode.is_some()
        && !planned
            .iter()
            .any(|p| matches!(p.addr, ListenAddr::Unix(_)))
    {
        tracing::warn!("--socket-mode applies to unix sockets we create, and there is none");
    }
    if cli.listen.web_server_addrs.is_some() && !planned.iter().any(|p| p.kind == Kind::FastCgi) {
        tracing::warn!("--web-server-addrs (FCGI_WEB_SERVER_ADDRS) applies to FastCGI listeners, and there is none");
    }
    listen::bind_all(
        &planned,
        BindOptions {
            backlog: cli.listen.backlog,
            socket_mode: cli.listen.socket_mode,
        },
    )
}

async fn serve_until_signal(
    cli: &Cli,
    app: Arc<dyn Application>,
    configs: Configs,
    bound: Vec<listen::Bound>,
    worker: Option<&WorkerInfo>,
) -> Result<(), Error> {
    let mut signals = Signals::install().map_err(|source| Error::Io {
        what: "cannot install signal handlers",
        source,
    })?;
    let control = worker.map(Control::start).transpose()?;
    let app: Arc<dyn Application> = match (worker, &control) {
        (Some(info), Some(control)) if info.max_requests > 0 => Arc::new(Recycling::new(
            app,
            info.max_requests,
            info.id,
            control.clone(),
        )),
        _ => app,
    };
    let frontends = Frontends {
        fastcgi: gatehouse_fastcgi::Server::new(app.clone(), configs.fastcgi),
        scgi: gatehouse_scgi::Server::new(app.clone(), configs.scgi),
        http: gatehouse_http::Server::new(app, configs.http),
    };
    let announce = worker.is_none();
    let mut accepting =
        serve::start(bound, &frontends, cli.limits.max_conns, announce).map_err(|source| {
            Error::Io {
                what: "cannot register the listeners with the runtime",
                source,
            }
        })?;

    let stop = match &control {
        None => {
            let other = |sig| {
                tracing::warn!("received {sig}: reloading and upgrading need a master process (--workers N or --master); ignored");
            };
            signals.recv_stop(other).await.to_string()
        }
        Some(control) => {
            control.send(Message::Ready);
            let other = |sig| tracing::debug!("received {sig}: the master acts on it; ignored");
            tokio::select! {
                stop = signals.recv_stop(other) => stop.to_string(),
                () = control.master_gone.cancelled() => "no master (its control socket closed)".to_owned(),
            }
        }
    };
    accepting.stop_accepting().await;
    let drain = cli.run.drain_timeout;
    tracing::info!(
        "received {stop}: stopped accepting; waiting for {} open connection(s) to finish (at most {})",
        accepting.open_connections(),
        drain
    );
    tokio::spawn(async move {
        let again = signals.recv_stop(|_| ()).await;
        tracing::warn!("received {again} again: exiting at once");
        std::process::exit(again.immediate_exit_status());
    });
    if accepting.drain(drain.0).await {
        tracing::info!("all connections finished; exiting");
    } else {
        tracing::warn!(
            "drain timeout ({}) reached with {} connection(s) still open; exiting anyway",
            HumanDuration(drain.0),
            accepting.open_connections()
        );
    }
    Ok(())
}

/// Each front end's configuration, from the command line.
struct Configs {
    fastcgi: gatehouse_fastcgi::Config,
    scgi: gatehouse_scgi::Config,
    http: gatehouse_http::Config,
}

impl Configs {
    /// The configurations, checked. `--max-conns` is every front end's connection limit: the
    /// accept loops enforce it over all listeners, and the SCGI and HTTP front ends (which
    /// answer 503 beyond their own limit) never reach theirs.
    fn from_cli(cli: &Cli) -> Result<Self, Error> {
        let configs = Self {
            fastcgi: fastcgi_config(cli),
            scgi: scgi_config(cli),
            http: http_config(cli),
        };
        configs
            .fastcgi
            .validate()
            .map_err(|e| Error::Usage(e.to_string()))?;
        configs
            .scgi
            .validate()
            .map_err(|e| Error::Usage(e.to_string()))?;
        Ok(configs)
    }
}

fn fastcgi_config(cli: &Cli) -> gatehouse_fastcgi::Config {
    let mut config = gatehouse_fastcgi::Config::default();
    let limits = &cli.limits;
    config.max_conns = limits.max_conns;
    config.max_reqs = limits.fastcgi_max_reqs;
    config.max_reqs_per_conn = limits.fastcgi_max_reqs_per_conn;
    config.max_params_bytes = limits.max_params_bytes;
    config.idle_timeout = limits.idle_timeout.0;
    config.web_server_addrs = cli.listen.web_server_addrs.as_ref().map(|l| l.0.clone());
    config
}

fn scgi_config(cli: &Cli) -> gatehouse_scgi::Config {
    let args = &cli.scgi;
    gatehouse_scgi::Config {
        max_header_bytes: args.scgi_max_header_bytes,
        max_conns: cli.limits.max_conns,
        header_timeout: args.scgi_header_timeout.0,
        idle_timeout: args.scgi_idle_timeout.0,
        duplicates: if args.scgi_strict_duplicates {
            gatehouse_scgi::Duplicates::Reject
        } else {
            gatehouse_scgi::Duplicates::JoinHttpHeaders
        },
        ..gatehouse_scgi::Config::default()
    }
}

fn http_config(cli: &Cli) -> gatehouse_http::Config {
    let args = &cli.http;
    gatehouse_http::Config {
        max_header_bytes: args.http_max_header_bytes,
        max_headers: args.http_max_headers,
        header_read_timeout: args.http_header_timeout.0,
        idle_timeout: args.http_idle_timeout.0,
        max_conns: cli.limits.max_conns,
        ..gatehouse_http::Config::default()
    }
}
