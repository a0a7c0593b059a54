//! Transcript tests: IMAP sessions in memory (duplex pipes), with a real
//! directory (SQLite in memory), a real mail store (temporary directory) and
//! real TLS (a test CA) for STARTTLS.
//!
//! A transcript is a list of `C:` lines (sent, each with CRLF; consecutive
//! ones in one write, so they arrive pipelined) and `S:` lines (each must be
//! the next line from the server). In `S:` lines `*` (anywhere but the first
//! column, and not after `\`) matches one token (no space, `)` or `]`), and
//! `**` matches anything. `S*:` skips lines until one matches. `EOF` says
//! the server hangs up there.

#![allow(clippy::unwrap_used)]

mod acl;
mod extensions;
mod fts;
mod input;
mod sasl;
mod urlauth;

use super::*;
use facteur_access::Access;
use facteur_store::Quota;
use facteur_testkit::{ALICE, LineClient, MailHome, Running, Session};
use tokio::io::DuplexStream;

const LOOPBACK: &str = "127.0.0.1";
const REMOTE: &str = "192.0.2.7";

/// APPENDLIMIT and the command limit of the fixture: small, to test them.
const APPEND_LIMIT: u64 = 65536;
const COMMAND_LIMIT: u64 = 8192;
const MAX_ERRORS: u32 = 6;

struct Fixture {
    home: MailHome,
    ctx: Arc<Context>,
}

fn messages() -> Vec<&'static [u8]> {
    vec![
        b"From: Alice <alice@example.test>\r\nTo: bob@example.test\r\nSubject: one\r\n\
          Date: Mon, 05 Jan 2026 10:00:00 +0000\r\nMessage-ID: <1@x>\r\n\r\nbody one\r\n",
        b"Subject: two\r\n\r\nhello world\r\n",
        b"Subject: three\r\n\r\nthree\r\n",
    ]
}

fn fixture() -> Fixture {
    let home = MailHome::new(&messages());
    let cfg = facteur_config::Imapd {
        max_errors: MAX_ERRORS,
        allow_plaintext_auth_on_loopback: true,
        max_append_size: facteur_config::ByteSize(APPEND_LIMIT),
        max_command_size: facteur_config::ByteSize(COMMAND_LIMIT),
        ..Default::default()
    };
    let access = Access::for_tests(&home.directory, home.other_store(), home.tls_files()).unwrap();
    let ctx = Arc::new(Context::new(access, cfg));
    Fixture { home, ctx }
}

impl Fixture {
    /// A session logged in as Alice (`who` = "alice") or Bob.
    async fn login(&self, who: &str) -> (Client<DuplexStream>, Running) {
        let (mut c, s) = self.connect(LOOPBACK).await;
        let (user, pw) = if who == "alice" {
            ALICE
        } else {
            facteur_testkit::BOB
        };
        c.run(&format!("C: l LOGIN {user} {pw}\nS: l OK **\n"))
            .await;
        (c, s)
    }

    /// Connects a client from `ip`; returns it after the greeting.
    async fn connect(&self, ip: &str) -> (Client<DuplexStream>, Running) {
        let (ctx, ip) = (Arc::clone(&self.ctx), ip.parse().unwrap());
        let (c, s, g) =
            Session::greeted(move |io, stop| serve(ctx, Conn::Plain(io), ip, stop)).await;
        assert!(
            g.starts_with("* OK [CAPABILITY IMAP4rev1 IMAP4rev2 "),
            "{g}"
        );
        assert!(
            g.ends_with("] mail.example.test IMAP server ready (facteur)"),
            "{g}"
        );
        (c, s)
    }

    /// Runs `script` on a new loopback session.
    async fn transcript(&self, script: &str) {
        let (mut c, s) = self.connect(LOOPBACK).await;
        let ended = c.run(script).await;
        drop(c);
        if ended {
            s.ended().await;
        }
    }

    /// Another session selects INBOX first and takes its `\Recent`
    /// messages, so that a transcript after it sees none.
    async fn claim_recent(&self) {
        self.transcript(
            r#"
            C: a LOGIN alice@example.test alice-pw
            S: a OK **
            C: b SELECT INBOX
            S*: b OK [READ-WRITE] SELECT completed
            "#,
        )
        .await;
    }

