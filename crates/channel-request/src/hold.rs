//! Holding a request's response back while its body is still arriving: the gate the FastCGI
//! and SCGI front ends put between an app's outputs and their socket (sans-io: the caller
//! passes `now`).
//!
//! nginx's upstream module stops sending the request body once it has the upstream's response
//! header (`ngx_http_upstream_send_response` drops the body writer and, with request buffering,
//! closes the body's temp file). An app that answers before it has read its whole body
//! (git-http-backend's `git-receive-pack`, a CGI script printing its head first) would then
//! wait forever for the rest of the body, and nginx for the rest of the answer. So, like
//! fcgiwrap (which writes the whole body to its script before reading the answer), a request's
//! outputs are kept here, not written, until the first of:
//!
//! ```text
//!  Idle ──Head/Body while input open──► Holding{outputs, bytes, progress}
//!   │                                     │ input complete (the front end says when)
//!   │ input complete, or Finish/Abort     │ · Finish/Abort · bytes >= the response budget
//!   ▼                                     │ · no input progress for the front end's timeout
//!  Released ◄─────────────────────────────┘   (held outputs written in order, then streaming)
//! ```
//!
//! A held body chunk's credit is returned to the app's budget at once: the hold counts its own
//! bytes against the budget, so it can release exactly when the app would start waiting. A
//! request whose input is complete when it answers (a GET) never holds anything and allocates
//! nothing here.

use std::time::{Duration, Instant};

/// How long a response is held back while its request body is still arriving, counted from the
/// last body bytes read (or from the first held output); the front ends pass it to
/// [`Hold::deadline`]. Past it the held head and body go out although the body is incomplete:
/// the app most likely stopped reading it (its body queue is full, so the front end stopped
/// reading), and the client must not wait for the head forever.
pub const RESPONSE_HOLD_TIMEOUT: Duration = Duration::from_secs(1);

use crate::cgi_head::cgi_head_len;
use crate::{Delivery, Output};

/// The response gate of one request.
#[derive(Debug, Default)]
pub struct Hold(State);

#[derive(Debug, Default)]
enum State {
    /// Nothing held yet: outputs are held if they come while the input is still open.
    #[default]
    Idle,
    /// Outputs kept in order; `bytes` of head and body; the input last progressed (or the hold
    /// began) at `progress`.
    Holding {
        outputs: Vec<Delivery>,
        bytes: usize,
        progress: Instant,
    },
    /// Released: outputs pass straight through.
    Released,
}

/// What became of an output offered to the hold.
#[derive(Debug)]
pub enum Offer {
    /// Kept, the first one: the request now holds.
    Started,
    /// Kept behind others.
    Kept,
    /// Kept, and the held bytes reached the budget: release now.
    Full,
    /// Write it now, after whatever [`Hold::release`] gives back.
    Pass(Delivery),
}

impl Hold {
    /// Offers one app output: a head or body is kept while not released and the input is still
    /// open (`open_at` is then `Some(now)`; `None` once the input is complete), else handed
    /// back. The end of the response (`Finish`, `Abort`) is always handed back: the caller
    /// releases what is held, then writes it. Diagnostic output (`Stderr`) is handed back too,
    /// without releasing anything: it is not the response head, so it does not make the front
    /// server stop sending the body.
    pub fn offer(
        &mut self,
        mut delivery: Delivery,
        open_at: Option<Instant>,
        budget: usize,
    ) -> Offer {
        if matches!(
            delivery.output,
            Output::Informational(_) | Output::Finish | Output::Abort | Output::Stderr(_)
        ) {
            return Offer::Pass(delivery);
        }
        let started = match (&self.0, open_at) {
            (State::Released, _) | (State::Idle, None) => return Offer::Pass(delivery),
            (State::Idle, Some(now)) => {
                self.0 = State::Holding {
                    outputs: Vec::with_capacity(4),
                    bytes: 0,
                    progress: now,
                };
                true
            }
            (State::Holding { .. }, _) => false,
        };
        // The hold accounts these bytes; the app may go on writing until it is full.
        let len = match &delivery.output {
            Output::Head(head) => cgi_head_len(head),
            Output::Body(body) => body.len(),
            Output::Informational(_) | Output::Finish | Output::Abort | Output::Stderr(_) => 0,
        };
        delivery.release();
        let State::Holding { outputs, bytes, .. } = &mut self.0 else {
            return Offer::Pass(delivery); // Unreachable: Idle became Holding just above.
        };
        outputs.push(delivery);
        *bytes += len;
        match (*bytes >= budget, started) {
            (true, _) => Offer::Full,
            (false, true) => Offer::Started,
            (false, false) => Offer::Kept,
        }
    }

    /// Opens the gate for good; gives back what was held (in order), `None` if nothing was.
    pub fn release(&mut self) -> Option<Vec<Delivery>> {
        match std::mem::replace(&mut self.0, State::Released) {
            State::Holding { outputs, .. } => Some(outputs),
            State::Idle | State::Released => None,
        }
    }

    /// The request's input moved on at `now` (a body record arrived).
    pub fn input_progress(&mut self, now: Instant) {
        if let State::Holding { progress, .. } = &mut self.0 {
            *progress = now;
        }
    }

    /// Whether outputs are being held.
    pub fn is_holding(&self) -> bool {
        matches!(self.0, State::Holding { .. })
    }

