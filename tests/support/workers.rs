//! Helpers for the worker-process tests (tests/workers.rs, tests/workers_nginx.rs): the pids a
//! master logs for its workers, processes read from /proc (parent, liveness), an HTTP client
//! that reports failures instead of panicking, and a load of client threads sending requests in
//! a loop, each on a new connection, whose outcomes the test inspects.
//!
//! Include it next to `mod support;` with `#[path = "support/workers.rs"] mod workers_support;`.
#![allow(
    dead_code,
    unreachable_pub,
    reason = "each test binary uses its own part of the helpers"
)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::support::daemon::Daemon;
use crate::support::{fixtures, wait_for, TIMEOUT};

/// `wsgi:<abs path>/fixtures/apps/workers.py`: answers `v1 <pid>`; `/exit` kills its worker.
pub fn pid_app() -> String {
    format!("wsgi:{}", fixtures().join("apps/workers.py").display())
}

/// The worker pids of the first generation, from the master's `N worker(s) ready (pids A, B);
/// serving` line (waits for it).
pub fn serving_pids(d: &Daemon) -> Vec<u32> {
    let line = d.wait_log("worker(s) ready (pids ");
    pid_list(&line, "(pids ")
}

/// The comma-separated pids after `mark` in `line`, up to the closing parenthesis.
pub fn pid_list(line: &str, mark: &str) -> Vec<u32> {
    let at = line.find(mark).expect("mark") + mark.len();
    let end = at + line[at..].find(')').expect("closing parenthesis");
    line[at..end]
        .split(", ")
        .map(|p| p.parse().unwrap_or_else(|_| panic!("bad pid in {line:?}")))
        .collect()
}

/// Every `worker K (pid P, generation G) ready in` line so far, as `(K, P, G)`.
pub fn ready_workers(d: &Daemon) -> Vec<(u16, u32, u64)> {
    d.log()
        .iter()
        .filter(|l| l.contains("[master]") && l.contains(") ready in "))
        .filter_map(|l| {
            let rest = &l[l.find("worker ")? + "worker ".len()..];
            let (slot, rest) = rest.split_once(" (pid ")?;
            let (pid, rest) = rest.split_once(", generation ")?;
            let (generation, _) = rest.split_once(") ready in ")?;
            Some((
                slot.parse().ok()?,
                pid.parse().ok()?,
                generation.parse().ok()?,
            ))
        })
        .collect()
}

/// `(state, ppid, pgrp)` of a process from /proc/PID/stat; `None` once it is gone.
pub fn stat(pid: u32) -> Option<(char, u32, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The name (field 2) may hold spaces and parentheses: fields 3.. follow the last ')'.
    let f: Vec<&str> = stat[stat.rfind(')')? + 2..].split(' ').collect();
    Some((
        f.first()?.chars().next()?,
        f.get(1)?.parse().ok()?,
        f.get(2)?.parse().ok()?,
    ))
}

/// The parent of a live process.
pub fn ppid(pid: u32) -> u32 {
    stat(pid)
        .unwrap_or_else(|| panic!("process {pid} is gone"))
        .1
}

/// Whether `pid` is a process that still runs (a zombie has exited).
pub fn alive(pid: u32) -> bool {
    stat(pid).is_some_and(|(state, ..)| state != 'Z')
}

/// Waits until `pid` no longer runs (at most [`TIMEOUT`]).
pub fn wait_gone(pid: u32) {
    wait_for(&format!("process {pid} to exit"), || {
        (!alive(pid)).then_some(())
    });
}

/// A response to [`try_get`]: status and the whole body as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Got {
    pub status: u16,
    pub body: String,
}

impl Got {
    /// The pid in a `workers.py` answer (`v1 <pid>`).
    pub fn pid(&self) -> u32 {
        self.body
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no pid in {:?}", self.body))
    }

    /// The version in a `workers.py` answer.
    pub fn version(&self) -> &str {
        self.body.split_whitespace().next().unwrap_or("")
    }
}

