//! A test client for CRLF line protocols (SMTP, LMTP, POP3, IMAP) over any
//! stream: it writes what a test says, reads lines with a time limit, and
//! groups them into replies by the protocol's rule for a reply's last line.

use crate::TIMEOUT;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

/// What [`LineClient::replies`] gives for a connection the server closed.
pub const CLOSED: &str = "<closed>";

/// What ends a reply: the line after which the server waits for the
/// client. Lines that are not final (continuations, untagged data, the
/// body of a multi-line response) are read and skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// SMTP and LMTP (RFC 5321 §4.2.1): `ddd SP text` or a bare `ddd`
    /// ends a reply, `ddd-text` continues it.
    Smtp,
    /// POP3 (RFC 1939 §3): each status line, `+OK` or `-ERR`, and a SASL
    /// continuation `+ ` (RFC 5034). The body of a multi-line response is
    /// skipped; test data must not start a body line with `+` or `-ERR`.
    Pop3,
    /// IMAP (RFC 9051 §2.2.2): a tagged status line or a continuation
    /// request `+`; untagged `*` lines are skipped. Literal data in a
    /// response is read as lines too: keep tagged-looking lines out of it.
    Imap,
}

impl Protocol {
    /// Whether `line` (without its CRLF) ends a reply.
    pub fn is_final(self, line: &str) -> bool {
        let b = line.as_bytes();
        match self {
            Protocol::Smtp => {
                b.len() >= 3
                    && b[..3].iter().all(u8::is_ascii_digit)
                    && matches!(b.get(3), None | Some(b' '))
            }
            Protocol::Pop3 => line.starts_with('+') || line.starts_with("-ERR"),
            Protocol::Imap => !line.is_empty() && !line.starts_with("* "),
        }
    }
}

