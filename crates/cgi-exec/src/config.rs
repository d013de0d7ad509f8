//! What the operator decides: timeouts, limits, the child's identity and environment, the safety
//! switches. Every default is a named constant, so `--help` texts can quote them.

use std::ffi::OsString;
use std::time::Duration;

use crate::error::Error;
use crate::{nss, sys};

/// The `PATH` every script gets unless the operator passes the daemon's own with `pass_env`.
pub const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// Time between `SIGTERM` and `SIGKILL` when a script's process group is stopped.
pub const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(3);

/// Scripts running at once; more requests wait in line for a slot.
pub const DEFAULT_MAX_CHILDREN: usize = 64;

/// How many local redirects (RFC 3875 section 6.2.2) one request may follow, as Apache's
/// `LimitInternalRecursion`.
pub const MAX_LOCAL_REDIRECTS: usize = 10;

/// Default limit on a script's response head.
pub const DEFAULT_MAX_HEAD_BYTES: usize =
    gatehouse_channel_request::cgi_head::DEFAULT_CGI_HEAD_LIMIT;

/// How CGI programs are run. `Config::default()` is safe: no timeout, 64 children, nothing
/// inherited from the daemon, symlinks out of the root and world-writable files refused.
#[derive(Debug, Clone)]
pub struct Config {
    /// Kill a script that makes no progress for this long (`--cgi-timeout`): no byte read from
    /// its stdout and none written to its stdin. Time spent waiting for the client (a slow
    /// upload, a slow reader of the response) does not count. `None`: no limit.
    pub timeout: Option<Duration>,
    /// Wall-clock limit of a request (`--request-timeout`), counted from when it reaches the app
    /// (time waiting for a `max_children` slot counts): past it the script's process group is
    /// stopped and the client gets `504` (or a cut response, when the head was sent). Unlike
    /// `timeout`, progress does not extend it. `None`: no limit.
    pub request_timeout: Option<Duration>,
    /// Time between `SIGTERM` and `SIGKILL` when a script's process group is stopped.
    pub kill_grace: Duration,
    /// Scripts running at once (`--cgi-max`); excess requests wait in line. 0: no limit.
    pub max_children: usize,
    /// Names of the daemon's own environment variables passed to scripts (`--cgi-env NAME`),
    /// read once when the app is built. Nothing else of the daemon's environment is passed.
    pub pass_env: Vec<OsString>,
    /// Run scripts as this user (`--cgi-user`); needs gatehouse to run as root.
    pub user: Option<User>,
    /// Run scripts with this group (`--cgi-group`); defaults to the user's primary group.
    pub group: Option<Group>,
    /// Allow symlinks that lead out of the CGI root (`--cgi-allow-symlinks`).
    pub allow_symlinks: bool,
    /// Allow world-writable scripts and directories (`--cgi-allow-world-writable`).
    pub allow_world_writable: bool,
    /// Only run files with one of these extensions (`--cgi-extensions cgi,sh`); a leading `.` is
    /// ignored. `None`: any name.
    pub extensions: Option<Vec<String>>,
    /// Limit on a script's response head, in bytes.
    pub max_head_bytes: usize,
    /// The fixed `PATH` scripts get.
    pub path_env: OsString,
    /// Where a script's stderr goes (`--cgi-stderr`).
    pub stderr: StderrMode,
}

/// Where a script's stderr goes (`--cgi-stderr log|fastcgi`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StderrMode {
    /// Into gatehouse's log: one `warn` line per stderr line, tagged with the peer, the request
    /// id and the script.
    #[default]
    Log,
    /// To the web server, as `fcgiwrap -f` does, when the request came over FastCGI: the
    /// request's `FCGI_STDERR` stream (FastCGI 1.0 section 5.3), which nginx writes to its error log
    /// ("FastCGI sent in stderr: ..."); then gatehouse does not log it. The response ends only
    /// once the script's stderr is closed (at most [`STDERR_LINGER`] after the script exited),
    /// so the stream is whole before `FCGI_END_REQUEST`. Under the other front ends, which
    /// have no such stream, and for whatever comes later, it is logged as with `Log`.
    FastCgi,
}

/// How long, after a script exited, its stderr may stay open (held by a process it started)
/// before the response ends anyway; in [`StderrMode::FastCgi`], later stderr is logged.
pub const STDERR_LINGER: Duration = Duration::from_secs(1);

