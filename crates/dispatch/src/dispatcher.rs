//! The [`Dispatcher`]: picks an app by mount point and splits the path for it, and gives every
//! app the same request whichever front end carried it (the `contract` rules, no body for
//! HEAD).

use std::sync::Arc;

use bytes::Bytes;
use gatehouse_channel_request::env::{PATH_INFO, SCRIPT_NAME};
use gatehouse_channel_request::{AppError, Application, BoxFuture, Request, Response};

use crate::contract::remove_shadowing_vars;
use crate::path::full_path;

/// Routes each request to the app mounted at the longest prefix of its path.
///
/// A mount point `/app` matches `/app` and `/app/...` but not `/apple`. The app at `/` (stored as
/// the empty prefix) matches everything. A request no mount matches gets a 404.
#[derive(Clone, Default)]
pub struct Dispatcher {
    /// Sorted by prefix length, longest first.
    mounts: Vec<(Vec<u8>, Arc<dyn Application>)>,
}

impl Dispatcher {
    /// A dispatcher with no apps.
    pub fn new() -> Self {
        Self::default()
    }

    /// A dispatcher with `app` at `/`.
    pub fn single(app: Arc<dyn Application>) -> Self {
        Self::new().mount("/", app)
    }

    /// Mounts `app` at `prefix` (`/`, `/app`, `/app/` are all accepted; a trailing `/` is
    /// dropped). A later mount at the same prefix replaces the earlier one.
    pub fn mount(mut self, prefix: &str, app: Arc<dyn Application>) -> Self {
        let prefix = normalise(prefix);
        self.mounts.retain(|(p, _)| *p != prefix);
        self.mounts.push((prefix, app));
        self.mounts.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        self
    }

    /// The mount points, longest first (`""` is the root).
    pub fn prefixes(&self) -> impl Iterator<Item = &[u8]> {
        self.mounts.iter().map(|(p, _)| p.as_slice())
    }

    /// The app for `path` and where its `PATH_INFO` starts.
    fn route(&self, path: &[u8]) -> Option<(&[u8], &Arc<dyn Application>)> {
        self.mounts
            .iter()
            .find(|(prefix, _)| {
                path.starts_with(prefix)
                    && (path.len() == prefix.len() || path[prefix.len()] == b'/')
            })
            .map(|(prefix, app)| (prefix.as_slice(), app))
    }
}

fn normalise(prefix: &str) -> Vec<u8> {
    let trimmed = prefix.trim_end_matches('/');
    if trimmed.is_empty() {
        return Vec::new();
    }
    let mut p = Vec::with_capacity(trimmed.len() + 1);
    if !trimmed.starts_with('/') {
        p.push(b'/');
    }
    p.extend_from_slice(trimmed.as_bytes());
    p
}

impl Application for Dispatcher {
    fn call<'a>(
        &'a self,
        mut req: Request,
        resp: &'a mut Response,
    ) -> BoxFuture<'a, Result<(), AppError>> {
        let path = match full_path(&req.env) {
            Ok(path) => path,
            Err(error) => {
                let info = &req.info;
                tracing::warn!(peer = %info.peer, request_id = info.id, %error, "bad request path: answering 400");
                return Box::pin(async move {
                    resp.send_full(400, "text/plain", "Bad Request\n").await?;
                    Ok(())
                });
            }
        };
        let Some((prefix, app)) = self.route(&path) else {
            return Box::pin(async move {
                resp.send_full(404, "text/plain", "Not Found\n").await?;
                Ok(())
            });
        };
        let path_info = Bytes::copy_from_slice(&path[prefix.len()..]);
        req.env.set(SCRIPT_NAME, Bytes::copy_from_slice(prefix));
        req.env.set(PATH_INFO, path_info);
        let removed = remove_shadowing_vars(&mut req.env);
        if !removed.is_empty() {
            let info = &req.info;
            tracing::debug!(peer = %info.peer, request_id = info.id, ?removed, "variables dropped (httpoxy, RFC 3875 section 4.1.18)");
        }
        if req.env.method() == b"HEAD" {
            // RFC 3875 section 4.3.2: no message-body for HEAD, whatever the app writes.
            resp.omit_body();
        }
        app.call(req, resp)
    }
}

#[cfg(test)]
mod tests {
    use gatehouse_channel_request::{
        delivery_queue, CancellationToken, Env, Output, Peer, Protocol, QueueChannel, RequestBody,
        RequestInfo,
    };

    use super::*;

