//! The report: a text block for people and one JSON object for scripts, from the same
//! [`Report`]. A run with errors says so in capitals; a client that was busy most of its
//! threads' time warns that it may have been the bottleneck.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::args::{Addr, Plan, Protocol, Stop};
use crate::outcome::ErrorKind;
use crate::stats::{Recorder, Summary};

/// Above this share of its threads' time the client counts as saturated.
pub const SATURATED: f64 = 0.9;

/// Everything a report shows.
#[derive(Debug)]
pub struct Report<'a> {
    /// The run.
    pub plan: &'a Plan,
    /// The merged counters.
    pub recorder: &'a Recorder,
    /// Figures of the measured period.
    pub summary: Summary,
    /// Client CPU time, whole run.
    pub cpu: Duration,
    /// Client wall time, whole run.
    pub wall: Duration,
    /// Idle mode: connections held.
    pub held: Option<u64>,
}

impl Report<'_> {
    /// Share of its threads' wall time the client spent on a CPU.
    pub fn busy(&self) -> f64 {
        let capacity = self.wall.as_secs_f64() * self.plan.threads as f64;
        if capacity > 0.0 {
            self.cpu.as_secs_f64() / capacity
        } else {
            0.0
        }
    }

    /// Whether the client may have been the bottleneck.
    pub fn saturated(&self) -> bool {
        self.held.is_none() && self.busy() >= SATURATED
    }

    /// Client CPU per request (all requests of the run, warm-up included, are not counted
    /// separately: this is the measured requests' share, an upper bound).
    fn cpu_per_request_us(&self) -> f64 {
        let n = self.summary.requests + self.summary.errors;
        if n == 0 {
            return 0.0;
        }
        let measured = self.summary.elapsed.as_secs_f64() / self.wall.as_secs_f64().max(1e-9);
        self.cpu.as_secs_f64() * measured.min(1.0) * 1e6 / n as f64
    }

    /// The error line, when there were errors.
    pub fn error_line(&self) -> Option<String> {
        let s = &self.summary;
        if s.errors == 0 {
            return None;
        }
        let mut line = format!(
            "ERRORS: {} of {} requests failed:",
            s.errors,
            s.requests + s.errors
        );
        for kind in ErrorKind::ALL {
            let n = self.recorder.errors[kind.index()];
            if n > 0 {
                let _ = write!(line, " {kind} {n}");
            }
        }
        if !self.recorder.statuses.is_empty() {
            let statuses: Vec<String> = self
                .recorder
                .statuses
                .iter()
                .map(|(s, n)| format!("{s} x{n}"))
                .collect();
            let _ = write!(line, " ({})", statuses.join(", "));
        }
        Some(line)
    }

    /// The text report.
    pub fn text(&self) -> String {
        let (p, s, l) = (self.plan, &self.summary, &self.summary.latency);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "gatehouse-bench  {} {}  {} {}",
            protocol(p),
            target(p),
            p.method,
            p.path
        );
        let _ = writeln!(out, "  {}", shape(p));
        if let Some(held) = self.held {
            let _ = writeln!(
                out,
                "  held          {held} idle connections (setup {:.2}s)",
                s.elapsed.as_secs_f64()
            );
        }
        let _ = writeln!(
            out,
            "  requests      {} in {:.2}s = {:.1} req/s",
            s.requests,
            s.elapsed.as_secs_f64(),
            s.requests_per_sec
        );
        let _ = writeln!(
            out,
            "  transfer      in {}/s, out {}/s",
            bytes(s.bytes_in_per_sec),
            bytes(s.bytes_out_per_sec)
        );
        let _ = writeln!(
            out,
            "  latency       min {}  p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  (mean {})",
            dur(l.min),
            dur(l.p50),
            dur(l.p90),
            dur(l.p99),
            dur(l.p999),
            dur(l.max),
            dur(l.mean)
        );
        let _ = writeln!(
            out,
            "  client CPU    {:.2}s over {:.2}s on {} threads: busy {:.0}%, {:.1} us per request",
            self.cpu.as_secs_f64(),
            self.wall.as_secs_f64(),
            p.threads,
            self.busy() * 100.0,
            self.cpu_per_request_us()
        );
        if self.saturated() {
            let _ = writeln!(out, "  WARNING: the client was busy {:.0}% of its threads' time: it may be the bottleneck, these figures are a lower bound", self.busy() * 100.0);
        }
        if self.recorder.unfinished > 0 {
            let _ = writeln!(
                out,
                "  WARNING: {} requests were still unanswered at the end (the oldest had waited {}): \
                 the server may not be serving some connections",
                self.recorder.unfinished,
                dur(self.recorder.oldest_unfinished)
            );
        }
        match self.error_line() {
            None => out.push_str("  errors        none\n"),
            Some(line) => {
                let _ = writeln!(out, "  {line}");
                for sample in &self.recorder.samples {
                    let _ = writeln!(out, "    e.g. {sample}");
                }
            }
        }
        out
    }

    /// The JSON report.
    pub fn json(&self) -> Value {
        let (p, s, l) = (self.plan, &self.summary, &self.summary.latency);
        let us = |d: Duration| d.as_nanos() as f64 / 1000.0;
        let by_kind: Map<String, Value> = ErrorKind::ALL
            .iter()
            .map(|k| (k.name().to_owned(), json!(self.recorder.errors[k.index()])))
            .collect();
        let statuses: Map<String, Value> = self
            .recorder
            .statuses
            .iter()
            .map(|(s, n)| (s.to_string(), json!(n)))
            .collect();
        let mut v = json!({
            "protocol": protocol(p),
            "target": target(p),
            "method": p.method,
            "path": p.path,
            "body_bytes": p.body.len(),
            "connections": p.connections,
            "threads": p.threads,
            "multiplex": p.multiplex,
            "keep_conn": p.keep_conn,
            "rate": p.rate,
            "warmup_sec": p.warmup.as_secs_f64(),
            "requests": s.requests,
            "errors": s.errors,
            "errors_by_kind": by_kind,
            "error_statuses": statuses,
            "error_samples": self.recorder.samples,
            "duration_sec": s.elapsed.as_secs_f64(),
            "requests_per_sec": s.requests_per_sec,
            "bytes_in_per_sec": s.bytes_in_per_sec,
            "bytes_out_per_sec": s.bytes_out_per_sec,
            "latency_us": {
                "min": us(l.min), "mean": us(l.mean), "p50": us(l.p50), "p90": us(l.p90),
                "p99": us(l.p99), "p99_9": us(l.p999), "max": us(l.max),
            },
            "client_cpu_sec": self.cpu.as_secs_f64(),
            "client_wall_sec": self.wall.as_secs_f64(),
            "client_busy": self.busy(),
            "client_cpu_per_request_us": self.cpu_per_request_us(),
            "client_saturated": self.saturated(),
            "unfinished": self.recorder.unfinished,
            "oldest_unfinished_ms": self.recorder.oldest_unfinished.as_secs_f64() * 1000.0,
        });
        if let (Some(held), Some(obj)) = (self.held, v.as_object_mut()) {
            obj.insert("held_connections".into(), json!(held));
        }
        v
    }
}

