//! The embedded interpreter is the python3 the crate was built for: same version, prefix,
//! site-packages and stdlib as that executable reports about itself, and the libpython mapped
//! into the process comes from the build's library directory (the rpath works).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use gatehouse_wsgi::{built_for, interpreter_info};
use support::{config, fixture, load, Call};

/// What the interpreter we embed says about itself when it runs as a program.
fn native_facts(executable: &Path) -> serde_json::Value {
    let out = Command::new(executable)
        .arg(fixture("wsgi_interp.py"))
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", executable.display()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

#[tokio::test]
async fn embedded_interpreter_is_the_one_built_for() {
    let build = built_for();
    assert!(!build.executable.is_empty(), "pyo3 reported no executable");
    // Under an activated virtualenv the embedded interpreter is the venv's.
    let executable = match std::env::var_os("VIRTUAL_ENV").filter(|v| !v.is_empty()) {
        Some(venv) => PathBuf::from(venv).join("bin/python3"),
        None => PathBuf::from(build.executable),
    };
    let native = native_facts(&executable);

    let app = load("wsgi_interp.py", "application", config(1));
    let embedded = Call::get("/").run(&app).await.json();
    for key in [
        "version",
        "prefix",
        "base_prefix",
        "exec_prefix",
        "executable",
        "site_packages",
        "stdlib",
        "purelib",
    ] {
        assert_eq!(embedded[key], native[key], "{key}");
    }
    assert_eq!(embedded["stdout_is_stderr"], true);
    assert_eq!(embedded["stdin_read"], "");
    let version = embedded["version"].as_str().unwrap_or_default();
    assert!(
        version.starts_with(&format!("{}.", build.version)),
        "{version}"
    );

    let info = interpreter_info();
    let prefix = native["prefix"].as_str().unwrap_or_default();
    assert!(info.contains(&format!("prefix={prefix}")), "{info}");
    assert!(info.starts_with("CPython 3."), "{info}");
}

#[test]
fn libpython_comes_from_the_build_directory() {
    let build = built_for();
    if build.lib_dir.is_empty() {
        return; // statically linked: no shared library to pick
    }
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let mapped: Vec<&str> = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter(|p| p.contains("/libpython"))
        .collect();
    assert!(!mapped.is_empty(), "no libpython mapped");
    let want = Path::new(build.lib_dir).canonicalize().unwrap();
    for path in mapped {
        let dir = Path::new(path).parent().unwrap().canonicalize().unwrap();
        assert_eq!(dir, want, "{path}");
    }
}
