//! A Rust program that is its own gateway app: one handler, served over FastCGI by
//! `gatehouse::serve` with the same options as the `gatehouse` binary.
//!
//! ```text
//! cargo run --example native_handler -- --fastcgi 127.0.0.1:9001
//! # nginx: location / { include fastcgi_params; fastcgi_pass 127.0.0.1:9001; }
//! curl 'http://localhost/?name=Ada'      # Hello, Ada!
//! ```

use std::process::ExitCode;

use gatehouse::{AppError, Application, BoxFuture, Request, Response};

/// Greets whoever the `name` query parameter names.
struct Greeter;

impl Application for Greeter {
    fn call<'a>(
        &'a self,
        req: Request,
        resp: &'a mut Response,
    ) -> BoxFuture<'a, Result<(), AppError>> {
        Box::pin(async move {
            let name = query_param(req.env.query(), b"name")
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| "stranger".to_owned());
            let greeting = format!("Hello, {name}!\n");
            resp.send_full(200, "text/plain; charset=utf-8", greeting)
                .await?;
            Ok(())
        })
    }
}

/// The first value of `key` in a query string, percent-decoded (invalid UTF-8 replaced).
fn query_param(query: &[u8], key: &[u8]) -> Option<String> {
    query.split(|&b| b == b'&').find_map(|pair| {
        let (k, v) = match pair.iter().position(|&b| b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        let plus_as_space: Vec<u8> = v
            .iter()
            .map(|&b| if b == b'+' { b' ' } else { b })
            .collect();
        (k == key).then(|| {
            String::from_utf8_lossy(&gatehouse_dispatch::percent_decode(&plus_as_space))
                .into_owned()
        })
    })
}

fn main() -> ExitCode {
    gatehouse::serve(Greeter)
}