impl Default for Config {
    fn default() -> Self {
        Self {
            timeout: None,
            request_timeout: None,
            kill_grace: DEFAULT_KILL_GRACE,
            max_children: DEFAULT_MAX_CHILDREN,
            pass_env: Vec::new(),
            user: None,
            group: None,
            allow_symlinks: false,
            allow_world_writable: false,
            extensions: None,
            max_head_bytes: DEFAULT_MAX_HEAD_BYTES,
            path_env: OsString::from(DEFAULT_PATH),
            stderr: StderrMode::Log,
        }
    }
}

/// The user scripts run as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct User {
    /// The user id.
    pub uid: u32,
    /// The user's primary group, when the user database knows it.
    pub gid: Option<u32>,
}

impl User {
    /// Looks `spec` up: a user name, or a numeric uid (its primary group is taken from the user
    /// database when it has an entry).
    pub fn lookup(spec: &str) -> Result<Self, Error> {
        let unknown = || Error::Config(format!("unknown user \"{}\"", spec.escape_default()));
        let by_name = nss::user_by_name(spec).map_err(|e| {
            Error::Config(format!(
                "cannot look user \"{}\" up: {e}",
                spec.escape_default()
            ))
        })?;
        if let Some(nss::UserEntry { uid, gid }) = by_name {
            return Ok(Self {
                uid,
                gid: Some(gid),
            });
        }
        let uid: u32 = spec.parse().map_err(|_| unknown())?;
        // The primary group of a numeric uid comes from its entry, when there is one.
        let gid = nss::user_by_uid(uid).ok().flatten().map(|e| e.gid);
        Ok(Self { uid, gid })
    }
}

/// The group scripts run with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Group {
    /// The group id.
    pub gid: u32,
}

impl Group {
    /// Looks `spec` up: a group name or a numeric gid.
    pub fn lookup(spec: &str) -> Result<Self, Error> {
        let by_name = nss::group_by_name(spec).map_err(|e| {
            Error::Config(format!(
                "cannot look group \"{}\" up: {e}",
                spec.escape_default()
            ))
        })?;
        if let Some(gid) = by_name {
            return Ok(Self { gid });
        }
        spec.parse()
            .map(|gid| Self { gid })
            .map_err(|_| Error::Config(format!("unknown group \"{}\"", spec.escape_default())))
    }
}

/// The identity a child gets: `(uid, gid)`, each only when configured.
pub(crate) fn identity(config: &Config) -> Result<(Option<u32>, Option<u32>), Error> {
    let uid = config.user.map(|u| u.uid);
    let gid = config
        .group
        .map(|g| g.gid)
        .or(config.user.and_then(|u| u.gid));
    if uid.is_some() && gid.is_none() {
        return Err(Error::Config(
            "the user has no primary group in the user database: set a group too".into(),
        ));
    }
    if (uid.is_some() || gid.is_some()) && !sys::is_root() {
        return Err(Error::Config(
            "running scripts as another user or group needs gatehouse to run as root".into(),
        ));
    }
    Ok((uid, gid))
}

/// The extension allow-list with leading dots removed.
pub(crate) fn normalised_extensions(config: &Config) -> Option<Vec<String>> {
    config.extensions.as_ref().map(|list| {
        list.iter()
            .map(|e| e.trim_start_matches('.').to_owned())
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups() {
        assert_eq!(
            User::lookup("root").unwrap(),
            User {
                uid: 0,
                gid: Some(0)
            }
        );
        assert_eq!(
            User::lookup("4242").unwrap(),
            User {
                uid: 4242,
                gid: None
            }
        );
        assert!(User::lookup("no-such-user-gatehouse").is_err());
        assert_eq!(Group::lookup("root").unwrap(), Group { gid: 0 });
        assert_eq!(Group::lookup("77").unwrap(), Group { gid: 77 });
        assert!(Group::lookup("no-such-group-gatehouse").is_err());
    }

    #[test]
    fn identity_rules() {
        let mut c = Config::default();
        assert_eq!(identity(&c).unwrap(), (None, None));
        c.user = Some(User {
            uid: 4242,
            gid: None,
        });
        assert!(identity(&c).is_err(), "uid without any group");
        c.group = Some(Group { gid: 4343 });
        if sys::is_root() {
            assert_eq!(identity(&c).unwrap(), (Some(4242), Some(4343)));
        } else {
            assert!(identity(&c).is_err());
        }
    }

    #[test]
    fn extensions_lose_dots() {
        let c = Config {
            extensions: Some(vec![".cgi".into(), "sh".into()]),
            ..Config::default()
        };
        assert_eq!(
            normalised_extensions(&c),
            Some(vec!["cgi".to_string(), "sh".to_string()])
        );
    }
}
