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

    /// Uses a bound socket. `SO_PASSCRED` is set on it, so each message comes with its
    /// sender's pid (as systemd reads it, to tell the main process from others).
    pub fn from_socket(socket: UnixDatagram) -> Self {
        socket.set_read_timeout(Some(TIMEOUT)).expect("timeout");
        pass_credentials(&socket);
        Self { socket }
    }

    /// The next message.
    pub fn recv(&self) -> String {
        self.recv_with_pid().0
    }

    /// The next message and the pid of the process that sent it.
    pub fn recv_with_pid(&self) -> (String, u32) {
        let (bytes, pid) = recv_with_credentials(&self.socket, 0)
            .unwrap_or_else(|e| panic!("no notification within {TIMEOUT:?}: {e}"));
        let text = String::from_utf8(bytes).expect("notifications are UTF-8");
        (text, pid)
    }

    /// The messages already queued, with their senders' pids, without waiting for more.
    pub fn drain_with_pid(&self) -> Vec<(String, u32)> {
        let mut all = Vec::new();
        loop {
            match recv_with_credentials(&self.socket, libc::MSG_DONTWAIT) {
                Ok((bytes, pid)) => {
                    all.push((String::from_utf8(bytes).expect("UTF-8"), pid));
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return all,
                Err(e) => panic!("reading the notify socket: {e}"),
            }
        }
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

/// `setsockopt(SO_PASSCRED)`: the kernel attaches the sender's credentials to each datagram.
fn pass_credentials(socket: &UnixDatagram) {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    #[allow(unsafe_code, reason = "setsockopt(2) has no safe wrapper in std")]
    // SAFETY: a valid fd, and a pointer to a live c_int with its size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PASSCRED,
            std::ptr::from_ref(&on).cast(),
            size_of_val(&on) as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_PASSCRED: {}", std::io::Error::last_os_error());
}

/// One datagram and the pid in its `SCM_CREDENTIALS` (the socket has `SO_PASSCRED`).
fn recv_with_credentials(
    socket: &UnixDatagram,
    flags: libc::c_int,
) -> std::io::Result<(Vec<u8>, u32)> {
    use std::os::fd::AsRawFd;
    let mut buf = vec![0u8; 64 * 1024];
    // u64s: the control buffer must be aligned for cmsghdr.
    let mut control = [0u64; 16];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    #[allow(
        unsafe_code,
        reason = "recvmsg(2) and the CMSG_* macros have no safe wrapper"
    )]
    // SAFETY: msghdr is plain data (all-zero is valid); iov and control point to live buffers
    // of the given lengths for the whole call; CMSG_FIRSTHDR/CMSG_DATA stay inside `control`,
    // and the data is read unaligned.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = size_of_val(&control);
        let n = libc::recvmsg(socket.as_raw_fd(), &mut msg, flags);
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        assert!(
            !cmsg.is_null()
                && (*cmsg).cmsg_level == libc::SOL_SOCKET
                && (*cmsg).cmsg_type == libc::SCM_CREDENTIALS,
            "a datagram without SCM_CREDENTIALS"
        );
        let cred: libc::ucred = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
        buf.truncate(usize::try_from(n).expect("n >= 0"));
        Ok((buf, u32::try_from(cred.pid).expect("a pid")))
    }
}

/// The names in a process's start-up environment (`/proc/PID/environ`, as it was exec'd) that
/// a service manager sets: `LISTEN_*`, `NOTIFY_SOCKET`, `WATCHDOG_*`.
pub fn manager_vars_of(pid: u32) -> Vec<String> {
    let environ = std::fs::read(format!("/proc/{pid}/environ"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/environ: {e}"));
    environ
        .split(|b| *b == 0)
        .filter_map(|kv| kv.split(|b| *b == b'=').next())
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .filter(|k| k.starts_with("LISTEN_") || k == "NOTIFY_SOCKET" || k.starts_with("WATCHDOG_"))
        .collect()
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
