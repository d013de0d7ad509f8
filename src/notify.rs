//! `sd_notify(3)`, written by hand: telling systemd (a `Type=notify` service) that we are
//! ready, reloading or stopping, what we are doing, and that we are alive (the watchdog).
//!
//! ```text
//!  NOTIFY_SOCKET=/run/systemd/notify  (a path)     ──► one datagram per message:
//!  NOTIFY_SOCKET=@name                (abstract)        "READY=1\nSTATUS=serving ..."
//!  WATCHDOG_USEC=N, WATCHDOG_PID=our pid           ──► WATCHDOG=1 every N/2 µs
//! ```
//!
//! Without `NOTIFY_SOCKET` every call does nothing. A message that cannot be sent is logged
//! (the first failure at `warn`, later ones at `debug`) and otherwise ignored: systemd going
//! away must not stop the daemon. The socket is non-blocking, so a full queue never stalls us.

use std::ffi::OsStr;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::sys;
use crate::systemd::take_env;

/// Where notifications go, and the watchdog interval systemd asked for.
#[derive(Debug, Clone, Default)]
pub(crate) struct Notifier {
    inner: Option<Arc<Inner>>,
}

#[derive(Debug)]
struct Inner {
    socket: UnixDatagram,
    addr: SocketAddr,
    /// `NOTIFY_SOCKET` as given, for log lines.
    label: String,
    /// `WATCHDOG_USEC`, when it is meant for us.
    watchdog: Option<Duration>,
    /// A send failed already (later failures are logged at debug).
    failed: AtomicBool,
}

/// `NOTIFY_SOCKET`'s two forms.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Path(std::path::PathBuf),
    Abstract(Vec<u8>),
}

