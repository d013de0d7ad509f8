//! The WSGI `environ` dict (PEP 3333, "environ Variables"): every CGI variable the front end
//! sent, as native strings (each byte one latin-1 character), the required ones filled in when
//! missing, and the `wsgi.*` keys.

use gatehouse_channel_request::{Env, Protocol, RequestInfo};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};

use crate::errors::Errors;
use crate::file_wrapper::FileWrapper;
use crate::input::Input;

/// Per-pool facts that go into every environ.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Flags {
    /// `wsgi.multithread`.
    pub(crate) multithread: bool,
    /// `wsgi.multiprocess`.
    pub(crate) multiprocess: bool,
}

/// Entries an environ holds before its dict grows: nginx's stock `fastcgi_params` (18), the
/// variables we add (`PATH_INFO`...), a browser's dozen request headers and the eleven `wsgi.*`
/// and `gatehouse.*` keys. Growing costs a reallocation and a rehash of every key per doubling.
const ENVIRON_ROOM: usize = 42;

/// The `wsgi.*` entries every environ of a pool starts with, made once per pool thread. Each
/// environ is a copy of it (CPython clones the table: one allocation and a copy instead of
/// hashing and inserting seven keys, and a table with room for the whole environ); the
/// entries that depend on the request are set on the copy.
pub(crate) struct Template(Py<PyDict>);

impl Template {
    pub(crate) fn new(py: Python<'_>, flags: Flags) -> PyResult<Self> {
        let template = crate::interpreter::presized_dict(py, ENVIRON_ROOM);
        template.set_item(intern!(py, "wsgi.version"), PyTuple::new(py, [1, 0])?)?;
        template.set_item(intern!(py, "wsgi.url_scheme"), intern!(py, "http"))?;
        template.set_item(intern!(py, "wsgi.multithread"), flags.multithread)?;
        template.set_item(intern!(py, "wsgi.multiprocess"), flags.multiprocess)?;
        template.set_item(intern!(py, "wsgi.run_once"), false)?;
        let file_wrapper = py.get_type::<FileWrapper>();
        template.set_item(intern!(py, "wsgi.file_wrapper"), file_wrapper)?;
        // The stream ends where the body ends, with or without CONTENT_LENGTH (chunked uploads).
        template.set_item(intern!(py, "wsgi.input_terminated"), true)?;
        Ok(Self(template.unbind()))
    }
}

/// Builds the environ for a request, with `input` as `wsgi.input`.
pub(crate) fn build<'py>(
    py: Python<'py>,
    env: &Env,
    input: &Bound<'py, Input>,
    info: &RequestInfo,
    template: &Template,
) -> PyResult<Bound<'py, PyDict>> {
    // `wsgi.version` is one tuple shared by every environ: tuples are immutable.
    let environ = template.0.bind(py).copy()?;
    for (name, value) in env.iter() {
        // PEP 3333: CONTENT_TYPE and CONTENT_LENGTH, never HTTP_CONTENT_*. A front end that
        // passed the header twice keeps the CGI names.
        if name.as_ref() == b"HTTP_CONTENT_TYPE" || name.as_ref() == b"HTTP_CONTENT_LENGTH" {
            continue;
        }
        environ.set_item(key(py, name), latin1(py, value))?;
    }
    fill_required(&environ, env)?;
    if is_https(env) {
        environ.set_item(intern!(py, "wsgi.url_scheme"), intern!(py, "https"))?;
    }
    environ.set_item(intern!(py, "wsgi.input"), input)?;
    let errors = Bound::new(py, Errors::new(info.clone()))?;
    environ.set_item(intern!(py, "wsgi.errors"), errors)?;
    if info.protocol == Protocol::Cgi {
        environ.set_item(intern!(py, "wsgi.run_once"), true)?;
    }
    environ.set_item(intern!(py, "gatehouse.request_id"), info.id)?;
    let protocol = match info.protocol {
        Protocol::FastCgi => intern!(py, "fastcgi"),
        Protocol::Scgi => intern!(py, "scgi"),
        Protocol::Cgi => intern!(py, "cgi"),
        Protocol::Http => intern!(py, "http"),
    };
    environ.set_item(intern!(py, "gatehouse.protocol"), protocol)?;
    Ok(environ)
}

/// Declares `key`: the CGI variables nearly every request carries (RFC 3875 and nginx's stock
/// `fastcgi_params`), then the commonest request headers.
macro_rules! interned_keys {
    ($($name:literal),* $(,)?) => {
        /// The environ key for CGI variable `name`. A well-known name is the interpreter's one
        /// interned string, made once: no allocation, no decoding, and its hash computed once
        /// instead of for every request (building the environ was a third of the instructions
        /// a hello request costs). Any other name (the set is the peer's to choose, so it is not
        /// cached) is a new string.
        fn key<'py>(py: Python<'py>, name: &[u8]) -> Bound<'py, PyString> {
            $(
                if name == $name.as_bytes() {
                    return intern!(py, $name).clone();
                }
            )*
            latin1(py, name)
        }
    };
}

