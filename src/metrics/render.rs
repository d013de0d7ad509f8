//! A [`Snapshot`] as the endpoints show it: Prometheus text (with `prometheus-client`'s
//! encoder), the php-fpm-style status page as text or JSON.

use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::table::{self, CGI_KILL_REASONS, CLASSES, PROTOCOLS};
use super::{Snapshot, RESTART_REASONS};

/// Content type of [`prometheus`]'s output.
pub(crate) use prometheus_client::encoding::prometheus_text::CONTENT_TYPE as PROMETHEUS_CONTENT_TYPE;

/// The Prometheus text exposition (format 0.0.4) of `snap`.
pub(crate) fn prometheus(snap: Snapshot) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Figures(snap)));
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry);
    out
}

#[derive(Debug)]
struct Figures(Snapshot);

/// Listener protocols: FastCGI, SCGI, HTTP and uwsgi (CGI requests come without a connection).
const LISTENER_PROTOCOLS: usize = 4;

impl Collector for Figures {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &self.0;
        let t = &s.totals;
        {
            let mut m = enc.encode_descriptor(
                "gatehouse_requests",
                "Requests served, by protocol and status class (499: client went away first)",
                None,
                MetricType::Counter,
            )?;
            for (p, protocol) in PROTOCOLS.iter().enumerate() {
                for (c, class) in CLASSES.iter().enumerate() {
                    let labels = [("protocol", *protocol), ("status", *class)];
                    m.encode_family(&labels)?
                        .encode_counter::<NoLabelSet, _, u64>(&t.requests(p, c), None)?;
                }
            }
        }
        {
            let mut m = enc.encode_descriptor(
                "gatehouse_request_duration_seconds",
                "Time from a request's head to the end of its response",
                None,
                MetricType::Histogram,
            )?;
            for (p, protocol) in PROTOCOLS.iter().enumerate() {
                let (buckets, count, sum) = t.histogram(p);
                m.encode_family(&[("protocol", *protocol)])?
                    .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
            }
        }
        gauge(
            &mut enc,
            "gatehouse_requests_in_flight",
            "Requests being served now",
            t.gauge(table::IN_FLIGHT),
        )?;
        {
            let mut m = enc.encode_descriptor(
                "gatehouse_connections_open",
                "Connections open now, by listener protocol",
                None,
                MetricType::Gauge,
            )?;
            for (p, protocol) in PROTOCOLS.iter().enumerate().take(LISTENER_PROTOCOLS) {
                m.encode_family(&[("protocol", *protocol)])?
                    .encode_gauge(&t.gauge(table::CONN_OPEN + p))?;
            }
        }
        {
            let mut m = enc.encode_descriptor(
                "gatehouse_connections_accepted",
                "Connections accepted, by listener protocol",
                None,
                MetricType::Counter,
            )?;
            for (p, protocol) in PROTOCOLS.iter().enumerate().take(LISTENER_PROTOCOLS) {
                m.encode_family(&[("protocol", *protocol)])?
                    .encode_counter::<NoLabelSet, _, u64>(&t.get(table::ACCEPTED + p), None)?;
            }
        }
        gauge(
            &mut enc,
            "gatehouse_wsgi_threads_busy",
            "WSGI threads running a request now",
            t.gauge(table::WSGI_BUSY),
        )?;
        gauge(
            &mut enc,
            "gatehouse_wsgi_threads",
            "WSGI threads in all",
            t.gauge(table::WSGI_THREADS),
        )?;
        gauge(
            &mut enc,
            "gatehouse_wsgi_queue_length",
            "WSGI requests waiting for a thread now",
            t.gauge(table::WSGI_QUEUE),
        )?;
        counter(
            &mut enc,
            "gatehouse_wsgi_rejected",
            "WSGI requests answered 503 because every thread was busy and the queue full",
            t.get(table::WSGI_REJECTED),
        )?;
        gauge(
            &mut enc,
            "gatehouse_cgi_running",
            "CGI scripts running now",
            t.gauge(table::CGI_RUNNING),
        )?;
        gauge(
            &mut enc,
            "gatehouse_cgi_queue_length",
            "CGI requests waiting for a free script slot now",
            t.gauge(table::CGI_QUEUE),
        )?;
        {
            let mut m = enc.encode_descriptor(
                "gatehouse_cgi_killed",
                "CGI scripts killed, by reason",
                None,
                MetricType::Counter,
            )?;
            for (i, reason) in CGI_KILL_REASONS.iter().enumerate() {
                m.encode_family(&[("reason", *reason)])?
                    .encode_counter::<NoLabelSet, _, u64>(&t.get(table::CGI_KILLED + i), None)?;
            }
        }
        counter(
            &mut enc,
            "gatehouse_cgi_started",
            "CGI scripts started",
            t.get(table::CGI_STARTED),
        )?;
        counter(
            &mut enc,
            "gatehouse_cgi_max_children_reached",
            "CGI requests that found every --cgi-max slot taken and waited",
            t.get(table::CGI_MAX_CHILDREN_REACHED),
        )?;
        gauge(
            &mut enc,
            "gatehouse_wsgi_stuck_threads",
            "WSGI threads stuck in native code past --request-timeout (replaced)",
            t.gauge(table::WSGI_STUCK),
        )?;
        counter(
            &mut enc,
            "gatehouse_request_timeouts",
            "Requests stopped by --request-timeout (WSGI and CGI)",
            t.get(table::REQUEST_TIMEOUTS),
        )?;
        counter(
            &mut enc,
            "gatehouse_slow_requests",
            "Requests that ran longer than --slow-log-timeout",
            t.get(table::SLOW_REQUESTS),
        )?;
        counter(
            &mut enc,
            "gatehouse_access_log_dropped_lines",
            "Access log lines dropped because the disk was slower than the requests",
            t.get(table::ACCESS_LOG_DROPPED),
        )?;
        {
            let mut m = enc.encode_descriptor(
                "gatehouse_worker_restarts",
                "Worker processes replaced by the master, by reason",
                None,
                MetricType::Counter,
            )?;
            for (i, reason) in RESTART_REASONS.iter().enumerate() {
                m.encode_family(&[("reason", *reason)])?
                    .encode_counter::<NoLabelSet, _, u64>(&s.restarts[i], None)?;
            }
        }
        gauge(
            &mut enc,
            "gatehouse_workers",
            "Processes serving requests (the workers of a master, or 1)",
            s.workers.len() as i64,
        )?;
        let cpu = s.process.cpu_us as f64 / 1e6;
        let mut m = enc.encode_descriptor(
            "process_cpu_seconds",
            "User and system CPU time, over the master and its workers (past ones included)",
            None,
            MetricType::Counter,
        )?;
        m.encode_counter::<NoLabelSet, _, u64>(&cpu, None)?;
        gauge(
            &mut enc,
            "process_resident_memory_bytes",
            "Resident memory, over the master and its workers",
            s.process.resident_bytes as i64,
        )?;
        gauge(
            &mut enc,
            "process_open_fds",
            "Open file descriptors, over the master and its workers",
            s.process.open_fds as i64,
        )?;
        let mut m = enc.encode_descriptor(
            "process_start_time_seconds",
            "When the daemon (the master) started, in seconds since the epoch",
            None,
            MetricType::Gauge,
        )?;
        m.encode_gauge(&unix_secs(s.started))?;
        Ok(())
    }
}

