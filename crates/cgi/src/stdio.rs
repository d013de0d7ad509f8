//! Serving the one request: the body from standard input, the response to standard output.
//!
//! ```text
//!  stdin ──(at most CONTENT_LENGTH bytes; only while the body queue has room)──► RequestBody
//!  stdout ◄── "Status: 200 OK" headers "" body ◄── Delivery ◄── QueueChannel ◄── app
//! ```
//!
//! The app runs in this task (no spawn, no thread): the loop polls it alongside the body and
//! the response, and cancelling it is dropping its future.

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::Arc;

use bytes::BytesMut;
use gatehouse_channel_request::{
    body_channel, delivery_queue, serve_request, Application, BodyError, BodySender,
    CancellationToken, DeliveryReceiver, Peer, Protocol, QueueChannel, Request, RequestBody,
    RequestInfo, Response,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};

use crate::env::{check, env_from_vars};
use crate::error::Error;
use crate::output::Stdout;

/// Body chunks queued for the app; stdin is not read while the queue is full.
pub const BODY_QUEUE_CHUNKS: usize = gatehouse_channel_request::body::DEFAULT_BODY_QUEUE_CHUNKS;
/// The most bytes one read of standard input asks for.
pub const READ_CHUNK: usize = 64 * 1024;
/// Response bytes the app may have queued before its writes wait.
pub const RESPONSE_BUDGET: usize = gatehouse_channel_request::queue::DEFAULT_RESPONSE_BUDGET;

/// How serving went, for `run`'s exit code and log line.
#[derive(Debug)]
pub(crate) struct Outcome {
    /// The request's id (for the log line).
    pub(crate) request_id: u64,
    /// Whether a whole response (the app's, or our error answer) reached standard output.
    pub(crate) answered: bool,
    /// What went wrong, if anything.
    pub(crate) error: Option<Error>,
}

/// Serves one request from explicit parts: the meta-variables, the body reader, the output
/// writer. This is [`run`](crate::run) without the process: for tests and embedders.
///
/// The body is read only while the app has room for it and never past `CONTENT_LENGTH`. An
/// error is answered on `stdout` with a CGI error response when no response byte went out yet
/// (`400` for a bad `CONTENT_LENGTH`, `500` for a missing `REQUEST_METHOD`), then returned;
/// nothing is logged here (the caller decides: `run` writes one line to stderr).
///
/// Standard input ending before `CONTENT_LENGTH` bytes fails the app's body stream
/// ([`BodyError::Short`]): an app that reads its body sees the error and the request is
/// answered `400`; one that does not read it is answered as it answers. Either way the
/// response is written whole, and [`Error::ShortBody`] is returned when the end of the input
/// was read before the response was out (always, for an app that reads its body).
///
/// # Cancel safety
/// Dropping the future cancels the app; the output may be incomplete.
pub async fn serve_once<R, W>(
    app: Arc<dyn Application>,
    vars: Vec<(std::ffi::OsString, std::ffi::OsString)>,
    stdin: R,
    stdout: W,
) -> Result<(), Error>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    match serve(app, vars, stdin, stdout).await.error {
        None => Ok(()),
        Some(e) => Err(e),
    }
}

pub(crate) async fn serve<R, W>(
    app: Arc<dyn Application>,
    vars: Vec<(std::ffi::OsString, std::ffi::OsString)>,
    stdin: R,
    stdout: W,
) -> Outcome
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let info = RequestInfo::new(Protocol::Cgi, Peer::Stdio);
    let request_id = info.id;
    let env = env_from_vars(vars);
    let mut out = Stdout::new(stdout);
    let content_length = match check(&env) {
        Ok(length) => length,
        Err(e) => return out.fail(request_id, e).await,
    };
    let (sender, body) = match content_length {
        0 => (None, RequestBody::empty()),
        n => {
            let (tx, body) = body_channel(BODY_QUEUE_CHUNKS, Some(n));
            (Some(tx), body)
        }
    };
    let (dtx, drx) = delivery_queue();
    let chan = QueueChannel::new(request_id, dtx, RESPONSE_BUDGET, CancellationToken::new());
    let req = Request { env, body, info };
    let running: Pin<Box<dyn Future<Output = ()> + '_>> =
        Box::pin(serve_request(&*app, req, Response::new(chan)));
    let mut stdin = Stdin {
        io: stdin,
        sender,
        expected: content_length,
        received: 0,
        short: None,
    };
    let result = pump(running, &mut stdin, drx, &mut out).await;
    match result {
        Ok(()) => Outcome {
            request_id,
            answered: true,
            // The app answered; a short body is still worth its one log line.
            error: stdin.short.take(),
        },
        Err(e) => out.fail(request_id, e).await,
    }
}

