//! Transcript tests of the core with a toy handler: a sink in memory that
//! can be told to fail, run over an in-memory pipe.

#![allow(clippy::unwrap_used)]

use super::*;
use facteur_daemon::conn::Conn;
use facteur_smtp_codec::{MailFrom, RcptTo, Reply};
use facteur_testkit::{Protocol, Session, Step};
use std::io::{self, Read};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A message the toy kept: sender, recipients, bytes.
type Kept = (String, Vec<String>, Vec<u8>);

#[derive(Default)]
struct Toy {
    lmtp: bool,
    /// `open` fails.
    fail_open: bool,
    /// `push` fails once the sink holds this many bytes.
    fail_after: Option<usize>,
    /// The sink takes header fields from checks.
    prepends: bool,
    checks: Vec<Arc<dyn Check>>,
    /// Messages made durable: (sender, recipients, bytes).
    kept: Mutex<Vec<Kept>>,
    limits: Option<Limits>,
    /// The pregreet test's wait and its verdict on an early talker.
    pregreet: Option<(Duration, Verdict)>,
    /// What `pregreet_done` saw: was the client an early talker?
    pregreet_seen: Mutex<Option<bool>>,
}

struct ToySink {
    bytes: Vec<u8>,
    fail_after: Option<usize>,
    /// Takes the checks' header fields (else the trait's default refuses).
    prepends: bool,
}

impl Content for ToySink {
    fn reader(&mut self) -> io::Result<Box<dyn Read + Send + '_>> {
        Ok(Box::new(&self.bytes[..]))
    }
}

impl Sink for ToySink {
    fn push(&mut self, b: &[u8]) -> io::Result<()> {
        if self
            .fail_after
            .is_some_and(|n| self.bytes.len() + b.len() > n)
        {
            return Err(io::Error::from_raw_os_error(28)); // ENOSPC
        }
        self.bytes.extend_from_slice(b);
        Ok(())
    }
    fn prepend(&mut self, fields: &[u8]) -> io::Result<()> {
        if !self.prepends {
            return Err(io::Error::new(io::ErrorKind::Unsupported, "no"));
        }
        self.bytes.splice(0..0, fields.iter().copied());
        Ok(())
    }
    fn abort(self) {}
}

const LIMITS: Limits = Limits {
    max_line_length: 512,
    max_message_size: 1000,
    max_recipients: 3,
    max_errors: 10,
    timeout: Duration::from_secs(5),
    bare_line_endings: BareLineEndings::Refuse,
};

impl Handler for Toy {
    type Rcpt = ();
    type Sink = ToySink;
    fn dialect(&self) -> Dialect {
        if self.lmtp {
            Dialect::Lmtp
        } else {
            Dialect::Smtp
        }
    }
    fn greeting(&self) -> String {
        "toy.test ESMTP".into()
    }
    fn hostname(&self) -> &str {
        "toy.test"
    }
    fn limits(&self) -> Arc<Limits> {
        Arc::new(self.limits.clone().unwrap_or(LIMITS))
    }
    fn checks(&self) -> &[Arc<dyn Check>] {
        &self.checks
    }
    async fn pregreet(&self, _s: &SessionInfo) -> Option<Duration> {
        self.pregreet.as_ref().map(|p| p.0)
    }
    fn pregreet_done(&self, s: &SessionInfo) -> Verdict {
        *self.pregreet_seen.lock().unwrap() = Some(s.early_talker);
        match &self.pregreet {
            Some((_, v)) if s.early_talker => v.clone(),
            _ => Verdict::Accept,
        }
    }
    async fn mail(&self, _s: &SessionInfo, _from: &MailFrom) -> Result<(), Reply> {
        Ok(())
    }
    async fn rcpt(
        &self,
        _s: &SessionInfo,
        _t: &Txn<()>,
        to: &RcptTo,
    ) -> Result<((), Reply), Reply> {
        if to.address.starts_with("nobody@") {
            return Err(Reply::new(550, (5, 1, 1), "no such user"));
        }
        Ok(((), Reply::new(250, (2, 1, 5), "OK")))
    }
    fn open(&self, _s: &SessionInfo, _t: &Txn<()>) -> Result<ToySink, Reply> {
        if self.fail_open {
            return Err(Reply::new(451, (4, 3, 0), "cannot open"));
        }
        Ok(ToySink {
            bytes: Vec::new(),
            fail_after: self.fail_after,
            prepends: self.prepends,
        })
    }
    async fn finish(
        &self,
        _s: &SessionInfo,
        txn: Txn<()>,
        sink: ToySink,
        _size: u64,
    ) -> Vec<ReplyFuture> {
        let rcpts: Vec<String> = txn.rcpts.iter().map(|(r, _)| r.address.clone()).collect();
        let n = if self.lmtp { rcpts.len() } else { 1 };
        self.kept
            .lock()
            .unwrap()
            .push((txn.mail.address.clone(), rcpts, sink.bytes));
        (0..n)
            .map(|_| {
                Box::pin(std::future::ready(Reply::new(250, (2, 0, 0), "kept"))) as ReplyFuture
            })
            .collect()
    }
}

