//! Driver tests: whole connections over `tokio::io::duplex`: echo, backpressure-bounded
//! streaming, the hold while the body arrives (paused time), a client gone cancelling the app,
//! an app ending without an answer.

#![allow(clippy::unwrap_used)] // reason: test helpers: a failed unwrap is a failed test

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use gatehouse_channel_request::{
    AppError, Application, BoxFuture, CancellationToken, Peer, Request, Response, ResponseHead,
};
use gatehouse_uwsgi::{encode_packet, serve_connection, Config, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

#[derive(Clone, Copy)]
enum Then {
    /// Stream the body back after a head.
    Echo,
    /// Send a head and "early", then read the whole body, then end.
    AnswerEarly,
    /// Stream 4 KiB chunks forever.
    StreamForever,
    /// Read the body forever (never answer).
    ReadForever,
    /// Return without answering.
    Nothing,
}

/// The test app; reports through `ended` when its future is dropped or returns.
struct App {
    then: Then,
    ended: Mutex<Option<oneshot::Sender<()>>>,
}

/// Sends on drop: the app's future ended (returned or cancelled).
struct DropSignal(Option<oneshot::Sender<()>>);

impl Drop for DropSignal {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

impl Application for App {
    fn call<'a>(
        &'a self,
        mut req: Request,
        resp: &'a mut Response,
    ) -> BoxFuture<'a, Result<(), AppError>> {
        let signal = DropSignal(self.ended.lock().unwrap().take());
        Box::pin(async move {
            let _signal = signal;
            match self.then {
                Then::Echo => {
                    resp.send_head(
                        ResponseHead::new(200)
                            .with_header("X-Method", req.env.method().to_vec())?,
                    )
                    .await?;
                    while let Some(chunk) = req.body.chunk().await? {
                        resp.write(chunk).await?;
                    }
                }
                Then::AnswerEarly => {
                    resp.send_head(ResponseHead::new(200)).await?;
                    resp.write(Bytes::from_static(b"early")).await?;
                    while req.body.chunk().await?.is_some() {}
                }
                Then::StreamForever => {
                    resp.send_head(ResponseHead::new(200)).await?;
                    loop {
                        resp.write(Bytes::from(vec![b'x'; 4096])).await?;
                    }
                }
                Then::ReadForever => while req.body.chunk().await?.is_some() {},
                Then::Nothing => {}
            }
            Ok(())
        })
    }
}

fn app(then: Then) -> (Arc<App>, oneshot::Receiver<()>) {
    let (tx, rx) = oneshot::channel();
    let app = Arc::new(App {
        then,
        ended: Mutex::new(Some(tx)),
    });
    (app, rx)
}

fn post(body_len: usize) -> Vec<u8> {
    let len = body_len.to_string();
    let pairs: [(&[u8], &[u8]); 3] = [
        (b"REQUEST_METHOD", b"POST"),
        (b"CONTENT_LENGTH", len.as_bytes()),
        (b"PATH_INFO", b"/x"),
    ];
    let mut out = BytesMut::new();
    encode_packet(pairs, &mut out);
    out.to_vec()
}

fn connect(app: Arc<dyn Application>) -> (DuplexStream, JoinHandle<()>) {
    let server = Server::new(app, Config::default());
    let (client, conn) = tokio::io::duplex(16 * 1024);
    let peer = Peer::Tcp("192.0.2.7:40000".parse().unwrap());
    let task = tokio::spawn(serve_connection(
        server,
        conn,
        peer,
        CancellationToken::new(),
    ));
    (client, task)
}

#[tokio::test]
async fn post_is_echoed_in_http_and_the_connection_closed() {
    let (app, ended) = app(Then::Echo);
    let (client, task) = connect(app);
    let (mut rd, mut wr) = tokio::io::split(client);
    let body: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let mut input = post(body.len());
    input.extend_from_slice(&body);
    let writer = tokio::spawn(async move {
        wr.write_all(&input).await.unwrap();
        wr.shutdown().await.unwrap();
    });
    let mut out = Vec::new();
    rd.read_to_end(&mut out).await.unwrap();
    writer.await.unwrap();
    task.await.unwrap();
    let head = b"HTTP/1.1 200 OK\r\nX-Method: POST\r\n\r\n";
    assert_eq!(&out[..head.len()], head);
    assert!(out[head.len()..] == body[..], "body echoed byte for byte");
    ended.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_early_answer_is_held_until_the_body_is_complete() {
    let (app, _ended) = app(Then::AnswerEarly);
    let (mut client, task) = connect(app);
    let mut input = post(10);
    input.extend_from_slice(b"01234");
    client.write_all(&input).await.unwrap();
    // Less than the hold timeout: nothing may come back while the body is incomplete.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut probe = [0u8; 64];
    let early = tokio::time::timeout(Duration::from_millis(1), client.read(&mut probe)).await;
    assert!(
        early.is_err(),
        "response sent while the body was incomplete"
    );
    client.write_all(b"56789").await.unwrap();
    let mut out = Vec::new();
    client.read_to_end(&mut out).await.unwrap();
    task.await.unwrap();
    assert!(
        out.starts_with(b"HTTP/1.1 200 OK\r\n"),
        "{:?}",
        out.escape_ascii().to_string()
    );
    assert!(
        out.ends_with(b"\r\n\r\nearly"),
        "{:?}",
        out.escape_ascii().to_string()
    );
}

#[tokio::test]
async fn a_client_gone_mid_body_cancels_the_app() {
    let (app, ended) = app(Then::ReadForever);
    let (mut client, task) = connect(app);
    let mut input = post(1_000_000);
    input.extend_from_slice(&[7; 1000]);
    client.write_all(&input).await.unwrap();
    drop(client);
    // Ended (or dropped before it first ran, which leaves the sender unsent): either way the
    // app's future is gone; an app left running would read forever and time this out.
    let gone = tokio::time::timeout(Duration::from_secs(30), ended).await;
    assert!(gone.is_ok(), "the app was not cancelled");
    task.await.unwrap();
}

#[tokio::test]
async fn a_client_gone_mid_response_cancels_a_streaming_app() {
    let (app, ended) = app(Then::StreamForever);
    let (mut client, task) = connect(app);
    client.write_all(&post(0)).await.unwrap();
    let mut some = vec![0u8; 100_000];
    client.read_exact(&mut some).await.unwrap();
    assert!(some.starts_with(b"HTTP/1.1 200 OK\r\n\r\nxxxx"));
    // The app is blocked by backpressure (its budget is full while we do not read); then we go.
    drop(client);
    tokio::time::timeout(Duration::from_secs(30), ended)
        .await
        .unwrap()
        .unwrap();
    task.await.unwrap();
}

#[tokio::test]
async fn an_app_ending_without_an_answer_gets_500() {
    let (app, _ended) = app(Then::Nothing);
    let (mut client, task) = connect(app);
    client.write_all(&post(0)).await.unwrap();
    let mut out = Vec::new();
    client.read_to_end(&mut out).await.unwrap();
    task.await.unwrap();
    assert!(
        out.starts_with(b"HTTP/1.1 500 Internal Server Error\r\n"),
        "{:?}",
        out.escape_ascii().to_string()
    );
}
