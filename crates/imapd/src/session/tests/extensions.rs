//! Transcripts of the extensions: CONDSTORE and QRESYNC, \Recent for
//! IMAP4rev1, keywords announced in FLAGS, binary APPEND, SORT and THREAD,
//! PREVIEW, MULTIAPPEND, OBJECTID.

use super::*;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_contexts_follow_the_mailbox() {
    let f = fixture();
    let (mut a, sa) = f.connect(LOOPBACK).await;
    let (mut b, sb) = f.connect(LOOPBACK).await;
    // Subjects one, two, three: sorted one (1), three (3), two (2).
    a.run(
        r#"
        C: l LOGIN alice@example.test alice-pw
        S: l OK **
        C: s SELECT INBOX
        S*: s OK [READ-WRITE] SELECT completed
        C: c1 SEARCH RETURN (UPDATE ALL) UNSEEN
        S: * ESEARCH (TAG "c1") ALL 1:3
        S: c1 OK SEARCH completed
        C: c2 UID SORT RETURN (UPDATE) (SUBJECT) UTF-8 UNSEEN
        S: * ESEARCH (TAG "c2") UID
        S: c2 OK SORT completed
        C: c3 STORE 2 +FLAGS.SILENT (\Seen)
        S: * ESEARCH (TAG "c1") REMOVEFROM (2 2)
        S: * ESEARCH (TAG "c2") UID REMOVEFROM (3 2)
        S: c3 OK STORE completed
        "#,
    )
    .await;
    // A new message sorts first ("four").
    f.home
        .store
        .deliver(
            ALICE.0,
            None,
            &mut &b"Subject: four\r\n\r\n4\r\n"[..],
            Quota::default(),
        )
        .unwrap();
    a.run(
        r#"
        C: n1 NOOP
        S: * 4 EXISTS
        S: * 4 RECENT
        S: * ESEARCH (TAG "c1") ADDTO (3 4)
        S: * ESEARCH (TAG "c2") UID ADDTO (1 4)
        S: n1 OK NOOP completed
        "#,
    )
    .await;
    // Another session expunges message 1: the removals come before the
    // EXPUNGE, in the numbers the client has.
    b.run(
        r#"
        C: l LOGIN alice@example.test alice-pw
        S: l OK **
        C: s SELECT INBOX
        S*: s OK [READ-WRITE] SELECT completed
        C: x STORE 1 +FLAGS.SILENT (\Deleted)
        S: x OK STORE completed
        C: y EXPUNGE
        S: * 1 EXPUNGE
        S: y OK EXPUNGE completed
        "#,
    )
    .await;
    let mut script = String::from(
        r#"
        C: n2 NOOP
        S: * ESEARCH (TAG "c1") REMOVEFROM (1 1)
        S: * ESEARCH (TAG "c2") UID REMOVEFROM (2 1)
        S: * 1 EXPUNGE
        S*: n2 OK NOOP completed
        C: c5 CANCELUPDATE "c1"
        S: c5 OK CANCELUPDATE completed
        C: c6 STORE 2 +FLAGS.SILENT (\Seen)
        S: * ESEARCH (TAG "c2") UID REMOVEFROM (2 3)
        S: c6 OK STORE completed
        C: c7 SEARCH RETURN (PARTIAL -1:-2) ALL
        S: * ESEARCH (TAG "c7") PARTIAL (-1:-2 2:3)
        S: c7 OK SEARCH completed
        C: c8 SORT RETURN (PARTIAL 5:9) (SUBJECT) UTF-8 ALL
        S: * ESEARCH (TAG "c8") PARTIAL (5:9 NIL)
        S: c8 OK SORT completed
        "#,
    );
    // Sixteen contexts at most: c2 and fifteen more.
    for i in 1..=15 {
        script.push_str(&format!(
            "C: u{i} SEARCH RETURN (UPDATE) ALL\nS: * ESEARCH (TAG \"u{i}\")\nS: u{i} OK SEARCH completed\n"
        ));
    }
    script.push_str(
        r#"
        C: u16 SEARCH RETURN (UPDATE) ALL
        S: u16 NO [NOUPDATE "u16"] Too many searches kept up to date (at most 16)
        C: s2 SELECT INBOX
        S*: s2 OK [READ-WRITE] SELECT completed
        C: c9 STORE 1 -FLAGS.SILENT (\Seen)
        S: c9 OK STORE completed
        "#,
    );
    a.run(&script).await;
    drop(a);
    drop(b);
    sa.ended().await;
    sb.ended().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_tells_of_other_mailboxes_without_being_asked() {
    let f = fixture();
    let (mut a, sa) = f.connect(LOOPBACK).await;
    let (mut b, sb) = f.connect(LOOPBACK).await;
    a.run(
        r#"
        C: l LOGIN alice@example.test alice-pw
        S: l OK **
        C: n0 NOTIFY SET (PERSONAL (MessageNew MessageExpunge AnnotationChange))
        S: n0 NO [BADEVENT (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange)] Unsupported event
        C: n1 NOTIFY SET STATUS (INBOXES (MessageNew MessageExpunge)) (PERSONAL (MailboxName SubscriptionChange))
        S: * STATUS INBOX (MESSAGES 3 UIDNEXT 4 UIDVALIDITY *)
        S: n1 OK NOTIFY completed
        "#,
    )
    .await;
    // A delivery by another process (inotify): told between commands.
    f.home
        .store
        .deliver(
            ALICE.0,
            None,
            &mut &b"Subject: four\r\n\r\n4\r\n"[..],
            Quota::default(),
        )
        .unwrap();
    a.run("S: * STATUS INBOX (MESSAGES 4 UIDNEXT 5 UIDVALIDITY *)")
        .await;
    // Another session's mailbox list changes.
    b.run(
        r#"
        C: l LOGIN alice@example.test alice-pw
        S: l OK **
        C: c CREATE Projects
        S: c OK **
        "#,
    )
    .await;
    a.run(r#"S: * LIST () "/" Projects"#).await;
    b.run(
        r#"
        C: s SUBSCRIBE Projects
        S: s OK SUBSCRIBE completed
        "#,
    )
    .await;
    a.run(r#"S: * LIST (\Subscribed) "/" Projects"#).await;
    b.run(
        r#"
        C: d DELETE Projects
        S: d OK DELETE completed
        "#,
    )
    .await;
    a.run(r#"S: * LIST (\NonExistent) "/" Projects"#).await;
    // The selected mailbox: new messages with the fetch attributes asked.
    a.run(
        r#"
        C: n2 NOTIFY SET (SELECTED (MessageNew (UID BODY.PEEK[HEADER.FIELDS (SUBJECT)]) MessageExpunge))
        S: n2 OK NOTIFY completed
        C: s SELECT INBOX
        S*: s OK [READ-WRITE] SELECT completed
        "#,
    )
    .await;
    f.home
        .store
        .deliver(
            ALICE.0,
            None,
            &mut &b"Subject: five\r\n\r\n5\r\n"[..],
            Quota::default(),
        )
        .unwrap();
    a.run(
        r#"
        S: * 5 EXISTS
        S: * 5 RECENT
        S: * 5 FETCH (UID 5 BODY[HEADER.FIELDS (SUBJECT)] {17}
        S: Subject: five
        S: 
        S: )
        C: f FETCH 5 FLAGS
        S: * 5 FETCH (FLAGS (\Recent))
        S: f OK FETCH completed
        C: n3 NOTIFY NONE
        S: n3 OK NOTIFY completed
        "#,
    )
    .await;
    drop(a);
    drop(b);
    sa.ended().await;
    sb.ended().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_of_mailboxes_and_server() {
    let f = fixture();
    let script = format!(
        r#"
        C: l LOGIN alice@example.test alice-pw
        S: l OK **
        C: a SETMETADATA INBOX (/private/comment "My own comment" /shared/Vendor/x {{3+}}
        C: a
        C: )
        S: a OK SETMETADATA completed
        C: b SETMETADATA "" (/shared/bin ~{{3+}}
        C: a{nul}b)
        S: b OK SETMETADATA completed
        C: c GETMETADATA INBOX (/private/comment /shared/vendor/x /shared/none)
        S: * METADATA INBOX (/private/comment "My own comment" /shared/vendor/x {{3}}
        S: a
        S: )
        S: c OK GETMETADATA completed
        C: d GETMETADATA (DEPTH infinity MAXSIZE 5) INBOX /shared
        S: * METADATA INBOX (/shared/vendor/x {{3}}
        S: a
        S: )
        S: d OK GETMETADATA completed
        C: e GETMETADATA (MAXSIZE 2) INBOX /private/comment
        S: e OK [METADATA LONGENTRIES 14] GETMETADATA completed
        C: f GETMETADATA "" /shared/bin
        S: * METADATA "" (/shared/bin ~{{3}}
        S: a{nul}b)
        S: f OK GETMETADATA completed
        C: g SETMETADATA INBOX (/private/comment NIL)
        S: g OK SETMETADATA completed
        C: h GETMETADATA (DEPTH 1) INBOX /private
        S: h OK GETMETADATA completed
        C: i SETMETADATA Nowhere (/private/x "y")
        S: i NO [NONEXISTENT] No such mailbox
        C: j SETMETADATA INBOX (/comment "y")
        S: j BAD invalid entry name
        "#,
        nul = '\0',
    );
    f.transcript(&script).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn savedate_in_fetch_and_search() {
    let f = fixture();
    f.transcript(
        r#"
        C: l LOGIN alice@example.test alice-pw
        S: l OK **
        C: s SELECT INBOX
        S*: s OK [READ-WRITE] SELECT completed
        C: a APPEND INBOX " 1-Jan-2000 00:00:00 +0000" {5+}
        C: hello
        S*: a OK [APPENDUID * 4] APPEND completed
        C: f UID FETCH 4 (INTERNALDATE SAVEDATE)
        S: * 4 FETCH (UID 4 INTERNALDATE "01-Jan-2000 00:00:00 +0000" SAVEDATE **
        S: f OK FETCH completed
        C: g SEARCH SAVEDSINCE 1-Jan-2020 SAVEDATESUPPORTED
        S: * SEARCH 1 2 3 4
        S: g OK SEARCH completed
        C: h SEARCH OR SAVEDBEFORE 1-Jan-2020 SAVEDON 1-Jan-2000
        S: * SEARCH
        S: h OK SEARCH completed
        C: i SEARCH SINCE 1-Jan-2020
        S: * SEARCH 1 2 3
        S: i OK SEARCH completed
        "#,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catenate_puts_a_message_together_from_parts() {
    // RFC 4469: TEXT literals and URLs of this user's messages or their
    // parts; a URL that names nothing fails the whole APPEND, and what
    // the client still sends of it is read through.
    let f = fixture();
    f.claim_recent().await;
    f.transcript(
        r#"
        C: a LOGIN alice@example.test alice-pw
        S: a OK **
        C: b APPEND INBOX {26+}
        C: Subject: one
        C:
        C: body one
        C:
        S: b OK [APPENDUID * 4] APPEND completed
        C: c APPEND INBOX (\Draft) CATENATE (URL "/INBOX/;uid=4/;section=header" TEXT {10+}
        C: new body
        C: )
        S: c OK [APPENDUID * 5] APPEND completed
        C: d APPEND INBOX CATENATE (URL "/INBOX/;uid=4/;partial=0.16" URL "imap://alice%40example.test@h/INBOX/;UID=4/;SECTION=TEXT") CATENATE (TEXT {6}
        S: + Ready for literal data
        C: x: y
        C: )
        S: d OK [APPENDUID * 6:7] APPEND completed
        C: e APPEND INBOX CATENATE (TEXT {6+}
        C: a: b
        C:  URL "/INBOX/;uid=99" TEXT {6+}
        C: c: d
        C: )
        S: e NO [BADURL /INBOX/;uid=99] no such message
        C: f APPEND INBOX CATENATE (URL "imap://bob%40example.test@h/INBOX/;UID=1")
        S: f NO [BADURL imap://bob%40example.test@h/INBOX/;UID=1] another user's mailbox
        C: g APPEND INBOX CATENATE (URL "/INBOX/;uid=4/;section=7" TEXT {3}
        S: g NO [BADURL /INBOX/;uid=4/;section=7] no such part
        C: h APPEND INBOX CATENATE (URL "/INBOX/;uid=4" TEXT {70000}
        S: h NO [TOOBIG] Message larger than 65536 octets
        C: i APPEND INBOX CATENATE (URL "/Nowhere/;uid=1")
        S: i NO [BADURL /Nowhere/;uid=1] no such mailbox
        C: j APPEND Nowhere CATENATE (TEXT {3+}
        C: a
        C: )
        S: j NO [TRYCREATE] No such mailbox
        C: k EXAMINE INBOX
        S*: * 7 EXISTS
        S*: k OK [READ-ONLY] EXAMINE completed
        C: l FETCH 5:7 (FLAGS BODY.PEEK[])
        S: * 5 FETCH (FLAGS (\Draft \Recent) BODY[] {26}
        S: Subject: one
        S:
        S: new body
        S: )
        S: * 6 FETCH (FLAGS (\Recent) BODY[] {26}
        S: Subject: one
        S:
        S: body one
        S: )
        S: * 7 FETCH (FLAGS (\Recent) BODY[] {6}
        S: x: y
        S: )
        S: l OK FETCH completed
        "#,
    )
    .await;
}
