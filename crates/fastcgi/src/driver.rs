//! The per-connection tokio driver (being written: this placeholder closes every connection).

use std::sync::Arc;

use gatehouse_channel_request::{CancellationToken, Peer};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::server::Server;

/// Serves one accepted connection until it closes.
///
/// # Cancel safety
/// Dropping the future closes the connection and aborts its requests.
pub async fn serve_connection<IO>(
    server: Arc<Server>,
    io: IO,
    peer: Peer,
    shutdown: CancellationToken,
) where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let _ = (server, io, shutdown);
    tracing::error!(%peer, "FastCGI driver not implemented yet: closing");
}
