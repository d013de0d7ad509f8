//! [`CgiApp`]: the [`Application`] that runs a CGI program per request.
//!
//! One request is one or more *runs*: take a concurrency slot, resolve and check the script, spawn
//! it (inline: a few `stat` calls and a `posix_spawn`), pump bytes both ways, and
//! either answer or, on a local redirect, start over with the new path (GET, no body) up to
//! [`MAX_LOCAL_REDIRECTS`] times. Every failure ends with one log line and the status the error
//! maps to (or an abort once the head is out).

use std::fmt;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::task::Poll;

use bytes::Bytes;
use gatehouse_channel_request::env::{
    CONTENT_LENGTH, CONTENT_TYPE, DOCUMENT_URI, PATH_INFO, QUERY_STRING, REQUEST_METHOD,
    REQUEST_URI, SCRIPT_FILENAME, SCRIPT_NAME,
};
use gatehouse_channel_request::head::reason_phrase;
use gatehouse_channel_request::{
    AppError, Application, BoxFuture, Env, Request, RequestBody, RequestInfo, Response,
};
use tokio::sync::Semaphore;

use crate::childenv::{self, PATH_TRANSLATED};
use crate::config::{self, Config, StderrMode, MAX_LOCAL_REDIRECTS, STDERR_LINGER};
use crate::error::{shown, Error};
use crate::pump::{self, Ctl, Outcome};
use crate::resolve::{self, RequestPath};
use crate::safety::Policy;
use crate::spawn::{check_file_root, Launch, Root, Spawner, Started, SETPRIV_PATHS};
use crate::stats::{self, Kill};
use crate::stderr;

/// Runs CGI programs (RFC 3875) for requests from any front end.
///
/// Built from `cgi:PATH`: a directory holds scripts found per request; a file is the one
/// program that serves every request (git-http-backend style). Cloning is cheap and shares the
/// concurrency limit.
#[derive(Clone)]
pub struct CgiApp {
    inner: Arc<Inner>,
}

struct Inner {
    spawner: Spawner,
    config: Config,
    slots: Option<Arc<Semaphore>>,
}

impl fmt::Debug for CgiApp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CgiApp")
            .field("root", &self.root())
            .field("config", &self.inner.config)
            .finish()
    }
}

impl CgiApp {
    /// Checks `path` and `config` once: the path must exist; a directory must not be
    /// world-writable, a file must pass the checks every script passes; a user or group needs
    /// gatehouse to run as root. Reads the `pass_env` variables of the daemon now.
    pub fn new(path: PathBuf, config: Config) -> Result<Self, Error> {
        let root_err = |why, source| Error::Root {
            path: path.clone(),
            why,
            source,
        };
        let canonical =
            fs::canonicalize(&path).map_err(|e| root_err("cannot be opened", Some(e)))?;
        let meta = fs::metadata(&canonical).map_err(|e| root_err("cannot be read", Some(e)))?;
        let (uid, gid) = config::identity(&config)?;
        let launch = Launch::choose(uid, gid, SETPRIV_PATHS);
        if let Launch::Fork { .. } = launch {
            tracing::warn!(
                "setpriv not found: scripts run as another user are spawned with fork, \
                which gets slower as gatehouse's memory grows"
            );
        }
        let root = if meta.is_dir() {
            if !config.allow_world_writable && meta.permissions().mode() & 0o002 != 0 {
                return Err(root_err("is world-writable", None));
            }
            Root::Dir(Policy {
                root: canonical,
                root_configured: path.clone(),
                allow_symlinks: config.allow_symlinks,
                allow_world_writable: config.allow_world_writable,
                extensions: config::normalised_extensions(&config),
            })
        } else {
            check_file_root(&canonical, config.allow_world_writable)
                .map_err(|why| root_err(why.as_str(), None))?;
            Root::File(canonical)
        };
        let slots =
            (config.max_children > 0).then(|| Arc::new(Semaphore::new(config.max_children)));
        let spawner = Spawner {
            root,
            launch,
            path_env: config.path_env.clone(),
            daemon_env: childenv::snapshot_daemon_env(&config.pass_env),
            allow_world_writable: config.allow_world_writable,
            kill_grace: config.kill_grace,
        };
        Ok(Self {
            inner: Arc::new(Inner {
                spawner,
                config,
                slots,
            }),
        })
    }

