//! systemd socket activation (`sd_listen_fds(3)` semantics, written by hand): the listening
//! sockets a `.socket` unit (or `systemd-socket-activate`) passed us.
//!
//! ```text
//!  LISTEN_PID = our pid?  LISTEN_FDS = n     LISTEN_FDNAMES = fastcgi:http:...
//!        │ no: ignored        │ fds 3 .. 3+n       │ FileDescriptorName= of each socket
//!        ▼                    ▼                    ▼
//!  Activation { sockets: [(3, "fastcgi"), (4, "http"), ...] }
//!        │ no listener option: each socket served by the protocol its name names
//!        │                     (fastcgi, scgi, http, uwsgi; anything else: FastCGI)
//!        │ --fastcgi/--scgi/--http systemd:NAME: every socket named NAME
//!        ▼
//!  listen::Planned { addr: fd:N } ──► adopted by listen::bind_all through crate::inherit
//! ```
//!
//! [`Activation::from_env`] reads the three variables once and removes them from our
//! environment (so apps, scripts and re-executed processes do not see them); call it first
//! thing, while the process has a single thread.

use std::ffi::OsString;
use std::os::fd::RawFd;

use crate::addr::ListenAddr;
use crate::error::Error;
use crate::inherit;
use crate::listen::{Kind, Planned};

/// `SD_LISTEN_FDS_START`: the first descriptor systemd passes.
pub(crate) const SD_LISTEN_FDS_START: RawFd = 3;

/// The name systemd gives a socket without `FileDescriptorName=` when it has none to give.
const UNKNOWN: &str = "unknown";

/// Reads environment variable `name` and removes it from our environment.
///
/// Only at start-up, while the process has one thread: nothing can read the environment at the
/// same time.
pub(crate) fn take_env(name: &str) -> Option<OsString> {
    let value = std::env::var_os(name)?;
    // The start-up variables of a service manager (LISTEN_*, NOTIFY_SOCKET, WATCHDOG_*) are
    // meant for this process only: removed before any thread, app or child exists.
    #[allow(clippy::disallowed_methods)]
    std::env::remove_var(name);
    Some(value)
}

/// A socket systemd passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Passed {
    /// The descriptor (3, 4, ...).
    pub(crate) fd: RawFd,
    /// Its `FileDescriptorName=` (`unknown` when unnamed).
    pub(crate) name: String,
}

/// What socket activation gave this process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Activation {
    /// Whether `LISTEN_PID` named us (possibly with no sockets).
    activated: bool,
    sockets: Vec<Passed>,
}

impl Activation {
    /// Takes `LISTEN_PID`, `LISTEN_FDS` and `LISTEN_FDNAMES` from the environment (removing
    /// them whatever they say). Not activated when `LISTEN_PID` is absent or another process's.
    /// Malformed values are a usage error.
    pub(crate) fn from_env() -> Result<Self, Error> {
        let pid = take_env("LISTEN_PID");
        let fds = take_env("LISTEN_FDS");
        let names = take_env("LISTEN_FDNAMES");
        let text = |v: &Option<OsString>| v.as_ref().map(|v| v.to_string_lossy().into_owned());
        let parsed = Self::parse(
            text(&pid).as_deref(),
            text(&fds).as_deref(),
            text(&names).as_deref(),
            std::process::id(),
        )
        .map_err(Error::Usage)?;
        for s in &parsed.sockets {
            tracing::debug!(fd = s.fd, name = %s.name, "socket passed by systemd");
        }
        Ok(parsed)
    }

