//! The LMTP dialect: LHLO, one reply per accepted recipient, XQUEUEID,
//! checked addresses.

use super::{Peer, codes, start};
use crate::testing::{Act, message, script};
use crate::{BoxIo, ClientError, Connection, Dialect, Timeouts, Txn, TxnRcpt};
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

/// A connection to an LMTP server with this LHLO reply that answers a
/// pipelined transaction of one recipient.
async fn one_rcpt(lhlo: &'static str) -> (Connection<BoxIo>, Peer) {
    let server = move |l: &str| match l.split(' ').next().unwrap_or("") {
        "LHLO" => Act::Say(lhlo),
        "MAIL" | "RCPT" => Act::Silent,
        "DATA" => Act::Say("250 ok\r\n250 ok\r\n354 go\r\n"),
        _ => Act::Say("250 2.0.0 saved\r\n"),
    };
    let (c, peer) = start(Dialect::Lmtp, fast(), b"220 srv\r\n", server).await;
    (c.unwrap(), peer)
}

/// A connection to an LMTP server that follows `steps` (see `script`).
async fn scripted(steps: Vec<(&'static str, Act)>) -> (Connection<BoxIo>, Peer) {
    let (c, peer) = start(Dialect::Lmtp, fast(), b"220 srv LMTP\r\n", script(steps)).await;
    (c.unwrap(), peer)
}

#[tokio::test]
async fn pipelined_transaction_per_recipient_replies() {
    let (mut c, peer) = scripted(vec![
            ("LHLO client.test", Act::Say(LHLO_PIPE)),
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
    ])
    .await;
    assert!(c.ext.pipelining && c.ext.eight_bit_mime && c.ext.smtputf8);
    assert_eq!(c.server_name, "srv");
    let r = rcpts(&["a@x.test", "b@x.test", "c@x.test"]);
    let mut t = txn("s@x.test", &r);
    t.params.body = Some(Body::EightBitMime);
    let msg = b"Subject: t\r\n\r\n.leading dot\r\n..two\r\nend";
    let out = c.send(&t, message(msg, 3)).await;
    assert!(out.error.is_none(), "{:?}", out.error);
    assert_eq!(codes(&out), vec![250, 550, 452]);
    assert!(
        out.replies[0]
            .as_ref()
            .unwrap()
            .to_string()
            .contains("Saved as T1")
    );
    c.quit().await;
    // Dot-stuffed, and a CRLF added before the dot (trimmed by the log).
    assert_eq!(
        peer.done().await[6],
        "<DATA>Subject: t\r\n\r\n..leading dot\r\n...two\r\nend"
    );
}

#[tokio::test]
async fn connection_lost_after_first_data_reply() {
    let (mut c, peer) = scripted(vec![
        ("LHLO", Act::Say(LHLO_PIPE)),
        ("MAIL", Act::Silent),
        ("RCPT", Act::Silent),
        ("RCPT", Act::Silent),
        ("DATA", Act::Say("250 OK\r\n250 OK\r\n250 OK\r\n354 go\r\n")),
        ("<DATA>", Act::Last("250 2.0.0 first saved\r\n")),
    ])
    .await;
    let r = rcpts(&["a@x.test", "b@x.test"]);
    let out = c.send(&txn("", &r), message(b"x\r\n", 3)).await;
    peer.done().await;
    assert_eq!(out.replies[0].as_ref().unwrap().code, 250);
    assert!(out.replies[1].is_none());
    assert!(matches!(out.error, Some(ClientError::Closed)));
}

#[tokio::test]
async fn a_transaction_lost_before_any_reply_is_unheard() {
    // The server is gone before it answers anything (a pooled connection
    // it had closed): the message was never sent.
    for steps in [
        vec![("LHLO", Act::Say(LHLO_PIPE)), ("MAIL", Act::Close)],
        vec![("LHLO", Act::Say("250 srv\r\n")), ("MAIL", Act::Close)],
    ] {
        let (mut c, peer) = scripted(steps).await;
        let r = rcpts(&["a@x.test"]);
        let out = c.send(&txn("", &r), message(b"x\r\n", 3)).await;
        peer.done().await;
        assert!(out.error.is_some() && out.unheard, "{out:?}");
        assert!(out.replies[0].is_none());
    }
    // Once MAIL is answered, it is not: the data may follow.
    let (mut c, peer) = scripted(vec![
        ("LHLO", Act::Say(LHLO_PIPE)),
        ("MAIL", Act::Silent),
        ("RCPT", Act::Silent),
        ("DATA", Act::Last("250 OK\r\n")),
    ])
    .await;
    let r = rcpts(&["a@x.test"]);
    let out = c.send(&txn("", &r), message(b"x\r\n", 3)).await;
    peer.done().await;
    assert!(out.error.is_some() && !out.unheard, "{out:?}");
    // Nor is a transaction that ends well, or with a refusal.
    let (mut c, peer) = one_rcpt(LHLO_PIPE).await;
    let out = c.send(&txn("", &r), message(b"x\r\n", 3)).await;
    assert!(out.error.is_none() && !out.unheard);
    drop(c);
    peer.done().await;
}

#[tokio::test]
async fn mail_refused_without_pipelining() {
    let (mut c, peer) = scripted(vec![
        ("LHLO", Act::Say("250 srv\r\n")),
        ("MAIL FROM:<>", Act::Say("451 4.3.0 try later\r\n")),
        ("RSET", Act::Say("250 OK\r\n")),
        ("MAIL", Act::Say("250 OK\r\n")),
        ("RCPT TO:<a@x.test>", Act::Say("550 5.1.1 unknown\r\n")),
        ("RSET", Act::Say("250 OK\r\n")),
    ])
    .await;
    assert!(!c.ext.pipelining);
    let r = rcpts(&["a@x.test"]);
    let t = txn("", &r);
    let out = c.send(&t, message(b"x", 3)).await;
    assert!(out.error.is_none());
    assert_eq!(codes(&out), vec![451]);
    // Same connection: all recipients refused, no DATA sent.
    let out = c.send(&t, message(b"x", 3)).await;
    assert!(out.error.is_none(), "{:?}", out.error);
    assert_eq!(codes(&out), vec![550]);
    drop(c);
    peer.done().await;
}

#[tokio::test]
async fn garbage_refusal_and_silence_are_errors() {
    let (c, _) = start(Dialect::Lmtp, fast(), b"hello there\r\n", |_| Act::Close).await;
    let e = c.unwrap_err();
    assert!(matches!(e, ClientError::Reply(_)), "{e}");
    let t = Timeouts::uniform(Duration::from_millis(50));
    let (c, _) = start(Dialect::Lmtp, t, b"", |_| Act::Silent).await;
    let e = c.unwrap_err();
    assert!(matches!(e, ClientError::Timeout("the greeting")), "{e}");
    let (c, _) = start(Dialect::Lmtp, fast(), b"554 go away\r\n", |_| Act::Close).await;
    let e = c.unwrap_err();
    assert!(
        matches!(&e, ClientError::Refused(_, r) if r.code == 554),
        "{e}"
    );
    // LMTP has no HELO fallback: a refused LHLO is the end.
    let lhlo = script(vec![("LHLO", Act::Say("502 5.5.2 what\r\n"))]);
    let (c, _) = start(Dialect::Lmtp, fast(), b"220 srv\r\n", lhlo).await;
    let e = c.unwrap_err();
    assert!(
        matches!(&e, ClientError::Refused("LHLO", r) if r.code == 502),
        "{e}"
    );
}

#[tokio::test]
async fn large_message_streams() {
    let (mut c, peer) = one_rcpt(LHLO_PIPE).await;
    let line = b".0123456789abcdef\r\n";
    let data: Vec<u8> = line.repeat(20_000);
    let r = rcpts(&["a@x.test"]);
    let out = c
        .send(&txn("s@x.test", &r), message(&data, 64 * 1024))
        .await;
    assert!(out.error.is_none(), "{:?}", out.error);
    drop(c);
    // Every line stuffed; the last CRLF is trimmed by the log.
    assert_eq!(
        peer.done().await[4].len(),
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
        let (mut c, peer) = one_rcpt(lhlo).await;
        let r = rcpts(&["a@x.test"]);
        let mut t = txn("s@x.test", &r);
        t.queue_id = Some("Q1B2C3");
        let out = c.send(&t, message(b"x\r\n", 64)).await;
        assert!(out.error.is_none(), "{:?}", out.error);
        assert_eq!(peer.lines()[1], want);
    }
}

#[tokio::test]
async fn unsafe_addresses_never_reach_the_wire() {
    // Bug 3: a queue file's sender or recipient with CR LF used to become
    // extra LMTP commands.
    let (mut c, peer) = one_rcpt(LHLO_PIPE).await;
    let r = rcpts(&["x@y.test\r\nRCPT TO:<evil@z.test>", "a@x.test"]);
    let out = c.send(&txn("s@x.test", &r), message(b"x\r\n", 64)).await;
    assert!(out.error.is_none(), "{:?}", out.error);
    assert_eq!(codes(&out), vec![553, 250]);
    let r = rcpts(&["a@x.test"]);
    let out = c
        .send(&txn("a@b\r\nRCPT TO:<x@y>", &r), message(b"x\r\n", 64))
        .await;
    assert!(matches!(out.error, Some(ClientError::Protocol(_))));
    assert!(out.replies[0].is_none());
    let seen = peer.lines();
    assert!(
        !seen.iter().any(|l| l.contains("evil") || l.contains("x@y")),
        "{seen:?}"
    );
}