/// Runs the app, feeds it the body, writes its outputs, until the response ends.
async fn pump<R, W>(
    mut running: Pin<Box<dyn Future<Output = ()> + '_>>,
    stdin: &mut Stdin<R>,
    mut drx: DeliveryReceiver,
    out: &mut Stdout<W>,
) -> Result<(), Error>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut app_done = false;
    loop {
        tokio::select! {
            () = &mut running, if !app_done => app_done = true,
            read = stdin.step(), if stdin.sender.is_some() => read?,
            delivery = drx.recv() => {
                // The queue ends with Finish or Abort; closed without them, the app is gone.
                let Some(delivery) = delivery else { return Err(Error::ResponseAborted) };
                let done = out.output(delivery.output.clone()).await?;
                drop(delivery); // Written: the credit goes back to the app's budget.
                if done {
                    return Ok(());
                }
            }
        }
    }
}

/// Standard input as the request body.
struct Stdin<R> {
    io: R,
    sender: Option<BodySender>,
    expected: u64,
    received: u64,
    /// Standard input ended before `CONTENT_LENGTH` bytes.
    short: Option<Error>,
}

impl<R: AsyncRead + Unpin> Stdin<R> {
    /// Reads one chunk into the body once the app has room for it.
    ///
    /// # Cancel safety
    /// Cancel-safe: a reserved slot stays reserved; a read in progress loses no byte (the
    /// reader keeps what it got, and `take` bounds every read to the bytes still due).
    async fn step(&mut self) -> Result<(), Error> {
        let Some(tx) = self.sender.as_mut() else {
            return Ok(());
        };
        if poll_fn(|cx| tx.poll_reserve(cx)).await.is_err() {
            // The app dropped its body: read no more.
            self.sender = None;
            return Ok(());
        }
        let due = self.expected - self.received;
        let mut buf = BytesMut::with_capacity(READ_CHUNK.min(due as usize));
        let n = (&mut self.io)
            .take(due)
            .read_buf(&mut buf)
            .await
            .map_err(Error::Stdin)?;
        if n == 0 {
            // The body's error is the app's to see, as behind FastCGI and SCGI: an app that
            // reads its body gets it (and the request is answered 400), one that does not is
            // answered as it answers. Ending the request here instead made the answer depend on
            // whether the app had answered before the end of stdin was read.
            let (expected, received) = (self.expected, self.received);
            if let Some(tx) = self.sender.take() {
                tx.fail(BodyError::Short { expected, received });
            }
            self.short = Some(Error::ShortBody { expected, received });
            return Ok(());
        }
        self.received += n as u64;
        if tx.send_item(buf.freeze()).is_err() {
            self.sender = None;
        } else if self.received == self.expected {
            if let Some(tx) = self.sender.take() {
                tx.finish();
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    use std::time::Duration;

    use bytes::Bytes;
    use gatehouse_channel_request::{AppError, BoxFuture, ResponseHead};
    use gatehouse_dispatch::{builtin, Dispatcher};
    use serde_json::Value;
    use tokio::io::AsyncWriteExt;
    use tokio::io::DuplexStream;
    use tokio::sync::{oneshot, Notify};

    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs.iter().map(|(n, v)| (n.into(), v.into())).collect()
    }

    fn echo() -> Arc<dyn Application> {
        Arc::new(Dispatcher::single(builtin::by_name("echo").unwrap()))
    }

    fn split(out: &[u8]) -> (String, Vec<u8>) {
        let end = out
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a head");
        (
            String::from_utf8(out[..end].to_vec()).unwrap(),
            out[end + 4..].to_vec(),
        )
    }

    /// Waits for `gate`, then reads the body and answers its length; `ended` fires when its
    /// future ends or is dropped.
    struct Gated {
        gate: Arc<Notify>,
        calls: AtomicUsize,
        ended: Mutex<Option<oneshot::Sender<()>>>,
    }

    struct Fire(Option<oneshot::Sender<()>>);
    impl Drop for Fire {
        fn drop(&mut self) {
            if let Some(tx) = self.0.take() {
                let _ = tx.send(());
            }
        }
    }

    impl Application for Gated {
        fn call<'a>(
            &'a self,
            mut req: Request,
            resp: &'a mut Response,
        ) -> BoxFuture<'a, Result<(), AppError>> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let fire = Fire(self.ended.lock().unwrap().take());
            Box::pin(async move {
                let _fire = fire;
                self.gate.notified().await;
                let mut n = 0;
                while let Some(c) = req.body.chunk().await? {
                    n += c.len();
                }
                resp.send_full(200, "text/plain", n.to_string()).await?;
                Ok(())
            })
        }
    }