interned_keys!(
    "REQUEST_METHOD",
    "QUERY_STRING",
    "CONTENT_TYPE",
    "CONTENT_LENGTH",
    "SCRIPT_NAME",
    "PATH_INFO",
    "REQUEST_URI",
    "DOCUMENT_URI",
    "DOCUMENT_ROOT",
    "SERVER_PROTOCOL",
    "REQUEST_SCHEME",
    "HTTPS",
    "GATEWAY_INTERFACE",
    "SERVER_SOFTWARE",
    "REMOTE_ADDR",
    "REMOTE_PORT",
    "REMOTE_USER",
    "SERVER_ADDR",
    "SERVER_PORT",
    "SERVER_NAME",
    "REDIRECT_STATUS",
    "SCRIPT_FILENAME",
    "PATH_TRANSLATED",
    "AUTH_TYPE",
    "HTTP_HOST",
    "HTTP_USER_AGENT",
    "HTTP_ACCEPT",
    "HTTP_ACCEPT_ENCODING",
    "HTTP_ACCEPT_LANGUAGE",
    "HTTP_CONNECTION",
    "HTTP_COOKIE",
    "HTTP_REFERER",
    "HTTP_CACHE_CONTROL",
    "HTTP_ORIGIN",
    "HTTP_AUTHORIZATION",
    "HTTP_X_FORWARDED_FOR",
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_REAL_IP",
    "HTTP_IF_MODIFIED_SINCE",
    "HTTP_IF_NONE_MATCH",
);

pub(crate) use crate::interpreter::latin1;

fn is_https(env: &Env) -> bool {
    env.is_https()
        || env
            .get("REQUEST_SCHEME")
            .is_some_and(|s| s.eq_ignore_ascii_case(b"https"))
}

/// The variables PEP 3333 requires, when the front end did not send them.
fn fill_required(environ: &Bound<'_, PyDict>, env: &Env) -> PyResult<()> {
    for (name, default) in [
        ("REQUEST_METHOD", "GET"),
        ("SCRIPT_NAME", ""),
        ("PATH_INFO", ""),
        ("QUERY_STRING", ""),
        ("SERVER_PROTOCOL", "HTTP/1.0"),
    ] {
        if env.get(name).is_none() {
            environ.set_item(key(environ.py(), name.as_bytes()), default)?;
        }
    }
    // "SCRIPT_NAME ... can never be '/'": the root mount is the empty string.
    if env.script_name() == b"/" {
        let py = environ.py();
        let mut path = b"/".to_vec();
        path.extend_from_slice(
            env.path_info()
                .strip_prefix(b"/")
                .unwrap_or(env.path_info()),
        );
        environ.set_item(intern!(py, "SCRIPT_NAME"), intern!(py, ""))?;
        environ.set_item(intern!(py, "PATH_INFO"), latin1(py, &path))?;
    }
    let empty = |name: &str| env.get(name).is_none_or(|v| v.is_empty());
    // SERVER_NAME and SERVER_PORT "can never be empty strings": from Host, else defaults.
    let host = env.get("HTTP_HOST").map(|h| h.as_ref()).unwrap_or_default();
    let (host_name, host_port) = split_host(host);
    if empty("SERVER_NAME") {
        let name = if host_name.is_empty() {
            b"localhost".as_slice()
        } else {
            host_name
        };
        environ.set_item(
            intern!(environ.py(), "SERVER_NAME"),
            latin1(environ.py(), name),
        )?;
    }
    if empty("SERVER_PORT") {
        let port = match host_port {
            Some(p) => p,
            None if is_https(env) => b"443".as_slice(),
            None => b"80".as_slice(),
        };
        environ.set_item(
            intern!(environ.py(), "SERVER_PORT"),
            latin1(environ.py(), port),
        )?;
    }
    Ok(())
}

/// `host[:port]` and `[v6]:port` split into the name and the port.
fn split_host(host: &[u8]) -> (&[u8], Option<&[u8]>) {
    let colon = match host.iter().rposition(|&b| b == b':') {
        Some(i) if !host[i..].contains(&b']') => i,
        _ => return (host, None),
    };
    let port = &host[colon + 1..];
    if port.is_empty() || !port.iter().all(u8::is_ascii_digit) {
        return (host, None);
    }
    (&host[..colon], Some(port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_the_names_interned_or_not() {
        crate::interpreter::ensure_started(None).unwrap();
        Python::attach(|py| {
            for name in [
                &b"REQUEST_METHOD"[..],
                b"HTTP_X_FORWARDED_FOR",
                b"HTTP_X_MINE",
                b"X_\xe9",
            ] {
                let want = latin1(py, name);
                assert_eq!(
                    key(py, name).to_cow().unwrap(),
                    want.to_cow().unwrap(),
                    "{name:?}"
                );
            }
            // Well-known names: one string object, made once.
            assert!(key(py, b"PATH_INFO").is(key(py, b"PATH_INFO")));
            assert!(!key(py, b"HTTP_X_MINE").is(key(py, b"HTTP_X_MINE")));
        });
    }

    #[test]
    fn host_split() {
        assert_eq!(
            split_host(b"example.org:8080"),
            (&b"example.org"[..], Some(&b"8080"[..]))
        );
        assert_eq!(split_host(b"example.org"), (&b"example.org"[..], None));
        assert_eq!(split_host(b"[::1]:81"), (&b"[::1]"[..], Some(&b"81"[..])));
        assert_eq!(split_host(b"[::1]"), (&b"[::1]"[..], None));
        assert_eq!(split_host(b"h:"), (&b"h:"[..], None));
    }
}
