//! The daemon's life: bind the listeners, start the runtime, serve until a signal, drain, exit.
//!
//! ```text
//!  Cli ──► listen::plan ──► listen::bind_all ──► runtime ──► serve::start ──► wait for SIGTERM/SIGINT
//!           (flags, systemd,  (before the runtime:     (FastCGI, SCGI,   READY=1 │
//!            fd 0, defaults)   errors exit early)       HTTP front ends)        │
//!                                                        stop accepting ◄───────┘ STOPPING=1
//!                                                        drain (≤ --drain-timeout) ──► exit 0
//!                                                        a second signal ──► exit 128+N at once
//! ```
//!
//! Start-up order: the service manager's variables are taken from the environment first
//! ([`Activation::from_env`], [`Notifier::from_env`]), while the process has one thread. With
//! `--user`/`--group` the sockets are bound (not listening yet), `--socket-owner` applied and
//! privileges dropped before the app is built, so no app code runs as root; otherwise the app is
//! built first, as before. Either way the sockets listen only once the app is built, so an app
//! that cannot start exits 2 before anything accepts a connection.

use std::sync::Arc;
use std::time::Duration;

use gatehouse_channel_request::observe::{self, Observer};
use gatehouse_channel_request::{Application, CancellationToken, ResponseSpool};

use crate::addr::ListenAddr;
use crate::cli::{Cli, HumanDuration, SpoolFrontEnds};
use crate::error::Error;
use crate::listen::{self, BindOptions, Kind};
use crate::notify::Notifier;
use crate::privileges::Privileges;
use crate::serve::{self, Frontends};
use crate::signal::{Received, Signals};
use crate::systemd::Activation;
use crate::worker::{self, Control, Message, Recycling, WorkerInfo};

/// Serves `app` (the dispatcher, already holding every mount) as the command line says until a
/// stop signal, then drains. A worker process (see [`crate::worker`]) serves the listeners its
/// master handed it instead of binding its own, and also stops when its master goes away.
pub(crate) fn run(cli: &Cli, app: Arc<dyn Application>) -> Result<(), Error> {
    run_building(cli, move || Ok(app))
}

