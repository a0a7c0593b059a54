//! A spool as tests read it: its queue files with their envelopes, a
//! message's bytes, and a message queued in one call.

use facteur_spool::{Envelope, QueueFile, QueueName, Spool};
use std::io::{Read, Write};

/// What tests ask of a [`Spool`].
pub trait SpoolExt {
    /// The ids in `q`, in arrival order.
    fn ids(&self, q: QueueName) -> Vec<String>;
    /// The queue files in `q`, in arrival order.
    fn queued(&self, q: QueueName) -> Vec<QueueFile>;
    /// The envelope of `id` in `q`, with its latest delivery state.
    fn envelope(&self, q: QueueName, id: &str) -> Envelope;
    /// The message of `id` in `q` (network form: CRLF, not dot-stuffed).
    fn message(&self, q: QueueName, id: &str) -> Vec<u8>;
    /// As [`SpoolExt::message`], as text (the test fails on bad UTF-8).
    fn message_text(&self, q: QueueName, id: &str) -> String;
    /// Writes `message` with `env` into `q` (incoming or maildrop) and
    /// commits it; returns its id. No one is woken.
    fn put(&self, q: QueueName, env: &Envelope, message: &[u8]) -> String;
}

impl SpoolExt for Spool {
    fn ids(&self, q: QueueName) -> Vec<String> {
        self.list(q).unwrap_or_else(|e| panic!("listing {q}: {e}"))
    }

    fn queued(&self, q: QueueName) -> Vec<QueueFile> {
        self.ids(q)
            .iter()
            .map(|id| {
                self.read(q, id)
                    .unwrap_or_else(|e| panic!("reading {q}/{id}: {e}"))
            })
            .collect()
    }

    fn envelope(&self, q: QueueName, id: &str) -> Envelope {
        self.read(q, id)
            .unwrap_or_else(|e| panic!("reading {q}/{id}: {e}"))
            .envelope
    }

    fn message(&self, q: QueueName, id: &str) -> Vec<u8> {
        let mut v = Vec::new();
        self.open_message(q, id)
            .and_then(|mut r| Ok(r.read_to_end(&mut v)?))
            .unwrap_or_else(|e| panic!("reading the message of {q}/{id}: {e}"));
        v
    }

    fn message_text(&self, q: QueueName, id: &str) -> String {
        String::from_utf8(self.message(q, id)).expect("a message in UTF-8")
    }

    fn put(&self, q: QueueName, env: &Envelope, message: &[u8]) -> String {
        let mut w = self
            .create(q, env)
            .unwrap_or_else(|e| panic!("creating a file in {q}: {e}"));
        w.write_all(message).expect("writing the message");
        w.commit().expect("committing the queue file")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use facteur_spool::Recipient;

    #[test]
    fn put_then_read_back() {
        let d = tempfile::tempdir().unwrap();
        let spool = Spool::open(d.path()).unwrap();
        let env = Envelope {
            sender: "a@example.test".into(),
            recipients: vec![Recipient::new("b@example.test")],
            ..Envelope::default()
        };
        let id = spool.put(QueueName::Incoming, &env, b"Subject: x\r\n\r\nx\r\n");
        assert_eq!(spool.ids(QueueName::Incoming), std::slice::from_ref(&id));
        assert_eq!(
            spool.queued(QueueName::Incoming)[0].envelope.sender,
            "a@example.test"
        );
        assert_eq!(
            spool.envelope(QueueName::Incoming, &id).recipients[0].address,
            "b@example.test"
        );
        assert_eq!(
            spool.message_text(QueueName::Incoming, &id),
            "Subject: x\r\n\r\nx\r\n"
        );
    }
}
