//! The LMTP dialect: LHLO, one reply per accepted recipient, XQUEUEID.

use super::{log, pipe};
use crate::testing::{Act, lines, message, run_peer, script};
use crate::{ClientError, Connection, Dialect, Timeouts, Txn, TxnRcpt};
use facteur_smtp_codec::client::{Body, MailParams};
use std::time::Duration;

const LHLO_PIPE: &str = "250-srv\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n";

fn fast() -> Timeouts {
    Timeouts::uniform(Duration::from_secs(5))
}

fn rcpts(a: &[&str]) -> Vec<TxnRcpt> {
    a.iter().map(|a| TxnRcpt::new(*a)).collect()
}

fn txn<'a>(sender: &'a str, rcpts: &'a [TxnRcpt]) -> Txn<'a> {
    Txn {
        sender,
        params: MailParams::default(),
        rcpts,
        queue_id: None,
    }
}

#[tokio::test]
async fn pipelined_transaction_per_recipient_replies() {
    let (io, peer) = pipe();
    let log = log();
    let srv = tokio::spawn(run_peer(
        peer,
        b"220 srv LMTP\r\n",
        log.clone(),
        script(vec![
            ("LHLO qmgr.test", Act::Say(LHLO_PIPE)),
            ("MAIL FROM:<s@x.test> BODY=8BITMIME", Act::Silent),
            ("RCPT TO:<a@x.test>", Act::Silent),
            ("RCPT TO:<b@x.test>", Act::Silent),
            ("RCPT TO:<c@x.test>", Act::Silent),
            // Pipelining: nothing is answered before DATA arrives.
            (
                "DATA",
                Act::Say(
                    "250 2.1.0 OK\r\n250 2.1.5 OK\r\n550 5.1.1 no such user\r\n250 2.1.5 OK\r\n354 go\r\n",
                ),
            ),
            (
                "<DATA>",
                Act::Say("250 2.0.0 <a@x.test> Saved as T1\r\n452 4.2.2 over quota\r\n"),
            ),
            ("QUIT", Act::Say("221 bye\r\n")),
        ]),
    ));
    let mut c = Connection::start(io, Dialect::Lmtp, "qmgr.test", fast())
        .await
        .unwrap();
    assert!(c.ext.pipelining && c.ext.eight_bit_mime && c.ext.smtputf8);
    assert_eq!(c.server_name, "srv");
    let r = rcpts(&["a@x.test", "b@x.test", "c@x.test"]);
    let mut t = txn("s@x.test", &r);
    t.params.body = Some(Body::EightBitMime);
    let msg = b"Subject: t\r\n\r\n.leading dot\r\n..two\r\nend";
    let out = c.send(&t, message(msg, 3)).await;
    assert!(out.error.is_none(), "{:?}", out.error);
    let codes: Vec<u16> = out
        .replies
        .iter()
        .map(|r| r.as_ref().unwrap().code)
        .collect();
    assert_eq!(codes, vec![250, 550, 452]);
    assert!(
        out.replies[0]
            .as_ref()
            .unwrap()
            .to_string()
            .contains("Saved as T1")
    );
    c.quit().await;
    srv.await.unwrap();
    // Dot-stuffed, and a CRLF added before the dot (trimmed by the log).
    assert_eq!(
        lines(&log)[6],
        "<DATA>Subject: t\r\n\r\n..leading dot\r\n...two\r\nend"
    );
}

