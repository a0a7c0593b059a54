//! Transcripts of both dialects against the scripted in-memory peer
//! (`testing.rs`).

mod lmtp;
mod smtp;

use crate::connection::BoxIo;
use crate::testing::{Act, Log, lines, run_peer};
use crate::{ClientError, Connection, Dialect, Timeouts, TxnOutcome};
use tokio::io::DuplexStream;
use tokio::task::JoinHandle;

/// A connection's end (boxed, as STARTTLS needs) and the peer's end.
fn pipe() -> (BoxIo, DuplexStream) {
    let (a, b) = tokio::io::duplex(1 << 12);
    (Box::new(a), b)
}

/// The scripted peer of a test.
struct Peer {
    log: Log,
    task: JoinHandle<()>,
}

impl Peer {
    /// Every line it received so far.
    fn lines(&self) -> Vec<String> {
        lines(&self.log)
    }

    /// Waits for it to end; a failed expectation in its script fails here.
    async fn done(self) -> Vec<String> {
        self.task.await.unwrap();
        lines(&self.log)
    }
}

/// A connection of `dialect` to a peer that greets with `greeting` and
/// answers with `f`.
async fn start(
    dialect: Dialect,
    t: Timeouts,
    greeting: &'static [u8],
    f: impl FnMut(&str) -> Act + Send + 'static,
) -> (Result<Connection<BoxIo>, ClientError>, Peer) {
    let (io, end) = pipe();
    let log = Log::default();
    let task = tokio::spawn(run_peer(end, greeting, log.clone(), f));
    let c = Connection::start(io, dialect, "client.test", t).await;
    (c, Peer { log, task })
}

/// The reply codes of a transaction that all recipients got an answer in.
fn codes(out: &TxnOutcome) -> Vec<u16> {
    out.replies
        .iter()
        .map(|r| r.as_ref().map(|r| r.code).unwrap())
        .collect()
}