    /// The canonical root: the script directory, or the one program.
    pub fn root(&self) -> &Path {
        match &self.inner.spawner.root {
            Root::Dir(policy) => &policy.root,
            Root::File(program) => program,
        }
    }

    /// Scripts running now (or killed and not yet reaped), when a limit is set.
    pub fn running(&self) -> Option<usize> {
        let slots = self.inner.slots.as_ref()?;
        Some(self.inner.config.max_children - slots.available_permits())
    }
}

impl Application for CgiApp {
    fn call<'a>(
        &'a self,
        req: Request,
        resp: &'a mut Response,
    ) -> BoxFuture<'a, Result<(), AppError>> {
        Box::pin(self.serve(req, resp))
    }
}

impl CgiApp {
    async fn serve(&self, req: Request, resp: &mut Response) -> Result<(), AppError> {
        let Request {
            mut env,
            body,
            info,
        } = req;
        // Wall-clock limit, counted from now: the wait for a slot counts.
        let deadline = self
            .inner
            .config
            .request_timeout
            .map(|limit| (limit, tokio::time::Instant::now() + limit));
        let mut body = Some(body);
        let mut script: Option<Arc<Path>> = None;
        for _ in 0..=MAX_LOCAL_REDIRECTS {
            let body = body.take().unwrap_or_else(RequestBody::empty);
            let mut live = false;
            let run = self.run(&env, body, resp, &info, &mut script, &mut live);
            let ran = match deadline {
                None => run.await,
                Some((limit, at)) => match tokio::time::timeout_at(at, run).await {
                    Ok(ran) => ran,
                    // The run is dropped: its guard stops the script's process group.
                    Err(_) => {
                        stats::timed_out();
                        if live {
                            stats::killed(Kill::Wallclock);
                        }
                        Err(Error::RequestTimeout {
                            limit,
                            killed: live,
                        })
                    }
                },
            };
            match ran {
                Ok(Outcome::Complete(_)) => return Ok(()),
                Ok(Outcome::LocalRedirect(location)) => {
                    tracing::debug!(peer = %info.peer, request_id = info.id,
                        location = %location.escape_ascii(), "cgi local redirect");
                    env = redirect_env(env, &location);
                }
                Err(e) => return fail(resp, &info, &env, script.as_deref(), e).await,
            }
        }
        let e = Error::TooManyRedirects {
            limit: MAX_LOCAL_REDIRECTS,
        };
        fail(resp, &info, &env, script.as_deref(), e).await
    }

