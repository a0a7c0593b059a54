//! The SMTP dialect: EHLO/HELO, one final reply per transaction, BDAT,
//! bounded and time-limited replies, no early talk.

use super::{log, pipe};
use crate::testing::{Act, lines, message, run_peer, standard};
use crate::{ClientError, Connection, Dialect, Timeouts, Txn, TxnRcpt, base64};
use facteur_smtp_codec::client::MailParams;
use facteur_smtp_codec::reply::ReplyError;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn short() -> Timeouts {
    Timeouts::uniform(Duration::from_millis(300))
}

fn rcpts(a: &[&str]) -> Vec<TxnRcpt> {
    a.iter()
        .map(|a| TxnRcpt {
            address: a.to_string(),
            notify: Some("FAILURE".into()),
            orcpt: Some(format!("rfc822;{a}")),
        })
        .collect()
}

fn txn<'a>(sender: &'a str, rcpts: &'a [TxnRcpt]) -> Txn<'a> {
    Txn {
        sender,
        params: MailParams::default(),
        rcpts,
        queue_id: Some("Q1"),
    }
}

#[tokio::test]
async fn one_of_three_refused_one_deferred_pipelined_in_one_batch() {
    let (io, peer) = pipe();
    let log = log();
    let mut pending: Vec<&'static str> = Vec::new();
    tokio::spawn(run_peer(
        peer,
        b"220 peer.test ESMTP\r\n",
        log.clone(),
        move |l| {
            // Pipelining: answer nothing until DATA arrives, then everything in
            // order. A client that waited for each reply would time out here.
            if l.starts_with("MAIL") {
                pending = vec!["250 2.1.0 ok\r\n"];
                return Act::Silent;
            }
            if l.starts_with("RCPT") {
                pending.push(if l.contains("<b@") {
                    "550 5.1.1 no such user\r\n"
                } else if l.contains("<c@") {
                    "451 4.2.0 later\r\n"
                } else {
                    "250 2.1.5 ok\r\n"
                });
                return Act::Silent;
            }
            if l == "DATA" {
                pending.push("354 go\r\n");
                let all: String = pending.concat();
                return Act::Say(Box::leak(all.into_boxed_str()));
            }
            standard(l)
        },
    ));
    let mut s = Connection::start(io, Dialect::Smtp, "client.test", short())
        .await
        .unwrap();
    assert!(s.ext.pipelining && s.ext.dsn && !s.tls);
    let r = rcpts(&["a@x.test", "b@x.test", "c@x.test"]);
    let mut t = txn("s@y.test", &r);
    t.params = MailParams {
        envid: Some("E1"),
        ret_hdrs: Some(true),
        ..MailParams::default()
    };
    let out = s
        .send(&t, message(b"Subject: x\r\n\r\n.dot\r\nend\r\n", 64))
        .await;
    assert!(out.error.is_none(), "{:?}", out.error);
    let codes: Vec<u16> = out
        .replies
        .iter()
        .map(|r| r.as_ref().unwrap().code)
        .collect();
    assert_eq!(codes, vec![250, 550, 451]);
    let seen = lines(&log);
    // No XQUEUEID in SMTP, even with a queue id.
    assert_eq!(seen[1], "MAIL FROM:<s@y.test> RET=HDRS ENVID=E1");
    assert_eq!(
        seen[2],
        "RCPT TO:<a@x.test> NOTIFY=FAILURE ORCPT=rfc822;a@x.test"
    );
    assert_eq!(seen[5], "DATA");
    // Dot-stuffed on the wire.
    assert_eq!(seen[6], "<DATA>Subject: x\r\n\r\n..dot\r\nend"); // (trailing CRLF trimmed by the log)
    // A second message on the same connection, after RSET.
    s.rset().await.unwrap();
    let r = rcpts(&["a@x.test"]);
    let out = s.send(&txn("", &r), message(b"hi\r\n", 64)).await;
    assert_eq!(out.replies[0].as_ref().unwrap().code, 250);
    s.quit().await;
}

