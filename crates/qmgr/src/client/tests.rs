//! Client transcripts against scripted in-memory servers.

use super::*;
use tokio::io::{AsyncBufReadExt, BufReader, DuplexStream};

fn source(data: &[u8]) -> MessageSource {
    let (tx, rx) = mpsc::channel(data.len().div_ceil(3).max(1));
    // Several small chunks, to cross chunk boundaries.
    for c in data.chunks(3) {
        tx.try_send(Ok(c.to_vec())).unwrap();
    }
    rx
}

fn big_source(data: Vec<u8>) -> MessageSource {
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        let _ = tx.send(Ok(data)).await;
    });
    rx
}

/// A scripted server: for each expected input line (a prefix), the reply to
/// send (may be empty: no reply). `DATA-BODY` reads until the dot and
/// records the body. Returns what it received.
async fn server(
    io: DuplexStream,
    greeting: &str,
    script: Vec<(&'static str, &'static str)>,
) -> Vec<String> {
    let (r, mut w) = tokio::io::split(io);
    let mut r = BufReader::new(r);
    let mut seen = Vec::new();
    w.write_all(greeting.as_bytes()).await.unwrap();
    for (expect, answer) in script {
        if expect == "BODY" {
            let mut body = String::new();
            loop {
                let mut l = String::new();
                if r.read_line(&mut l).await.unwrap() == 0 {
                    break;
                }
                if l == ".\r\n" {
                    break;
                }
                body.push_str(&l);
            }
            seen.push(body);
        } else if expect == "CLOSE" {
            return seen;
        } else if !expect.is_empty() {
            let mut l = String::new();
            r.read_line(&mut l).await.unwrap();
            assert!(l.starts_with(expect), "expected {expect:?}, got {l:?}");
            seen.push(l);
        }
        w.write_all(answer.as_bytes()).await.unwrap();
    }
    seen
}

const LHLO_PIPE: &str = "250-srv\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n";

fn fast() -> Timeouts {
    Timeouts {
        command: Duration::from_secs(5),
        data_end: Duration::from_secs(5),
    }
}

#[tokio::test]
async fn pipelined_transaction_per_recipient_replies() {
    let (a, b) = tokio::io::duplex(1 << 16);
    let srv = tokio::spawn(server(
        b,
        "220 srv LMTP\r\n",
        vec![
            ("LHLO qmgr.test", LHLO_PIPE),
            ("MAIL FROM:<s@x.test> BODY=8BITMIME", "250 2.1.0 OK\r\n"),
            ("RCPT TO:<a@x.test>", "250 2.1.5 OK\r\n"),
            ("RCPT TO:<b@x.test>", "550 5.1.1 no such user\r\n"),
            ("RCPT TO:<c@x.test>", "250 2.1.5 OK\r\n"),
            ("DATA", "354 go\r\n"),
            (
                "BODY",
                "250 2.0.0 <a@x.test> Saved as T1\r\n452 4.2.2 over quota\r\n",
            ),
            ("QUIT", "221 bye\r\n"),
        ],
    ));
    let mut c = Client::start(a, "qmgr.test", fast()).await.unwrap();
    assert_eq!(
        c.caps,
        Caps {
            pipelining: true,
            eight_bit_mime: true,
            smtputf8: true
        }
    );
    let rcpts = vec!["a@x.test".to_string(), "b@x.test".into(), "c@x.test".into()];
    let msg = b"Subject: t\r\n\r\n.leading dot\r\n..two\r\nend";
    let out = c
        .send(
            &Txn {
                sender: "s@x.test",
                eight_bit: true,
                smtputf8: false,
                rcpts: &rcpts,
            },
            source(msg),
        )
        .await;
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
    let seen = srv.await.unwrap();
    assert_eq!(
        seen[6],
        "Subject: t\r\n\r\n..leading dot\r\n...two\r\nend\r\n"
    );
}

#[tokio::test]
async fn connection_lost_after_first_data_reply() {
    let (a, b) = tokio::io::duplex(1 << 16);
    let srv = tokio::spawn(server(
        b,
        "220 srv\r\n",
        vec![
            ("LHLO", LHLO_PIPE),
            ("MAIL", "250 OK\r\n"),
            ("RCPT", "250 OK\r\n"),
            ("RCPT", "250 OK\r\n"),
            ("DATA", "354 go\r\n"),
            ("BODY", "250 2.0.0 first saved\r\n"),
            ("CLOSE", ""),
        ],
    ));
    let mut c = Client::start(a, "q", fast()).await.unwrap();
    let rcpts = vec!["a@x.test".to_string(), "b@x.test".into()];
    let out = c
        .send(
            &Txn {
                sender: "",
                eight_bit: false,
                smtputf8: false,
                rcpts: &rcpts,
            },
            source(b"x\r\n"),
        )
        .await;
    srv.await.unwrap();
    assert_eq!(out.replies[0].as_ref().unwrap().code, 250);
    assert!(out.replies[1].is_none());
    assert!(matches!(out.error, Some(ClientError::Closed)));
}

