//! `wsgiref.validate.validator` around test apps (fixtures/apps/wsgi_validated.py): the server
//! side of PEP 3333 as the standard library checks it. An assertion in the validator makes the
//! request fail (500 or abort); a warning too (turned into an error); an iterator left unclosed
//! shows up in the app's `report`.

mod support;

use gatehouse_channel_request::Protocol;
use support::{config, load, Call, End};

const APPS: &str = "wsgi_validated.py";

async fn check(callable: &str, call: Call) -> support::Answer {
    let app = load(APPS, callable, config(2));
    let a = call.run(&app).await;
    assert!(
        a.status() != 500 && a.end == End::Finish,
        "{callable}: validator objected: {} {:?} {}",
        a.status(),
        a.end,
        a.text()
    );
    a
}

#[tokio::test]
async fn validator_finds_nothing_to_object_to() {
    for protocol in [
        Protocol::FastCgi,
        Protocol::Http,
        Protocol::Scgi,
        Protocol::Cgi,
    ] {
        let with = |mut call: Call| {
            call.protocol = protocol;
            call
        };
        let a = check("hello", with(Call::get("/"))).await;
        assert_eq!(a.text(), "Hello, world!\n");

        let mut post = with(Call::post(
            "/form",
            "text/plain",
            "line one\nthe rest\nof it",
        ));
        post.chunk = 5;
        let a = check("form", post).await;
        assert_eq!(a.json()["first"], "line one\n");
        assert_eq!(a.json()["rest"], "the rest\nof it");

        let a = check("lines", with(Call::post("/", "text/plain", "a\nb\nc"))).await;
        assert_eq!(a.json(), serde_json::json!(["a\n", "b\n", "c"]));

        let a = check("writer", with(Call::get("/"))).await;
        assert_eq!(a.text(), "written and returned");

        let a = check("streamed", with(Call::get("/"))).await;
        assert_eq!(a.chunks.len(), 100);

        let a = check("no_content", with(Call::get("/"))).await;
        assert_eq!(a.status(), 204);

        let a = check("error_page", with(Call::get("/"))).await;
        assert_eq!((a.status(), a.text().as_str()), (404, "not here"));

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("data.bin");
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&file, &data).unwrap();
        let call = with(Call::get("/").var("HTTP_X_FILE", &file.display().to_string()));
        let a = check("file_response", call).await;
        assert_eq!(a.body, data);

        let head = with(Call::get("/").var("REQUEST_METHOD", "HEAD"));
        check("hello", head).await;
    }
    let app = load(APPS, "report", config(1));
    let problems = Call::get("/").run(&app).await.json();
    assert_eq!(
        problems,
        serde_json::json!([]),
        "unraisable validator errors"
    );
}

#[tokio::test]
async fn validator_does_object_to_a_broken_server_environ() {
    // Proof that the validator is live: an environ with HTTP_CONTENT_LENGTH left in would fail,
    // so we check the one thing we control from here, a SCRIPT_NAME not starting with '/'.
    let app = load(APPS, "hello", config(1));
    let a = Call::get("/")
        .var("SCRIPT_NAME", "no-slash")
        .run(&app)
        .await;
    assert_eq!(a.status(), 500);
}
