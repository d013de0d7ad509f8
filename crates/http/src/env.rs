//! The request head as CGI meta-variables (RFC 3875 section 4.1), exactly as the other front
//! ends produce them.
//!
//! - `SCRIPT_NAME` is empty and `PATH_INFO` the whole percent-decoded path, dot segments
//!   resolved; the dispatcher re-splits it at the app's mount point.
//! - `QUERY_STRING` and `REQUEST_URI` are the raw bytes the client sent.
//! - `SERVER_NAME`/`SERVER_PORT` come from the absolute-form target's authority, else `Host`,
//!   else the local address (HTTP/1.0 without `Host`).
//! - Each other header becomes `HTTP_<NAME>` (RFC 3875 section 4.1.18), repeated fields joined
//!   with `", "` (`Cookie` with `"; "`, RFC 6265 section 5.4). A `Proxy` header is dropped
//!   (httpoxy: it would become `HTTP_PROXY`, which CGI programs read as their proxy setting), and
//!   so is every header whose name holds `_` (as nginx does): `X_Foo` and `X-Foo` would both be
//!   `HTTP_X_FOO`, so a client could spoof a variable a proxy in front of us had set; and so is
//!   every name with another byte than a letter, digit or `-` (`X.Y`, `A%`: nginx's
//!   `ignore_invalid_headers`), which would make a variable name no shell can read (found by
//!   the `request_env` fuzz target).

use std::borrow::Cow;
use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use gatehouse_channel_request::env::{self as cgi, percent_decode, Env};
use gatehouse_channel_request::Peer;
use http::header::{self, HeaderMap};
use http::request::Parts;
use http::Version;

use crate::error::Error;

/// `SERVER_SOFTWARE` (RFC 3875 section 4.1.17).
pub const SERVER_SOFTWARE: &str = concat!("gatehouse/", env!("CARGO_PKG_VERSION"));

/// `GATEWAY_INTERFACE` (RFC 3875 section 4.1.4).
pub const GATEWAY_INTERFACE: &str = "CGI/1.1";

/// The port a `Host` without one means: 80, since this front end speaks plain HTTP.
const DEFAULT_PORT: &str = "80";

/// Builds the CGI meta-variables of one request.
///
/// `content_length` is the body length hyper framed the request with when the client sent a
/// `Content-Length` (hyper has validated it); `None` for chunked or bodiless requests.
pub(crate) fn request_env(
    parts: &Parts,
    content_length: Option<u64>,
    peer: &Peer,
    local: Option<SocketAddr>,
) -> Result<Env, Error> {
    let mut env = Env::with_capacity(16 + parts.headers.len());
    let mut put = |name: &'static str, value: Bytes| {
        env.push_unchecked(Bytes::from_static(name.as_bytes()), value)
    };
    let path_and_query = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    put(
        cgi::REQUEST_METHOD,
        Bytes::copy_from_slice(parts.method.as_str().as_bytes()),
    );
    put(cgi::SCRIPT_NAME, Bytes::new());
    put(
        cgi::PATH_INFO,
        path_info(parts.uri.path().as_bytes())?.into(),
    );
    put(
        cgi::QUERY_STRING,
        Bytes::copy_from_slice(parts.uri.query().unwrap_or("").as_bytes()),
    );
    put(
        cgi::REQUEST_URI,
        Bytes::copy_from_slice(path_and_query.as_bytes()),
    );
    let (name, port, host_header) = server_name_port(parts, local)?;
    put(cgi::SERVER_NAME, name);
    put(cgi::SERVER_PORT, port);
    put(
        cgi::SERVER_PROTOCOL,
        Bytes::from_static(protocol(parts.version).as_bytes()),
    );
    put(
        cgi::SERVER_SOFTWARE,
        Bytes::from_static(SERVER_SOFTWARE.as_bytes()),
    );
    put(
        cgi::GATEWAY_INTERFACE,
        Bytes::from_static(GATEWAY_INTERFACE.as_bytes()),
    );
    match peer {
        Peer::Tcp(addr) => {
            // An IPv4 client of a dual-stack listener shows as 192.0.2.1, not ::ffff:192.0.2.1.
            put(
                cgi::REMOTE_ADDR,
                addr.ip().to_canonical().to_string().into(),
            );
            put(cgi::REMOTE_PORT, addr.port().to_string().into());
        }
        // RFC 3875 says REMOTE_ADDR MUST be set; a unix peer has no address.
        Peer::Unix(_) | Peer::Stdio => put(cgi::REMOTE_ADDR, Bytes::new()),
    }
    if let Some(ct) = joined(&parts.headers, &header::CONTENT_TYPE) {
        put(cgi::CONTENT_TYPE, ct);
    }
    if let Some(len) = content_length {
        put(cgi::CONTENT_LENGTH, len.to_string().into());
    }
    push_http_headers(&mut env, &parts.headers, host_header);
    Ok(env)
}

