//! The environment a script gets: built from the request, never inherited from the daemon.
//!
//! The child is started with `env_clear()` and exactly these variables, later ones winning:
//!
//! 1. the request's meta-variables as the front end gave them (RFC 3875 section 4.1, the
//!    `HTTP_*` headers of section 4.1.18, and whatever the front server adds with `fastcgi_param`,
//!    such as `GIT_PROJECT_ROOT`), except `HTTP_PROXY` (httpoxy: a client's `Proxy:` header must
//!    never look like proxy configuration), the variables that make a loader, a shell or an
//!    interpreter run code of someone else's choosing ([`is_dangerous`]: `LD_*`, `BASH_ENV`,
//!    `ENV`, `IFS`, `PYTHON*`, `PERL5*`, `RUBY*`, ...; a misconfigured or exposed front server
//!    could send them as FastCGI/SCGI params, as suEXEC's safe list guards against; refused and
//!    logged at debug), an empty `CONTENT_LENGTH` or `CONTENT_TYPE` (section 4.1.2: only set with
//!    a body), and the variables computed below;
//! 2. the fixed `PATH`;
//! 3. the daemon variables the operator listed (`pass_env`), read once at start-up;
//! 4. the computed ones: `SCRIPT_NAME`, `PATH_INFO` and `PATH_TRANSLATED` (only with path info,
//!    sections 4.1.5-4.1.6), `SCRIPT_FILENAME`, and `GATEWAY_INTERFACE`, `SERVER_SOFTWARE`,
//!    `REQUEST_METHOD`, `QUERY_STRING`, `SERVER_PROTOCOL` when the front end left them out
//!    (section 4.1 says they must be set).
//!
//! Names and values that the C environment cannot carry (a NUL byte, `=` in a name) are dropped
//! and reported.
//!
//! The variables borrow from the request where they can: std's `Command` copies each of them
//! twice more on the way to `execve` anyway (callgrind on benches/cgi-vs-fcgiwrap.sh's tiny
//! program: building owned copies here cost 13 k of gatehouse's 190 k instructions per request,
//! borrowing 5 k).

use std::borrow::Cow;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

use bytes::Bytes;
use gatehouse_channel_request::env::{
    CONTENT_LENGTH, CONTENT_TYPE, DOCUMENT_ROOT, GATEWAY_INTERFACE, PATH_INFO, QUERY_STRING,
    REQUEST_METHOD, SCRIPT_FILENAME, SCRIPT_NAME, SERVER_PROTOCOL, SERVER_SOFTWARE,
};
use gatehouse_channel_request::Env;

/// `PATH_TRANSLATED` (RFC 3875 section 4.1.6).
pub const PATH_TRANSLATED: &str = "PATH_TRANSLATED";

/// The variables we compute; a request's own values for them are ignored.
const COMPUTED: &[&str] = &[
    SCRIPT_NAME,
    PATH_INFO,
    PATH_TRANSLATED,
    SCRIPT_FILENAME,
    "PATH",
];

/// Defaults for variables RFC 3875 requires, when the front end did not send them.
const REQUIRED_DEFAULTS: &[(&str, &str)] = &[
    (GATEWAY_INTERFACE, "CGI/1.1"),
    (SERVER_SOFTWARE, "gatehouse"),
    (REQUEST_METHOD, "GET"),
    (QUERY_STRING, ""),
    (SERVER_PROTOCOL, "HTTP/1.1"),
];

/// What the computed variables are made of.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ScriptVars<'a> {
    /// The canonical program path.
    pub(crate) program: &'a Path,
    /// `SCRIPT_NAME`.
    pub(crate) script_name: &'a [u8],
    /// `PATH_INFO` (empty: unset).
    pub(crate) path_info: &'a [u8],
}

/// One variable: borrowed from the request or the configuration, or computed.
pub(crate) type Var<'a> = (Cow<'a, OsStr>, Cow<'a, OsStr>);

/// The child's environment, and the request variables that had to be dropped.
#[derive(Debug, Default)]
pub(crate) struct ChildEnv<'a> {
    /// The variables, in order; later ones win.
    pub(crate) vars: Vec<Var<'a>>,
    /// Names of request variables dropped because the C environment cannot carry them.
    pub(crate) dropped: Vec<Bytes>,
    /// Names of request variables refused as dangerous ([`is_dangerous`]).
    pub(crate) refused: Vec<Bytes>,
}

/// Builds the environment for one run of a script.
pub(crate) fn build<'a>(
    req: &'a Env,
    script: ScriptVars<'a>,
    path_env: &'a OsStr,
    daemon: &'a [(OsString, OsString)],
) -> ChildEnv<'a> {
    let mut out = ChildEnv {
        vars: Vec::with_capacity(req.len() + daemon.len() + 8),
        dropped: Vec::new(),
        refused: Vec::new(),
    };
    for (name, value) in req.iter() {
        if !passes(name, value) {
            continue;
        }
        if is_dangerous(name) {
            out.refused.push(name.clone());
            continue;
        }
        if !is_env_name(name) || value.contains(&0) {
            out.dropped.push(name.clone());
            continue;
        }
        out.vars.push((os(name), os(value)));
    }
    out.vars.push((os_str("PATH"), Cow::Borrowed(path_env)));
    out.vars.extend(
        daemon
            .iter()
            .map(|(n, v)| (Cow::Borrowed(n.as_os_str()), Cow::Borrowed(v.as_os_str()))),
    );
    computed(req, script, &mut out.vars);
    out
}