#[tokio::test]
async fn connection_lost_after_first_data_reply() {
    let (io, peer) = pipe();
    let srv = tokio::spawn(run_peer(
        peer,
        b"220 srv\r\n",
        log(),
        script(vec![
            ("LHLO", Act::Say(LHLO_PIPE)),
            ("MAIL", Act::Silent),
            ("RCPT", Act::Silent),
            ("RCPT", Act::Silent),
            ("DATA", Act::Say("250 OK\r\n250 OK\r\n250 OK\r\n354 go\r\n")),
            ("<DATA>", Act::Last("250 2.0.0 first saved\r\n")),
        ]),
    ));
    let mut c = Connection::start(io, Dialect::Lmtp, "q", fast())
        .await
        .unwrap();
    let r = rcpts(&["a@x.test", "b@x.test"]);
    let out = c.send(&txn("", &r), message(b"x\r\n", 3)).await;
    srv.await.unwrap();
    assert_eq!(out.replies[0].as_ref().unwrap().code, 250);
    assert!(out.replies[1].is_none());
    assert!(matches!(out.error, Some(ClientError::Closed)));
}

#[tokio::test]
async fn mail_refused_without_pipelining() {
    let (io, peer) = pipe();
    let srv = tokio::spawn(run_peer(
        peer,
        b"220 srv\r\n",
        log(),
        script(vec![
            ("LHLO", Act::Say("250 srv\r\n")),
            ("MAIL FROM:<>", Act::Say("451 4.3.0 try later\r\n")),
            ("RSET", Act::Say("250 OK\r\n")),
            ("MAIL", Act::Say("250 OK\r\n")),
            ("RCPT TO:<a@x.test>", Act::Say("550 5.1.1 unknown\r\n")),
            ("RSET", Act::Say("250 OK\r\n")),
        ]),
    ));
    let mut c = Connection::start(io, Dialect::Lmtp, "q", fast())
        .await
        .unwrap();
    assert!(!c.ext.pipelining);
    let r = rcpts(&["a@x.test"]);
    let t = txn("", &r);
    let out = c.send(&t, message(b"x", 3)).await;
    assert!(out.error.is_none());
    assert_eq!(out.replies[0].as_ref().unwrap().code, 451);
    // Same connection: all recipients refused, no DATA sent.
    let out = c.send(&t, message(b"x", 3)).await;
    assert!(out.error.is_none(), "{:?}", out.error);
    assert_eq!(out.replies[0].as_ref().unwrap().code, 550);
    drop(c);
    srv.await.unwrap();
}

#[tokio::test]
async fn garbage_refusal_and_silence_are_errors() {
    let (io, peer) = pipe();
    tokio::spawn(run_peer(peer, b"hello there\r\n", log(), |_| Act::Close));
    let e = Connection::start(io, Dialect::Lmtp, "q", fast())
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::Reply(_)), "{e}");
    let (io, _peer) = pipe();
    let t = Timeouts::uniform(Duration::from_millis(50));
    let e = Connection::start(io, Dialect::Lmtp, "q", t)
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::Timeout("the greeting")), "{e}");
    let (io, peer) = pipe();
    tokio::spawn(run_peer(peer, b"554 go away\r\n", log(), |_| Act::Close));
    let e = Connection::start(io, Dialect::Lmtp, "q", fast())
        .await
        .unwrap_err();
    assert!(
        matches!(&e, ClientError::Refused(_, r) if r.code == 554),
        "{e}"
    );
    // LMTP has no HELO fallback: a refused LHLO is the end.
    let (io, peer) = pipe();
    tokio::spawn(run_peer(
        peer,
        b"220 srv\r\n",
        log(),
        script(vec![("LHLO", Act::Say("502 5.5.2 what\r\n"))]),
    ));
    let e = Connection::start(io, Dialect::Lmtp, "q", fast())
        .await
        .unwrap_err();
    assert!(
        matches!(&e, ClientError::Refused("LHLO", r) if r.code == 502),
        "{e}"
    );
}

