//! `systemd-socket-activate` (from the `systemd` package): binds the sockets a test names,
//! waits for the first connection on any of them, then execs gatehouse with `LISTEN_PID`,
//! `LISTEN_FDS` and `LISTEN_FDNAMES` set, as systemd does for a `.socket` unit. Also a datagram
//! socket standing in for systemd's `NOTIFY_SOCKET`.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::daemon::Daemon;
use super::{free_port, require, wait_for, TIMEOUT};

/// The tool's path (`/usr/bin/systemd-socket-activate`; older systemd: `/lib/systemd/systemd-activate`).
pub fn socket_activate_tool() -> PathBuf {
    let old = Path::new("/lib/systemd/systemd-activate");
    if old.is_file() && !Path::new("/usr/bin/systemd-socket-activate").is_file() {
        return old.to_owned();
    }
    require("systemd-socket-activate", "systemd")
}

/// gatehouse started by `systemd-socket-activate -l ADDR ... --fdname=NAMES -- gatehouse ARGS`.
/// Each `"tcp"` in `listen` becomes `127.0.0.1:PORT` with a free port (returned; the tool is
/// restarted with another port if that one was taken meanwhile). Returns once the tool listens;
/// gatehouse starts at the first connection.
pub fn socket_activate(
    listen: &[&str],
    fdnames: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> (Daemon, u16) {
    for _attempt in 0..5 {
        let port = free_port();
        let tcp = format!("127.0.0.1:{port}");
        let mut cmd = Command::new(socket_activate_tool());
        for l in listen {
            cmd.arg("-l")
                .arg(if *l == "tcp" { tcp.as_str() } else { l });
        }
        cmd.arg(format!("--fdname={fdnames}"))
            .arg("--")
            .arg(env!("CARGO_BIN_EXE_gatehouse"))
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null());
        let mut d = Daemon::spawn(cmd, "systemd-socket-activate gatehouse");
        let up = wait_for("systemd-socket-activate to listen or exit", || {
            if d.count_log("Listening on ") == listen.len() {
                return Some(true);
            }
            (!d.is_running()).then_some(false)
        });
        if up {
            return (d, port);
        }
    }
    panic!("systemd-socket-activate could not bind a free port in 5 attempts");
}

/// A datagram socket at `path` receiving what gatehouse sends to `NOTIFY_SOCKET`.
pub struct NotifyReceiver {
    socket: UnixDatagram,
}

impl NotifyReceiver {
    /// Binds `path`.
    pub fn bind(path: &Path) -> Self {
        Self::from_socket(UnixDatagram::bind(path).expect("bind the notify socket"))
    }

    /// Uses a bound socket.
    pub fn from_socket(socket: UnixDatagram) -> Self {
        socket.set_read_timeout(Some(TIMEOUT)).expect("timeout");
        Self { socket }
    }

    /// The next message.
    pub fn recv(&self) -> String {
        let mut buf = vec![0u8; 64 * 1024];
        let n = self
            .socket
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("no notification within {TIMEOUT:?}: {e}"));
        String::from_utf8(buf[..n].to_vec()).expect("notifications are UTF-8")
    }

    /// The next message other than `WATCHDOG=1` pings and `STATUS=` updates.
    pub fn recv_state(&self) -> String {
        loop {
            let m = self.recv();
            if m != "WATCHDOG=1" && !m.starts_with("STATUS=") {
                return m;
            }
        }
    }
}

/// A WSGI app (in `dir`, readable by everyone) answering with the service manager's variables
/// it sees in `os.environ` (`none` when there are none), and the uid it was imported as.
pub fn environ_app(dir: &Path) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("environ_app.py");
    std::fs::write(
        &path,
        "import os\n\
         IMPORTED_AS = os.getuid()\n\
         PREFIXES = ('LISTEN_', 'NOTIFY_', 'WATCHDOG_')\n\
         def application(environ, start_response):\n\
         \x20   names = sorted(k for k in os.environ if k.startswith(PREFIXES))\n\
         \x20   body = 'env=%s imported_as=%d' % (','.join(names) or 'none', IMPORTED_AS)\n\
         \x20   start_response('200 OK', [('Content-Type', 'text/plain')])\n\
         \x20   return [body.encode()]\n",
    )
    .expect("write the app");
    for p in [dir, path.as_path()] {
        let mode = if p.is_dir() { 0o755 } else { 0o644 };
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }
    format!("wsgi:{}", path.display())
}
