//! Helpers for the CGI end-to-end tests (tests/cgi_git.rs, tests/cgi_fcgiwrap_parity.rs):
//! Debian's `fcgiwrap` as a child process, process groups read from /proc, git run with a clean
//! HOME and a deadline, CGI environment dumps as maps.
//!
//! Included with `#[path = "support/cgi_e2e.rs"] mod cgi_support;` next to `mod support;`, whose
//! items it uses.
#![allow(
    dead_code,
    unreachable_pub,
    reason = "each test binary uses its own part of the helpers"
)]

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::support::daemon::Daemon;
use crate::support::{require, wait_for, TIMEOUT};

/// The `PATH` gatehouse gives every script (`gatehouse_cgi_exec::DEFAULT_PATH`).
pub const SCRIPT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// Debian's fcgiwrap 1.1 listening on a unix socket: one process (no `-c`), which runs one
/// script at a time and passes it its own environment plus the FastCGI params.
pub struct Fcgiwrap {
    proc: Daemon,
    /// `unix:/path`, as nginx's `fastcgi_pass` and our raw client take it.
    pub addr: String,
}

impl Fcgiwrap {
    /// Starts `fcgiwrap -s unix:DIR/fcgiwrap.sock` with exactly the environment `env` and waits
    /// until the socket listens.
    pub fn start(dir: &Path, env: &[(&str, &str)]) -> Self {
        let program = require("fcgiwrap", "fcgiwrap");
        let sock = dir.join("fcgiwrap.sock");
        let mut cmd = Command::new(program);
        cmd.arg("-s")
            .arg(format!("unix:{}", sock.display()))
            .env_clear()
            .envs(env.iter().copied())
            .stdin(Stdio::null());
        let proc = Daemon::spawn(cmd, "fcgiwrap");
        // Probing with a connection could end fcgiwrap (libfcgi gives up on a connection that
        // closes before BEGIN_REQUEST), so look for the listening socket in /proc instead.
        wait_for("fcgiwrap to listen", || unix_listening(&sock).then_some(()));
        Self {
            proc,
            addr: format!("unix:{}", sock.display()),
        }
    }

    /// fcgiwrap's pid.
    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// Waits for a line containing `needle` on fcgiwrap's stderr (where its scripts' stderr
    /// goes too) and returns it.
    pub fn wait_log(&self, needle: &str) -> String {
        self.proc.wait_log(needle)
    }
}

/// Whether a unix socket bound at `path` is listening (`__SO_ACCEPTCON` in /proc/net/unix).
pub fn unix_listening(path: &Path) -> bool {
    const SO_ACCEPTCON: u32 = 1 << 16;
    let table = std::fs::read_to_string("/proc/net/unix").unwrap_or_default();
    let want = path.to_string_lossy();
    table.lines().skip(1).any(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        f.len() >= 8
            && f[7] == want
            && u32::from_str_radix(f[3], 16).is_ok_and(|flags| flags & SO_ACCEPTCON != 0)
    })
}

/// One process as /proc/PID/stat shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proc {
    pub pid: u32,
    /// `R`, `S`, `Z`, ...
    pub state: char,
    pub pgrp: u32,
}

/// Every process on the machine (those that vanish while being read are skipped).
pub fn processes() -> Vec<Proc> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // The name (field 2) may hold spaces and parentheses: fields 3.. follow the last ')'.
            let rest = &stat[stat.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split(' ').collect();
            Some(Proc {
                pid,
                state: f.first()?.chars().next()?,
                pgrp: f.get(2)?.parse().ok()?,
            })
        })
        .collect()
}

/// What is left of process group `pgid`: its members that are not zombies, and the leader
/// itself in any state (a zombie leader was not reaped by gatehouse, which spawned it).
/// Zombies of other members are excluded: once the group is killed they belong to init.
pub fn group_leftovers(pgid: u32) -> Vec<Proc> {
    processes()
        .into_iter()
        .filter(|p| p.pgrp == pgid && (p.state != 'Z' || p.pid == pgid))
        .collect()
}

/// Waits until nothing is left of process group `pgid` (see [`group_leftovers`]).
pub fn wait_group_gone(pgid: u32) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let left = group_leftovers(pgid);
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "process group {pgid} still has {left:?} after {TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A CGI environment dump (`env.sh`: `NAME=value` lines) as a map. Lines without `=` fail.
pub fn env_map(body: &[u8]) -> BTreeMap<String, String> {
    String::from_utf8_lossy(body)
        .lines()
        .map(|l| {
            let (n, v) = l
                .split_once('=')
                .unwrap_or_else(|| panic!("not NAME=value: {l:?}"));
            (n.to_owned(), v.to_owned())
        })
        .collect()
}

