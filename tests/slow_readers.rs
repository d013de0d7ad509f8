//! Slow readers of large answers (issue 12, "slow readers pin app capacity and memory"): with
//! the HTTP front end's response spool (the default), an answer the app has produced waits for
//! its client in memory and then in an unlinked temp file, so the app's CGI slot or Python
//! thread is free as soon as the answer is written, and many slow clients cost little memory.
//!
//! A slow reader here is a client with a 16 KiB receive buffer that reads the first 64 KiB of a
//! 10 MiB answer and then stops reading: the kernel buffers hold a few MiB at most, so without
//! spilling the app would wait for it as long as it stays.
//!
//! No timing assertions: "promptly" is the support code's generous timeout, which a request
//! queued behind a stalled reader would never meet.

mod support;

#[path = "support/wsgi.rs"]
mod wsgi_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;

use support::cgi::{set_mode, write_program};
use support::daemon::Daemon;
use support::{fixtures, wait_for, TIMEOUT};
use wsgi_support::status_kib;

/// Lines `1..=SEQ_LINES` of `seq`: 10,088,895 bytes, every byte's place checkable.
const SEQ_LINES: u32 = 1_500_000;

fn seq_bytes() -> Vec<u8> {
    let mut out = Vec::new();
    for i in 1..=SEQ_LINES {
        out.extend_from_slice(format!("{i}\n").as_bytes());
    }
    out
}

/// A CGI root with `big.sh` (`seq 1 1500000`, ~10 MiB) and `small.sh`.
fn cgi_root(dir: &Path) -> std::path::PathBuf {
    let root = dir.join("cgi");
    std::fs::create_dir_all(&root).expect("cgi dir");
    for d in [dir, &root] {
        set_mode(d, 0o755);
    }
    write_program(
        &root.join("big.sh"),
        &format!(
            "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\nexec seq 1 {SEQ_LINES}\n"
        ),
    );
    write_program(
        &root.join("small.sh"),
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nsmall\\n'\n",
    );
    root
}

/// A client that asked for `path`, read the head and about 64 KiB of body, and stopped.
struct SlowReader {
    stream: TcpStream,
    /// What was read so far (head included).
    got: Vec<u8>,
}

impl SlowReader {
    fn start(addr: &str, path: &str) -> Self {
        let addr: SocketAddr = addr.parse().expect("listener address");
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        socket.set_recv_buffer_size(16 << 10).expect("SO_RCVBUF");
        socket.connect(&addr.into()).expect("connect");
        let mut stream: TcpStream = socket.into();
        stream.set_read_timeout(Some(TIMEOUT)).expect("timeout");
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
        )
        .expect("request");
        let mut got = Vec::new();
        let mut buf = [0; 16 << 10];
        while got.len() < 64 << 10 {
            let n = stream.read(&mut buf).expect("first bytes of the answer");
            assert!(
                n > 0,
                "answer ended early: {:?}",
                String::from_utf8_lossy(&got)
            );
            got.extend_from_slice(&buf[..n]);
        }
        Self { stream, got }
    }

    /// Reads the rest; the body (after the head, de-chunked if need be).
    fn finish(mut self) -> Vec<u8> {
        self.stream
            .read_to_end(&mut self.got)
            .expect("rest of the answer");
        let split = self
            .got
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("end of head");
        let head = String::from_utf8_lossy(&self.got[..split]).to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 200"), "head: {head}");
        let body = &self.got[split + 4..];
        if head.contains("transfer-encoding: chunked") {
            support::http::read_chunked(&mut std::io::BufReader::new(body))
        } else {
            body.to_vec()
        }
    }
}

/// A whole request, read to its end: the body of a 200.
fn get(addr: &str, path: &str) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut got = Vec::new();
    s.read_to_end(&mut got)
        .unwrap_or_else(|e| panic!("GET {path}: no answer in {TIMEOUT:?} ({e})"));
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200"), "GET {path}: {text}");
    let split = got.windows(4).position(|w| w == b"\r\n\r\n").expect("head");
    let body = &got[split + 4..];
    if text[..split]
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        support::http::read_chunked(&mut std::io::BufReader::new(body))
    } else {
        body.to_vec()
    }
}

/// The daemon's open descriptors on files under `dir` (spill files, unlinked).
fn spill_fds(pid: u32, dir: &Path) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("/proc/PID/fd")
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|t| t.starts_with(dir))
        .count()
}

