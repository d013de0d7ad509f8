//! Per-request state inside the sans-io connection: `FCGI_PARAMS` accumulation, then the
//! running request's `FCGI_STDIN` accounting against `CONTENT_LENGTH`.
//!
//! ```text
//!  BEGIN_REQUEST ─► Params{buf} ──empty PARAMS──► Running(Stdin::Open) ──empty STDIN──► Running(Ended)
//!                        │ (FCGI_AUTHORIZER)           │ more than CONTENT_LENGTH
//!                        │                             ▼
//!                        │                        Running(Discarding) ──empty STDIN──► Running(Ended)
//!                        └──empty PARAMS──► Running(Unused) ──empty STDIN (if any)──► Running(Ended)
//! ```
//!
//! The environment gets `FCGI_ROLE` (`RESPONDER` or `AUTHORIZER`), as libfcgi sets it for its
//! apps, whatever the peer sent under that name. An Authorizer (section 6.3) has no body: its
//! app's body is empty and ended at dispatch, without `CONTENT_LENGTH` ("The Web server does not
//! send CONTENT_LENGTH"; one sent anyway is removed, the request header stays as
//! `HTTP_CONTENT_LENGTH` when the server passes it, as lighttpd does). lighttpd sends such a
//! request's empty `FCGI_STDIN` for a GET and no `FCGI_STDIN` at all for a POST; content sent
//! anyway is dropped (libfcgi would hand it to the app as stdin; the spec gives the role none).
//!
//! The request leaves the table when its `FCGI_END_REQUEST` is written (section 3.3: "becomes
//! inactive when the application sends a record {FCGI_END_REQUEST, R, ...}").

use std::collections::HashMap;

use bytes::{Bytes, BytesMut};
use gatehouse_channel_request::env::CONTENT_LENGTH;
use gatehouse_channel_request::{BodyError, Env, RequestInfo};

use crate::error::{LimitError, RequestError};
use crate::nv;
use crate::record::Role;
use crate::server::RequestSlot;
use gatehouse_channel_request::Hold;

/// One active request ID.
#[derive(Debug)]
pub(crate) struct RequestState {
    pub(crate) info: RequestInfo,
    pub(crate) keep_conn: bool,
    /// `Role::Responder` or `Role::Authorizer` (the connection refuses the others).
    pub(crate) role: Role,
    pub(crate) phase: Phase,
    /// The response's outputs, held while the body still arrives.
    pub(crate) hold: Hold,
    /// The app sent `FCGI_STDERR` content: the stream is closed (an empty `FCGI_STDERR`)
    /// before `FCGI_END_REQUEST`.
    pub(crate) stderr_sent: bool,
}

/// Where a request is in its input.
#[derive(Debug)]
pub(crate) enum Phase {
    /// Reading `FCGI_PARAMS`; the slot moves to the app's task at dispatch.
    Params { buf: ParamsBuf, slot: RequestSlot },
    /// The app runs; the body is being received.
    Running(Stdin),
}

/// The `FCGI_PARAMS` stream so far. nginx sends all its params in one record: that record's
/// bytes are kept as they are (the environment's names and values point into them), and
/// records are copied together only when a second one comes.
#[derive(Debug, Default)]
pub(crate) enum ParamsBuf {
    #[default]
    Empty,
    One(Bytes),
    Many(BytesMut),
}

impl ParamsBuf {
    fn len(&self) -> usize {
        match self {
            Self::Empty => 0,
            Self::One(b) => b.len(),
            Self::Many(b) => b.len(),
        }
    }

    fn push(&mut self, data: Bytes) {
        match self {
            Self::Empty => *self = Self::One(data),
            Self::One(first) => {
                let mut all = BytesMut::with_capacity(first.len() + data.len());
                all.extend_from_slice(first);
                all.extend_from_slice(&data);
                *self = Self::Many(all);
            }
            Self::Many(all) => all.extend_from_slice(&data),
        }
    }

    fn freeze(self) -> Bytes {
        match self {
            Self::Empty => Bytes::new(),
            Self::One(b) => b,
            Self::Many(b) => b.freeze(),
        }
    }
}