/// A client end of a line protocol.
pub struct LineClient<S> {
    r: BufReader<S>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> LineClient<S> {
    pub fn new(stream: S) -> Self {
        LineClient {
            r: BufReader::new(stream),
        }
    }

    /// Writes `bytes` as they are (several commands in one call arrive
    /// pipelined).
    pub async fn send(&mut self, bytes: &[u8]) {
        let w = self.r.get_mut();
        w.write_all(bytes).await.expect("the server reads");
        w.flush().await.expect("the server reads");
    }

    /// Closes the writing side (the server reads end of stream).
    pub async fn shutdown(&mut self) {
        self.r.get_mut().shutdown().await.expect("shutdown");
    }

    /// Writes `line` and CRLF.
    pub async fn send_line(&mut self, line: &str) {
        self.send(format!("{line}\r\n").as_bytes()).await;
    }

    /// One line as it came, with its line ending; empty at end of stream.
    pub async fn raw_line(&mut self) -> Vec<u8> {
        let mut v = Vec::new();
        tokio::time::timeout(TIMEOUT, self.r.read_until(b'\n', &mut v))
            .await
            .expect("a line from the server in time")
            .expect("reading from the server");
        v
    }

    /// The next line without its CRLF (lossy UTF-8); `None` once the
    /// server has closed. A line that does not end in CRLF fails the test.
    pub async fn next_line(&mut self) -> Option<String> {
        let l = self.raw_line().await;
        if l.is_empty() {
            return None;
        }
        let Some(text) = l.strip_suffix(b"\r\n") else {
            panic!("not a CRLF line: {:?}", String::from_utf8_lossy(&l));
        };
        Some(String::from_utf8_lossy(text).into_owned())
    }

    /// The next line; the server must not have closed.
    pub async fn line(&mut self) -> String {
        self.next_line()
            .await
            .expect("a line, but the server hung up")
    }

    /// The lines of replies until `n` final ones (see [`Protocol`]) have
    /// come; only the final lines are returned. If the server closes
    /// first, the last entry is [`CLOSED`].
    pub async fn replies(&mut self, p: Protocol, n: usize) -> Vec<String> {
        let mut finals = Vec::with_capacity(n);
        while finals.len() < n {
            match self.next_line().await {
                Some(l) if p.is_final(&l) => finals.push(l),
                Some(_) => {}
                None => {
                    finals.push(CLOSED.to_string());
                    break;
                }
            }
        }
        finals
    }

    /// Reads `expect.len()` replies and checks that each starts with its
    /// prefix (an expected [`CLOSED`] matches a hang-up); returns them.
    pub async fn expect(&mut self, p: Protocol, expect: &[&str]) -> Vec<String> {
        let got = self.replies(p, expect.len()).await;
        check(&got, expect, "");
        got
    }

    /// IMAP: sends `tag command`, returns the lines up to and with the
    /// tagged status line.
    pub async fn command(&mut self, tag: &str, command: &str) -> Vec<String> {
        self.send_line(&format!("{tag} {command}")).await;
        self.until_tagged(tag).await
    }

    /// IMAP: the lines up to and with the one tagged `tag`.
    pub async fn until_tagged(&mut self, tag: &str) -> Vec<String> {
        let mut out = Vec::new();
        loop {
            let l = self.line().await;
            let done = l.strip_prefix(tag).is_some_and(|r| r.starts_with(' '));
            out.push(l);
            if done {
                return out;
            }
        }
    }

    /// POP3: the body of a multi-line response as sent (still
    /// dot-stuffed, each line with its CRLF), up to the lone `.`.
    pub async fn dot_body(&mut self) -> Vec<u8> {
        let mut body = Vec::new();
        loop {
            let l = self.raw_line().await;
            assert!(!l.is_empty(), "end of stream inside a multi-line response");
            if l == b".\r\n" {
                return body;
            }
            body.extend_from_slice(&l);
        }
    }

    /// Checks that the server hangs up now.
    pub async fn eof(&mut self) {
        let l = self.raw_line().await;
        assert!(
            l.is_empty(),
            "expected the server to hang up, got {:?}",
            String::from_utf8_lossy(&l)
        );
    }

    /// The stream, for a TLS handshake after STARTTLS/STLS. Nothing may
    /// be buffered: the server speaks no more before the handshake.
    pub fn into_inner(self) -> S {
        assert!(
            self.r.buffer().is_empty(),
            "bytes after the reply to STARTTLS: {:?}",
            String::from_utf8_lossy(self.r.buffer())
        );
        self.r.into_inner()
    }
}

/// Checks that reply `i` of `got` starts with `expect[i]`, for every `i`;
/// `context` (what was sent) goes into the failure message.
pub(crate) fn check(got: &[String], expect: &[&str], context: &str) {
    for (i, e) in expect.iter().enumerate() {
        let g = got.get(i).map_or(CLOSED, String::as_str);
        assert!(
            g.starts_with(e),
            "{context}reply {} should start with {e:?}, got {g:?} (all: {got:?})",
            i + 1
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_lines_of_each_protocol() {
        let cases: &[(Protocol, &str, bool)] = &[
            (Protocol::Smtp, "250 OK", true),
            (Protocol::Smtp, "354", true),
            (Protocol::Smtp, "250-PIPELINING", false),
            (Protocol::Smtp, "25 x", false),
            (Protocol::Pop3, "+OK 2 messages", true),
            (Protocol::Pop3, "-ERR no such message", true),
            (Protocol::Pop3, "+ ", true),
            (Protocol::Pop3, "1 120", false),
            (Protocol::Imap, "a1 OK done", true),
            (Protocol::Imap, "+ go ahead", true),
            (Protocol::Imap, "* 3 EXISTS", false),
        ];
        for &(p, line, want) in cases {
            assert_eq!(p.is_final(line), want, "{p:?} {line:?}");
        }
    }

    #[tokio::test]
    async fn replies_skip_continuations_and_see_a_hang_up() {
        let (a, mut b) = tokio::io::duplex(1024);
        b.write_all(b"250-one\r\n250 two\r\n* 1 EXISTS\r\na OK x\r\n")
            .await
            .unwrap();
        drop(b);
        let mut c = LineClient::new(a);
        assert_eq!(c.replies(Protocol::Smtp, 1).await, ["250 two"]);
        assert_eq!(c.until_tagged("a").await, ["* 1 EXISTS", "a OK x"]);
        assert_eq!(c.replies(Protocol::Smtp, 2).await, [CLOSED]);
    }

    #[tokio::test]
    async fn a_multi_line_body_stays_stuffed() {
        let (a, mut b) = tokio::io::duplex(1024);
        b.write_all(b"+OK\r\n..x\r\ny\r\n.\r\n").await.unwrap();
        let mut c = LineClient::new(a);
        assert_eq!(c.line().await, "+OK");
        assert_eq!(c.dot_body().await, b"..x\r\ny\r\n");
        drop(b);
        c.eof().await;
    }
}
