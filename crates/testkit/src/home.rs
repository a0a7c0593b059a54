//! MailHome: what the tests of the mailbox access daemons (imapd, pop3d)
//! start from: a temporary directory holding a mail store, a directory in
//! memory with two users, messages delivered into the first user's INBOX,
//! and a test CA whose certificate the daemon serves.

use crate::{Accounts, TestCa, store_at};
use facteur_directory::Directory;
use facteur_store::{Quota, Store};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The users of a [`MailHome`] and their passwords.
pub const ALICE: (&str, &str) = ("alice@example.test", "alice-pw");
pub const BOB: (&str, &str) = ("bob@example.test", "bob-pw");

/// A mail store, a directory and a certificate in a temporary directory
/// (removed when it drops).
pub struct MailHome {
    pub tmp: tempfile::TempDir,
    /// Alice and Bob of `example.test`, with `{PLAIN}` passwords
    /// ([`ALICE`], [`BOB`]).
    pub directory: Arc<dyn Directory>,
    /// The store, as the daemon under test opens it.
    pub store: Store,
    pub ca: TestCa,
}

impl MailHome {
    /// Delivers `messages` into Alice's INBOX, in order.
    pub fn new(messages: &[&[u8]]) -> MailHome {
        let tmp = tempfile::tempdir().expect("a temporary directory");
        let directory = Accounts::new()
            .user(ALICE.0, &format!("{{PLAIN}}{}", ALICE.1))
            .user(BOB.0, &format!("{{PLAIN}}{}", BOB.1))
            .in_memory();
        let store = store_at(&tmp.path().join("mail"));
        for m in messages {
            store
                .deliver(ALICE.0, None, &mut &m[..], Quota::default())
                .expect("delivering a fixture message");
        }
        let ca = TestCa::new(tmp.path());
        MailHome {
            directory: Arc::new(directory),
            store,
            ca,
            tmp,
        }
    }

    /// The mail root.
    pub fn mail_root(&self) -> PathBuf {
        self.tmp.path().join("mail")
    }

    /// The certificate chain and key the daemon serves (PEM files).
    pub fn tls_files(&self) -> (&Path, &Path) {
        (&self.ca.cert, &self.ca.key)
    }

    /// A store handle of its own (its own index connection), as another
    /// process would have.
    pub fn other_store(&self) -> Store {
        store_at(&self.mail_root())
    }

    /// The UIDs of `user`'s `mailbox`, read through [`Self::other_store`].
    pub fn uids(&self, user: &str, mailbox: &str) -> Vec<u32> {
        let us = self
            .other_store()
            .open_user(user, Quota::default())
            .expect("opening the user's store");
        let mb = us.select(mailbox).expect("selecting the mailbox");
        mb.messages().iter().map(|m| m.uid).collect()
    }
}
