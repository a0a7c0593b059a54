//! `sendmail -bs`: SMTP on stdin/stdout (RFC 5321), for programs that
//! submit mail by speaking SMTP to a pipe. The protocol is facteur's one
//! SMTP core (facteur-smtp-server); this file is its handler and the
//! bridge from the standard streams to the core's async I/O.
//!
//! Offers: [`session`], over any `Read` + `Write` so tests run it in
//! memory; the caller passes the functions that complete an address
//! (`user` -> `user@hostname`) and queue a finished transaction.
//!
//! A bare LF inside DATA is made a CRLF: the client is a local program,
//! and the message is re-framed into network form here, not relayed as is
//! ([`BareLineEndings::Accept`]). No STARTTLS, no AUTH: the client is the
//! invoking user, already known.
//!
//! Security: runs as the invoking user, with that user's rights only;
//! memory is bounded by the line limit and the message size limit.

use facteur_daemon::conn::Conn;
use facteur_mail::dsn::Ret;
use facteur_smtp_codec::{MailFrom, RcptTo, Reply};
use facteur_smtp_server::{
    BareLineEndings, Content, Dialect, Handler, Limits, Peer, ReplyFuture, SessionInfo, Sink, Txn,
};
use facteur_spool::Recipient;
use std::io::{self, Read, Write};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;

/// A finished SMTP transaction, ready to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    pub sender: String,
    pub recipients: Vec<Recipient>,
    pub ret: Option<Ret>,
    pub envid: Option<String>,
    pub eight_bit: bool,
    pub smtputf8: bool,
    /// The message, network form, dot-unstuffed.
    pub data: Vec<u8>,
}

const MAX_LINE: usize = 4096;

/// Makes every bare LF a CRLF.
fn crlf(data: Vec<u8>) -> Vec<u8> {
    let bare = |i: usize| data[i] == b'\n' && (i == 0 || data[i - 1] != b'\r');
    if !(0..data.len()).any(bare) {
        return data;
    }
    let mut out = Vec::with_capacity(data.len() + 64);
    for (i, &b) in data.iter().enumerate() {
        if bare(i) {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

/// Completes or refuses an address.
pub type Normalize<'a> = &'a (dyn Fn(&str) -> Result<String, String> + Sync);
/// Queues a transaction: the queue id, or why it failed (a 451).
pub type Submit<'a> = &'a (dyn Fn(Transaction) -> Result<String, String> + Sync);

struct Bs<'a> {
    hostname: String,
    limits: std::sync::Arc<Limits>,
    normalize: Normalize<'a>,
    submit: Submit<'a>,
}

/// The message while it arrives (bounded by the size limit: past it the
/// core stops handing bytes over).
struct Buffer(Vec<u8>);

impl Content for Buffer {
    fn reader(&mut self) -> io::Result<Box<dyn Read + Send + '_>> {
        Ok(Box::new(&self.0[..]))
    }
}

impl Sink for Buffer {
    fn push(&mut self, b: &[u8]) -> io::Result<()> {
        self.0.extend_from_slice(b);
        Ok(())
    }
    fn abort(self) {}
}

impl Handler for Bs<'_> {
    type Rcpt = Recipient;
    type Sink = Buffer;

    fn dialect(&self) -> Dialect {
        Dialect::Smtp
    }
    fn greeting(&self) -> String {
        format!("{} ESMTP facteur sendmail", self.hostname)
    }
    fn hostname(&self) -> &str {
        &self.hostname
    }
    fn limits(&self) -> std::sync::Arc<Limits> {
        std::sync::Arc::clone(&self.limits)
    }
    fn extensions(&self, _s: &SessionInfo) -> Vec<String> {
        vec!["DSN".into()]
    }
    fn normalize_sender(&self, address: &str) -> Result<String, Reply> {
        (self.normalize)(address)
            .map_err(|e| Reply::new(501, (5, 1, 7), format!("Bad sender address: {e}")))
    }
    fn normalize_recipient(&self, address: &str) -> Result<String, Reply> {
        (self.normalize)(address)
            .map_err(|e| Reply::new(501, (5, 1, 3), format!("Bad recipient address: {e}")))
    }
    async fn mail(&self, _s: &SessionInfo, _from: &MailFrom) -> Result<(), Reply> {
        Ok(())
    }
    async fn rcpt(
        &self,
        _s: &SessionInfo,
        _t: &Txn<Recipient>,
        to: &RcptTo,
    ) -> Result<(Recipient, Reply), Reply> {
        let r = Recipient {
            address: to.address.clone(),
            orcpt: to.params.orcpt.as_ref().map(|o| format!("rfc822;{o}")),
            notify: to.params.notify,
            ..Recipient::default()
        };
        Ok((r, Reply::new(250, (2, 1, 5), "Ok")))
    }
    fn open(&self, _s: &SessionInfo, _t: &Txn<Recipient>) -> Result<Buffer, Reply> {
        Ok(Buffer(Vec::new()))
    }
    async fn finish(
        &self,
        _s: &SessionInfo,
        txn: Txn<Recipient>,
        msg: Buffer,
        _size: u64,
    ) -> Vec<ReplyFuture> {
        let p = &txn.mail.params;
        let t = Transaction {
            sender: txn.mail.address.clone(),
            recipients: txn.rcpts.into_iter().map(|(_, r)| r).collect(),
            ret: p.ret,
            envid: p.envid.clone(),
            eight_bit: p
                .body
                .is_some_and(|b| b != facteur_mail::dsn::BodyType::SevenBit),
            smtputf8: p.smtputf8,
            data: crlf(msg.0),
        };
        let r = match (self.submit)(t) {
            Ok(id) => Reply::new(250, (2, 0, 0), format!("Ok: queued as {id}")),
            Err(e) => Reply::new(451, (4, 3, 0), format!("Not queued: {e}")),
        };
        vec![Box::pin(std::future::ready(r))]
    }
}

