//! Files that local users write into maildrop/ are untrusted input (bug 3):
//! a hand-written file cannot smuggle LMTP commands, and its owner, not its
//! records, says who submitted it.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use common::*;
use facteur_spool::{Envelope, QueueName, Recipient};

/// A queue file for alice@example.test from `sender`, assembled record by
/// record as a local user could (docs/queue-file.md): the spool's writer
/// refuses to write such a sender.
fn hand_written(id: &str, sender: &str) -> Vec<u8> {
    let mut f = b"\x89FQF\r\n\x1a\n\x00\x01".to_vec();
    let mut record = |t: u8, payload: &[u8]| {
        f.push(t);
        f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        f.extend_from_slice(payload);
    };
    let rcpt = b"alice@example.test";
    let mut r = vec![0, 0, 0];
    r.extend_from_slice(&(rcpt.len() as u32).to_be_bytes());
    r.extend_from_slice(rcpt);
    record(b'Q', id.as_bytes());
    record(b'K', &1u64.to_be_bytes());
    record(b'A', &facteur_qmgr::schedule::now().to_be_bytes());
    record(b'S', sender.as_bytes());
    record(b'B', &[0]);
    record(b'D', &[0; 13]);
    record(b'R', &r);
    record(b'M', b"Subject: x\r\n\r\nx\r\n");
    record(b'X', b"");
    f
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_with_crlf_goes_to_corrupt_and_never_to_lmtp() {
    let mut root = root("");
    let (fake, qmgr) = with_fake(&mut root, ACCEPT).await;
    let id = "HANDWRITTEN1";
    // The file is well formed but for its sender.
    assert!(facteur_spool::parse_queue_file_bytes(&hand_written(id, "a@b.test")).is_ok());
    std::fs::write(
        root.spool().dir(QueueName::Maildrop).join(id),
        hand_written(id, "a@b\r\nRCPT TO:<x@y>"),
    )
    .unwrap();
    facteur_spool::wake_qmgr(&root.cfg.qmgr_socket());
    wait_for(10, "the file in corrupt/", || {
        root.ids(QueueName::Corrupt) == vec![id.to_string()]
    })
    .await;
    qmgr.stop().await;
    assert_eq!(fake.transactions(), 0);
    let lines = fake.lines.lock().unwrap().clone();
    assert!(!lines.iter().any(|l| l.contains("x@y")), "{lines:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_of_a_maildrop_file_says_who_submitted_it() {
    let root = root("");
    let ctx = facteur_qmgr::Context::from_config(&root.cfg).unwrap();
    let spool = root.spool();
    // What a local user could write: another user, and records that only
    // smtpd may write.
    let env = Envelope {
        sender: "alice@example.test".into(),
        recipients: vec![Recipient::new("bob@example.test")],
        local_user: Some("root".into()),
        auth_user: Some("alice@example.test".into()),
        client_addr: Some("192.0.2.1".into()),
        client_name: Some("trusted.example".into()),
        helo: Some("trusted.example".into()),
        protocol: Some("ESMTPSA".into()),
        arrival: facteur_qmgr::schedule::now(),
        ..Envelope::default()
    };
    let id = spool.put(QueueName::Maildrop, &env, b"Subject: x\r\n\r\nx\r\n");
    assert!(facteur_qmgr::queue::pickup(&ctx, QueueName::Maildrop, &id));

    let me = nix::unistd::geteuid();
    let name = nix::unistd::User::from_uid(me)
        .unwrap()
        .map(|u| u.name)
        .unwrap_or_else(|| me.to_string());
    let got = spool.envelope(QueueName::Active, &id);
    assert_eq!(got.local_user.as_deref(), Some(name.as_str()));
    assert_eq!(got.protocol.as_deref(), Some("sendmail"));
    assert_eq!(got.auth_user, None);
    assert_eq!(got.client_addr, None);
    assert_eq!(got.client_name, None);
    assert_eq!(got.helo, None);
    // The rest of the envelope is the file's.
    assert_eq!(got.sender, "alice@example.test");
    assert_eq!(got.recipients[0].address, "bob@example.test");
}
