//! facteur-testkit: what the daemons' tests share, so that no test file
//! carries its own copy of a reply reader, a transcript loop, a temporary
//! root or a test certificate. A dev-dependency only: no program links it.
//!
//! Layout:
//!
//! ```text
//! client.rs      LineClient: a client for any CRLF line protocol over any
//!                stream, and Protocol, which says what ends a reply
//!                (SMTP/LMTP `ddd `, POP3 `+OK`/`-ERR`, IMAP tagged lines)
//! transcript.rs  Session: a server task on one end of an in-memory pipe,
//!                the client on the other; steps of (C: bytes, S: prefixes)
//! running.rs     Running: a spawned server with its stop signal; wait_for
//! root.rs        Root: a temporary facteur root with its facteur.toml,
//!                spool, directory and mail root; maildir_new
//! accounts.rs    Accounts: domains, users and aliases for a test directory
//!                (in memory or on disk)
//! spool.rs       SpoolExt: the queue files and messages of a spool, and a
//!                message queued in one call
//! home.rs        MailHome: a mail store, two users and a certificate, what
//!                imapd's and pop3d's session tests start from
//! tls.rs         TestCa: a CA and a `localhost` certificate on disk, and a
//!                client that trusts them
//! dns.rs         servfail_dns: a nameserver on loopback that fails fast
//! zone.rs        DnsServer: a nameserver on loopback answering from a
//!                Zone (TXT, A, AAAA, PTR, MX; silent names)
//! ```
//!
//! Invariants: every wait is bounded ([`TIMEOUT`] for a reply, a session's
//! end or a server's stop), so a hung server fails its test instead of
//! hanging the suite; every file lives under a temporary directory that is
//! removed when its owner drops; nothing listens beyond loopback.
//!
//! How a crate uses it: `facteur-testkit` under `[dev-dependencies]`; a
//! transcript test starts its server with [`Session::start`] (a closure
//! that gets the server's end of the pipe and a stop receiver) and runs
//! steps; tests that need a crate's private items stay in the crate and
//! call these helpers.
//!
//! Errors: this is test code. It panics, with a message that says what was
//! expected and what came, on anything a test did not expect.

#![allow(clippy::unwrap_used)] // test support: a failed unwrap is a failed test

mod accounts;
mod client;
mod dns;
mod home;
mod root;
mod running;
mod spool;
mod tls;
mod transcript;
mod zone;

pub use accounts::Accounts;
pub use client::{CLOSED, LineClient, Protocol};
pub use dns::servfail_dns;
pub use home::{ALICE, BOB, MailHome};
pub use root::{Root, maildir_new, store_at};
pub use running::{Running, stopped, wait_for};
pub use spool::SpoolExt;
pub use tls::TestCa;
pub use transcript::{Session, Step};
pub use zone::{DnsServer, Rec, Zone};

/// How long a test waits for one reply, for a session to end, or for a
/// server to stop, before it fails.
pub const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);