#[tokio::test]
async fn reply_before_greeting_and_talk_before_ehlo_are_refused() {
    let (io, peer) = pipe();
    tokio::spawn(run_peer(peer, b"250 not a greeting\r\n", log(), standard));
    let e = Connection::start(io, Dialect::Smtp, "c", short())
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::Refused("the greeting", _)), "{e}");
    // A greeting with an unsolicited reply behind it (pipelining desync).
    let (io, peer) = pipe();
    tokio::spawn(run_peer(
        peer,
        b"220 hi\r\n250 surprise\r\n",
        log(),
        standard,
    ));
    let e = Connection::start(io, Dialect::Smtp, "c", short())
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::Protocol(_)), "{e}");
}

#[tokio::test]
async fn ten_thousand_line_reply_is_refused_with_bounded_memory() {
    let (io, mut peer) = pipe();
    tokio::spawn(async move {
        peer.write_all(b"220 hi\r\n").await.unwrap();
        let mut b = [0u8; 64];
        let _ = peer.read(&mut b).await;
        for _ in 0..10_000 {
            if peer
                .write_all(b"250-xxxxxxxxxxxxxxxxxxxxxxxx\r\n")
                .await
                .is_err()
            {
                return; // the client hung up: good
            }
        }
        let _ = peer.write_all(b"250 end\r\n").await;
    });
    let e = Connection::start(io, Dialect::Smtp, "c", short())
        .await
        .unwrap_err();
    assert!(
        matches!(e, ClientError::Reply(ReplyError::TooManyLines)),
        "{e}"
    );
}

#[tokio::test]
async fn a_peer_that_hangs_times_out_at_each_stage() {
    // No greeting at all.
    let (io, _peer) = pipe();
    let t0 = std::time::Instant::now();
    let e = Connection::start(io, Dialect::Smtp, "c", short())
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::Timeout("the greeting")), "{e}");
    assert!(t0.elapsed() < Duration::from_secs(3));
    // Silent after the final dot: the recipients get no reply (deferred).
    let (io, peer) = pipe();
    tokio::spawn(run_peer(peer, b"220 hi\r\n", log(), |l| {
        if l.starts_with("<DATA>") {
            Act::Silent
        } else {
            standard(l)
        }
    }));
    let mut s = Connection::start(io, Dialect::Smtp, "c", short())
        .await
        .unwrap();
    let r = rcpts(&["a@x.test"]);
    let out = s.send(&txn("s@y.test", &r), message(b"hi\r\n", 64)).await;
    assert!(out.replies[0].is_none());
    assert!(matches!(
        out.error,
        Some(ClientError::Timeout("the reply after the final dot"))
    ));
}

#[tokio::test]
async fn close_mid_data_leaves_recipients_unanswered() {
    let (io, peer) = pipe();
    tokio::spawn(run_peer(peer, b"220 hi\r\n", log(), |l| {
        if l.starts_with("<DATA>") {
            Act::Close
        } else {
            standard(l)
        }
    }));
    let mut s = Connection::start(io, Dialect::Smtp, "c", short())
        .await
        .unwrap();
    let r = rcpts(&["a@x.test", "b@x.test"]);
    let out = s.send(&txn("s@y.test", &r), message(b"hi\r\n", 64)).await;
    assert!(out.replies.iter().all(Option::is_none));
    assert!(out.error.unwrap().as_reply_text().starts_with("4.4.2"));
}

#[tokio::test]
async fn a_source_failure_never_sends_the_final_dot() {
    for chunking in [false, true] {
        let (io, peer) = pipe();
        let log = log();
        tokio::spawn(run_peer(peer, b"220 hi\r\n", log.clone(), move |l| {
            if l.starts_with("EHLO") && chunking {
                Act::Say("250-peer\r\n250 CHUNKING\r\n")
            } else if l.starts_with("BDAT") {
                Act::Say("250 2.0.0 chunk ok\r\n")
            } else {
                standard(l)
            }
        }));
        let mut s = Connection::start(io, Dialect::Smtp, "c", short())
            .await
            .unwrap();
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        tx.try_send(Ok(b"Subject: x\r\n".to_vec())).unwrap();
        tx.try_send(Err(std::io::Error::other("disk on fire")))
            .unwrap();
        let r = rcpts(&["a@x.test"]);
        let out = s.send(&txn("s@y.test", &r), rx).await;
        assert!(out.replies[0].is_none());
        let e = out.error.unwrap();
        assert!(e.as_reply_text().starts_with("4.3.0"), "{e}");
        drop(s);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let seen = lines(&log);
        assert!(
            !seen
                .iter()
                .any(|l| l.starts_with("<DATA>") || l.contains("LAST")),
            "{seen:?}"
        );
    }
}

