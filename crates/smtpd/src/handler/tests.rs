//! Transcript tests: an SMTP session in memory (duplex pipe), with a real
//! directory (SQLite in memory) and a real spool (temporary directory).

use super::*;
use base64::Engine as _;
use facteur_directory::{Directory, password};
use facteur_mail::dsn::{BodyType, Ret};
use facteur_smtp_server::Peer;
use facteur_spool::Spool;
use facteur_testkit::{Accounts, Protocol, Session, SpoolExt, Step};

fn encode(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

pub(crate) struct Fixture {
    _tmp: tempfile::TempDir,
    pub(crate) ctx: Arc<Context>,
}

fn fixture(mynetworks: &str, max_size: u64) -> Fixture {
    fixture_with(mynetworks, max_size, None)
}

/// A context with the given mail-authentication checks (crate::trust's
/// tests).
pub(crate) fn fixture_with(
    mynetworks: &str,
    max_size: u64,
    trust: Option<Arc<facteur_trust::Incoming>>,
) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let dir = Accounts::new()
        .user(
            "alice@example.test",
            &password::hash_password("pw").unwrap(),
        )
        .user("bob@example.test", "{PLAIN}bob")
        .alias("alice.smith@example.test", &["alice@example.test"])
        .in_memory();
    let cfg = facteur_config::Smtpd {
        mynetworks: vec![facteur_config::IpNet::parse(mynetworks).unwrap()],
        max_message_size: facteur_config::ByteSize(max_size),
        max_errors: 30,
        timeout: facteur_config::Seconds(5),
        allow_plaintext_auth_on_loopback: true,
        max_messages_per_ip_per_minute: 5,
        ..Default::default()
    };
    let directory: Arc<dyn Directory> = Arc::new(dir);
    let limits = Arc::new(facteur_daemon::limits::Limits::default());
    let ctx = Arc::new(Context {
        logins: facteur_auth::Logins::for_tests(&directory).unwrap(),
        hostname: "mx.example.test".into(),
        directory,
        spool: Spool::open(&tmp.path().join("spool")).unwrap(),
        delimiters: "+".into(),
        cfg: facteur_daemon::reload::Live::new(cfg),
        tls: facteur_daemon::tls::TlsState::default(),
        qmgr_socket: tmp.path().join("qmgr.sock"),
        rates: crate::policy::Rates::default(),
        rcpt_rates: crate::policy::Rates::default(),
        screen: None,
        fcrdns: None,
        scan: Default::default(),
        scan_counters: Default::default(),
        limits,
        trust,
        srs: Some(facteur_mail::srs::Srs::new(
            b"test secret".to_vec(),
            "mx.example.test",
            21,
        )),
        lists: None,
        lmtp_domains: Default::default(),
    });
    Fixture { _tmp: tmp, ctx }
}

impl Fixture {
    /// The queue files in incoming/.
    pub(crate) fn queued(&self) -> Vec<facteur_spool::QueueFile> {
        self.ctx.spool.queued(QueueName::Incoming)
    }

    /// The message of `id` in incoming/, as text.
    pub(crate) fn message(&self, id: &str) -> String {
        self.ctx.spool.message_text(QueueName::Incoming, id)
    }

    /// A session on a `mode` listener from `ip`.
    fn session(&self, mode: Mode, ip: &str) -> Session {
        let handler = Arc::new(Listener::new(Arc::clone(&self.ctx), mode));
        let peer = Peer::Ip(ip.parse().unwrap());
        Session::start(|io, stop| {
            let io = facteur_daemon::conn::Conn::Plain(io);
            facteur_smtp_server::serve(handler, io, peer, mode.as_str(), stop)
        })
    }
}

