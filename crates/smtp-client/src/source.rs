//! The message of a transaction, streamed: chunks read by a blocking reader
//! (a queue file) on a blocking thread, at most four 64 KiB chunks ahead of
//! the network, so a 50 MB message never sits in memory and a slow disk
//! never blocks the async threads.
//!
//! A read error arrives as an `Err` chunk; the connection then stops the
//! transaction without its final dot (see the crate guarantees).

use std::io;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Chunks of the message as read by a blocking reader (see [`stream_reader`]).
pub type MessageSource = mpsc::Receiver<io::Result<Vec<u8>>>;

/// Opens the message (network form, CRLF) from its start, once per
/// transaction. Blocking: [`open_source`] runs it off the async threads.
pub type Opener = Arc<dyn Fn() -> io::Result<Box<dyn io::Read + Send>> + Send + Sync>;

/// Reads `r` on a blocking thread in 64 KiB chunks, at most four chunks
/// ahead of the network.
pub fn stream_reader(mut r: Box<dyn io::Read + Send>) -> MessageSource {
    let (tx, rx) = mpsc::channel(4);
    tokio::task::spawn_blocking(move || {
        loop {
            let mut buf = vec![0u8; 64 * 1024];
            match r.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    buf.truncate(n);
                    if tx.blocking_send(Ok(buf)).is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
    });
    rx
}

/// Opens the message with `open` on a blocking thread and streams it. An
/// error here means nothing was sent: the caller defers without a
/// transaction.
pub async fn open_source(open: &Opener) -> io::Result<MessageSource> {
    let open = Arc::clone(open);
    match tokio::task::spawn_blocking(move || open()).await {
        Ok(Ok(r)) => Ok(stream_reader(r)),
        Ok(Err(e)) => Err(e),
        Err(e) => Err(io::Error::other(format!("internal error: {e}"))),
    }
}
