//! `--user`, `--group` and `--socket-owner`: binding as root, then running as someone else.
//!
//! ```text
//!  Privileges::from_cli ──► (bind, sockets not listening yet) ──► chown_sockets ──► drop ──► app
//!   names looked up now:     listen::bind_all_deferred            --socket-owner    setgroups([])
//!   unknown = usage error                                         (root)            setgid, setuid,
//!   not root = usage error                                                          checked
//! ```
//!
//! Everything is decided in [`Privileges::from_cli`], before any socket is touched, so a typo
//! in a user name exits 2 with one line. [`Privileges::drop`] runs while the process has one
//! thread in the `gatehouse` binary (no runtime, no Python yet); in a program embedding
//! gatehouse there may be more, and glibc's `setgid`/`setuid` change every thread's ids.
//! The libc calls themselves are in [`crate::sys`].

use std::io;

use gatehouse_cgi_exec::nss;

use crate::cli::Cli;
use crate::error::Error;
use crate::listen::{Bound, StdListener};
use crate::sys;

/// The identity to drop to, and the owner of the unix sockets we create.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Privileges {
    /// `--user` / `--group`, resolved; `None` when neither is given.
    target: Option<Target>,
    /// `--socket-owner`, resolved.
    socket_owner: Option<Owner>,
}

/// Who the process becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    /// `None` with `--group` alone: only the group changes.
    uid: Option<u32>,
    gid: u32,
    /// The options as given, for the log.
    label: String,
}

/// `--socket-owner USER[:GROUP]`: `None` keeps that part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Owner {
    uid: Option<u32>,
    gid: Option<u32>,
}

/// Who we are: effective ids.
#[derive(Debug, Clone, Copy)]
struct Current {
    uid: u32,
    gid: u32,
}

impl Current {
    fn get() -> Result<Self, Error> {
        let io = |source| Error::Io {
            what: "cannot read the process's user and group ids",
            source,
        };
        Ok(Self {
            uid: sys::user_ids().map_err(io)?.effective,
            gid: sys::group_ids().map_err(io)?.effective,
        })
    }
}

impl Privileges {
    /// Resolves `--user`, `--group` and `--socket-owner` (names through NSS, or numeric ids) and
    /// checks they can be honoured: usage errors (exit 2) for an unknown name, for `--user` or
    /// `--group` when we are not root (unless they name who we already are), and for
    /// `--cgi-user`/`--cgi-group` when `--user` gives root up.
    pub(crate) fn from_cli(cli: &Cli) -> Result<Self, Error> {
        let args = &cli.listen.privileges;
        let target = resolve_target(args.user.as_deref(), args.group.as_deref())?;
        let socket_owner = cli.listen.socket_owner.as_deref().map(owner).transpose()?;
        let me = Current::get()?;
        if let Some(t) = &target {
            check_allowed(t, me)?;
            let scripts = &cli.cgi_scripts;
            let cgi_identity = scripts.cgi_user.is_some() || scripts.cgi_group.is_some();
            if cgi_identity && t.uid.is_some_and(|uid| uid != 0) {
                return Err(Error::Usage(format!(
                    "--cgi-user and --cgi-group need gatehouse to keep running as root, and {} \
                     gives root up: drop one or the other",
                    t.label
                )));
            }
        }
        Ok(Self {
            target,
            socket_owner,
        })
    }

    /// Whether [`Self::drop`] changes who we are (`--user` or `--group` given).
    pub(crate) fn changes_identity(&self) -> bool {
        self.target.is_some()
    }

    /// Applies `--socket-owner` to the unix sockets we created (not the inherited ones), which
    /// must not be listening yet ([`crate::listen::bind_all_deferred`]), so no client can connect
    /// while the owner is still ours.
    pub(crate) fn chown_sockets(&self, bound: &[Bound]) -> Result<(), Error> {
        let Some(owner) = self.socket_owner else {
            return Ok(());
        };
        let mut any = false;
        for b in bound {
            if let StdListener::Unix(_, Some(file)) = &b.listener {
                any = true;
                std::os::unix::fs::chown(file.path(), owner.uid, owner.gid).map_err(|source| {
                    Error::Listen {
                        addr: b.name.clone(),
                        source: io::Error::new(
                            source.kind(),
                            format!("--socket-owner: cannot change the owner: {source}"),
                        ),
                    }
                })?;
            }
        }
        if !any {
            tracing::warn!("--socket-owner applies to unix sockets we create, and there is none");
        }
        Ok(())
    }

