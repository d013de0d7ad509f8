//! gatehouse-bench: a load generator that speaks FastCGI, SCGI and HTTP/1.1 to an application
//! server directly, so a FastCGI or SCGI server can be measured without a web server in front.
//!
//! ```text
//!  args (clap) ──► Plan ──► Templates: every request encoded once (FastCGI: per request id)
//!                    │
//!                    ▼  engine: N OS threads, one current-thread tokio runtime each
//!          ┌──── thread ────────────────────────────────────────────┐
//!          │ conn task × (connections / N)                           │
//!          │   Schedule (closed loop, or open loop at --rate)        │
//!          │   OutQueue ──write_vectored──► socket ──► Reader         │
//!          │   (shared Bytes segments)        (fastcgi records /     │
//!          │                                   scgi / http framing)  │
//!          │   Done ──judge (2xx, --expect-body)──► Recorder (HDR)    │
//!          └────────────────────────────────────────────────────────┘
//!                    │ merge
//!                    ▼
//!                 report: text or JSON; exit 1 on any error
//! ```
//!
//! - [`args`], [`values`]: the command line and the validated [`args::Plan`].
//! - [`request`], [`fastcgi`], [`scgi`], [`http`], [`cgi`], [`wire`]: encoding requests and
//!   reading responses. FastCGI records and name-value pairs come from `gatehouse_fastcgi`,
//!   the SCGI netstring from `gatehouse_scgi`; the HTTP/1.1 reader is a minimal hand-written
//!   one (status line, framing headers, chunked bodies).
//! - [`schedule`], [`conn`], [`out`], [`engine`], [`idle`]: when requests go out, the connection
//!   loops, the write queue, the threads.
//! - [`outcome`], [`stats`], [`report`]: judging responses, counting, printing.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod args;
pub mod cgi;
pub mod conn;
pub mod engine;
pub mod fastcgi;
pub mod http;
pub mod idle;
pub mod out;
pub mod outcome;
pub mod report;
pub mod request;
pub mod scgi;
pub mod schedule;
pub mod stats;
pub mod values;
pub mod wire;

use std::process::ExitCode;

/// Runs the command line `args` (without the program name handling: clap does it) and prints
/// the report. Exit status: 0 = no errors, 1 = errors (or nothing answered), 2 = usage.
pub fn main_with(cli: args::Cli) -> ExitCode {
    let plan = match cli.into_plan() {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("gatehouse-bench: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(rate) = plan.rate {
        // Each request id gets a request every `connections * multiplex / rate` seconds.
        let gap = plan.connections as f64 * plan.multiplex as f64 / rate;
        if gap < 0.002 {
            eprintln!(
                "gatehouse-bench: warning: at --rate {rate} each request id is due every {:.0} us, \
                 finer than the runtime's 1 ms timer: latencies may include up to 1 ms of client \
                 scheduling; use more connections (-c) or --multiplex",
                gap * 1e6
            );
        }
    }
    let (recorder, elapsed, cpu, wall, held) = match plan.idle_hold {
        Some(hold) => {
            let cpu0 = engine::process_cpu_time();
            let t0 = std::time::Instant::now();
            let h = idle::run(&plan, hold);
            let cpu = engine::process_cpu_time().saturating_sub(cpu0);
            (h.recorder, h.setup, cpu, t0.elapsed(), Some(h.held))
        }
        None => {
            let o = engine::run(&plan);
            (o.recorder, o.elapsed, o.cpu, o.wall, None)
        }
    };
    let report = report::Report {
        plan: &plan,
        recorder: &recorder,
        summary: recorder.summary(elapsed),
        cpu,
        wall,
        held,
    };
    if plan.json {
        println!("{}", report.json());
    } else {
        print!("{}", report.text());
    }
    if let Some(line) = report.error_line() {
        eprintln!("gatehouse-bench: {line}");
        return ExitCode::from(1);
    }
    if report.summary.requests == 0 {
        eprintln!("gatehouse-bench: ERROR: no request was answered");
        return ExitCode::from(1);
    }
    if report.saturated() {
        eprintln!(
            "gatehouse-bench: warning: the client was saturated (busy {:.0}%)",
            report.busy() * 100.0
        );
    }
    ExitCode::SUCCESS
}
