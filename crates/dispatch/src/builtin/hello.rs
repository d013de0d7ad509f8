//! `hello`: the smallest useful app, and the one benchmarks measure.

use bytes::Bytes;
use gatehouse_channel_request::{
    AppError, Application, BoxFuture, Request, Response, ResponseHead,
};

/// Answers every request with `200`, `text/plain`, `Hello, world!\n`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Hello;

const BODY: &[u8] = b"Hello, world!\n";

impl Application for Hello {
    fn call<'a>(
        &'a self,
        _req: Request,
        resp: &'a mut Response,
    ) -> BoxFuture<'a, Result<(), AppError>> {
        Box::pin(async move {
            let head = ResponseHead::new(200)
                .with_header("Content-Type", "text/plain")?
                .with_header("Content-Length", "14")?;
            resp.send_head(head).await?;
            resp.write(Bytes::from_static(BODY)).await?;
            resp.finish().await?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtin::testing::run;

    #[tokio::test]
    async fn says_hello() {
        let (head, body) = run(&Hello, &[("REQUEST_METHOD", "GET")], b"").await;
        assert_eq!(head.status(), 200);
        assert_eq!(head.content_length(), Some(BODY.len() as u64));
        assert_eq!(body, BODY);
    }
}