#[tokio::test]
async fn temporary_mail_refusal_and_permanent_data_refusal() {
    let (io, peer) = pipe();
    let mut n = 0;
    tokio::spawn(run_peer(peer, b"220 hi\r\n", log(), move |l| {
        if l.starts_with("MAIL") {
            n += 1;
            if n == 1 {
                return Act::Say("451 4.3.0 busy\r\n");
            }
        }
        if l.starts_with("RCPT") && n == 1 {
            return Act::Say("503 5.5.1 need MAIL\r\n");
        }
        if l == "DATA" && n == 1 {
            return Act::Say("503 5.5.1 need RCPT\r\n");
        }
        if l.starts_with("<DATA>") {
            return Act::Say("554 5.7.1 content refused\r\n");
        }
        standard(l)
    }));
    let mut s = Connection::start(io, Dialect::Smtp, "c", short())
        .await
        .unwrap();
    let r = rcpts(&["a@x.test", "b@x.test"]);
    let t = txn("s@y.test", &r);
    let out = s.send(&t, message(b"hi\r\n", 64)).await;
    assert!(out.error.is_none(), "{:?}", out.error);
    assert!(out.replies.iter().all(|r| r.as_ref().unwrap().code == 451));
    let out = s.send(&t, message(b"hi\r\n", 64)).await;
    assert!(out.replies.iter().all(|r| r.as_ref().unwrap().code == 554));
}

#[tokio::test]
async fn chunking_sends_bdat_and_helo_fallback() {
    let (io, peer) = pipe();
    let log = log();
    tokio::spawn(run_peer(peer, b"220 hi\r\n", log.clone(), |l| {
        if l.starts_with("EHLO") {
            Act::Say("250-peer\r\n250 CHUNKING\r\n")
        } else if l.starts_with("BDAT") {
            Act::Say("250 2.0.0 ok\r\n")
        } else {
            standard(l)
        }
    }));
    let mut s = Connection::start(io, Dialect::Smtp, "c", short())
        .await
        .unwrap();
    let r = rcpts(&["a@x.test"]);
    let out = s.send(&txn("s@y.test", &r), message(b".x\r\n", 64)).await;
    assert_eq!(out.replies[0].as_ref().unwrap().code, 250);
    let seen = lines(&log);
    // No dot-stuffing with BDAT, no DSN parameters without DSN.
    assert_eq!(seen[2], "RCPT TO:<a@x.test>");
    assert_eq!(seen[3], "BDAT 4<.x\r\n>");
    assert_eq!(seen[4], "BDAT 0 LAST<>");

    // EHLO refused with 502: HELO, and no extensions.
    let (io, peer) = pipe();
    tokio::spawn(run_peer(peer, b"220 hi\r\n", super::log(), |l| {
        if l.starts_with("EHLO") {
            Act::Say("502 5.5.2 what\r\n")
        } else if l.starts_with("HELO") {
            Act::Say("250 old.peer\r\n")
        } else {
            standard(l)
        }
    }));
    let s = Connection::start(io, Dialect::Smtp, "c", short())
        .await
        .unwrap();
    assert!(!s.esmtp && !s.ext.pipelining);
}

#[tokio::test]
async fn credentials_only_over_tls() {
    let (io, peer) = pipe();
    let log = log();
    tokio::spawn(run_peer(peer, b"220 hi\r\n", log.clone(), |l| {
        if l.starts_with("EHLO") {
            Act::Say("250-peer\r\n250 AUTH PLAIN LOGIN\r\n")
        } else {
            standard(l)
        }
    }));
    let mut s = Connection::start(io, Dialect::Smtp, "c", short())
        .await
        .unwrap();
    let e = s.auth("user", "secret").await.unwrap_err();
    assert!(matches!(e, ClientError::Protocol(_)), "{e}");
    s.quit().await;
    assert!(!lines(&log).iter().any(|l| l.starts_with("AUTH")));
}

#[test]
fn base64_rfc4648_vectors() {
    for (i, o) in [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foobar", "Zm9vYmFy"),
    ] {
        assert_eq!(base64(i.as_bytes()), o);
    }
}
