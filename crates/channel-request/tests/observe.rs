//! The observers see every request once, with the status, bytes and end it really had: a
//! finished answer, an error before the head (500), an error after it (aborted), a request
//! cancelled mid-way (its future dropped, as when the client goes away), an app that saw the
//! client go away (cancelled too).
//!
//! Observers are installed once per process, so this is its own test binary with one test.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use gatehouse_channel_request::observe::{self, End, Observer, Outcome, RequestRecord};
use gatehouse_channel_request::{
    body_channel, delivery_queue, serve_request, AppError, Application, BoxFuture,
    CancellationToken, DeliveryReceiver, Env, Peer, Protocol, QueueChannel, Request, RequestInfo,
    Response, ResponseHead,
};

#[derive(Default)]
struct Recorder {
    started: Mutex<Vec<u64>>,
    ended: Mutex<Vec<(Arc<RequestRecord>, Outcome)>>,
}

impl Observer for Recorder {
    fn started(&self, record: &Arc<RequestRecord>) {
        self.started.lock().expect("poisoned").push(record.info.id);
    }
    fn ended(&self, record: &Arc<RequestRecord>, outcome: &Outcome) {
        self.ended
            .lock()
            .expect("poisoned")
            .push((record.clone(), outcome.clone()));
    }
}

/// Reads the whole body, then answers by the path: `/ok` 200 with the body echoed, `/fail` an
/// error before the head, `/midway` an error after some body, `/hang` never answers.
struct App;

impl Application for App {
    fn call<'a>(
        &'a self,
        mut req: Request,
        resp: &'a mut Response,
    ) -> BoxFuture<'a, Result<(), AppError>> {
        Box::pin(async move {
            let body = req.body.read_to_end(1 << 20).await?;
            match req.env.path_info() {
                b"/ok" => resp.send_full(201, "text/plain", body).await?,
                b"/fail" => return Err("no".into()),
                b"/gone" => return Err(gatehouse_channel_request::Error::ClientGone.into()),
                b"/midway" => {
                    resp.send_head(ResponseHead::new(200)).await?;
                    resp.write(Bytes::from_static(b"12345")).await?;
                    return Err("broke".into());
                }
                _ => std::future::pending::<()>().await,
            }
            Ok(())
        })
    }
}

/// A request to `path` with `body`, its response, and the receiving end of the response (kept
/// by the caller: sends succeed while it lives).
fn request(path: &'static str, body: &'static [u8]) -> (Request, Response, DeliveryReceiver) {
    let (tx, rx) = delivery_queue();
    let resp = Response::new(QueueChannel::new(1, tx, 1 << 20, CancellationToken::new()));
    let env: Env = [
        ("REQUEST_METHOD", "POST"),
        ("PATH_INFO", path),
        ("QUERY_STRING", "a=1"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("REMOTE_ADDR", "192.0.2.7"),
        ("HTTP_USER_AGENT", "probe/1"),
    ]
    .into_iter()
    .map(|(n, v)| (n.into(), v.into()))
    .collect();
    let (sender, body_rx) = body_channel(4, Some(body.len() as u64));
    let mut sender = sender;
    let bytes = Bytes::from_static(body);
    tokio::spawn(async move {
        if !bytes.is_empty() {
            let _ = sender.send(bytes).await;
        }
        sender.finish();
    });
    let req = Request {
        env,
        body: body_rx,
        info: RequestInfo::new(Protocol::Scgi, Peer::Stdio),
    };
    (req, resp, rx)
}

#[tokio::test]
async fn observers_see_each_request_end_once() {
    let rec = Arc::new(Recorder::default());
    assert!(observe::install(vec![rec.clone()]));
    assert!(!observe::install(Vec::new()), "installed twice");

    let (req, resp, _out) = request("/ok", b"hello");
    serve_request(&App, req, resp).await;
    let (req, resp, _out) = request("/fail", b"");
    serve_request(&App, req, resp).await;
    let (req, resp, _out) = request("/midway", b"xy");
    serve_request(&App, req, resp).await;
    let (req, resp, _out) = request("/gone", b"");
    serve_request(&App, req, resp).await;
    let (req, resp, _out) = request("/hang", b"abc");
    let hung = tokio::time::timeout(
        std::time::Duration::from_millis(50),
        serve_request(&App, req, resp),
    )
    .await;
    assert!(hung.is_err(), "the hanging app answered");

    let ended = rec.ended.lock().unwrap();
    assert_eq!(rec.started.lock().unwrap().len(), 5);
    let got: Vec<_> = ended
        .iter()
        .map(|(r, o)| {
            (
                r.uri.clone(),
                o.status,
                o.log_status(),
                o.bytes_sent,
                o.request_bytes,
                o.end,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (Bytes::from("/ok?a=1"), 201, 201, 5, 5, End::Finished),
            (Bytes::from("/fail?a=1"), 500, 500, 22, 0, End::Finished),
            (Bytes::from("/midway?a=1"), 200, 200, 5, 2, End::Aborted),
            // The app saw the client leave: cancelled, as when the front end drops it.
            (Bytes::from("/gone?a=1"), 0, 499, 0, 0, End::Cancelled),
            (Bytes::from("/hang?a=1"), 0, 499, 0, 3, End::Cancelled),
        ]
    );
    let (first, _) = &ended[0];
    assert_eq!(&first.method[..], b"POST");
    assert_eq!(&first.remote_addr[..], b"192.0.2.7");
    assert_eq!(first.user_agent.as_deref(), Some(&b"probe/1"[..]));
    assert_eq!(&first.server_protocol[..], b"HTTP/1.1");
    assert_eq!(first.info.protocol, Protocol::Scgi);
}