    fn uidvalidity(&self, mailbox: &str) -> u32 {
        let us = self
            .ctx
            .store
            .open_user("alice@example.test", Quota::default())
            .unwrap();
        us.select(mailbox).unwrap().uidvalidity()
    }

    fn uids(&self, mailbox: &str) -> Vec<u32> {
        self.home.uids(ALICE.0, mailbox)
    }
}

/// testkit's line client, with the IMAP steps of these tests.
type Client<S> = LineClient<S>;

trait Imap {
    /// Sends `tag cmd`, returns the lines up to and with the tagged one.
    async fn cmd(&mut self, tag: &str, cmd: &str) -> Vec<String>;
    /// Runs a transcript (see the module comment); true if it ended with
    /// the server hanging up.
    async fn run(&mut self, script: &str) -> bool;
}

impl<S: AsyncRead + AsyncWrite + Unpin> Imap for LineClient<S> {
    async fn cmd(&mut self, tag: &str, cmd: &str) -> Vec<String> {
        self.command(tag, cmd).await
    }

    async fn run(&mut self, script: &str) -> bool {
        let mut pending: Vec<u8> = Vec::new();
        for (n, raw) in script.lines().enumerate() {
            let l = raw.trim_start();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            if let Some(c) = l.strip_prefix("C:") {
                pending.extend_from_slice(c.strip_prefix(' ').unwrap_or(c).as_bytes());
                pending.extend_from_slice(b"\r\n");
                continue;
            }
            if !pending.is_empty() {
                self.send(&pending).await;
                pending.clear();
            }
            if l == "EOF" {
                self.eof().await;
                return true;
            }
            let (want, skip) = match l.strip_prefix("S*:") {
                Some(w) => (w, true),
                None => (
                    l.strip_prefix("S:").unwrap_or_else(|| {
                        panic!("line {}: neither C:, S:, S*: nor EOF: {l}", n + 1)
                    }),
                    false,
                ),
            };
            let want = want.strip_prefix(' ').unwrap_or(want);
            let mut skipped = 0;
            loop {
                let got = self.line().await;
                if glob(want.as_bytes(), got.as_bytes()) {
                    break;
                }
                assert!(
                    skip && skipped < 100,
                    "script line {}:\n want {want}\n  got {got}",
                    n + 1
                );
                skipped += 1;
            }
        }
        if !pending.is_empty() {
            self.send(&pending).await;
        }
        false
    }
}

/// `*` (not first, not after `\`): one or more bytes other than space, `)`
/// and `]`; `**`: anything.
fn glob(p: &[u8], s: &[u8]) -> bool {
    fn go(p: &[u8], s: &[u8], at_start: bool, prev: u8) -> bool {
        match p {
            [] => s.is_empty(),
            [b'*', b'*', rest @ ..] => (0..=s.len()).any(|i| go(rest, &s[i..], false, b'*')),
            [b'*', rest @ ..] if !at_start && prev != b'\\' => {
                let n = s
                    .iter()
                    .take_while(|b| !matches!(b, b' ' | b')' | b']'))
                    .count();
                (1..=n).rev().any(|i| go(rest, &s[i..], false, b'*'))
            }
            [c, rest @ ..] => s.first() == Some(c) && go(rest, &s[1..], false, *c),
        }
    }
    go(p, s, true, 0)
}

#[test]
fn glob_matches_what_it_should() {
    assert!(glob(b"* OK [UIDVALIDITY *] x", b"* OK [UIDVALIDITY 123] x"));
    assert!(!glob(b"* OK [UIDVALIDITY *] x", b"* OK [UIDVALIDITY ] x"));
    assert!(!glob(b"* OK [UIDVALIDITY *] x", b"+ OK [UIDVALIDITY 1] x"));
    assert!(glob(br"(\Seen \*)", br"(\Seen \*)"));
    assert!(!glob(br"(\Seen \*)", br"(\Seen \Draft)"));
    assert!(glob(
        b"a OK [CAPABILITY **] Logged in",
        b"a OK [CAPABILITY IMAP4rev1 X Y] Logged in"
    ));
    assert!(!glob(b"a OK *", b"a OK two words"));
}