    /// Drops to `--user`/`--group`: supplementary groups cleared, the group set, then the user,
    /// and checked (all three ids changed; with a non-root user, `setuid(0)` must now fail).
    /// Nothing to do without those options, or when they name who we already are.
    pub(crate) fn drop(&self) -> Result<(), Error> {
        let Some(t) = &self.target else {
            return Ok(());
        };
        let me = Current::get()?;
        if me.uid != 0 {
            // from_cli allowed it: the target is who we already are.
            tracing::info!(
                "{}: already running as uid {} gid {}",
                t.label,
                me.uid,
                me.gid
            );
            return Ok(());
        }
        let failed = |what: &'static str| move |source| Error::Io { what, source };
        sys::set_supplementary_groups(&[])
            .map_err(failed("cannot drop the supplementary groups"))?;
        sys::set_gid(t.gid).map_err(failed("cannot change the group id"))?;
        if let Some(uid) = t.uid {
            sys::set_uid(uid).map_err(failed("cannot change the user id"))?;
        }
        verify(t).map_err(failed("dropping privileges did not take"))?;
        tracing::info!(
            "{}: now running as uid {} gid {}, no supplementary groups",
            t.label,
            t.uid.unwrap_or(me.uid),
            t.gid
        );
        Ok(())
    }
}

/// `--user` and `--group` to ids.
fn resolve_target(user: Option<&str>, group: Option<&str>) -> Result<Option<Target>, Error> {
    let label = match (user, group) {
        (None, None) => return Ok(None),
        (Some(u), None) => format!("--user {u}"),
        (None, Some(g)) => format!("--group {g}"),
        (Some(u), Some(g)) => format!("--user {u} --group {g}"),
    };
    let user = user.map(|u| lookup_user("--user", u)).transpose()?;
    let gid = match (group, user) {
        (Some(g), _) => lookup_group("--group", g)?,
        (None, Some((_, Some(gid)))) => gid,
        (None, Some((uid, None))) => {
            return Err(Error::Usage(format!(
                "--user {uid}: the user database has no entry for uid {uid}, so no primary \
                 group: give --group too"
            )))
        }
        (None, None) => unreachable!("one of them is given"),
    };
    Ok(Some(Target {
        uid: user.map(|(uid, _)| uid),
        gid,
        label,
    }))
}

/// A user name or uid: the uid and, when the database has an entry, its primary group.
fn lookup_user(flag: &str, spec: &str) -> Result<(u32, Option<u32>), Error> {
    let failed =
        |e: io::Error| Error::Usage(format!("{flag} {spec}: cannot look the user up: {e}"));
    if let Some(e) = nss::user_by_name(spec).map_err(failed)? {
        return Ok((e.uid, Some(e.gid)));
    }
    let uid: u32 = spec.parse().map_err(|_| {
        Error::Usage(format!(
            "{flag} {spec}: unknown user (give a user name or a numeric uid)"
        ))
    })?;
    Ok((uid, nss::user_by_uid(uid).map_err(failed)?.map(|e| e.gid)))
}

/// A group name or gid.
fn lookup_group(flag: &str, spec: &str) -> Result<u32, Error> {
    let failed =
        |e: io::Error| Error::Usage(format!("{flag} {spec}: cannot look the group up: {e}"));
    if let Some(gid) = nss::group_by_name(spec).map_err(failed)? {
        return Ok(gid);
    }
    spec.parse().map_err(|_| {
        Error::Usage(format!(
            "{flag} {spec}: unknown group (give a group name or a numeric gid)"
        ))
    })
}

/// `USER`, `USER:GROUP` or `:GROUP` (the command line checked the spelling).
fn owner(spec: &str) -> Result<Owner, Error> {
    let (user, group) = spec.split_once(':').unwrap_or((spec, ""));
    let uid = match user {
        "" => None,
        u => Some(lookup_user("--socket-owner", u)?.0),
    };
    let gid = match group {
        "" => None,
        g => Some(lookup_group("--socket-owner", g)?),
    };
    Ok(Owner { uid, gid })
}

/// Not root: `--user`/`--group` may only name who we already are.
fn check_allowed(t: &Target, me: Current) -> Result<(), Error> {
    if me.uid == 0 {
        return Ok(());
    }
    let same_user = t.uid.is_none_or(|uid| uid == me.uid);
    if same_user && t.gid == me.gid {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "{}: changing user or group needs gatehouse to start as root (it runs as uid {} gid {})",
        t.label, me.uid, me.gid
    )))
}

