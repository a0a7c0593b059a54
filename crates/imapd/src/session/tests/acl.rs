//! Transcripts of shared mailboxes: ACL (RFC 4314), the `Shared/`
//! namespace and LIST-MYRIGHTS (RFC 8440), between Alice and Bob of one
//! domain.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mailbox_shared_with_rights_and_taken_back() {
    let f = fixture();
    let (mut a, _sa) = f.login("alice").await;
    let (mut b, _sb) = f.login("bob").await;
    a.run(
        r#"
        C: c CREATE Team
        S: c OK **
        C: g GETACL Team
        S: * ACL Team alice@example.test lrswipkxteacd
        S: g OK GETACL completed
        C: s SETACL Team bob lrs
        S: s OK SETACL completed
        C: s2 SETACL Team bob lrQ
        S: s2 BAD Unknown right 'Q'
        C: s3 SETACL Team carol@example.test lr
        S: s3 NO [CANNOT] No such user
        C: s4 SETACL Team eve@other.test lr
        S: s4 NO [CANNOT] Mailboxes are shared only with users of example.test
        C: s5 SETACL Team alice lr
        S: s5 NO [CANNOT] The owner's rights cannot be changed
        C: s6 SETACL Team -bob lr
        S: s6 NO [CANNOT] Negative rights are not supported
        C: g GETACL Team
        S: * ACL Team alice@example.test lrswipkxteacd bob@example.test lrs
        S: g OK GETACL completed
        C: m MYRIGHTS Team
        S: * MYRIGHTS Team lrswipkxteacd
        S: m OK MYRIGHTS completed
        C: r LISTRIGHTS Team Bob
        S: * LISTRIGHTS Team Bob "" l r s w i p k x t e a c d
        S: r OK LISTRIGHTS completed
        C: r LISTRIGHTS Team alice@example.test
        S: * LISTRIGHTS Team alice@example.test lrswipkxteacd
        S: r OK LISTRIGHTS completed
        C: p APPEND Team (\Flagged) {12}
        S: + **
        C: Subject: t
        C:
        S: p OK **
        "#,
    )
    .await;
    b.run(
        r#"
        C: n NAMESPACE
        S: * NAMESPACE (("" "/")) (("Shared/" "/")) NIL
        S: n OK NAMESPACE completed
        C: L LIST "" "Shared/*" RETURN (MYRIGHTS)
        S: * LIST (\Noselect \HasChildren) "/" Shared/alice
        S: * LIST (\HasNoChildren) "/" Shared/alice/Team
        S: * MYRIGHTS Shared/alice/Team lrs
        S: L OK LIST completed
        C: x SELECT Shared/alice/Team
        S*: * OK [PERMANENTFLAGS (\Seen)] Flags permitted
        S*: x OK [READ-WRITE] SELECT completed
        C: f FETCH 1 (FLAGS)
        S: * 1 FETCH (FLAGS (\Flagged **
        S: f OK FETCH completed
        C: t STORE 1 +FLAGS (\Deleted)
        S: t NO [NOPERM] No right to change these flags here
        C: t STORE 1 +FLAGS (\Seen \Deleted \Answered)
        S: * 1 FETCH (FLAGS (\Seen \Flagged **
        S: t OK STORE completed
        C: e EXPUNGE
        S: e NO [NOPERM] Needs the right "e" on this mailbox
        C: p APPEND Shared/alice/Team {12}
        S: p NO [NOPERM] Needs the right "i" on this mailbox
        C: v MOVE 1 INBOX
        S: v NO [NOPERM] Needs the rights "te" on this mailbox
        C: c COPY 1 INBOX
        S: c OK [COPYUID * 1 1] COPY completed
        C: g GETACL Shared/alice/Team
        S: g NO [NOPERM] Needs the right "a" on this mailbox
        C: m MYRIGHTS Shared/alice/Team
        S: * MYRIGHTS Shared/alice/Team lrs
        S: m OK MYRIGHTS completed
        C: q GETQUOTAROOT Shared/alice/Team
        S: * QUOTAROOT Shared/alice/Team
        S: q OK GETQUOTAROOT completed
        C: i SELECT Shared/alice/INBOX
        S: * OK [CLOSED] Previous mailbox closed
        S: i NO [NONEXISTENT] No such mailbox
        C: i STATUS Shared/alice/Sent (MESSAGES)
        S: i NO [NONEXISTENT] No such mailbox
        C: i SELECT Shared/alice
        S: i NO [NONEXISTENT] No such mailbox
        C: i CREATE Shared/alice/Mine
        S: i NO [NOPERM] Mailboxes are made below an existing shared mailbox
        "#,
    )
    .await;
    // The copy in Bob's INBOX has the flags Bob could see.
    let us = f
        .ctx
        .store
        .open_user("bob@example.test", Quota::default())
        .unwrap();
    let inbox = us.select("INBOX").unwrap();
    assert_eq!(inbox.messages().len(), 1);
    assert_eq!(
        inbox.messages()[0].flags.system,
        facteur_store::SEEN | facteur_store::FLAGGED
    );
    // More rights: Bob may insert, delete, expunge and create below.
    a.run(
        r#"
        C: s SETACL Team bob +itek
        S: s OK SETACL completed
        "#,
    )
    .await;
    b.run(
        r#"
        C: x SELECT Shared/alice/Team
        S*: * OK [PERMANENTFLAGS (\Deleted \Seen)] Flags permitted
        S*: x OK [READ-WRITE] SELECT completed
        C: p APPEND Shared/alice/Team (\Seen $Work) {12}
        S: + **
        C: Subject: u
        C:
        S*: p OK [APPENDUID * 2] APPEND completed
        C: f FETCH 2 (FLAGS)
        S: * 2 FETCH (FLAGS (\Seen **
        S: f OK FETCH completed
        C: v MOVE 1 INBOX
        S: * OK [COPYUID * 1 2] Moved
        S: * 1 EXPUNGE
        S: v OK MOVE completed
        C: k CREATE Shared/alice/Team/Sub
        S: k OK **
        C: L LIST "" "Shared/%/%/%"
        S: * LIST (\HasNoChildren) "/" Shared/alice/Team/Sub
        S: L OK LIST completed
        "#,
    )
    .await;
    // Alice saw the move, and Sub inherited Team's ACL.
    assert_eq!(f.uids("Team"), [2]);
    let us = f.ctx.store.open_user(ALICE.0, Quota::default()).unwrap();
    let team = us.select("Team").unwrap();
    // Without `w`, the keyword of Bob's APPEND was dropped; \Seen kept.
    assert_eq!(
        team.messages()[0].flags,
        facteur_store::Flags::system(facteur_store::SEEN)
    );
    assert!(
        f.ctx
            .store
            .has_acl_row(ALICE.0, "Team/Sub", "bob@example.test")
            .unwrap()
    );
    // A RENAME keeps the grants; a DELETEACL takes them back.
    a.run(
        r#"
        C: u UNSELECT
        S: u **
        C: r RENAME Team Office
        S: r OK RENAME completed
        "#,
    )
    .await;
    b.run(
        r#"
        C: u UNSELECT
        S: u OK **
        C: L LIST "" "Shared/*"
        S: * LIST (\Noselect \HasChildren) "/" Shared/alice
        S: * LIST (\HasChildren) "/" Shared/alice/Office
        S: * LIST (\HasNoChildren) "/" Shared/alice/Office/Sub
        S: L OK LIST completed
        "#,
    )
    .await;
    a.run(
        r#"
        C: d DELETEACL Office bob
        S: d OK DELETEACL completed
        C: d DELETEACL Office/Sub bob@example.test
        S: d OK DELETEACL completed
        "#,
    )
    .await;
    b.run(
        r#"
        C: L LIST "" "Shared/*"
        S: L OK LIST completed
        C: x SELECT Shared/alice/Office
        S: x NO [NONEXISTENT] No such mailbox
        C: m MYRIGHTS Shared/alice/Office
        S: m NO [NONEXISTENT] No such mailbox
        "#,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_rights_select_read_only_and_fetch_leaves_seen_alone() {
    let f = fixture();
    f.claim_recent().await;
    let (mut a, _sa) = f.login("alice").await;
    a.run(
        r#"
        C: s SETACL INBOX anyone lr
        S: s OK SETACL completed
        "#,
    )
    .await;
    let (mut b, _sb) = f.login("bob").await;
    b.run(
        r#"
        C: x SELECT Shared/alice/INBOX
        S*: * OK [PERMANENTFLAGS ()] Read-only mailbox
        S*: x OK [READ-ONLY] SELECT completed
        C: f FETCH 1 (BODY[TEXT])
        S: * 1 FETCH (BODY[TEXT] {10}
        S: body one
        S: )
        S: f OK FETCH completed
        C: t STORE 1 +FLAGS (\Seen)
        S: t NO [READ-ONLY] Mailbox is read-only
        C: c CLOSE
        S: c OK CLOSE completed
        "#,
    )
    .await;
    // Nothing was marked \Seen by Bob's reading.
    let us = f.ctx.store.open_user(ALICE.0, Quota::default()).unwrap();
    let inbox = us.select("INBOX").unwrap();
    assert_eq!(inbox.messages()[0].flags.system & facteur_store::SEEN, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_named_shared_before_the_namespace_stays_the_users() {
    let f = fixture();
    let us = f.ctx.store.open_user(ALICE.0, Quota::default()).unwrap();
    us.create_mailbox("Shared/old", None).unwrap();
    let (mut a, _sa) = f.login("alice").await;
    a.run(
        r#"
        C: s SELECT Shared/old
        S*: s OK [READ-WRITE] SELECT completed
        C: m MYRIGHTS Shared/old
        S: * MYRIGHTS Shared/old lrswipkxteacd
        S: m OK MYRIGHTS completed
        C: x SELECT Shared/../x
        S: * OK [CLOSED] Previous mailbox closed
        S: x NO [NONEXISTENT] No such mailbox
        C: c CREATE Shared/new
        S: c NO [NOPERM] Mailboxes are made below an existing shared mailbox
        C: c CREATE Shared/old/sub
        S: c OK **
        C: r RENAME Shared/old Old
        S: r OK RENAME completed
        "#,
    )
    .await;
    // Below the user's own folder, in the user's own store.
    assert!(us.exists("Old/sub").unwrap());
}