    /// Answers with `SCRIPT_NAME|PATH_INFO|tag`.
    struct Show(&'static str);

    impl Application for Show {
        fn call<'a>(
            &'a self,
            req: Request,
            resp: &'a mut Response,
        ) -> BoxFuture<'a, Result<(), AppError>> {
            Box::pin(async move {
                let mut body = req.env.script_name().to_vec();
                body.push(b'|');
                body.extend_from_slice(req.env.path_info());
                body.push(b'|');
                body.extend_from_slice(self.0.as_bytes());
                resp.send_full(200, "text/plain", body).await?;
                Ok(())
            })
        }
    }

    async fn ask(d: &Dispatcher, vars: &[(&'static str, &'static str)]) -> (u16, Vec<u8>) {
        let (tx, mut rx) = delivery_queue();
        let resp = Response::new(QueueChannel::new(1, tx, 1 << 16, CancellationToken::new()));
        let env: Env = vars.iter().map(|&(n, v)| (n.into(), v.into())).collect();
        let req = Request {
            env,
            body: RequestBody::empty(),
            info: RequestInfo::new(Protocol::Http, Peer::Stdio),
        };
        gatehouse_channel_request::serve_request(d, req, resp).await;
        let (mut status, mut body) = (0, Vec::new());
        while let Ok(d) = rx.try_recv() {
            match d.output {
                Output::Head(h) => status = h.status(),
                Output::Body(b) => body.extend_from_slice(&b),
                _ => {}
            }
        }
        (status, body)
    }

    #[tokio::test]
    async fn splits_at_mount_point() {
        let d = Dispatcher::new()
            .mount("/", Arc::new(Show("root")))
            .mount("/app/", Arc::new(Show("app")));
        // nginx's stock fastcgi_params: SCRIPT_NAME is the whole path, no PATH_INFO.
        assert_eq!(
            ask(&d, &[("SCRIPT_NAME", "/app/x/y")]).await,
            (200, b"/app|/x/y|app".to_vec())
        );
        assert_eq!(
            ask(&d, &[("SCRIPT_NAME", "/app")]).await,
            (200, b"/app||app".to_vec())
        );
        assert_eq!(
            ask(&d, &[("SCRIPT_NAME", "/apple")]).await,
            (200, b"|/apple|root".to_vec())
        );
        // nginx's stock scgi_params: neither, only REQUEST_URI / DOCUMENT_URI.
        assert_eq!(
            ask(&d, &[("REQUEST_URI", "/app/a%20b?q=1")]).await,
            (200, b"/app|/a b|app".to_vec())
        );
        assert_eq!(ask(&d, &[]).await, (200, b"|/|root".to_vec()));
    }

    /// Answers with the request's variable names, comma-separated.
    struct Names;

    impl Application for Names {
        fn call<'a>(
            &'a self,
            req: Request,
            resp: &'a mut Response,
        ) -> BoxFuture<'a, Result<(), AppError>> {
            Box::pin(async move {
                let names: Vec<&[u8]> = req.env.iter().map(|(n, _)| n.as_ref()).collect();
                resp.send_full(200, "text/plain", names.join(&b","[..]))
                    .await?;
                Ok(())
            })
        }
    }

    #[tokio::test]
    async fn same_contract_whatever_the_front_server_sent() {
        let d = Dispatcher::single(Arc::new(Names));
        let (status, body) = ask(
            &d,
            &[
                ("REQUEST_METHOD", "POST"),
                ("CONTENT_LENGTH", "0"),
                ("CONTENT_TYPE", "text/plain"),
                ("HTTP_PROXY", "http://evil.test:3128"),
                ("HTTP_CONTENT_LENGTH", "0"),
                ("HTTP_CONTENT_TYPE", "text/plain"),
                ("HTTP_X_KEPT", "1"),
            ],
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(
            String::from_utf8(body).unwrap(),
            "REQUEST_METHOD,CONTENT_LENGTH,CONTENT_TYPE,HTTP_X_KEPT,SCRIPT_NAME,PATH_INFO"
        );
    }

    #[tokio::test]
    async fn head_gets_no_body() {
        let d = Dispatcher::single(Arc::new(Show("x")));
        let vars = [("REQUEST_METHOD", "HEAD"), ("PATH_INFO", "/p")];
        assert_eq!(ask(&d, &vars).await, (200, Vec::new()));
        let vars = [("REQUEST_METHOD", "GET"), ("PATH_INFO", "/p")];
        assert_eq!(ask(&d, &vars).await, (200, b"|/p|x".to_vec()));
    }

    #[tokio::test]
    async fn bad_raw_path_is_400() {
        let d = Dispatcher::single(Arc::new(Show("x")));
        for uri in ["/a/../../etc/passwd", "/a%00b?q"] {
            let (status, _) = ask(&d, &[("REQUEST_URI", uri)]).await;
            assert_eq!(status, 400, "{uri}");
        }
        assert_eq!(
            ask(&d, &[("REQUEST_URI", "/a/%2e%2e/b/")]).await,
            (200, b"|/b/|x".to_vec())
        );
    }

    #[tokio::test]
    async fn unmatched_is_404() {
        let d = Dispatcher::new().mount("/only", Arc::new(Show("x")));
        assert_eq!(ask(&d, &[("PATH_INFO", "/other")]).await.0, 404);
    }
}
