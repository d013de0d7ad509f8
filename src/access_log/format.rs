//! One access-log line from a request's record and outcome: nginx's `combined` format, or a
//! JSON object. Values are the peer's bytes, escaped so that no byte the client or the front
//! server sent can break a line or forge a field.
//!
//! - combined: nginx's escaping (`ngx_http_log_escape`): `"`, `\`, control bytes and bytes
//!   from 0x7f up are written `\xHH`; a missing value is `-`.
//! - JSON: strings through `serde_json` (which escapes `"`, `\` and control characters);
//!   bytes that are not UTF-8 are written as the text `\xHH`, so the line stays valid UTF-8.

use std::borrow::Cow;
use std::fmt::Write as _;

use gatehouse_channel_request::observe::{End, Outcome, RequestRecord};
use gatehouse_channel_request::Protocol;

use super::time::Utc;

/// The line formats of `--access-log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// nginx's and Apache's `combined`.
    #[default]
    Combined,
    /// One JSON object a line.
    Json,
}

/// What a line says beyond the record and the outcome.
pub(crate) struct Context {
    /// This worker's number (`--workers`), `None` in a single process.
    pub(crate) worker: Option<u16>,
}

/// Appends the line (with its `\n`) for one request to `out`.
pub(crate) fn write_line(
    format: Format,
    ctx: &Context,
    record: &RequestRecord,
    outcome: &Outcome,
    out: &mut String,
) {
    match format {
        Format::Combined => combined(record, outcome, out),
        Format::Json => json(ctx, record, outcome, out),
    }
    out.push('\n');
}

/// `record.started_at` as `$time_local`, formatted once per second per thread (a busy daemon
/// logs thousands of lines with the same second).
fn write_clf_cached(t: std::time::SystemTime, s: &mut String) {
    use std::cell::RefCell;
    thread_local! {
        static LAST: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(u64::MAX - 1, |d| d.as_secs());
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        if last.0 != secs {
            last.1.clear();
            Utc::from_system(t).write_clf(&mut last.1);
            last.0 = secs;
        }
        s.push_str(&last.1);
    });
}

/// `REMOTE - USER [TIME] "METHOD URI PROTOCOL" STATUS BYTES "REFERER" "USER-AGENT"`.
fn combined(record: &RequestRecord, outcome: &Outcome, s: &mut String) {
    field(s, Some(&record.remote_addr));
    s.push_str(" - ");
    field(s, record.remote_user.as_deref());
    s.push_str(" [");
    write_clf_cached(record.started_at, s);
    s.push_str("] \"");
    let parts = [&record.method, &record.uri, &record.server_protocol];
    let mut first = true;
    for part in parts.into_iter().filter(|p| !p.is_empty()) {
        if !first {
            s.push(' ');
        }
        escape_nginx(s, part);
        first = false;
    }
    if first {
        s.push('-');
    }
    let _ = write!(s, "\" {} {} \"", outcome.log_status(), outcome.bytes_sent);
    field(s, record.referer.as_deref());
    s.push_str("\" \"");
    field(s, record.user_agent.as_deref());
    s.push('"');
}

/// A value escaped, or `-` when it is missing or empty.
fn field(s: &mut String, value: Option<&[u8]>) {
    match value {
        Some(v) if !v.is_empty() => escape_nginx(s, v),
        _ => s.push('-'),
    }
}

/// nginx's access-log escaping: printable ASCII but `"` and `\` as is, every other byte `\xHH`.
fn escape_nginx(s: &mut String, bytes: &[u8]) {
    for &b in bytes {
        if (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\' {
            s.push(char::from(b));
        } else {
            let _ = write!(s, "\\x{b:02X}");
        }
    }
}

fn json(ctx: &Context, record: &RequestRecord, outcome: &Outcome, s: &mut String) {
    let mut time = String::with_capacity(24);
    Utc::from_system(record.started_at).write_rfc3339(&mut time);
    s.push('{');
    key_str(s, "time", &time);
    key_bytes(s, "remote_addr", Some(&record.remote_addr));
    key_bytes(s, "remote_user", record.remote_user.as_deref());
    key_str(s, "protocol", protocol_name(record.info.protocol));
    key_bytes(s, "method", Some(&record.method));
    key_bytes(s, "uri", Some(&record.uri));
    key_bytes(s, "server_protocol", Some(&record.server_protocol));
    key_num(s, "status", u64::from(outcome.log_status()));
    key_num(s, "bytes_sent", outcome.bytes_sent);
    key_num(s, "request_bytes", outcome.request_bytes);
    key_num(
        s,
        "duration_us",
        u64::try_from(outcome.duration.as_micros()).unwrap_or(u64::MAX),
    );
    key_num(s, "request_id", record.info.id);
    match &outcome.app {
        Some(app) => key_str(s, "app", app),
        None => key_null(s, "app"),
    }
    match ctx.worker {
        Some(w) => key_num(s, "worker", u64::from(w)),
        None => key_null(s, "worker"),
    }
    key_bytes(s, "host", record.host.as_deref());
    key_bytes(s, "referer", record.referer.as_deref());
    key_bytes(s, "user_agent", record.user_agent.as_deref());
    key_str(s, "end", end_name(outcome.end));
    s.pop(); // the last ','
    s.push('}');
}