/// `SERVER_PROTOCOL` for a request's version.
fn protocol(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        _ => "HTTP/1.1",
    }
}

/// Adds `HTTP_*` for every header but `Content-Type`, `Content-Length`, `Proxy` and names with
/// bytes other than letters, digits and `-`. `host` replaces the `Host` header's value (for absolute-form targets).
fn push_http_headers(env: &mut Env, headers: &HeaderMap, host: Option<Bytes>) {
    for name in headers.keys() {
        if name == header::CONTENT_TYPE || name == header::CONTENT_LENGTH {
            continue;
        }
        let n = name.as_str();
        // nginx's `ignore_invalid_headers` (on by default) drops names with anything but
        // letters, digits and `-` (so `_`, which would alias a `-` name, and `.`, `%`, `!`...:
        // they would make odd variable names in a script's environment); `Proxy` is httpoxy.
        if n == "proxy" || !n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            tracing::debug!(
                header = n,
                "request header dropped (httpoxy / invalid name rule)"
            );
            continue;
        }
        let value = match (&host, name == header::HOST) {
            (Some(h), true) => h.clone(),
            _ => match joined(headers, name) {
                Some(v) => v,
                None => continue,
            },
        };
        env.push_unchecked(cgi::header_to_cgi_name(n.as_bytes()).into(), value);
    }
}

/// Every value of header `name`, joined with `", "` (`"; "` for `Cookie`).
fn joined(headers: &HeaderMap, name: &header::HeaderName) -> Option<Bytes> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    let Some(second) = values.next() else {
        return Some(Bytes::copy_from_slice(first.as_bytes()));
    };
    let sep: &[u8] = if name == header::COOKIE { b"; " } else { b", " };
    let mut out = BytesMut::from(first.as_bytes());
    for v in std::iter::once(second).chain(values) {
        out.extend_from_slice(sep);
        out.extend_from_slice(v.as_bytes());
    }
    Some(out.freeze())
}

/// `SERVER_NAME`, `SERVER_PORT`, and the value `HTTP_HOST` must carry when it differs from the
/// `Host` header (absolute-form target: RFC 9112 section 3.2.2 says its authority wins).
fn server_name_port(
    parts: &Parts,
    local: Option<SocketAddr>,
) -> Result<(Bytes, Bytes, Option<Bytes>), Error> {
    let mut hosts = parts.headers.get_all(header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        // RFC 9112 section 3.2: more than one Host line is a 400.
        return Err(Error::BadRequest {
            what: "more than one Host header",
            bytes: Vec::new(),
        });
    }
    if let Some(authority) = parts.uri.authority() {
        let (name, port) = split_host(authority.as_str().as_bytes())?;
        return Ok((
            name,
            port,
            Some(Bytes::copy_from_slice(authority.as_str().as_bytes())),
        ));
    }
    match host {
        Some(h) => {
            let (name, port) = split_host(h.as_bytes())?;
            Ok((name, port, None))
        }
        None if parts.version >= Version::HTTP_11 => {
            // RFC 9112 section 3.2: an HTTP/1.1 request without Host is a 400.
            Err(Error::BadRequest {
                what: "HTTP/1.1 request without Host",
                bytes: Vec::new(),
            })
        }
        None => Ok(match local {
            Some(addr) => (
                addr.ip().to_string().into(),
                addr.port().to_string().into(),
                None,
            ),
            None => (
                Bytes::from_static(b"localhost"),
                Bytes::from_static(DEFAULT_PORT.as_bytes()),
                None,
            ),
        }),
    }
}

/// Splits `host[:port]` (RFC 9110 section 7.2: `uri-host [ ":" port ]`), checking the grammar.
fn split_host(value: &[u8]) -> Result<(Bytes, Bytes), Error> {
    let bad = || Error::BadRequest {
        what: "invalid Host",
        bytes: value.to_vec(),
    };
    let (host, port) = if value.first() == Some(&b'[') {
        // IP-literal: "[" ( IPv6address / IPvFuture ) "]"
        let end = value.iter().position(|&b| b == b']').ok_or_else(bad)?;
        let inside = &value[1..end];
        if inside.is_empty()
            || !inside
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || b":.vV".contains(&b))
        {
            return Err(bad());
        }
        match &value[end + 1..] {
            [] => (&value[..=end], None),
            [b':', port @ ..] => (&value[..=end], Some(port)),
            _ => return Err(bad()),
        }
    } else {
        let (host, port) = match value.iter().rposition(|&b| b == b':') {
            Some(i) => (&value[..i], Some(&value[i + 1..])),
            None => (value, None),
        };
        if host.is_empty() || !host.iter().all(|&b| is_reg_name_byte(b)) {
            return Err(bad());
        }
        (host, port)
    };
    let port = match port {
        None | Some([]) => DEFAULT_PORT.as_bytes(),
        Some(p) if p.len() <= 5 && cgi::parse_decimal(p).is_some_and(|n| n <= 65535) => p,
        Some(_) => return Err(bad()),
    };
    Ok((Bytes::copy_from_slice(host), Bytes::copy_from_slice(port)))
}