/// Variables that make the dynamic loader, a shell or a script interpreter load or run code
/// or change how they parse (exact names).
const DANGEROUS: &[&str] = &[
    "BASH_ENV",
    "ENV",
    "IFS",
    "CDPATH",
    "SHELLOPTS",
    "BASHOPTS",
    "PS4",
    "GLOBIGNORE",
    "GCONV_PATH",
    "LOCPATH",
    "NLSPATH",
    "HOSTALIASES",
    "RESOLV_HOST_CONF",
    "PERLLIB",
    "RUBYLIB",
    "RUBYOPT",
    "NODE_OPTIONS",
    "NODE_PATH",
    "JAVA_TOOL_OPTIONS",
    "GIT_CONFIG_PARAMETERS",
];

/// The same, by prefix.
const DANGEROUS_PREFIXES: &[&str] = &[
    "LD_",
    "BASH_FUNC_",
    "PYTHON",
    "PERL5",
    "RUBY",
    "MALLOC_",
    "GLIBC_TUNABLES",
];

/// Whether a request variable may make the script's loader, shell or interpreter run code of
/// the sender's choosing (`LD_PRELOAD`, `BASH_ENV`, `PYTHONSTARTUP`, `PERL5OPT`, ...). `HTTP_*`
/// names (headers) never are: a client cannot send these, only a front server.
pub(crate) fn is_dangerous(name: &[u8]) -> bool {
    DANGEROUS.iter().any(|d| d.as_bytes() == name)
        || DANGEROUS_PREFIXES
            .iter()
            .any(|p| name.starts_with(p.as_bytes()))
}

/// Whether a request variable is passed through (before the well-formedness check).
fn passes(name: &[u8], value: &[u8]) -> bool {
    if name == b"HTTP_PROXY" {
        return false;
    }
    if value.is_empty() && (name == CONTENT_LENGTH.as_bytes() || name == CONTENT_TYPE.as_bytes()) {
        return false;
    }
    !COMPUTED.iter().any(|c| c.as_bytes() == name)
}

fn computed<'a>(req: &'a Env, script: ScriptVars<'a>, vars: &mut Vec<Var<'a>>) {
    for (name, default) in REQUIRED_DEFAULTS {
        if req
            .get(name)
            .is_none_or(|v| v.is_empty() && *name != QUERY_STRING)
        {
            vars.push((os_str(name), os_str(default)));
        }
    }
    vars.push((os_str(SCRIPT_NAME), os(script.script_name)));
    vars.push((
        os_str(SCRIPT_FILENAME),
        Cow::Borrowed(script.program.as_os_str()),
    ));
    if !script.path_info.is_empty() {
        vars.push((os_str(PATH_INFO), os(script.path_info)));
        if let Some(root) = req.get(DOCUMENT_ROOT).filter(|r| !r.is_empty()) {
            let mut translated = root.strip_suffix(b"/").unwrap_or(root).to_vec();
            translated.extend_from_slice(script.path_info);
            let translated = Cow::Owned(OsString::from_vec(translated));
            vars.push((os_str(PATH_TRANSLATED), translated));
        }
    }
}

/// Whether `name` can be an environment variable name: non-empty, no `=`, no NUL.
fn is_env_name(name: &[u8]) -> bool {
    !name.is_empty() && !name.contains(&b'=') && !name.contains(&0)
}

fn os(bytes: &[u8]) -> Cow<'_, OsStr> {
    Cow::Borrowed(OsStr::from_bytes(bytes))
}

fn os_str(s: &str) -> Cow<'_, OsStr> {
    Cow::Borrowed(OsStr::new(s))
}