/// The `FCGI_STDIN` stream of a running request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stdin {
    /// Receiving; `expected` is `CONTENT_LENGTH`.
    Open {
        expected: Option<u64>,
        received: u64,
    },
    /// More than `CONTENT_LENGTH` arrived: the rest is dropped until the end of the stream.
    Discarding,
    /// The request takes no body (`FCGI_AUTHORIZER`): content is dropped, and the peer may
    /// never end the stream, so nothing waits for it. `dropped`: content bytes dropped so far.
    Unused { dropped: u64 },
    /// The empty `FCGI_STDIN` record arrived.
    Ended,
}

/// What to do with one `FCGI_STDIN` record.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum StdinStep {
    /// Hand the content to the app.
    Forward,
    /// Hand the content to the app (which never reads past `CONTENT_LENGTH`), then fail it.
    ForwardThenFail(RequestError),
    /// The stream ended, completely or not.
    End(Option<RequestError>),
    /// Drop the content (the body already failed).
    Drop,
    /// Drop the content: the first content for a request that takes no body (log it once).
    Unwanted,
}

/// What a request needs to start its app.
#[derive(Debug)]
pub(crate) struct Ready {
    pub(crate) env: Env,
    pub(crate) content_length: Option<u64>,
    pub(crate) slot: RequestSlot,
}

impl RequestState {
    pub(crate) fn new(info: RequestInfo, keep_conn: bool, role: Role, slot: RequestSlot) -> Self {
        Self {
            info,
            keep_conn,
            role,
            phase: Phase::Params {
                buf: ParamsBuf::Empty,
                slot,
            },
            hold: Hold::default(),
            stderr_sent: false,
        }
    }

    /// The tag of the request's response channel: its process-unique id, never the FastCGI id
    /// (web servers reuse those).
    pub(crate) fn tag(&self) -> u64 {
        self.info.id
    }

    /// Appends `FCGI_PARAMS` content, refusing to grow past `limit` bytes in total.
    pub(crate) fn push_params(&mut self, data: Bytes, limit: usize) -> Result<(), LimitError> {
        if let Phase::Params { buf, .. } = &mut self.phase {
            if buf.len() + data.len() > limit {
                return Err(LimitError::ParamsTooLarge { limit });
            }
            buf.push(data);
        }
        Ok(())
    }

    /// Ends the `FCGI_PARAMS` stream: parses the pairs and `CONTENT_LENGTH`, and moves the
    /// request to `Running`. `None` when the request was not reading params. An Authorizer's
    /// `CONTENT_LENGTH` is removed and its length is `Some(0)`: it has no body.
    pub(crate) fn end_params(&mut self) -> Option<Result<Ready, RequestError>> {
        let Phase::Params { buf, slot } =
            std::mem::replace(&mut self.phase, Phase::Running(Stdin::Ended))
        else {
            return None;
        };
        let stream = buf.freeze();
        let mut env = match env_from_params(&stream, self.role) {
            Ok(env) => env,
            Err(e) => return Some(Err(e)),
        };
        if self.role == Role::Authorizer {
            env.remove(CONTENT_LENGTH);
            self.phase = Phase::Running(Stdin::Unused { dropped: 0 });
            return Some(Ok(Ready {
                env,
                content_length: Some(0),
                slot,
            }));
        }
        let content_length = match env.content_length() {
            Ok(cl) => cl,
            Err(raw) => return Some(Err(RequestError::BadContentLength(raw))),
        };
        self.phase = Phase::Running(Stdin::Open {
            expected: content_length,
            received: 0,
        });
        Some(Ok(Ready {
            env,
            content_length,
            slot,
        }))
    }