fn protocol(p: &Plan) -> &'static str {
    match p.protocol {
        Protocol::Fastcgi => "fastcgi",
        Protocol::Scgi => "scgi",
        Protocol::Http => "http",
    }
}

fn target(p: &Plan) -> String {
    match &p.addr {
        Addr::Tcp(a) => a.to_string(),
        Addr::Unix(path) => format!("unix:{}", path.display()),
    }
}

fn shape(p: &Plan) -> String {
    let mut s = format!("{} connections, {} threads", p.connections, p.threads);
    if p.protocol == Protocol::Fastcgi {
        s += if p.keep_conn {
            ", keep-conn"
        } else {
            ", no keep-conn"
        };
        let _ = write!(s, ", multiplex {}", p.multiplex);
    }
    if let Some(hold) = p.idle_hold {
        let _ = write!(s, ", one request each, then held idle for {hold:?}");
        return s;
    }
    match p.rate {
        Some(r) => {
            let _ = write!(s, ", open loop at {r} req/s");
        }
        None => s += ", closed loop",
    }
    match p.stop {
        Stop::Duration(d) => {
            let _ = write!(s, ", {d:?}");
        }
        Stop::Requests(n) => {
            let _ = write!(s, ", {n} requests");
        }
    }
    if !p.warmup.is_zero() {
        let _ = write!(s, " after {:?} warm-up", p.warmup);
    }
    if !p.body.is_empty() {
        let _ = write!(s, ", body {} bytes", p.body.len());
    }
    s
}

