//! Entry points for the cargo-fuzz targets in `crates/channel-request/fuzz` (built only with
//! `cfg(fuzzing)`). Each asserts an invariant, not merely the absence of a panic: a script's
//! output is hostile input too.

use bytes::BytesMut;

use crate::cgi_head::{parse_cgi_head, write_cgi_head, CgiResponse};
use crate::head::{is_token_byte, is_value_byte};

/// Parses `data` as a CGI script's output, asserting that
/// - a head found consumes no more than was offered, and the bytes after it are the body;
/// - the same head is found whatever prefix of the output arrived first: every shorter prefix
///   asks for more bytes (or is over the limit), never a different answer;
/// - what parses is valid on the wire (token names, value bytes, a 3-digit status) and writing
///   it as our own CGI head and parsing that gives the same head back.
pub fn cgi_head(data: &[u8]) {
    let limit = data.first().map_or(64, |&b| 16 + usize::from(b) * 16);
    let whole = parse_cgi_head(data, limit);
    if let Ok(Some((response, consumed))) = &whole {
        assert!(*consumed <= data.len());
        for cut in 0..*consumed {
            match parse_cgi_head(&data[..cut], limit) {
                Ok(None) | Err(crate::CgiHeadError::TooLarge { .. }) => {}
                other => panic!("prefix of {cut} bytes gave {other:?}, the whole {response:?}"),
            }
        }
        assert_eq!(
            parse_cgi_head(&data[..*consumed], limit).ok().flatten(),
            Some((response.clone(), *consumed)),
            "the head alone parses differently"
        );
        if let CgiResponse::Document(head) | CgiResponse::ClientRedirect(head) = response {
            assert!(
                (100..1000).contains(&head.status()),
                "status {}",
                head.status()
            );
            for (name, value) in head.headers() {
                assert!(!name.is_empty() && name.iter().all(|&b| is_token_byte(b)));
                assert!(value.iter().all(|&b| is_value_byte(b)), "{value:?}");
            }
            let mut ours = BytesMut::new();
            write_cgi_head(head, &mut ours);
            let again = parse_cgi_head(&ours, ours.len() + 1)
                .ok()
                .flatten()
                .and_then(|(r, _)| r.into_head());
            let again = again.expect("our own head does not parse");
            assert_eq!(again.status(), head.status());
            assert_eq!(again.headers(), head.headers());
        }
    }
}
