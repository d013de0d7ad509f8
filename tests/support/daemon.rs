//! A `gatehouse` process (or a program embedding it) under test: started with arguments, its
//! stderr collected line by line (and echoed to the test output), its "listening on" lines
//! parsed, signalled, and killed when dropped.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::TIMEOUT;

/// The log of a child process, shared with the thread that reads its stderr.
#[derive(Default)]
struct Log {
    lines: Mutex<(Vec<String>, bool)>,
    changed: Condvar,
}

/// A listener as the daemon announced it (`listening on <protocol> <addr>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// `fastcgi`, `scgi` or `http`.
    pub protocol: String,
    /// `127.0.0.1:PORT`, `unix:/path`, or `fd:0 (...)`.
    pub addr: String,
}

/// A running daemon.
pub struct Daemon {
    child: Child,
    log: Arc<Log>,
    label: String,
}

impl Daemon {
    /// Starts the `gatehouse` binary with `args` (stdin `/dev/null`, so fd 0 is no socket).
    pub fn start(args: &[&str]) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
        cmd.args(args).stdin(Stdio::null());
        Self::spawn(cmd, "gatehouse")
    }

    /// Starts the `gatehouse` binary with `args` and the extra environment `env` (stdin
    /// `/dev/null`).
    pub fn start_env(args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
        cmd.args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null());
        Self::spawn(cmd, "gatehouse")
    }

    /// Starts the `gatehouse` binary with `args`, which must name listeners with `--fastcgi`,
    /// `--scgi`, `--http` or `--uwsgi` (IP literals, `unix:` or `fd:`, one socket each), and waits until
    /// every one of them is announced.
    pub fn serve(args: &[&str]) -> Self {
        let n = args
            .iter()
            .filter(|a| matches!(**a, "--fastcgi" | "--scgi" | "--http" | "--uwsgi"))
            .count();
        assert!(n > 0, "Daemon::serve needs listener options in {args:?}");
        let d = Self::start(args);
        d.wait_listeners(n);
        d
    }

    /// Starts `gatehouse` serving `app` on an ephemeral loopback port and waits until it listens.
    pub fn fastcgi_tcp(app: &str, extra: &[&str]) -> Self {
        let mut args = vec![app, "--fastcgi", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let d = Self::start(&args);
        d.wait_listening(1);
        d
    }

    /// Starts `gatehouse` serving `app` on a unix socket at `path` and waits until it listens.
    pub fn fastcgi_unix(app: &str, path: &Path, extra: &[&str]) -> Self {
        let addr = format!("unix:{}", path.display());
        let mut args = vec![app, "--fastcgi", &addr];
        args.extend_from_slice(extra);
        let d = Self::start(&args);
        d.wait_listening(1);
        d
    }

    /// Spawns `cmd` with stderr captured. Its stdin must be set by the caller.
    pub fn spawn(mut cmd: Command, label: &str) -> Self {
        cmd.stderr(Stdio::piped()).stdout(Stdio::null());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {label} ({cmd:?}): {e}"));
        let log = Arc::new(Log::default());
        let stderr = child.stderr.take().expect("stderr is piped");
        let (shared, tag) = (log.clone(), format!("[{label} {}]", child.id()));
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).split(b'\n') {
                let Ok(line) = line else { break };
                let line = String::from_utf8_lossy(&line).into_owned();
                eprintln!("{tag} {line}");
                shared.lines.lock().expect("log lock").0.push(line);
                shared.changed.notify_all();
            }
            shared.lines.lock().expect("log lock").1 = true;
            shared.changed.notify_all();
        });
        Self {
            child,
            log,
            label: label.to_owned(),
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything logged so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lines.lock().expect("log lock").0.clone()
    }

    /// Waits for a log line containing `needle` and returns it. Fails if stderr closes first.
    pub fn wait_log(&self, needle: &str) -> String {
        self.wait_log_count(needle, 1).pop().expect("one line")
    }

    /// Waits until `n` log lines contain `needle`; returns them.
    pub fn wait_log_count(&self, needle: &str, n: usize) -> Vec<String> {
        let deadline = Instant::now() + TIMEOUT;
        let mut guard = self.log.lines.lock().expect("log lock");
        loop {
            let found: Vec<String> = guard
                .0
                .iter()
                .filter(|l| l.contains(needle))
                .cloned()
                .collect();
            if found.len() >= n {
                return found;
            }
            assert!(
                !guard.1,
                "{} closed stderr before logging {n} x {needle:?}; log:\n{}",
                self.label,
                guard.0.join("\n")
            );
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "timed out waiting for {n} x {needle:?} in the log of {}",
                self.label
            );
            guard = self
                .log
                .changed
                .wait_timeout(guard, left)
                .expect("log lock")
                .0;
        }
    }

    /// How many log lines so far contain `needle`.
    pub fn count_log(&self, needle: &str) -> usize {
        self.log().iter().filter(|l| l.contains(needle)).count()
    }

    /// Waits until `n` listeners are announced; returns their addresses as logged (for TCP
    /// `127.0.0.1:PORT`, for unix sockets `unix:/path`, for inherited ones `fd:0 (...)`).
    pub fn wait_listening(&self, n: usize) -> Vec<String> {
        const MARK: &str = "listening on fastcgi ";
        self.wait_log_count(MARK, n)
            .iter()
            .map(|l| {
                let at = l.find(MARK).expect("mark") + MARK.len();
                l[at..].trim().to_owned()
            })
            .collect()
    }

    /// Waits until `n` listeners of any protocol are announced; returns them in order.
    pub fn wait_listeners(&self, n: usize) -> Vec<Listener> {
        const MARK: &str = "listening on ";
        self.wait_log_count(MARK, n)
            .iter()
            .map(|l| {
                let at = l.find(MARK).expect("mark") + MARK.len();
                let (protocol, addr) = l[at..]
                    .trim()
                    .split_once(' ')
                    .expect("protocol and address");
                Listener {
                    protocol: protocol.to_owned(),
                    addr: addr.to_owned(),
                }
            })
            .collect()
    }

    /// The address of the first `protocol` listener announced (waits for it).
    pub fn listener(&self, protocol: &str) -> String {
        let mark = format!("listening on {protocol} ");
        let line = self.wait_log(&mark);
        let at = line.find(&mark).expect("mark") + mark.len();
        line[at..].trim().to_owned()
    }

    /// Waits until the process announces a listener (`true`) or exits (`false`).
    pub fn started(&mut self) -> bool {
        super::wait_for("a listener or an exit", || {
            if self.count_log("listening on ") > 0 {
                return Some(true);
            }
            (!self.is_running()).then_some(false)
        })
    }

    /// The first listener's address, in the form [`super::fcgi::Client::connect`] takes.
    pub fn addr(&self) -> String {
        self.wait_listening(1).swap_remove(0)
    }

    /// Sends a signal.
    pub fn signal(&self, sig: i32) {
        super::kill(self.pid(), sig);
    }

    /// Waits for the process to exit (at most [`TIMEOUT`]).
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "{} did not exit", self.label);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// SIGTERM, then the exit status (the daemon drains and exits 0).
    pub fn stop(&mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        self.wait_exit()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `cmd` to completion (stdin `/dev/null`) and returns its status, stdout and stderr.
pub fn run(mut cmd: Command) -> (ExitStatus, String, String) {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