    /// Accounts one `FCGI_STDIN` record of `len` bytes; `Err(why)` when none is expected.
    pub(crate) fn stdin(&mut self, len: usize) -> Result<StdinStep, &'static str> {
        let Phase::Running(stdin) = &mut self.phase else {
            return Err("before the end of FCGI_PARAMS");
        };
        let step = match *stdin {
            Stdin::Ended => return Err("after the end of FCGI_STDIN"),
            Stdin::Discarding if len == 0 => {
                // The body already failed; its end only changes our state.
                *stdin = Stdin::Ended;
                StdinStep::Drop
            }
            Stdin::Discarding => StdinStep::Drop,
            Stdin::Unused { .. } if len == 0 => {
                *stdin = Stdin::Ended;
                StdinStep::Drop
            }
            Stdin::Unused { dropped } => {
                *stdin = Stdin::Unused {
                    dropped: dropped + len as u64,
                };
                if dropped == 0 {
                    StdinStep::Unwanted
                } else {
                    StdinStep::Drop
                }
            }
            Stdin::Open { expected, received } if len == 0 => {
                *stdin = Stdin::Ended;
                match expected {
                    Some(expected) if received < expected => {
                        StdinStep::End(Some(RequestError::BodyTooShort { expected, received }))
                    }
                    _ => StdinStep::End(None),
                }
            }
            Stdin::Open { expected, received } => {
                let received = received + len as u64;
                match expected {
                    Some(expected) if received > expected => {
                        *stdin = Stdin::Discarding;
                        StdinStep::ForwardThenFail(RequestError::BodyTooLong { expected })
                    }
                    _ => {
                        *stdin = Stdin::Open { expected, received };
                        StdinStep::Forward
                    }
                }
            }
        };
        Ok(step)
    }

    /// Whether the request waits for the peer (params or body still to come): the idle timer
    /// runs only while every request does. A request without a body (an Authorizer) waits
    /// only for its params.
    pub(crate) fn waits_for_peer(&self) -> bool {
        !matches!(
            self.phase,
            Phase::Running(Stdin::Ended | Stdin::Unused { .. })
        )
    }

    /// Whether the peer sent the whole request (up to its empty `FCGI_STDIN`): if not, it may
    /// still be sending when the request ends, and closing must linger.
    pub(crate) fn input_complete(&self) -> bool {
        matches!(self.phase, Phase::Running(Stdin::Ended))
    }

    /// Whether the peer may still send body bytes the app will read: the body has not ended,
    /// failed, or reached `CONTENT_LENGTH` (`CONTENT_LENGTH: 0` means no body at all). While
    /// it may, the response is held (`gatehouse_channel_request::hold`).
    pub(crate) fn input_open(&self) -> bool {
        match self.phase {
            Phase::Running(Stdin::Open {
                expected: Some(expected),
                received,
            }) => received < expected,
            Phase::Running(Stdin::Open { expected: None, .. }) => true,
            Phase::Params { .. }
            | Phase::Running(Stdin::Discarding | Stdin::Unused { .. } | Stdin::Ended) => false,
        }
    }

    /// Whether the app was started.
    pub(crate) fn is_running(&self) -> bool {
        matches!(self.phase, Phase::Running(_))
    }
}

impl RequestError {
    /// The body error the app sees for this request error, if it concerns the body.
    pub(crate) fn body_error(&self) -> Option<BodyError> {
        match *self {
            Self::BodyTooLong { expected } => Some(BodyError::Long { expected }),
            Self::BodyTooShort { expected, received } => {
                Some(BodyError::Short { expected, received })
            }
            _ => None,
        }
    }
}

/// Up to this many pairs, duplicates are found by linear search.
const LINEAR_DEDUP_MAX: usize = 48;

/// Room left in the environment for the variables the dispatcher sets (`SCRIPT_NAME`,
/// `PATH_INFO`), so that setting them does not grow it.
const ENV_HEADROOM: usize = 4;

/// `FCGI_ROLE`: the role of the request, as libfcgi sets it in its apps' environment.
pub(crate) const FCGI_ROLE: &str = "FCGI_ROLE";

/// The value of [`FCGI_ROLE`] for the roles we play (libfcgi's names).
fn role_name(role: Role) -> &'static str {
    match role {
        Role::Authorizer => "AUTHORIZER",
        Role::Filter => "FILTER",
        Role::Responder | Role::Other(_) => "RESPONDER",
    }
}

