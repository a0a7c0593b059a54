//! Transcript tests: a session driven in memory over a duplex pipe, with a
//! real directory (SQLite in memory) and a real store (temporary directory).
//! Each `C:` chunk is written, the `S:` replies read and compared.

use super::*;
use crate::{Context, Limits};
use facteur_config::OverQuota;
use facteur_testkit::{Accounts, Protocol, Session, Step};
use std::time::Duration;

pub(crate) struct Fixture {
    _tmp: tempfile::TempDir,
    pub(crate) root: std::path::PathBuf,
    pub(crate) ctx: Arc<Context>,
}

pub(crate) fn fixture(max_size: u64) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let dir = Accounts::new()
        .users(&["alice@example.test", "bob@example.test"], "{PLAIN}x")
        .user_with_quota("small@example.test", "{PLAIN}x", 1000)
        // "Keep a copy and forward": the MTA has expanded it already.
        .alias(
            "alice@example.test",
            &["alice@example.test", "friend@elsewhere.test"],
        )
        .alias("team@example.test", &["bob@example.test"])
        .in_memory();
    std::fs::create_dir_all(root.join("tmp")).unwrap();
    let ctx = Arc::new(Context {
        hostname: "lmtp.test".into(),
        directory: Arc::new(dir),
        store: Arc::new(facteur_testkit::store_at(&root.join("mail"))),
        delimiters: "+".into(),
        limits: facteur_daemon::reload::Live::new(Limits {
            max_message_size: max_size,
            max_recipients: 3,
            max_line_length: 512,
            timeout: Duration::from_secs(2),
            max_errors: 8,
        }),
        over_quota: facteur_daemon::reload::Live::new(OverQuota::Reject),
        tmp_dir: root.join("tmp"),
        sieve: facteur_daemon::reload::Live::new(crate::sieve::Settings::from_config(
            &facteur_config::Sieve::default(),
        )),
        sieve_cache: crate::sieve::Cache::default(),
        sieve_state: crate::sieve::state::State::open(&root.join("sieve-state.sqlite")).ok(),
        outbox: crate::sieve::exec::Outbox {
            spool_dir: root.join("spool"),
            qmgr_socket: root.join("qmgr.sock"),
        },
    });
    Fixture {
        _tmp: tmp,
        root,
        ctx,
    }
}

impl Fixture {
    /// The messages in `user`'s new/.
    pub(crate) fn new_files(&self, user: &str) -> Vec<Vec<u8>> {
        facteur_testkit::maildir_new(&self.root.join("mail"), user)
    }

    /// An LMTP session from a local client.
    fn start(&self) -> Session {
        let handler = Arc::new(Lmtp::new(Arc::clone(&self.ctx)));
        Session::start(|io, stop| {
            let io = facteur_daemon::conn::Conn::Plain(io);
            let peer = facteur_daemon::Peer::Local("test".into());
            facteur_smtp_server::serve(handler, io, peer, "lmtp", stop)
        })
    }
}