    /// One run of one script.
    async fn run(
        &self,
        env: &Env,
        mut body: RequestBody,
        resp: &mut Response,
        info: &RequestInfo,
        script: &mut Option<Arc<Path>>,
        live: &mut bool,
    ) -> Result<Outcome, Error> {
        let mut gone = resp.client_gone();
        let permit = match &self.inner.slots {
            Some(slots) => match slots.clone().try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => {
                    let _waiting = SlotWait::start();
                    tokio::select! {
                        permit = slots.clone().acquire_owned() => permit.ok(),
                        () = &mut gone => return Err(Error::ClientGone),
                    }
                }
            },
            None => None,
        };
        let (first, has_body) = peek_body(&mut body)?;
        // Inline on this worker: the path checks are a few stat calls and posix_spawn returns
        // once the child has exec'd (tens of microseconds). The blocking pool cost more CPU per
        // request (two thread hand-offs) than it saved (measured with benches/cgi-vs-fcgiwrap.sh).
        let started = self.inner.spawner.start(env, permit, has_body);
        let Started {
            mut guard,
            stdin,
            mut stdout,
            stderr,
            program,
            dropped,
            refused,
        } = started?;
        *script = Some(program.clone());
        // Until this run returns, dropping it (the request timeout) kills a live script.
        *live = true;
        if !refused.is_empty() {
            let names: Vec<String> = refused
                .iter()
                .map(|n| n.escape_ascii().to_string())
                .collect();
            tracing::debug!(peer = %info.peer, request_id = info.id, script = %shown(&program),
                refused = ?names, "request variables that could make the script run other code were not passed");
        }
        if !dropped.is_empty() {
            let names: Vec<String> = dropped
                .iter()
                .map(|n| n.escape_ascii().to_string())
                .collect();
            tracing::warn!(peer = %info.peer, request_id = info.id, script = %shown(&program),
                dropped = ?names, "request variables the environment cannot carry were not passed");
        }
        let source = stderr::Source {
            script: program,
            info: info.clone(),
        };
        tracing::debug!(peer = %info.peer, request_id = info.id, pid = guard.pid(),
            script = %shown(&source.script), "cgi script started");
        let forward = match self.inner.config.stderr {
            StderrMode::FastCgi => resp.stderr(),
            StderrMode::Log => None,
        };
        let forwarding = stderr::start(stderr, source, forward);
        let mut ctl = Ctl::new(gone, first, body, stdin, self.inner.config.timeout);
        let max_head = self.inner.config.max_head_bytes;
        let answered = pump::answer(
            &mut ctl,
            &mut guard,
            &mut stdout,
            resp,
            max_head,
            forwarding.as_ref(),
        )
        .await;
        if let Err(e) = &answered {
            if guard.is_running() {
                match e {
                    Error::Timeout { .. } => stats::killed(Kill::Idle),
                    e if e.is_client_gone() => stats::killed(Kill::ClientGone),
                    _ => {}
                }
            }
        }
        *live = false;
        let outcome = match (answered, forwarding) {
            (Ok(outcome), _) => outcome,
            (Err(e), Some(forwarding)) if !e.is_client_gone() => {
                // The error answer goes out next: let the script's last words (a traceback, a
                // "permission denied") reach the front server before it, without waiting
                // long for a script that is still running (it is being stopped).
                drop(guard);
                let _ = tokio::time::timeout(STDERR_LINGER, forwarding.closed()).await;
                return Err(e);
            }
            (Err(e), _) => return Err(e),
        };
        if let Outcome::Complete(status) = &outcome {
            if !status.success() {
                tracing::warn!(peer = %info.peer, request_id = info.id,
                    script = %script.as_deref().map(|s| shown(s).to_string()).unwrap_or_default(),
                    %status, "cgi script failed after a complete response");
            }
        }
        Ok(outcome)
    }
}

/// A request waiting for a `max_children` slot, for [`stats`]: counted while it lives.
struct SlotWait;

impl SlotWait {
    fn start() -> Self {
        stats::slot_wait_started();
        Self
    }
}

impl Drop for SlotWait {
    fn drop(&mut self) {
        stats::slot_wait_ended();
    }
}

/// Looks at the body without waiting: `(first chunk, whether the script needs a stdin pipe)`.
/// A body already known to be empty (a GET whose end arrived with its head, as nginx sends it)
/// saves the pipe.
fn peek_body(body: &mut RequestBody) -> Result<(Option<Bytes>, bool), Error> {
    if body.is_end() || body.content_length() == Some(0) {
        return Ok((None, false));
    }
    let waker = std::task::Waker::noop();
    match body.poll_chunk(&mut std::task::Context::from_waker(waker)) {
        Poll::Ready(Ok(None)) => Ok((None, false)),
        Poll::Ready(Ok(Some(chunk))) => Ok((Some(chunk), true)),
        Poll::Ready(Err(e)) => Err(Error::Body(e)),
        Poll::Pending => Ok((None, true)),
    }
}

/// The request a local redirect (RFC 3875 section 6.2.2) becomes: a GET of the new path and
/// query, without a body, below the same mount point when the new path lies under it.
fn redirect_env(mut env: Env, location: &[u8]) -> Env {
    let mount = RequestPath::from_env(&env)
        .map(|r| Bytes::copy_from_slice(r.mount()))
        .unwrap_or_default();
    let (path, query) = match location.iter().position(|&b| b == b'?') {
        Some(i) => (&location[..i], &location[i + 1..]),
        None => (location, &b""[..]),
    };
    let path = Bytes::from(resolve::percent_decode(path));
    for name in [
        CONTENT_LENGTH,
        CONTENT_TYPE,
        SCRIPT_FILENAME,
        PATH_TRANSLATED,
    ] {
        env.remove(name);
    }
    env.set(REQUEST_METHOD, "GET");
    env.set(QUERY_STRING, Bytes::copy_from_slice(query));
    env.set(REQUEST_URI, Bytes::copy_from_slice(location));
    env.set(DOCUMENT_URI, path.clone());
    let under_mount = !mount.is_empty()
        && path.starts_with(&mount)
        && (path.len() == mount.len() || path[mount.len()] == b'/');
    if under_mount {
        env.set(SCRIPT_NAME, mount.clone());
        env.set(PATH_INFO, path.slice(mount.len()..));
    } else {
        env.set(SCRIPT_NAME, Bytes::new());
        env.set(PATH_INFO, path);
    }
    env
}