/// Builds the environment from a complete `FCGI_PARAMS` stream, as the peer sent it, with
/// [`FCGI_ROLE`] first (libfcgi puts it there; a pair of that name from the peer is dropped,
/// as libfcgi's own shadows it). A name sent twice keeps its first position. A repeated `HTTP_*` name
/// (nginx before 1.23 sends one pair per repeated request header line) gets its values joined
/// with `", "` (`"; "` for `HTTP_COOKIE`), as nginx 1.23+, our SCGI and our HTTP front ends do;
/// any other repeated name keeps its last value (a `fastcgi_param` overriding an earlier one, as
/// php-fpm reads it). Past a few dozen pairs duplicates are found through a map, so thousands
/// of tiny pairs cost linear time.
fn env_from_params(stream: &Bytes, role: Role) -> Result<Env, RequestError> {
    // nginx's pairs take 20-40 bytes each: room for them all without growing.
    let mut unique: Vec<(Bytes, Bytes)> = Vec::with_capacity((stream.len() / 16).clamp(8, 64));
    let mut seen: Option<HashMap<Bytes, usize>> = None;
    // One bit per class of names (length, first and last byte) met so far: a name whose class
    // is new cannot be a repeat, which spares the search for nearly every name.
    let mut classes = 0u64;
    for pair in nv::pairs(stream, stream.len()) {
        let (name, value) = pair.map_err(RequestError::MalformedParams)?;
        if seen.is_none() && unique.len() == LINEAR_DEDUP_MAX {
            let map = unique.iter().enumerate().map(|(i, (n, _))| (n.clone(), i));
            seen = Some(map.collect());
        }
        let class = name_class(&name);
        let earlier = match &seen {
            None if classes & class == 0 => None,
            // The usual 20-40 variables: a linear search per name beats hashing them.
            None => unique.iter().position(|(n, _)| *n == name),
            Some(map) => map.get(&name).copied(),
        };
        classes |= class;
        match earlier {
            Some(i) => merge_repeat(&mut unique[i], value),
            None => {
                if let Some(map) = &mut seen {
                    map.insert(name.clone(), unique.len());
                }
                unique.push((name, value));
            }
        }
    }
    let mut env = Env::with_capacity(unique.len() + 1 + ENV_HEADROOM);
    env.push_unchecked(
        Bytes::from_static(FCGI_ROLE.as_bytes()),
        Bytes::from_static(role_name(role).as_bytes()),
    );
    // Only a name of FCGI_ROLE's class can be FCGI_ROLE: nearly always none is compared.
    let role_class = name_class(FCGI_ROLE.as_bytes());
    let maybe_role = classes & role_class != 0;
    for (name, value) in unique {
        if maybe_role && name.as_ref() == FCGI_ROLE.as_bytes() {
            tracing::debug!("the peer's FCGI_ROLE param ignored: the role is the request's");
            continue;
        }
        env.push_unchecked(name, value);
    }
    Ok(env)
}

/// The bit of `name`'s class in the duplicate filter of [`env_from_params`].
fn name_class(name: &[u8]) -> u64 {
    let (first, last) = match name {
        [] => (0, 0),
        [first, .., last] => (*first, *last),
        [only] => (*only, *only),
    };
    let mix = (name.len() as u32).wrapping_mul(0x9E37_79B9)
        ^ u32::from(first).wrapping_mul(0x85EB_CA6B)
        ^ u32::from(last).wrapping_mul(0xC2B2_AE35);
    1 << (mix >> 26)
}

/// Folds a repeated pair into the earlier one: `HTTP_*` values joined, others replaced.
fn merge_repeat(earlier: &mut (Bytes, Bytes), value: Bytes) {
    let (name, old) = earlier;
    if !name.starts_with(b"HTTP_") {
        *old = value;
        return;
    }
    let sep: &[u8] = if name.as_ref() == b"HTTP_COOKIE" {
        b"; "
    } else {
        b", "
    };
    let mut joined = BytesMut::with_capacity(old.len() + sep.len() + value.len());
    joined.extend_from_slice(old);
    joined.extend_from_slice(sep);
    joined.extend_from_slice(&value);
    *old = joined.freeze();
}

