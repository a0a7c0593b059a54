//! Helpers of the spool's tests.

pub(crate) use crate::spool::MAILDROP_FILE_MODE;
pub(crate) use crate::{Envelope, QueueName, Recipient, Spool, SpoolError};
use facteur_mail::dsn::{BodyType, Notify, Ret};
pub(crate) use std::io::{Read, Write};

/// A spool in a new temporary directory.
pub(crate) fn temp_spool() -> (tempfile::TempDir, Spool) {
    let d = tempfile::tempdir().unwrap();
    let spool = Spool::open(d.path()).unwrap();
    (d, spool)
}

/// Whether the directory `dir` is empty.
pub(crate) fn is_empty(dir: &std::path::Path) -> bool {
    std::fs::read_dir(dir).unwrap().next().is_none()
}

pub(crate) fn env() -> Envelope {
    Envelope {
        sender: "".into(),
        recipients: vec![
            Recipient::new("a@example.net"),
            Recipient {
                address: "bé@exämple.org".into(),
                orcpt: Some("utf-8;bé@exämple.org".into()),
                notify: Notify {
                    failure: true,
                    delay: true,
                    ..Notify::default()
                },
                ..Recipient::default()
            },
        ],
        ret: Some(Ret::Full),
        envid: Some("E1".into()),
        body: BodyType::BinaryMime,
        smtputf8: true,
        client_addr: Some("192.0.2.1".into()),
        client_name: None,
        helo: Some("[192.0.2.1]".into()),
        protocol: Some("ESMTP".into()),
        auth_user: None,
        local_user: None,
        arrival: 1_700_000_000,
        ..Envelope::default()
    }
}

pub(crate) fn put(spool: &Spool, q: QueueName, msg: &[u8]) -> String {
    let mut w = spool.create(q, &env()).unwrap();
    w.write_all(msg).unwrap();
    w.commit().unwrap()
}

pub(crate) fn message(spool: &Spool, q: QueueName, id: &str) -> Vec<u8> {
    let mut v = Vec::new();
    spool
        .open_message(q, id)
        .unwrap()
        .read_to_end(&mut v)
        .unwrap();
    v
}

pub(crate) fn env_with(rcpt: &str) -> Envelope {
    Envelope {
        sender: "s@x.test".into(),
        recipients: vec![Recipient::new(rcpt)],
        ..Envelope::default()
    }
}
