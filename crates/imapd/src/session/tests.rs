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

mod sasl;

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
        S: * CAPABILITY IMAP4rev1 IMAP4rev2 LITERAL+ ID ENABLE IDLE NAMESPACE UIDPLUS MOVE UNSELECT CHILDREN SPECIAL-USE CREATE-SPECIAL-USE LIST-EXTENDED LIST-STATUS ESEARCH SEARCHRES CONDSTORE QRESYNC QUOTA QUOTA=RES-STORAGE QUOTA=RES-MESSAGE STATUS=SIZE BINARY UTF8=ACCEPT SORT SORT=DISPLAY ESORT THREAD=ORDEREDSUBJECT THREAD=REFERENCES PREVIEW MULTIAPPEND COMPRESS=DEFLATE OBJECTID APPENDLIMIT=65536
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
        S: * NAMESPACE (("" "/")) NIL NIL
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
async fn literals_sync_and_non_sync() {
    let f = fixture();
    f.transcript(
        r#"
        C: a LOGIN {18}
        S: + Ready for literal data
        C: alice@example.test {8}
        S: + Ready for literal data
        C: alice-pw
        S: a OK [CAPABILITY **] Logged in
        # LITERAL+: no continuation, the octets follow at once.
        C: b STATUS {5+}
        C: INBOX (MESSAGES)
        S: * STATUS INBOX (MESSAGES 3)
        S: b OK STATUS completed
        # APPEND, synchronising: 23 octets, then the CRLF that ends the command.
        C: c APPEND INBOX (\Seen) "05-Jan-2026 10:00:00 +0100" {23}
        S: + Ready for literal data
        C: Subject: four
        C:
        C: four
        C:
        S: c OK [APPENDUID * 4] APPEND completed
        C: d APPEND Archive {5+}
        C: hello
        S: d NO [TRYCREATE] No such mailbox
        C: e APPEND INBOX {0}
        S: e NO Empty message
        C: f SELECT INBOX
        S*: * 4 EXISTS
        S*: f OK [READ-WRITE] SELECT completed
        C: g FETCH 4 (FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])
        S: * 4 FETCH (FLAGS (\Seen \Recent) INTERNALDATE "05-Jan-2026 09:00:00 +0000" RFC822.SIZE 23 BODY[] {23}
        S: Subject: four
        S:
        S: four
        S: )
        S: g OK FETCH completed
        # An APPEND into the selected mailbox is announced before its OK.
        C: h APPEND INBOX {6+}
        C: x: y
        C:
        S: * 5 EXISTS
        S: * 5 RECENT
        S: h OK [APPENDUID * 5] APPEND completed
        "#,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn literal_limits() {
    let f = fixture();
    let (mut c, s) = f.connect(LOOPBACK).await;
    c.run(&format!(
        r#"
        C: a LOGIN alice@example.test alice-pw
        S: a OK **
        # Over max_command_size: refused before a byte is read.
        C: b LOGIN {{{big}}}
        S: b BAD Literal too long
        C: c STATUS {{4294967295}}
        S: c BAD Literal too long
        C: d NOOP
        S: d OK NOOP completed
        # Over APPENDLIMIT, synchronising: NO, and no "+".
        C: e APPEND INBOX {{{over}}}
        S: e NO [TOOBIG] Message larger than {limit} octets
        C: f APPEND INBOX {{4294967295}}
        S: f NO [TOOBIG] Message larger than {limit} octets
        C: g NOOP
        S: g OK NOOP completed
        "#,
        big = COMMAND_LIMIT + 1,
        over = APPEND_LIMIT + 1,
        limit = APPEND_LIMIT,
    ))
    .await;
    // Non-synchronising and over APPENDLIMIT but small enough to skip: the
    // octets are read and dropped, then NO.
    let over = APPEND_LIMIT as usize + 10;
    let mut cmd = format!("h APPEND INBOX {{{over}+}}\r\n").into_bytes();
    cmd.extend(std::iter::repeat_n(b'x', over));
    cmd.extend_from_slice(b"\r\ni NOOP\r\n");
    c.send(&cmd).await;
    assert_eq!(
        c.line().await,
        format!("h NO [TOOBIG] Message larger than {APPEND_LIMIT} octets")
    );
    assert_eq!(c.line().await, "i OK NOOP completed");
    // A non-synchronising literal over the command limit: BYE.
    c.run(
        r#"
        C: j LOGIN {9000+}
        S: * BYE Literal too long
        EOF
        "#,
    )
    .await;
    s.ended().await;
    // A huge non-synchronising APPEND cannot be skipped: NO, BYE.
    let (mut c, s) = f.connect(LOOPBACK).await;
    c.run(
        r#"
        C: a LOGIN alice@example.test alice-pw
        S: a OK **
        C: b APPEND INBOX {4294967295+}
        S: b NO [TOOBIG] **
        S: * BYE Literal too large to skip
        EOF
        "#,
    )
    .await;
    s.ended().await;
    assert_eq!(f.uids("INBOX"), [1, 2, 3]);
}