/// A session with the toy from `ip`.
fn session(h: &Arc<Toy>, ip: &str) -> Session {
    let (h, peer) = (Arc::clone(h), Peer::Ip(ip.parse().unwrap()));
    Session::start(|io, stop| serve(h, Conn::Plain(io), peer, "test", stop))
}

/// Runs a session: the greeting, then for each step, sends the bytes and
/// checks that the replies start with the expected strings.
async fn transcript(h: Toy, steps: &[Step<'_>]) -> Arc<Toy> {
    let h = Arc::new(h);
    session(&h, "192.0.2.1")
        .transcript(Protocol::Smtp, "220 toy.test", steps)
        .await;
    h
}

#[tokio::test]
async fn pipelined_transaction_and_bdat() {
    let h = transcript(
        Toy::default(),
        &[
            (
                b"EHLO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nRCPT TO:<nobody@x.test>\r\nDATA\r\n",
                &["250", "250 2.1.0", "250 2.1.5", "550 5.1.1", "354"],
            ),
            (b"Subject: 1\r\n\r\nhi\r\n.\r\n", &["250 2.0.0 kept"]),
            (
                b"MAIL FROM:<> BODY=8BITMIME\r\nRCPT TO:<b@x.test>\r\nBDAT 5\r\nab\r\ncBDAT 5 LAST\r\nd\r\n\r\n",
                &["250", "250", "250 2.0.0 5 octets", "250 2.0.0 kept"],
            ),
        ],
    )
    .await;
    let kept = h.kept.lock().unwrap();
    assert_eq!(kept.len(), 2);
    assert_eq!(kept[0].2, b"Subject: 1\r\n\r\nhi\r\n");
    assert_eq!(kept[0].1, vec!["b@x.test"]);
    // A CRLF split across chunks is no bare line ending.
    assert_eq!(kept[1].2, b"ab\r\ncd\r\n\r\n");
}

#[tokio::test]
async fn lmtp_answers_per_recipient() {
    let h = transcript(
        Toy {
            lmtp: true,
            ..Toy::default()
        },
        &[
            (b"EHLO c\r\n", &["500 5.5.1"]),
            (
                b"LHLO c\r\nMAIL FROM:<a@x.test> XQUEUEID=ABC123\r\nRCPT TO:<b@x.test>\r\nRCPT TO:<c@x.test>\r\nDATA\r\n",
                &["250", "250", "250", "250", "354"],
            ),
            (b"x\r\n.\r\n", &["250 2.0.0 kept", "250 2.0.0 kept"]),
        ],
    )
    .await;
    assert_eq!(h.kept.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn smtp_refuses_xqueueid_and_bad_sequences() {
    transcript(
        Toy::default(),
        &[
            (b"MAIL FROM:<a@x.test>\r\n", &["503 5.5.1"]),
            (b"EHLO c\r\n", &["250"]),
            (b"MAIL FROM:<a@x.test> XQUEUEID=ABC\r\n", &["555"]),
            (b"RCPT TO:<b@x.test>\r\n", &["503"]),
            (b"DATA\r\n", &["503"]),
            (b"MAIL FROM:<a@x.test> SIZE=1001\r\n", &["552 5.3.4"]),
            (b"MAIL FROM:<a@x.test> BODY=BINARYMIME\r\n", &["555 5.5.4"]),
            (b"RSET\r\nHELO c\r\nQUIT\r\n", &["250", "250", "221"]),
        ],
    )
    .await;
}

#[tokio::test]
async fn a_chunk_that_cannot_be_stored_fails_the_transaction_with_a_4xx() {
    // Bug 1 of issue 13: lmtpd answered 552 5.3.4 (permanent) to a chunk it
    // could not buffer, then 552 to every recipient at BDAT LAST.
    let h = transcript(
        Toy {
            lmtp: true,
            fail_after: Some(4),
            ..Toy::default()
        },
        &[(
            b"LHLO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nRCPT TO:<c@x.test>\r\nBDAT 3\r\nabcBDAT 3\r\ndefBDAT 2 LAST\r\ngh",
            &[
                "250", "250", "250", "250", "250 2.0.0 3 octets", "452 4.3.1", "452 4.3.1",
                "452 4.3.1",
            ],
        )],
    )
    .await;
    assert!(h.kept.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_message_whose_sink_cannot_open_is_never_accepted() {
    // Bug 2 of issue 13: when the queue file could not be created at the
    // first chunk, smtpd went on and answered 250 to BDAT LAST for a
    // message without its first chunk.
    let h = transcript(
        Toy {
            fail_open: true,
            ..Toy::default()
        },
        &[
            (
                b"EHLO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nBDAT 3\r\nabcBDAT 3\r\ndefBDAT 2 LAST\r\ngh",
                &["250", "250", "250", "451 4.3.0", "451 4.3.0", "451 4.3.0"],
            ),
            // The transaction is over; a new one may start.
            (b"MAIL FROM:<a@x.test>\r\n", &["250"]),
        ],
    )
    .await;
    assert!(h.kept.lock().unwrap().is_empty());
}

#[tokio::test]
async fn data_that_cannot_be_stored_is_a_temporary_failure() {
    transcript(
        Toy {
            fail_after: Some(3),
            ..Toy::default()
        },
        &[(
            b"EHLO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nDATA\r\nabcdef\r\n.\r\nNOOP\r\n",
            &["250", "250", "250", "354", "452 4.3.1", "250"],
        )],
    )
    .await;
}

#[tokio::test]
async fn bdat_size_that_overflows_closes_the_connection() {
    // smtp-proto 0.2.5 read this as a 999-byte chunk and ran the bytes
    // after it as commands.
    let h = transcript(
        Toy::default(),
        &[(
            b"EHLO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nBDAT 99999999999999999999999 LAST\r\nRSET\r\nMAIL FROM:<evil@x.test>\r\n",
            &["250", "250", "250", "552 5.3.4", "<closed>"],
        )],
    )
    .await;
    assert!(h.kept.lock().unwrap().is_empty());
}

#[tokio::test]
async fn too_big_and_bare_line_endings() {
    let mut big = b"EHLO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nDATA\r\n".to_vec();
    big.extend(std::iter::repeat_n(b'x', 2000));
    big.extend_from_slice(b"\r\n.\r\n");
    transcript(
        Toy::default(),
        &[
            (&big, &["250", "250", "250", "354", "552 5.3.4"]),
            (
                b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nDATA\r\na\n.\nb\r\n.\r\n",
                &["250", "250", "354", "550 5.6.0"],
            ),
            (
                b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nBDAT 3 LAST\r\na\nb",
                &["250", "250", "550 5.6.0"],
            ),
        ],
    )
    .await;
}

struct DenyBody;
impl Check for DenyBody {
    fn name(&self) -> &'static str {
        "deny-body"
    }
    fn mail<'a>(&'a self, _s: &'a SessionInfo, from: &'a MailFrom) -> CheckFuture<'a> {
        let v = if from.address.starts_with("spammer@") {
            Verdict::Reject(Reply::new(550, (5, 7, 1), "go away"))
        } else {
            Verdict::Accept
        };
        Box::pin(std::future::ready(v))
    }
    fn data<'a>(&'a self, _s: &'a SessionInfo, mut m: Message<'a>) -> CheckFuture<'a> {
        let mut text = String::new();
        let v = match m.reader().and_then(|mut r| r.read_to_string(&mut text)) {
            Ok(_) if text.contains("VIRUS") => {
                Verdict::Reject(Reply::new(554, (5, 7, 1), "infected"))
            }
            Ok(_) => Verdict::Accept,
            Err(_) => Verdict::Reject(Reply::new(451, (4, 3, 0), "cannot read")),
        };
        Box::pin(std::future::ready(v))
    }
}