impl Notifier {
    /// Takes `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` from the environment (removing
    /// them, so apps and scripts do not see them; call it at start-up, single-threaded).
    pub(crate) fn from_env() -> Self {
        let socket = take_env("NOTIFY_SOCKET");
        let usec = take_env("WATCHDOG_USEC");
        let pid = take_env("WATCHDOG_PID");
        let Some(socket) = socket else {
            return Self::default();
        };
        let target = match parse_target(&socket) {
            Ok(t) => t,
            Err(why) => {
                tracing::warn!("not notifying systemd: {why}");
                return Self::default();
            }
        };
        let text = |v: Option<std::ffi::OsString>| v.map(|v| v.to_string_lossy().into_owned());
        let watchdog = watchdog(
            text(usec).as_deref(),
            text(pid).as_deref(),
            std::process::id(),
        );
        let label = socket.to_string_lossy().into_owned();
        match Self::connect(&target, label, watchdog) {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(
                    "not notifying systemd: NOTIFY_SOCKET={}: {e}",
                    socket.to_string_lossy()
                );
                Self::default()
            }
        }
    }

    /// A notifier sending to `target`.
    fn connect(target: &Target, label: String, watchdog: Option<Duration>) -> io::Result<Self> {
        let addr = match target {
            Target::Path(p) => SocketAddr::from_pathname(p)?,
            Target::Abstract(name) => SocketAddr::from_abstract_name(name)?,
        };
        let socket = UnixDatagram::unbound()?;
        socket.set_nonblocking(true)?;
        Ok(Self {
            inner: Some(Arc::new(Inner {
                socket,
                addr,
                label,
                watchdog,
                failed: AtomicBool::new(false),
            })),
        })
    }

    /// Whether notifications are sent at all (`NOTIFY_SOCKET` was usable).
    pub(crate) fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// `READY=1` with a `STATUS=` line: start-up is finished, every listener serves.
    pub(crate) fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={}", one_line(status)));
    }

    /// `RELOADING=1` with `MONOTONIC_USEC=` (`CLOCK_MONOTONIC` now), as `Type=notify-reload`
    /// requires; send [`Self::ready`] once the reload is done.
    pub(crate) fn reloading(&self) {
        if !self.is_enabled() {
            return;
        }
        match sys::monotonic_usec() {
            Ok(usec) => self.send(&format!("RELOADING=1\nMONOTONIC_USEC={usec}")),
            Err(e) => tracing::warn!("cannot read CLOCK_MONOTONIC for RELOADING=1: {e}"),
        }
    }

    /// `MAINPID=pid`: another process is the service's main process now (a new master
    /// started on SIGUSR2; systemd takes it from a process other than the main one only with
    /// `NotifyAccess=all`).
    pub(crate) fn main_pid(&self, pid: u32) {
        self.send(&format!("MAINPID={pid}"));
    }

    /// The variables a successor (the new master of a SIGUSR2) needs to notify systemd in our
    /// place: `NOTIFY_SOCKET`, and `WATCHDOG_USEC` without a `WATCHDOG_PID` (it has another pid).
    pub(crate) fn successor_env(&self) -> Vec<(&'static str, String)> {
        let Some(inner) = &self.inner else {
            return Vec::new();
        };
        let mut env = vec![("NOTIFY_SOCKET", inner.label.clone())];
        if let Some(w) = inner.watchdog {
            env.push(("WATCHDOG_USEC", w.as_micros().to_string()));
        }
        env
    }

    /// `STOPPING=1`: shutting down (draining).
    pub(crate) fn stopping(&self) {
        self.send("STOPPING=1");
    }

    /// `STATUS=text`: what `systemctl status` shows.
    pub(crate) fn status(&self, text: &str) {
        self.send(&format!("STATUS={}", one_line(text)));
    }

    /// How often to call [`Self::watchdog`]: half of `WATCHDOG_USEC` (as `sd_watchdog_enabled`
    /// advises), when systemd set it for this process.
    pub(crate) fn watchdog_interval(&self) -> Option<Duration> {
        self.inner.as_ref()?.watchdog.map(|d| d / 2)
    }

    /// `WATCHDOG=1`: we are alive.
    pub(crate) fn watchdog(&self) {
        self.send("WATCHDOG=1");
    }

    /// Spawns a task that sends [`Self::watchdog`] every [`Self::watchdog_interval`], for as
    /// long as the runtime runs; nothing without a watchdog. Must run inside the runtime.
    pub(crate) fn spawn_watchdog(&self) {
        let Some(every) = self.watchdog_interval() else {
            return;
        };
        let this = self.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                this.watchdog();
            }
        });
    }

    fn send(&self, message: &str) {
        let Some(inner) = &self.inner else {
            return;
        };
        if let Err(e) = inner.socket.send_to_addr(message.as_bytes(), &inner.addr) {
            let what = message.lines().next().unwrap_or_default();
            if inner.failed.swap(true, Ordering::Relaxed) {
                tracing::debug!("cannot notify systemd ({what}) at {}: {e}", inner.label);
            } else {
                tracing::warn!(
                    "cannot notify systemd ({what}) at NOTIFY_SOCKET={}: {e} (further failures \
                     are logged at debug)",
                    inner.label
                );
            }
        }
    }
}

/// `NOTIFY_SOCKET`: an absolute path, or `@name` for the abstract namespace.
fn parse_target(value: &OsStr) -> Result<Target, String> {
    let bytes = value.as_bytes();
    match bytes.first() {
        Some(b'/') => Ok(Target::Path(Path::new(value).to_owned())),
        Some(b'@') if bytes.len() > 1 => Ok(Target::Abstract(bytes[1..].to_vec())),
        _ => Err(format!(
            "NOTIFY_SOCKET={} is neither an absolute path nor @name (an abstract socket)",
            value.to_string_lossy()
        )),
    }
}

