//! The [`Dispatcher`]: picks an app by mount point and splits the path for it, and gives every
//! app the same request whichever front end carried it (the `contract` rules, no body for
//! HEAD).
//!
//! The split: mount points are URL paths as the client asked for them, matched against the
//! whole request path ([`request_path`]), so a URL reaches the same app however the front server
//! set its variables. The app's `SCRIPT_NAME` is the longer of its mount point and the front
//! prefix (the part of the path the front server already maps to us, when its split is
//! consistent); `PATH_INFO` is the rest. With the usual single app at `/` that is RFC 3875's and
//! PEP 3333's reading: the front server's split as it made it, or, when it made none,
//! `SCRIPT_NAME` empty and the whole path in `PATH_INFO`. `SCRIPT_NAME` + `PATH_INFO` is always
//! the whole path.

use std::sync::Arc;

use bytes::Bytes;
use gatehouse_channel_request::env::{PATH_INFO, SCRIPT_NAME};
use gatehouse_channel_request::{AppError, Application, BoxFuture, Request, Response};

use crate::contract::remove_shadowing_vars;
use crate::path::{request_path, RequestPath};

/// Routes each request to the app mounted at the longest prefix of its path.
///
/// A mount point `/app` matches `/app` and `/app/...` but not `/apple`. The app at `/` (stored as
/// the empty prefix) matches everything. A request no mount matches gets a 404. The app sees
/// `SCRIPT_NAME` = its mount point or the front server's prefix, whichever is longer, and
/// `PATH_INFO` = the rest of the path (see the module documentation).
#[derive(Clone, Default)]
pub struct Dispatcher {
    /// Sorted by prefix length, longest first.
    mounts: Vec<Mount>,
}

#[derive(Clone)]
struct Mount {
    prefix: Vec<u8>,
    /// The mount point as logs and metrics name it (`/` for the root).
    label: Arc<str>,
    app: Arc<dyn Application>,
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
        self.mounts.retain(|m| m.prefix != prefix);
        let label = match std::str::from_utf8(&prefix) {
            Ok("") => "/".into(),
            Ok(p) => p.into(),
            Err(_) => String::from_utf8_lossy(&prefix).into(),
        };
        self.mounts.push(Mount { prefix, label, app });
        self.mounts
            .sort_by_key(|m| std::cmp::Reverse(m.prefix.len()));
        self
    }

    /// The mount points, longest first (`""` is the root).
    pub fn prefixes(&self) -> impl Iterator<Item = &[u8]> {
        self.mounts.iter().map(|m| m.prefix.as_slice())
    }

    /// The app for `path` and where its `PATH_INFO` starts.
    fn route(&self, path: &[u8]) -> Option<&Mount> {
        self.mounts.iter().find(|m| {
            path.starts_with(&m.prefix)
                && (path.len() == m.prefix.len() || path[m.prefix.len()] == b'/')
        })
    }
}

/// `(SCRIPT_NAME, PATH_INFO)` for an app mounted at a prefix `mount_len` bytes long: split
/// after the mount point or the front prefix, whichever is longer. Both are leading parts of the
/// path ending at a segment boundary (a mount matches whole segments; the front prefix is
/// followed by a `PATH_INFO` starting with `/`), so the longer one holds the shorter.
fn split(path: RequestPath, mount_len: usize) -> (Bytes, Bytes) {
    let at = mount_len.max(path.front_len);
    let mut full = Bytes::from(path.full);
    let path_info = full.split_off(at);
    (full, path_info)
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
        let path = match request_path(&req.env) {
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
        let Some(mount) = self.route(&path.full) else {
            return Box::pin(async move {
                resp.send_full(404, "text/plain", "Not Found\n").await?;
                Ok(())
            });
        };
        resp.set_app_label(mount.label.clone());
        let (script_name, path_info) = split(path, mount.prefix.len());
        req.env.set(SCRIPT_NAME, script_name);
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
        mount.app.call(req, resp)
    }
}

#[cfg(test)]
mod tests {
    use gatehouse_channel_request::{
        delivery_queue, CancellationToken, Env, Output, Peer, Protocol, QueueChannel, RequestBody,
        RequestInfo,
    };

    use super::*;
    use crate::path::full_path;

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

    /// What a front server sends: `(form, variables)`.
    type Form = (&'static str, &'static [(&'static str, &'static str)]);

    /// Asks `d` each form; the app must see `SCRIPT_NAME|PATH_INFO|app` as `want` says, and
    /// `SCRIPT_NAME` + `PATH_INFO` must be the whole path (what `echo` shows as its `path`).
    async fn check_forms(d: &Dispatcher, rows: &[(Form, &str)]) {
        for &((form, vars), want) in rows {
            let (status, body) = ask(d, vars).await;
            let got = String::from_utf8(body).unwrap();
            assert_eq!((status, got.as_str()), (200, want), "{form}");
            let env: Env = vars.iter().map(|&(n, v)| (n.into(), v.into())).collect();
            let full = String::from_utf8(full_path(&env).unwrap()).unwrap();
            let mut seen = got.split('|');
            let joined = format!("{}{}", seen.next().unwrap(), seen.next().unwrap());
            assert_eq!(joined, full, "{form}: SCRIPT_NAME + PATH_INFO");
        }
    }