/// RFC 3986 `reg-name` bytes: unreserved, pct-encoded (`%` and hex digits) and sub-delims.
fn is_reg_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=".contains(&b)
}

/// `PATH_INFO` for a request path: percent-decoded (RFC 3875 section 4.1.5: "not URL-encoded"),
/// then dot segments resolved (RFC 3986 section 5.2.4) so that `%2e%2e` cannot climb out of a
/// mount point. A `%00`, or `..` above the root, is a 400.
pub(crate) fn path_info(raw: &[u8]) -> Result<Vec<u8>, Error> {
    let decoded = percent_decode(raw);
    if decoded.contains(&0) {
        return Err(Error::BadRequest {
            what: "NUL byte in path",
            bytes: raw.to_vec(),
        });
    }
    let resolved = cgi::remove_dot_segments(&decoded).ok_or_else(|| Error::BadRequest {
        what: "path climbs above the root",
        bytes: raw.to_vec(),
    })?;
    // Borrowed: no dot segment, `decoded` is the answer as it is (no copy).
    let resolved = match resolved {
        Cow::Owned(path) => Some(path),
        Cow::Borrowed(_) => None,
    };
    Ok(resolved.unwrap_or(decoded))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(head: &[(&str, &str)], target: &str, version: Version) -> Parts {
        let mut b = http::Request::builder()
            .method("POST")
            .uri(target)
            .version(version);
        for (n, v) in head {
            b = b.header(*n, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    fn env_of(head: &[(&str, &str)], target: &str) -> Env {
        let peer = Peer::Tcp("192.0.2.7:5123".parse().unwrap());
        request_env(&parts(head, target, Version::HTTP_11), Some(3), &peer, None).unwrap()
    }

    fn var<'a>(env: &'a Env, name: &str) -> &'a [u8] {
        env.get(name).map_or(b"<unset>", |v| v.as_ref())
    }

    #[test]
    fn request_line_variables() {
        let env = env_of(&[("Host", "example.org:8080")], "/a%2Fb/c%20d?x=%41&y=a+b");
        assert_eq!(var(&env, "REQUEST_METHOD"), b"POST");
        assert_eq!(var(&env, "SCRIPT_NAME"), b"");
        assert_eq!(var(&env, "PATH_INFO"), b"/a/b/c d");
        assert_eq!(var(&env, "QUERY_STRING"), b"x=%41&y=a+b");
        assert_eq!(var(&env, "REQUEST_URI"), b"/a%2Fb/c%20d?x=%41&y=a+b");
        assert_eq!(var(&env, "SERVER_NAME"), b"example.org");
        assert_eq!(var(&env, "SERVER_PORT"), b"8080");
        assert_eq!(var(&env, "SERVER_PROTOCOL"), b"HTTP/1.1");
        assert_eq!(var(&env, "GATEWAY_INTERFACE"), b"CGI/1.1");
        assert_eq!(var(&env, "REMOTE_ADDR"), b"192.0.2.7");
        assert_eq!(var(&env, "REMOTE_PORT"), b"5123");
        assert_eq!(var(&env, "CONTENT_LENGTH"), b"3");
        assert_eq!(var(&env, "HTTPS"), b"<unset>");
        assert_eq!(var(&env, "HTTP_HOST"), b"example.org:8080");
    }

    #[test]
    fn headers_joined_and_filtered() {
        let env = env_of(
            &[
                ("Host", "h"),
                ("X-Multi", "a"),
                ("Cookie", "a=1"),
                ("X-Multi", "b"),
                ("Cookie", "b=2"),
                ("Proxy", "http://evil:1"),
                ("X_Forwarded_For", "spoof"),
                ("X.Dotted", "odd"),
                ("Fine-Name9", "ok"),
                ("Content-Type", "text/plain"),
                ("Content-Length", "3"),
            ],
            "/",
        );
        assert_eq!(var(&env, "HTTP_X_MULTI"), b"a, b");
        assert_eq!(var(&env, "HTTP_COOKIE"), b"a=1; b=2");
        assert_eq!(var(&env, "HTTP_PROXY"), b"<unset>");
        assert_eq!(var(&env, "HTTP_X_FORWARDED_FOR"), b"<unset>");
        assert_eq!(var(&env, "HTTP_X.DOTTED"), b"<unset>");
        assert_eq!(var(&env, "HTTP_FINE_NAME9"), b"ok");
        assert_eq!(var(&env, "CONTENT_TYPE"), b"text/plain");
        assert_eq!(var(&env, "HTTP_CONTENT_TYPE"), b"<unset>");
        assert_eq!(var(&env, "HTTP_CONTENT_LENGTH"), b"<unset>");
        assert_eq!(var(&env, "SERVER_PORT"), b"80");
    }

    #[test]
    fn host_rules() {
        let peer = Peer::Tcp("127.0.0.1:1".parse().unwrap());
        let local = Some("127.0.0.1:8000".parse().unwrap());
        let p = parts(&[], "/", Version::HTTP_11);
        assert!(matches!(
            request_env(&p, None, &peer, local),
            Err(Error::BadRequest { .. })
        ));
        let p = parts(&[], "/", Version::HTTP_10);
        let env = request_env(&p, None, &peer, local).unwrap();
        assert_eq!(
            (var(&env, "SERVER_NAME"), var(&env, "SERVER_PORT")),
            (&b"127.0.0.1"[..], &b"8000"[..])
        );
        assert_eq!(var(&env, "SERVER_PROTOCOL"), b"HTTP/1.0");
        let p = parts(&[("Host", "a"), ("Host", "b")], "/", Version::HTTP_11);
        assert!(request_env(&p, None, &peer, local).is_err());
        let p = parts(
            &[("Host", "ignored")],
            "http://real.example:81/x?q",
            Version::HTTP_11,
        );
        let env = request_env(&p, None, &peer, local).unwrap();
        assert_eq!(var(&env, "SERVER_NAME"), b"real.example");
        assert_eq!(var(&env, "SERVER_PORT"), b"81");
        assert_eq!(var(&env, "HTTP_HOST"), b"real.example:81");
        assert_eq!(var(&env, "REQUEST_URI"), b"/x?q");
        for (host, name, port) in [
            ("[::1]:9", "[::1]", "9"),
            ("[::1]", "[::1]", "80"),
            ("h:", "h", "80"),
        ] {
            let (n, p) = split_host(host.as_bytes()).unwrap();
            assert_eq!(
                (&n[..], &p[..]),
                (name.as_bytes(), port.as_bytes()),
                "{host}"
            );
        }
        for bad in ["", "a b", "h:99999", "h:x", "[::1", "[zz]", "[::1]x", "a/b"] {
            assert!(split_host(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn mapped_ipv4_peer_is_canonical() {
        let peer = Peer::Tcp("[::ffff:192.0.2.9]:80".parse().unwrap());
        let p = parts(&[("Host", "h")], "/", Version::HTTP_11);
        let env = request_env(&p, None, &peer, None).unwrap();
        assert_eq!(var(&env, "REMOTE_ADDR"), b"192.0.2.9");
        assert_eq!(var(&env, "CONTENT_LENGTH"), b"<unset>");
    }

    #[test]
    fn paths() {
        assert_eq!(path_info(b"/a/./b/../c").unwrap(), b"/a/c");
        assert_eq!(path_info(b"/a/%2e%2e/b").unwrap(), b"/b");
        assert_eq!(path_info(b"/a/..").unwrap(), b"/");
        assert_eq!(path_info(b"/a/b/.").unwrap(), b"/a/b/");
        assert_eq!(path_info(b"//x//y").unwrap(), b"//x//y");
        assert_eq!(path_info(b"/").unwrap(), b"/");
        assert_eq!(path_info(b"/%zz%4").unwrap(), b"/%zz%4");
        assert_eq!(path_info(b"/caf%C3%A9").unwrap(), "/café".as_bytes());
        assert!(path_info(b"/..").is_err());
        assert!(path_info(b"/a/%2e%2e/%2E%2E/x").is_err());
        assert!(path_info(b"/a%00b").is_err());
    }

    #[test]
    fn decoding_edges() {
        assert_eq!(percent_decode(b"%41%4a"), b"AJ");
        assert_eq!(percent_decode(b"%"), b"%");
        assert_eq!(percent_decode(b"%4"), b"%4");
        assert_eq!(percent_decode(b"a%2"), b"a%2");
        assert_eq!(percent_decode(b"%41"), b"A");
    }
}
