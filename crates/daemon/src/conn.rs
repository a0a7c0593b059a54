//! A connection that starts in clear text and may become TLS (SMTP STARTTLS,
//! POP3 STLS, IMAP STARTTLS), or is TLS from the start (ports 465, 993, 995).
//! Sessions are generic over the underlying stream, so tests run them over
//! in-memory pipes.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::server::TlsStream;

pub enum Conn<S> {
    Plain(S),
    Tls(Box<TlsStream<S>>),
    /// Only while the TLS handshake owns the stream.
    Gone,
}

impl<S> Conn<S> {
    pub fn is_tls(&self) -> bool {
        matches!(self, Conn::Tls(_))
    }

    /// "TLSv1.3" or "TLSv1.2" once TLS is up (metrics).
    pub fn tls_version(&self) -> Option<&'static str> {
        match self {
            Conn::Tls(t) => Some(match t.get_ref().1.protocol_version() {
                Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
                Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
                _ => "other",
            }),
            _ => None,
        }
    }

    /// "TLSv1.3 with cipher TLS13_AES_256_GCM_SHA384", for Received: and logs.
    pub fn tls_description(&self) -> Option<String> {
        match self {
            Conn::Tls(t) => {
                let (_, c) = t.get_ref();
                let v = c
                    .protocol_version()
                    .map(|v| format!("{v:?}"))
                    .unwrap_or_default();
                let s = c
                    .negotiated_cipher_suite()
                    .map(|s| format!("{:?}", s.suite()))
                    .unwrap_or_default();
                Some(format!(
                    "{} with cipher {}",
                    v.replace("TLSv1_", "TLSv1."),
                    s
                ))
            }
            _ => None,
        }
    }
}

fn gone() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "connection lost during TLS handshake",
    )
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Conn<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Conn::Gone => Poll::Ready(Err(gone())),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Conn<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Conn::Gone => Poll::Ready(Err(gone())),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Conn::Gone => Poll::Ready(Err(gone())),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Conn::Gone => Poll::Ready(Err(gone())),
        }
    }
}