#[tokio::test]
async fn checks_run_at_their_stage() {
    let h = transcript(
        Toy {
            checks: vec![Arc::new(DenyBody)],
            ..Toy::default()
        },
        &[
            (
                b"EHLO c\r\nMAIL FROM:<spammer@x.test>\r\n",
                &["250", "550 5.7.1 go away"],
            ),
            (
                b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nDATA\r\nVIRUS\r\n.\r\n",
                &["250", "250", "354", "554 5.7.1 infected"],
            ),
            (
                b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nDATA\r\nclean\r\n.\r\n",
                &["250", "250", "354", "250 2.0.0 kept"],
            ),
        ],
    )
    .await;
    assert_eq!(h.kept.lock().unwrap().len(), 1);
}

struct Banned;
impl Check for Banned {
    fn name(&self) -> &'static str {
        "banned"
    }
    fn connect<'a>(&'a self, _s: &'a SessionInfo) -> CheckFuture<'a> {
        Box::pin(std::future::ready(Verdict::Reject(Reply::new(
            554,
            (5, 7, 1),
            "not here",
        ))))
    }
}

#[tokio::test]
async fn a_refused_client_gets_503_until_quit() {
    let h = Arc::new(Toy {
        checks: vec![Arc::new(Banned)],
        ..Toy::default()
    });
    session(&h, "192.0.2.9")
        .transcript(
            Protocol::Smtp,
            "554 5.7.1 not here",
            &[(b"EHLO c\r\nQUIT\r\n", &["503", "221"])],
        )
        .await;
}

