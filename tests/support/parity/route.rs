//! The ways a request reaches `echo`: each front end directly (our own clients standing in for a
//! web server) and through a real nginx.

use std::fmt;

/// One way in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    /// Our raw FastCGI client (tests/support/fcgi.rs) on `--fastcgi`, with the variables of
    /// [`super::server::Profile::FastCgi`]. A chunked upload goes as nginx with
    /// `fastcgi_request_buffering off` sends it: no `CONTENT_LENGTH`, `FCGI_STDIN` to its end.
    FastCgi,
    /// Our raw SCGI client on `--scgi`, with the variables of [`super::server::Profile::Scgi`]
    /// (the SCGI specification's own example: the path only in `REQUEST_URI`). SCGI requires
    /// `CONTENT_LENGTH` (section 3), so a chunked upload goes with its length, as nginx sends it
    /// after buffering.
    Scgi,
    /// Our raw HTTP/1.1 client on `--http`: real chunked framing, real `Expect: 100-continue`.
    Http,
    /// The binary run as a CGI program (RFC 3875) with the environment of
    /// [`super::server::Profile::Cgi`] and the body on stdin. CGI defines a body only through
    /// `CONTENT_LENGTH` (section 4.2), so a chunked upload goes with its length, as a server
    /// that buffers it (lighttpd) passes it; tests/parity.rs checks what happens without it.
    Cgi,
    /// nginx `fastcgi_pass`, stock `fastcgi_params`, request buffering on.
    NginxFastCgi,
    /// nginx `fastcgi_pass` with `fastcgi_request_buffering off`: chunked uploads stream
    /// through without `CONTENT_LENGTH`.
    NginxFastCgiStreamed,
    /// nginx `scgi_pass`, stock `scgi_params`.
    NginxScgi,
    /// nginx `proxy_pass` to `--http` (HTTP/1.1 upstream, `Host $host`, `X-Forwarded-For`).
    /// By design the app sees no `Connection`, `Transfer-Encoding` or `Expect` (hop-by-hop,
    /// or answered by nginx itself) and an `X-Forwarded-For` the client did not send.
    NginxProxy,
    /// nginx `uwsgi_pass` to `--uwsgi`, stock `uwsgi_params` (the path only as `PATH_INFO`,
    /// `$document_uri`).
    NginxUwsgi,
}

impl Route {
    /// Every way in.
    pub const ALL: [Self; 9] = [
        Self::FastCgi,
        Self::Scgi,
        Self::Http,
        Self::Cgi,
        Self::NginxFastCgi,
        Self::NginxFastCgiStreamed,
        Self::NginxScgi,
        Self::NginxProxy,
        Self::NginxUwsgi,
    ];

    /// Whether the route ends in an HTTP exchange our client has (so `Expect: 100-continue`
    /// gets a real interim response, and HEAD a real bodiless answer).
    pub fn is_http(self) -> bool {
        !matches!(self, Self::FastCgi | Self::Scgi | Self::Cgi)
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::FastCgi => "fastcgi",
            Self::Scgi => "scgi",
            Self::Http => "http",
            Self::Cgi => "cgi",
            Self::NginxFastCgi => "nginx>fastcgi",
            Self::NginxFastCgiStreamed => "nginx>fastcgi(unbuffered)",
            Self::NginxScgi => "nginx>scgi",
            Self::NginxProxy => "nginx>http",
            Self::NginxUwsgi => "nginx>uwsgi",
        })
    }
}
