//! The web server our direct clients stand in for: how it turns a [`Case`] into CGI
//! meta-variables (RFC 3875 section 4.1) for FastCGI, SCGI and CGI.
//!
//! It copies what nginx 1.22 sends, so that the front ends meet the same input directly as
//! through nginx: every header field as `HTTP_*` except names holding `_`; `Proxy`,
//! `Content-Length` and `Content-Type` included (nginx passes `HTTP_PROXY`,
//! `HTTP_CONTENT_LENGTH` and `HTTP_CONTENT_TYPE` on: the front ends must drop them); a repeated
//! field as one pair per line (nginx before 1.23), except in a CGI environment, which cannot
//! hold a name twice (there it is joined, as Apache does). The path variables differ per
//! [`Profile`], to cover each place the dispatcher finds the path in.

use super::case::{Case, Framing};

/// Which web server's choice of path variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// RFC 3875 with the app mounted at `/` (Apache `mod_proxy_fcgi`, lighttpd):
    /// `SCRIPT_NAME` empty, `PATH_INFO` the decoded path, `REQUEST_URI` raw.
    FastCgi,
    /// The SCGI specification's example (section 3): `REQUEST_METHOD` and `REQUEST_URI` (raw),
    /// no `SCRIPT_NAME`/`PATH_INFO`/`DOCUMENT_URI`: the path comes from `REQUEST_URI`.
    Scgi,
    /// A CGI program at [`super::CGI_SCRIPT_NAME`] (Apache `ScriptAlias`): `SCRIPT_NAME` its
    /// URL path, `PATH_INFO` the decoded rest.
    Cgi,
}

/// The variables for `case`. `CONTENT_LENGTH` is left out when `with_length` is false (a
/// streamed FastCGI body); for SCGI the client puts it first itself.
pub fn cgi_vars(case: &Case, profile: Profile, with_length: bool) -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = vec![
        ("GATEWAY_INTERFACE".into(), "CGI/1.1".into()),
        ("SERVER_SOFTWARE".into(), "parity-test".into()),
        ("SERVER_PROTOCOL".into(), "HTTP/1.1".into()),
        ("SERVER_NAME".into(), "localhost".into()),
        ("SERVER_PORT".into(), "80".into()),
        ("REMOTE_ADDR".into(), "127.0.0.1".into()),
        ("REMOTE_PORT".into(), "40000".into()),
        ("REQUEST_METHOD".into(), case.method.into()),
        ("REQUEST_URI".into(), case.target.clone()),
        ("QUERY_STRING".into(), case.raw_query().into()),
    ];
    match profile {
        Profile::FastCgi => {
            vars.push(("SCRIPT_NAME".into(), String::new()));
            vars.push(("PATH_INFO".into(), case.cgi_path()));
        }
        Profile::Scgi => {}
        Profile::Cgi => {
            vars.push(("SCRIPT_NAME".into(), super::CGI_SCRIPT_NAME.into()));
            vars.push(("PATH_INFO".into(), case.cgi_path()));
        }
    }
    let has_body = case.framing != Framing::None;
    if has_body && with_length && profile != Profile::Scgi {
        vars.push(("CONTENT_LENGTH".into(), case.body.len().to_string()));
    }
    if let Some((_, ct)) = case
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-type"))
    {
        vars.push(("CONTENT_TYPE".into(), ct.clone()));
    }
    let joined = profile == Profile::Cgi;
    for (name, value) in http_fields(case) {
        let var = format!("HTTP_{}", name.to_ascii_uppercase().replace('-', "_"));
        match vars.iter_mut().find(|(n, _)| *n == var).filter(|_| joined) {
            Some((_, earlier)) => {
                earlier.push_str(if var == "HTTP_COOKIE" { "; " } else { ", " });
                earlier.push_str(&value);
            }
            None => vars.push((var, value)),
        }
    }
    vars
}

/// The header fields a web server saw: the case's own, plus what our HTTP client adds (`Host`,
/// `Connection`, framing, `Expect`), names with `_` dropped, values trimmed.
fn http_fields(case: &Case) -> Vec<(String, String)> {
    let mut fields: Vec<(String, String)> = vec![
        ("Host".into(), "localhost".into()),
        ("Connection".into(), "close".into()),
    ];
    match case.framing {
        Framing::None => {}
        Framing::Length => fields.push(("Content-Length".into(), case.body.len().to_string())),
        Framing::Chunked => fields.push(("Transfer-Encoding".into(), "chunked".into())),
    }
    if case.expect_continue {
        fields.push(("Expect".into(), "100-continue".into()));
    }
    fields.extend(case.headers.iter().cloned());
    fields
        .into_iter()
        .filter(|(n, _)| !n.contains('_'))
        .map(|(n, v)| (n, v.trim().to_owned()))
        .collect()
}
