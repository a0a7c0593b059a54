//! The metrics listener: `GET /metrics` answered with the exposition,
//! anything else 404, over HTTP/1.x with `Connection: close`. Bounded: the
//! request head is read up to 8 KiB within 5 seconds, 16 scrapes at once
//! (more wait for a turn), so a scraper gone wrong costs little.
//! [`serve_with`] is the same small server with another handler (the
//! lists' one-click unsubscription); [`response`] writes a reply.

use crate::Registry;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

const MAX_HEAD: usize = 8 * 1024;

/// The reply to a request head (pure).
pub(crate) fn answer(head: &[u8], registry: &Registry) -> Vec<u8> {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (status, ctype, body) = if method != "GET" && method != "HEAD" {
        (
            "405 Method Not Allowed",
            "text/plain",
            "GET only\n".to_string(),
        )
    } else if path == "/metrics" || path.starts_with("/metrics?") {
        (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            registry.render(),
        )
    } else {
        (
            "404 Not Found",
            "text/plain",
            "the metrics are at /metrics\n".to_string(),
        )
    };
    response(status, ctype, &body, method == "HEAD")
}

/// An HTTP/1.1 reply with `Connection: close` (no body for HEAD).
pub fn response(status: &str, ctype: &str, body: &str, head_only: bool) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

/// Serves `registry` on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, registry: &'static Registry) {
    serve_with(
        listener,
        Arc::new(move |head: &[u8]| answer(head, registry)),
    )
    .await
}

/// The request heads (method line and fields; a small body may be at the
/// end) handed to `handler`, whose reply is written back.
pub type Handler = Arc<dyn Fn(&[u8]) -> Vec<u8> + Send + Sync>;

/// Serves `handler` on `listener` until the task is dropped.
pub async fn serve_with(listener: TcpListener, handler: Handler) {
    let slots = Arc::new(Semaphore::new(16));
    loop {
        let Ok((mut conn, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let handler = Arc::clone(&handler);
        tokio::spawn(async move {
            let _permit = permit;
            let mut head = Vec::with_capacity(512);
            let read = async {
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD {
                    let n = conn.read(&mut buf).await?;
                    if n == 0 {
                        break;
                    }
                    head.extend_from_slice(&buf[..n]);
                }
                Ok::<_, std::io::Error>(())
            };
            if tokio::time::timeout(Duration::from_secs(5), read)
                .await
                .is_ok()
            {
                let reply = handler(&head);
                let _ = tokio::time::timeout(Duration::from_secs(10), conn.write_all(&reply)).await;
            }
        });
    }
}
