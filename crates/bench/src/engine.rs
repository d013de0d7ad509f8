//! Runs a plan: one OS thread per client thread, each with a single-threaded tokio runtime
//! and its share of the connections (so a thread's counters need no locks), a progress line
//! on stderr from the main thread, and the merged result with the client's own CPU time.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::args::Plan;
use crate::conn::{self, Ctx};
use crate::schedule::Clock;
use crate::stats::Recorder;
use crate::wire::Templates;

/// A thread's progress counters (on their own cache line).
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct Progress {
    done: AtomicU64,
    errors: AtomicU64,
}

impl Progress {
    /// One measured request ended.
    pub fn done(&self) {
        self.done.fetch_add(1, Ordering::Relaxed);
    }

    /// One measured request failed.
    pub fn error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }
}

/// What a run produced.
#[derive(Debug)]
pub struct Outcome {
    /// Every thread's counters, merged.
    pub recorder: Recorder,
    /// The measured period.
    pub elapsed: Duration,
    /// CPU time the client used (user + system), all threads, warm-up included.
    pub cpu: Duration,
    /// Wall time of the whole run, warm-up included.
    pub wall: Duration,
}

/// Runs `plan` to its end.
pub fn run(plan: &Plan) -> Outcome {
    let templates = Arc::new(Templates::new(plan));
    let cpu0 = process_cpu_time();
    let start = Instant::now();
    let clock = Arc::new(Clock::new(plan, start));
    let progress: Vec<Arc<Progress>> = (0..plan.threads).map(|_| Arc::default()).collect();
    let handles: Vec<_> = (0..plan.threads)
        .map(|t| {
            let conns: Vec<usize> = (t..plan.connections).step_by(plan.threads).collect();
            let (plan, clock, templates) = (plan.clone(), clock.clone(), templates.clone());
            let progress = progress[t].clone();
            std::thread::Builder::new()
                .name(format!("bench-{t}"))
                .spawn(move || client_thread(plan, clock, templates, progress, conns))
        })
        .collect();
    watch_progress(plan, &clock, &progress, || {
        handles
            .iter()
            .all(|h| h.as_ref().map_or(true, |h| h.is_finished()))
    });
    let mut recorder = Recorder::new();
    let mut last = None;
    for handle in handles {
        match handle.map(|h| h.join()) {
            Ok(Ok((rec, l))) => {
                recorder.merge(&rec);
                last = last.max(l);
            }
            Ok(Err(_)) | Err(_) => eprintln!("gatehouse-bench: a client thread failed"),
        }
    }
    let elapsed = match clock.end {
        Some(end) => end.saturating_duration_since(clock.measure_from),
        None => last.map_or(Duration::ZERO, |l: Instant| {
            l.saturating_duration_since(clock.measure_from)
        }),
    };
    Outcome {
        recorder,
        elapsed,
        cpu: process_cpu_time().saturating_sub(cpu0),
        wall: start.elapsed(),
    }
}

type ThreadResult = (Recorder, Option<Instant>);

fn client_thread(
    plan: Plan,
    clock: Arc<Clock>,
    templates: Arc<Templates>,
    progress: Arc<Progress>,
    conns: Vec<usize>,
) -> ThreadResult {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        eprintln!("gatehouse-bench: cannot start a runtime");
        return (Recorder::new(), None);
    };
    let measure_from = clock.measure_from;
    let ctx = Rc::new(Ctx {
        plan,
        clock,
        templates,
        recorder: RefCell::new(Recorder::new()),
        progress,
        last_completion: RefCell::new(None),
    });
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async {
        let tasks: Vec<_> = conns
            .into_iter()
            .map(|i| tokio::task::spawn_local(conn::run(ctx.clone(), i)))
            .collect();
        // Bytes moved during the warm-up do not count.
        let zero = ctx.clone();
        let reset = tokio::task::spawn_local(async move {
            if zero.plan.warmup.is_zero() {
                return;
            }
            tokio::time::sleep_until(measure_from.into()).await;
            let mut rec = zero.recorder.borrow_mut();
            (rec.bytes_in, rec.bytes_out) = (0, 0);
        });
        for t in tasks {
            let _ = t.await;
        }
        reset.abort();
    });
    let rec = ctx.recorder.borrow().clone();
    let last = *ctx.last_completion.borrow();
    (rec, last)
}

/// Prints a progress line on stderr every second until `finished()`: in place on a terminal,
/// one line each time otherwise.
fn watch_progress(
    plan: &Plan,
    clock: &Clock,
    progress: &[Arc<Progress>],
    finished: impl Fn() -> bool,
) {
    use std::io::IsTerminal;
    let tty = std::io::stderr().is_terminal();
    let mut last_print = Instant::now();
    let mut last_done = 0;
    while !finished() {
        std::thread::sleep(Duration::from_millis(50));
        let now = Instant::now();
        if plan.quiet || now.duration_since(last_print) < Duration::from_secs(1) {
            continue;
        }
        let done: u64 = progress
            .iter()
            .map(|p| p.done.load(Ordering::Relaxed))
            .sum();
        let errors: u64 = progress
            .iter()
            .map(|p| p.errors.load(Ordering::Relaxed))
            .sum();
        let rate = (done - last_done) as f64 / now.duration_since(last_print).as_secs_f64();
        let phase = if now < clock.measure_from {
            "warm-up"
        } else {
            "measuring"
        };
        let t = now.duration_since(clock.start).as_secs_f64();
        let line =
            format!("[{t:6.1}s] {phase}: {done} requests, {rate:.0} req/s now, {errors} errors");
        if tty {
            eprint!("\r{line}\x1b[K");
        } else {
            eprintln!("{line}");
        }
        (last_print, last_done) = (now, done);
    }
    if tty && !plan.quiet {
        eprint!("\r\x1b[K");
    }
}

/// User + system CPU time of this process, from `/proc/self/stat` (Linux; zero elsewhere).
pub fn process_cpu_time() -> Duration {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return Duration::ZERO;
    };
    // Fields after the command name (which may hold spaces) start at field 3 (state).
    let Some((_, rest)) = stat.rsplit_once(") ") else {
        return Duration::ZERO;
    };
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15, in USER_HZ (100 on Linux) ticks.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}