/// git with a clean HOME (no user or system configuration), no terminal prompts, an identity for
/// commits, and a deadline on every command.
pub struct Git {
    program: PathBuf,
    home: PathBuf,
}

/// What a git command did.
#[derive(Debug)]
pub struct GitRun {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Git {
    /// git with `home` (created) as HOME.
    pub fn new(home: &Path) -> Self {
        std::fs::create_dir_all(home).expect("git home");
        Self {
            program: require("git", "git"),
            home: home.to_owned(),
        }
    }

    /// Runs `git ARGS` in `cwd`; fails the test (with git's stderr) unless it succeeds.
    pub fn run(&self, cwd: &Path, args: &[&str]) -> String {
        let r = self.try_run(cwd, args);
        assert!(
            r.status.success(),
            "git {args:?} failed ({}):\n{}{}",
            r.status,
            r.stdout,
            r.stderr
        );
        r.stdout
    }

    /// Runs `git ARGS` in `cwd`; killed (and the test failed) after [`TIMEOUT`].
    pub fn try_run(&self, cwd: &Path, args: &[&str]) -> GitRun {
        let out_path = self.home.join("git.stdout");
        let err_path = self.home.join("git.stderr");
        let mut child = Command::new(&self.program)
            .args(args)
            .current_dir(cwd)
            .env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", self.home.join(".config"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_AUTHOR_NAME", "Gatehouse Test")
            .env("GIT_AUTHOR_EMAIL", "test@gatehouse.invalid")
            .env("GIT_COMMITTER_NAME", "Gatehouse Test")
            .env("GIT_COMMITTER_EMAIL", "test@gatehouse.invalid")
            .env_remove("GIT_DIR")
            .env_remove("GIT_WORK_TREE")
            .env_remove("http_proxy")
            .env_remove("HTTP_PROXY")
            .stdin(Stdio::null())
            .stdout(File::create(&out_path).expect("git stdout file"))
            .stderr(File::create(&err_path).expect("git stderr file"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run git {args:?}: {e}"));
        let deadline = Instant::now() + TIMEOUT;
        let status = loop {
            if let Some(status) = child.try_wait().expect("try_wait git") {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                let err = std::fs::read_to_string(&err_path).unwrap_or_default();
                panic!("git {args:?} still running after {TIMEOUT:?}; stderr:\n{err}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        GitRun {
            status,
            stdout: std::fs::read_to_string(&out_path).unwrap_or_default(),
            stderr: std::fs::read_to_string(&err_path).unwrap_or_default(),
        }
    }
}

/// `git-http-backend` as Debian's `git` package installs it.
pub fn git_http_backend() -> PathBuf {
    let path = PathBuf::from("/usr/lib/git-core/git-http-backend");
    assert!(
        path.is_file(),
        "{} is missing: install it with `apt-get install git`",
        path.display()
    );
    path
}

/// One FastCGI request to `unix:/path` from a client that sends its body from a thread while it
/// reads the answer, as a full-duplex web server would (support's `fcgi::Client` sends the whole
/// request first). Returns the STDOUT stream once END_REQUEST arrives.
pub fn fastcgi_duplex(addr: &str, params: &[(String, String)], body: &[u8]) -> Vec<u8> {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    use crate::support::fcgi;

    let path = addr.strip_prefix("unix:").expect("a unix: address");
    let mut stream = UnixStream::connect(path).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream
        .set_read_timeout(Some(TIMEOUT))
        .expect("read timeout");
    let mut writer = stream.try_clone().expect("clone the stream");
    let request = fcgi::request(1, 0, params, body);
    let sender = std::thread::spawn(move || writer.write_all(&request));
    let mut stdout = Vec::new();
    loop {
        let mut head = [0u8; 8];
        stream.read_exact(&mut head).expect("record header");
        let len = usize::from(u16::from_be_bytes([head[4], head[5]]));
        let mut content = vec![0u8; len + usize::from(head[6])];
        stream.read_exact(&mut content).expect("record content");
        content.truncate(len);
        match head[1] {
            fcgi::STDOUT => stdout.extend_from_slice(&content),
            fcgi::STDERR => {}
            fcgi::END_REQUEST => break,
            other => panic!("unexpected record type {other}"),
        }
    }
    sender
        .join()
        .expect("sender thread")
        .expect("send the request");
    stdout
}
