//! CGI meta-variables (RFC 3875 section 4.1) stored as bytes, with typed accessors.
//!
//! Every front end produces an [`Env`]: FastCGI and SCGI copy their name-value pairs, the CGI front
//! end copies its process environment, the HTTP front end translates the request line and headers.
//! Values are bytes because nothing in the wire formats promises UTF-8.

use std::borrow::Cow;

use bytes::Bytes;

/// `REQUEST_METHOD` (RFC 3875 section 4.1.12).
pub const REQUEST_METHOD: &str = "REQUEST_METHOD";
/// `SCRIPT_NAME` (RFC 3875 section 4.1.13).
pub const SCRIPT_NAME: &str = "SCRIPT_NAME";
/// `PATH_INFO` (RFC 3875 section 4.1.5).
pub const PATH_INFO: &str = "PATH_INFO";
/// `QUERY_STRING` (RFC 3875 section 4.1.7).
pub const QUERY_STRING: &str = "QUERY_STRING";
/// `CONTENT_TYPE` (RFC 3875 section 4.1.3).
pub const CONTENT_TYPE: &str = "CONTENT_TYPE";
/// `CONTENT_LENGTH` (RFC 3875 section 4.1.2).
pub const CONTENT_LENGTH: &str = "CONTENT_LENGTH";
/// `SERVER_NAME` (RFC 3875 section 4.1.14).
pub const SERVER_NAME: &str = "SERVER_NAME";
/// `SERVER_PORT` (RFC 3875 section 4.1.15).
pub const SERVER_PORT: &str = "SERVER_PORT";
/// `SERVER_PROTOCOL` (RFC 3875 section 4.1.16).
pub const SERVER_PROTOCOL: &str = "SERVER_PROTOCOL";
/// `SERVER_SOFTWARE` (RFC 3875 section 4.1.17).
pub const SERVER_SOFTWARE: &str = "SERVER_SOFTWARE";
/// `GATEWAY_INTERFACE` (RFC 3875 section 4.1.4).
pub const GATEWAY_INTERFACE: &str = "GATEWAY_INTERFACE";
/// `REMOTE_ADDR` (RFC 3875 section 4.1.8).
pub const REMOTE_ADDR: &str = "REMOTE_ADDR";
/// `REMOTE_PORT` (common extension).
pub const REMOTE_PORT: &str = "REMOTE_PORT";
/// `REMOTE_HOST` (RFC 3875 section 4.1.9).
pub const REMOTE_HOST: &str = "REMOTE_HOST";
/// `HTTPS` (common extension: `on` when the client used TLS).
pub const HTTPS: &str = "HTTPS";
/// `REQUEST_URI` (common extension: the raw request target).
pub const REQUEST_URI: &str = "REQUEST_URI";
/// `DOCUMENT_URI` (nginx extension: the normalised path).
pub const DOCUMENT_URI: &str = "DOCUMENT_URI";
/// `SCRIPT_FILENAME` (common extension: the script's file path).
pub const SCRIPT_FILENAME: &str = "SCRIPT_FILENAME";
/// `DOCUMENT_ROOT` (common extension).
pub const DOCUMENT_ROOT: &str = "DOCUMENT_ROOT";

/// The request's meta-variables, in the order the front end gave them.
///
/// Names are unique: [`Env::set`] replaces an earlier value. Lookups are linear, which is faster
/// than hashing for the 20 to 40 variables a request carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Env {
    vars: Vec<(Bytes, Bytes)>,
}

