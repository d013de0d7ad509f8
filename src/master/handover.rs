//! The master's listening sockets: kept open for as long as it runs, passed to every worker
//! (close-on-exec off), handed to a new master on SIGUSR2 (and taken over from an old one), and
//! the re-execution that titles the master `gatehouse: master`.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;

use socket2::SockRef;

use crate::error::Error;
use crate::listen::{Bound, SocketFile, StdListener};
use crate::worker;

/// Set while the master re-executes itself under its title.
pub(crate) const ENV_TITLED: &str = "GATEHOUSE_MASTER_TITLE";
/// The listeners an old master hands the new one (SIGUSR2), as `KIND FD NAME` lines.
pub(crate) const ENV_UPGRADE_LISTENERS: &str = "GATEHOUSE_UPGRADE_LISTENERS";
/// The old master's pid, to stop once the new one serves.
pub(crate) const ENV_UPGRADE_FROM: &str = "GATEHOUSE_UPGRADE_FROM";

/// The listeners an old master handed over (SIGUSR2), adopted, and its pid; `None` when this
/// master was not started by one. Reads and removes the variables (single-threaded start-up).
pub(super) fn from_old_master() -> Result<Option<(Vec<Bound>, u32)>, Error> {
    let Some(table) = std::env::var_os(ENV_UPGRADE_LISTENERS) else {
        return Ok(None);
    };
    let from = std::env::var_os(ENV_UPGRADE_FROM).unwrap_or_default();
    // Single-threaded start-up: nothing else reads the environment yet.
    #[allow(clippy::disallowed_methods)]
    {
        std::env::remove_var(ENV_UPGRADE_LISTENERS);
        std::env::remove_var(ENV_UPGRADE_FROM);
    }
    let bad = |what: &str| Error::Usage(format!("{what} is not what a gatehouse master sets"));
    let table = table.to_str().ok_or_else(|| bad(ENV_UPGRADE_LISTENERS))?;
    let old: u32 = from
        .to_str()
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| bad(ENV_UPGRADE_FROM))?;
    let listeners = worker::parse_listeners(table).map_err(Error::Usage)?;
    let mut bound = worker::take_listeners(&listeners, "the old master")?;
    // This master removes the unix socket files it now serves when it exits.
    for b in &mut bound {
        if let (StdListener::Unix(_, file @ None), Some(path)) =
            (&mut b.listener, b.name.strip_prefix("unix:"))
        {
            *file = SocketFile::record(std::path::Path::new(path)).ok();
        }
    }
    Ok(Some((bound, old)))
}

/// Shows the master as `gatehouse: master` in `ps`: re-executes this binary once with that
/// `argv[0]` (same pid, same descriptors: an inherited fd 0 or systemd sockets stay where they
/// are). Called first thing, with one thread; if the exec fails the master goes on untitled.
pub(super) fn retitle() {
    if std::env::var_os(ENV_TITLED).is_some() {
        // Single-threaded start-up: nothing else reads the environment yet.
        #[allow(clippy::disallowed_methods)]
        std::env::remove_var(ENV_TITLED);
        return;
    }
    let err = std::process::Command::new("/proc/self/exe")
        .arg0("gatehouse: master")
        .args(std::env::args_os().skip(1))
        .env(ENV_TITLED, "1")
        .exec();
    tracing::debug!("cannot re-execute as `gatehouse: master` ({err}); going on untitled");
}

/// The listening sockets, open in the master for as long as it runs, inherited by every worker.
pub(super) struct Listeners {
    /// Kept open (and unix socket files removed when dropped).
    bound: Option<Vec<Bound>>,
    /// What the workers are told.
    pub(super) table: Vec<(crate::listen::Kind, i32, String)>,
    /// A listener on fd 0 (spawn-fcgi) goes to the workers as their stdin.
    pub(super) fd0: Option<OwnedFd>,
}

impl Listeners {
    /// Makes the sockets inheritable (close-on-exec off: the master starts no other program).
    pub(super) fn share(bound: Vec<Bound>) -> io::Result<Self> {
        let mut table = Vec::new();
        let mut fd0 = None;
        for b in &bound {
            let fd = match &b.listener {
                StdListener::Tcp(l) => l.as_fd(),
                StdListener::Unix(l, _) => l.as_fd(),
            };
            SockRef::from(&fd).set_cloexec(false)?;
            crate::serve::prepare_shared(fd)?;
            if fd.as_raw_fd() == 0 {
                fd0 = Some(fd.try_clone_to_owned()?);
            }
            table.push((b.kind, fd.as_raw_fd(), b.name.clone()));
        }
        Ok(Self {
            bound: Some(bound),
            table,
            fd0,
        })
    }

    /// Closes the master's copies (workers that still serve keep theirs). `keep_files`: leave
    /// the unix socket files, which a new master serves now.
    pub(super) fn close(&mut self, keep_files: bool) {
        if let Some(bound) = self.bound.take() {
            for b in bound {
                if let StdListener::Unix(_, Some(file)) = b.listener {
                    if keep_files {
                        file.keep();
                    }
                }
            }
        }
        self.fd0 = None;
    }
}