    fn gated() -> (Arc<Gated>, Arc<Notify>, oneshot::Receiver<()>) {
        let gate = Arc::new(Notify::new());
        let (tx, rx) = oneshot::channel();
        let app = Arc::new(Gated {
            gate: gate.clone(),
            calls: AtomicUsize::new(0),
            ended: Mutex::new(Some(tx)),
        });
        (app, gate, rx)
    }

    #[tokio::test]
    async fn get_through_echo() {
        let mut out = Vec::new();
        let env = vars(&[
            ("GATEWAY_INTERFACE", "CGI/1.1"),
            ("REQUEST_METHOD", "GET"),
            ("SCRIPT_NAME", "/cgi-bin/app"),
            ("PATH_INFO", "/a b"),
            ("QUERY_STRING", "q=1"),
            ("HTTP_USER_AGENT", "test"),
        ]);
        serve_once(echo(), env, &b""[..], &mut out).await.unwrap();
        let (head, body) = split(&out);
        assert!(head.starts_with("Status: 200 OK\r\n"), "{head}");
        assert!(head.contains("Content-Type: application/json"));
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["method"], "GET");
        assert_eq!(v["path"], "/cgi-bin/app/a b");
        assert_eq!(v["query"], "q=1");
        assert_eq!(v["headers"]["user-agent"], "test");
        assert_eq!(v["body_len"], 0);
    }

    #[tokio::test]
    async fn post_reads_exactly_content_length() {
        let body: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
        let mut stdin_bytes = body.clone();
        stdin_bytes.extend_from_slice(b"NOT THE BODY");
        let mut stdin = &stdin_bytes[..];
        let mut out = Vec::new();
        let env = vars(&[
            ("REQUEST_METHOD", "POST"),
            ("CONTENT_LENGTH", &body.len().to_string()),
        ]);
        serve_once(echo(), env, &mut stdin, &mut out).await.unwrap();
        assert_eq!(stdin, b"NOT THE BODY", "stdin read past CONTENT_LENGTH");
        let v: Value = serde_json::from_slice(&split(&out).1).unwrap();
        assert_eq!(v["body_len"], body.len());
    }

    #[tokio::test]
    async fn no_content_length_means_no_body() {
        let mut stdin = &b"ignored"[..];
        let mut out = Vec::new();
        let env = vars(&[("REQUEST_METHOD", "POST")]);
        serve_once(echo(), env, &mut stdin, &mut out).await.unwrap();
        assert_eq!(stdin, b"ignored");
        let v: Value = serde_json::from_slice(&split(&out).1).unwrap();
        assert_eq!(v["body_len"], 0);
    }

    #[tokio::test]
    async fn bad_requests_are_answered() {
        let cases = [
            (
                vars(&[("CONTENT_LENGTH", "0")]),
                "Status: 500 Internal Server Error\r\n",
            ),
            (
                vars(&[("REQUEST_METHOD", "POST"), ("CONTENT_LENGTH", "12x")]),
                "Status: 400 Bad Request\r\n",
            ),
            (
                vars(&[("REQUEST_METHOD", "POST"), ("CONTENT_LENGTH", "-1")]),
                "Status: 400 Bad Request\r\n",
            ),
        ];
        for (env, want) in cases {
            let (app, _gate, _ended) = gated();
            let mut out = Vec::new();
            let err = serve_once(app.clone(), env, &b""[..], &mut out)
                .await
                .unwrap_err();
            assert!(out.starts_with(want.as_bytes()), "{err}: {out:?}");
            assert_eq!(app.calls.load(Ordering::SeqCst), 0, "{err}");
        }
    }

    #[tokio::test]
    async fn short_stdin_fails_the_body_of_an_app_that_reads_it() {
        let (app, gate, mut ended) = gated();
        gate.notify_one(); // The app reads its body at once.
        let mut out = Vec::new();
        let env = vars(&[("REQUEST_METHOD", "POST"), ("CONTENT_LENGTH", "10")]);
        let err = serve_once(app, env, &b"abc"[..], &mut out)
            .await
            .unwrap_err();
        assert!(matches!(
            err,
            Error::ShortBody {
                expected: 10,
                received: 3
            }
        ));
        assert!(out.starts_with(b"Status: 400 Bad Request\r\n"), "{out:?}");
        assert!(out.ends_with(b"\r\n\r\nBad Request\n"));
        assert!(ended.try_recv().is_ok(), "the app ran to its end");
    }

    /// Answers at once without reading its body.
    struct Answers;

    impl Application for Answers {
        fn call<'a>(
            &'a self,
            _req: Request,
            resp: &'a mut Response,
        ) -> BoxFuture<'a, Result<(), AppError>> {
            Box::pin(async move {
                resp.send_full(200, "text/plain", "answered").await?;
                Ok(())
            })
        }
    }

    #[tokio::test]
    async fn short_stdin_leaves_an_app_that_does_not_read_its_answer_every_time() {
        for run in 0..200 {
            let mut out = Vec::new();
            let env = vars(&[("REQUEST_METHOD", "POST"), ("CONTENT_LENGTH", "10")]);
            // The short body is reported when its end was read before the answer was out.
            let err = serve_once(Arc::new(Answers), env, &b"abc"[..], &mut out).await;
            assert!(
                matches!(err, Ok(()) | Err(Error::ShortBody { .. })),
                "run {run}: {err:?}"
            );
            assert!(out.starts_with(b"Status: 200 OK\r\n"), "run {run}: {out:?}");
            assert!(out.ends_with(b"answered"), "run {run}: {out:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn stdin_is_not_read_while_the_app_is_not_reading() {
        let (app, gate, _ended) = gated();
        let total = 4usize << 20;
        let (mut client, stdin): (DuplexStream, DuplexStream) = tokio::io::duplex(8 * 1024);
        let sent = Arc::new(AtomicUsize::new(0));
        let counter = sent.clone();
        let writer = tokio::spawn(async move {
            let piece = vec![1u8; 4096];
            for _ in 0..total / piece.len() {
                client.write_all(&piece).await.unwrap();
                counter.fetch_add(piece.len(), Ordering::SeqCst);
            }
        });
        let env = vars(&[
            ("REQUEST_METHOD", "PUT"),
            ("CONTENT_LENGTH", &total.to_string()),
        ]);
        let mut out = Vec::new();
        {
            let serving = serve_once(app, env, stdin, &mut out);
            tokio::pin!(serving);
            tokio::select! {
                _ = &mut serving => panic!("served before the app read anything"),
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            let stuck_at = sent.load(Ordering::SeqCst);
            assert!(
                stuck_at < 512 * 1024,
                "{stuck_at} bytes taken while the app read none"
            );
            gate.notify_one();
            serving.await.unwrap();
        }
        writer.await.unwrap();
        assert_eq!(split(&out).1, total.to_string().as_bytes());
    }

    #[tokio::test]
    async fn large_response_through_a_slow_reader() {
        struct Big;
        impl Application for Big {
            fn call<'a>(
                &'a self,
                _: Request,
                resp: &'a mut Response,
            ) -> BoxFuture<'a, Result<(), AppError>> {
                Box::pin(async move {
                    resp.send_head(ResponseHead::new(200)).await?;
                    for i in 0..64u8 {
                        resp.write(Bytes::from(vec![i; 65536])).await?;
                    }
                    Ok(())
                })
            }
        }
        let (stdout, mut web_server) = tokio::io::duplex(4096);
        let reader = tokio::spawn(async move {
            let mut all = Vec::new();
            web_server.read_to_end(&mut all).await.unwrap();
            all
        });
        let env = vars(&[("REQUEST_METHOD", "GET")]);
        serve_once(Arc::new(Big), env, &b""[..], stdout)
            .await
            .unwrap();
        let all = reader.await.unwrap();
        let (head, body) = split(&all);
        assert_eq!(head, "Status: 200 OK");
        assert_eq!(body.len(), 64 * 65536);
        assert!(body
            .chunks(65536)
            .enumerate()
            .all(|(i, c)| c.iter().all(|&b| b == i as u8)));
    }

    #[tokio::test]
    async fn closed_stdout_cancels_the_app() {
        struct Forever(Mutex<Option<oneshot::Sender<()>>>);
        impl Application for Forever {
            fn call<'a>(
                &'a self,
                _: Request,
                resp: &'a mut Response,
            ) -> BoxFuture<'a, Result<(), AppError>> {
                let fire = Fire(self.0.lock().unwrap().take());
                Box::pin(async move {
                    let _fire = fire;
                    resp.send_head(ResponseHead::new(200)).await?;
                    loop {
                        resp.write(Bytes::from(vec![0u8; 4096])).await?;
                    }
                })
            }
        }
        let (tx, ended) = oneshot::channel();
        let (stdout, web_server) = tokio::io::duplex(1024);
        drop(web_server);
        let env = vars(&[("REQUEST_METHOD", "GET")]);
        let err = serve_once(
            Arc::new(Forever(Mutex::new(Some(tx)))),
            env,
            &b""[..],
            stdout,
        )
        .await
        .unwrap_err();
        assert!(matches!(err, Error::Stdout(_)), "{err}");
        ended.await.unwrap();
    }

    #[tokio::test]
    async fn app_failing_mid_body_cuts_the_response() {
        struct Fails;
        impl Application for Fails {
            fn call<'a>(
                &'a self,
                _: Request,
                resp: &'a mut Response,
            ) -> BoxFuture<'a, Result<(), AppError>> {
                Box::pin(async move {
                    resp.send_head(ResponseHead::new(200)).await?;
                    resp.write(Bytes::from_static(b"partial")).await?;
                    Err("broken".into())
                })
            }
        }
        let mut out = Vec::new();
        let env = vars(&[("REQUEST_METHOD", "GET")]);
        let err = serve_once(Arc::new(Fails), env, &b""[..], &mut out)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::ResponseAborted));
        assert_eq!(split(&out).1, b"partial");
    }

    #[tokio::test]
    async fn panicking_app_is_a_500_response() {
        struct Panics;
        impl Application for Panics {
            fn call<'a>(
                &'a self,
                _: Request,
                _: &'a mut Response,
            ) -> BoxFuture<'a, Result<(), AppError>> {
                Box::pin(async { panic!("boom") })
            }
        }
        let mut out = Vec::new();
        let env = vars(&[("REQUEST_METHOD", "GET")]);
        serve_once(Arc::new(Panics), env, &b""[..], &mut out)
            .await
            .unwrap();
        assert!(out.starts_with(b"Status: 500 Internal Server Error\r\n"));
    }
}