#[tokio::test]
async fn mail_refused_without_pipelining() {
    let (a, b) = tokio::io::duplex(1 << 16);
    let srv = tokio::spawn(server(
        b,
        "220 srv\r\n",
        vec![
            ("LHLO", "250 srv\r\n"),
            ("MAIL FROM:<>\r\n", "451 4.3.0 try later\r\n"),
            ("RSET", "250 OK\r\n"),
            ("MAIL", "250 OK\r\n"),
            ("RCPT TO:<a@x.test>", "550 5.1.1 unknown\r\n"),
            ("RSET", "250 OK\r\n"),
        ],
    ));
    let mut c = Client::start(a, "q", fast()).await.unwrap();
    assert!(!c.caps.pipelining);
    let rcpts = vec!["a@x.test".to_string()];
    // 8BITMIME not offered: no BODY parameter.
    let txn = Txn {
        sender: "",
        eight_bit: true,
        smtputf8: true,
        rcpts: &rcpts,
    };
    let out = c.send(&txn, source(b"x")).await;
    assert!(out.error.is_none());
    assert_eq!(out.replies[0].as_ref().unwrap().code, 451);
    // Same connection: all recipients refused, no DATA sent.
    let out = c.send(&txn, source(b"x")).await;
    assert!(out.error.is_none(), "{:?}", out.error);
    assert_eq!(out.replies[0].as_ref().unwrap().code, 550);
    srv.await.unwrap();
}

#[tokio::test]
async fn garbage_and_timeouts_are_errors() {
    let (a, b) = tokio::io::duplex(1 << 16);
    let srv = tokio::spawn(server(b, "hello there\r\n", vec![]));
    assert!(matches!(
        Client::start(a, "q", fast()).await,
        Err(ClientError::Reply(_))
    ));
    srv.await.unwrap();
    let (a, _b) = tokio::io::duplex(1 << 16);
    let t = Timeouts {
        command: Duration::from_millis(50),
        data_end: Duration::from_millis(50),
    };
    assert!(matches!(
        Client::start(a, "q", t).await,
        Err(ClientError::Timeout(_))
    ));
    let (a, b) = tokio::io::duplex(1 << 16);
    let srv = tokio::spawn(server(b, "554 go away\r\n", vec![]));
    assert!(matches!(
        Client::start(a, "q", fast()).await,
        Err(ClientError::Refused(r)) if r.code == 554
    ));
    srv.await.unwrap();
}

#[tokio::test]
async fn large_message_streams() {
    let (a, b) = tokio::io::duplex(1 << 12);
    let srv = tokio::spawn(server(
        b,
        "220 srv\r\n",
        vec![
            ("LHLO", LHLO_PIPE),
            ("MAIL", "250 OK\r\n"),
            ("RCPT", "250 OK\r\n"),
            ("DATA", "354 go\r\n"),
            ("BODY", "250 OK\r\n"),
        ],
    ));
    let mut c = Client::start(a, "q", fast()).await.unwrap();
    let line = b".0123456789abcdef\r\n";
    let data: Vec<u8> = line.repeat(20_000);
    let rcpts = vec!["a@x.test".to_string()];
    let out = c
        .send(
            &Txn {
                sender: "s@x.test",
                eight_bit: false,
                smtputf8: false,
                rcpts: &rcpts,
            },
            big_source(data),
        )
        .await;
    assert!(out.error.is_none(), "{:?}", out.error);
    let seen = srv.await.unwrap();
    assert_eq!(seen[4].len(), (line.len() + 1) * 20_000);
}

#[test]
fn dot_stuffing_at_every_split() {
    let msg = b".a\r\n.\r\nb.c\r\n..\r\n.";
    let want = b"..a\r\n..\r\nb.c\r\n...\r\n..\r\n.\r\n";
    for cut in 0..=msg.len() {
        let mut d = DotStuffer::default();
        let mut out = Vec::new();
        d.push(&msg[..cut], &mut out);
        d.push(&msg[cut..], &mut out);
        d.finish(&mut out);
        assert_eq!(out, want, "cut at {cut}");
    }
    let mut out = Vec::new();
    let d = DotStuffer::default();
    d.finish(&mut out);
    assert_eq!(out, b".\r\n");
    let mut d = DotStuffer::default();
    let mut out = Vec::new();
    d.push(b"x\r", &mut out);
    d.push(b"\n", &mut out);
    d.finish(&mut out);
    assert_eq!(out, b"x\r\n.\r\n");
}