impl Env {
    /// An empty environment.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty environment with room for `n` variables.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            vars: Vec::with_capacity(n),
        }
    }

    /// The value of `name`, if set.
    pub fn get(&self, name: impl AsRef<[u8]>) -> Option<&Bytes> {
        let name = name.as_ref();
        self.vars.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// The value of `name`, or an empty slice when unset.
    pub fn get_or_empty(&self, name: impl AsRef<[u8]>) -> &[u8] {
        self.get(name).map_or(&[], |v| v.as_ref())
    }

    /// The value of `name` as UTF-8 text, if set and valid.
    pub fn get_str(&self, name: impl AsRef<[u8]>) -> Option<&str> {
        self.get(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Whether `name` is set (possibly to an empty value).
    pub fn contains(&self, name: impl AsRef<[u8]>) -> bool {
        self.get(name).is_some()
    }

    /// Sets `name` to `value`, replacing an earlier value in place.
    pub fn set(&mut self, name: impl Into<Bytes>, value: impl Into<Bytes>) {
        let name = name.into();
        let value = value.into();
        match self.vars.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.vars.push((name, value)),
        }
    }

    /// Appends without looking for an earlier value. For front ends that already know the name is
    /// new (the wire format forbids duplicates, or the caller checked).
    pub fn push_unchecked(&mut self, name: Bytes, value: Bytes) {
        self.vars.push((name, value));
    }

    /// Removes `name`, returning its value.
    pub fn remove(&mut self, name: impl AsRef<[u8]>) -> Option<Bytes> {
        let name = name.as_ref();
        let i = self.vars.iter().position(|(n, _)| n == name)?;
        Some(self.vars.remove(i).1)
    }

    /// The variables in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&Bytes, &Bytes)> {
        self.vars.iter().map(|(n, v)| (n, v))
    }

    /// How many variables are set.
    pub fn len(&self) -> usize {
        self.vars.len()
    }

    /// Whether no variable is set.
    pub fn is_empty(&self) -> bool {
        self.vars.is_empty()
    }

    /// `REQUEST_METHOD`, empty when unset.
    pub fn method(&self) -> &[u8] {
        self.get_or_empty(REQUEST_METHOD)
    }

    /// `SCRIPT_NAME`, empty when unset.
    pub fn script_name(&self) -> &[u8] {
        self.get_or_empty(SCRIPT_NAME)
    }

    /// `PATH_INFO`, empty when unset.
    pub fn path_info(&self) -> &[u8] {
        self.get_or_empty(PATH_INFO)
    }

    /// The request path as the app sees it: `SCRIPT_NAME` followed by `PATH_INFO`.
    pub fn path(&self) -> Vec<u8> {
        let mut p = self.script_name().to_vec();
        p.extend_from_slice(self.path_info());
        p
    }

    /// `QUERY_STRING`, empty when unset.
    pub fn query(&self) -> &[u8] {
        self.get_or_empty(QUERY_STRING)
    }

    /// `CONTENT_LENGTH` parsed: `Ok(None)` when unset or empty (nginx sends it empty for bodiless
    /// requests), `Err` with the raw value when it is not a decimal number.
    pub fn content_length(&self) -> Result<Option<u64>, Bytes> {
        match self.get(CONTENT_LENGTH) {
            None => Ok(None),
            Some(v) if v.is_empty() => Ok(None),
            Some(v) => parse_decimal(v).map(Some).ok_or_else(|| v.clone()),
        }
    }

    /// Whether the client used TLS (`HTTPS` is `on` or `1`, case-insensitively).
    pub fn is_https(&self) -> bool {
        self.get(HTTPS)
            .is_some_and(|v| v.eq_ignore_ascii_case(b"on") || v.as_ref() == b"1")
    }

    /// The value of the HTTP request header `name` (e.g. `Content-Type`, `user-agent`), found under
    /// its CGI name: `CONTENT_TYPE` and `CONTENT_LENGTH` as such, others as `HTTP_*`.
    pub fn header(&self, name: &str) -> Option<&Bytes> {
        self.get(header_to_cgi_name(name.as_bytes()))
    }

    /// The `HTTP_*` variables as `(lower-case-header-name, value)` pairs, in insertion order.
    pub fn http_headers(&self) -> impl Iterator<Item = (String, &Bytes)> {
        self.vars.iter().filter_map(|(n, v)| {
            let rest = n.strip_prefix(b"HTTP_")?;
            Some((cgi_to_header_name(rest), v))
        })
    }
}