    const NGINX_STOCK: Form = (
        "nginx include fastcgi_params (location /)",
        &[
            ("SCRIPT_NAME", "/git/repo.git/info/refs"),
            (
                "REQUEST_URI",
                "/git/repo.git/info/refs?service=git-upload-pack",
            ),
            ("DOCUMENT_URI", "/git/repo.git/info/refs"),
            ("DOCUMENT_ROOT", "/usr/share/nginx/html"),
        ],
    );
    const NGINX_SCGI: Form = (
        "nginx include scgi_params",
        &[
            ("REQUEST_URI", "/git/a%20b?x=1"),
            ("DOCUMENT_URI", "/git/a b"),
        ],
    );
    const FCGIWRAP_STYLE: Form = (
        "fcgiwrap style: SCRIPT_NAME and PATH_INFO both $uri",
        &[
            ("SCRIPT_FILENAME", "/usr/lib/git-core/git-http-backend"),
            ("SCRIPT_NAME", "/git/repo.git/HEAD"),
            ("PATH_INFO", "/git/repo.git/HEAD"),
            ("DOCUMENT_URI", "/git/repo.git/HEAD"),
        ],
    );
    const NGINX_SPLIT_PATH_INFO: Form = (
        "nginx fastcgi_split_path_info ^(.+\\.php)(/.+)$",
        &[
            ("SCRIPT_NAME", "/git/index.php"),
            ("PATH_INFO", "/a/b"),
            ("DOCUMENT_URI", "/git/index.php/a/b"),
        ],
    );
    const NGINX_REGEX_PATH_INFO: Form = (
        "nginx location ~ ^/prefixed(/.*)$ + PATH_INFO $1",
        &[
            ("SCRIPT_NAME", "/prefixed/repo.git/info/refs"),
            ("PATH_INFO", "/repo.git/info/refs"),
            ("DOCUMENT_URI", "/prefixed/repo.git/info/refs"),
        ],
    );
    const NGINX_REGEX_PATH_INFO_SLASH: Form = (
        "nginx location ~ ^/prefixed(/.*)$ + PATH_INFO $1, GET /prefixed/",
        &[
            ("SCRIPT_NAME", "/prefixed/"),
            ("PATH_INFO", "/"),
            ("DOCUMENT_URI", "/prefixed/"),
        ],
    );
    const NGINX_REWRITTEN: Form = (
        "nginx PATH_INFO that is not the end of DOCUMENT_URI",
        &[("PATH_INFO", "/elsewhere"), ("DOCUMENT_URI", "/git/x")],
    );
    const APACHE_PROXY_FCGI: Form = (
        "Apache mod_proxy_fcgi ProxyPass (no PATH_INFO)",
        &[
            ("SCRIPT_FILENAME", "proxy:fcgi://127.0.0.1:9000/git/x/y"),
            ("SCRIPT_NAME", "/git/x/y"),
            ("REQUEST_URI", "/git/x/y"),
        ],
    );
    const APACHE_PATHINFO_FIRST_DOT: Form = (
        "Apache mod_proxy_fcgi proxy-fcgi-pathinfo first-dot",
        &[("SCRIPT_NAME", "/app.fcgi"), ("PATH_INFO", "/x/y")],
    );
    const APACHE_PATHINFO_UNESCAPE: Form = (
        "Apache mod_proxy_fcgi proxy-fcgi-pathinfo unescape",
        &[("SCRIPT_NAME", ""), ("PATH_INFO", "/git/x y")],
    );
    const CGI: Form = (
        "web server running us as a CGI program (Apache, lighttpd mod_cgi)",
        &[
            ("SCRIPT_NAME", "/cgi-bin/gatehouse"),
            ("PATH_INFO", "/api/v1"),
            ("REQUEST_URI", "/cgi-bin/gatehouse/api/v1"),
        ],
    );
    const CGI_NO_PATH_INFO: Form = (
        "web server running us as a CGI program, no PATH_INFO",
        &[("SCRIPT_NAME", "/cgi-bin/gatehouse")],
    );
    const LIGHTTPD_PREFIX: Form = (
        "lighttpd fastcgi.server \"/app\" (check-local disable)",
        &[("SCRIPT_NAME", "/app"), ("PATH_INFO", "/x/y")],
    );
    const LIGHTTPD_ROOT: Form = (
        "lighttpd fastcgi.server \"/\": its odd split after the first segment",
        &[
            ("SCRIPT_NAME", "/git"),
            ("PATH_INFO", "/repo.git/HEAD"),
            ("SCRIPT_FILENAME", "/var/www/git"),
        ],
    );
    const LIGHTTPD_ROOT_ONE_SEGMENT: Form = (
        "lighttpd fastcgi.server \"/\", a one-segment path",
        &[("SCRIPT_NAME", "/git")],
    );
    const LIGHTTPD_ROOT_FIXED: Form = (
        "lighttpd fastcgi.server \"/\" with fix-root-scriptname",
        &[("SCRIPT_NAME", ""), ("PATH_INFO", "/git/repo.git/HEAD")],
    );
    const HTTP: Form = (
        "gatehouse's HTTP front end",
        &[
            ("SCRIPT_NAME", ""),
            ("PATH_INFO", "/git/a b"),
            ("REQUEST_URI", "/git/a%20b"),
        ],
    );
    const NOT_RFC_PATH_INFO: Form = (
        "a PATH_INFO not starting with /",
        &[("SCRIPT_NAME", "/git"), ("PATH_INFO", "x")],
    );