#[test]
fn list_patterns_with_non_ascii_names() {
    // Found by the e2e tests: LIST panicked on a name with a multi-byte
    // character in its first five bytes ("Entwürfe").
    use super::mailboxes::matches;
    assert!(matches("Entw*", "Entwürfe"));
    assert!(matches("*", "Entwürfe"));
    assert!(matches("%", "äöü"));
    assert!(!matches("INBOX*", "Entwürfe"));
    assert!(matches("Ä%/x", "Äb/x"));
    assert!(matches("inbox/ü", "INBOX/ü"));
}

// ---------------------------------------------------------------------------
// Not authenticated: CAPABILITY, LOGIN, AUTHENTICATE, STARTTLS, ID, LOGOUT

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capability_login_and_logout() {
    let f = fixture();
    f.transcript(
        r#"
        C: a CAPABILITY
        S: * CAPABILITY IMAP4rev1 IMAP4rev2 STARTTLS AUTH=SCRAM-SHA-256 AUTH=PLAIN AUTH=LOGIN SASL-IR LITERAL+ ** APPENDLIMIT=65536
        S: a OK CAPABILITY completed
        C: b ID ("name" "test")
        S: * ID ("name" "facteur" "version" "*")
        S: b OK ID completed
        C: c NOOP
        S: c OK NOOP completed
        C: d LOGIN alice@example.test wrong
        S: d NO [AUTHENTICATIONFAILED] Authentication failed
        C: e LOGIN "alice@example.test" "alice-pw"
        S: e OK [CAPABILITY IMAP4rev1 IMAP4rev2 LITERAL+ ** APPENDLIMIT=65536] Logged in
        C: f CAPABILITY
        S: * CAPABILITY IMAP4rev1 IMAP4rev2 LITERAL+ ID ENABLE IDLE NAMESPACE UIDPLUS MOVE UNSELECT CHILDREN SPECIAL-USE CREATE-SPECIAL-USE LIST-EXTENDED LIST-STATUS ESEARCH SEARCHRES CONDSTORE QRESYNC QUOTA QUOTA=RES-STORAGE QUOTA=RES-MESSAGE STATUS=SIZE BINARY UTF8=ACCEPT SORT SORT=DISPLAY ESORT THREAD=ORDEREDSUBJECT THREAD=REFERENCES CONTEXT=SEARCH CONTEXT=SORT PARTIAL NOTIFY METADATA SAVEDATE PREVIEW MULTIAPPEND CATENATE COMPRESS=DEFLATE OBJECTID ACL RIGHTS=texk LIST-MYRIGHTS URLAUTH URLAUTH=BINARY APPENDLIMIT=65536
        S: f OK CAPABILITY completed
        C: g LOGIN bob@example.test bob-pw
        S: g BAD Already logged in
        C: h STARTTLS
        S: h BAD STARTTLS is only allowed before login
        C: i LOGOUT
        S: * BYE Logging out
        S: i OK LOGOUT completed
        EOF
        "#,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authenticate_plain_with_and_without_initial_response() {
    let f = fixture();
    // "\0alice@example.test\0alice-pw" and with the authzid "bob".
    f.transcript(
        r#"
        C: a AUTHENTICATE PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABhbGljZS1wdw==
        S: a OK [CAPABILITY **] Logged in
        C: b AUTHENTICATE PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABhbGljZS1wdw==
        S: b BAD Already logged in
        "#,
    )
    .await;
    f.transcript(
        r#"
        C: a AUTHENTICATE PLAIN
        S: + **
        C: *
        S: a BAD Authentication cancelled
        C: b AUTHENTICATE PLAIN
        S: + **
        C: !!notbase64
        S: b BAD Invalid base64
        C: c AUTHENTICATE PLAIN Ym9iAGFsaWNlQGV4YW1wbGUudGVzdABhbGljZS1wdw==
        S: c NO [AUTHENTICATIONFAILED] Authorization identity differs from the authentication identity
        C: d AUTHENTICATE CRAM-MD5
        S: d NO [CANNOT] Unsupported authentication mechanism
        C: e AUTHENTICATE PLAIN
        S: + **
        C: AGFsaWNlQGV4YW1wbGUudGVzdABhbGljZS1wdw==
        S: e OK [CAPABILITY **] Logged in
        "#,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_login_before_tls_then_starttls_discards_pipelined_input() {
    let f = fixture();
    let (mut c, s) = f.connect(REMOTE).await;
    c.run(
        r#"
        C: a CAPABILITY
        S: * CAPABILITY IMAP4rev1 IMAP4rev2 STARTTLS LOGINDISABLED LITERAL+ **
        S: a OK CAPABILITY completed
        C: b LOGIN alice@example.test alice-pw
        S: b NO [PRIVACYREQUIRED] Plaintext login disallowed: use STARTTLS first
        C: c AUTHENTICATE PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABhbGljZS1wdw==
        S: c NO [PRIVACYREQUIRED] Authentication disallowed before STARTTLS
        C: d SELECT INBOX
        S*: d BAD SELECT needs a login first
        "#,
    )
    .await;
    // A command injected after STARTTLS in the same packet is thrown away.
    c.send(b"e STARTTLS\r\nf LOGIN alice@example.test alice-pw\r\n")
        .await;
    assert_eq!(c.line().await, "e OK Begin TLS negotiation now");
    let mut c = Client::new(f.home.ca.connect(c.into_inner()).await);
    c.run(
        r#"
        C: g CAPABILITY
        S: * CAPABILITY IMAP4rev1 IMAP4rev2 AUTH=SCRAM-SHA-256 AUTH=PLAIN AUTH=LOGIN SASL-IR LITERAL+ **
        S: g OK CAPABILITY completed
        C: h SELECT INBOX
        S*: h BAD SELECT needs a login first
        C: i STARTTLS
        S: i BAD TLS is already active
        C: j LOGIN alice@example.test alice-pw
        S: j OK [CAPABILITY **] Logged in
        C: k LOGOUT
        S: * BYE Logging out
        S: k OK LOGOUT completed
        EOF
        "#,
    )
    .await;
    s.ended().await;
}

// ---------------------------------------------------------------------------
// Authenticated: mailboxes

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mailbox_commands() {
    let f = fixture();
    f.transcript(
        r#"
        C: a LOGIN alice@example.test alice-pw
        S: a OK **
        C: b CREATE Work/2026/
        S: b OK [MAILBOXID (*)] CREATE completed
        C: c CREATE Receipts (USE (\Archive))
        S: c OK [MAILBOXID (*)] CREATE completed
        C: d CREATE Receipts
        S: d NO [ALREADYEXISTS] Mailbox already exists
        C: e CREATE "/abs"
        S: e NO [CANNOT] Invalid mailbox name
        C: f LIST "" "*"
        S: * LIST (\HasNoChildren) "/" INBOX
        S: * LIST (\Archive \HasNoChildren) "/" Receipts
        S: * LIST (\HasChildren) "/" Work
        S: * LIST (\HasNoChildren) "/" Work/2026
        S: f OK LIST completed
        C: g LIST "" %
        S: * LIST (\HasNoChildren) "/" INBOX
        S: * LIST (\Archive \HasNoChildren) "/" Receipts
        S: * LIST (\HasChildren) "/" Work
        S: g OK LIST completed
        C: h LIST "" ""
        S: * LIST (\Noselect) "/" ""
        S: h OK LIST completed
        C: i LIST (SPECIAL-USE) "" "*"
        S: * LIST (\Archive \HasNoChildren) "/" Receipts
        S: i OK LIST completed
        C: j SUBSCRIBE Work/2026
        S: j OK SUBSCRIBE completed
        C: k LSUB "" "*"
        S: * LSUB () "/" Work/2026
        S: k OK LSUB completed
        C: l LIST (SUBSCRIBED) "" "*" RETURN (STATUS (MESSAGES UIDNEXT))
        S: * LIST (\HasNoChildren \Subscribed) "/" Work/2026
        S: * STATUS Work/2026 (MESSAGES 0 UIDNEXT 1)
        S: l OK LIST completed
        C: m UNSUBSCRIBE Work/2026
        S: m OK UNSUBSCRIBE completed
        C: n LSUB "" "*"
        S: n OK LSUB completed
        C: o STATUS INBOX (MESSAGES RECENT UIDNEXT UNSEEN DELETED SIZE)
        S: * STATUS INBOX (MESSAGES 3 RECENT 3 UIDNEXT 4 UNSEEN 3 DELETED 0 SIZE 194)
        S: o OK STATUS completed
        C: p NAMESPACE
        S: * NAMESPACE (("" "/")) (("Shared/" "/")) NIL
        S: p OK NAMESPACE completed
        C: q RENAME Work Job
        S: q OK RENAME completed
        C: r LIST "" "*"
        S: * LIST (\HasNoChildren) "/" INBOX
        S: * LIST (\HasChildren) "/" Job
        S: * LIST (\HasNoChildren) "/" Job/2026
        S: * LIST (\Archive \HasNoChildren) "/" Receipts
        S: r OK LIST completed
        C: s DELETE Receipts
        S: s OK DELETE completed
        C: t DELETE INBOX
        S: t NO [CANNOT] INBOX cannot be deleted
        C: u DELETE Nothing
        S: u NO [NONEXISTENT] No such mailbox
        C: v STATUS Nothing (MESSAGES)
        S: v NO [NONEXISTENT] No such mailbox
        C: w RENAME INBOX Old
        S: w OK RENAME completed
        C: x STATUS Old (MESSAGES)
        S: * STATUS Old (MESSAGES 3)
        S: x OK STATUS completed
        C: y STATUS INBOX (MESSAGES UIDNEXT)
        S: * STATUS INBOX (MESSAGES 0 UIDNEXT *)
        S: y OK STATUS completed
        # No limit: the root is still named, with no resource (RFC 9208).
        C: z GETQUOTAROOT INBOX
        S: * QUOTAROOT INBOX ""
        S: * QUOTA "" ()
        S: z OK GETQUOTAROOT completed
        C: z2 ID NIL
        S: * ID ("name" "facteur" "version" "*")
        S: z2 OK ID completed
        "#,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enable_utf8_and_modified_utf7_names() {
    let f = fixture();
    f.transcript(
        r#"
        C: a LOGIN alice@example.test alice-pw
        S: a OK **
        C: b CREATE Entw&APw-rfe
        S: b OK [MAILBOXID (*)] CREATE completed
        C: c CREATE "Bad&Jjo"
        S: c NO [CANNOT] Invalid mailbox name encoding
        C: d LIST "" "E*"
        S: * LIST (\HasNoChildren) "/" Entw&APw-rfe
        S: d OK LIST completed
        C: e ENABLE IMAP4rev2 CONDSTORE X-UNKNOWN
        S: * ENABLED IMAP4rev2 CONDSTORE
        S: e OK ENABLE completed
        C: f ENABLE IMAP4rev2
        S: f OK ENABLE completed
        C: g LIST "" "E*"
        S: * LIST (\HasNoChildren) "/" "Entwürfe"
        S: g OK LIST completed
        C: h SELECT "Entwürfe"
        S: * FLAGS (**)
        S: * OK [PERMANENTFLAGS (**)] Flags permitted
        S: * 0 EXISTS
        S: * OK [UIDVALIDITY *] UIDs valid
        S: * OK [UIDNEXT 1] Predicted next UID
        S: * OK [HIGHESTMODSEQ *] Highest
        S: * OK [MAILBOXID (*)] Ok
        S: * LIST () "/" "Entwürfe"
        S: h OK [READ-WRITE] SELECT completed
        C: i SEARCH ALL
        S: * ESEARCH (TAG "i")
        S: i OK SEARCH completed
        "#,
    )
    .await;
}

// ---------------------------------------------------------------------------
// Selected: FETCH, SEARCH, STORE, COPY, MOVE, EXPUNGE, CLOSE, UNSELECT

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn select_fetch_search_store() {
    let f = fixture();
    f.claim_recent().await;
    let v = f.uidvalidity("INBOX");
    f.transcript(&format!(
        r#"
        C: a LOGIN alice@example.test alice-pw
        S: a OK **
        C: b FETCH 1 FLAGS
        S: b BAD FETCH needs a selected mailbox
        C: c SELECT INBOX
        S: * FLAGS (\Answered \Flagged \Deleted \Seen \Draft $Forwarded $Junk $MDNSent $NotJunk)
        S: * OK [PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft $Forwarded $Junk $MDNSent $NotJunk \*)] Flags permitted
        S*: * 3 EXISTS
        S: * 0 RECENT
        S: * OK [UNSEEN 1] First unseen
        S: * OK [UIDVALIDITY {v}] UIDs valid
        S: * OK [UIDNEXT 4] Predicted next UID
        S: * OK [HIGHESTMODSEQ *] Highest
        S: * OK [MAILBOXID (*)] Ok
        S*: c OK [READ-WRITE] SELECT completed
        C: d FETCH 2 (FLAGS UID RFC822.SIZE BODY.PEEK[TEXT])
        S: * 2 FETCH (FLAGS () UID 2 RFC822.SIZE 29 BODY[TEXT] {{13}}
        S: hello world
        S: )
        S: d OK FETCH completed
        C: e FETCH 2 BODY[HEADER]
        S: * 2 FETCH (BODY[HEADER] {{16}}
        S: Subject: two
        S:
        S:  FLAGS (\Seen))
        S: e OK FETCH completed
        C: f FETCH 1 (ENVELOPE BODY[TEXT]<0.4> BODY.PEEK[HEADER.FIELDS (SUBJECT)])
        S: * 1 FETCH (ENVELOPE ("Mon, 05 Jan 2026 10:00:00 +0000" "one" (("Alice" NIL "alice" "example.test")) (("Alice" NIL "alice" "example.test")) (("Alice" NIL "alice" "example.test")) ((NIL NIL "bob" "example.test")) NIL NIL NIL "<1@x>") BODY[TEXT]<0> {{4}}
        S: body BODY[HEADER.FIELDS (SUBJECT)] {{16}}
        S: Subject: one
        S:
        S:  FLAGS (\Seen))
        S: f OK FETCH completed
        C: g FETCH 3 (BODYSTRUCTURE BINARY.SIZE[1])
        S: * 3 FETCH (BODYSTRUCTURE ("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 7 1 NIL NIL NIL NIL) BINARY.SIZE[1] 7)
        S: g OK FETCH completed
        C: h SEARCH UNSEEN
        S: * SEARCH 3
        S: h OK SEARCH completed
        C: i SEARCH OR SUBJECT three BODY world
        S: * SEARCH 2 3
        S: i OK SEARCH completed
        C: j UID SEARCH RETURN (MIN MAX COUNT) NOT SEEN
        S: * ESEARCH (TAG "j") UID MIN 3 MAX 3 COUNT 1
        S: j OK SEARCH completed
        C: k SEARCH CHARSET UTF-8 TEXT {{3}}
        S: + Ready for literal data
        C: one
        S: * SEARCH 1
        S: k OK SEARCH completed
        C: l SEARCH RETURN (SAVE) 2:3
        S: l OK SEARCH completed
        C: m STORE $ +FLAGS (\Flagged)
        S: * 2 FETCH (FLAGS (\Seen \Flagged))
        S: * 3 FETCH (FLAGS (\Flagged))
        S: m OK STORE completed
        C: n STORE 1 FLAGS.SILENT ($Work)
        S: * FLAGS (\Answered \Flagged \Deleted \Seen \Draft $Forwarded $Junk $MDNSent $NotJunk $Work)
        S: * OK [PERMANENTFLAGS **
        S: n OK STORE completed
        C: o UID STORE 1 -FLAGS ($Work)
        S: * 1 FETCH (UID 1 FLAGS ())
        S: o OK STORE completed
        C: p STORE 1 +FLAGS (\Recent)
        S: p BAD \Recent cannot be set
        C: q FETCH 1 (MODSEQ)
        S: * OK [HIGHESTMODSEQ *] Highest
        S: * 1 FETCH (MODSEQ (*))
        S: q OK FETCH completed
        # FETCH MODSEQ enables CONDSTORE (RFC 7162 §3.1): MODSEQ with FLAGS.
        C: q2 FETCH 1 (FLAGS)
        S: * 1 FETCH (FLAGS () MODSEQ (*))
        S: q2 OK FETCH completed
        C: r STORE 1:2 (UNCHANGEDSINCE 1) +FLAGS.SILENT (\Answered)
        S: r OK [MODIFIED 1:2] Conditional STORE failed for some messages
        C: s EXAMINE INBOX
        S: * OK [CLOSED] Previous mailbox closed
        S*: * 3 EXISTS
        S*: s OK [READ-ONLY] EXAMINE completed
        C: t STORE 1 +FLAGS (\Seen)
        S: t NO [READ-ONLY] Mailbox is read-only
        C: u FETCH 1 BODY[TEXT]
        S: * 1 FETCH (BODY[TEXT] {{10}}
        S: body one
        S: )
        S: u OK FETCH completed
        C: v FETCH 1 FLAGS
        S: * 1 FETCH (FLAGS () MODSEQ (*))
        S: v OK FETCH completed
        "#
    ))
    .await;
}

/// FETCH answers messages the store keeps in memory on the session's
/// worker and reads the others' files; a batch mixing both comes out
/// whole and in order, and a kept message is still answered once its file
/// is gone (as RFC 2180 §4.1 allows: another session expunged it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_mixes_messages_kept_in_memory_and_read_from_files() {
    let f = fixture();
    f.claim_recent().await;
    let (mut c, _s) = f.login("alice").await;
    c.run(
        r#"
        C: a SELECT INBOX
        S*: a OK [READ-WRITE] SELECT completed
        C: b FETCH 2 (BODY.PEEK[TEXT])
        S: * 2 FETCH (BODY[TEXT] {13}
        S: hello world
        S: )
        S: b OK FETCH completed
        C: c FETCH 1:3 (RFC822.SIZE BODY.PEEK[HEADER.FIELDS (SUBJECT)])
        S: * 1 FETCH (RFC822.SIZE 140 BODY[HEADER.FIELDS (SUBJECT)] {16}
        S: Subject: one
        S:
        S: )
        S: * 2 FETCH (RFC822.SIZE 29 BODY[HEADER.FIELDS (SUBJECT)] {16}
        S: Subject: two
        S:
        S: )
        S: * 3 FETCH (RFC822.SIZE 25 BODY[HEADER.FIELDS (SUBJECT)] {18}
        S: Subject: three
        S:
        S: )
        S: c OK FETCH completed
        "#,
    )
    .await;
    let inbox = f.home.mail_root().join("example.test/alice");
    for sub in ["cur", "new"] {
        for e in std::fs::read_dir(inbox.join(sub)).unwrap() {
            std::fs::remove_file(e.unwrap().path()).unwrap();
        }
    }
    c.run(
        r#"
        C: d FETCH 1:3 (BODY.PEEK[TEXT])
        S: * 1 FETCH (BODY[TEXT] {10}
        S: body one
        S: )
        S: * 2 FETCH (BODY[TEXT] {13}
        S: hello world
        S: )
        S: * 3 FETCH (BODY[TEXT] {7}
        S: three
        S: )
        S: d OK FETCH completed
        "#,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_move_expunge_close_unselect() {
    let f = fixture();
    f.transcript(
        r#"
        C: a LOGIN alice@example.test alice-pw
        S: a OK **
        C: b CREATE Archive
        S: b OK [MAILBOXID (*)] CREATE completed
        C: c SELECT INBOX
        S*: * 3 EXISTS
        S*: c OK [READ-WRITE] SELECT completed
        C: d COPY 1:2 Archive
        S: d OK [COPYUID * 1:2 1:2] COPY completed
        C: e COPY 1 Nowhere
        S: e NO [TRYCREATE] No such mailbox
        C: f COPY 9 Archive
        S: f BAD Invalid sequence number
        C: g UID MOVE 2 Archive
        S: * OK [COPYUID * 2 3] Moved
        S: * 2 EXPUNGE
        S: g OK MOVE completed
        C: h STORE 1 +FLAGS.SILENT (\Deleted)
        S: h OK STORE completed
        C: i UID EXPUNGE 3
        S: i OK EXPUNGE completed
        C: j EXPUNGE
        S: * 1 EXPUNGE
        S: j OK EXPUNGE completed
        C: k STORE 1 +FLAGS.SILENT (\Deleted)
        S: k OK STORE completed
        C: l UNSELECT
        S: l OK UNSELECT completed
        C: m EXPUNGE
        S: m BAD EXPUNGE needs a selected mailbox
        C: n STATUS INBOX (MESSAGES DELETED)
        S: * STATUS INBOX (MESSAGES 1 DELETED 1)
        S: n OK STATUS completed
        C: o SELECT INBOX
        S*: * 1 EXISTS
        S*: o OK [READ-WRITE] SELECT completed
        C: p CLOSE
        S: p OK CLOSE completed
        C: q STATUS INBOX (MESSAGES)
        S: * STATUS INBOX (MESSAGES 0)
        S: q OK STATUS completed
        C: r STATUS Archive (MESSAGES UIDNEXT)
        S: * STATUS Archive (MESSAGES 3 UIDNEXT 4)
        S: r OK STATUS completed
        "#,
    )
    .await;
    assert_eq!(f.uids("INBOX"), Vec::<u32>::new());
    assert_eq!(f.uids("Archive"), [1, 2, 3]);
}

// ---------------------------------------------------------------------------
// Literals and their limits

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_concurrent_sessions() {
    let f = fixture();
    let (mut a, sa) = f.connect(LOOPBACK).await;
    let (mut b, sb) = f.connect(LOOPBACK).await;
    for c in [&mut a, &mut b] {
        c.run(
            r#"
            C: l LOGIN alice@example.test alice-pw
            S: l OK **
            C: s SELECT INBOX
            S*: * 3 EXISTS
            S*: s OK [READ-WRITE] SELECT completed
            "#,
        )
        .await;
    }
    // A flag change: FETCH at the other session's NOOP.
    a.run(
        r#"
        C: a1 STORE 2 +FLAGS.SILENT (\Flagged)
        S: a1 OK STORE completed
        "#,
    )
    .await;
    b.run(
        r#"
        C: b1 NOOP
        S: * 2 FETCH (UID 2 FLAGS (\Flagged))
        S: b1 OK NOOP completed
        C: b2 IDLE
        S: + idling
        "#,
    )
    .await;
    // In IDLE: the other session's flag change and expunge, pushed.
    a.run(
        r#"
        C: a2 STORE 1 +FLAGS.SILENT (\Deleted)
        S: a2 OK STORE completed
        "#,
    )
    .await;
    b.run("S: * 1 FETCH (UID 1 FLAGS (\\Deleted))").await;
    a.run(
        r#"
        C: a3 EXPUNGE
        S: * 1 EXPUNGE
        S: a3 OK EXPUNGE completed
        "#,
    )
    .await;
    b.run(
        r#"
        S: * 1 EXPUNGE
        S: * 2 EXISTS
        "#,
    )
    .await;
    // A delivery by another process (lmtpd): a file appears in new/.
    let m: &[u8] = b"Subject: delivered\r\n\r\nnew\r\n";
    f.ctx
        .store
        .deliver("alice@example.test", None, &mut &m[..], Quota::default())
        .unwrap();
    b.run(
        r#"
        S: * 3 EXISTS
        S: * 1 RECENT
        C: DONE
        S: b2 OK IDLE terminated
        C: b3 IDLE
        S: + idling
        C: done
        S: b3 OK IDLE terminated
        C: b4 IDLE
        S: + idling
        C: b5 NOOP
        S: b4 BAD Expected DONE
        C: b6 UID FETCH 1:* (FLAGS)
        S: * 1 FETCH (UID 2 FLAGS (\Flagged))
        S: * 2 FETCH (UID 3 FLAGS ())
        S: * 3 FETCH (UID 4 FLAGS (\Recent))
        S: b6 OK FETCH completed
        "#,
    )
    .await;
    drop(a);
    drop(b);
    sa.ended().await;
    sb.ended().await;
}