/// Reads the daemon variables the operator listed, once. `HTTP_PROXY` is never passed
/// (whatever its case): scripts cannot tell it from a client's `Proxy:` header.
pub(crate) fn snapshot_daemon_env(names: &[OsString]) -> Vec<(OsString, OsString)> {
    names
        .iter()
        .filter(|n| !n.as_bytes().eq_ignore_ascii_case(b"HTTP_PROXY"))
        .filter_map(|n| std::env::var_os(n).map(|v| (n.clone(), v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&'static str, &'static str)]) -> Env {
        pairs.iter().map(|&(n, v)| (n.into(), v.into())).collect()
    }

    fn last_wins(c: &ChildEnv) -> HashMap<String, String> {
        c.vars
            .iter()
            .map(|(n, v)| {
                (
                    n.to_string_lossy().into_owned(),
                    v.to_string_lossy().into_owned(),
                )
            })
            .collect()
    }

    fn script() -> ScriptVars<'static> {
        ScriptVars {
            program: Path::new("/srv/cgi-bin/x.sh"),
            script_name: b"/cgi-bin/x.sh",
            path_info: b"/more",
        }
    }

    #[test]
    fn builds_clean_environment() {
        let req = env(&[
            ("REQUEST_METHOD", "POST"),
            ("HTTP_PROXY", "http://evil.test:3128"),
            ("HTTP_USER_AGENT", "t"),
            ("LD_PRELOAD", "/tmp/x.so"),
            ("CONTENT_LENGTH", ""),
            ("CONTENT_TYPE", ""),
            ("SCRIPT_NAME", "/wrong"),
            ("PATH", "/evil"),
            ("DOCUMENT_ROOT", "/srv/www/"),
            ("GIT_PROJECT_ROOT", "/srv/git"),
        ]);
        let daemon = vec![(OsString::from("TZ"), OsString::from("UTC"))];
        let c = build(&req, script(), OsStr::new("/usr/bin:/bin"), &daemon);
        let m = last_wins(&c);
        assert!(!m.contains_key("HTTP_PROXY"));
        assert!(!m.contains_key("LD_PRELOAD"));
        assert!(!m.contains_key("CONTENT_LENGTH"));
        assert!(!m.contains_key("CONTENT_TYPE"));
        assert_eq!(m["PATH"], "/usr/bin:/bin");
        assert_eq!(m["TZ"], "UTC");
        assert_eq!(m["SCRIPT_NAME"], "/cgi-bin/x.sh");
        assert_eq!(m["PATH_INFO"], "/more");
        assert_eq!(m["PATH_TRANSLATED"], "/srv/www/more");
        assert_eq!(m["SCRIPT_FILENAME"], "/srv/cgi-bin/x.sh");
        assert_eq!(m["REQUEST_METHOD"], "POST");
        assert_eq!(m["GATEWAY_INTERFACE"], "CGI/1.1");
        assert_eq!(m["QUERY_STRING"], "");
        assert_eq!(m["GIT_PROJECT_ROOT"], "/srv/git");
        assert_eq!(m["HTTP_USER_AGENT"], "t");
        assert_eq!(c.refused, [Bytes::from_static(b"LD_PRELOAD")]);
        assert_eq!(
            c.vars
                .iter()
                .filter(|(n, _)| n == OsStr::new("SCRIPT_NAME"))
                .count(),
            1
        );
    }

    #[test]
    fn refuses_loader_shell_and_interpreter_variables() {
        let names = [
            "LD_PRELOAD",
            "LD_LIBRARY_PATH",
            "BASH_ENV",
            "ENV",
            "IFS",
            "PYTHONPATH",
            "PYTHONSTARTUP",
            "PERL5OPT",
            "PERL5LIB",
            "RUBYOPT",
            "BASH_FUNC_x%%",
            "GLIBC_TUNABLES",
            "NODE_OPTIONS",
        ];
        let mut pairs: Vec<(&'static str, &'static str)> =
            names.iter().map(|n| (*n, "x")).collect();
        pairs.extend([
            ("GIT_PROJECT_ROOT", "/srv/git"),
            ("GIT_HTTP_EXPORT_ALL", "1"),
            ("HTTPS", "on"),
            ("SSL_CLIENT_S_DN", "CN=a"),
            ("REMOTE_USER", "ada"),
            ("HTTP_ENV", "a header is fine"),
        ]);
        let req = env(&pairs);
        let c = build(&req, script(), OsStr::new("/usr/bin:/bin"), &[]);
        let m = last_wins(&c);
        for n in names {
            assert!(!m.contains_key(n), "{n} must not reach the script");
        }
        assert_eq!(c.refused.len(), names.len());
        for kept in [
            "GIT_PROJECT_ROOT",
            "GIT_HTTP_EXPORT_ALL",
            "HTTPS",
            "SSL_CLIENT_S_DN",
            "REMOTE_USER",
            "HTTP_ENV",
        ] {
            assert!(m.contains_key(kept), "{kept} is passed");
        }
    }

    #[test]
    fn drops_what_the_c_environment_cannot_carry() {
        let mut req = Env::new();
        req.set("HTTP_X", Bytes::from_static(b"a\0b"));
        req.set("A=B", "v");
        req.set("", "v");
        req.set("QUERY_STRING", "q=1");
        let script = ScriptVars {
            path_info: b"",
            ..script()
        };
        let c = build(&req, script, OsStr::new("/bin"), &[]);
        assert_eq!(c.dropped.len(), 3);
        let m = last_wins(&c);
        assert!(!m.contains_key("PATH_INFO"));
        assert!(!m.contains_key("PATH_TRANSLATED"));
        assert_eq!(m["QUERY_STRING"], "q=1");
        assert_eq!(m["REQUEST_METHOD"], "GET");
    }

    #[test]
    fn daemon_snapshot_never_passes_http_proxy() {
        let names = [OsString::from("HTTP_PROXY"), OsString::from("http_proxy")];
        assert!(snapshot_daemon_env(&names).is_empty());
    }
}