#[tokio::test]
async fn large_message_streams() {
    let (a, peer) = tokio::io::duplex(1 << 12);
    let log = log();
    let srv = tokio::spawn(run_peer(
        peer,
        b"220 srv\r\n",
        log.clone(),
        script(vec![
            ("LHLO", Act::Say(LHLO_PIPE)),
            ("MAIL", Act::Silent),
            ("RCPT", Act::Silent),
            ("DATA", Act::Say("250 OK\r\n250 OK\r\n354 go\r\n")),
            ("<DATA>", Act::Say("250 OK\r\n")),
        ]),
    ));
    let mut c = Connection::start(a, Dialect::Lmtp, "q", fast())
        .await
        .unwrap();
    let line = b".0123456789abcdef\r\n";
    let data: Vec<u8> = line.repeat(20_000);
    let r = rcpts(&["a@x.test"]);
    let out = c
        .send(&txn("s@x.test", &r), message(&data, 64 * 1024))
        .await;
    assert!(out.error.is_none(), "{:?}", out.error);
    drop(c);
    srv.await.unwrap();
    // Every line stuffed; the last CRLF is trimmed by the log.
    assert_eq!(
        lines(&log)[4].len(),
        "<DATA>".len() + (line.len() + 1) * 20_000 - 2
    );
}

#[tokio::test]
async fn xqueueid_is_sent_only_when_offered() {
    for (lhlo, want) in [
        (
            "250-srv\r\n250-PIPELINING\r\n250 XQUEUEID\r\n",
            "MAIL FROM:<s@x.test> XQUEUEID=Q1B2C3",
        ),
        ("250-srv\r\n250 PIPELINING\r\n", "MAIL FROM:<s@x.test>"),
    ] {
        let (io, peer) = pipe();
        let log = log();
        tokio::spawn(run_peer(
            peer,
            b"220 srv\r\n",
            log.clone(),
            move |l| match l.split(' ').next().unwrap_or("") {
                "LHLO" => Act::Say(lhlo),
                "MAIL" | "RCPT" => Act::Silent,
                "DATA" => Act::Say("250 ok\r\n250 ok\r\n354 go\r\n"),
                _ => Act::Say("250 2.0.0 saved\r\n"),
            },
        ));
        let mut c = Connection::start(io, Dialect::Lmtp, "q", fast())
            .await
            .unwrap();
        let r = rcpts(&["a@x.test"]);
        let mut t = txn("s@x.test", &r);
        t.queue_id = Some("Q1B2C3");
        let out = c.send(&t, message(b"x\r\n", 64)).await;
        assert!(out.error.is_none(), "{:?}", out.error);
        assert_eq!(lines(&log)[1], want);
    }
}

#[tokio::test]
async fn unsafe_addresses_never_reach_the_wire() {
    // Bug 3: a queue file's sender or recipient with CR LF used to become
    // extra LMTP commands.
    let (io, peer) = pipe();
    let log = log();
    tokio::spawn(run_peer(
        peer,
        b"220 srv\r\n",
        log.clone(),
        move |l| match l.split(' ').next().unwrap_or("") {
            "LHLO" => Act::Say(LHLO_PIPE),
            "MAIL" | "RCPT" => Act::Silent,
            "DATA" => Act::Say("250 ok\r\n250 ok\r\n354 go\r\n"),
            _ => Act::Say("250 2.0.0 saved\r\n"),
        },
    ));
    let mut c = Connection::start(io, Dialect::Lmtp, "q", fast())
        .await
        .unwrap();
    let r = rcpts(&["x@y.test\r\nRCPT TO:<evil@z.test>", "a@x.test"]);
    let out = c.send(&txn("s@x.test", &r), message(b"x\r\n", 64)).await;
    assert!(out.error.is_none(), "{:?}", out.error);
    assert_eq!(out.replies[0].as_ref().unwrap().code, 553);
    assert_eq!(out.replies[1].as_ref().unwrap().code, 250);
    let r = rcpts(&["a@x.test"]);
    let out = c
        .send(&txn("a@b\r\nRCPT TO:<x@y>", &r), message(b"x\r\n", 64))
        .await;
    assert!(matches!(out.error, Some(ClientError::Protocol(_))));
    assert!(out.replies[0].is_none());
    let seen = lines(&log);
    assert!(
        !seen.iter().any(|l| l.contains("evil") || l.contains("x@y")),
        "{seen:?}"
    );
}
