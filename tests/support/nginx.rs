//! A real nginx for the end-to-end tests: configured from a template in
//! `fixtures/conf/nginx/`, everything it writes (pid, logs, temp files) in the test's temp dir,
//! on a free loopback port, in the foreground as our child, stopped when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::{free_port, require, wait_for};

/// A running nginx.
pub struct Nginx {
    child: Child,
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    dir: PathBuf,
}

impl Nginx {
    /// Starts nginx from `fixtures/conf/nginx/<template>` with `@UPSTREAM@` = `upstream`, and
    /// waits until it accepts connections. Retries on another port if the chosen one was taken
    /// meanwhile.
    pub fn start(template: &str, upstream: &str, dir: &Path) -> Self {
        Self::start_with(template, &[("@UPSTREAM@", upstream)], dir)
    }

    /// Starts nginx from `fixtures/conf/nginx/<template>` with `@DIR@` and `@PORT@` filled in as
    /// for [`Nginx::start`], and every other `(placeholder, value)` of `vars` replaced. Fails if a
    /// `@NAME@` placeholder is left over.
    pub fn start_with(template: &str, vars: &[(&str, &str)], dir: &Path) -> Self {
        let nginx = require("nginx", "nginx");
        let text = std::fs::read_to_string(super::fixtures().join("conf/nginx").join(template))
            .unwrap_or_else(|e| panic!("template {template}: {e}"));
        for _attempt in 0..5 {
            let port = free_port();
            let mut conf = text
                .replace("@DIR@", &dir.display().to_string())
                .replace("@PORT@", &port.to_string());
            for (name, value) in vars {
                conf = conf.replace(name, value);
            }
            let left = conf
                .lines()
                .filter(|l| !l.trim_start().starts_with('#'))
                .find(|l| {
                    l.split('@').nth(1).is_some_and(|w| {
                        !w.is_empty() && w.chars().all(|c| c.is_ascii_uppercase() || c == '_')
                    })
                });
            assert!(left.is_none(), "{template}: placeholder left in {left:?}");
            let conf_path = dir.join("nginx.conf");
            std::fs::write(&conf_path, conf).expect("write nginx.conf");
            let _ = std::fs::remove_file(dir.join("nginx.pid"));
            let error_log = dir.join("error.log");
            let child = Command::new(&nginx)
                .arg("-p")
                .arg(dir)
                .arg("-e")
                .arg(&error_log)
                .arg("-c")
                .arg(&conf_path)
                .stdin(Stdio::null())
                .spawn()
                .expect("start nginx");
            let mut me = Self {
                child,
                port,
                dir: dir.to_owned(),
            };
            if me.wait_ready() {
                return me;
            }
            let log = std::fs::read_to_string(&error_log).unwrap_or_default();
            assert!(
                log.contains("Address already in use"),
                "nginx failed to start:\n{log}"
            );
        }
        panic!("nginx found no free port in 5 attempts");
    }

    /// Waits until the pid file exists (nginx writes it after opening its listeners) and the
    /// port answers. `false` if nginx exited instead.
    fn wait_ready(&mut self) -> bool {
        let pid_file = self.dir.join("nginx.pid");
        let port = self.port;
        let child = &mut self.child;
        wait_for("nginx to listen", || {
            if child.try_wait().expect("try_wait").is_some() {
                return Some(false);
            }
            let ready =
                pid_file.exists() && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
            ready.then_some(true)
        })
    }

    /// nginx's error log so far.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM: nginx's fast shutdown; the master stops its worker before exiting.
        super::stop_child(&mut self.child);
    }
}
