//! Starting one run of a script: find it, check it, build its environment, spawn it on std's
//! fast path.
//!
//! Rust's std spawns with `posix_spawn` (glibc: `clone(CLONE_VM | CLONE_VFORK)`, no page tables
//! copied) unless the command needs something posix_spawn cannot do: a `pre_exec` closure, or a
//! `uid`/`gid`. Then it falls back to `fork` + `exec`, whose cost grows with the daemon's memory
//! (measured by `examples/spawn_cost.rs`: about 1 ms at 16 MiB resident, 21 ms at 256 MiB, 73 ms
//! at 1 GiB, against a flat 0.6-2 ms for posix_spawn on the same machine). So:
//!
//! - the process group comes from `process_group(0)` (`POSIX_SPAWN_SETPGROUP`), the working
//!   directory from `current_dir` (`posix_spawn_file_actions_addchdir_np`, glibc 2.29+), the
//!   environment from `env_clear().envs(..)`, and the program is an absolute path: all on the
//!   fast path, and there is no `pre_exec`;
//! - running scripts as another user ([`Launch::Setpriv`]) posix_spawns util-linux `setpriv`
//!   (`--reuid --regid --clear-groups -- SCRIPT`), which changes identity and execs the script in
//!   the same process: a flat extra ~1 ms for one more exec, whatever the daemon's size. Only when
//!   `setpriv` is missing does it use std's `uid`/`gid` ([`Launch::Fork`]), with a warning.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gatehouse_channel_request::Env;
use tokio::process::{ChildStderr, ChildStdin, ChildStdout, Command};
use tokio::sync::OwnedSemaphorePermit;

use crate::childenv::{self, ScriptVars};
use crate::error::{Error, Refusal};
use crate::guard::ChildGuard;
use crate::resolve::{self, RequestPath};
use crate::safety::{self, Policy};

/// Where util-linux's `setpriv` is looked for.
pub const SETPRIV_PATHS: &[&str] = &["/usr/bin/setpriv", "/bin/setpriv"];

/// What `cgi:PATH` names.
#[derive(Debug)]
pub(crate) enum Root {
    /// A directory of scripts, with the checks each must pass.
    Dir(Policy),
    /// The one program that serves every request (canonical path).
    File(PathBuf),
}

/// How a script gets its identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Launch {
    /// Ours: the script is spawned directly.
    Direct,
    /// Through `setpriv`, posix_spawned: the fast path with another identity.
    Setpriv {
        /// The `setpriv` program.
        path: PathBuf,
        /// The user, if set.
        uid: Option<u32>,
        /// The group, if set.
        gid: Option<u32>,
    },
    /// std's `uid`/`gid`: fork + exec, slower as the daemon grows.
    Fork {
        /// The user, if set.
        uid: Option<u32>,
        /// The group, if set.
        gid: Option<u32>,
    },
}

impl Launch {
    /// The launch for these ids: direct without any, else `setpriv` from `candidates` when one
    /// exists, else fork.
    pub(crate) fn choose(uid: Option<u32>, gid: Option<u32>, candidates: &[&str]) -> Self {
        if uid.is_none() && gid.is_none() {
            return Self::Direct;
        }
        match candidates.iter().map(Path::new).find(|p| p.is_file()) {
            Some(path) => Self::Setpriv {
                path: path.to_path_buf(),
                uid,
                gid,
            },
            None => Self::Fork { uid, gid },
        }
    }

    /// The command that runs `program` (argv: the program alone, RFC 3875 section 4.4).
    fn command(&self, program: &Path) -> Command {
        match self {
            Self::Direct => Command::new(program),
            Self::Setpriv { path, uid, gid } => {
                let mut cmd = Command::new(path);
                if let Some(uid) = uid {
                    cmd.arg(format!("--reuid={uid}"));
                }
                if let Some(gid) = gid {
                    cmd.arg(format!("--regid={gid}"));
                }
                cmd.args(["--clear-groups", "--"]).arg(program);
                cmd
            }
            Self::Fork { uid, gid } => {
                let mut cmd = Command::new(program);
                if let Some(uid) = uid {
                    cmd.uid(*uid);
                }
                if let Some(gid) = gid {
                    cmd.gid(*gid);
                }
                cmd
            }
        }
    }
}

/// Everything needed to start a script; shared by all requests of an app.
#[derive(Debug)]
pub(crate) struct Spawner {
    pub(crate) root: Root,
    pub(crate) launch: Launch,
    pub(crate) path_env: OsString,
    pub(crate) daemon_env: Vec<(OsString, OsString)>,
    pub(crate) allow_world_writable: bool,
    pub(crate) kill_grace: Duration,
}

/// A started script and its pipes.
pub(crate) struct Started {
    pub(crate) guard: ChildGuard,
    pub(crate) stdin: Option<ChildStdin>,
    pub(crate) stdout: ChildStdout,
    pub(crate) stderr: ChildStderr,
    /// The canonical script path.
    pub(crate) program: Arc<Path>,
    /// Request variables the environment could not carry.
    pub(crate) dropped: Vec<Bytes>,
    /// Request variables refused as dangerous (`childenv::is_dangerous`).
    pub(crate) refused: Vec<Bytes>,
}

