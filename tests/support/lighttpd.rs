//! A real lighttpd for the end-to-end tests: configured from a template in
//! `fixtures/conf/lighttpd/`, everything it writes (pid, error log, upload temp files) in the
//! test's temp dir, on a free loopback port, in the foreground (`-D`) as our child, stopped when
//! dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::{free_port, require, wait_for};

/// A running lighttpd.
pub struct Lighttpd {
    child: Child,
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    dir: PathBuf,
}

impl Lighttpd {
    /// Starts lighttpd from `fixtures/conf/lighttpd/<template>` with `@DIR@` = `dir`, `@PORT@` a
    /// free port and every `(placeholder, value)` of `vars` replaced; waits until it accepts
    /// connections. Retries on another port if the chosen one was taken meanwhile.
    pub fn start_with(template: &str, vars: &[(&str, &str)], dir: &Path) -> Self {
        let lighttpd = require("lighttpd", "lighttpd");
        let text = std::fs::read_to_string(super::fixtures().join("conf/lighttpd").join(template))
            .unwrap_or_else(|e| panic!("template {template}: {e}"));
        for _attempt in 0..5 {
            let port = free_port();
            let mut conf = text
                .replace("@DIR@", &dir.display().to_string())
                .replace("@PORT@", &port.to_string());
            for (name, value) in vars {
                conf = conf.replace(name, value);
            }
            let conf_path = dir.join("lighttpd.conf");
            std::fs::write(&conf_path, conf).expect("write lighttpd.conf");
            let error_log = dir.join("error.log");
            let _ = std::fs::remove_file(&error_log);
            let child = Command::new(&lighttpd)
                .arg("-D")
                .arg("-f")
                .arg(&conf_path)
                .stdin(Stdio::null())
                .spawn()
                .expect("start lighttpd");
            let mut me = Self {
                child,
                port,
                dir: dir.to_owned(),
            };
            if me.wait_ready() {
                return me;
            }
            let log = me.error_log();
            assert!(
                log.contains("Address already in use"),
                "lighttpd failed to start:\n{log}"
            );
        }
        panic!("lighttpd found no free port in 5 attempts");
    }

    /// Waits until the port answers; `false` if lighttpd exited instead.
    fn wait_ready(&mut self) -> bool {
        let port = self.port;
        let child = &mut self.child;
        wait_for("lighttpd to listen", || {
            if child.try_wait().expect("try_wait").is_some() {
                return Some(false);
            }
            std::net::TcpStream::connect(("127.0.0.1", port))
                .is_ok()
                .then_some(true)
        })
    }

    /// lighttpd's error log so far (CGI programs' stderr lands here too).
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }
}

impl Drop for Lighttpd {
    fn drop(&mut self) {
        super::stop_child(&mut self.child);
    }
}