fn gauge(enc: &mut DescriptorEncoder, name: &str, help: &str, v: i64) -> std::fmt::Result {
    enc.encode_descriptor(name, help, None, MetricType::Gauge)?
        .encode_gauge(&v)
}

fn counter(enc: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> std::fmt::Result {
    enc.encode_descriptor(name, help, None, MetricType::Counter)?
        .encode_counter::<NoLabelSet, _, u64>(&v, None)
}

fn unix_secs(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// RFC 3339 in UTC, to the second.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's days-to-civil.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The status page's figures as JSON (`full`: with the requests running now).
pub(crate) fn status_json(s: &Snapshot, mode: &str, full: bool) -> serde_json::Value {
    let t = &s.totals;
    let busy = t.gauge(table::WSGI_BUSY);
    let threads = t.gauge(table::WSGI_THREADS);
    let now_us = super::unix_us(s.now);
    let workers: Vec<_> = s
        .workers
        .iter()
        .map(|w| {
            serde_json::json!({
                "worker": w.view.slot,
                "pid": w.view.pid,
                "generation": w.view.generation,
                "state": w.view.state,
                "requests": w.requests,
                "requests_in_flight": w.in_flight,
                "start_time": w.started_unix_us / 1_000_000,
            })
        })
        .collect();
    let mut v = serde_json::json!({
        "pool": "gatehouse",
        "process_manager": mode,
        "start_time": unix_secs(s.started) as u64,
        "start_since": s.now.duration_since(s.started).map_or(0, |d| d.as_secs()),
        "accepted_conn": (0..LISTENER_PROTOCOLS).map(|p| t.get(table::ACCEPTED + p)).sum::<u64>(),
        "requests": t.all_requests(),
        "requests_in_flight": t.gauge(table::IN_FLIGHT),
        "active_threads": busy,
        "idle_threads": (threads - busy).max(0),
        "total_threads": threads,
        "queue_length": t.gauge(table::WSGI_QUEUE),
        "max_queue_length": t.get(table::WSGI_QUEUE_MAX),
        "max_children_reached": t.get(table::CGI_MAX_CHILDREN_REACHED) + t.get(table::WSGI_REJECTED),
        "wsgi_rejected": t.get(table::WSGI_REJECTED),
        "request_timeouts": t.get(table::REQUEST_TIMEOUTS),
        "slow_requests": t.get(table::SLOW_REQUESTS),
        "cgi_running": t.gauge(table::CGI_RUNNING),
        "cgi_queue_length": t.gauge(table::CGI_QUEUE),
        "worker_processes": s.workers.len(),
        "workers": workers,
    });
    if full {
        let running: Vec<_> = s
            .workers
            .iter()
            .flat_map(|w| {
                w.running.iter().map(move |r| {
                    serde_json::json!({
                        "worker": w.view.slot,
                        "pid": w.view.pid,
                        "request_id": r.id,
                        "method": r.method,
                        "uri": r.uri,
                        "running_for": now_us.saturating_sub(r.started_unix_us) as f64 / 1e6,
                    })
                })
            })
            .collect();
        v["running"] = serde_json::Value::Array(running);
    }
    v
}

/// The status page as php-fpm writes it: `key: value` lines, then one block per worker and,
/// with `full`, one per running request.
pub(crate) fn status_text(s: &Snapshot, mode: &str, full: bool) -> String {
    use std::fmt::Write;
    let v = status_json(s, mode, full);
    let mut out = String::new();
    let line = |out: &mut String, k: &str, val: &serde_json::Value| {
        let text = match val {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let _ = writeln!(out, "{:<22}{text}", format!("{}:", k.replace('_', " ")));
    };
    for key in [
        "pool",
        "process_manager",
        "start_time",
        "start_since",
        "accepted_conn",
        "requests",
        "requests_in_flight",
        "active_threads",
        "idle_threads",
        "total_threads",
        "queue_length",
        "max_queue_length",
        "max_children_reached",
        "slow_requests",
        "wsgi_rejected",
        "request_timeouts",
        "cgi_running",
        "cgi_queue_length",
        "worker_processes",
    ] {
        if key == "start_time" {
            let _ = writeln!(out, "{:<22}{}", "start time:", rfc3339(s.started));
            continue;
        }
        line(&mut out, key, &v[key]);
    }
    for w in v["workers"].as_array().into_iter().flatten() {
        out.push_str("\n************************\n");
        for key in [
            "worker",
            "pid",
            "generation",
            "state",
            "requests",
            "requests_in_flight",
        ] {
            line(&mut out, key, &w[key]);
        }
    }
    for r in v["running"].as_array().into_iter().flatten() {
        out.push_str("\n------------------------\n");
        for key in [
            "worker",
            "pid",
            "request_id",
            "method",
            "uri",
            "running_for",
        ] {
            line(&mut out, key, &r[key]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_796_693_551);
        assert_eq!(rfc3339(t), "2026-12-08T01:32:31Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00Z");
    }
}
