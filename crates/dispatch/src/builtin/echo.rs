//! `echo`: describes the request as JSON, digesting the body as it streams.
//!
//! The answer is the contract every front end is checked against:
//! `{"method", "path", "query", "headers", "body_len", "body_sha256"}`, where `path` is
//! `SCRIPT_NAME` + `PATH_INFO`, `headers` maps the `HTTP_*` variables to lower-case header names,
//! and the body is never held in memory (a 1 GiB upload costs one chunk at a time).

use std::collections::BTreeMap;

use gatehouse_channel_request::{AppError, Application, BoxFuture, Request, Response};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Answers with a JSON description of the request.
#[derive(Debug, Clone, Copy, Default)]
pub struct Echo;

impl Application for Echo {
    fn call<'a>(
        &'a self,
        mut req: Request,
        resp: &'a mut Response,
    ) -> BoxFuture<'a, Result<(), AppError>> {
        Box::pin(async move {
            let mut digest = Sha256::new();
            let mut len: u64 = 0;
            while let Some(chunk) = req.body.chunk().await? {
                len += chunk.len() as u64;
                digest.update(&chunk);
            }
            let headers: BTreeMap<String, Value> = req
                .env
                .http_headers()
                .map(|(name, value)| (name, Value::String(lossy(value))))
                .collect();
            let answer = json!({
                "method": lossy(req.env.method()),
                "path": lossy(&req.env.path()),
                "query": lossy(req.env.query()),
                "headers": headers,
                "body_len": len,
                "body_sha256": hex(&digest.finalize()),
            });
            let mut body = serde_json::to_vec(&answer)?;
            body.push(b'\n');
            resp.send_full(200, "application/json", body).await?;
            Ok(())
        })
    }
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtin::testing::run;

    #[tokio::test]
    async fn describes_request() {
        let vars = [
            ("REQUEST_METHOD", "POST"),
            ("SCRIPT_NAME", "/a"),
            ("PATH_INFO", "/b c"),
            ("QUERY_STRING", "x=1&y"),
            ("CONTENT_LENGTH", "3"),
            ("CONTENT_TYPE", "text/plain"),
            ("HTTP_X_THING", "v"),
            ("HTTP_HOST", "h"),
        ];
        let (head, body) = run(&Echo, &vars, b"abc").await;
        assert_eq!(head.status(), 200);
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["method"], "POST");
        assert_eq!(v["path"], "/a/b c");
        assert_eq!(v["query"], "x=1&y");
        assert_eq!(v["headers"], json!({"host": "h", "x-thing": "v"}));
        assert_eq!(v["body_len"], 3);
        assert_eq!(
            v["body_sha256"],
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[tokio::test]
    async fn short_body_is_400() {
        let vars = [("REQUEST_METHOD", "POST"), ("CONTENT_LENGTH", "10")];
        let (head, _) = run(&Echo, &vars, b"abc").await;
        assert_eq!(head.status(), 400);
    }

    #[tokio::test]
    async fn large_body_streams() {
        let body = vec![7u8; 300_000];
        let (head, out) = run(&Echo, &[("REQUEST_METHOD", "PUT")], &body).await;
        assert_eq!(head.status(), 200);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["body_len"], 300_000);
    }
}
