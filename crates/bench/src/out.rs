//! [`OutQueue`]: request bytes waiting for the socket, as shared `Bytes` segments (pre-encoded
//! once, never copied), written with vectored writes of up to [`MAX_IOV`] segments.

use std::io::IoSlice;

use bytes::{Buf, Bytes};
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Request bytes waiting for the socket: shared segments, written with vectored writes.
#[derive(Default)]
pub struct OutQueue {
    segments: std::collections::VecDeque<Bytes>,
}

/// Segments handed to one `write_vectored` call.
pub const MAX_IOV: usize = 64;

impl OutQueue {
    /// Queues a request's segments.
    pub fn push(&mut self, segments: &[Bytes]) {
        self.segments.extend(segments.iter().cloned());
    }

    /// Whether everything was written.
    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    /// One vectored write; returns the bytes written.
    ///
    /// # Cancel safety
    /// Cancel-safe: the queue only advances after the write returned.
    pub async fn write<W: AsyncWrite + Unpin>(&mut self, wr: &mut W) -> std::io::Result<usize> {
        let n = {
            let mut slices = [IoSlice::new(&[]); MAX_IOV];
            let mut count = 0;
            for (slot, seg) in slices.iter_mut().zip(&self.segments) {
                *slot = IoSlice::new(seg);
                count += 1;
            }
            wr.write_vectored(&slices[..count]).await?
        };
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        let mut left = n;
        while left > 0 {
            let Some(front) = self.segments.front_mut() else {
                break;
            };
            if front.len() > left {
                front.advance(left);
                break;
            }
            left -= front.len();
            self.segments.pop_front();
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;

    #[tokio::test]
    async fn out_queue_writes_everything_in_order() {
        let (mut a, mut b) = tokio::io::duplex(7); // tiny pipe: many partial writes
        let mut q = OutQueue::default();
        let segs: Vec<Bytes> = (0..100u8)
            .map(|i| Bytes::from(vec![i; usize::from(i % 5)]))
            .collect();
        q.push(&segs);
        let want: Vec<u8> = segs.iter().flat_map(|s| s.to_vec()).collect();
        let reader = tokio::spawn(async move {
            let mut got = vec![0; want.len()];
            b.read_exact(&mut got).await.unwrap();
            assert_eq!(got, want);
        });
        let mut total = 0;
        while !q.is_empty() {
            total += q.write(&mut a).await.unwrap();
        }
        assert_eq!(total, segs.iter().map(Bytes::len).sum::<usize>());
        reader.await.unwrap();
    }
}