/// After the drop: every id is the target's, no supplementary group is left, and a non-root
/// user cannot become root again.
fn verify(t: &Target) -> io::Result<()> {
    let gids = sys::group_ids()?;
    if !gids.all(t.gid) {
        return Err(io::Error::other(format!(
            "group ids are {gids:?}, not all {}",
            t.gid
        )));
    }
    let groups = sys::supplementary_groups()?;
    if !groups.is_empty() {
        return Err(io::Error::other(format!(
            "supplementary groups {groups:?} are left"
        )));
    }
    let Some(uid) = t.uid else {
        return Ok(());
    };
    let uids = sys::user_ids()?;
    if !uids.all(uid) {
        return Err(io::Error::other(format!(
            "user ids are {uids:?}, not all {uid}"
        )));
    }
    if uid != 0 && sys::set_uid(0).is_ok() {
        return Err(io::Error::other("setuid(0) still succeeds"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Cli {
        Cli::try_from_args(std::iter::once("gatehouse").chain(args.iter().copied())).unwrap()
    }

    fn usage(args: &[&str]) -> String {
        match Privileges::from_cli(&cli(args)) {
            Err(e @ Error::Usage(_)) => {
                let text = e.to_string();
                assert_eq!(text.lines().count(), 1, "{text}");
                text
            }
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn names_and_ids_resolve() {
        assert_eq!(resolve_target(None, None).unwrap(), None);
        let root = resolve_target(Some("root"), None).unwrap().unwrap();
        assert_eq!((root.uid, root.gid), (Some(0), 0));
        let t = resolve_target(Some("0"), Some("0")).unwrap().unwrap();
        assert_eq!(
            (t.uid, t.gid, t.label.as_str()),
            (Some(0), 0, "--user 0 --group 0")
        );
        let g = resolve_target(None, Some("4242")).unwrap().unwrap();
        assert_eq!((g.uid, g.gid), (None, 4242));
        assert_eq!(
            owner("root:root").unwrap(),
            Owner {
                uid: Some(0),
                gid: Some(0)
            }
        );
        assert_eq!(
            owner(":77").unwrap(),
            Owner {
                uid: None,
                gid: Some(77)
            }
        );
        assert_eq!(
            owner("0").unwrap(),
            Owner {
                uid: Some(0),
                gid: None
            }
        );
    }

    #[test]
    fn bad_names_are_one_line_usage_errors() {
        let err = usage(&["--user", "no-such-user-gatehouse"]);
        assert!(err.contains("unknown user"), "{err}");
        assert!(err.contains("no-such-user-gatehouse"), "{err}");
        let err = usage(&["--group", "no-such-group-gatehouse"]);
        assert!(err.contains("unknown group"), "{err}");
        let err = usage(&["--socket-owner", "root:no-such-group-gatehouse"]);
        assert!(err.contains("--socket-owner"), "{err}");
        // A uid the database does not know has no primary group.
        let err = usage(&["--user", "4000000123"]);
        assert!(err.contains("--group"), "{err}");
        assert!(
            Privileges::from_cli(&cli(&["--user", "4000000123", "--group", "5"])).is_ok()
                || Current::get().unwrap().uid != 0
        );
    }

    #[test]
    fn cgi_user_needs_root_to_stay() {
        if Current::get().unwrap().uid != 0 {
            return; // --user itself is refused first when we are not root
        }
        let err = usage(&["--user", "nobody", "--cgi-user", "nobody", "cgi:/tmp"]);
        assert!(err.contains("--cgi-user"), "{err}");
        // Root stays root: scripts can still change user.
        assert!(Privileges::from_cli(&cli(&["--user", "root", "--cgi-user", "nobody"])).is_ok());
    }

    #[test]
    fn not_root_may_only_name_itself() {
        let t = |uid, gid| Target {
            uid,
            gid,
            label: "--user x".into(),
        };
        let me = Current {
            uid: 1000,
            gid: 1000,
        };
        assert!(check_allowed(&t(Some(1000), 1000), me).is_ok());
        assert!(check_allowed(&t(None, 1000), me).is_ok());
        let err = check_allowed(&t(Some(0), 0), me).unwrap_err().to_string();
        assert!(err.contains("needs gatehouse to start as root"), "{err}");
        assert!(check_allowed(&t(Some(1000), 5), me).is_err());
        let root = Current { uid: 0, gid: 0 };
        assert!(check_allowed(&t(Some(65534), 65534), root).is_ok());
    }

    #[test]
    fn nothing_to_do_without_options() {
        let p = Privileges::from_cli(&cli(&[])).unwrap();
        assert_eq!(p, Privileges::default());
        assert!(!p.changes_identity());
        p.drop().unwrap();
        p.chown_sockets(&[]).unwrap();
    }
}