#[cfg(test)]
mod tests {
    use gatehouse_channel_request::{Peer, Protocol};

    use super::*;
    use crate::config::Config;
    use crate::server::Shared;

    fn request() -> RequestState {
        request_as(Role::Responder)
    }

    fn request_as(role: Role) -> RequestState {
        let shared = Shared::for_tests(Config::default());
        let slot = shared.try_slot().unwrap();
        let info = RequestInfo::new(Protocol::FastCgi, Peer::Stdio);
        RequestState::new(info, true, role, slot)
    }

    /// The variables of `env` after the `FCGI_ROLE=RESPONDER` that comes first.
    fn peer_vars(env: &Env) -> Vec<(Bytes, Bytes)> {
        let mut vars = env.iter().map(|(n, v)| (n.clone(), v.clone()));
        let first = vars.next();
        assert_eq!(
            first,
            Some((Bytes::from("FCGI_ROLE"), Bytes::from("RESPONDER")))
        );
        vars.collect()
    }

    fn params(pairs: &[(&str, &str)]) -> Bytes {
        let mut out = BytesMut::new();
        for (n, v) in pairs {
            nv::put_pair(&mut out, n.as_bytes(), v.as_bytes());
        }
        out.freeze()
    }

    #[test]
    fn params_then_body_with_length() {
        let mut r = request();
        let p = params(&[("CONTENT_LENGTH", "5"), ("REQUEST_METHOD", "POST")]);
        let (a, b) = (p.slice(..7), p.slice(7..));
        r.push_params(a, 1000).unwrap();
        r.push_params(b, 1000).unwrap();
        assert_eq!(r.stdin(1), Err("before the end of FCGI_PARAMS"));
        let ready = r.end_params().unwrap().unwrap();
        assert_eq!(ready.content_length, Some(5));
        assert_eq!(ready.env.method(), b"POST");
        assert!(r.input_open());
        assert_eq!(r.stdin(3), Ok(StdinStep::Forward));
        assert!(r.waits_for_peer());
        assert!(r.input_open());
        assert_eq!(r.stdin(2), Ok(StdinStep::Forward));
        // CONTENT_LENGTH bytes are in: the body is complete, the empty record still expected.
        assert!(!r.input_open());
        assert!(r.waits_for_peer());
        assert_eq!(r.stdin(0), Ok(StdinStep::End(None)));
        assert!(!r.waits_for_peer());
        assert_eq!(r.stdin(0), Err("after the end of FCGI_STDIN"));
    }

    #[test]
    fn params_in_one_record_or_several_give_the_same_env() {
        let p = params(&[("A", "1"), ("BB", "22"), ("CCC", "333")]);
        let one = {
            let mut r = request();
            r.push_params(p.clone(), 1000).unwrap();
            r.end_params().unwrap().unwrap().env
        };
        let three = {
            let mut r = request();
            for (from, to) in [(0, 2), (2, 7), (7, p.len())] {
                r.push_params(p.slice(from..to), 1000).unwrap();
            }
            r.end_params().unwrap().unwrap().env
        };
        let vars = |env: &Env| -> Vec<(Bytes, Bytes)> {
            env.iter().map(|(n, v)| (n.clone(), v.clone())).collect()
        };
        assert_eq!(vars(&one), vars(&three));
        assert_eq!(one.get("CCC").map(|v| v.as_ref()), Some(&b"333"[..]));
        let mut r = request();
        r.push_params(p.slice(..5), 10).unwrap();
        assert!(
            r.push_params(p.slice(5..), 10).is_err(),
            "the limit counts every record"
        );
    }

