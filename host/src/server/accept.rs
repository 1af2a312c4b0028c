//! The accept loop of the host's two servers, `emwrite serve` and `emwrite view`: connections
//! are handed on as they arrive until a stop signal, and a failed `accept` backs off.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

/// Pause after a failed `accept` (e.g. out of file descriptors, when it fails again at once) so
/// the loop does not spin.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Accepts connections on `listener` and hands each to `handle` until `stop` completes.
pub async fn accept_until(
    listener: &TcpListener,
    stop: impl Future<Output = ()>,
    mut handle: impl FnMut(TcpStream, SocketAddr),
) {
    tokio::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(connection) => connection,
                Err(error) => {
                    tracing::warn!("accept failed: {error}");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = &mut stop => return,
        };
        handle(stream, peer);
    }
}
