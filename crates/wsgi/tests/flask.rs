//! A real Flask app (fixtures/apps/flask_app.py) served by the pool. Flask must be importable:
//! CI installs it (`python3 -m pip install 'flask>=3,<4'`), and this test fails without it.

mod support;

use bytes::{BufMut, BytesMut};
use support::{config, load, Call, End};

fn flask() -> gatehouse_wsgi::WsgiApp {
    load("flask_app.py", "app", config(4))
}

#[tokio::test]
async fn routes_json_and_404() {
    let app = flask();
    let a = Call::get("/").run(&app).await;
    assert_eq!((a.status(), a.text().as_str()), (200, "hello from flask\n"));
    assert_eq!(
        a.header("content-type").as_deref(),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(a.end, End::Finish);

    let a = Call::get("/json?name=gate%20house").run(&app).await;
    assert_eq!(a.status(), 200);
    assert_eq!(
        a.header("content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(
        a.json(),
        serde_json::json!({"items": [1, 2, 3], "name": "gate house"})
    );

    let a = Call::post(
        "/json",
        "application/json",
        r#"{"a": [1, "two"], "b": null}"#,
    )
    .run(&app)
    .await;
    assert_eq!(a.status(), 201);
    assert_eq!(
        a.json(),
        serde_json::json!({"received": {"a": [1, "two"], "b": null}, "kind": "dict"})
    );

    let a = Call::get("/nowhere").run(&app).await;
    assert_eq!(a.status(), 404);
    assert_eq!(a.end, End::Finish);

    let a = Call::get("/")
        .var("REQUEST_METHOD", "DELETE")
        .run(&app)
        .await;
    assert_eq!(a.status(), 405);
}

#[tokio::test]
async fn form_post() {
    let app = flask();
    let body = "name=Ada+Lovelace&lang=python&lang=rust&empty=&caf%C3%A9=cr%C3%A8me";
    let a = Call::post("/form", "application/x-www-form-urlencoded", body)
        .run(&app)
        .await;
    assert_eq!(a.status(), 200, "{}", a.text());
    assert_eq!(
        a.json()["fields"],
        serde_json::json!({
            "name": ["Ada Lovelace"],
            "lang": ["python", "rust"],
            "empty": [""],
            "café": ["crème"],
        })
    );
}

#[tokio::test]
async fn file_upload_of_20_mib() {
    let app = flask();
    let content: Vec<u8> = (0..20 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let boundary = "gatehouse-boundary-7d1f";
    let mut body = BytesMut::new();
    body.put_slice(format!("--{boundary}\r\n").as_bytes());
    body.put_slice(b"Content-Disposition: form-data; name=\"note\"\r\n\r\nbig one\r\n");
    body.put_slice(format!("--{boundary}\r\n").as_bytes());
    body.put_slice(
        b"Content-Disposition: form-data; name=\"file\"; filename=\"data.bin\"\r\n\
          Content-Type: application/octet-stream\r\n\r\n",
    );
    body.put_slice(&content);
    body.put_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let content_type = format!("multipart/form-data; boundary={boundary}");
    let a = Call::post("/upload", &content_type, body.freeze())
        .run(&app)
        .await;
    assert_eq!(a.status(), 200, "{}", a.text());
    let v = a.json();
    assert_eq!(v["filename"], "data.bin");
    assert_eq!(v["note"], "big one");
    assert_eq!(v["size"], content.len());
    assert_eq!(v["sha256"], support::sha256(&content));
}

#[tokio::test]
async fn streaming_response_arrives_in_chunks() {
    let app = flask();
    let a = Call::get("/stream?n=50").run(&app).await;
    assert_eq!(a.status(), 200);
    assert_eq!(a.header("content-length"), None, "streamed, length unknown");
    let want: String = (0..50).map(|i| format!("line {i}\n")).collect();
    assert_eq!(a.text(), want);
    assert_eq!(a.chunks.len(), 50, "one chunk per yield, not buffered");
    assert_eq!(a.end, End::Finish);
}

#[tokio::test]
async fn route_that_raises_is_500_without_traceback() {
    let app = flask();
    let a = Call::get("/boom").run(&app).await;
    assert_eq!(a.status(), 500);
    assert_eq!(a.end, End::Finish);
    assert!(
        !a.text().contains("flask-route-secret-marker"),
        "{}",
        a.text()
    );
    assert!(!a.text().contains("Traceback"), "{}", a.text());
    // The app keeps serving.
    assert_eq!(Call::get("/").run(&app).await.status(), 200);
}
