//! Transcripts of both dialects against the scripted in-memory peer
//! (`testing.rs`).

mod lmtp;
mod smtp;

use crate::connection::BoxIo;
use crate::testing::Log;
use tokio::io::DuplexStream;

/// A connection's end (boxed, as STARTTLS needs) and the peer's end.
fn pipe() -> (BoxIo, DuplexStream) {
    let (a, b) = tokio::io::duplex(1 << 16);
    (Box::new(a), b)
}

fn log() -> Log {
    Log::default()
}