    /// The variables' meaning, for our pid `me`.
    fn parse(
        pid: Option<&str>,
        fds: Option<&str>,
        names: Option<&str>,
        me: u32,
    ) -> Result<Self, String> {
        let Some(pid) = pid else {
            return Ok(Self::default());
        };
        let pid: u32 = pid
            .trim()
            .parse()
            .map_err(|_| format!("LISTEN_PID={pid} is not a process id"))?;
        if pid != me {
            tracing::debug!("LISTEN_PID={pid} is another process's (ours is {me}): ignored");
            return Ok(Self::default());
        }
        let fds = fds.unwrap_or("0");
        let n: RawFd = fds
            .trim()
            .parse()
            .ok()
            .filter(|n: &RawFd| *n >= 0 && n.checked_add(SD_LISTEN_FDS_START).is_some())
            .ok_or_else(|| format!("LISTEN_FDS={fds} is not a number of descriptors"))?;
        let count = usize::try_from(n).unwrap_or_default();
        let mut list: Vec<String> = match names {
            None => vec![UNKNOWN.to_owned(); count],
            Some(names) => names
                .split(':')
                .map(|s| if s.is_empty() { UNKNOWN } else { s }.to_owned())
                .collect(),
        };
        if names.is_some_and(str::is_empty) && count == 0 {
            list.clear();
        }
        if list.len() != count {
            return Err(format!(
                "LISTEN_FDNAMES names {} socket(s) and LISTEN_FDS says {n}",
                list.len()
            ));
        }
        let sockets = (SD_LISTEN_FDS_START..)
            .zip(list)
            .map(|(fd, name)| Passed { fd, name })
            .collect();
        Ok(Self {
            activated: true,
            sockets,
        })
    }

    /// The listeners when no listener option is given: each passed socket, served by the
    /// protocol its name names; `None` when nothing was passed (then fd 0 or the defaults).
    pub(crate) fn default_plan(&self) -> Option<Vec<Planned>> {
        if self.sockets.is_empty() {
            return None;
        }
        let planned = self
            .sockets
            .iter()
            .map(|s| {
                let kind = kind_for(&s.name);
                tracing::info!(
                    "systemd socket fd:{} named '{}': serving {}",
                    s.fd,
                    s.name.escape_default(),
                    kind.name()
                );
                Planned {
                    kind,
                    addr: ListenAddr::Fd(s.fd),
                    default: false,
                }
            })
            .collect();
        Some(planned)
    }

    /// Replaces every `systemd:NAME` of `planned` by the sockets named NAME (in descriptor
    /// order). Usage errors: not activated, no socket of that name, one socket used twice.
    /// Passed sockets left unused are logged and kept from children (close-on-exec).
    pub(crate) fn resolve(&self, planned: Vec<Planned>) -> Result<Vec<Planned>, Error> {
        if !planned
            .iter()
            .any(|p| matches!(p.addr, ListenAddr::Systemd(_)))
        {
            self.leave_unused(&planned);
            return Ok(planned);
        }
        let mut out = Vec::with_capacity(planned.len());
        for p in planned {
            let ListenAddr::Systemd(name) = &p.addr else {
                out.push(p);
                continue;
            };
            let fds = self.named(p.kind, name)?;
            for fd in fds {
                if out.iter().any(|o: &Planned| o.addr == ListenAddr::Fd(fd)) {
                    return Err(Error::Usage(format!(
                        "{} systemd:{name}: socket fd:{fd} is already used by another listener",
                        p.kind.flag()
                    )));
                }
                tracing::info!(
                    "systemd socket fd:{fd} named '{}': serving {}",
                    name.escape_default(),
                    p.kind.name()
                );
                out.push(Planned {
                    kind: p.kind,
                    addr: ListenAddr::Fd(fd),
                    default: false,
                });
            }
        }
        self.leave_unused(&out);
        Ok(out)
    }

    /// The descriptors of the sockets named `name`.
    fn named(&self, kind: Kind, name: &str) -> Result<Vec<RawFd>, Error> {
        let flag = kind.flag();
        if !self.activated {
            return Err(Error::Usage(format!(
                "{flag} systemd:{name}: gatehouse was not socket-activated (LISTEN_PID and \
                 LISTEN_FDS do not name this process)"
            )));
        }
        let fds: Vec<RawFd> = self
            .sockets
            .iter()
            .filter(|s| s.name == name)
            .map(|s| s.fd)
            .collect();
        if fds.is_empty() {
            let passed = match self.names().as_slice() {
                [] => "none".to_owned(),
                names => names.join(", "),
            };
            return Err(Error::Usage(format!(
                "{flag} systemd:{name}: systemd passed no socket named '{}' (names passed: \
                 {passed})",
                name.escape_default()
            )));
        }
        Ok(fds)
    }