// ---------------------------------------------------------------------------
// Pipelining, bad input

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_commands_are_answered_in_order() {
    let f = fixture();
    f.claim_recent().await;
    f.transcript(
        r#"
        C: a LOGIN alice@example.test alice-pw
        C: b SELECT INBOX
        C: c UID FETCH 1:* (FLAGS)
        C: d STORE 3 +FLAGS.SILENT (\Deleted)
        C: e EXPUNGE
        C: f UID SEARCH ALL
        C: g XYZZY
        C: h NOOP
        C: i LOGOUT
        S: a OK **
        S*: * 3 EXISTS
        S*: b OK [READ-WRITE] SELECT completed
        S: * 1 FETCH (UID 1 FLAGS ())
        S: * 2 FETCH (UID 2 FLAGS ())
        S: * 3 FETCH (UID 3 FLAGS ())
        S: c OK FETCH completed
        S: d OK STORE completed
        S: * 3 EXPUNGE
        S: e OK EXPUNGE completed
        S: * SEARCH 1 2
        S: f OK SEARCH completed
        S: g BAD **
        S: h OK NOOP completed
        S: * BYE Logging out
        S: i OK LOGOUT completed
        EOF
        "#,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_then_too_many_errors() {
    let f = fixture();
    let (mut c, s) = f.connect(LOOPBACK).await;
    c.run(
        r#"
        C: a XYZZY
        S: a BAD **
        C: b SELECT INBOX
        S*: b BAD SELECT needs a login first
        C: c LOGIN alice@example.test alice-pw
        S: c OK **
        "#,
    )
    .await;
    // NUL in a quoted string.
    c.send(b"d SELECT \"IN\0BOX\"\r\n").await;
    let l = c.line().await;
    assert!(l.starts_with("d BAD "), "{l}");
    // A line over the limit: BAD, and the session goes on.
    let mut long = b"e NOOP ".to_vec();
    long.extend(std::iter::repeat_n(b'x', 70_000));
    long.extend_from_slice(b"\r\nf NOOP\r\n");
    c.send(&long).await;
    let l = c.line().await;
    assert!(l.starts_with("e BAD ") || l.starts_with("* BAD "), "{l}");
    assert_eq!(c.line().await, "f OK NOOP completed");
    // Under the line limit but over max_command_size.
    let l = c
        .cmd("g", &format!("NOOP {}", "y".repeat(COMMAND_LIMIT as usize)))
        .await;
    assert_eq!(l, ["g BAD Command too long"]);
    // 5 errors so far (a, b, d, e, g); the sixth closes the session.
    c.run(
        r#"
        C: h FETCH 1 FLAGS
        S: h BAD FETCH needs a selected mailbox
        S: * BYE Too many errors
        EOF
        "#,
    )
    .await;
    s.ended().await;
}

// ---------------------------------------------------------------------------
// Sessions see each other; IDLE

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn condstore_and_qresync() {
    let f = fixture();
    let v = f.uidvalidity("INBOX");
    let (mut a, sa) = f.connect(LOOPBACK).await;
    a.run(
        r#"
        C: a LOGIN alice@example.test alice-pw
        S: a OK **
        C: b ENABLE QRESYNC
        S: * ENABLED QRESYNC
        S: b OK ENABLE completed
        C: c STATUS INBOX (HIGHESTMODSEQ)
        S: * STATUS INBOX (HIGHESTMODSEQ *)
        S: c OK STATUS completed
        "#,
    )
    .await;
    let modseq = {
        let us = f
            .ctx
            .store
            .open_user("alice@example.test", Quota::default())
            .unwrap();
        us.select("INBOX").unwrap().highest_modseq()
    };
    // Another session changes 1 and expunges 3.
    f.transcript(
        r#"
        C: a LOGIN alice@example.test alice-pw
        S: a OK **
        C: b SELECT INBOX
        S*: b OK **
        C: c STORE 1 +FLAGS.SILENT (\Seen)
        S: c OK STORE completed
        C: d STORE 3 +FLAGS.SILENT (\Deleted)
        S: d OK STORE completed
        C: e EXPUNGE
        S: * 3 EXPUNGE
        S: e OK EXPUNGE completed
        "#,
    )
    .await;
    a.run(&format!(
        r#"
        C: d SELECT INBOX (QRESYNC ({v} {modseq}))
        S: * FLAGS (**)
        S: * OK [PERMANENTFLAGS (**)] Flags permitted
        S: * 2 EXISTS
        S: * 0 RECENT
        S: * OK [UNSEEN 2] First unseen
        S: * OK [UIDVALIDITY {v}] UIDs valid
        S: * OK [UIDNEXT 4] Predicted next UID
        S: * OK [HIGHESTMODSEQ *] Highest
        S: * OK [MAILBOXID (*)] Ok
        S: * VANISHED (EARLIER) 3
        S: * 1 FETCH (UID 1 FLAGS (\Seen) MODSEQ (*))
        S: d OK [READ-WRITE] SELECT completed
        C: e UID FETCH 1:* (FLAGS) (CHANGEDSINCE {modseq} VANISHED)
        S: * VANISHED (EARLIER) 3
        S: * 1 FETCH (UID 1 FLAGS (\Seen) MODSEQ (*))
        S: e OK FETCH completed
        C: f FETCH 1:* (FLAGS) (CHANGEDSINCE {modseq} VANISHED)
        S: f BAD **
        C: g UID EXPUNGE 1
        S: g OK EXPUNGE completed
        C: h STORE 2 +FLAGS.SILENT (\Deleted)
        S: * 2 FETCH (MODSEQ (*))
        S: h OK STORE completed
        C: i UID EXPUNGE 2
        S: * VANISHED 2
        S: i OK EXPUNGE completed
        "#
    ))
    .await;
    drop(a);
    sa.ended().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_bytes_never_go_out_in_an_ordinary_literal() {
    // RFC 9051 §4.3: NUL only in literal8 (BINARY). A message holding NUL
    // is sent with each as 0x80 in BODY[] and RFC822 (issue 14).
    let f = fixture();
    let msg = b"Subject: nul\r\n\r\na\0b\r\n";
    f.home
        .store
        .deliver(ALICE.0, None, &mut &msg[..], Quota::default())
        .unwrap();
    let (mut c, s) = f.connect(LOOPBACK).await;
    c.cmd("a", "LOGIN alice@example.test alice-pw").await;
    c.cmd("b", "SELECT INBOX").await;
    for item in ["BODY.PEEK[]", "RFC822", "BODY.PEEK[TEXT]"] {
        c.send_line(&format!("c FETCH 4 {item}")).await;
        let mut raw = Vec::new();
        loop {
            let l = c.raw_line().await;
            assert!(!l.is_empty(), "the server hung up");
            raw.extend_from_slice(&l);
            if l.starts_with(b"c ") {
                break;
            }
        }
        assert!(!raw.contains(&0), "{item}: {raw:?}");
        assert!(raw.windows(3).any(|w| w == b"a\x80b"), "{item}: {raw:?}");
    }
    // BINARY sends it as it is, in a literal8.
    c.send_line("d FETCH 4 BINARY.PEEK[1]").await;
    let l = c.raw_line().await;
    assert!(l.ends_with(b"~{5}\r\n"), "{l:?}");
    c.cmd("z", "LOGOUT").await;
    s.ended().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recent_is_the_first_sessions_and_only_for_imap4rev1() {
    let f = fixture();
    // An IMAP4rev2 session has no \Recent and takes none.
    f.transcript(
        r#"
        C: a LOGIN alice@example.test alice-pw
        S: a OK **
        C: b ENABLE IMAP4rev2
        S*: b OK **
        C: c SELECT INBOX
        S: * FLAGS **
        S: * OK [PERMANENTFLAGS **
        S: * 3 EXISTS
        S: * OK [UIDVALIDITY **
        S*: c OK [READ-WRITE] SELECT completed
        C: d FETCH 1 FLAGS
        S: * 1 FETCH (FLAGS ())
        S: d OK FETCH completed
        "#,
    )
    .await;
    let (mut a, _sa) = f.connect(LOOPBACK).await;
    let (mut b, _sb) = f.connect(LOOPBACK).await;
    // EXAMINE sees them recent without taking them.
    b.run(
        r#"
        C: l LOGIN alice@example.test alice-pw
        S: l OK **
        C: e EXAMINE INBOX
        S*: * 3 RECENT
        S*: e OK [READ-ONLY] EXAMINE completed
        C: s SEARCH RECENT
        S: * SEARCH 1 2 3
        S: s OK SEARCH completed
        "#,
    )
    .await;
    a.run(
        r#"
        C: l LOGIN alice@example.test alice-pw
        S: l OK **
        C: s SELECT INBOX
        S*: * 3 RECENT
        S*: s OK [READ-WRITE] SELECT completed
        C: f FETCH 1 FLAGS
        S: * 1 FETCH (FLAGS (\Recent))
        S: f OK FETCH completed
        C: g STORE 1 +FLAGS (\Seen)
        S: * 1 FETCH (FLAGS (\Seen \Recent))
        S: g OK STORE completed
        C: h SEARCH NEW
        S: * SEARCH 2 3
        S: h OK SEARCH completed
        C: i SEARCH OLD
        S: * SEARCH
        S: i OK SEARCH completed
        "#,
    )
    .await;
    // Taken: a second SELECT and STATUS see none.
    b.run(
        r#"
        C: t STATUS INBOX (RECENT)
        S: * STATUS INBOX (RECENT 0)
        S: * 1 FETCH (UID 1 FLAGS (\Seen \Recent))
        S: t OK STATUS completed
        C: u SELECT INBOX
        S*: * 0 RECENT
        S*: u OK [READ-WRITE] SELECT completed
        "#,
    )
    .await;
    // A delivery: recent in the first session that sees it.
    let m: &[u8] = b"Subject: delivered\r\n\r\nnew\r\n";
    f.ctx
        .store
        .deliver("alice@example.test", None, &mut &m[..], Quota::default())
        .unwrap();
    a.run(
        r#"
        C: n NOOP
        S: * 4 EXISTS
        S: * 4 RECENT
        S: n OK NOOP completed
        "#,
    )
    .await;
    b.run(
        r#"
        C: n NOOP
        S: * 4 EXISTS
        S: * 0 RECENT
        S: n OK NOOP completed
        C: o SEARCH RECENT
        S: * SEARCH
        S: o OK SEARCH completed
        "#,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_keyword_is_announced_in_flags_before_it_is_shown() {
    // imaptest's state checker: a keyword in FETCH FLAGS must have been in
    // a `* FLAGS` response first, whoever created it.
    let f = fixture();
    f.claim_recent().await;
    let (mut a, _sa) = f.connect(LOOPBACK).await;
    let (mut b, _sb) = f.connect(LOOPBACK).await;
    for c in [&mut a, &mut b] {
        c.run(
            r#"
            C: l LOGIN alice@example.test alice-pw
            S: l OK **
            C: s SELECT INBOX
            S: * FLAGS (\Answered \Flagged \Deleted \Seen \Draft $Forwarded $Junk $MDNSent $NotJunk)
            S*: s OK [READ-WRITE] SELECT completed
            "#,
        )
        .await;
    }
    a.run(
        r#"
        C: t STORE 1 +FLAGS ($Hello)
        S: * FLAGS (\Answered \Flagged \Deleted \Seen \Draft $Forwarded $Hello $Junk $MDNSent $NotJunk)
        S: * OK [PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft $Forwarded $Hello $Junk $MDNSent $NotJunk \*)] Flags permitted
        S: * 1 FETCH (FLAGS ($Hello))
        S: t OK STORE completed
        C: u STORE 2 +FLAGS ($Hello)
        S: * 2 FETCH (FLAGS ($Hello))
        S: u OK STORE completed
        "#,
    )
    .await;
    b.run(
        r#"
        C: n NOOP
        S: * FLAGS (\Answered \Flagged \Deleted \Seen \Draft $Forwarded $Hello $Junk $MDNSent $NotJunk)
        S: * OK [PERMANENTFLAGS **
        S*: * 2 FETCH (UID * FLAGS ($Hello))
        S: n OK NOOP completed
        "#,
    )
    .await;
    // A message copied in with a keyword: announced with the new EXISTS.
    a.run(
        r#"
        C: v CREATE Other
        S: v OK **
        C: w APPEND Other ($World) {12}
        S: + **
        C: Subject: w
        C:
        S: w OK **
        C: x EXAMINE Other
        S*: x OK **
        C: y COPY 1 INBOX
        S: y OK **
        "#,
    )
    .await;
    b.run(
        r#"
        C: n NOOP
        S: * FLAGS (\Answered \Flagged \Deleted \Seen \Draft $Forwarded $Hello $Junk $MDNSent $NotJunk $World)
        S: * OK [PERMANENTFLAGS **
        S: * 4 EXISTS
        S*: n OK NOOP completed
        "#,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binary_append_gives_its_octets_back() {
    // RFC 3516 §4.4: a `binary` part appended in a literal8 comes back
    // octet for octet in BINARY (bare LF and NUL included), whatever the
    // store does with line ends; BODY[1] shows it transfer-encoded.
    let f = fixture();
    let (mut c, s) = f.connect(LOOPBACK).await;
    c.cmd("a", "LOGIN alice@example.test alice-pw").await;
    let content: &[u8] = b"\0-\xe4\n\r\n\n";
    let mut msg = b"From: a@example.test\r\nContent-Type: application/octet-stream\r\n\
Content-Transfer-Encoding: binary\r\n\r\n"
        .to_vec();
    msg.extend_from_slice(content);
    let mut cmd = format!("b APPEND INBOX ~{{{}+}}\r\n", msg.len()).into_bytes();
    cmd.extend_from_slice(&msg);
    cmd.extend_from_slice(b"\r\n");
    c.send(&cmd).await;
    let reply = c.until_tagged("b").await;
    assert!(
        reply.last().unwrap().starts_with("b OK [APPENDUID"),
        "{reply:?}"
    );
    c.cmd("c", "SELECT INBOX").await;
    c.send_line("d FETCH 4 (BINARY.SIZE[1] BINARY.PEEK[1])")
        .await;
    let head = c.raw_line().await;
    assert_eq!(head, b"* 4 FETCH (BINARY.SIZE[1] 7 BINARY[1] ~{7}\r\n");
    let mut rest = Vec::new();
    while !rest.ends_with(b"d OK FETCH completed\r\n") {
        let l = c.raw_line().await;
        assert!(!l.is_empty(), "the server hung up");
        rest.extend_from_slice(&l);
    }
    assert!(rest.starts_with(content), "{rest:?}");
    assert!(rest[content.len()..].starts_with(b")\r\n"), "{rest:?}");
    let body = c.command("e", "FETCH 4 BODY.PEEK[1]").await;
    assert_eq!(body[1], "AC3kCg0KCg==", "{body:?}");
    c.cmd("z", "LOGOUT").await;
    s.ended().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sort_and_thread() {
    let f = fixture();
    for m in [
        &b"From: Zed <a@example.test>\r\nSubject: Re: one\r\nDate: Tue, 06 Jan 2026 10:00:00 +0000\r\n\
Message-ID: <4@x>\r\nReferences: <1@x>\r\n\r\nreply\r\n"[..],
        b"From: bob@example.test\r\nSubject: [list] Re: two\r\nDate: Sun, 04 Jan 2026 10:00:00 +0000\r\n\r\nx\r\n",
    ] {
        f.home
            .store
            .deliver(ALICE.0, None, &mut &m[..], Quota::default())
            .unwrap();
    }
    f.transcript(
        r#"
        C: a LOGIN alice@example.test alice-pw
        S: a OK **
        C: b SELECT INBOX
        S*: b OK [READ-WRITE] SELECT completed
        C: c SORT (SUBJECT) UTF-8 ALL
        S: * SORT 1 4 3 2 5
        S: c OK SORT completed
        C: d SORT (REVERSE FROM ARRIVAL) US-ASCII ALL
        S: * SORT 5 1 4 2 3
        S: d OK SORT completed
        C: e SORT (DISPLAYFROM) UTF-8 ALL
        S: * SORT 2 3 1 5 4
        S: e OK SORT completed
        C: f UID SORT RETURN (MIN MAX COUNT ALL) (DATE) UTF-8 1:4
        S: * ESEARCH (TAG "f") UID MIN 1 MAX 3 COUNT 4 ALL 1,4,2:3
        S: f OK SORT completed
        C: g SORT (SUBJECT) ISO-8859-15 ALL
        S: g NO [BADCHARSET (UTF-8 US-ASCII)] Unsupported charset
        # 5's base subject is 2's, and it is a reply: it joins 2's thread.
        C: h THREAD REFERENCES UTF-8 ALL
        S: * THREAD (1 4)(2 5)(3)
        S: h OK THREAD completed
        C: i THREAD ORDEREDSUBJECT UTF-8 ALL
        S: * THREAD (5 2)(1 4)(3)
        S: i OK THREAD completed
        C: j THREAD REFERENCES UTF-8 SUBJECT nothing
        S: * THREAD
        S: j OK THREAD completed
        "#,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preview_summarises_without_marking_seen() {
    let f = fixture();
    f.claim_recent().await;
    f.transcript(
        r#"
        C: a LOGIN alice@example.test alice-pw
        S: a OK **
        C: b SELECT INBOX
        S*: b OK [READ-WRITE] SELECT completed
        C: c FETCH 1:2 (PREVIEW (LAZY))
        S: * 1 FETCH (PREVIEW "body one")
        S: * 2 FETCH (PREVIEW "hello world")
        S: c OK FETCH completed
        C: d FETCH 1 FLAGS
        S: * 1 FETCH (FLAGS ())
        S: d OK FETCH completed
        "#,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multiappend_is_all_or_nothing() {
    // RFC 3502: several messages in one APPEND, one APPENDUID set; when
    // one is refused none stays.
    let f = fixture();
    f.claim_recent().await;
    f.transcript(
        r#"
        C: a LOGIN alice@example.test alice-pw
        S: a OK **
        C: b APPEND INBOX (\Seen) {6+}
        C: x: 1
        C:  {6}
        S: + Ready for literal data
        C: x: 2
        C:  ($Two) {6+}
        C: x: 3
        C:
        S: b OK [APPENDUID * 4:6] APPEND completed
        C: c APPEND INBOX {6+}
        C: x: 7
        C:  {0}
        S: c NO Empty message
        C: d SELECT INBOX
        S*: * 6 EXISTS
        S*: d OK [READ-WRITE] SELECT completed
        C: e FETCH 4:6 (FLAGS BODY.PEEK[])
        S: * 4 FETCH (FLAGS (\Seen \Recent) BODY[] {6}
        S: x: 1
        S: )
        S: * 5 FETCH (FLAGS (\Recent) BODY[] {6}
        S: x: 2
        S: )
        S: * 6 FETCH (FLAGS (\Recent $Two) BODY[] {6}
        S: x: 3
        S: )
        S: e OK FETCH completed
        C: f APPEND INBOX {6+}
        C: x: 8
        C:  (\Bogus) {6+}
        C: x: 9
        C:
        S: f BAD **
        C: g STATUS INBOX (MESSAGES)
        S: * STATUS INBOX (MESSAGES 6)
        S: g OK STATUS completed
        "#,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_ids_stay_with_their_objects() {
    // OBJECTID (RFC 8474): MAILBOXID survives RENAME; EMAILID survives a
    // flag change and finds its message; THREADID is NIL.
    let f = fixture();
    f.claim_recent().await;
    let (mut c, _s) = f.connect(LOOPBACK).await;
    c.cmd("a", "LOGIN alice@example.test alice-pw").await;
    let created = c.cmd("b", "CREATE Box").await;
    let id = created
        .last()
        .and_then(|l| l.strip_prefix("b OK [MAILBOXID ("))
        .and_then(|l| l.split_once(')'))
        .map(|(id, _)| id.to_string())
        .unwrap_or_else(|| panic!("{created:?}"));
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
    c.cmd("c", "RENAME Box Renamed").await;
    let st = c.cmd("d", "STATUS Renamed (MAILBOXID)").await;
    assert_eq!(st[0], format!("* STATUS Renamed (MAILBOXID ({id}))"));
    let sel = c.cmd("e", "SELECT INBOX").await;
    assert!(
        sel.iter().any(|l| l.starts_with("* OK [MAILBOXID (F")),
        "{sel:?}"
    );
    assert!(!sel.iter().any(|l| l.contains(&id)), "INBOX has its own id");
    let before = c.cmd("f", "FETCH 2 (EMAILID THREADID)").await;
    let email = before[0]
        .strip_prefix("* 2 FETCH (EMAILID (")
        .and_then(|l| l.split_once(')'))
        .map(|(e, _)| e.to_string())
        .unwrap_or_else(|| panic!("{before:?}"));
    assert!(before[0].ends_with(" THREADID NIL)"), "{before:?}");
    c.cmd("g", "STORE 2 +FLAGS (\\Seen $Label)").await;
    let after = c.cmd("h", "FETCH 2 EMAILID").await;
    assert_eq!(after[0], format!("* 2 FETCH (EMAILID ({email}))"));
    let found = c.cmd("i", &format!("SEARCH EMAILID {email}")).await;
    assert_eq!(found[0], "* SEARCH 2");
    let none = c.cmd("j", &format!("SEARCH THREADID {email}")).await;
    assert_eq!(none[0], "* SEARCH");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_the_client_never_ends_leaves_nothing() {
    // The literal arrives, the line end that completes the command does
    // not: the client went away; the message must not stay.
    let f = fixture();
    let (mut c, s) = f.connect(LOOPBACK).await;
    c.cmd("a", "LOGIN alice@example.test alice-pw").await;
    c.send(b"b APPEND INBOX {6+}\r\nx: 1\r\n {6+}\r\nx: 2\r\n")
        .await;
    drop(c);
    s.ended().await;
    f.transcript(
        r#"
        C: a LOGIN alice@example.test alice-pw
        S: a OK **
        C: b STATUS INBOX (MESSAGES)
        S: * STATUS INBOX (MESSAGES 3)
        S: b OK STATUS completed
        "#,
    )
    .await;
}