    /// When the held outputs go out although the input is still open: `timeout` after the
    /// input last progressed (or the hold began).
    pub fn deadline(&self, timeout: Duration) -> Option<Instant> {
        match &self.0 {
            State::Holding { progress, .. } => Some(*progress + timeout),
            State::Idle | State::Released => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{delivery_queue, CancellationToken, QueueChannel, Response, ResponseHead};
    use bytes::Bytes;

    use super::*;

    /// The deliveries of a head, `bodies`, and a finish, as an app sends them.
    async fn deliveries(bodies: &[usize], budget: usize) -> Vec<Delivery> {
        let (tx, mut rx) = delivery_queue();
        let mut resp = Response::new(QueueChannel::new(1, tx, budget, CancellationToken::new()));
        resp.send_head(ResponseHead::new(200)).await.unwrap();
        let mut out = vec![rx.recv().await.unwrap()];
        for &n in bodies {
            resp.write(Bytes::from(vec![b'x'; n])).await.unwrap();
            out.push(rx.recv().await.unwrap());
        }
        resp.finish().await.unwrap();
        out.push(rx.recv().await.unwrap());
        out
    }

    #[tokio::test]
    async fn holds_while_input_open_until_released() {
        let now = Instant::now();
        let mut d = deliveries(&[10, 20], 1000).await.into_iter();
        let mut hold = Hold::default();
        assert!(matches!(
            hold.offer(d.next().unwrap(), Some(now), 1000),
            Offer::Started
        ));
        assert!(matches!(
            hold.offer(d.next().unwrap(), Some(now), 1000),
            Offer::Kept
        ));
        // Input complete by now: still kept behind the others, in order.
        assert!(matches!(
            hold.offer(d.next().unwrap(), None, 1000),
            Offer::Kept
        ));
        assert_eq!(
            hold.deadline(Duration::from_secs(1)),
            Some(now + Duration::from_secs(1))
        );
        let later = now + Duration::from_millis(500);
        hold.input_progress(later);
        assert_eq!(
            hold.deadline(Duration::from_secs(1)),
            Some(later + Duration::from_secs(1))
        );
        let finish = match hold.offer(d.next().unwrap(), Some(now), 1000) {
            Offer::Pass(f) => f,
            other => panic!("the end passes: {other:?}"),
        };
        assert!(matches!(finish.output, Output::Finish));
        let held = hold.release().unwrap();
        let kinds: Vec<_> = held
            .iter()
            .map(|d| match &d.output {
                Output::Head(_) => 0,
                Output::Body(b) => b.len(),
                _ => usize::MAX,
            })
            .collect();
        assert_eq!(kinds, [0, 10, 20]);
        assert!(hold.release().is_none());
        assert_eq!(hold.deadline(Duration::from_secs(1)), None);
    }

    #[tokio::test]
    async fn stderr_passes_a_hold_without_releasing_it() {
        let now = Instant::now();
        let (tx, mut rx) = delivery_queue();
        let chan = QueueChannel::new(1, tx, 1000, CancellationToken::new()).with_stderr();
        let mut resp = Response::new(chan);
        let stderr = resp.stderr().unwrap();
        stderr.send(Bytes::from_static(b"early")).await.unwrap();
        resp.send_head(ResponseHead::new(200)).await.unwrap();
        stderr.send(Bytes::from_static(b"late")).await.unwrap();
        let mut hold = Hold::default();
        // Before anything is held: it passes and does not start a hold.
        let early = rx.recv().await.unwrap();
        assert!(matches!(hold.offer(early, Some(now), 1000), Offer::Pass(_)));
        assert!(!hold.is_holding());
        let head = rx.recv().await.unwrap();
        assert!(matches!(hold.offer(head, Some(now), 1000), Offer::Started));
        // While holding: it passes, the hold goes on.
        let late = rx.recv().await.unwrap();
        let Offer::Pass(late) = hold.offer(late, Some(now), 1000) else {
            panic!("stderr passes the hold");
        };
        assert_eq!(late.output, Output::Stderr(Bytes::from_static(b"late")));
        assert!(hold.is_holding());
        assert_eq!(hold.release().map(|v| v.len()), Some(1));
    }

    #[tokio::test]
    async fn complete_input_passes_without_holding() {
        let mut hold = Hold::default();
        for d in deliveries(&[5], 100).await {
            assert!(matches!(hold.offer(d, None, 100), Offer::Pass(_)));
        }
        assert!(!hold.is_holding());
        assert!(hold.release().is_none());
    }

    #[tokio::test]
    async fn full_at_the_budget_and_credit_returned() {
        let now = Instant::now();
        let head_len = cgi_head_len(&ResponseHead::new(200));
        let budget = head_len + 30;
        let mut d = deliveries(&[10, 20], budget).await.into_iter();
        let mut hold = Hold::default();
        assert!(matches!(
            hold.offer(d.next().unwrap(), Some(now), budget),
            Offer::Started
        ));
        assert!(matches!(
            hold.offer(d.next().unwrap(), Some(now), budget),
            Offer::Kept
        ));
        assert!(matches!(
            hold.offer(d.next().unwrap(), Some(now), budget),
            Offer::Full
        ));
        assert_eq!(hold.release().map(|v| v.len()), Some(3));
        // Released: everything passes, input open or not.
        let again = deliveries(&[1], 10).await.into_iter().nth(1).unwrap();
        assert!(matches!(
            hold.offer(again, Some(now), budget),
            Offer::Pass(_)
        ));
    }
}
