//! Fuzz target for the DATA path as a session runs it (issue 14): the
//! command line through facteur-daemon's `LineIo` (reads of any size, as
//! the network delivers them), then the message through `LineIo::consume`
//! and the DATA receiver, then the next commands from what was read with
//! the message. Checks, against a plain model of RFC 5321 §4.1.1.4: the
//! message ends exactly at the first CRLF.CRLF, its content is the model's
//! (dot-unstuffed), and every byte after the end comes out as the next
//! command lines, none lost and none taken into the message.

#![no_main]

use facteur_daemon::lineio::{Fill, Input, LineIo};
use facteur_smtp_codec::DataReceiver;
use libfuzzer_sys::fuzz_target;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A client whose bytes arrive in chunks of the sizes it was given.
struct Chunked {
    data: Vec<u8>,
    pos: usize,
    sizes: Vec<usize>,
    turn: usize,
}

impl AsyncRead for Chunked {
    fn poll_read(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let s = &mut *self;
        let size = s.sizes[s.turn % s.sizes.len()];
        s.turn += 1;
        let n = size.min(s.data.len() - s.pos).min(buf.remaining());
        buf.put_slice(&s.data[s.pos..s.pos + n]);
        s.pos += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Chunked {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(b.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// (where the message ends, its content) by the model.
fn model(input: &[u8]) -> (Option<usize>, Vec<u8>) {
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some(k) = input[pos..].windows(2).position(|w| w == b"\r\n") {
        let line = &input[pos..pos + k];
        if line == b"." {
            return (Some(pos + k + 2), out);
        }
        out.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
        out.extend_from_slice(b"\r\n");
        pos += k + 2;
    }
    (None, out)
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let sizes: Vec<usize> = data[..3].iter().map(|&b| usize::from(b % 17) + 1).collect();
    let body: Vec<u8> = data[3..]
        .iter()
        .map(|&b| match b % 9 {
            0 => b'\r',
            1 => b'\n',
            2 => b'.',
            3 => b' ',
            _ => b'a' + b % 4,
        })
        .collect();
    let mut stream = b"DATA\r\n".to_vec();
    stream.extend_from_slice(&body);
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("a runtime");
    rt.block_on(async {
        let (_stop_tx, stop) = tokio::sync::watch::channel(false);
        let conn = Chunked { data: stream, pos: 0, sizes, turn: 0 };
        let mut io = LineIo::new(conn, 1000, Duration::from_secs(30), stop);
        assert_eq!(io.next_line(true).await.expect("no I/O error"), Input::Line(b"DATA\r\n".to_vec()));
        let mut rx = DataReceiver::new(0);
        let mut msg = Vec::new();
        let fill = io
            .consume(|buf| {
                let used = rx.feed(buf, &mut msg);
                (used, rx.is_done())
            })
            .await
            .expect("no I/O error");
        let (end, want) = model(&body);
        match end {
            Some(end) => {
                assert_eq!(fill, Fill::Data);
                assert_eq!(msg, want, "the message");
                // What follows the end, line by line, is all there.
                let mut after = Vec::new();
                loop {
                    match io.next_line(true).await.expect("no I/O error") {
                        Input::Line(l) => after.extend_from_slice(&l),
                        Input::TooLong => unreachable!("lines are short"),
                        _ => break,
                    }
                }
                let rest = &body[end..];
                let complete = rest.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
                assert_eq!(after, &rest[..complete], "the bytes after the message");
            }
            None => assert_eq!(fill, Fill::Eof, "a message without its end"),
        }
    });
});
