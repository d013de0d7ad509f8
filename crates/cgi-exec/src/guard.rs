//! One running script, and the promise that it is stopped and reaped whatever happens to the
//! request: no zombies, no orphans.
//!
//! ```text
//!   spawn ──► ChildGuard ──wait()──► reaped (normal end; the slot is freed)
//!                 │
//!                 └─dropped (client gone, timeout, error, future dropped)
//!                      └─► background task: SIGTERM the group ─ grace ─ SIGKILL the group ─ reap
//! ```
//!
//! Each script runs in its own process group (`process_group(0)`: the group id is the script's
//! pid), so signals reach whatever it started too. The group is only signalled while its leader
//! is not yet reaped: a zombie leader keeps its pid, and so the group id, from being reused by
//! another process. That is why the leader's exit is watched with `WNOWAIT` during the grace
//! period and reaped only after the final `SIGKILL`.
//!
//! The concurrency slot (`--cgi-max`) travels with the guard and is released once the script is
//! reaped, so killed scripts still count until they are really gone.

use std::process::ExitStatus;
use std::time::Duration;

use tokio::process::Child;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use crate::stats;
use crate::sys::{self, Signal};

/// How often the leader's exit is checked during the grace period.
const EXIT_POLL: Duration = Duration::from_millis(10);

/// A script that is running (or exited but not yet reaped).
#[derive(Debug)]
struct Running {
    child: Option<Child>,
    pid: u32,
    permit: Option<OwnedSemaphorePermit>,
}

impl Drop for Running {
    fn drop(&mut self) {
        stats::reaped();
        // Only reached when nobody could wait for the child (no runtime, or the stopping task was
        // dropped at shutdown): kill at once; tokio reaps the dropped child in the background.
        if self.child.take().is_some() {
            let _ = sys::signal_group(self.pid, Signal::Kill);
        }
    }
}

/// Owns a script's process; dropping it stops the script's whole process group.
#[derive(Debug)]
pub(crate) struct ChildGuard {
    running: Option<Running>,
    grace: Duration,
}

impl ChildGuard {
    /// Takes ownership of a freshly spawned child (spawned with `process_group(0)`).
    ///
    /// Returns `None` when the child has no pid (it was already reaped), which cannot happen for
    /// a child that was just spawned.
    pub(crate) fn new(
        child: Child,
        grace: Duration,
        permit: Option<OwnedSemaphorePermit>,
    ) -> Option<Self> {
        let pid = child.id()?;
        stats::spawned();
        Some(Self {
            running: Some(Running {
                child: Some(child),
                pid,
                permit,
            }),
            grace,
        })
    }

    /// The script's pid, which is also its process group id.
    /// Whether the script has not been reaped yet (dropping the guard then stops it).
    pub(crate) fn is_running(&self) -> bool {
        self.running.is_some()
    }

    pub(crate) fn pid(&self) -> u32 {
        self.running.as_ref().map_or(0, |r| r.pid)
    }

    /// Waits for the script to exit and reaps it, releasing its concurrency slot.
    ///
    /// # Cancel safety
    /// Cancel-safe: a cancelled wait reaps nothing, and the guard still stops the script when
    /// dropped.
    pub(crate) async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        let Some(running) = self.running.as_mut() else {
            return Err(std::io::ErrorKind::NotFound.into());
        };
        let Some(child) = running.child.as_mut() else {
            return Err(std::io::ErrorKind::NotFound.into());
        };
        let status = child.wait().await?;
        running.child = None;
        self.running = None;
        Ok(status)
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let Some(running) = self.running.take() else {
            return;
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(stop(running, self.grace));
        }
        // Without a runtime, dropping `running` kills the group at once.
    }
}

/// SIGTERM the group, give it `grace` (ending early when the leader exits), SIGKILL the group,
/// then reap the leader.
async fn stop(mut running: Running, grace: Duration) {
    let pid = running.pid;
    if let Err(e) = sys::signal_group(pid, Signal::Term) {
        tracing::debug!(pgid = pid, error = %e, "SIGTERM to the script's process group failed");
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && !sys::exited_unreaped(pid).unwrap_or(true) {
        tokio::time::sleep_until(deadline.min(Instant::now() + EXIT_POLL)).await;
    }
    // The leader is still unreaped here, so the group id is still ours to signal.
    if let Err(e) = sys::signal_group(pid, Signal::Kill) {
        tracing::debug!(pgid = pid, error = %e, "SIGKILL to the script's process group failed");
    }
    if let Some(child) = running.child.as_mut() {
        match child.wait().await {
            Ok(status) => tracing::debug!(pgid = pid, %status, "stopped script reaped"),
            Err(e) => tracing::warn!(pgid = pid, error = %e, "cannot reap stopped script"),
        }
    }
    running.child = None;
    running.permit = None;
}

#[cfg(test)]
mod tests {
    use std::process::Stdio;

    use super::*;

    fn spawn(script: &str) -> Child {
        tokio::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap()
    }

    /// Whether any non-zombie process is in group `pgid`, or the leader still exists at all.
    fn group_alive(pgid: u32) -> bool {
        let leader = std::path::PathBuf::from(format!("/proc/{pgid}"));
        if leader.exists() {
            return true;
        }
        std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
            let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
                return false;
            };
            let Some(after) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
                return false;
            };
            let fields: Vec<&str> = after.split(' ').collect();
            fields.len() > 2 && fields[0] != "Z" && fields[2] == pgid.to_string()
        })
    }

    async fn until_gone(pgid: u32) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while group_alive(pgid) {
            assert!(
                Instant::now() < deadline,
                "process group {pgid} still alive"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn wait_reaps() {
        let mut g = ChildGuard::new(spawn("exit 3"), Duration::from_secs(1), None).unwrap();
        let pid = g.pid();
        assert_eq!(g.wait().await.unwrap().code(), Some(3));
        drop(g);
        until_gone(pid).await;
    }

    #[tokio::test]
    async fn drop_kills_group_that_ignores_sigterm() {
        // The shell ignores SIGTERM, and so does its child `sleep` (ignored signals are
        // inherited): only the SIGKILL after the grace period stops them.
        let child = spawn("trap '' TERM; sleep 1000 & sleep 1000; wait");
        let g = ChildGuard::new(child, Duration::from_millis(100), None).unwrap();
        let pid = g.pid();
        drop(g);
        until_gone(pid).await;
    }

    #[tokio::test]
    async fn permit_released_only_after_reaping() {
        let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(1));
        let permit = sem.clone().try_acquire_owned().unwrap();
        let g = ChildGuard::new(spawn("sleep 1000"), Duration::from_secs(5), Some(permit)).unwrap();
        drop(g);
        let again = tokio::time::timeout(Duration::from_secs(20), sem.acquire_owned()).await;
        assert!(again.is_ok(), "slot never released");
    }
}
