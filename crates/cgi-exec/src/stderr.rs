//! A script's stderr, line by line, into the log.
//!
//! Each line becomes one `warn` event tagged with the script, the peer and the request id; its
//! bytes are escaped (`escape_ascii`), and lines longer than [`MAX_LINE`] are cut into pieces so a
//! script that never writes a newline cannot grow a buffer without bound. The reader runs as its
//! own task until the script's stderr closes, so a script that writes a lot to stderr never blocks
//! on a full pipe.

use std::path::Path;
use std::sync::Arc;

use bytes::BytesMut;
use gatehouse_channel_request::RequestInfo;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Longest stderr line logged as one event.
pub const MAX_LINE: usize = 4096;

/// Who wrote the lines.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    /// The script's path.
    pub(crate) script: Arc<Path>,
    /// The request it serves.
    pub(crate) info: RequestInfo,
}

/// Reads `stderr` to its end, logging each line.
pub(crate) async fn log_lines(mut stderr: impl AsyncRead + Unpin, source: Source) {
    let mut buf = BytesMut::with_capacity(1024);
    loop {
        match stderr.read_buf(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        while let Some(line) = next_line(&mut buf) {
            emit(&line, &source);
        }
        if buf.capacity() - buf.len() < 256 {
            buf.reserve(1024);
        }
    }
    if !buf.is_empty() {
        emit(&buf, &source);
    }
}

/// Takes one complete line (without its `\n` or `\r\n`) off the front of `buf`, or a
/// [`MAX_LINE`] piece of an overlong one.
fn next_line(buf: &mut BytesMut) -> Option<BytesMut> {
    match buf.iter().position(|&b| b == b'\n') {
        Some(i) if i <= MAX_LINE => {
            let mut line = buf.split_to(i + 1);
            line.truncate(i);
            if line.last() == Some(&b'\r') {
                line.truncate(i - 1);
            }
            Some(line)
        }
        _ if buf.len() >= MAX_LINE => Some(buf.split_to(MAX_LINE)),
        _ => None,
    }
}

fn emit(line: &[u8], source: &Source) {
    tracing::warn!(
        peer = %source.info.peer,
        request_id = source.info.id,
        script = %source.script.display(),
        "script stderr: {}",
        line.escape_ascii()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lines_and_long_runs() {
        let mut b = BytesMut::from(&b"one\r\ntwo\npart"[..]);
        assert_eq!(next_line(&mut b).as_deref(), Some(&b"one"[..]));
        assert_eq!(next_line(&mut b).as_deref(), Some(&b"two"[..]));
        assert_eq!(next_line(&mut b), None);
        assert_eq!(&b[..], b"part");
        let mut long = BytesMut::from(&vec![b'x'; MAX_LINE + 10][..]);
        assert_eq!(next_line(&mut long).map(|l| l.len()), Some(MAX_LINE));
        assert_eq!(long.len(), 10);
        let mut empty_line = BytesMut::from(&b"\n"[..]);
        assert_eq!(next_line(&mut empty_line).as_deref(), Some(&b""[..]));
    }
}