    /// One app at `/`: the front server's split as it made it, or none.
    #[tokio::test]
    async fn front_server_forms_with_one_app() {
        let d = Dispatcher::single(Arc::new(Show("app")));
        check_forms(
            &d,
            &[
                (NGINX_STOCK, "|/git/repo.git/info/refs|app"),
                (NGINX_SCGI, "|/git/a b|app"),
                (FCGIWRAP_STYLE, "|/git/repo.git/HEAD|app"),
                (NGINX_SPLIT_PATH_INFO, "/git/index.php|/a/b|app"),
                (NGINX_REGEX_PATH_INFO, "/prefixed|/repo.git/info/refs|app"),
                (NGINX_REGEX_PATH_INFO_SLASH, "/prefixed|/|app"),
                (NGINX_REWRITTEN, "|/git/x|app"),
                (APACHE_PROXY_FCGI, "|/git/x/y|app"),
                (APACHE_PATHINFO_FIRST_DOT, "/app.fcgi|/x/y|app"),
                (APACHE_PATHINFO_UNESCAPE, "|/git/x y|app"),
                (CGI, "/cgi-bin/gatehouse|/api/v1|app"),
                (CGI_NO_PATH_INFO, "|/cgi-bin/gatehouse|app"),
                (LIGHTTPD_PREFIX, "/app|/x/y|app"),
                (LIGHTTPD_ROOT, "/git|/repo.git/HEAD|app"),
                (LIGHTTPD_ROOT_ONE_SEGMENT, "|/git|app"),
                (LIGHTTPD_ROOT_FIXED, "|/git/repo.git/HEAD|app"),
                (HTTP, "|/git/a b|app"),
                (NOT_RFC_PATH_INFO, "|/gitx|app"),
            ],
        )
        .await;
    }

    /// Mount points are URL paths: a URL reaches the same app whatever the front server sent,
    /// and the app's `SCRIPT_NAME` is its mount point or the front prefix, the longer.
    #[tokio::test]
    async fn front_server_forms_with_mounts() {
        let d = Dispatcher::new()
            .mount("/", Arc::new(Show("root")))
            .mount("/git", Arc::new(Show("git")));
        check_forms(
            &d,
            &[
                (NGINX_STOCK, "/git|/repo.git/info/refs|git"),
                (NGINX_SCGI, "/git|/a b|git"),
                (FCGIWRAP_STYLE, "/git|/repo.git/HEAD|git"),
                (NGINX_SPLIT_PATH_INFO, "/git/index.php|/a/b|git"),
                (NGINX_REGEX_PATH_INFO, "/prefixed|/repo.git/info/refs|root"),
                (APACHE_PROXY_FCGI, "/git|/x/y|git"),
                (APACHE_PATHINFO_UNESCAPE, "/git|/x y|git"),
                (LIGHTTPD_ROOT, "/git|/repo.git/HEAD|git"),
                (LIGHTTPD_ROOT_FIXED, "/git|/repo.git/HEAD|git"),
                (LIGHTTPD_ROOT_ONE_SEGMENT, "/git||git"),
                (HTTP, "/git|/a b|git"),
                (LIGHTTPD_PREFIX, "/app|/x/y|root"),
            ],
        )
        .await;
        // As a CGI program the binary mounts its apps below its own SCRIPT_NAME.
        let d = Dispatcher::new()
            .mount("/cgi-bin/gatehouse", Arc::new(Show("app")))
            .mount("/cgi-bin/gatehouse/api", Arc::new(Show("api")));
        check_forms(
            &d,
            &[
                (CGI, "/cgi-bin/gatehouse/api|/v1|api"),
                (CGI_NO_PATH_INFO, "/cgi-bin/gatehouse||app"),
            ],
        )
        .await;
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