#[test]
fn a_slow_reader_does_not_hold_the_only_cgi_slot() {
    let dir = tempfile::tempdir().expect("temp dir");
    let top = std::fs::canonicalize(dir.path()).expect("canonical");
    let root = cgi_root(&top);
    let spool = top.join("spool");
    std::fs::create_dir(&spool).expect("spool dir");
    let app = format!("cgi:{}", root.display());
    let spool_arg = spool.display().to_string();
    let daemon = Daemon::serve(&[
        &app,
        "--http",
        "127.0.0.1:0",
        "--cgi-max",
        "1",
        "--spool-dir",
        &spool_arg,
    ]);
    let addr = daemon.listener("http");
    let slow = SlowReader::start(&addr, "/big.sh");
    // The script is done and its slot free, while its client has read 64 KiB.
    assert_eq!(get(&addr, "/small.sh"), b"small\n");
    assert_eq!(get(&addr, "/small.sh"), b"small\n");
    assert_eq!(
        spill_fds(daemon.pid(), &spool),
        1,
        "the answer waits in a spill file"
    );
    let body = slow.finish();
    assert_eq!(body.len(), seq_bytes().len());
    assert!(
        body == seq_bytes(),
        "the slow reader's answer is out of order"
    );
    wait_for("the spill file to be closed", || {
        (spill_fds(daemon.pid(), &spool) == 0).then_some(())
    });
    assert_eq!(
        std::fs::read_dir(&spool).expect("spool").count(),
        0,
        "unlinked"
    );
}

fn wsgi_daemon(spool: &Path, extra: &[&str]) -> Daemon {
    let app = format!("wsgi:{}", fixtures().join("apps/big_answer.py").display());
    let mut args = vec![
        app,
        "--http".into(),
        "127.0.0.1:0".into(),
        "--spool-dir".into(),
        spool.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    wsgi_support::start(&args)
}

fn big_answer() -> Vec<u8> {
    (0..10u8).flat_map(|i| vec![i; 1 << 20]).collect()
}

#[test]
fn a_slow_reader_does_not_hold_the_only_python_thread() {
    let dir = tempfile::tempdir().expect("temp dir");
    let spool = std::fs::canonicalize(dir.path()).expect("canonical");
    let daemon = wsgi_daemon(&spool, &["--threads", "1"]);
    let addr = daemon.listener("http");
    let slow = SlowReader::start(&addr, "/big");
    assert_eq!(get(&addr, "/small"), b"small\n");
    assert_eq!(get(&addr, "/small"), b"small\n");
    let body = slow.finish();
    assert!(
        body == big_answer(),
        "the slow reader's answer is wrong or out of order"
    );
}

#[test]
fn fifty_slow_readers_cost_little_memory() {
    const READERS: usize = 50;
    let dir = tempfile::tempdir().expect("temp dir");
    let spool = std::fs::canonicalize(dir.path()).expect("canonical");
    // A 4 MiB budget of answers in memory over all requests (the default is 32 MiB).
    let daemon = wsgi_daemon(
        &spool,
        &["--threads", "2", "--response-buffer-memory", "4M"],
    );
    let addr = daemon.listener("http");
    // Warm up: the interpreter, the thread pool, a whole big answer read at full speed.
    assert!(get(&addr, "/big") == big_answer());
    let before = status_kib(daemon.pid(), "VmRSS");
    let readers: Vec<SlowReader> = (0..READERS)
        .map(|_| SlowReader::start(&addr, "/big"))
        .collect();
    // Every app is done (two threads served all fifty), each answer waits in its file.
    wait_for("every answer to be spilled", || {
        (spill_fds(daemon.pid(), &spool) == READERS).then_some(())
    });
    assert_eq!(get(&addr, "/small"), b"small\n");
    let during = status_kib(daemon.pid(), "VmRSS");
    let grown = during.saturating_sub(before);
    eprintln!("VmRSS {before} KiB before, {during} KiB with {READERS} slow readers (+{grown} KiB)");
    // Without the spool: ~1 MiB each (the answer's first pieces queued, hyper's write
    // buffer), +48 MiB for 50; with it ~23 MiB was measured (some of it Python's allocator).
    assert!(
        grown < 40 << 10 && during < 64 << 10,
        "{READERS} slow readers grew the daemon by {grown} KiB (VmRSS {before} -> {during} KiB)"
    );
    for r in readers {
        assert!(
            r.finish() == big_answer(),
            "a slow reader's answer is wrong"
        );
    }
    wait_for("the spill files to be closed", || {
        (spill_fds(daemon.pid(), &spool) == 0).then_some(())
    });
}
