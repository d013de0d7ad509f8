//! The read side of a connection: a buffer over the socket, decoded by whichever decoder the
//! phase needs, and the lingering drain of a closing connection.

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_util::codec::Decoder;

use crate::codec::BodyDecoder;
use crate::error::Error;
use crate::server::{LINGER_MAX_BYTES, READ_CHUNK};

/// The read side: a buffer and the socket, decoded by whichever decoder the phase needs.
pub(crate) struct Reader<R> {
    io: R,
    buf: BytesMut,
    /// The peer ended its side (or the socket failed): nothing more will be read.
    pub(crate) eof: bool,
}

impl<R: AsyncRead + Unpin> Reader<R> {
    /// A reader over `io` with an empty buffer.
    pub(crate) fn new(io: R) -> Self {
        Self {
            io,
            buf: BytesMut::new(),
            eof: false,
        }
    }

    /// The socket back (buffered bytes are dropped).
    pub(crate) fn into_inner(self) -> R {
        self.io
    }

    /// The next frame of `dec`, reading the socket only when the buffer holds none.
    ///
    /// # Cancel safety
    /// Cancel-safe: bytes read stay in the buffer.
    pub(crate) async fn next<D: Decoder<Error = Error>>(
        &mut self,
        dec: &mut D,
    ) -> Result<Option<D::Item>, Error> {
        loop {
            if self.eof {
                return dec.decode_eof(&mut self.buf);
            }
            if let Some(item) = dec.decode(&mut self.buf)? {
                return Ok(Some(item));
            }
            self.buf.reserve(READ_CHUNK);
            if self.io.read_buf(&mut self.buf).await? == 0 {
                self.eof = true;
            }
        }
    }

    /// Reads and discards what the peer still sends: until `body` has all its bytes (when the
    /// head was read we know how much is coming), the end of input, an error, or
    /// [`LINGER_MAX_BYTES`].
    pub(crate) async fn drain(&mut self, mut body: Option<BodyDecoder>) {
        let mut total = 0;
        loop {
            if let Some(dec) = body.as_mut() {
                while let Ok(Some(_)) = dec.decode(&mut self.buf) {}
                if dec.is_ended() {
                    return;
                }
            }
            total += self.buf.len();
            self.buf.clear();
            if self.eof || total >= LINGER_MAX_BYTES {
                return;
            }
            self.buf.reserve(READ_CHUNK);
            match self.io.read_buf(&mut self.buf).await {
                Ok(0) | Err(_) => self.eof = true,
                Ok(_) => {}
            }
        }
    }
}

/// What a closing connection still expects from the peer.
pub(crate) enum Linger {
    /// Nothing: the request was read whole, or the peer closed.
    No,
    /// The rest of the body.
    Body(BodyDecoder),
    /// An unknown amount: the head could not be read.
    UntilEof,
}

impl Linger {
    pub(crate) fn body(dec: BodyDecoder) -> Self {
        if dec.is_ended() {
            Self::No
        } else {
            Self::Body(dec)
        }
    }
}