/// `GET target` on a new connection to `addr` (`127.0.0.1:PORT`), `Connection: close`, read to
/// the end. The response must carry `Content-Length` and a body that long; anything else (a
/// refused or reset connection, a truncated answer) is an `Err` saying what happened.
pub fn try_get(addr: &str, target: &str) -> Result<Got, String> {
    let mut s = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    let req = format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    let mut data = Vec::new();
    s.read_to_end(&mut data).map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&data);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no complete head in {text:?}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line in {text:?}"))?;
    let len: usize = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .ok_or_else(|| format!("no Content-Length in {text:?}"))?;
    if body.len() != len {
        return Err(format!("body of {} bytes, not {len}: {text:?}", body.len()));
    }
    Ok(Got {
        status,
        body: body.to_owned(),
    })
}

/// One request of a [`Load`]: the phase it started in and what it got.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub phase: usize,
    pub result: Result<Got, String>,
}

impl Outcome {
    /// A `200` answer.
    pub fn ok(&self) -> bool {
        matches!(&self.result, Ok(g) if g.status == 200)
    }
}

/// Client threads sending `GET target` in a loop, each request on a new connection (so a
/// thread has at most one connection open at any time), until stopped or [`Load::MAX_PER_THREAD`]
/// requests each. Every outcome is kept with the phase (set by the test) it started in.
pub struct Load {
    stop: Arc<AtomicBool>,
    phase: Arc<AtomicUsize>,
    outcomes: Arc<Mutex<Vec<Outcome>>>,
    threads: Vec<JoinHandle<()>>,
}

impl Load {
    /// The bound on each thread's requests, should a test forget to stop its load.
    pub const MAX_PER_THREAD: usize = 20_000;

    /// Starts `threads` client threads against `addr`.
    pub fn start(addr: &str, target: &str, threads: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let phase = Arc::new(AtomicUsize::new(0));
        let outcomes = Arc::new(Mutex::new(Vec::new()));
        let threads = (0..threads)
            .map(|_| {
                let (stop, phase, outcomes) = (stop.clone(), phase.clone(), outcomes.clone());
                let (addr, target) = (addr.to_owned(), target.to_owned());
                std::thread::spawn(move || {
                    for _ in 0..Self::MAX_PER_THREAD {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        let phase = phase.load(Ordering::SeqCst);
                        let result = try_get(&addr, &target);
                        outcomes
                            .lock()
                            .expect("outcomes")
                            .push(Outcome { phase, result });
                        // Leave the loaded machine some room for the workers starting meanwhile.
                        std::thread::sleep(Duration::from_millis(2));
                    }
                })
            })
            .collect();
        Self {
            stop,
            phase,
            outcomes,
            threads,
        }
    }

    /// Requests started from now on belong to `phase`.
    pub fn set_phase(&self, phase: usize) {
        self.phase.store(phase, Ordering::SeqCst);
    }

    /// The outcomes so far.
    pub fn outcomes(&self) -> Vec<Outcome> {
        self.outcomes.lock().expect("outcomes").clone()
    }

    /// Waits until some outcome satisfies `probe` (at most [`TIMEOUT`]).
    pub fn wait_for(&self, what: &str, probe: impl Fn(&Outcome) -> bool) {
        wait_for(what, || self.outcomes().iter().any(&probe).then_some(()));
    }

    /// Waits until `n` more requests than now have finished in the current phase or later.
    pub fn wait_more(&self, n: usize) {
        let phase = self.phase.load(Ordering::SeqCst);
        let count = || self.outcomes().iter().filter(|o| o.phase >= phase).count();
        let want = count() + n;
        wait_for(&format!("{n} more requests"), || {
            (count() >= want).then_some(())
        });
    }

    /// Stops the threads, waits for them, and returns every outcome.
    pub fn stop(self) -> Vec<Outcome> {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            t.join().expect("client thread");
        }
        let outcomes = self.outcomes.lock().expect("outcomes").clone();
        outcomes
    }
}

/// The failed outcomes, for assertion messages.
pub fn failures(outcomes: &[Outcome]) -> Vec<&Outcome> {
    outcomes.iter().filter(|o| !o.ok()).collect()
}
