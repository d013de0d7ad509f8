//! The response side: the [`ResponseChannel`] trait every front end implements, and the
//! [`Response`] an app writes to.
//!
//! This is Twisted web2's channel request in Rust: `send_head` + `write` + `finish` / `abort`,
//! `informational` for 1xx answers (which CGI-family protocols ignore), and `client_gone` for the
//! read/write half-close notifications. `registerProducer` becomes an `await`: [`Response::write`]
//! returns once the front end has room for the chunk, so a slow client slows the app down instead
//! of filling memory.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;

use crate::error::Error;
use crate::head::ResponseHead;
use crate::queue::StderrSender;

/// A boxed, sendable future; the return type of the object-safe traits of this crate.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One step of a response, in the order an app produces them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// A 1xx interim head (HTTP only; other protocols drop it).
    Informational(ResponseHead),
    /// The final head. Sent once, before any body.
    Head(ResponseHead),
    /// A piece of the body (never empty).
    Body(Bytes),
    /// The response is complete.
    Finish,
    /// The response cannot be completed: the front end must signal failure (close the
    /// connection, end the FastCGI request) rather than pretend the body is whole.
    Abort,
    /// Diagnostic bytes of the app for the front server's error log (never empty): the
    /// FastCGI `FCGI_STDERR` stream (FastCGI 1.0 section 5.3). Sent only through a
    /// [`StderrSender`], which only channels that forward it hand out;
    /// other front ends drop it. Not part of the response order: it may come at any time
    /// before the end, and is dropped after it.
    Stderr(Bytes),
}

/// What a front end implements to carry a response to its peer.
///
/// Implementations apply backpressure in [`ResponseChannel::send`]: the future resolves once the
/// output is accepted within the request's buffer budget. [`Response`] guarantees the order
/// (`Informational* Head Body* (Finish | Abort)`), validation, and that nothing follows the end.
pub trait ResponseChannel: Send + 'static {
    /// Hands one output step to the front end, waiting while its buffer budget is used up.
    ///
    /// Fails with [`Error::ClientGone`] when the client cannot receive it any more.
    ///
    /// # Cancel safety
    /// Implementations must not deliver a step whose `send` was cancelled.
    fn send(&mut self, out: Output) -> BoxFuture<'_, Result<(), Error>>;

    /// Resolves when the client is gone (connection closed, request aborted, peer half-closed in
    /// a protocol where that means "give up").
    fn client_gone(&self) -> BoxFuture<'static, ()>;

    /// Whether 1xx interim responses reach the client (true for HTTP/1.1 only).
    fn forwards_informational(&self) -> bool {
        false
    }

    /// A handle that sends the app's diagnostic output ([`Output::Stderr`]) to the front
    /// server, when this channel forwards it (the FastCGI front end); `None` otherwise, and
    /// the app logs it itself.
    fn stderr(&self) -> Option<StderrSender> {
        None
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Start,
    HeadSent,
    Done,
}

/// The app's handle on its response.
pub struct Response {
    chan: Box<dyn ResponseChannel>,
    state: State,
    omit_body: bool,
    aborted: bool,
    status: u16,
    bytes_sent: u64,
    app_label: Option<Arc<str>>,
}

impl Response {
    /// Wraps a front end's channel.
    pub fn new(chan: impl ResponseChannel) -> Self {
        Self {
            chan: Box::new(chan),
            state: State::Start,
            omit_body: false,
            aborted: false,
            status: 0,
            bytes_sent: 0,
            app_label: None,
        }
    }

    /// From now on body chunks are accepted (order still checked) and dropped; the head and the
    /// end still go out. For a response to `HEAD`: RFC 3875 section 4.3.2, "The script MUST NOT
    /// provide a response message-body for a HEAD request"; RFC 9110 section 9.3.2. The app
    /// writes the body GET would get (so its `Content-Length` stays right) and nothing is sent.
    pub fn omit_body(&mut self) {
        self.omit_body = true;
    }

    /// Sends the final head.
    ///
    /// # Cancel safety
    /// Not cancel-safe: a cancelled call may or may not have sent the head.
    pub async fn send_head(&mut self, head: ResponseHead) -> Result<(), Error> {
        if self.state != State::Start {
            return Err(Error::ApiMisuse("head sent twice or after the end"));
        }
        if head.status() < 200 {
            return Err(Error::ApiMisuse("final head with a 1xx status"));
        }
        self.state = State::HeadSent;
        self.status = head.status();
        self.chan.send(Output::Head(head)).await
    }

    /// Sends a 1xx interim head; a no-op where the protocol has no such thing.
    pub async fn informational(&mut self, head: ResponseHead) -> Result<(), Error> {
        if self.state != State::Start {
            return Err(Error::ApiMisuse("informational head after the final head"));
        }
        if !(100..200).contains(&head.status()) {
            return Err(Error::ApiMisuse("informational head without a 1xx status"));
        }
        if !self.chan.forwards_informational() {
            return Ok(());
        }
        self.chan.send(Output::Informational(head)).await
    }