impl FromIterator<(Bytes, Bytes)> for Env {
    fn from_iter<I: IntoIterator<Item = (Bytes, Bytes)>>(iter: I) -> Self {
        let mut env = Self::new();
        for (n, v) in iter {
            env.set(n, v);
        }
        env
    }
}

/// The CGI variable name for HTTP header `name`: `Content-Type` → `CONTENT_TYPE`,
/// `Content-Length` → `CONTENT_LENGTH`, `X-Foo` → `HTTP_X_FOO` (RFC 3875 section 4.1.18).
pub fn header_to_cgi_name(name: &[u8]) -> Vec<u8> {
    let upper: Vec<u8> = name
        .iter()
        .map(|b| match b {
            b'-' => b'_',
            b => b.to_ascii_uppercase(),
        })
        .collect();
    if upper == b"CONTENT_TYPE" || upper == b"CONTENT_LENGTH" {
        return upper;
    }
    let mut out = Vec::with_capacity(5 + upper.len());
    out.extend_from_slice(b"HTTP_");
    out.extend_from_slice(&upper);
    out
}

/// The lower-case HTTP header name for the part of a CGI name after `HTTP_`: `X_FOO` → `x-foo`.
pub fn cgi_to_header_name(rest: &[u8]) -> String {
    rest.iter()
        .map(|b| match b {
            b'_' => '-',
            b => char::from(b.to_ascii_lowercase()),
        })
        .collect()
}

