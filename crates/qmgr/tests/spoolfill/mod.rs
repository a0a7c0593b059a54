//! Filling a spool fast for the backlog tests: whole queue files written
//! straight into a queue directory with the spool's own encoder
//! (`facteur_spool::format`), without the fsyncs of `Spool::create` (a
//! test's temporary spool needs no durability, and 50,000 fsynced files
//! would take minutes).

#![allow(dead_code, clippy::unwrap_used)]

use facteur_spool::{Envelope, QueueName, Recipient, Spool};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

const MESSAGE: &[u8] = b"From: <sender@example.test>\r\nSubject: backlog\r\n\r\nHello.\r\n";

/// Writes `n` messages for `rcpt` into queue `q`, each envelope shaped by
/// `edit`. Returns their ids.
pub fn fill(
    spool: &Spool,
    q: QueueName,
    n: usize,
    rcpt: &str,
    edit: impl Fn(&mut Envelope),
) -> Vec<String> {
    let now = facteur_qmgr::schedule::now();
    (0..n)
        .map(|i| {
            let id = facteur_util::new_id();
            let mut env = Envelope {
                queue_id: id.clone(),
                sender: "sender@remote.test".into(),
                recipients: vec![Recipient::new(rcpt)],
                arrival: now,
                protocol: Some("ESMTP".into()),
                ..Envelope::default()
            };
            edit(&mut env);
            let bytes =
                facteur_spool::format::encode_queue_file_bytes(&env, i as u64, MESSAGE).unwrap();
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(spool.dir(q).join(&id))
                .unwrap()
                .write_all(&bytes)
                .unwrap();
            id
        })
        .collect()
}

/// Tried once, failed temporarily, next attempt in an hour.
pub fn deferred_for_an_hour(env: &mut Envelope) {
    env.attempts = 1;
    env.next_attempt = facteur_qmgr::schedule::now() + 3600;
    for r in &mut env.recipients {
        r.status = facteur_mail::dsn::RcptStatus::Deferred;
        r.last_reply = Some("451 4.3.0 mailbox temporarily unavailable".into());
    }
}
