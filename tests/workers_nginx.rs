//! End-to-end: reloading the workers with SIGHUP while a real nginx sends them requests
//! (`fastcgi_pass`, fixtures/conf/nginx/fastcgi.conf.tmpl): one FastCGI connection per request
//! (`/plain/`), and `fastcgi_keep_conn on` with an upstream keepalive pool (`/keepalive/`).
//!
//! Under a load of client threads (each request on a new connection to nginx), the app file is
//! edited (`v1` → `v2`) and the master gets SIGHUP: every request gets a `200` (none may fail,
//! not even while the old workers stop: they still take the first request of a connection they
//! accepted), `v2` is served once the new generation is ready,
//! and the old workers exit 0. Then the file is broken (it raises at import) and SIGHUP again:
//! the reload fails in the log, `v2` goes on being served, without a failed request.

mod support;
#[path = "support/workers.rs"]
mod workers_support;

use std::path::Path;

use support::daemon::Daemon;
use support::fixtures;
use support::nginx::Nginx;
use workers_support::{failures, pid_list, serving_pids, Load, Outcome};

/// Client threads sending requests through nginx.
const CLIENTS: usize = 3;

/// Replaces `path` with `text` in one step (a worker importing it meanwhile sees either file).
fn replace_file(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write the new app");
    std::fs::rename(&tmp, path).expect("rename the new app into place");
}

/// The answers of `phase` and later, which must all be `200 <version> <pid>` with one of `pids`.
fn assert_served_by(outcomes: &[Outcome], phase: usize, version: &str, pids: &[u32]) {
    let mine: Vec<&Outcome> = outcomes.iter().filter(|o| o.phase >= phase).collect();
    assert!(!mine.is_empty(), "no request in phase {phase}");
    for o in mine {
        let got = o.result.as_ref().expect("checked: no failure");
        assert_eq!(got.version(), version, "phase {phase}: {got:?}");
        assert!(
            pids.contains(&got.pid()),
            "phase {phase}: {got:?} not from {pids:?}"
        );
    }
}

/// Runs the reload scenario through nginx's `location` (`/plain/` or `/keepalive/`): no request
/// may fail.
fn reload_under_load(location: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let app = dir.path().join("app.py");
    let v1 = std::fs::read_to_string(fixtures().join("apps/workers.py")).expect("workers.py");
    assert!(v1.contains("VERSION = \"v1\""));
    std::fs::write(&app, &v1).expect("write app.py");

    let spec = format!("wsgi:{}", app.display());
    let mut d = Daemon::start(&[&spec, "--workers", "2", "--fastcgi", "127.0.0.1:0"]);
    let upstream = d.listener("fastcgi");
    let first = serving_pids(&d);
    let nginx_dir = dir.path().join("nginx");
    std::fs::create_dir(&nginx_dir).expect("nginx dir");
    let nginx = Nginx::start("fastcgi.conf.tmpl", &upstream, &nginx_dir);

    let load = Load::start(&format!("127.0.0.1:{}", nginx.port), location, CLIENTS);
    load.wait_for(
        "a v1 answer",
        |o| matches!(&o.result, Ok(g) if g.version() == "v1"),
    );

    // A good reload: the size changes too, so no stale bytecode cache can answer for v2.
    replace_file(&app, &v1.replace("\"v1\"", "\"v2\"  # reloaded"));
    d.signal(libc::SIGHUP);
    d.wait_log("received SIGHUP: reloading (starting 2 worker(s) of generation 2)");
    let second = pid_list(&d.wait_log("reload: generation 2 ready ("), "pids ");
    load.wait_for(
        "a v2 answer",
        |o| matches!(&o.result, Ok(g) if g.version() == "v2"),
    );
    for pid in &first {
        d.wait_log(&format!("(pid {pid}, generation 1) exited with status 0"));
    }
    // The old workers are gone: from here on only the new ones answer.
    load.set_phase(1);
    load.wait_more(20);

    // A failed reload: the new generation cannot import the app; the serving one goes on.
    replace_file(&app, "raise RuntimeError('a broken edit, on purpose')\n");
    d.signal(libc::SIGHUP);
    d.wait_log("received SIGHUP: reloading (starting 2 worker(s) of generation 3)");
    d.wait_log("reload failed: worker ");
    load.set_phase(2);
    load.wait_more(20);
    let outcomes = load.stop();

    let failed = failures(&outcomes);
    let report = format!(
        "{} of {} requests through {location} failed: {failed:?}\nnginx error log:\n{}",
        failed.len(),
        outcomes.len(),
        nginx.error_log()
    );
    assert!(failed.is_empty(), "{report}");
    assert_served_by(&outcomes, 1, "v2", &second);
    assert_eq!(d.count_log("; the workers of generation 2 keep serving"), 1);
    assert_eq!(d.stop().code(), Some(0));
    for pid in &second {
        d.wait_log(&format!("(pid {pid}, generation 2) exited with status 0"));
    }
}

#[test]
fn sighup_reloads_an_edited_app_without_a_failed_request_plain() {
    reload_under_load("/plain/");
}

#[test]
fn sighup_reloads_an_edited_app_without_a_failed_request_keepalive() {
    reload_under_load("/keepalive/");
}
