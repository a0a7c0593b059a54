//! A scripted SMTP/LMTP peer for transcript tests (this crate's, and with
//! the feature `testing` other crates'): it sends a greeting, then answers
//! each command line with what a closure says, and records every line (in
//! DATA the whole message as one `<DATA>...` line; a BDAT chunk as
//! `BDAT n<bytes>`).
//!
//! Test code: it panics on what a test did not expect.

use crate::source::MessageSource;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

/// What the peer does with one command line (or with the message).
#[derive(Debug, Clone, Copy)]
pub enum Act {
    Say(&'static str),
    /// Says this, then closes the connection.
    Last(&'static str),
    Silent,
    Close,
}

/// Every line the peer received, in order.
pub type Log = Arc<Mutex<Vec<String>>>;

/// The lines of `log` so far.
pub fn lines(log: &Log) -> Vec<String> {
    log.lock().expect("log lock").clone()
}

/// A peer: sends `greeting`, then answers each line with `f`, recording
/// each in `log`.
pub async fn run_peer<S: AsyncRead + AsyncWrite + Unpin>(
    io: S,
    greeting: &'static [u8],
    log: Log,
    mut f: impl FnMut(&str) -> Act,
) {
    let (r, mut w) = tokio::io::split(io);
    let mut r = BufReader::new(r);
    if w.write_all(greeting).await.is_err() {
        return;
    }
    let mut in_data = false;
    let mut data = String::new();
    loop {
        let mut line = String::new();
        match r.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if in_data {
            if line == ".\r\n" {
                in_data = false;
                line = format!("<DATA>{data}");
                data.clear();
            } else {
                data.push_str(&line);
                continue;
            }
        } else if let Some(n) = line.strip_prefix("BDAT ") {
            let n: usize = n
                .split_whitespace()
                .next()
                .unwrap_or("0")
                .parse()
                .expect("BDAT size");
            let mut b = vec![0u8; n];
            r.read_exact(&mut b).await.expect("BDAT chunk");
            line = format!("{}<{}>", line.trim_end(), String::from_utf8_lossy(&b));
        }
        log.lock()
            .expect("log lock")
            .push(line.trim_end().to_string());
        let (say, close) = match f(line.trim_end()) {
            Act::Say(s) => (s, false),
            Act::Last(s) => (s, true),
            Act::Silent => ("", false),
            Act::Close => return,
        };
        if line.starts_with("DATA") && say.contains("354 ") {
            in_data = true;
        }
        if w.write_all(say.as_bytes()).await.is_err() || close {
            return;
        }
    }
}

/// A closure for [`run_peer`] that expects the lines in order, each
/// starting with its step's prefix, and answers with its step's act;
/// closes when the script is over.
pub fn script(steps: Vec<(&'static str, Act)>) -> impl FnMut(&str) -> Act {
    let mut steps = steps.into_iter();
    move |l| match steps.next() {
        Some((expect, act)) => {
            assert!(l.starts_with(expect), "expected {expect:?}, got {l:?}");
            act
        }
        None => Act::Close,
    }
}

/// An EHLO/LHLO reply with PIPELINING, SIZE 1000, 8BITMIME and DSN.
pub const EHLO_ALL: &str =
    "250-peer.test\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-8BITMIME\r\n250 DSN\r\n";

/// The usual answers, for a peer without special behaviour.
pub fn standard(l: &str) -> Act {
    match l.split(' ').next().unwrap_or("") {
        "EHLO" | "LHLO" => Act::Say(EHLO_ALL),
        "MAIL" | "RSET" => Act::Say("250 2.0.0 ok\r\n"),
        "RCPT" => Act::Say("250 2.1.5 ok\r\n"),
        "DATA" => Act::Say("354 go\r\n"),
        "QUIT" => Act::Say("221 bye\r\n"),
        _ if l.starts_with("<DATA>") => Act::Say("250 2.0.0 queued\r\n"),
        _ => Act::Say("502 5.5.2 no\r\n"),
    }
}

/// Serves `greeting` + `f` to every connection on 127.0.0.1:0; returns the
/// port.
pub async fn tcp_peer(greeting: &'static [u8], f: fn(&str) -> Act) -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let port = l.local_addr().expect("local address").port();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(run_peer(s, greeting, Log::default(), f));
        }
    });
    port
}

/// A message source of `bytes`, in chunks of `chunk` bytes (several small
/// chunks cross the dot-stuffer's chunk boundaries).
pub fn message(bytes: &[u8], chunk: usize) -> MessageSource {
    let chunks: Vec<Vec<u8>> = bytes.chunks(chunk.max(1)).map(<[u8]>::to_vec).collect();
    let (tx, rx) = tokio::sync::mpsc::channel(chunks.len().max(1));
    for c in chunks {
        tx.try_send(Ok(c)).expect("the channel holds every chunk");
    }
    rx
}