    /// The distinct names passed, in order.
    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for s in &self.sockets {
            let shown = s.name.escape_default().to_string();
            if !names.contains(&shown) {
                names.push(shown);
            }
        }
        names
    }

    /// Logs the passed sockets no listener uses, and marks them close-on-exec so CGI scripts do
    /// not inherit them.
    fn leave_unused(&self, planned: &[Planned]) {
        for s in &self.sockets {
            if planned.iter().any(|p| p.addr == ListenAddr::Fd(s.fd)) {
                continue;
            }
            tracing::warn!(
                "systemd passed socket fd:{} named '{}', and no listener uses it (give \
                 --fastcgi/--scgi/--http/--uwsgi systemd:{})",
                s.fd,
                s.name.escape_default(),
                s.name.escape_default()
            );
            if let Err(e) = inherit::set_cloexec(s.fd) {
                tracing::warn!(fd = s.fd, error = %e, "cannot mark an unused socket close-on-exec");
            }
        }
    }
}

/// The protocol a `FileDescriptorName=` names: `fastcgi`, `scgi`, `http`, `uwsgi`; anything else is
/// FastCGI (with a log line unless it is systemd's `unknown`).
pub(crate) fn kind_for(name: &str) -> Kind {
    match name {
        "fastcgi" => Kind::FastCgi,
        "scgi" => Kind::Scgi,
        "http" => Kind::Http,
        "uwsgi" => Kind::Uwsgi,
        UNKNOWN => Kind::FastCgi,
        other => {
            tracing::info!(
                "systemd socket name '{}' is not fastcgi, scgi, http or uwsgi: serving FastCGI on it",
                other.escape_default()
            );
            Kind::FastCgi
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: u32 = 4242;

    fn parse(
        pid: Option<&str>,
        fds: Option<&str>,
        names: Option<&str>,
    ) -> Result<Activation, String> {
        Activation::parse(pid, fds, names, ME)
    }

    fn pairs(a: &Activation) -> Vec<(RawFd, &str)> {
        a.sockets.iter().map(|s| (s.fd, s.name.as_str())).collect()
    }

    #[test]
    fn listen_pid_must_be_ours() {
        assert_eq!(parse(None, Some("2"), None).unwrap(), Activation::default());
        let other = parse(Some("1"), Some("2"), Some("a:b")).unwrap();
        assert!(!other.activated);
        assert!(other.sockets.is_empty());
        let ours = parse(Some("4242"), Some("2"), Some("fastcgi:http")).unwrap();
        assert!(ours.activated);
        assert_eq!(pairs(&ours), [(3, "fastcgi"), (4, "http")]);
    }

    #[test]
    fn names_default_to_unknown() {
        let a = parse(Some("4242"), Some("3"), None).unwrap();
        assert_eq!(pairs(&a), [(3, "unknown"), (4, "unknown"), (5, "unknown")]);
        let a = parse(Some("4242"), Some("2"), Some(":scgi")).unwrap();
        assert_eq!(pairs(&a), [(3, "unknown"), (4, "scgi")]);
        let none = parse(Some("4242"), Some("0"), Some("")).unwrap();
        assert!(none.activated);
        assert!(none.default_plan().is_none());
        let none = parse(Some("4242"), None, None).unwrap();
        assert!(none.activated && none.sockets.is_empty());
    }

    #[test]
    fn malformed_values_say_which() {
        for (pid, fds, names, says) in [
            ("x", "1", None, "LISTEN_PID=x"),
            ("4242", "two", None, "LISTEN_FDS=two"),
            ("4242", "-1", None, "LISTEN_FDS=-1"),
            ("4242", "2147483647", None, "LISTEN_FDS=2147483647"),
            ("4242", "2", Some("a:b:c"), "names 3"),
            ("4242", "2", Some("a"), "names 1"),
        ] {
            let err = parse(Some(pid), Some(fds), names).unwrap_err();
            assert!(err.contains(says), "{err}");
            assert!(!err.contains('\n'), "{err}");
        }
    }

    #[test]
    fn default_plan_follows_the_names() {
        let a = parse(
            Some("4242"),
            Some("5"),
            Some("fastcgi:scgi:http:unknown:web"),
        )
        .unwrap();
        let got: Vec<(Kind, String)> = a
            .default_plan()
            .unwrap()
            .into_iter()
            .map(|p| (p.kind, p.addr.to_string()))
            .collect();
        assert_eq!(
            got,
            [
                (Kind::FastCgi, "fd:3".to_owned()),
                (Kind::Scgi, "fd:4".to_owned()),
                (Kind::Http, "fd:5".to_owned()),
                (Kind::FastCgi, "fd:6".to_owned()),
                (Kind::FastCgi, "fd:7".to_owned()),
            ]
        );
    }

    fn wanted(kind: Kind, name: &str) -> Planned {
        Planned {
            kind,
            addr: ListenAddr::Systemd(name.to_owned()),
            default: false,
        }
    }

    #[test]
    fn systemd_name_takes_every_socket_of_that_name() {
        let a = parse(Some("4242"), Some("3"), Some("web:fastcgi:web")).unwrap();
        let resolved = a
            .resolve(vec![
                wanted(Kind::Http, "web"),
                Planned {
                    kind: Kind::Scgi,
                    addr: ListenAddr::Unix("/s".into()),
                    default: false,
                },
            ])
            .unwrap();
        let got: Vec<(Kind, String)> = resolved
            .into_iter()
            .map(|p| (p.kind, p.addr.to_string()))
            .collect();
        assert_eq!(
            got,
            [
                (Kind::Http, "fd:3".to_owned()),
                (Kind::Http, "fd:5".to_owned()),
                (Kind::Scgi, "unix:/s".to_owned()),
            ]
        );
    }

    #[test]
    fn systemd_name_errors() {
        let a = parse(Some("4242"), Some("2"), Some("fastcgi:http")).unwrap();
        let err = a.resolve(vec![wanted(Kind::Scgi, "scgi")]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let text = err.to_string();
        assert!(text.contains("systemd:scgi"), "{text}");
        assert!(text.contains("fastcgi, http"), "{text}");

        let twice = a
            .resolve(vec![
                wanted(Kind::Http, "http"),
                wanted(Kind::FastCgi, "http"),
            ])
            .unwrap_err();
        assert!(twice.to_string().contains("already used"), "{twice}");

        let not = Activation::default()
            .resolve(vec![wanted(Kind::FastCgi, "fastcgi")])
            .unwrap_err();
        assert_eq!(not.exit_code(), 2);
        assert!(not.to_string().contains("not socket-activated"), "{not}");

        let empty = parse(Some("4242"), Some("0"), None).unwrap();
        let err = empty.resolve(vec![wanted(Kind::Http, "x")]).unwrap_err();
        assert!(err.to_string().contains("names passed: none"), "{err}");
    }

    #[test]
    fn protocol_names() {
        assert_eq!(kind_for("fastcgi"), Kind::FastCgi);
        assert_eq!(kind_for("scgi"), Kind::Scgi);
        assert_eq!(kind_for("uwsgi"), Kind::Uwsgi);
        assert_eq!(kind_for("http"), Kind::Http);
        assert_eq!(kind_for("unknown"), Kind::FastCgi);
        assert_eq!(kind_for("gatehouse.socket"), Kind::FastCgi);
        assert_eq!(kind_for("HTTP"), Kind::FastCgi);
    }
}
