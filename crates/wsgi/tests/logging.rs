//! What reaches the log: the traceback of a failed request (never the body), `wsgi.errors`
//! lines, Content-Length overruns and refused requests, each with the request id. Its own test
//! binary: it installs the process-wide tracing subscriber.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use support::{config, load, Call, End};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture() -> &'static Capture {
    static CAPTURE: OnceLock<Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture = Capture::default();
        let writer = capture.clone();
        tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .init();
        capture
    })
}

/// The captured log lines mentioning `request_id`.
fn lines_of(request_id: u64) -> Vec<String> {
    let text = String::from_utf8_lossy(&capture().0.lock().expect("log buffer")).into_owned();
    let tag = format!("request_id={request_id}");
    // A traceback continues over several lines after its tagged first line.
    let mut out = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        let starts_record = line.contains(" WARN ")
            || line.contains(" ERROR ")
            || line.contains(" INFO ")
            || line.contains(" DEBUG ");
        if starts_record {
            inside = line.contains(&tag);
        }
        if inside {
            out.push(line.to_owned());
        }
    }
    out
}

#[tokio::test]
async fn log_lines() {
    capture();
    // An exception before the head: traceback in the log, not in the body.
    let app = load("wsgi_cases.py", "raise_before", config(1));
    let a = Call::get("/").run(&app).await;
    assert_eq!(a.status(), 500);
    assert!(!a.text().contains("secret-traceback-marker"));
    let log = lines_of(a.request_id).join("\n");
    assert!(log.contains("request failed"), "{log}");
    assert!(log.contains("Traceback (most recent call last)"), "{log}");
    assert!(
        log.contains("RuntimeError: secret-traceback-marker before the head"),
        "{log}"
    );
    assert_eq!(
        log.matches(" ERROR ").count(),
        1,
        "one log line per failure: {log}"
    );

    // wsgi.errors, line by line.
    let app = load("wsgi_cases.py", "errors_writer", config(1));
    let a = Call::get("/").run(&app).await;
    assert_eq!(a.text(), "logged");
    let log = lines_of(a.request_id);
    let messages: Vec<&str> = log
        .iter()
        .filter_map(|l| l.split("wsgi.errors: ").nth(1))
        .filter_map(|m| m.split(" peer=").next())
        .collect();
    assert_eq!(
        messages,
        ["first line from the app", "second line", "unterminated"]
    );

    // More bytes than Content-Length: dropped, logged once.
    let app = load("wsgi_cases.py", "content_length_over", config(1));
    let a = Call::get("/").run(&app).await;
    assert_eq!((a.text().as_str(), a.end), ("hello", End::Finish));
    let log = lines_of(a.request_id).join("\n");
    assert_eq!(
        log.matches("more bytes than its Content-Length").count(),
        1,
        "{log}"
    );

    // Fewer: aborted, logged.
    let app = load("wsgi_cases.py", "content_length_short", config(1));
    let a = Call::get("/").run(&app).await;
    assert_eq!(a.end, End::Abort);
    let log = lines_of(a.request_id).join("\n");
    assert!(
        log.contains("sent 2 body bytes but announced Content-Length 10"),
        "{log}"
    );
}