/// The input as an async stream: a thread reads it (a blocking read that
/// nothing can interrupt, so the thread is left to end at EOF or with the
/// process) and hands the chunks over.
struct Input {
    rx: mpsc::Receiver<io::Result<Vec<u8>>>,
    chunk: Vec<u8>,
    pos: usize,
}

impl Input {
    fn start(mut input: impl Read + Send + 'static) -> Input {
        let (tx, rx) = mpsc::channel(4);
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 8192];
            loop {
                let r = match input.read(&mut buf) {
                    Ok(n) => Ok(buf[..n].to_vec()),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => Err(e),
                };
                let end = !matches!(&r, Ok(v) if !v.is_empty());
                if tx.blocking_send(r).is_err() || end {
                    return;
                }
            }
        });
        Input {
            rx,
            chunk: Vec::new(),
            pos: 0,
        }
    }
}

impl AsyncRead for Input {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.pos == self.chunk.len() {
            match self.rx.poll_recv(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e)),
                Poll::Ready(Some(Ok(c))) => {
                    self.chunk = c;
                    self.pos = 0;
                }
            }
        }
        let n = (self.chunk.len() - self.pos).min(buf.remaining());
        let pos = self.pos;
        buf.put_slice(&self.chunk[pos..pos + n]);
        self.pos += n;
        Poll::Ready(Ok(()))
    }
}

/// The output, written as the core flushes (a pipe to the client: a write
/// that blocks is the client not reading, as with any SMTP server).
struct Output<W>(W);

impl<W: Write + Unpin> AsyncWrite for Output<W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(self.0.write(buf))
    }
    fn poll_flush(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.0.flush())
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.0.flush())
    }
}

