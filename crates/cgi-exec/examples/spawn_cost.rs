//! How much a spawn costs as the daemon grows, on std's fast path (posix_spawn, which glibc
//! runs as `clone(CLONE_VM | CLONE_VFORK)`: no page tables copied) and on its slow path
//! (`fork` + `exec`, taken as soon as `uid`/`gid` are set, as `--cgi-user` does).
//!
//! ```text
//! cargo run --release -p gatehouse-cgi-exec --example spawn_cost -- [RSS_MIB...]
//! ```
//!
//! For each resident size it touches that much memory, then spawns `/bin/true` 200 times with
//! the settings `CgiApp` uses (clean environment, working directory, own process group, piped
//! stdio), with and without `uid`/`gid` (the current ids, so nothing else changes), and prints
//! the mean time per spawn-and-wait. A measurement tool, not a test.
#![allow(clippy::unwrap_used)] // reason: a measurement program; any failure should just stop it

use std::process::Stdio;
use std::time::Instant;

const SPAWNS: u32 = 200;

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().unwrap())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![16, 256, 1024]
    } else {
        sizes
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // SAFETY-free way to learn our ids: the same values `id -u` prints.
    let uid = id("-u");
    let gid = id("-g");
    println!(
        "{:>8} {:>16} {:>16} {:>16}",
        "RSS MiB", "fast path µs", "uid/gid µs", "setpriv µs"
    );
    let mut ballast: Vec<Vec<u8>> = Vec::new();
    let mut have = 0;
    for mib in sizes {
        while have < mib {
            ballast.push(vec![1u8; 1024 * 1024]);
            have += 1;
        }
        let fast = runtime.block_on(mean_spawn(Way::Fast));
        let slow = runtime.block_on(mean_spawn(Way::Ids(uid, gid)));
        let setpriv = runtime.block_on(mean_spawn(Way::Setpriv(uid, gid)));
        println!("{mib:>8} {fast:>16.1} {slow:>16.1} {setpriv:>16.1}");
    }
    std::hint::black_box(&ballast);
}

fn id(flag: &str) -> u32 {
    let out = std::process::Command::new("id").arg(flag).output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// How the child gets its identity.
#[derive(Clone, Copy)]
enum Way {
    /// No identity change: posix_spawn.
    Fast,
    /// std's `uid`/`gid`: fork + exec.
    Ids(u32, u32),
    /// posix_spawn of util-linux `setpriv`, which changes ids and execs the program.
    Setpriv(u32, u32),
}

async fn mean_spawn(way: Way) -> f64 {
    let start = Instant::now();
    for _ in 0..SPAWNS {
        let mut cmd = match way {
            Way::Setpriv(uid, gid) => {
                let mut cmd = tokio::process::Command::new("/usr/bin/setpriv");
                cmd.arg(format!("--reuid={uid}"))
                    .arg(format!("--regid={gid}"))
                    .args(["--clear-groups", "--", "/bin/true"]);
                cmd
            }
            _ => tokio::process::Command::new("/bin/true"),
        };
        cmd.env_clear()
            .env("PATH", "/usr/bin:/bin")
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        if let Way::Ids(uid, gid) = way {
            cmd.uid(uid).gid(gid);
        }
        cmd.spawn().unwrap().wait().await.unwrap();
    }
    start.elapsed().as_secs_f64() * 1e6 / f64::from(SPAWNS)
}