    /// Writes a body chunk, waiting while the front end's buffer is full (backpressure).
    ///
    /// # Cancel safety
    /// Cancel-safe: when cancelled the chunk was not sent.
    pub async fn write(&mut self, chunk: Bytes) -> Result<(), Error> {
        match self.state {
            State::Start => return Err(Error::ApiMisuse("body written before the head")),
            State::Done => return Err(Error::ApiMisuse("body written after the end")),
            State::HeadSent => {}
        }
        if chunk.is_empty() || self.omit_body {
            return Ok(());
        }
        let len = chunk.len() as u64;
        self.chan.send(Output::Body(chunk)).await?;
        self.bytes_sent += len;
        Ok(())
    }

    /// Completes the response.
    pub async fn finish(&mut self) -> Result<(), Error> {
        match self.state {
            State::Start => Err(Error::ApiMisuse("finished before sending a head")),
            State::Done => Err(Error::ApiMisuse("finished twice")),
            State::HeadSent => {
                self.state = State::Done;
                self.chan.send(Output::Finish).await
            }
        }
    }

    /// Gives up on the response: the client learns it is incomplete.
    pub async fn abort(&mut self) {
        if self.state != State::Done {
            self.state = State::Done;
            self.aborted = true;
            let _ = self.chan.send(Output::Abort).await;
        }
    }

    /// A head, a whole body and the end, with `Content-Type` and `Content-Length` set.
    pub async fn send_full(
        &mut self,
        status: u16,
        content_type: &'static str,
        body: impl Into<Bytes>,
    ) -> Result<(), Error> {
        let body = body.into();
        let head = ResponseHead::new(status)
            .with_header("Content-Type", content_type)?
            .with_header("Content-Length", body.len().to_string())?;
        self.send_head(head).await?;
        self.write(body).await?;
        self.finish().await
    }

    /// A cloneable handle for the app's diagnostic output, when the front end forwards it to
    /// the front server (see [`ResponseChannel::stderr`]). All of it must be sent before the
    /// response ends: what comes later is dropped.
    pub fn stderr(&self) -> Option<StderrSender> {
        self.chan.stderr()
    }

    /// Resolves when the client is gone.
    pub fn client_gone(&self) -> BoxFuture<'static, ()> {
        self.chan.client_gone()
    }

    /// Whether the final head was sent.
    pub fn head_sent(&self) -> bool {
        self.state != State::Start
    }

    /// Whether the response was finished or aborted.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Whether the response was aborted.
    pub fn is_aborted(&self) -> bool {
        self.aborted
    }

    /// The status of the final head sent, `0` before it.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// Body bytes accepted by the front end so far (none when the body is omitted).
    pub fn bytes_sent(&self) -> u64 {
        self.bytes_sent
    }

    /// Names the app serving this response (its mount point), for logs and metrics: the
    /// dispatcher sets it when it routes the request.
    pub fn set_app_label(&mut self, label: Arc<str>) {
        self.app_label = Some(label);
    }

    /// The label set by [`Response::set_app_label`].
    pub fn app_label(&self) -> Option<&Arc<str>> {
        self.app_label.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<Output>>>);

    impl ResponseChannel for Recorder {
        fn send(&mut self, out: Output) -> BoxFuture<'_, Result<(), Error>> {
            self.0.lock().unwrap().push(out);
            Box::pin(async { Ok(()) })
        }
        fn client_gone(&self) -> BoxFuture<'static, ()> {
            Box::pin(std::future::pending())
        }
    }

    #[tokio::test]
    async fn enforces_order() {
        let rec = Recorder::default();
        let mut r = Response::new(rec.clone());
        assert!(r.write(Bytes::from_static(b"x")).await.is_err());
        assert!(r.finish().await.is_err());
        r.informational(ResponseHead::new(100)).await.unwrap();
        r.send_head(ResponseHead::new(200)).await.unwrap();
        assert!(r.send_head(ResponseHead::new(200)).await.is_err());
        r.write(Bytes::new()).await.unwrap();
        r.write(Bytes::from_static(b"x")).await.unwrap();
        r.finish().await.unwrap();
        assert!(r.write(Bytes::from_static(b"y")).await.is_err());
        r.abort().await;
        let got = rec.0.lock().unwrap().clone();
        assert_eq!(
            got,
            vec![
                Output::Head(ResponseHead::new(200)),
                Output::Body(Bytes::from_static(b"x")),
                Output::Finish
            ]
        );
    }

    #[tokio::test]
    async fn omitted_body_keeps_head_order_and_end() {
        let rec = Recorder::default();
        let mut r = Response::new(rec.clone());
        r.omit_body();
        assert!(r.write(Bytes::from_static(b"x")).await.is_err());
        r.send_full(200, "text/plain", "hello").await.unwrap();
        assert!(r.write(Bytes::from_static(b"y")).await.is_err());
        let got = rec.0.lock().unwrap().clone();
        let head = ResponseHead::new(200)
            .with_header("Content-Type", "text/plain")
            .unwrap()
            .with_header("Content-Length", "5")
            .unwrap();
        assert_eq!(got, vec![Output::Head(head), Output::Finish]);
    }
}