/// Serves the app `build` makes: after binding and dropping privileges when `--user` or
/// `--group` is given, else before binding (see the module doc).
pub(crate) fn run_building(
    cli: &Cli,
    build: impl FnOnce() -> Result<Arc<dyn Application>, Error>,
) -> Result<(), Error> {
    let activation = Activation::from_env()?;
    let notifier = Notifier::from_env();
    let privileges = Privileges::from_cli(cli)?;
    let configs = Configs::from_cli(cli)?;
    let worker = worker::current()?;
    // A master serves its workers' figures; a single process binds --metrics before it drops
    // privileges, like its other listeners.
    let metrics_listener = match worker {
        Some(_) => None,
        None => crate::metrics::bind(cli)?,
    };
    let (app, bound) = match worker {
        // The master took systemd's sockets and dropped privileges before it started us.
        Some(info) => (build()?, info.take_listeners()?),
        None => {
            warn_master_options(cli);
            let planned = plan_listeners(cli, &activation)?;
            let (app, bound) = if privileges.changes_identity() {
                let bound = open_listeners(cli, &planned, &privileges)?;
                (build()?, bound)
            } else {
                let app = build()?;
                (app, open_listeners(cli, &planned, &privileges)?)
            };
            listen::listen_all(&bound, bind_options(cli))?;
            (app, bound)
        }
    };
    // Who watches every request: built once the process has its final identity.
    let mut observers: Vec<Arc<dyn Observer>> = Vec::new();
    observers.extend(crate::metrics::observer(cli, worker)?);
    observers.extend(crate::access_log::from_cli(cli)?);
    observe::install(observers);
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
    let result = runtime.block_on(serve_until_signal(
        cli,
        app,
        configs,
        bound,
        notifier,
        worker,
        metrics_listener,
    ));
    // Connections still open after the drain timeout are dropped here.
    runtime.shutdown_timeout(Duration::from_secs(1));
    crate::access_log::shutdown();
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

/// What `--check-config` checks of the daemon, as it would at start-up, binding nothing: the
/// front ends' configurations, `--user`/`--group`/`--socket-owner` (looked up), and the
/// listeners to make (systemd's names resolved).
pub(crate) fn check(cli: &Cli) -> Result<(), Error> {
    let activation = Activation::from_env()?;
    Privileges::from_cli(cli)?;
    Configs::from_cli(cli)?;
    plan_listeners(cli, &activation)?;
    Ok(())
}

/// A master's listeners: systemd's or the planned ones, bound, `--socket-owner` applied,
/// privileges dropped, listening; and its systemd notifier. Runs before any thread exists.
pub(crate) fn listeners_for_master(cli: &Cli) -> Result<(Vec<listen::Bound>, Notifier), Error> {
    let activation = Activation::from_env()?;
    let notifier = Notifier::from_env();
    let privileges = Privileges::from_cli(cli)?;
    let planned = plan_listeners(cli, &activation)?;
    let bound = open_listeners(cli, &planned, &privileges)?;
    listen::listen_all(&bound, bind_options(cli))?;
    Ok((bound, notifier))
}

/// The listeners to make: the options (`systemd:NAME` resolved), systemd's sockets, fd 0 or
/// the defaults. Usage errors here come before anything is built or bound.
pub(crate) fn plan_listeners(
    cli: &Cli,
    activation: &Activation,
) -> Result<Vec<listen::Planned>, Error> {
    let planned = listen::plan(&cli.listen, activation)?;
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
    Ok(planned)
}

/// Binds the planned listeners, not listening yet ([`listen::listen_all`] does that); then
/// applies `--socket-owner` and drops to `--user`/`--group`.
pub(crate) fn open_listeners(
    cli: &Cli,
    planned: &[listen::Planned],
    privileges: &Privileges,
) -> Result<Vec<listen::Bound>, Error> {
    let bound = listen::bind_all_deferred(planned, bind_options(cli))?;
    privileges.chown_sockets(&bound)?;
    privileges.drop()?;
    Ok(bound)
}

async fn serve_until_signal(
    cli: &Cli,
    app: Arc<dyn Application>,
    configs: Configs,
    bound: Vec<listen::Bound>,
    notifier: Notifier,
    worker: Option<&WorkerInfo>,
    metrics_listener: Option<crate::metrics::Listener>,
) -> Result<(), Error> {
    let mut signals = Signals::install().map_err(|source| Error::Io {
        what: "cannot install signal handlers",
        source,
    })?;
    let control = worker.map(Control::start).transpose()?;
    if let Some(control) = &control {
        // A WSGI thread blocked in native code past --request-timeout: a fresh worker takes
        // over while this one drains (the master ignores repeats while it replaces us).
        let control = control.clone();
        crate::apps::on_stuck_thread(move || {
            tracing::warn!("a wsgi thread is stuck: asking the master to recycle this worker");
            control.send(Message::RecycleStuck);
        });
    }
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
        uwsgi: gatehouse_uwsgi::Server::new(app.clone(), configs.uwsgi),
        http: gatehouse_http::Server::new(app, configs.http),
    };
    let sharing = match worker {
        Some(info) => serve::Sharing::Shared(info.balancer().map(Arc::new)),
        None => serve::Sharing::Own,
    };
    let serving = serving_status(&bound);
    let mut accepting =
        serve::start(bound, &frontends, connection_budget(cli), sharing).map_err(|source| {
            Error::Io {
                what: "cannot register the listeners with the runtime",
                source,
            }
        })?;
    crate::metrics::spawn_publisher();
    if let (Some(listener), Some(source)) = (metrics_listener, crate::metrics::Source::single()) {
        // Answers until the process exits, through the drain.
        listener.serve(source, "single".to_owned(), CancellationToken::new())?;
    }
    notifier.ready(&serving);
    notifier.spawn_watchdog();

    let stop = match &control {
        None => {
            let other = |sig| {
                let what = match sig {
                    Received::Upgrade => "upgrading the binary",
                    Received::Reopen if crate::access_log::reopen() => return,
                    Received::Reopen => {
                        tracing::info!(
                            "received {sig}: logs go to stderr, nothing to reopen; ignored"
                        );
                        return;
                    }
                    _ => "reloading",
                };
                tracing::warn!("received {sig}: {what} needs a master process (--workers N or --master); ignored");
            };
            signals.recv_stop(other).await.to_string()
        }
        Some(control) => {
            control.send(Message::Ready);
            let other = |sig| match sig {
                // The master forwards SIGUSR1: each worker has its own access log handle.
                Received::Reopen if crate::access_log::reopen() => {}
                _ => tracing::debug!("received {sig}: the master acts on it; ignored"),
            };
            tokio::select! {
                stop = signals.recv_stop(other) => stop.to_string(),
                () = control.master_gone.cancelled() => "no master (its control socket closed)".to_owned(),
            }
        }
    };
    notifier.stopping();
    accepting.stop_accepting().await;
    let drain = cli.run.drain_timeout;
    tracing::info!(
        "received {stop}: stopped accepting; waiting for {} open connection(s) to finish (at most {})",
        accepting.open_connections(),
        drain
    );
    notifier.status(&format!(
        "stopping: draining {} connection(s)",
        accepting.open_connections()
    ));
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

fn bind_options(cli: &Cli) -> BindOptions {
    BindOptions {
        backlog: cli.listen.backlog,
        socket_mode: cli.listen.socket_mode,
    }
}

/// `STATUS=` once serving: `serving fastcgi on 127.0.0.1:9000, http on fd:4 (...)`.
fn serving_status(bound: &[listen::Bound]) -> String {
    let each: Vec<String> = bound
        .iter()
        .map(|b| format!("{} on {}", b.kind.name(), b.name))
        .collect();
    format!("serving {}", each.join(", "))
}

/// Each front end's configuration, from the command line.
struct Configs {
    fastcgi: gatehouse_fastcgi::Config,
    scgi: gatehouse_scgi::Config,
    http: gatehouse_http::Config,
    uwsgi: gatehouse_uwsgi::Config,
}

impl Configs {
    /// The configurations, checked. `--max-conns` is every front end's connection limit: the
    /// accept loops enforce it over all listeners, and the SCGI and HTTP front ends (which
    /// answer 503 beyond their own limit) never reach theirs.
    fn from_cli(cli: &Cli) -> Result<Self, Error> {
        let mut configs = Self {
            fastcgi: fastcgi_config(cli),
            scgi: scgi_config(cli),
            http: http_config(cli),
            uwsgi: uwsgi_config(cli),
        };
        let args = &cli.response_spool;
        if args.spool_response != SpoolFrontEnds::Off {
            let spool = ResponseSpool::new(
                crate::apps::spool_dir(cli)?,
                args.max_response_spool_bytes,
                usize::try_from(args.response_buffer_memory).unwrap_or(usize::MAX),
            );
            configs.http.response_spool = Some(spool.clone());
            if args.spool_response == SpoolFrontEnds::All {
                configs.fastcgi.response_spool = Some(spool.clone());
                configs.scgi.response_spool = Some(spool);
            }
        }
        configs
            .fastcgi
            .validate()
            .map_err(|e| Error::Usage(e.to_string()))?;
        configs
            .scgi
            .validate()
            .map_err(|e| Error::Usage(e.to_string()))?;
        configs
            .uwsgi
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

fn uwsgi_config(cli: &Cli) -> gatehouse_uwsgi::Config {
    let args = &cli.uwsgi;
    gatehouse_uwsgi::Config {
        max_vars_bytes: args.uwsgi_max_vars_bytes,
        max_conns: cli.limits.max_conns,
        header_timeout: args.uwsgi_header_timeout.0,
        idle_timeout: args.uwsgi_idle_timeout.0,
        ..gatehouse_uwsgi::Config::default()
    }
}

/// `--max-conns` and `--max-conns-per-listener`.
fn connection_budget(cli: &Cli) -> serve::Budget {
    serve::Budget {
        total: cli.limits.max_conns,
        per_listener: cli.limits.max_conns_per_listener,
    }
}

fn http_config(cli: &Cli) -> gatehouse_http::Config {
    let args = &cli.http;
    gatehouse_http::Config {
        max_header_bytes: args.http_max_header_bytes,
        max_headers: args.http_max_headers,
        header_read_timeout: args.http_header_timeout.0,
        idle_timeout: args.http_idle_timeout.0,
        body_min_rate: (args.http_body_min_rate > 0).then_some(gatehouse_http::MinRate {
            grace: args.http_body_timeout.0,
            rate: args.http_body_min_rate,
        }),
        max_conns: cli.limits.max_conns,
        ..gatehouse_http::Config::default()
    }
}
