//! Management records (FastCGI 1.0 section 4), answered by the library alone: "The
//! application's response should not involve the application proper but only the FastCGI
//! library" (section 4.1).
//!
//! - `FCGI_GET_VALUES` gets `FCGI_GET_VALUES_RESULT` with the variables we know;
//! - a management type we do not know gets `FCGI_UNKNOWN_TYPE` (section 4.2);
//! - an application record type with the null request id is a protocol error.

use bytes::{Bytes, BytesMut};
use gatehouse_channel_request::Peer;

use crate::config::Config;
use crate::error::{Error, ProtocolError};
use crate::nv;
use crate::record::{
    Payload, Record, UnknownTypeBody, FCGI_MAX_CONNS, FCGI_MAX_REQS, FCGI_MPXS_CONNS,
    FCGI_NULL_REQUEST_ID,
};
use crate::response::OutQueue;

/// Answers a record with the null request id into `out`.
pub(crate) fn answer(
    payload: Payload,
    cfg: &Config,
    out: &mut OutQueue,
    peer: &Peer,
) -> Result<(), Error> {
    let record_type = payload.record_type();
    match payload {
        Payload::GetValues(query) => {
            let result = get_values_result(&query, cfg)?;
            out.put_record(&Record::new(
                FCGI_NULL_REQUEST_ID,
                Payload::GetValuesResult(result),
            ));
            Ok(())
        }
        Payload::GetValuesResult(_) | Payload::UnknownType(_) | Payload::Other { .. } => {
            // Section 4.2: "When an application receives a management record whose type T it
            // does not understand, the application responds with {FCGI_UNKNOWN_TYPE, 0, {T}}."
            let t = record_type.as_u8();
            tracing::debug!(peer = %peer, record_type = t, "unknown management record: answering FCGI_UNKNOWN_TYPE");
            let body = UnknownTypeBody { record_type: t };
            out.put_record(&Record::new(
                FCGI_NULL_REQUEST_ID,
                Payload::UnknownType(body),
            ));
            Ok(())
        }
        _ => Err(ProtocolError::NullRequestId(record_type).into()),
    }
}

/// Section 4.1: the values of the variables we know, each once, in the order asked; names we
/// do not know are omitted ("it omits that name from the response").
///
/// `FCGI_MAX_REQS` is the smaller of the total and per-connection limits: a web server that
/// multiplexes up to that many requests on the connection it asked on is never refused for
/// the per-connection limit.
pub(crate) fn get_values_result(query: &Bytes, cfg: &Config) -> Result<Bytes, Error> {
    let pairs = nv::parse_all(query, query.len()).map_err(ProtocolError::MalformedGetValues)?;
    let known = [
        (FCGI_MAX_CONNS, cfg.max_conns),
        (FCGI_MAX_REQS, cfg.max_reqs.min(cfg.max_reqs_per_conn)),
        (FCGI_MPXS_CONNS, 1),
    ];
    let mut answered = [false; 3];
    let mut reply = BytesMut::new();
    for (name, _) in pairs {
        let Some(i) = known.iter().position(|(n, _)| n.as_bytes() == &name[..]) else {
            continue;
        };
        if !std::mem::replace(&mut answered[i], true) {
            nv::put_pair(&mut reply, &name, known[i].1.to_string().as_bytes());
        }
    }
    Ok(reply.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(names: &[&str]) -> Bytes {
        let mut q = BytesMut::new();
        for n in names {
            nv::put_pair(&mut q, n.as_bytes(), b"");
        }
        q.freeze()
    }

    #[test]
    fn known_variables_once_unknown_omitted() {
        let cfg = Config {
            max_conns: 3,
            max_reqs: 10,
            max_reqs_per_conn: 40,
            ..Config::default()
        };
        let q = query(&[
            "FCGI_MPXS_CONNS",
            "FCGI_MAX_REQS",
            "X",
            "FCGI_MPXS_CONNS",
            "FCGI_MAX_CONNS",
        ]);
        let r = get_values_result(&q, &cfg).unwrap();
        let want: &[u8] = b"\x0f\x01FCGI_MPXS_CONNS1\x0d\x02FCGI_MAX_REQS10\x0e\x01FCGI_MAX_CONNS3";
        assert_eq!(&r[..], want);
    }

    #[test]
    fn records_with_the_null_id() {
        let cfg = Config::default();
        let mut out = OutQueue::new();
        let peer = Peer::Stdio;
        let other = Payload::Other {
            record_type: 200,
            content: Bytes::new(),
        };
        answer(other, &cfg, &mut out, &peer).unwrap();
        assert_eq!(out.len(), 16, "one FCGI_UNKNOWN_TYPE record");
        let err = answer(Payload::Stdin(Bytes::new()), &cfg, &mut out, &peer).unwrap_err();
        assert!(
            err.to_string()
                .contains("FCGI_STDIN with the null request id"),
            "{err}"
        );
        let bad = answer(
            Payload::GetValues(Bytes::from_static(b"\x05")),
            &cfg,
            &mut out,
            &peer,
        );
        assert!(matches!(
            bad,
            Err(Error::Protocol(ProtocolError::MalformedGetValues(_)))
        ));
    }
}