#[tokio::test]
async fn early_talker_is_seen() {
    struct Seen(Mutex<Option<bool>>);
    impl Check for Seen {
        fn name(&self) -> &'static str {
            "seen"
        }
        fn helo<'a>(&'a self, s: &'a SessionInfo, _n: &'a str) -> CheckFuture<'a> {
            *self.0.lock().unwrap() = Some(s.early_talker);
            Box::pin(std::future::ready(Verdict::Accept))
        }
    }
    let seen = Arc::new(Seen(Mutex::new(None)));
    let h = Arc::new(Toy {
        checks: vec![Arc::clone(&seen) as Arc<dyn Check>],
        ..Toy::default()
    });
    // The client speaks before the greeting.
    let mut s = Session::start_after(b"EHLO eager\r\nQUIT\r\n", |io, stop| {
        let peer = Peer::Ip("192.0.2.9".parse().unwrap());
        serve(Arc::clone(&h), Conn::Plain(io), peer, "test", stop)
    })
    .await;
    let got = s.client.replies(Protocol::Smtp, 3).await;
    assert!(got[2].starts_with("221"), "{got:?}");
    s.end().await;
    assert_eq!(*seen.0.lock().unwrap(), Some(true));
}

#[tokio::test]
async fn a_message_received_forgives_junk_commands() {
    // A pooled LMTP connection: an RSET before each of 300 messages (past
    // 100 junk commands and 10 errors if nothing were forgiven).
    let mut steps: Vec<(&[u8], &[&str])> = vec![(b"LHLO c\r\n", &["250"])];
    let txn: &[u8] = b"RSET\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nDATA\r\nx\r\n.\r\n";
    for _ in 0..300 {
        steps.push((txn, &["250", "250", "250", "354", "250 2.0.0 kept"]));
    }
    let h = transcript(
        Toy {
            lmtp: true,
            ..Toy::default()
        },
        &steps,
    )
    .await;
    assert_eq!(h.kept.lock().unwrap().len(), 300);
}

#[tokio::test]
async fn endless_noops_end_the_session() {
    // 100 NOOPs are free; past them each counts as an error (10 allowed).
    let mut send = b"EHLO c\r\n".to_vec();
    for _ in 0..111 {
        send.extend_from_slice(b"NOOP\r\n");
    }
    let mut expect = vec!["250"; 111];
    expect.push("421 4.7.0");
    transcript(Toy::default(), &[(&send, &expect)]).await;
}

/// Learns the HELO name at HELO (a note), and at the end of data adds it
/// in a header field, with a field that must be refused.
struct Annotate;
#[derive(Debug)]
struct HeloNote(String);
impl Check for Annotate {
    fn name(&self) -> &'static str {
        "annotate"
    }
    fn helo<'a>(&'a self, s: &'a SessionInfo, name: &'a str) -> CheckFuture<'a> {
        s.notes.set(HeloNote(name.to_string()));
        Box::pin(std::future::ready(Verdict::Accept))
    }
    fn data<'a>(&'a self, s: &'a SessionInfo, mut m: Message<'a>) -> CheckFuture<'a> {
        let helo = s.notes.get::<HeloNote>().map(|n| n.0.clone());
        assert!(m.add_header(&format!(
            "X-Helo: {}\r\n\tfolded",
            helo.as_deref().unwrap_or("?")
        )));
        // Peer data that would smuggle a field or end the header section.
        for bad in [
            "X-Evil: a\r\nBcc: x@y",
            "X-Evil: a\r\n\r\nbody",
            "X-Evil: a\nb",
            "No colon",
            "X-Evil: a\r\n \r\n\tb",
            ": empty name",
            "X-Evil: nul\0",
        ] {
            assert!(!m.add_header(bad), "{bad:?}");
        }
        assert!(!m.add_header(&format!("X-Big: {}", "x".repeat(MAX_ADDED_HEADERS))));
        Box::pin(std::future::ready(Verdict::Accept))
    }
}