pub(crate) async fn transcript(f: &Fixture, mode: Mode, ip: &str, steps: &[Step<'_>]) {
    f.session(mode, ip)
        .transcript(Protocol::Smtp, "220 mx.example.test", steps)
        .await;
}

#[tokio::test]
async fn mx_accepts_local_mail_and_queues_it_with_received() {
    let f = fixture("192.0.2.0/24", 1 << 20);
    transcript(
        &f,
        Mode::Mx,
        "203.0.113.5",
        &[
            (b"EHLO client.test\r\n", &["250 "]),
            (b"MAIL FROM:<s@remote.test> BODY=8BITMIME RET=HDRS ENVID=abc\r\n", &["250 2.1.0"]),
            (b"RCPT TO:<alice+tag@example.test> NOTIFY=FAILURE,DELAY ORCPT=rfc822;alice+2Btag@example.test\r\n", &["250 2.1.5"]),
            (b"RCPT TO:<alice.smith@example.test>\r\n", &["250 2.1.5"]),
            (b"DATA\r\n", &["354"]),
            (b"Subject: hi\r\n\r\n..x\r\n.\r\n", &["250 2.0.0 OK: queued as"]),
            (b"QUIT\r\n", &["221"]),
        ],
    )
    .await;
    let q = f.queued();
    assert_eq!(q.len(), 1);
    let e = &q[0].envelope;
    assert_eq!(e.sender, "s@remote.test");
    assert_eq!(e.recipients.len(), 2);
    assert!(
        e.recipients[0].notify.failure
            && e.recipients[0].notify.delay
            && !e.recipients[0].notify.success
    );
    assert_eq!(
        e.recipients[0].orcpt.as_deref(),
        Some("alice+tag@example.test")
    );
    assert!(matches!(e.ret, Some(Ret::Hdrs)));
    assert_eq!(e.envid.as_deref(), Some("abc"));
    assert!(matches!(e.body, BodyType::EightBitMime));
    assert_eq!(e.client_addr.as_deref(), Some("203.0.113.5"));
    assert_eq!(e.helo.as_deref(), Some("client.test"));
    assert_eq!(e.protocol.as_deref(), Some("ESMTP"));
    let text = f.message(&e.queue_id);
    assert!(text.starts_with("Received: from client.test (unknown [203.0.113.5])\r\n\tby mx.example.test (facteur) with ESMTP id "), "{text}");
    assert!(text.ends_with("Subject: hi\r\n\r\n.x\r\n"), "{text}");
    // MX never adds Message-ID or Date.
    assert!(!text.contains("Message-ID"));
}

#[tokio::test]
async fn relay_control_and_tricks() {
    let f = fixture("192.0.2.0/24", 1 << 20);
    let mut steps: Vec<(&[u8], &[&str])> = vec![
        (b"EHLO stranger\r\n", &["250"]),
        (b"MAIL FROM:<x@remote.test>\r\n", &["250"]),
    ];
    steps.extend_from_slice(&[
        (b"RCPT TO:<victim@elsewhere.test>\r\n", &["554 5.7.1"]),
        (
            b"RCPT TO:<u%elsewhere.test@example.test>\r\n",
            &["550 5.7.1"],
        ),
        (
            b"RCPT TO:<@example.test:u@elsewhere.test>\r\n",
            &["554 5.7.1"],
        ),
        (b"RCPT TO:<\"u@elsewhere.test\"@example.test>\r\n", &["5"]),
        (b"RCPT TO:<u@[192.0.2.1]>\r\n", &["5"]),
        (b"RCPT TO:<a!b!u>\r\n", &["5"]),
        (
            b"RCPT TO:<elsewhere.test!u@example.test>\r\n",
            &["550 5.7.1"],
        ),
        (b"RCPT TO:<nobody@example.test>\r\n", &["550 5.1.1"]),
        (b"DATA\r\n", &["503 5.5.1"]),
        (b"QUIT\r\n", &["221"]),
    ]);
    transcript(&f, Mode::Mx, "203.0.113.9", &steps).await;
    assert!(f.queued().is_empty());
    // From mynetworks, relaying is allowed.
    transcript(
        &f,
        Mode::Mx,
        "192.0.2.7",
        &[(
            b"EHLO inside\r\nMAIL FROM:<x@example.test>\r\nRCPT TO:<friend@elsewhere.test>\r\n",
            &["250", "250", "250 2.1.5"],
        )],
    )
    .await;
}

#[tokio::test]
async fn submission_needs_auth_and_owned_sender() {
    let f = fixture("192.0.2.0/24", 1 << 20);
    let plain = base64_plain("alice@example.test", "pw");
    let wrong = base64_plain("alice@example.test", "nope");
    let auth_ok = format!("AUTH PLAIN {plain}\r\n");
    let auth_bad = format!("AUTH PLAIN {wrong}\r\n");
    transcript(
        &f,
        Mode::Submission,
        "127.0.0.1",
        &[
            (b"EHLO mua\r\n", &["250 "]),
            (b"MAIL FROM:<alice@example.test>\r\n", &["530 5.7.0"]),
            (auth_bad.as_bytes(), &["535 5.7.8"]),
            (auth_ok.as_bytes(), &["235 2.7.0"]),
            (b"MAIL FROM:<bob@example.test>\r\n", &["553 5.7.1"]),
            (b"MAIL FROM:<alice.smith@example.test>\r\n", &["250"]),
            (b"RSET\r\nMAIL FROM:<alice@example.test>\r\nRCPT TO:<friend@elsewhere.test>\r\nDATA\r\n", &["250", "250", "250", "354"]),
            (b"Subject: x\r\n\r\nbody\r\n.\r\n", &["250 2.0.0"]),
        ],
    )
    .await;
    let q = f.queued();
    assert_eq!(
        q[0].envelope.auth_user.as_deref(),
        Some("alice@example.test")
    );
    assert_eq!(q[0].envelope.protocol.as_deref(), Some("ESMTPA"));
    let text = f.message(&q[0].envelope.queue_id);
    assert!(
        text.contains("\r\nMessage-ID: <") && text.contains("\r\nDate: "),
        "{text}"
    );
}

#[tokio::test]
async fn auth_login_exchange_and_cancel() {
    let f = fixture("192.0.2.0/24", 1 << 20);
    let u = format!("{}\r\n", encode(b"bob@example.test"));
    let p = format!("{}\r\n", encode(b"bob"));
    transcript(
        &f,
        Mode::Submission,
        "127.0.0.1",
        &[
            (b"EHLO mua\r\n", &["250"]),
            (b"AUTH LOGIN\r\n", &["334 VXNlcm5hbWU6"]),
            (b"*\r\n", &["501"]),
            (b"AUTH LOGIN\r\n", &["334"]),
            (u.as_bytes(), &["334 UGFzc3dvcmQ6"]),
            (p.as_bytes(), &["235"]),
            (b"AUTH LOGIN\r\n", &["503"]),
        ],
    )
    .await;
}

#[tokio::test]
async fn auth_never_offered_in_clear_to_strangers_nor_on_mx() {
    let f = fixture("192.0.2.0/24", 1 << 20);
    transcript(
        &f,
        Mode::Submission,
        "203.0.113.1",
        &[(b"AUTH PLAIN AGFAYgA=\r\n", &["503 5.5.1"])],
    )
    .await;
    transcript(
        &f,
        Mode::Mx,
        "127.0.0.1",
        &[(b"EHLO x\r\nAUTH PLAIN AGFAYgA=\r\n", &["250", "503 5.5.1"])],
    )
    .await;
}

#[tokio::test]
async fn smuggling_size_bdat_and_rates() {
    let f = fixture("192.0.2.0/24", 100);
    let mut big = b"Subject: big\r\n\r\n".to_vec();
    big.extend(std::iter::repeat_n(b'x', 200));
    big.extend_from_slice(b"\r\n.\r\n");
    transcript(
        &f,
        Mode::Mx,
        "203.0.113.2",
        &[
            (b"EHLO c\r\nMAIL FROM:<s@r.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n", &["250", "250", "250", "354"]),
            (b"a\n.\nMAIL FROM:<e@r.test>\nRCPT TO:<bob@example.test>\nDATA\nx\r\n.\r\n", &["550 5.6.0"]),
            (b"MAIL FROM:<s@r.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n", &["250", "250", "354"]),
            (&big, &["552 5.3.4"]),
            (b"MAIL FROM:<s@r.test> SIZE=101\r\n", &["552 5.3.4"]),
            (b"MAIL FROM:<s@r.test>\r\nRCPT TO:<alice@example.test>\r\nBDAT 3\r\nA: BDAT 5 LAST\r\nb\r\n\r\n", &["250", "250", "250 2.0.0 3 octets", "250 2.0.0 OK: queued"]),
            // Four MAILs counted so far (the SIZE refusal is not): the fifth
            // this minute is the last one allowed.
            (b"MAIL FROM:<s@r.test>\r\n", &["250"]),
            (b"RSET\r\nMAIL FROM:<s@r.test>\r\n", &["250", "250"]),
            (b"RSET\r\nMAIL FROM:<s@r.test>\r\n", &["250", "450 4.7.0"]),
        ],
    )
    .await;
    let q = f.queued();
    assert_eq!(q.len(), 1);
    let text = f.message(&q[0].envelope.queue_id);
    assert!(text.ends_with("A: b\r\n\r\n"), "{text}");
}

fn base64_plain(user: &str, pass: &str) -> String {
    encode(format!("\0{user}\0{pass}").as_bytes())
}

#[tokio::test]
async fn a_bdat_message_whose_first_chunk_was_lost_is_never_queued() {
    // Bug 2 of issue 13: the queue file could not be created at the first
    // chunk (here: spool/tmp is briefly not a directory); the old session
    // created it at the next chunk and answered 250 to BDAT LAST for a
    // message without its first chunk.
    let f = fixture("192.0.2.0/24", 1 << 20);
    let tmp = f.ctx.spool.root().join("tmp");
    let mut s = f.session(Mode::Mx, "203.0.113.7");
    let c = &mut s.client;
    c.expect(Protocol::Smtp, &["220"]).await;
    c.send(b"EHLO c\r\nMAIL FROM:<s@r.test>\r\nRCPT TO:<alice@example.test>\r\n")
        .await;
    assert_eq!(c.replies(Protocol::Smtp, 3).await.len(), 3);
    std::fs::rename(&tmp, tmp.with_extension("away")).unwrap();
    std::fs::write(&tmp, b"not a directory").unwrap();
    c.send(b"BDAT 12\r\nSubject: 1\r\n").await;
    let r = c.replies(Protocol::Smtp, 1).await;
    assert!(r[0].starts_with("451 4.3.0"), "{r:?}");
    std::fs::remove_file(&tmp).unwrap();
    std::fs::rename(tmp.with_extension("away"), &tmp).unwrap();
    c.send(b"BDAT 4\r\n\r\nhiBDAT 2 LAST\r\n\r\n").await;
    let r = c.replies(Protocol::Smtp, 2).await;
    assert!(r.iter().all(|l| l.starts_with("451")), "{r:?}");
    c.send(b"QUIT\r\n").await;
    c.replies(Protocol::Smtp, 1).await;
    s.end().await;
    assert!(f.queued().is_empty());
}