/// Logs a failed request once and answers it: the error's status when the head is not out yet,
/// an abort otherwise. A client that went away gets neither.
async fn fail(
    resp: &mut Response,
    info: &RequestInfo,
    env: &Env,
    script: Option<&Path>,
    err: Error,
) -> Result<(), AppError> {
    if err.is_client_gone() {
        tracing::debug!(peer = %info.peer, request_id = info.id, error = %err, "cgi request cancelled");
        return Err(Box::new(gatehouse_channel_request::Error::ClientGone));
    }
    let status = err.http_status();
    let path = env.path();
    let script = script.map(|s| shown(s).to_string()).unwrap_or_default();
    if err.is_peer_fault() {
        tracing::warn!(peer = %info.peer, request_id = info.id, path = %path.escape_ascii(),
            script, status, error = %err, "cgi request refused");
    } else {
        tracing::error!(peer = %info.peer, request_id = info.id, path = %path.escape_ascii(),
            script, status, error = %err, "cgi script failed");
    }
    if resp.head_sent() {
        resp.abort().await;
        return Ok(());
    }
    let body = format!("{}\n", reason_phrase(status));
    if resp.send_full(status, "text/plain", body).await.is_err() {
        resp.abort().await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use gatehouse_channel_request::{
        delivery_queue, serve_request, CancellationToken, Output, Peer, Protocol, QueueChannel,
    };
    use gatehouse_dispatch::Dispatcher;

    use super::*;

    /// `(front-server form, variables, SCRIPT_NAME|PATH_INFO the program must see)`.
    type Form = (
        &'static str,
        &'static [(&'static str, &'static str)],
        &'static str,
    );

    /// A file root: one program that prints `SCRIPT_NAME|PATH_INFO`.
    fn file_root() -> (tempfile::TempDir, CgiApp) {
        let dir = tempfile::tempdir().unwrap();
        let program = dir.path().join("show.sh");
        let script = "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n%s|%s' \
                      \"$SCRIPT_NAME\" \"$PATH_INFO\"\n";
        fs::write(&program, script).unwrap();
        fs::set_permissions(&program, fs::Permissions::from_mode(0o755)).unwrap();
        let app = CgiApp::new(program, Config::default()).unwrap();
        (dir, app)
    }

    /// `vars` through `app`: the status and the body.
    async fn ask(app: &dyn Application, vars: &[(&'static str, &'static str)]) -> (u16, String) {
        let (tx, mut rx) = delivery_queue();
        let resp = Response::new(QueueChannel::new(1, tx, 1 << 16, CancellationToken::new()));
        let mut env: Env = vars.iter().map(|&(n, v)| (n.into(), v.into())).collect();
        env.set(REQUEST_METHOD, "GET");
        let req = Request {
            env,
            body: RequestBody::empty(),
            info: RequestInfo::new(Protocol::FastCgi, Peer::Stdio),
        };
        serve_request(app, req, resp).await;
        let (mut status, mut body) = (0, Vec::new());
        while let Ok(d) = rx.try_recv() {
            match d.output {
                Output::Head(h) => status = h.status(),
                Output::Body(b) => body.extend_from_slice(&b),
                _ => {}
            }
        }
        (status, String::from_utf8(body).unwrap())
    }

    /// git-http-backend's case: the program gets the dispatcher's `PATH_INFO`, which keeps the
    /// front server's split, for every usual front-server form.
    #[tokio::test]
    async fn file_root_gets_the_dispatchers_path_info() {
        let (_dir, app) = file_root();
        let app = Arc::new(app);
        let at_root = Dispatcher::single(app.clone());
        let forms: [Form; 5] = [
            (
                "nginx location ~ ^/prefixed(/.*)$ + PATH_INFO $1",
                &[
                    ("SCRIPT_NAME", "/prefixed/repo.git/info/refs"),
                    ("PATH_INFO", "/repo.git/info/refs"),
                    ("DOCUMENT_URI", "/prefixed/repo.git/info/refs"),
                ],
                "/prefixed|/repo.git/info/refs",
            ),
            (
                "nginx include fastcgi_params at /",
                &[
                    ("SCRIPT_NAME", "/repo.git/info/refs"),
                    ("DOCUMENT_URI", "/repo.git/info/refs"),
                ],
                "|/repo.git/info/refs",
            ),
            (
                "fcgiwrap style: SCRIPT_NAME and PATH_INFO both $uri",
                &[
                    ("SCRIPT_NAME", "/repo.git/HEAD"),
                    ("PATH_INFO", "/repo.git/HEAD"),
                    ("DOCUMENT_URI", "/repo.git/HEAD"),
                ],
                "|/repo.git/HEAD",
            ),
            (
                "a CGI program at /cgi-bin/gatehouse",
                &[
                    ("SCRIPT_NAME", "/cgi-bin/gatehouse"),
                    ("PATH_INFO", "/repo.git/HEAD"),
                ],
                "/cgi-bin/gatehouse|/repo.git/HEAD",
            ),
            (
                "HTTP front end",
                &[("SCRIPT_NAME", ""), ("PATH_INFO", "/repo.git/HEAD")],
                "|/repo.git/HEAD",
            ),
        ];
        for (form, vars, want) in forms {
            assert_eq!(ask(&at_root, vars).await, (200, want.to_owned()), "{form}");
        }
        // Mounted at /git, behind a front server that split at /git itself or not at all.
        let mounted = Dispatcher::new().mount("/git", app.clone());
        for vars in [
            &[
                ("SCRIPT_NAME", "/git/repo.git/HEAD"),
                ("PATH_INFO", "/repo.git/HEAD"),
                ("DOCUMENT_URI", "/git/repo.git/HEAD"),
            ][..],
            &[("SCRIPT_NAME", "/git/repo.git/HEAD")],
        ] {
            let want = (200, "/git|/repo.git/HEAD".to_owned());
            assert_eq!(ask(&mounted, vars).await, want, "{vars:?}");
        }
        // Without the dispatcher, on nginx's raw variables: the same reading.
        let raw = [
            ("SCRIPT_NAME", "/prefixed/repo.git/info/refs"),
            ("PATH_INFO", "/repo.git/info/refs"),
            ("DOCUMENT_URI", "/prefixed/repo.git/info/refs"),
        ];
        let want = (200, "/prefixed|/repo.git/info/refs".to_owned());
        assert_eq!(ask(app.as_ref(), &raw).await, want);
    }

    /// `--request-timeout`: a script past it is killed with 504, also one whose request waited
    /// for a `--cgi-max` slot; the counters say so (process-wide: other tests of this binary
    /// add to them too, hence the "at least").
    #[tokio::test]
    async fn the_request_timeout_kills_scripts_and_counts_them() {
        let dir = tempfile::tempdir().unwrap();
        let program = dir.path().join("sleepy.sh");
        fs::write(&program, "#!/bin/sh\nexec sleep 3600\n").unwrap();
        fs::set_permissions(&program, fs::Permissions::from_mode(0o755)).unwrap();
        let config = Config {
            request_timeout: Some(std::time::Duration::from_millis(300)),
            max_children: 1,
            ..Config::default()
        };
        let app = Arc::new(CgiApp::new(program, config).unwrap());
        let before = crate::stats();
        let (first, second) = tokio::join!(ask(&*app, &[]), ask(&*app, &[]));
        assert_eq!((first.0, second.0), (504, 504));
        let after = crate::stats();
        assert!(
            after.timeouts_total >= before.timeouts_total + 2,
            "{after:?}"
        );
        // At least the first was running (killed); the second may have waited for the slot.
        assert!(
            after.killed_total_wallclock > before.killed_total_wallclock,
            "{after:?}"
        );
        assert!(after.started_total > before.started_total, "{after:?}");
        assert!(
            after.max_children_reached_total > before.max_children_reached_total,
            "{after:?}"
        );
        assert_eq!(after.killed_by_reason()[1].0, "wallclock");
    }
}