    #[test]
    fn body_length_mismatches() {
        let mut r = request();
        r.push_params(params(&[("CONTENT_LENGTH", "4")]), 1000)
            .unwrap();
        r.end_params().unwrap().unwrap();
        assert_eq!(r.stdin(3), Ok(StdinStep::Forward));
        let err = RequestError::BodyTooShort {
            expected: 4,
            received: 3,
        };
        assert_eq!(r.stdin(0), Ok(StdinStep::End(Some(err))));

        let mut r = request();
        r.push_params(params(&[("CONTENT_LENGTH", "4")]), 1000)
            .unwrap();
        r.end_params().unwrap().unwrap();
        let err = RequestError::BodyTooLong { expected: 4 };
        assert_eq!(r.stdin(5), Ok(StdinStep::ForwardThenFail(err)));
        assert_eq!(r.stdin(5), Ok(StdinStep::Drop));
        assert_eq!(r.stdin(0), Ok(StdinStep::Drop));
        assert!(!r.waits_for_peer());
        assert_eq!(r.stdin(0), Err("after the end of FCGI_STDIN"));
    }

    #[test]
    fn empty_content_length_is_absent_and_body_ends_at_empty_stdin() {
        let mut r = request();
        r.push_params(params(&[("CONTENT_LENGTH", "")]), 1000)
            .unwrap();
        let ready = r.end_params().unwrap().unwrap();
        assert_eq!(ready.content_length, None);
        assert_eq!(ready.env.get("CONTENT_LENGTH").map(|v| v.len()), Some(0));
        assert_eq!(r.stdin(70000), Ok(StdinStep::Forward));
        assert!(r.input_open(), "no length: open until the empty record");
        assert_eq!(r.stdin(0), Ok(StdinStep::End(None)));
        assert!(!r.input_open());

        // CONTENT_LENGTH: 0 has no body at all, whatever comes.
        let mut r = request();
        r.push_params(params(&[("CONTENT_LENGTH", "0")]), 1000)
            .unwrap();
        r.end_params().unwrap().unwrap();
        assert!(!r.input_open());
    }

    #[test]
    fn bad_params() {
        let mut r = request();
        r.push_params(params(&[("CONTENT_LENGTH", "12x")]), 1000)
            .unwrap();
        assert!(matches!(
            r.end_params(),
            Some(Err(RequestError::BadContentLength(v))) if v == "12x"
        ));
        let mut r = request();
        r.push_params(Bytes::from_static(b"\x05\x01ab"), 1000)
            .unwrap();
        assert!(matches!(
            r.end_params(),
            Some(Err(RequestError::MalformedParams(_)))
        ));
        let mut r = request();
        assert_eq!(
            r.push_params(Bytes::from(vec![0; 11]), 10),
            Err(LimitError::ParamsTooLarge { limit: 10 })
        );
    }

    #[test]
    fn repeated_http_names_are_joined() {
        let p = params(&[
            ("HTTP_X_DUP", "a"),
            ("HTTP_COOKIE", "c=1"),
            ("B", "2"),
            ("HTTP_X_DUP", "b"),
            ("HTTP_COOKIE", "d=2"),
        ]);
        let env = env_from_params(&p, Role::Responder).unwrap();
        assert_eq!(
            peer_vars(&env),
            vec![
                (Bytes::from("HTTP_X_DUP"), Bytes::from("a, b")),
                (Bytes::from("HTTP_COOKIE"), Bytes::from("c=1; d=2")),
                (Bytes::from("B"), Bytes::from("2")),
            ]
        );
    }