impl Spawner {
    /// Resolves, checks and spawns the script for `env` (a few `stat` calls and a `posix_spawn`,
    /// which returns once the child has exec'd). The slot `permit` stays with the script until it
    /// is reaped.
    pub(crate) fn start(
        &self,
        env: &Env,
        permit: Option<OwnedSemaphorePermit>,
        has_body: bool,
    ) -> Result<Started, Error> {
        let req_path = RequestPath::from_env(env)?;
        let (program, script_name, path_info) = self.find(env, &req_path)?;
        let vars = ScriptVars {
            program: &program,
            script_name: &script_name,
            path_info: &path_info,
        };
        let childenv::ChildEnv {
            vars,
            dropped,
            refused,
        } = childenv::build(env, vars, &self.path_env, &self.daemon_env);
        let mut cmd = self.launch.command(&program);
        cmd.env_clear()
            .envs(vars.iter().map(|(n, v)| (n, v)))
            .current_dir(safety::parent(&program))
            .stdin(if has_body {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(false);
        let spawn_err = |source| Error::Spawn {
            path: program.clone(),
            source,
        };
        let mut child = cmd.spawn().map_err(spawn_err)?;
        let stdin = child.stdin.take();
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(spawn_err(std::io::Error::other("no stdout/stderr pipe")));
        };
        let guard = ChildGuard::new(child, self.kill_grace, permit)
            .ok_or_else(|| spawn_err(std::io::Error::other("child has no pid")))?;
        Ok(Started {
            guard,
            stdin,
            stdout,
            stderr,
            program: Arc::from(program),
            dropped,
            refused,
        })
    }

    /// The program and its `SCRIPT_NAME` / `PATH_INFO`.
    fn find(&self, env: &Env, req_path: &RequestPath) -> Result<(PathBuf, Bytes, Bytes), Error> {
        match &self.root {
            Root::File(program) => {
                check_file_root(program, self.allow_world_writable).map_err(|why| {
                    Error::Forbidden {
                        path: program.clone(),
                        why,
                    }
                })?;
                let (name, info) = req_path.split_at_mount();
                Ok((program.clone(), name, info))
            }
            Root::Dir(policy) => {
                let found = resolve::find_in_dir(&policy.root, env, req_path)?;
                let program = policy.check_script(&found.path)?;
                Ok((program, found.script_name, found.path_info))
            }
        }
    }
}

/// The checks a file root passes at start-up and before every run.
pub(crate) fn check_file_root(program: &Path, allow_ww: bool) -> Result<(), Refusal> {
    let refusal = |e: Error| match e {
        Error::Forbidden { why, .. } => why,
        _ => Refusal::Inaccessible,
    };
    let meta = fs::metadata(program).map_err(|_| Refusal::Inaccessible)?;
    safety::check_program(program, &meta, allow_ww).map_err(refusal)?;
    if !allow_ww {
        safety::check_directories(program, safety::parent(program)).map_err(refusal)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launch_choice() {
        assert_eq!(Launch::choose(None, None, SETPRIV_PATHS), Launch::Direct);
        assert_eq!(
            Launch::choose(Some(1), Some(2), &["/nonexistent/setpriv"]),
            Launch::Fork {
                uid: Some(1),
                gid: Some(2)
            }
        );
        let with = Launch::choose(None, Some(2), &["/nonexistent", "/bin/sh"]);
        assert_eq!(
            with,
            Launch::Setpriv {
                path: PathBuf::from("/bin/sh"),
                uid: None,
                gid: Some(2)
            }
        );
    }

    /// Both ways of switching users give the script the same identity (run as root only).
    #[tokio::test]
    async fn setpriv_and_fork_agree() {
        use tokio::io::AsyncReadExt;

        if !crate::sys::is_root() {
            eprintln!("not root: switching users cannot be tested here");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(dir.path()).unwrap();
        let script = root.join("id.sh");
        fs::write(
            &script,
            "#!/bin/sh\nprintf 'X: y\\n\\n%s %s %s' $(id -u) $(id -g) \"$(id -G)\"\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();
        let mut outputs = Vec::new();
        for launch in [
            Launch::choose(Some(65534), Some(4343), SETPRIV_PATHS),
            Launch::Fork {
                uid: Some(65534),
                gid: Some(4343),
            },
        ] {
            let spawner = Spawner {
                root: Root::File(script.clone()),
                launch,
                path_env: OsString::from("/usr/bin:/bin"),
                daemon_env: Vec::new(),
                allow_world_writable: false,
                kill_grace: Duration::from_millis(100),
            };
            let mut started = spawner.start(&Env::new(), None, false).unwrap();
            let mut out = String::new();
            started.stdout.read_to_string(&mut out).await.unwrap();
            assert!(started.guard.wait().await.unwrap().success());
            outputs.push(out);
        }
        assert_eq!(outputs[0], "X: y\n\n65534 4343 4343");
        assert_eq!(outputs[0], outputs[1]);
    }

    #[test]
    fn setpriv_command_line() {
        let launch = Launch::Setpriv {
            path: PathBuf::from("/usr/bin/setpriv"),
            uid: Some(65534),
            gid: Some(65533),
        };
        let cmd = launch.command(Path::new("/srv/cgi/x.sh"));
        let std = cmd.as_std();
        assert_eq!(std.get_program(), "/usr/bin/setpriv");
        let args: Vec<_> = std.get_args().collect();
        assert_eq!(
            args,
            [
                "--reuid=65534",
                "--regid=65533",
                "--clear-groups",
                "--",
                "/srv/cgi/x.sh"
            ]
        );
        let direct = Launch::Direct.command(Path::new("/srv/cgi/x.sh"));
        assert_eq!(direct.as_std().get_args().count(), 0);
    }
}