/// Runs a transcript: pairs of (client bytes, expected reply prefixes).
pub(crate) async fn transcript(f: &Fixture, steps: &[Step<'_>]) {
    f.start()
        .transcript(Protocol::Smtp, "220 lmtp.test", steps)
        .await;
}

#[tokio::test]
async fn delivers_per_recipient_with_unknown_refused() {
    let f = fixture(1 << 20);
    transcript(
        &f,
        &[
            (b"LHLO client\r\n", &["250 XQUEUEID"]),
            (b"MAIL FROM:<s@remote.test>\r\n", &["250 2.1.0"]),
            (b"RCPT TO:<alice@example.test>\r\n", &["250 2.1.5"]),
            (b"RCPT TO:<nobody@example.test>\r\n", &["550 5.1.1"]),
            (b"RCPT TO:<bob+tag@example.test>\r\n", &["250 2.1.5"]),
            (b"RCPT TO:<x@elsewhere.test>\r\n", &["550 5.1.1"]),
            (b"DATA\r\n", &["354"]),
            (
                b"Subject: t\r\n\r\n..dot\r\nbody\r\n.\r\n",
                &[
                    "250 2.0.0 <alice@example.test> Saved",
                    "250 2.0.0 <bob+tag@example.test> Saved",
                ],
            ),
            (b"QUIT\r\n", &["221"]),
        ],
    )
    .await;
    assert_eq!(f.new_files("alice@example.test"), vec![b"Return-Path: <s@remote.test>\nDelivered-To: alice@example.test\nSubject: t\n\n.dot\nbody\n".to_vec()]);
    assert_eq!(f.new_files("bob@example.test"), vec![b"Return-Path: <s@remote.test>\nDelivered-To: bob+tag@example.test\nSubject: t\n\n.dot\nbody\n".to_vec()]);
}

#[tokio::test]
async fn whole_session_pipelined_in_one_write_split_anywhere() {
    let f = fixture(1 << 20);
    let script = b"LHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\nSubject: p\r\n\r\nx\r\n.\r\nNOOP\r\nQUIT\r\n";
    // Written one byte at a time: framing never depends on read boundaries.
    let mut s = f.start();
    for b in script.iter() {
        s.client.send(&[*b]).await;
    }
    let got = s.client.replies(Protocol::Smtp, 8).await;
    let codes: Vec<&str> = got.iter().map(|l| &l[..3]).collect();
    assert_eq!(
        codes,
        ["220", "250", "250", "250", "354", "250", "250", "221"]
    );
    s.server.ended().await;
    let files = f.new_files("alice@example.test");
    assert_eq!(files.len(), 1);
    assert!(files[0].starts_with(b"Return-Path: <>\n"));
}

#[tokio::test]
async fn order_of_commands_is_enforced() {
    let f = fixture(1 << 20);
    transcript(
        &f,
        &[
            (b"MAIL FROM:<a@b.test>\r\n", &["503 5.5.1"]),
            (b"EHLO x\r\n", &["500 5.5.1"]),
            (b"LHLO x\r\n", &["250"]),
            (b"RCPT TO:<alice@example.test>\r\n", &["503 5.5.1"]),
            (b"DATA\r\n", &["503 5.5.1"]),
            (b"MAIL FROM:<a@b.test>\r\n", &["250"]),
            (b"MAIL FROM:<a@b.test>\r\n", &["503 5.5.1 Nested"]),
            (b"RSET\r\n", &["250"]),
            (b"STARTTLS\r\n", &["502"]),
            (b"QUIT\r\n", &["221"]),
        ],
    )
    .await;
}

#[tokio::test]
async fn recipient_limit_and_too_many_errors() {
    let f = fixture(1 << 20);
    let rcpt: Step = (b"RCPT TO:<alice@example.test>\r\n", &["250"]);
    let mut s = f.start();
    s.client.replies(Protocol::Smtp, 1).await;
    s.steps(
        Protocol::Smtp,
        &[
            (b"LHLO x\r\nMAIL FROM:<>\r\n", &["250", "250"]),
            rcpt,
            rcpt,
            rcpt,
            (rcpt.0, &["452 4.5.3"]),
        ],
    )
    .await;
    // 1 error so far; 7 more close the connection.
    s.client.send(&b"BAD\r\n".repeat(7)).await;
    let got = s.client.replies(Protocol::Smtp, 8).await;
    assert!(got[6].starts_with("500"), "{got:?}");
    assert!(got[7].starts_with("421 4.7.0"), "{got:?}");
    s.server.ended().await;
}

#[tokio::test]
async fn oversize_and_bare_lf_get_per_recipient_refusals() {
    let f = fixture(2048);
    let mut big = b"Subject: big\r\n\r\n".to_vec();
    big.extend(std::iter::repeat_n(b'x', 5000));
    big.extend_from_slice(b"\r\n.\r\n");
    transcript(
        &f,
        &[
            (b"LHLO x\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<alice@example.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n", &["250", "250", "250", "250", "354"]),
            (&big, &["552 5.3.4", "552 5.3.4"]),
            (b"MAIL FROM:<a@b.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n", &["250", "250", "354"]),
            (b"a\nb\r\n.\r\n", &["550 5.6.0"]),
            (b"MAIL FROM:<a@b.test> SIZE=999999\r\n", &["552 5.3.4"]),
        ],
    )
    .await;
    assert!(f.new_files("alice@example.test").is_empty());
}

#[tokio::test]
async fn bdat_chunks_and_bdat_without_transaction() {
    let f = fixture(1 << 20);
    transcript(
        &f,
        &[
            (b"LHLO x\r\n", &["250"]),
            // Outside a transaction the chunk is still consumed, not run as commands.
            (b"BDAT 6\r\nQUIT\r\n", &["503"]),
            (
                b"MAIL FROM:<a@b.test>\r\nRCPT TO:<alice@example.test>\r\n",
                &["250", "250"],
            ),
            (b"BDAT 9\r\nSubject: ", &["250 2.0.0 9 octets"]),
            (
                b"BDAT 5 LAST\r\nb\r\n\r\n",
                &["250 2.0.0 <alice@example.test>"],
            ),
            (
                b"MAIL FROM:<a@b.test>\r\nRCPT TO:<alice@example.test>\r\nBDAT 3 LAST\r\na\nb",
                &["250", "250", "550 5.6.0"],
            ),
            (b"QUIT\r\n", &["221"]),
        ],
    )
    .await;
    let files = f.new_files("alice@example.test");
    assert_eq!(files.len(), 1);
    assert!(files[0].ends_with(b"Subject: b\n\n"));
}

#[tokio::test]
async fn over_quota_is_552() {
    let f = fixture(1 << 20);
    let mut msg = b"LHLO x\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<small@example.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\nSubject: q\r\n\r\n".to_vec();
    msg.extend(std::iter::repeat_n(b'q', 2000));
    msg.extend_from_slice(b"\r\n.\r\n");
    transcript(
        &f,
        &[(
            &msg,
            &["250", "250", "250", "250", "354", "552 5.2.2", "250 2.0.0"],
        )],
    )
    .await;
    assert!(f.new_files("small@example.test").is_empty());
    assert_eq!(f.new_files("alice@example.test").len(), 1);
}

#[tokio::test]
async fn idle_timeout_and_shutdown() {
    let f = fixture(1 << 20);
    // Timeout (2 s in the fixture): 421 then close.
    let mut s = f.start();
    s.client.replies(Protocol::Smtp, 1).await;
    let got = s.client.replies(Protocol::Smtp, 1).await;
    assert!(got[0].starts_with("421 4.4.2"), "{got:?}");
    s.server.ended().await;
    // Shutdown while idle: 421 4.3.2.
    let mut s = f.start();
    s.client.replies(Protocol::Smtp, 1).await;
    s.server.signal_stop();
    let got = s.client.replies(Protocol::Smtp, 1).await;
    assert!(got[0].starts_with("421 4.3.2"), "{got:?}");
    s.server.ended().await;
}

#[tokio::test]
async fn users_are_final_and_aliases_still_resolve() {
    let f = fixture(1 << 20);
    transcript(
        &f,
        &[
            (b"LHLO x\r\nMAIL FROM:<a@b.test>\r\n", &["250", "250"]),
            // alice is a user: her mailbox, not her keep-a-copy alias.
            (b"RCPT TO:<alice@example.test>\r\n", &["250 2.1.5"]),
            // team is only an alias: expanded here for MTAs that do not.
            (b"RCPT TO:<team@example.test>\r\n", &["250 2.1.5"]),
            (
                b"DATA\r\nSubject: x\r\n\r\ny\r\n.\r\n",
                &["354", "250", "250"],
            ),
        ],
    )
    .await;
    assert_eq!(f.new_files("alice@example.test").len(), 1);
    assert_eq!(f.new_files("bob@example.test").len(), 1);
}

#[tokio::test]
async fn a_chunk_that_cannot_be_buffered_is_a_temporary_failure() {
    // Bug 1 of issue 13: an I/O error while buffering a non-last chunk was
    // answered 552 5.3.4, and BDAT LAST then refused every recipient with
    // 552: a permanent bounce for a full or broken disk. Here the body
    // spills to a temporary directory that does not exist.
    let mut f = fixture(1 << 22);
    Arc::get_mut(&mut f.ctx).unwrap().tmp_dir = f.root.join("no-such-dir");
    let chunk = vec![b'x'; (1 << 20) + 10];
    let mut step = format!("BDAT {}\r\n", chunk.len()).into_bytes();
    step.extend_from_slice(&chunk);
    transcript(
        &f,
        &[
            (
                b"LHLO x\r\nMAIL FROM:<a@b.test> XQUEUEID=Q1\r\nRCPT TO:<alice@example.test>\r\nRCPT TO:<bob@example.test>\r\n",
                &["250", "250", "250", "250"],
            ),
            (&step, &["451 4.3.0"]),
            (b"BDAT 2 LAST\r\nab", &["451 4.3.0", "451 4.3.0"]),
            (b"QUIT\r\n", &["221"]),
        ],
    )
    .await;
    assert!(f.new_files("alice@example.test").is_empty());
}

/// The messages in `user`'s `folder` (Maildir++ `.folder/new/`).
fn folder_files(f: &Fixture, user: &str, folder: &str) -> Vec<Vec<u8>> {
    let (local, domain) = user.split_once('@').unwrap();
    let new = f.root.join("mail").join(domain).join(local);
    let new = new.join(format!(".{folder}")).join("new");
    let mut out: Vec<Vec<u8>> = match std::fs::read_dir(&new) {
        Ok(rd) => rd
            .map(|e| std::fs::read(e.unwrap().path()).unwrap())
            .collect(),
        Err(_) => Vec::new(),
    };
    out.sort();
    out
}

#[tokio::test]
async fn spam_marked_mail_is_filed_into_junk() {
    use facteur_store::{Quota, SpecialUse};
    let f = fixture(1 << 20);
    // bob's junk folder is "Spam" (the \Junk role); alice has none yet.
    f.ctx
        .store
        .open_user("bob@example.test", Quota::default())
        .unwrap()
        .create_mailbox("Spam", Some(SpecialUse::Junk))
        .unwrap();
    // The mark after 5,000 bytes of header: found past the first read.
    let long = format!(
        "Subject: long\r\nX-Filler: {}\r\nx-spam:  YES score=9\r\n\r\nbody\r\n.\r\n",
        "f".repeat(5000)
    );
    transcript(
        &f,
        &[
            (b"LHLO x\r\n", &["250"]),
            (b"MAIL FROM:<s@remote.test>\r\nRCPT TO:<alice@example.test>\r\nRCPT TO:<bob@example.test>\r\n", &["250", "250", "250"]),
            (b"DATA\r\nSubject: marked\r\nX-Spam: Yes\r\n\r\nbody\r\n.\r\n", &["354", "250", "250"]),
            // Not marked: "No", and a mark in the body.
            (b"MAIL FROM:<s@remote.test>\r\nRCPT TO:<alice@example.test>\r\n", &["250", "250"]),
            (b"DATA\r\nSubject: ham\r\nX-Spam: No\r\n\r\nX-Spam: Yes\r\n.\r\n", &["354", "250"]),
            (b"MAIL FROM:<s@remote.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n", &["250", "250", "354"]),
            (long.as_bytes(), &["250"]),
            (b"QUIT\r\n", &["221"]),
        ],
    )
    .await;
    let inbox = f.new_files("alice@example.test");
    assert_eq!(inbox.len(), 1);
    assert!(String::from_utf8_lossy(&inbox[0]).contains("Subject: ham"));
    let junk = folder_files(&f, "alice@example.test", "Junk");
    assert_eq!(junk.len(), 2, "{junk:?}");
    // alice's Junk was made with its role, and subscribed.
    let boxes = f
        .ctx
        .store
        .open_user("alice@example.test", Quota::default())
        .unwrap()
        .list_mailboxes()
        .unwrap();
    let j = boxes.iter().find(|m| m.name == "Junk").unwrap();
    assert_eq!(j.special_use, Some(SpecialUse::Junk));
    assert!(j.subscribed);
    assert!(f.new_files("bob@example.test").is_empty());
    assert_eq!(folder_files(&f, "bob@example.test", "Spam").len(), 1);
    assert!(folder_files(&f, "bob@example.test", "Junk").is_empty());
}
