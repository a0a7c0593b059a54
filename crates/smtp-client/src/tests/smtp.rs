//! The SMTP dialect: EHLO/HELO, one final reply per transaction, BDAT,
//! bounded and time-limited replies, no early talk, credentials only over
//! TLS.

use super::{codes, pipe, start};
use crate::testing::{Act, message, standard};
use crate::{ClientError, Connection, Dialect, Timeouts, Txn, TxnRcpt};
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

/// A peer that answers as [`standard`] but for the lines `f` takes.
fn except(
    f: impl Fn(&str) -> Option<Act> + Send + 'static,
) -> impl FnMut(&str) -> Act + Send + 'static {
    move |l| f(l).unwrap_or_else(|| standard(l))
}

/// A connection to a peer that greets and answers with `f`.
async fn smtp(
    f: impl FnMut(&str) -> Act + Send + 'static,
) -> (Connection<crate::BoxIo>, super::Peer) {
    let (c, peer) = start(Dialect::Smtp, short(), b"220 peer.test ESMTP\r\n", f).await;
    (c.unwrap(), peer)
}

#[tokio::test]
async fn one_of_three_refused_one_deferred_pipelined_in_one_batch() {
    let mut pending: Vec<&'static str> = Vec::new();
    let (mut s, peer) = smtp(move |l| {
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
    })
    .await;
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
    assert_eq!(codes(&out), vec![250, 550, 451]);
    let seen = peer.lines();
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
    assert_eq!(codes(&out), vec![250]);
    s.quit().await;
}

#[tokio::test]
async fn reply_before_greeting_and_talk_before_ehlo_are_refused() {
    let (c, _) = start(Dialect::Smtp, short(), b"250 not a greeting\r\n", standard).await;
    let e = c.unwrap_err();
    assert!(matches!(e, ClientError::Refused("the greeting", _)), "{e}");
    // A greeting with an unsolicited reply behind it (pipelining desync).
    let (c, _) = start(
        Dialect::Smtp,
        short(),
        b"220 hi\r\n250 surprise\r\n",
        standard,
    )
    .await;
    let e = c.unwrap_err();
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
    let t0 = std::time::Instant::now();
    let (c, _) = start(Dialect::Smtp, short(), b"", |_| Act::Silent).await;
    let e = c.unwrap_err();
    assert!(matches!(e, ClientError::Timeout("the greeting")), "{e}");
    assert!(t0.elapsed() < Duration::from_secs(3));
    // Silent after the final dot: the recipients get no reply (deferred).
    let (mut s, _) = smtp(except(|l| l.starts_with("<DATA>").then_some(Act::Silent))).await;
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
    let (mut s, _) = smtp(except(|l| l.starts_with("<DATA>").then_some(Act::Close))).await;
    let r = rcpts(&["a@x.test", "b@x.test"]);
    let out = s.send(&txn("s@y.test", &r), message(b"hi\r\n", 64)).await;
    assert!(out.replies.iter().all(Option::is_none));
    assert!(out.error.unwrap().as_reply_text().starts_with("4.4.2"));
}

#[tokio::test]
async fn a_source_failure_never_sends_the_final_dot() {
    for chunking in [false, true] {
        let (mut s, peer) = smtp(except(move |l| {
            if l.starts_with("EHLO") && chunking {
                Some(Act::Say("250-peer\r\n250 CHUNKING\r\n"))
            } else {
                l.starts_with("BDAT")
                    .then_some(Act::Say("250 2.0.0 chunk ok\r\n"))
            }
        }))
        .await;
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
        let seen = peer.done().await;
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
    let mut n = 0;
    let (mut s, _) = smtp(move |l| {
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
    })
    .await;
    let r = rcpts(&["a@x.test", "b@x.test"]);
    let t = txn("s@y.test", &r);
    let out = s.send(&t, message(b"hi\r\n", 64)).await;
    assert!(out.error.is_none(), "{:?}", out.error);
    assert_eq!(codes(&out), vec![451, 451]);
    let out = s.send(&t, message(b"hi\r\n", 64)).await;
    assert_eq!(codes(&out), vec![554, 554]);
}

#[tokio::test]
async fn chunking_sends_bdat_and_helo_fallback() {
    let (mut s, peer) = smtp(except(|l| {
        if l.starts_with("EHLO") {
            Some(Act::Say("250-peer\r\n250 CHUNKING\r\n"))
        } else {
            l.starts_with("BDAT")
                .then_some(Act::Say("250 2.0.0 ok\r\n"))
        }
    }))
    .await;
    let r = rcpts(&["a@x.test"]);
    let out = s.send(&txn("s@y.test", &r), message(b".x\r\n", 64)).await;
    assert_eq!(codes(&out), vec![250]);
    let seen = peer.lines();
    // No dot-stuffing with BDAT, no DSN parameters without DSN.
    assert_eq!(seen[2], "RCPT TO:<a@x.test>");
    assert_eq!(seen[3], "BDAT 4<.x\r\n>");
    assert_eq!(seen[4], "BDAT 0 LAST<>");

    // EHLO refused with 502: HELO, and no extensions.
    let (s, _) = smtp(except(|l| {
        if l.starts_with("EHLO") {
            Some(Act::Say("502 5.5.2 what\r\n"))
        } else {
            l.starts_with("HELO")
                .then_some(Act::Say("250 old.peer\r\n"))
        }
    }))
    .await;
    assert!(!s.esmtp && !s.ext.pipelining);
    assert_eq!(s.server_name, "old.peer");
}

#[tokio::test]
async fn credentials_only_over_tls() {
    let (mut s, peer) = smtp(except(|l| {
        l.starts_with("EHLO")
            .then_some(Act::Say("250-peer\r\n250 AUTH PLAIN LOGIN\r\n"))
    }))
    .await;
    let e = s.auth("user", "secret").await.unwrap_err();
    assert!(matches!(e, ClientError::Protocol(_)), "{e}");
    s.quit().await;
    assert!(!peer.done().await.iter().any(|l| l.starts_with("AUTH")));
}
