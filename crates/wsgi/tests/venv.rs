//! A virtualenv given in the config: its site-packages are importable and `sys.prefix` is the
//! venv, as when its `bin/python3` runs. Its own test binary: the interpreter is started once,
//! with this venv.

mod support;

use std::process::Command;

use gatehouse_wsgi::{built_for, Config, Error, WsgiApp};
use support::{fixture, Call};

#[tokio::test]
async fn venv_is_honoured() {
    let build = built_for();
    let dir = tempfile::tempdir().unwrap();
    let venv = dir.path().join("venv");
    let made = Command::new(build.executable)
        .args(["-m", "venv", "--without-pip"])
        .arg(&venv)
        .status()
        .expect("python3 -m venv");
    assert!(made.success());
    let site = venv.join(format!("lib/python{}/site-packages", build.version));
    std::fs::write(
        site.join("gatehouse_venv_marker.py"),
        "VALUE = 'from the venv'\n",
    )
    .unwrap();

    // What the venv's python3 says about itself.
    let out = Command::new(venv.join("bin/python3"))
        .arg(fixture("wsgi_interp.py"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let native: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();

    let spec = format!("{}:application", fixture("wsgi_interp.py").display())
        .parse()
        .unwrap();
    let config = Config {
        threads: 1,
        venv: Some(venv.clone()),
        ..Config::default()
    };
    let app = WsgiApp::load(&spec, config).unwrap_or_else(|e| panic!("{e}"));
    let embedded = Call::get("/").run(&app).await.json();

    let canonical = venv.canonicalize().unwrap();
    assert_eq!(embedded["prefix"], canonical.display().to_string());
    assert_eq!(embedded["marker"], "from the venv");
    let site = site.canonicalize().unwrap().display().to_string();
    assert!(
        embedded["site_packages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == &serde_json::Value::String(site.clone())),
        "{embedded}"
    );
    for key in [
        "base_prefix",
        "site_packages",
        "stdlib",
        "purelib",
        "marker",
    ] {
        assert_eq!(embedded[key], native[key], "{key}");
    }
    assert_ne!(embedded["prefix"], embedded["base_prefix"]);

    // One interpreter per process: another virtualenv cannot be switched to.
    let other = tempfile::tempdir().unwrap();
    std::fs::write(
        other.path().join("pyvenv.cfg"),
        format!("version = {}.0\n", build.version),
    )
    .unwrap();
    let config = Config {
        threads: 1,
        venv: Some(other.path().to_path_buf()),
        ..Config::default()
    };
    match WsgiApp::load(&spec, config) {
        Err(Error::Interpreter(msg)) => assert!(msg.contains("one interpreter"), "{msg}"),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("switched virtualenv"),
    }
}
