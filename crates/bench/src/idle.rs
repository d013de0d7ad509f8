//! Idle mode (`--idle-hold`): open `-c` kept-alive connections, send one request on each (so
//! the server has set the connection up completely), then hold them all open and idle for a
//! while, for measuring the server's memory per idle connection. Connects go out at most
//! [`CONNECTS_IN_FLIGHT`] at a time per thread, so the server's listen backlog is not flooded.

use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::sync::{watch, Semaphore};

use crate::args::Plan;
use crate::conn::{connect, Stream};
use crate::out::OutQueue;
use crate::outcome::{ErrorKind, Failure};
use crate::stats::Recorder;
use crate::wire::{Reader, Templates};

/// Connection attempts in progress at once, per client thread.
pub const CONNECTS_IN_FLIGHT: usize = 64;

/// What idle mode produced.
#[derive(Debug)]
pub struct Held {
    /// Latencies of the first request on each connection, and errors.
    pub recorder: Recorder,
    /// Connections that answered their request and were held.
    pub held: u64,
    /// Time to set them all up.
    pub setup: Duration,
}

/// Runs idle mode for `plan`, holding the connections for `hold`.
pub fn run(plan: &Plan, hold: Duration) -> Held {
    let templates = Arc::new(Templates::new(plan));
    let ready = Arc::new(AtomicU64::new(0));
    let held = Arc::new(AtomicU64::new(0));
    let (release_tx, release_rx) = watch::channel(false);
    let start = Instant::now();
    let handles: Vec<_> = (0..plan.threads)
        .map(|t| {
            let n = (t..plan.connections).step_by(plan.threads).count();
            let (plan, templates) = (plan.clone(), templates.clone());
            let (ready, held, release) = (ready.clone(), held.clone(), release_rx.clone());
            std::thread::spawn(move || thread(plan, templates, n, ready, held, release))
        })
        .collect();
    while ready.load(Ordering::Relaxed) < plan.connections as u64 {
        std::thread::sleep(Duration::from_millis(20));
        if handles.iter().all(|h| h.is_finished()) {
            break;
        }
    }
    let setup = start.elapsed();
    let n = held.load(Ordering::Relaxed);
    eprintln!("gatehouse-bench: holding {n} idle connections for {hold:?}");
    std::thread::sleep(hold);
    let _ = release_tx.send(true);
    let mut recorder = Recorder::new();
    for h in handles {
        if let Ok(rec) = h.join() {
            recorder.merge(&rec);
        }
    }
    Held {
        recorder,
        held: n,
        setup,
    }
}

fn thread(
    plan: Plan,
    templates: Arc<Templates>,
    n: usize,
    ready: Arc<AtomicU64>,
    held: Arc<AtomicU64>,
    release: watch::Receiver<bool>,
) -> Recorder {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return Recorder::new();
    };
    let local = tokio::task::LocalSet::new();
    let recorder = Rc::new(std::cell::RefCell::new(Recorder::new()));
    let gate = Rc::new(Semaphore::new(CONNECTS_IN_FLIGHT));
    let plan = Rc::new(plan);
    local.block_on(&rt, async {
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let (plan, templates, gate) = (plan.clone(), templates.clone(), gate.clone());
                let (ready, held, recorder) = (ready.clone(), held.clone(), recorder.clone());
                let mut release = release.clone();
                tokio::task::spawn_local(async move {
                    let permit = gate.acquire().await;
                    let t0 = Instant::now();
                    let result = one(&plan, &templates).await;
                    drop(permit);
                    match &result {
                        Ok(_) => {
                            recorder.borrow_mut().success(t0.elapsed());
                            held.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(f) => recorder.borrow_mut().failure(f),
                    }
                    ready.fetch_add(1, Ordering::Relaxed);
                    // Hold the connection (dropped at the end of this task) until released.
                    let _stream = result;
                    let _ = release.wait_for(|r| *r).await;
                })
            })
            .collect();
        for t in tasks {
            let _ = t.await;
        }
    });
    let rec = recorder.borrow().clone();
    rec
}

/// Connects, sends one request, reads its response; returns the open connection.
async fn one(plan: &Plan, templates: &Templates) -> Result<Stream, Failure> {
    let mut stream = connect(&plan.addr).await?;
    match &mut stream {
        Stream::Tcp(s) => exchange(plan, templates, s.split()).await?,
        Stream::Unix(s) => exchange(plan, templates, s.split()).await?,
    }
    Ok(stream)
}

async fn exchange<R, W>(
    plan: &Plan,
    templates: &Templates,
    (mut rd, mut wr): (R, W),
) -> Result<(), Failure>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let work = async {
        let mut out = OutQueue::default();
        out.push(templates.request(1));
        while !out.is_empty() {
            out.write(&mut wr)
                .await
                .map_err(|e| Failure::new(ErrorKind::Write, e.to_string()))?;
        }
        let mut reader = Reader::new(plan);
        reader.start(1);
        let mut buf = BytesMut::with_capacity(4096);
        loop {
            let n = rd
                .read_buf(&mut buf)
                .await
                .map_err(|e| Failure::new(ErrorKind::Read, e.to_string()))?;
            if let Some(done) = reader.poll(&mut buf, n == 0)? {
                return done.result.map(|_| ());
            }
            if n == 0 {
                return Err(Failure::new(
                    ErrorKind::Closed,
                    "closed before the response ended",
                ));
            }
        }
    };
    tokio::time::timeout(plan.timeout, work)
        .await
        .unwrap_or_else(|_| Err(Failure::new(ErrorKind::Timeout, "no answer")))
}
