//! The message of a transaction, streamed: chunks read by a blocking reader
//! (a queue file) on a blocking thread, at most four 64 KiB chunks ahead of
//! the network, so a 50 MB message never sits in memory and a slow disk
//! never blocks the async threads.
//!
//! One blocking task opens the message and reads it, so a transaction
//! costs one hand-off to the blocking threads, not one to open and another
//! to read. Most mail fits in the first chunk: it is read before the open
//! is reported, and the task ends there.
//!
//! A message the caller holds already (a small one, read with its queue
//! file) is a source at once, with no blocking thread: [`in_memory`].
//!
//! A read error arrives as an `Err` chunk; the connection then stops the
//! transaction without its final dot (see the crate guarantees).

use std::io::{self, Read};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Chunks of the message as read by a blocking reader (see [`stream_reader`]).
pub type MessageSource = mpsc::Receiver<io::Result<Vec<u8>>>;

/// Opens the message (network form, CRLF) from its start, once per
/// transaction. Blocking: [`open_source`] runs it off the async threads.
pub type Opener = Arc<dyn Fn() -> io::Result<Box<dyn io::Read + Send>> + Send + Sync>;

/// The size of a chunk.
const CHUNK: usize = 64 * 1024;
/// How many chunks may wait for the network.
const AHEAD: usize = 4;

/// Reads up to [`CHUNK`] bytes of `r` (fewer only at its end), into a
/// buffer that is not zeroed first. `Ok(None)` at the end.
fn chunk(r: &mut (dyn io::Read + Send)) -> io::Result<Option<Vec<u8>>> {
    let mut buf = Vec::with_capacity(CHUNK);
    r.take(CHUNK as u64).read_to_end(&mut buf)?;
    Ok((!buf.is_empty()).then_some(buf))
}

/// Sends `r`'s chunks into `tx` until its end, an error, or the receiver
/// is gone; `first` was read already.
fn pump(r: &mut (dyn io::Read + Send), first: Vec<u8>, tx: &mpsc::Sender<io::Result<Vec<u8>>>) {
    let mut next = Some(first);
    while let Some(buf) = next.take() {
        let whole = buf.len() == CHUNK;
        if tx.blocking_send(Ok(buf)).is_err() || !whole {
            return;
        }
        match chunk(r) {
            Ok(b) => next = b,
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        }
    }
}

/// Reads `r` on a blocking thread in 64 KiB chunks, at most four chunks
/// ahead of the network.
pub fn stream_reader(mut r: Box<dyn io::Read + Send>) -> MessageSource {
    let (tx, rx) = mpsc::channel(AHEAD);
    tokio::task::spawn_blocking(move || match chunk(&mut *r) {
        Ok(Some(first)) => pump(&mut *r, first, &tx),
        Ok(None) => {}
        Err(e) => {
            let _ = tx.blocking_send(Err(e));
        }
    });
    rx
}

/// A message already in memory, as a source: every chunk is in the channel
/// before it is returned, so it needs no blocking thread. For small
/// messages (the caller bounds the memory: the chunks are copies).
pub fn in_memory(message: &[u8]) -> MessageSource {
    let chunks = message.chunks(CHUNK);
    let (tx, rx) = mpsc::channel(chunks.len().max(1));
    for c in chunks {
        // The channel has room for every chunk.
        let _ = tx.try_send(Ok(c.to_vec()));
    }
    rx
}

/// Opens the message with `open` on a blocking thread and streams it from
/// there. An error here means nothing was sent: the caller defers without
/// a transaction.
pub async fn open_source(open: &Opener) -> io::Result<MessageSource> {
    let open = Arc::clone(open);
    let (tx, rx) = mpsc::channel(AHEAD);
    let (opened_tx, opened) = oneshot::channel();
    tokio::task::spawn_blocking(move || {
        let mut r = match open() {
            Ok(r) => r,
            Err(e) => {
                let _ = opened_tx.send(Err(e));
                return;
            }
        };
        // The first chunk (often the whole message) is in the channel
        // before the open is reported: the channel is empty, so this
        // never waits.
        let first = chunk(&mut *r);
        let more = match first {
            Ok(Some(buf)) if buf.len() == CHUNK => Some(buf),
            Ok(Some(buf)) => {
                let _ = tx.try_send(Ok(buf));
                None
            }
            Ok(None) => None,
            Err(e) => {
                let _ = tx.try_send(Err(e));
                None
            }
        };
        if opened_tx.send(Ok(())).is_err() {
            return;
        }
        if let Some(buf) = more {
            pump(&mut *r, buf, &tx);
        }
    });
    match opened.await {
        Ok(Ok(())) => Ok(rx),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(io::Error::other("internal error: the reader stopped")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opener(bytes: Vec<u8>) -> Opener {
        Arc::new(move || Ok(Box::new(io::Cursor::new(bytes.clone())) as Box<dyn io::Read + Send>))
    }

    async fn drain(mut rx: MessageSource) -> (Vec<u8>, Vec<usize>, Option<io::ErrorKind>) {
        let (mut all, mut sizes, mut err) = (Vec::new(), Vec::new(), None);
        while let Some(c) = rx.recv().await {
            match c {
                Ok(b) => {
                    sizes.push(b.len());
                    all.extend_from_slice(&b);
                }
                Err(e) => err = Some(e.kind()),
            }
        }
        (all, sizes, err)
    }

    #[tokio::test]
    async fn messages_of_every_size_arrive_whole_in_chunks() {
        for len in [0, 1, 5_000, CHUNK - 1, CHUNK, CHUNK + 1, 5 * CHUNK + 7] {
            let msg: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let (got, sizes, err) = drain(open_source(&opener(msg.clone())).await.unwrap()).await;
            assert!(got == msg, "{len} bytes");
            assert!(err.is_none());
            assert!(sizes.iter().all(|&s| s > 0 && s <= CHUNK), "{sizes:?}");
            assert_eq!(sizes.len(), len.div_ceil(CHUNK), "{len} bytes: {sizes:?}");
            let (again, _, _) = drain(stream_reader(Box::new(io::Cursor::new(msg.clone())))).await;
            assert!(again == msg, "stream_reader, {len} bytes");
            let (held, held_sizes, err) = drain(in_memory(&msg)).await;
            assert!(held == msg && err.is_none(), "in_memory, {len} bytes");
            assert_eq!(held_sizes, sizes, "in_memory, {len} bytes");
        }
    }

    /// A reader that fails after `ok` bytes.
    struct Failing(usize);
    impl io::Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0 == 0 {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "bad disk"));
            }
            let n = buf.len().min(self.0);
            buf[..n].fill(b'a');
            self.0 -= n;
            Ok(n)
        }
    }

    #[tokio::test]
    async fn an_open_error_is_the_result_and_a_read_error_a_chunk() {
        let fails: Opener = Arc::new(|| Err(io::Error::new(io::ErrorKind::NotFound, "gone")));
        assert_eq!(
            open_source(&fails).await.unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        for ok in [0, 10, CHUNK + 10] {
            let o: Opener = Arc::new(move || Ok(Box::new(Failing(ok)) as Box<dyn io::Read + Send>));
            let (got, _, err) = drain(open_source(&o).await.unwrap()).await;
            assert_eq!(err, Some(io::ErrorKind::InvalidData), "after {ok} bytes");
            // What came before the error, at most: never the error as data.
            assert!(got.len() <= ok && got.iter().all(|&b| b == b'a'));
        }
    }
}
