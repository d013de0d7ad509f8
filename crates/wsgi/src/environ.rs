//! The WSGI `environ` dict (PEP 3333, "environ Variables"): every CGI variable the front end
//! sent, as native strings (each byte one latin-1 character), the required ones filled in when
//! missing, and the `wsgi.*` keys.

use gatehouse_channel_request::{Env, Protocol, RequestInfo};
use std::cell::RefCell;

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

/// What every environ of a pool thread starts from, made once per thread:
/// - the `wsgi.*` entries that are the same for every request, in a dict whose table has room
///   for a whole environ. Each environ is a copy of it (CPython clones the table: one
///   allocation and a copy instead of hashing and inserting seven keys, and no resize as the
///   CGI variables go in); the entries that depend on the request are set on the copy;
/// - the well-known CGI names as the interpreter's interned strings (no allocation, no
///   decoding, the hash computed once instead of per request);
/// - the last value string made for each well-known name: most of them (`SERVER_SOFTWARE`,
///   `SERVER_NAME`, `DOCUMENT_ROOT`, `REQUEST_METHOD`, `HTTP_HOST`...) are the same from one
///   request to the next, and a `str` is immutable, so an equal value reuses the object
///   instead of making and freeing one per request.
pub(crate) struct Template {
    dict: Py<PyDict>,
    keys: Vec<Py<PyString>>,
    values: RefCell<Vec<Option<Py<PyString>>>>,
}

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
        let keys = WELL_KNOWN
            .iter()
            .map(|name| PyString::intern(py, name).unbind())
            .collect();
        Ok(Self {
            dict: template.unbind(),
            keys,
            values: RefCell::new(WELL_KNOWN.iter().map(|_| None).collect()),
        })
    }

    /// The environ key for CGI variable `name`: the interned string of a well-known name, else
    /// a new string (the set is the peer's to choose, so it is not cached).
    fn key<'py>(&self, py: Python<'py>, name: &[u8]) -> Bound<'py, PyString> {
        match slot(name) {
            Some(i) => self.keys[i].bind(py).clone(),
            None => latin1(py, name),
        }
    }

    /// The entry for CGI variable `name` = `value`.
    fn entry<'py>(
        &self,
        py: Python<'py>,
        name: &[u8],
        value: &[u8],
    ) -> (Bound<'py, PyString>, Bound<'py, PyString>) {
        let Some(i) = slot(name) else {
            return (latin1(py, name), latin1(py, value));
        };
        let key = self.keys[i].bind(py).clone();
        let mut values = self.values.borrow_mut();
        if let Some(last) = &values[i] {
            let last = last.bind(py);
            // An ASCII str's UTF-8 form is its latin-1 form, read in place. Any other value
            // is not compared (a miss), so a match is always exact.
            if last
                .to_str()
                .is_ok_and(|s| s.is_ascii() && s.as_bytes() == value)
            {
                return (key, last.clone());
            }
        }
        let fresh = latin1(py, value);
        values[i] = Some(fresh.clone().unbind());
        (key, fresh)
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
    let environ = template.dict.bind(py).copy()?;
    for (name, value) in env.iter() {
        // PEP 3333: CONTENT_TYPE and CONTENT_LENGTH, never HTTP_CONTENT_*. A front end that
        // passed the header twice keeps the CGI names.
        if name.as_ref() == b"HTTP_CONTENT_TYPE" || name.as_ref() == b"HTTP_CONTENT_LENGTH" {
            continue;
        }
        let (key, value) = template.entry(py, name, value);
        environ.set_item(key, value)?;
    }
    fill_required(&environ, env, template)?;
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
        Protocol::Uwsgi => intern!(py, "uwsgi"),
    };
    environ.set_item(intern!(py, "gatehouse.protocol"), protocol)?;
    Ok(environ)
}

/// Declares `WELL_KNOWN` and `slot`: the CGI variables nearly every request carries (RFC 3875
/// and nginx's stock `fastcgi_params`), then the commonest request headers.
macro_rules! well_known {
    ($($name:literal),* $(,)?) => {
        /// CGI names whose key strings (and last values) each pool thread keeps.
        const WELL_KNOWN: &[&str] = &[$($name),*];

        /// The index of a well-known name in [`WELL_KNOWN`]. Unrolled: each test is a length
        /// check and a compare with a constant (a search of the array called `memcmp` for
        /// every name of the same length).
        #[allow(unused_assignments)] // reason: the counter's last increment is never read.
        fn slot(name: &[u8]) -> Option<usize> {
            let mut i = 0;
            $(
                if name == $name.as_bytes() {
                    return Some(i);
                }
                i += 1;
            )*
            None
        }
    };
}

well_known!(
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
    "FCGI_ROLE",
);

pub(crate) use crate::interpreter::latin1;

fn is_https(env: &Env) -> bool {
    env.is_https()
        || env
            .get("REQUEST_SCHEME")
            .is_some_and(|s| s.eq_ignore_ascii_case(b"https"))
}

/// The variables PEP 3333 requires, when the front end did not send them.
fn fill_required(environ: &Bound<'_, PyDict>, env: &Env, template: &Template) -> PyResult<()> {
    for (name, default) in [
        ("REQUEST_METHOD", "GET"),
        ("SCRIPT_NAME", ""),
        ("PATH_INFO", ""),
        ("QUERY_STRING", ""),
        ("SERVER_PROTOCOL", "HTTP/1.0"),
    ] {
        if env.get(name).is_none() {
            environ.set_item(template.key(environ.py(), name.as_bytes()), default)?;
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
            let flags = Flags {
                multithread: true,
                multiprocess: false,
            };
            let template = Template::new(py, flags).unwrap();
            for name in [
                &b"REQUEST_METHOD"[..],
                b"HTTP_X_FORWARDED_FOR",
                b"HTTP_X_MINE",
                b"X_\xe9",
            ] {
                let want = latin1(py, name);
                assert_eq!(
                    template.key(py, name).to_cow().unwrap(),
                    want.to_cow().unwrap(),
                    "{name:?}"
                );
            }
            // Well-known names: one string object, made once.
            let key = |name| template.key(py, name);
            assert!(key(b"PATH_INFO").is(key(b"PATH_INFO")));
            assert!(key(b"PATH_INFO").is(intern!(py, "PATH_INFO")));
            assert!(!key(b"HTTP_X_MINE").is(key(b"HTTP_X_MINE")));
        });
    }

    #[test]
    fn equal_values_reuse_the_last_string() {
        crate::interpreter::ensure_started(None).unwrap();
        Python::attach(|py| {
            let flags = Flags {
                multithread: true,
                multiprocess: false,
            };
            let template = Template::new(py, flags).unwrap();
            let value = |name: &[u8], value: &[u8]| template.entry(py, name, value).1;
            let first = value(b"SERVER_NAME", b"example.org");
            assert!(value(b"SERVER_NAME", b"example.org").is(&first));
            let other = value(b"SERVER_NAME", b"example.net");
            assert_eq!(other.to_cow().unwrap(), "example.net");
            assert!(!other.is(&first));
            // Not ASCII: never taken from the cache, always decoded as latin-1.
            let e = value(b"SERVER_NAME", b"caf\xe9");
            assert_eq!(e.to_cow().unwrap(), "caf\u{e9}");
            assert_eq!(
                value(b"SERVER_NAME", b"caf\xe9").to_cow().unwrap(),
                "caf\u{e9}"
            );
            // Names that are not well known are new strings each time.
            assert!(!value(b"HTTP_X_MINE", b"abc").is(value(b"HTTP_X_MINE", b"abc")));
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
