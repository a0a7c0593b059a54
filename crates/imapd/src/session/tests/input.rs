//! Transcripts of the input a client chooses: literals (synchronizing or
//! not, and their limits), pipelined commands, and bad input up to the
//! error limit.

use super::*;

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