#[tokio::test]
async fn notes_carry_to_the_end_of_data_and_fields_go_above_the_message() {
    let h = transcript(
        Toy {
            checks: vec![Arc::new(Annotate)],
            prepends: true,
            ..Toy::default()
        },
        &[(
            b"EHLO client.test\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nDATA\r\nSubject: s\r\n\r\nbody\r\n.\r\n",
            &["250", "250", "250", "354", "250 2.0.0 kept"],
        )],
    )
    .await;
    let kept = h.kept.lock().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&kept[0].2),
        "X-Helo: client.test\r\n\tfolded\r\nSubject: s\r\n\r\nbody\r\n"
    );
}

#[tokio::test]
async fn a_sink_that_cannot_take_fields_fails_the_message_with_a_4xx() {
    let h = transcript(
        Toy {
            checks: vec![Arc::new(Annotate)],
            ..Toy::default()
        },
        &[(
            b"EHLO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nDATA\r\nx\r\n.\r\n",
            &["250", "250", "250", "354", "451 4.3.0"],
        )],
    )
    .await;
    assert!(h.kept.lock().unwrap().is_empty());
}

fn pregreet_toy(action: Verdict) -> Arc<Toy> {
    Arc::new(Toy {
        pregreet: Some((Duration::from_millis(300), action)),
        ..Toy::default()
    })
}

#[tokio::test]
async fn a_patient_client_gets_the_teaser_then_the_greeting() {
    let h = pregreet_toy(Verdict::Disconnect(Reply::new(
        521,
        (5, 5, 1),
        "Protocol error",
    )));
    let mut s = session(&h, "192.0.2.9");
    assert_eq!(s.client.line().await, "220-toy.test ESMTP");
    assert_eq!(s.client.line().await, "220 toy.test ESMTP");
    s.client.send(b"EHLO c\r\nQUIT\r\n").await;
    let got = s.client.replies(Protocol::Smtp, 2).await;
    assert!(
        got[0].starts_with("250 ") && got[1].starts_with("221"),
        "{got:?}"
    );
    s.end().await;
    assert_eq!(*h.pregreet_seen.lock().unwrap(), Some(false));
}

#[tokio::test]
async fn a_client_that_talks_during_the_wait_is_dropped() {
    let h = pregreet_toy(Verdict::Disconnect(Reply::new(
        521,
        (5, 5, 1),
        "Protocol error",
    )));
    let mut s = session(&h, "192.0.2.9");
    // Ratware answers the first 220 line it sees.
    assert_eq!(s.client.line().await, "220-toy.test ESMTP");
    s.client.send(b"EHLO eager\r\n").await;
    let got = s.client.replies(Protocol::Smtp, 1).await;
    assert!(got[0].starts_with("521 5.5.1"), "{got:?}");
    assert_eq!(s.client.next_line().await, None, "closed");
    s.end().await;
    assert_eq!(*h.pregreet_seen.lock().unwrap(), Some(true));
    assert!(h.kept.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_enforced_early_talker_is_greeted_and_refused_until_quit() {
    let h = pregreet_toy(Verdict::Reject(Reply::new(
        550,
        (5, 5, 1),
        "Protocol error; say QUIT",
    )));
    let mut s = Session::start_after(
        b"EHLO eager\r\nMAIL FROM:<a@b.test>\r\nQUIT\r\n",
        |io, stop| {
            let peer = Peer::Ip("192.0.2.9".parse().unwrap());
            serve(Arc::clone(&h), Conn::Plain(io), peer, "test", stop)
        },
    )
    .await;
    // Already talking: no teaser, the greeting, then the refusals.
    let got = s.client.replies(Protocol::Smtp, 4).await;
    assert_eq!(got[0], "220 toy.test ESMTP");
    assert!(
        got[1].starts_with("550 5.5.1") && got[2].starts_with("550 5.5.1"),
        "{got:?}"
    );
    assert!(got[3].starts_with("221"), "{got:?}");
    s.end().await;
}

#[tokio::test]
async fn a_client_that_leaves_during_the_wait_has_not_passed() {
    let h = pregreet_toy(Verdict::Disconnect(Reply::new(
        521,
        (5, 5, 1),
        "Protocol error",
    )));
    let mut s = session(&h, "192.0.2.9");
    assert_eq!(s.client.line().await, "220-toy.test ESMTP");
    // The client closes its side and waits for the server to close.
    s.client.shutdown().await;
    assert_eq!(s.client.next_line().await, None);
    s.end().await;
    assert_eq!(*h.pregreet_seen.lock().unwrap(), None, "never judged");
}
