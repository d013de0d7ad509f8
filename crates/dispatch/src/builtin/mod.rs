//! The built-in apps any front end can serve: `hello`, `echo`, `env`.

use std::sync::Arc;

use gatehouse_channel_request::Application;

mod echo;
mod env;
mod hello;

pub use echo::Echo;
pub use env::EnvDump;
pub use hello::Hello;

/// The names [`by_name`] knows.
pub const NAMES: &[&str] = &["hello", "echo", "env"];

/// The built-in app called `name`.
pub fn by_name(name: &str) -> Option<Arc<dyn Application>> {
    match name {
        "hello" => Some(Arc::new(Hello)),
        "echo" => Some(Arc::new(Echo)),
        "env" => Some(Arc::new(EnvDump)),
        _ => None,
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Runs an app on a request built from variables and a body, collecting the answer.

    use bytes::Bytes;
    use gatehouse_channel_request::{
        body_channel, delivery_queue, serve_request, Application, CancellationToken, Env, Output,
        Peer, Protocol, QueueChannel, Request, RequestInfo, Response, ResponseHead,
    };

    pub(crate) async fn run(
        app: &dyn Application,
        vars: &[(&'static str, &'static str)],
        body: &[u8],
    ) -> (ResponseHead, Vec<u8>) {
        let env: Env = vars.iter().map(|&(n, v)| (n.into(), v.into())).collect();
        let (mut tx, rx_body) = body_channel(2, env.content_length().ok().flatten());
        let (dtx, mut drx) = delivery_queue();
        let resp = Response::new(QueueChannel::new(1, dtx, 1 << 20, CancellationToken::new()));
        let req = Request {
            env,
            body: rx_body,
            info: RequestInfo::new(Protocol::Http, Peer::Stdio),
        };
        let chunks: Vec<Bytes> = body.chunks(7).map(Bytes::copy_from_slice).collect();
        let feed = async move {
            for c in chunks {
                if tx.send(c).await.is_err() {
                    return;
                }
            }
            tx.finish();
        };
        tokio::join!(serve_request(app, req, resp), feed);
        let (mut head, mut out) = (None, Vec::new());
        while let Ok(d) = drx.try_recv() {
            match d.output {
                Output::Head(h) => head = Some(h),
                Output::Body(b) => out.extend_from_slice(&b),
                _ => {}
            }
        }
        (head.expect("a head"), out)
    }
}