fn protocol_name(p: Protocol) -> &'static str {
    match p {
        Protocol::FastCgi => "fastcgi",
        Protocol::Scgi => "scgi",
        Protocol::Cgi => "cgi",
        Protocol::Http => "http",
        Protocol::Uwsgi => "uwsgi",
    }
}

fn end_name(end: End) -> &'static str {
    match end {
        End::Finished => "finished",
        End::Aborted => "aborted",
        End::Cancelled => "cancelled",
    }
}

fn key_str(s: &mut String, key: &str, value: &str) {
    let _ = write!(s, "\"{key}\":");
    // A str always serialises (serde_json fails only on maps with non-string keys).
    s.push_str(&serde_json::to_string(value).unwrap_or_default());
    s.push(',');
}

fn key_bytes(s: &mut String, key: &str, value: Option<&[u8]>) {
    match value {
        Some(v) => key_str(s, key, &lossless_text(v)),
        None => key_null(s, key),
    }
}

fn key_num(s: &mut String, key: &str, value: u64) {
    let _ = write!(s, "\"{key}\":{value},");
}

fn key_null(s: &mut String, key: &str) {
    let _ = write!(s, "\"{key}\":null,");
}

/// The bytes as text: UTF-8 as it is, every byte that is not part of valid UTF-8 as `\xHH`.
fn lossless_text(bytes: &[u8]) -> Cow<'_, str> {
    if let Ok(s) = std::str::from_utf8(bytes) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(bytes.len() + 8);
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02X}");
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, Instant, UNIX_EPOCH};

    use bytes::Bytes;
    use gatehouse_channel_request::{Peer, RequestInfo};

    use super::*;

    fn record(uri: &'static [u8], ua: Option<&'static [u8]>) -> RequestRecord {
        RequestRecord {
            info: RequestInfo::new(Protocol::FastCgi, Peer::Stdio),
            started: Instant::now(),
            started_at: UNIX_EPOCH + Duration::from_millis(1_796_655_845_250),
            method: Bytes::from_static(b"GET"),
            uri: Bytes::from_static(uri),
            server_protocol: Bytes::from_static(b"HTTP/1.1"),
            remote_addr: Bytes::from_static(b"192.0.2.1"),
            remote_user: None,
            referer: None,
            user_agent: ua.map(Bytes::from_static),
            host: Some(Bytes::from_static(b"example.org")),
        }
    }

    fn outcome(status: u16, end: End) -> Outcome {
        Outcome {
            status,
            bytes_sent: 14,
            request_bytes: 0,
            duration: Duration::from_micros(1234),
            end,
            app: Some(Arc::from("/")),
        }
    }

    fn line(format: Format, r: &RequestRecord, o: &Outcome) -> String {
        let mut out = String::new();
        write_line(format, &Context { worker: Some(2) }, r, o, &mut out);
        out
    }

    #[test]
    fn combined_line() {
        let r = record(b"/a?b=c", Some(b"curl/8"));
        assert_eq!(
            line(Format::Combined, &r, &outcome(200, End::Finished)),
            "192.0.2.1 - - [07/Dec/2026:15:04:05 +0000] \"GET /a?b=c HTTP/1.1\" 200 14 \"-\" \"curl/8\"\n"
        );
        // Cancelled before the head: nginx's 499.
        assert!(line(Format::Combined, &r, &outcome(0, End::Cancelled)).contains("\" 499 14 "));
    }

    #[test]
    fn hostile_bytes_are_escaped_as_nginx_does() {
        let r = record(b"/a\"b\\c\x01\n\xff", Some(b"x\" \"y\r\n"));
        let l = line(Format::Combined, &r, &outcome(404, End::Finished));
        assert_eq!(l.matches('\n').count(), 1);
        assert!(
            l.contains(r#""GET /a\x22b\x5Cc\x01\x0A\xFF HTTP/1.1" 404"#),
            "{l}"
        );
        assert!(l.ends_with("\"x\\x22 \\x22y\\x0D\\x0A\"\n"), "{l}");
    }

    #[test]
    fn json_line() {
        let r = record(b"/a\"\x01\xff", None);
        let l = line(Format::Json, &r, &outcome(201, End::Aborted));
        assert!(l.ends_with("}\n") && l.matches('\n').count() == 1, "{l}");
        let v: serde_json::Value = serde_json::from_str(&l).unwrap();
        assert_eq!(v["time"], "2026-12-07T15:04:05.250Z");
        assert_eq!(v["uri"], "/a\"\u{1}\\xFF");
        assert_eq!(v["status"], 201);
        assert_eq!(v["bytes_sent"], 14);
        assert_eq!(v["duration_us"], 1234);
        assert_eq!(v["protocol"], "fastcgi");
        assert_eq!(v["app"], "/");
        assert_eq!(v["worker"], 2);
        assert_eq!(v["user_agent"], serde_json::Value::Null);
        assert_eq!(v["end"], "aborted");
        assert_eq!(v["request_id"], r.info.id);
    }
}