/// Decodes `%XX` escapes (RFC 3986 section 2.1); a `%` not followed by two hex digits is kept
/// as it is. Every front end and app that turns a raw request target into a CGI path uses this.
pub fn percent_decode(input: &[u8]) -> Vec<u8> {
    let hex = |b: u8| char::from(b).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'%' && i + 2 < input.len() {
            if let (Some(h), Some(l)) = (hex(input[i + 1]), hex(input[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(input[i]);
        i += 1;
    }
    out
}

/// Removes the `.` and `..` segments of an absolute path (RFC 3986 section 5.2.4), so that a
/// request path such as `/app/%2e%2e/admin` (once percent-decoded) cannot name something outside
/// the mount point its prefix matches. `None` when a `..` would climb above the root (the front
/// ends answer 400). A path without dot segments, or not starting with `/`, comes back borrowed,
/// as it is.
///
/// ```
/// # use gatehouse_channel_request::env::remove_dot_segments;
/// assert_eq!(remove_dot_segments(b"/a/./b/../c").as_deref(), Some(&b"/a/c"[..]));
/// assert_eq!(remove_dot_segments(b"/a/..").as_deref(), Some(&b"/"[..]));
/// assert_eq!(remove_dot_segments(b"/.."), None);
/// ```
pub fn remove_dot_segments(path: &[u8]) -> Option<Cow<'_, [u8]>> {
    let is_dot = |s: &[u8]| s == b"." || s == b"..";
    if path.first() != Some(&b'/') || !path.split(|&b| b == b'/').any(is_dot) {
        return Some(Cow::Borrowed(path));
    }
    let segments: Vec<&[u8]> = path[1..].split(|&b| b == b'/').collect();
    let last = segments.len() - 1;
    let mut out: Vec<&[u8]> = Vec::with_capacity(segments.len());
    for (i, seg) in segments.into_iter().enumerate() {
        match seg {
            b"." => {}
            b".." => {
                out.pop()?;
            }
            s => out.push(s),
        }
        // A final `.` or `..` leaves the path ending in `/` (section 5.2.4, step 2.B/C).
        if i == last && is_dot(seg) {
            out.push(b"");
        }
    }
    let mut joined = Vec::with_capacity(path.len());
    for seg in out {
        joined.push(b'/');
        joined.extend_from_slice(seg);
    }
    if joined.is_empty() {
        joined.push(b'/');
    }
    Some(Cow::Owned(joined))
}

/// Parses an unsigned decimal number made only of ASCII digits, without overflow.
pub fn parse_decimal(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 {
        return None;
    }
    v.iter().try_fold(0u64, |acc, &b| {
        if b.is_ascii_digit() {
            acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        pairs
            .iter()
            .map(|(n, v)| (Bytes::from(n.to_string()), Bytes::from(v.to_string())))
            .collect()
    }

    #[test]
    fn set_replaces_in_place() {
        let mut e = env(&[("A", "1"), ("B", "2")]);
        e.set("A", "3");
        let names: Vec<_> = e.iter().map(|(n, v)| (n.clone(), v.clone())).collect();
        assert_eq!(names[0], (Bytes::from("A"), Bytes::from("3")));
        assert_eq!(e.len(), 2);
    }

    #[test]
    fn content_length_empty_means_absent() {
        assert_eq!(env(&[("CONTENT_LENGTH", "")]).content_length(), Ok(None));
        assert_eq!(env(&[]).content_length(), Ok(None));
        assert_eq!(
            env(&[("CONTENT_LENGTH", "42")]).content_length(),
            Ok(Some(42))
        );
        assert!(env(&[("CONTENT_LENGTH", "-1")]).content_length().is_err());
        assert!(env(&[("CONTENT_LENGTH", "1 ")]).content_length().is_err());
        assert!(env(&[("CONTENT_LENGTH", "99999999999999999999")])
            .content_length()
            .is_err());
    }

    #[test]
    fn header_lookup_uses_cgi_names() {
        let e = env(&[("CONTENT_TYPE", "text/plain"), ("HTTP_X_FOO_BAR", "1")]);
        assert_eq!(
            e.header("Content-Type").map(|v| v.as_ref()),
            Some(&b"text/plain"[..])
        );
        assert_eq!(e.header("x-foo-bar").map(|v| v.as_ref()), Some(&b"1"[..]));
        let hs: Vec<_> = e.http_headers().map(|(n, _)| n).collect();
        assert_eq!(hs, vec!["x-foo-bar".to_string()]);
    }

    #[test]
    fn path_joins_script_name_and_path_info() {
        let e = env(&[("SCRIPT_NAME", "/app"), ("PATH_INFO", "/x/y")]);
        assert_eq!(e.path(), b"/app/x/y");
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode(b"%41%4a%zz%4"), b"AJ%zz%4");
        assert_eq!(percent_decode(b"%"), b"%");
        assert_eq!(percent_decode(b"a%2Fb%20"), b"a/b ");
    }

    #[test]
    fn dot_segments() {
        let r =
            |p: &[u8]| remove_dot_segments(p).map(|v| String::from_utf8(v.into_owned()).unwrap());
        assert_eq!(r(b"/a/./b/../c").as_deref(), Some("/a/c"));
        assert_eq!(r(b"/a/..").as_deref(), Some("/"));
        assert_eq!(r(b"/a/b/.").as_deref(), Some("/a/b/"));
        assert_eq!(r(b"/a/b/..").as_deref(), Some("/a/"));
        assert_eq!(r(b"//x//y").as_deref(), Some("//x//y"));
        assert_eq!(r(b"/x/..//y").as_deref(), Some("//y"));
        assert_eq!(r(b"/...").as_deref(), Some("/..."));
        assert_eq!(r(b"/a..b/c.").as_deref(), Some("/a..b/c."));
        assert_eq!(r(b"/").as_deref(), Some("/"));
        assert_eq!(r(b"").as_deref(), Some(""));
        assert_eq!(r(b"a/../b").as_deref(), Some("a/../b"));
        assert_eq!(r(b"/.."), None);
        assert_eq!(r(b"/a/../../x"), None);
    }

    #[test]
    fn https_flag() {
        assert!(env(&[("HTTPS", "on")]).is_https());
        assert!(env(&[("HTTPS", "ON")]).is_https());
        assert!(!env(&[("HTTPS", "off")]).is_https());
        assert!(!env(&[]).is_https());
    }
}
