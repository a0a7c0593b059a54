//! A connection to a scanner: TCP or a Unix socket, one per message.

use crate::ScanError;
use facteur_config::scan::ScanAddr;
use std::pin::Pin;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};

/// A stream to a scanner.
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

/// Connects to `addr` within `timeout`.
pub async fn connect(
    addr: &ScanAddr,
    timeout: Duration,
) -> Result<Pin<Box<dyn Stream>>, ScanError> {
    let fut = async {
        Ok::<Pin<Box<dyn Stream>>, std::io::Error>(match addr {
            ScanAddr::Tcp(a) => {
                let s = tokio::net::TcpStream::connect(a).await?;
                s.set_nodelay(true)?;
                Box::pin(s)
            }
            ScanAddr::Unix(p) => Box::pin(tokio::net::UnixStream::connect(p).await?),
        })
    };
    match tokio::time::timeout(timeout, fut).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(ScanError::Connect(addr.to_string(), e)),
        Err(_) => Err(ScanError::Timeout(timeout.as_secs())),
    }
}
