//! The parity rig: one `gatehouse echo` with a FastCGI, an SCGI, an HTTP and a uwsgi listener,
//! one nginx in front of all four (fixtures/conf/nginx/parity.conf.tmpl), and [`Rig::send`], which
//! carries a [`Case`] to `echo` along one [`Route`].

use std::io::Write;
use std::process::{Command, Stdio};

use super::case::{Case, Framing};
use super::route::Route;
use super::server::{cgi_vars, Profile};
use super::wire::{self, Reply};
use crate::support::daemon::Daemon;
use crate::support::nginx::Nginx;
use crate::support::{fcgi, free_port};

/// A daemon and an nginx, stopped when dropped.
pub struct Rig {
    // Field order is drop order: nginx goes before the daemon it talks to.
    nginx: Nginx,
    /// nginx's ports: fastcgi (buffered), fastcgi (streamed), scgi, proxy, uwsgi.
    ports: [u16; 5],
    daemon: Daemon,
    fastcgi: String,
    scgi: String,
    http: u16,
    _dir: tempfile::TempDir,
}

impl Rig {
    /// Starts both and waits until they listen.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let daemon = Daemon::serve(&[
            "echo",
            "--fastcgi",
            "127.0.0.1:0",
            "--scgi",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
            "--uwsgi",
            "127.0.0.1:0",
        ]);
        let fastcgi = daemon.listener("fastcgi");
        let scgi = daemon.listener("scgi");
        let http_addr = daemon.listener("http");
        let uwsgi = daemon.listener("uwsgi");
        let http = http_addr
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("http listener {http_addr:?}"));
        let extra = [free_port(), free_port(), free_port(), free_port()];
        let extra_s = extra.map(|p| p.to_string());
        let nginx = Nginx::start_with(
            "parity.conf.tmpl",
            &[
                ("@PORT_FCGI_STREAM@", &extra_s[0]),
                ("@PORT_SCGI@", &extra_s[1]),
                ("@PORT_PROXY@", &extra_s[2]),
                ("@PORT_UWSGI@", &extra_s[3]),
                ("@UWSGI@", &uwsgi),
                ("@FASTCGI@", &fastcgi),
                ("@SCGI@", &scgi),
                ("@HTTP@", &http_addr),
            ],
            dir.path(),
        );
        for port in extra {
            crate::support::wait_for("nginx's other servers", || {
                std::net::TcpStream::connect(("127.0.0.1", port)).ok()
            });
        }
        let ports = [nginx.port, extra[0], extra[1], extra[2], extra[3]];
        Self {
            nginx,
            ports,
            daemon,
            fastcgi,
            scgi,
            http,
            _dir: dir,
        }
    }

    /// Carries `case` to `echo` along `route` and returns the answer.
    pub fn send(&self, route: Route, case: &Case) -> Reply {
        match route {
            Route::FastCgi => self.fastcgi(case),
            Route::Scgi => wire::scgi(&self.scgi, &cgi_vars(case, Profile::Scgi, true), &case.body),
            Route::Http => wire::http(self.http, case),
            Route::Cgi => run_cgi(case, true),
            Route::NginxFastCgi => wire::http(self.ports[0], case),
            Route::NginxFastCgiStreamed => wire::http(self.ports[1], case),
            Route::NginxScgi => wire::http(self.ports[2], case),
            Route::NginxProxy => wire::http(self.ports[3], case),
            Route::NginxUwsgi => wire::http(self.ports[4], case),
        }
    }

    /// FastCGI as nginx sends it: a chunked upload without `CONTENT_LENGTH`, its end the empty
    /// `FCGI_STDIN` record (what `fastcgi_request_buffering off` does).
    fn fastcgi(&self, case: &Case) -> Reply {
        let streamed = case.framing == Framing::Chunked;
        let vars = cgi_vars(case, Profile::FastCgi, !streamed);
        let answer = fcgi::call(&self.fastcgi, &vars, &case.body);
        assert_eq!(
            (answer.protocol_status, answer.app_status),
            (fcgi::REQUEST_COMPLETE, 0),
            "END_REQUEST for {}",
            case.label
        );
        Reply::from_cgi(&answer.stdout)
    }

    /// nginx's error log and the daemon's log, for failure reports.
    pub fn logs(&self) -> String {
        format!(
            "--- nginx error.log ---\n{}\n--- gatehouse ---\n{}",
            self.nginx.error_log(),
            self.daemon.log().join("\n")
        )
    }
}

/// Runs the binary as a CGI program for `case`, as a web server runs one: no arguments (the app
/// from `GATEHOUSE_APP`), an environment of the CGI variables only, the body on stdin. Without
/// `with_length` the environment has no `CONTENT_LENGTH` while the body is still written.
pub fn run_cgi(case: &Case, with_length: bool) -> Reply {
    let mut vars = cgi_vars(case, Profile::Cgi, with_length);
    vars.push(("GATEHOUSE_APP".into(), "echo".into()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .env_clear()
        .envs(vars)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start gatehouse as a CGI program");
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let body = case.body.clone();
    // From a thread: the program may answer before it has read everything.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&body);
    });
    let out = child.wait_with_output().expect("wait for the CGI program");
    writer.join().expect("stdin writer");
    assert!(
        out.status.success(),
        "CGI run for {} exited {:?}: {}",
        case.label,
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Reply::from_cgi(&out.stdout)
}