/// `1.23ms`, `456us`, `2.50s`.
pub fn dur(d: Duration) -> String {
    let ns = d.as_nanos() as f64;
    if ns >= 1e9 {
        format!("{:.2}s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{:.2}ms", ns / 1e6)
    } else {
        format!("{:.0}us", ns / 1e3)
    }
}

/// `1.5 MiB`, `320 KiB`, `12 B`.
pub fn bytes(n: f64) -> String {
    if n >= (1u64 << 30) as f64 {
        format!("{:.2} GiB", n / (1u64 << 30) as f64)
    } else if n >= (1u64 << 20) as f64 {
        format!("{:.2} MiB", n / (1u64 << 20) as f64)
    } else if n >= 1024.0 {
        format!("{:.1} KiB", n / 1024.0)
    } else {
        format!("{n:.0} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::Failure;
    use crate::request::tests::plan;

    #[test]
    fn text_and_json_agree() {
        let p = plan(&["--fastcgi=127.0.0.1:9000", "-c4", "-t1"]);
        let mut rec = Recorder::new();
        for i in 1..=100 {
            rec.success(Duration::from_micros(i));
        }
        let mut f = Failure::new(ErrorKind::Status, "status 503");
        f.status = Some(503);
        rec.failure(&f);
        rec.bytes_in = 4096;
        let summary = rec.summary(Duration::from_secs(2));
        let report = Report {
            plan: &p,
            recorder: &rec,
            summary,
            cpu: Duration::from_millis(950),
            wall: Duration::from_secs(1),
            held: None,
        };
        let text = report.text();
        assert!(text.contains("100 in 2.00s = 50.0 req/s"), "{text}");
        assert!(
            text.contains("ERRORS: 1 of 101 requests failed: status 1 (503 x1)"),
            "{text}"
        );
        assert!(text.contains("WARNING: the client was busy 95%"), "{text}");
        assert!(text.contains("p50 50us"), "{text}");
        let v = report.json();
        assert_eq!(v["requests_per_sec"], json!(50.0));
        assert_eq!(v["errors"], json!(1));
        assert_eq!(v["errors_by_kind"]["status"], json!(1));
        assert_eq!(v["error_statuses"]["503"], json!(1));
        assert_eq!(v["client_saturated"], json!(true));
        assert_eq!(v["bytes_in_per_sec"], json!(2048.0));
        let p99 = v["latency_us"]["p99"].as_f64().unwrap();
        assert!((98.9..=99.1).contains(&p99), "{p99}");
    }

    #[test]
    fn units() {
        assert_eq!(dur(Duration::from_micros(456)), "456us");
        assert_eq!(dur(Duration::from_micros(1234)), "1.23ms");
        assert_eq!(dur(Duration::from_millis(2500)), "2.50s");
        assert_eq!(bytes(12.0), "12 B");
        assert_eq!(bytes(1536.0), "1.5 KiB");
        assert_eq!(bytes(10.0 * 1048576.0), "10.00 MiB");
    }
}
