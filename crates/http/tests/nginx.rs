//! Real-peer test: nginx `proxy_pass` (HTTP/1.1, upstream keep-alive) in front of the echo app
//! served by this crate. nginx is required: a missing nginx fails the test.

#![allow(clippy::unwrap_used)] // reason: test helpers: a failed unwrap is a failed test

mod support;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use gatehouse_http::Config;
use support::*;
use tokio::net::TcpStream;

const NGINX: &str = "/usr/sbin/nginx";

struct Nginx {
    child: tokio::process::Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Nginx {
    async fn start(upstream: std::net::SocketAddr) -> Self {
        assert!(
            Path::new(NGINX).exists(),
            "{NGINX} is required for this test (apt-get install nginx)"
        );
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let d = dir.path().display();
        let conf = format!(
            r#"user root;
daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    client_max_body_size 64m;
    upstream gatehouse {{
        server {upstream};
        keepalive 4;
    }}
    server {{
        listen 127.0.0.1:{port};
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        location / {{
            proxy_pass http://gatehouse;
        }}
        location /stream/ {{
            proxy_request_buffering off;
            proxy_buffering off;
            proxy_pass http://gatehouse;
        }}
    }}
}}
"#
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = tokio::process::Command::new(NGINX)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut nginx = Self { child, port, dir };
        nginx.wait_ready().await;
        nginx
    }

    async fn wait_ready(&mut self) {
        for _ in 0..200 {
            if TcpStream::connect(("127.0.0.1", self.port)).await.is_ok() {
                return;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("nginx exited with {status}: {}", self.error_log());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("nginx did not start listening: {}", self.error_log());
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    async fn connect(&self) -> Client {
        Client::new(TcpStream::connect(("127.0.0.1", self.port)).await.unwrap())
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn request(method: &str, path: &str, body: &[u8]) -> Vec<u8> {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: nginx.test\r\nX-Test: {method}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    req
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_proxy_pass_get_and_post() {
    let srv = TestServer::start(echo(), Config::default()).await;
    let nginx = Nginx::start(srv.addr).await;
    let mut c = nginx.connect().await;
    for method in ["GET", "POST"] {
        for len in [0usize, 1, 1 << 20] {
            let body = pattern(len);
            let path = format!("/odd%20path/{method}/{len}?q=%2F&x");
            c.send(request(method, &path, &body)).await;
            let resp = c.read_response().await;
            assert_eq!(
                resp.status,
                200,
                "{method} {len}: {} / {}",
                resp.text(),
                nginx.error_log()
            );
            let json = resp.json();
            assert_eq!(json["method"], method);
            assert_eq!(json["path"], format!("/odd path/{method}/{len}"));
            assert_eq!(json["query"], "q=%2F&x");
            assert_eq!(json["headers"]["x-test"], method);
            assert_eq!(
                json["headers"]["host"], "gatehouse",
                "nginx sends the upstream name as Host"
            );
            assert_eq!(json["body_len"], len);
            assert_eq!(json["body_sha256"], sha256_hex(&body));
        }
    }
    drop(nginx);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_streams_a_chunked_upload_and_a_chunked_response() {
    static CHUNKS: &[&[u8]] = &[b"one ", b"two ", b"three"];
    let srv = TestServer::start(echo(), Config::default()).await;
    let chunked = TestServer::start(chunked_app(CHUNKS), Config::default()).await;
    let nginx = Nginx::start(srv.addr).await;
    let mut c = nginx.connect().await;
    // proxy_request_buffering off: nginx forwards the chunked body as chunked.
    let body = pattern(200_000);
    c.send("POST /stream/up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await;
    for piece in body.chunks(65_000) {
        c.send(format!("{:x}\r\n", piece.len())).await;
        c.send(piece).await;
        c.send("\r\n").await;
    }
    c.send("0\r\n\r\n").await;
    let resp = c.read_response().await;
    assert_eq!(resp.status, 200, "{} / {}", resp.text(), nginx.error_log());
    let json = resp.json();
    assert_eq!(json["body_len"], body.len());
    assert_eq!(json["body_sha256"], sha256_hex(&body));
    drop((c, nginx));
    let nginx = Nginx::start(chunked.addr).await;
    let mut c = nginx.connect().await;
    c.send(get("/", "")).await;
    let resp = c.read_response().await;
    assert_eq!(resp.body, b"one two three", "{}", nginx.error_log());
    drop(nginx);
    srv.stop().await;
    chunked.stop().await;
}
