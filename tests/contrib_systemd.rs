//! The systemd units in contrib/systemd/ pass `systemd-analyze verify` (which works without
//! systemd running as PID 1: it loads the units from their directory and checks every key),
//! with ExecStart= pointing at the binary under test; and the names their sockets pass are the
//! protocols gatehouse serves by name.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::daemon::run;
use support::require;

const UNITS: [&str; 3] = [
    "gatehouse.service",
    "gatehouse.socket",
    "gatehouse-http.socket",
];

fn contrib() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("contrib/systemd")
}

/// Copies the units to `dir`, ExecStart= running the binary under test, and `extra` appended
/// to the service; returns what `systemd-analyze verify` printed (status, output lines).
fn verify(dir: &Path, extra: &str) -> (bool, Vec<String>) {
    for unit in UNITS {
        let text = std::fs::read_to_string(contrib().join(unit)).expect("read a unit");
        let text = text.replace("/usr/local/bin/gatehouse", env!("CARGO_BIN_EXE_gatehouse"));
        let text = if unit.ends_with(".service") {
            format!("{text}\n[Service]\n{extra}\n")
        } else {
            text
        };
        std::fs::write(dir.join(unit), text).expect("write a unit");
    }
    let mut cmd = Command::new(require("systemd-analyze", "systemd"));
    cmd.arg("verify").args(UNITS.map(|u| dir.join(u)));
    let (status, out, err) = run(cmd);
    let lines = out
        .lines()
        .chain(err.lines())
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect();
    (status.success(), lines)
}

#[test]
fn units_pass_systemd_analyze_verify() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, lines) = verify(dir.path(), "");
    assert!(ok && lines.is_empty(), "systemd-analyze verify: {lines:#?}");

    // The check is real: a misspelt key is reported.
    let (_, lines) = verify(dir.path(), "KilSignal=SIGTERM");
    assert!(
        lines.iter().any(|l| l.contains("KilSignal")),
        "systemd-analyze verify missed a bad key: {lines:#?}"
    );
}

#[test]
fn sockets_are_named_for_their_protocols() {
    for (unit, name) in [
        ("gatehouse.socket", "fastcgi"),
        ("gatehouse-http.socket", "http"),
    ] {
        let text = std::fs::read_to_string(contrib().join(unit)).unwrap();
        assert!(
            text.lines()
                .any(|l| l == format!("FileDescriptorName={name}")),
            "{unit} should pass its socket as {name}"
        );
        assert!(
            text.lines().any(|l| l == "Service=gatehouse.service"),
            "{unit}"
        );
    }
    let service = std::fs::read_to_string(contrib().join("gatehouse.service")).unwrap();
    for line in ["Type=notify", "KillSignal=SIGTERM"] {
        assert!(service.lines().any(|l| l == line), "service lacks {line}");
    }
}