    #[test]
    fn names_of_one_class_are_still_told_apart() {
        // Same length, first and last byte: one class, so every name is searched for.
        let names: Vec<String> = (0..30).map(|i| format!("X{i:02}Z")).collect();
        let mut pairs: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "v")).collect();
        pairs.push(("X07Z", "w"));
        pairs.push(("REMOTE_ADDR", "1"));
        pairs.push(("SERVER_ADDR", "2"));
        let env = env_from_params(&params(&pairs), Role::Responder).unwrap();
        assert_eq!(env.len(), 33, "30 + 2 + FCGI_ROLE");
        assert_eq!(env.get("X07Z").map(|v| v.as_ref()), Some(&b"w"[..]));
        assert_eq!(env.get("SERVER_ADDR").map(|v| v.as_ref()), Some(&b"2"[..]));
        assert_eq!(name_class(b"X07Z"), name_class(b"X13Z"));
        assert_eq!(name_class(b""), name_class(b""));
    }

    #[test]
    fn duplicates_keep_first_position_last_value() {
        let p = params(&[("A", "1"), ("B", "2"), ("A", "3")]);
        let env = env_from_params(&p, Role::Responder).unwrap();
        assert_eq!(
            peer_vars(&env),
            vec![
                (Bytes::from("A"), Bytes::from("3")),
                (Bytes::from("B"), Bytes::from("2"))
            ]
        );
        // The same with more pairs than the linear search handles.
        let names: Vec<String> = (0..100).map(|i| format!("V{i}")).collect();
        let mut pairs: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "x")).collect();
        pairs.push(("V7", "last"));
        let env = env_from_params(&params(&pairs), Role::Responder).unwrap();
        assert_eq!(env.len(), 101);
        let v7 = env.iter().nth(8).map(|(n, v)| (n.clone(), v.clone()));
        assert_eq!(v7, Some((Bytes::from("V7"), Bytes::from("last"))));
    }

    #[test]
    fn the_role_is_in_the_env_whatever_the_peer_sends() {
        let p = params(&[("FCGI_ROLE", "FILTER"), ("A", "1")]);
        let env = env_from_params(&p, Role::Responder).unwrap();
        assert_eq!(peer_vars(&env), vec![(Bytes::from("A"), Bytes::from("1"))]);
        let env = env_from_params(&p, Role::Authorizer).unwrap();
        assert_eq!(env.get_str("FCGI_ROLE"), Some("AUTHORIZER"));
        assert_eq!(env.len(), 2);
        // Names of FCGI_ROLE's class that are not it are kept.
        let p = params(&[("FCGI_RULE", "x"), ("FCGI_ROLE", "y")]);
        let env = env_from_params(&p, Role::Responder).unwrap();
        assert_eq!(name_class(b"FCGI_RULE"), name_class(b"FCGI_ROLE"));
        assert_eq!(
            peer_vars(&env),
            vec![(Bytes::from("FCGI_RULE"), Bytes::from("x"))]
        );
    }

    #[test]
    fn an_authorizer_has_no_body_and_waits_for_no_stdin() {
        let mut r = request_as(Role::Authorizer);
        let p = params(&[("CONTENT_LENGTH", "11"), ("REQUEST_METHOD", "POST")]);
        r.push_params(p, 1000).unwrap();
        assert!(r.waits_for_peer(), "its params are awaited");
        let ready = r.end_params().unwrap().unwrap();
        assert_eq!(ready.content_length, Some(0));
        assert!(!ready.env.contains("CONTENT_LENGTH"));
        assert_eq!(ready.env.get_str("FCGI_ROLE"), Some("AUTHORIZER"));
        assert!(!r.input_open(), "nothing to hold its response for");
        assert!(
            !r.waits_for_peer(),
            "no STDIN awaited (lighttpd sends none for a POST)"
        );
        assert!(
            !r.input_complete(),
            "a STDIN may still come: close with linger"
        );
        // Content sent anyway is dropped, logged once; the empty record ends the stream.
        assert_eq!(r.stdin(5), Ok(StdinStep::Unwanted));
        assert_eq!(r.stdin(5), Ok(StdinStep::Drop));
        assert_eq!(r.stdin(0), Ok(StdinStep::Drop));
        assert!(r.input_complete());
        assert_eq!(r.stdin(0), Err("after the end of FCGI_STDIN"));

        // lighttpd's GET: the empty FCGI_STDIN alone.
        let mut r = request_as(Role::Authorizer);
        r.push_params(params(&[("REQUEST_METHOD", "GET")]), 1000)
            .unwrap();
        r.end_params().unwrap().unwrap();
        assert_eq!(r.stdin(0), Ok(StdinStep::Drop));
        assert!(r.input_complete() && !r.waits_for_peer());
    }
}