/// `WATCHDOG_USEC` when it is meant for process `me` (`WATCHDOG_PID` absent or `me`).
fn watchdog(usec: Option<&str>, pid: Option<&str>, me: u32) -> Option<Duration> {
    let usec = usec?;
    if let Some(pid) = pid {
        if pid.trim().parse::<u32>().ok() != Some(me) {
            tracing::debug!("WATCHDOG_PID={pid} is not us ({me}): no watchdog pings");
            return None;
        }
    }
    match usec.trim().parse::<u64>() {
        Ok(n) if n > 0 => Some(Duration::from_micros(n)),
        _ => {
            tracing::warn!("WATCHDOG_USEC={usec} is not a positive number: no watchdog pings");
            None
        }
    }
}

/// A `STATUS=` value on one line (a newline would start another assignment).
fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recv(rx: &UnixDatagram) -> String {
        rx.set_read_timeout(Some(WAIT)).unwrap();
        let mut buf = [0u8; 4096];
        let n = rx.recv(&mut buf).expect("a notification");
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    /// Generous: only a broken test waits this long.
    const WAIT: Duration = Duration::from_secs(60);

    #[test]
    fn sends_to_a_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let rx = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::connect(&Target::Path(path), "test".into(), None).unwrap();
        assert!(n.is_enabled());
        n.ready("serving http on 127.0.0.1:1\nand more");
        assert_eq!(
            recv(&rx),
            "READY=1\nSTATUS=serving http on 127.0.0.1:1 and more"
        );
        n.status("draining 2 connections");
        assert_eq!(recv(&rx), "STATUS=draining 2 connections");
        n.reloading();
        let reloading = recv(&rx);
        let usec = reloading
            .strip_prefix("RELOADING=1\nMONOTONIC_USEC=")
            .unwrap_or_else(|| panic!("{reloading:?}"));
        assert!(usec.parse::<u64>().unwrap() > 0);
        n.stopping();
        assert_eq!(recv(&rx), "STOPPING=1");
        n.watchdog();
        assert_eq!(recv(&rx), "WATCHDOG=1");
        assert_eq!(n.watchdog_interval(), None);
    }

    #[test]
    fn sends_to_an_abstract_socket() {
        let name = format!("gatehouse-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let rx = UnixDatagram::bind_addr(&addr).unwrap();
        let target = parse_target(OsStr::new(&format!("@{name}"))).unwrap();
        assert_eq!(target, Target::Abstract(name.into_bytes()));
        let n = Notifier::connect(&target, "test".into(), Some(Duration::from_secs(10))).unwrap();
        n.stopping();
        assert_eq!(recv(&rx), "STOPPING=1");
        assert_eq!(n.watchdog_interval(), Some(Duration::from_secs(5)));
    }

    #[test]
    fn send_failures_are_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("nobody-listens");
        let n = Notifier::connect(&Target::Path(gone), "test".into(), None).unwrap();
        n.ready("x");
        n.ready("y");
        n.watchdog();
        assert!(n.inner.as_ref().unwrap().failed.load(Ordering::Relaxed));
        // Without NOTIFY_SOCKET, nothing at all.
        let off = Notifier::default();
        assert!(!off.is_enabled());
        off.ready("x");
        off.reloading();
        assert_eq!(off.watchdog_interval(), None);
    }

    #[test]
    fn notify_socket_forms() {
        assert_eq!(
            parse_target(OsStr::new("/run/systemd/notify")).unwrap(),
            Target::Path("/run/systemd/notify".into())
        );
        for bad in ["", "@", "relative/path", "vsock:2:1234"] {
            let err = parse_target(OsStr::new(bad)).unwrap_err();
            assert!(err.contains("NOTIFY_SOCKET"), "{err}");
        }
    }

    #[test]
    fn watchdog_is_for_our_pid_only() {
        let s = Some(Duration::from_secs(20));
        assert_eq!(watchdog(Some("20000000"), None, 7), s);
        assert_eq!(watchdog(Some("20000000"), Some("7"), 7), s);
        assert_eq!(watchdog(Some("20000000"), Some("8"), 7), None);
        assert_eq!(watchdog(Some("0"), None, 7), None);
        assert_eq!(watchdog(Some("soon"), None, 7), None);
        assert_eq!(watchdog(None, Some("7"), 7), None);
    }
}
