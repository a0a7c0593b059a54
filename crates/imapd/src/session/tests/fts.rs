//! SEARCH BODY and TEXT through the full-text index (fts.rs): the same
//! answers as reading every message, kept up to date with new mail, and
//! rebuilt from nothing when its file is damaged or gone.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_and_text_searches_use_the_index_and_stay_exact() {
    let f = fixture();
    f.claim_recent().await;
    let (mut c, _s) = f.connect(LOOPBACK).await;
    let script = r#"
        C: l LOGIN alice@example.test alice-pw
        S: l OK **
        C: s SELECT INBOX
        S*: s OK [READ-WRITE] SELECT completed
        C: a SEARCH TEXT "Hello"
        S: * SEARCH 2
        S: a OK SEARCH completed
        C: b SEARCH BODY "ONE"
        S: * SEARCH 1
        S: b OK SEARCH completed
        C: c SEARCH TEXT "ello wor"
        S: * SEARCH 2
        S: c OK SEARCH completed
        C: d SEARCH TEXT "xyzzy-nowhere"
        S: * SEARCH
        S: d OK SEARCH completed
        C: e SEARCH OR BODY hello BODY three
        S: * SEARCH 2 3
        S: e OK SEARCH completed
        C: g SEARCH NOT BODY hello
        S: * SEARCH 1 3
        S: g OK SEARCH completed
        C: h SEARCH TEXT "subject: thr" BODY three
        S: * SEARCH 3
        S: h OK SEARCH completed
        C: i SEARCH TEXT "o"
        S: * SEARCH 1 2
        S: i OK SEARCH completed
        "#;
    c.run(script).await;
    let inbox = f.home.mail_root().join("example.test/alice");
    let file = inbox.join(crate::fts::FILE);
    assert!(file.exists());
    // New mail (base64 text, a charset) is indexed at the next search.
    f.home
        .store
        .deliver(
            ALICE.0,
            None,
            &mut &b"Subject: four\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\
                    Content-Transfer-Encoding: base64\r\n\r\naGVsbG8gY2Fm6SE=\r\n"[..],
            Quota::default(),
        )
        .unwrap();
    c.run(
        r#"
        C: n NOOP
        S*: n OK NOOP completed
        "#,
    )
    .await;
    // The session that saw it come indexed it (catch_up), before any search.
    let us = f.ctx.store.open_user(ALICE.0, Quota::default()).unwrap();
    let added = |us: &facteur_store::UserStore| {
        let mb = us.select("INBOX").unwrap();
        crate::fts::candidates(&mb, &[]).unwrap().1
    };
    assert_eq!(added(&us), crate::fts::Added(0), "indexed when it came");
    c.run(
        r#"
        C: a SEARCH TEXT "Hello"
        S: * SEARCH 2 4
        S: a OK SEARCH completed
        C: b SEARCH BODY "CAFÉ"
        S: * SEARCH 4
        S: b OK SEARCH completed
        "#,
    )
    .await;
    // A damaged file: cut inside a record, then garbage; answers unchanged.
    // A new message is then appended after the cut (catch_up does not
    // read the file): the next search drops the cut and what follows it,
    // and indexes those messages again.
    let len = std::fs::metadata(&file).unwrap().len();
    let f2 = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
    f2.set_len(len - 3).unwrap();
    drop(f2);
    f.home
        .store
        .deliver(
            ALICE.0,
            None,
            &mut &b"Subject: five\r\n\r\nHello five\r\n"[..],
            Quota::default(),
        )
        .unwrap();
    c.run(
        r#"
        C: n NOOP
        S*: n OK NOOP completed
        C: a SEARCH TEXT "Hello"
        S: * SEARCH 2 4 5
        S: a OK SEARCH completed
        "#,
    )
    .await;
    assert_eq!(added(&us), crate::fts::Added(0), "healed");
    std::fs::write(&file, b"not an index at all").unwrap();
    c.run(
        r#"
        C: a SEARCH TEXT "Hello"
        S: * SEARCH 2 4 5
        S: a OK SEARCH completed
        C: e STORE 2 +FLAGS.SILENT (\Deleted)
        S: e OK STORE completed
        C: x EXPUNGE
        S: * 2 EXPUNGE
        S: x OK EXPUNGE completed
        C: a SEARCH TEXT "Hello"
        S: * SEARCH 3 4
        S: a OK SEARCH completed
        "#,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_to_another_folder_updates_its_index() {
    let f = fixture();
    let (mut c, _s) = f.connect(LOOPBACK).await;
    c.run(
        r#"
        C: l LOGIN alice@example.test alice-pw
        S: l OK **
        C: c CREATE Notes
        S: c OK **
        C: a APPEND Notes {24}
        S: + **
        C: Subject: a
        C:
        C: first note
        S: a OK **
        C: b APPEND Notes {25}
        S: + **
        C: Subject: b
        C:
        C: second note
        S: b OK **
        C: d APPEND Notes {24}
        S: + **
        C: Subject: d
        C:
        C: third note
        S: d OK **
        C: s SELECT Notes
        S*: s OK [READ-WRITE] SELECT completed
        C: t SEARCH BODY "second"
        S: * SEARCH 2
        S: t OK SEARCH completed
        C: i SELECT INBOX
        S*: i OK [READ-WRITE] SELECT completed
        C: e APPEND Notes {25}
        S: + **
        C: Subject: e
        C:
        C: fourth note
        S: e OK **
        "#,
    )
    .await;
    let us = f.ctx.store.open_user(ALICE.0, Quota::default()).unwrap();
    let mb = us.select("Notes").unwrap();
    let (c4, added) = crate::fts::candidates(&mb, &[crate::fts::needle_grams("fourth")]).unwrap();
    assert_eq!(added, crate::fts::Added(0), "indexed at the APPEND");
    assert!(c4.may_match(4));
}