/// Runs one SMTP session on `input`/`output` until QUIT or EOF.
pub fn session(
    input: impl Read + Send + 'static,
    output: impl Write + Unpin,
    hostname: &str,
    max_size: u64,
    normalize: Normalize<'_>,
    submit: Submit<'_>,
) -> io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let handler = std::sync::Arc::new(Bs {
        hostname: hostname.to_string(),
        limits: std::sync::Arc::new(Limits {
            max_line_length: MAX_LINE,
            max_message_size: max_size,
            max_recipients: 10_000,
            max_errors: 100,
            // A local program: no idle limit worth the name.
            timeout: Duration::from_secs(3600),
            bare_line_endings: BareLineEndings::Accept,
        }),
        normalize,
        submit,
    });
    let stream = tokio::io::join(Input::start(input), Output(output));
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    rt.block_on(facteur_smtp_server::serve(
        handler,
        Conn::Plain(stream),
        Peer::Local("stdin".into()),
        "sendmail",
        stop_rx,
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(a: &str) -> Result<String, String> {
        crate::normalize_address(a, "host.example")
    }

    /// Runs a session over `input`; returns the server's output and the
    /// queued transactions.
    fn run(input: &str) -> (String, Vec<Transaction>) {
        let mut out = Vec::new();
        let got = std::sync::Mutex::new(Vec::new());
        let submit = |t: Transaction| {
            let mut g = got.lock().unwrap();
            g.push(t);
            Ok(format!("ID{}", g.len()))
        };
        session(
            std::io::Cursor::new(input.as_bytes().to_vec()),
            &mut out,
            "host.example",
            1000,
            &norm,
            &submit,
        )
        .unwrap();
        (String::from_utf8(out).unwrap(), got.into_inner().unwrap())
    }

    fn codes(out: &str) -> Vec<&str> {
        out.lines()
            .filter(|l| l.as_bytes().get(3) == Some(&b' '))
            .map(|l| &l[..3])
            .collect()
    }

    #[test]
    fn transcript_one_message() {
        let (out, got) = run(
            "EHLO client\r\nMAIL FROM:<me@a.example> BODY=8BITMIME\r\nRCPT TO:<you@b.example> NOTIFY=FAILURE\r\n\
RCPT TO:<root@host.example>\r\nDATA\r\nSubject: hi\r\n\r\n..dotted\r\nline\r\n.\r\nQUIT\r\n",
        );
        assert_eq!(
            codes(&out),
            ["220", "250", "250", "250", "250", "354", "250", "221"],
            "{out}"
        );
        assert!(out.contains("250 2.0.0 Ok: queued as ID1"));
        assert!(out.contains("250-8BITMIME\r\n"));
        assert_eq!(got.len(), 1);
        let t = &got[0];
        assert_eq!(t.sender, "me@a.example");
        assert_eq!(t.recipients[0].address, "you@b.example");
        assert!(t.recipients[0].notify.failure);
        assert_eq!(t.recipients[1].address, "root@host.example");
        assert!(t.eight_bit);
        assert_eq!(t.data, b"Subject: hi\r\n\r\n.dotted\r\nline\r\n");
    }

    #[test]
    fn transcript_errors_and_reset() {
        let (out, got) = run(
            "MAIL FROM:<a@b.example>\r\nHELO c\r\nRCPT TO:<x@y.example>\r\nDATA\r\nMAIL FROM:<>\r\n\
MAIL FROM:<>\r\nDATA\r\nRCPT TO:<bad@@x>\r\nRSET\r\nRCPT TO:<x@y.example>\r\nNOOP\r\nVRFY root\r\n\
STARTTLS\r\nBOGUS\r\nQUIT\r\n",
        );
        assert_eq!(
            codes(&out),
            [
                "220", "503", "250", "503", "503", "250", "503", "503", "501", "250", "503", "250",
                "252", "502", "500", "221"
            ],
            "{out}"
        );
        assert!(got.is_empty());
    }

    #[test]
    fn two_messages_pipelined_and_null_sender() {
        let (out, got) = run(
            "HELO c\r\nMAIL FROM:<>\r\nRCPT TO:<a@x.example>\r\nDATA\r\nA\r\n.\r\n\
MAIL FROM:<b@x.example>\r\nRCPT TO:<c@x.example>\r\nDATA\r\nbare\nlf\r\n.\r\n",
        );
        assert_eq!(
            codes(&out),
            [
                "220", "250", "250", "250", "354", "250", "250", "250", "354", "250"
            ]
        );
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].sender, "");
        assert_eq!(got[0].data, b"A\r\n");
        assert_eq!(got[1].data, b"bare\r\nlf\r\n");
    }

    #[test]
    fn too_big_and_eof_in_data() {
        let big = "x".repeat(2000);
        let (out, got) = run(&format!(
            "HELO c\r\nMAIL FROM:<>\r\nRCPT TO:<a@x.example>\r\nDATA\r\n{big}\r\n.\r\nMAIL FROM:<> SIZE=5000\r\n\
MAIL FROM:<>\r\nRCPT TO:<a@x.example>\r\nDATA\r\nunfinished"
        ));
        assert_eq!(
            codes(&out),
            [
                "220", "250", "250", "250", "354", "552", "552", "250", "250", "354"
            ],
            "{out}"
        );
        assert!(got.is_empty());
    }

    #[test]
    fn lf_fixing() {
        assert_eq!(crlf(b"a\r\nb".to_vec()), b"a\r\nb");
        assert_eq!(crlf(b"\na\nb\r\n".to_vec()), b"\r\na\r\nb\r\n");
    }
}
