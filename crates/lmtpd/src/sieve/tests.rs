//! Delivery through Sieve, in memory: each rule of the kind people write
//! (procmail recipes turned into Sieve), and the safety rules (a broken
//! script keeps the message, reject answers 550, redirects and replies go
//! through the spool, vacation answers once).

use std::io::Read;

use facteur_spool::{QueueName, Spool};

use crate::handler::tests::{Fixture, fixture, transcript};

fn put_script(f: &Fixture, user: &str, text: &str) {
    let sc = f.ctx.store.scripts(user).unwrap();
    sc.put(
        "main",
        text.as_bytes(),
        facteur_store::sieve::ScriptLimits::default(),
    )
    .unwrap();
    sc.activate(Some("main")).unwrap();
}

fn folder_files(f: &Fixture, user: &str, folder: &str) -> Vec<String> {
    let (local, domain) = user.split_once('@').unwrap();
    let dir = f
        .root
        .join("mail")
        .join(domain)
        .join(local)
        .join(format!(".{folder}"));
    let mut out = Vec::new();
    for sub in ["new", "cur"] {
        if let Ok(rd) = std::fs::read_dir(dir.join(sub)) {
            for e in rd {
                out.push(e.unwrap().file_name().to_string_lossy().into_owned());
            }
        }
    }
    out
}

/// The messages queued in maildrop/: (sender, recipients, message).
fn queued(f: &Fixture) -> Vec<(String, Vec<String>, String)> {
    let spool = Spool::open(&f.root.join("spool")).unwrap();
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(spool.dir(QueueName::Maildrop)) else {
        return out;
    };
    for e in rd {
        let id = e.unwrap().file_name().to_string_lossy().into_owned();
        let qf = spool.read(QueueName::Maildrop, &id).unwrap();
        let mut m = String::new();
        spool
            .open_message(QueueName::Maildrop, &id)
            .unwrap()
            .read_to_string(&mut m)
            .unwrap();
        let rcpts = qf
            .envelope
            .recipients
            .iter()
            .map(|r| r.address.clone())
            .collect();
        out.push((qf.envelope.sender.clone(), rcpts, m));
    }
    out
}

async fn send(f: &Fixture, from: &str, to: &str, msg: &str, expect: &str) {
    let mail = format!("MAIL FROM:<{from}>\r\n");
    let rcpt = format!("RCPT TO:<{to}>\r\n");
    let data = format!("{msg}.\r\n");
    transcript(
        f,
        &[
            (b"LHLO c\r\n", &["250 XQUEUEID"]),
            (mail.as_bytes(), &["250"]),
            (rcpt.as_bytes(), &["250"]),
            (b"DATA\r\n", &["354"]),
            (data.as_bytes(), &[expect]),
            (b"QUIT\r\n", &["221"]),
        ],
    )
    .await;
}

const MSG: &str = "From: journal@news.example\r\nTo: alice@example.test\r\nSubject: Daily digest\r\nMessage-ID: <d1@news.example>\r\n\r\nnews\r\n";

#[tokio::test]
async fn fileinto_with_flags_and_create() {
    let f = fixture(1 << 20);
    put_script(
        &f,
        "bob@example.test",
        r#"require ["fileinto", "imap4flags", "mailbox"];
        if address :is "from" "journal@news.example" { fileinto :create :flags "\\Seen" "News"; stop; }"#,
    );
    send(
        &f,
        "journal@news.example",
        "bob@example.test",
        MSG,
        "250 2.0.0",
    )
    .await;
    let files = folder_files(&f, "bob@example.test", "News");
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].ends_with(":2,S"), "{files:?}");
    assert!(f.new_files("bob@example.test").is_empty(), "not in INBOX");
}

#[tokio::test]
async fn discard_and_missing_folder() {
    let f = fixture(1 << 20);
    put_script(
        &f,
        "bob@example.test",
        r#"if header :contains "subject" "digest" { discard; }"#,
    );
    send(
        &f,
        "journal@news.example",
        "bob@example.test",
        MSG,
        "250 2.0.0",
    )
    .await;
    assert!(f.new_files("bob@example.test").is_empty());
    // fileinto a folder that does not exist (no :create): INBOX
    put_script(
        &f,
        "bob@example.test",
        r#"require "fileinto"; fileinto "Nowhere";"#,
    );
    send(
        &f,
        "journal@news.example",
        "bob@example.test",
        MSG,
        "250 2.0.0",
    )
    .await;
    assert_eq!(f.new_files("bob@example.test").len(), 1);
}

#[tokio::test]
async fn broken_script_keeps_the_message() {
    let f = fixture(1 << 20);
    put_script(&f, "bob@example.test", "this is not sieve;");
    send(
        &f,
        "journal@news.example",
        "bob@example.test",
        MSG,
        "250 2.0.0",
    )
    .await;
    assert_eq!(f.new_files("bob@example.test").len(), 1);
    // a run-time failure (too many redirects) keeps it too
    put_script(
        &f,
        "bob@example.test",
        r#"redirect "a@x.test"; redirect "b@x.test"; redirect "c@x.test"; redirect "d@x.test"; redirect "e@x.test";"#,
    );
    send(
        &f,
        "journal@news.example",
        "bob@example.test",
        MSG,
        "250 2.0.0",
    )
    .await;
    assert_eq!(f.new_files("bob@example.test").len(), 2);
    assert!(queued(&f).is_empty(), "nothing sent by a failed run");
}

#[tokio::test]
async fn reject_sends_a_notice_through_the_queue() {
    let f = fixture(1 << 20);
    put_script(
        &f,
        "bob@example.test",
        r#"require "reject"; reject "No digests, thanks";"#,
    );
    send(
        &f,
        "journal@news.example",
        "bob@example.test",
        MSG,
        "250 2.0.0",
    )
    .await;
    assert!(f.new_files("bob@example.test").is_empty());
    let q = queued(&f);
    assert_eq!(q.len(), 1);
    assert_eq!(
        (q[0].0.as_str(), q[0].1.as_slice()),
        ("", &["journal@news.example".to_string()][..])
    );
    assert!(q[0].2.contains("No digests, thanks"));
    assert!(q[0].2.contains("report-type=disposition-notification"));
    // from the null sender: nothing to answer, nothing stored
    send(&f, "", "bob@example.test", MSG, "250 2.0.0").await;
    assert_eq!(queued(&f).len(), 1);
}

#[tokio::test]
async fn ereject_is_a_550_for_that_recipient() {
    let f = fixture(1 << 20);
    put_script(
        &f,
        "bob@example.test",
        r#"require "ereject"; ereject "No digests, thanks";"#,
    );
    send(
        &f,
        "journal@news.example",
        "bob@example.test",
        MSG,
        "550 5.7.1 No digests, thanks",
    )
    .await;
    assert!(f.new_files("bob@example.test").is_empty());
}

#[tokio::test]
async fn redirect_goes_through_the_spool() {
    let f = fixture(1 << 20);
    put_script(
        &f,
        "bob@example.test",
        r#"require "copy"; redirect :copy "archive@elsewhere.test";"#,
    );
    send(
        &f,
        "journal@news.example",
        "bob@example.test",
        MSG,
        "250 2.0.0",
    )
    .await;
    assert_eq!(f.new_files("bob@example.test").len(), 1);
    let q = queued(&f);
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].0, "journal@news.example");
    assert_eq!(q[0].1, ["archive@elsewhere.test"]);
    assert!(
        q[0].2.starts_with(
            "X-Sieve: facteur\r\nX-Sieve-Redirected-From: bob@example.test\r\nDelivered-To: bob@example.test\r\nFrom: journal@"
        ),
        "{}",
        q[0].2
    );
    // the message comes back: a loop, not sent again
    let back = format!("Delivered-To: bob@example.test\r\n{MSG}");
    send(
        &f,
        "journal@news.example",
        "bob@example.test",
        &back,
        "250 2.0.0",
    )
    .await;
    assert_eq!(queued(&f).len(), 1);
}

#[tokio::test]
async fn redirect_sends_as_the_site_says_and_sees_its_own_loops() {
    let f = fixture(1 << 20);
    let c = facteur_config::Sieve {
        redirect_envelope_from: " recipient ".into(),
        ..Default::default()
    };
    f.ctx.sieve.set(crate::sieve::Settings::from_config(&c));
    put_script(&f, "bob@example.test", r#"redirect "bob@elsewhere.test";"#);
    send(
        &f,
        "journal@news.example",
        "bob@example.test",
        MSG,
        "250 2.0.0",
    )
    .await;
    // sent from the recipient, not kept
    let q = queued(&f);
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].0, "bob@example.test");
    assert!(f.new_files("bob@example.test").is_empty());
    // mail from <> stays from <>
    send(&f, "", "bob@example.test", MSG, "250 2.0.0").await;
    let q = queued(&f);
    assert_eq!(q.len(), 2);
    assert!(q.iter().any(|m| m.0.is_empty()), "{q:?}");
    // the copy comes back through another server (no Delivered-To of
    // ours): its X-Sieve-Redirected-From shows the loop; kept, not sent
    let back = format!("X-Sieve-Redirected-From: bob@example.test\r\n{MSG}");
    send(
        &f,
        "journal@news.example",
        "bob@example.test",
        &back,
        "250 2.0.0",
    )
    .await;
    assert_eq!(queued(&f).len(), 2);
    assert_eq!(f.new_files("bob@example.test").len(), 1);
}

#[tokio::test]
async fn vacation_answers_once() {
    let f = fixture(1 << 20);
    put_script(
        &f,
        "bob@example.test",
        r#"require "vacation"; vacation :days 7 :subject "Away" "Back on Monday.";"#,
    );
    let msg = "From: Carol <carol@remote.test>\r\nTo: bob@example.test\r\nSubject: lunch?\r\nMessage-ID: <c1@remote.test>\r\n\r\nhi\r\n";
    send(
        &f,
        "carol@remote.test",
        "bob@example.test",
        msg,
        "250 2.0.0",
    )
    .await;
    send(
        &f,
        "carol@remote.test",
        "bob@example.test",
        msg,
        "250 2.0.0",
    )
    .await;
    assert_eq!(f.new_files("bob@example.test").len(), 2);
    let q = queued(&f);
    assert_eq!(q.len(), 1, "one reply within the period");
    assert_eq!(q[0].0, "", "null reverse-path");
    assert_eq!(q[0].1, ["carol@remote.test"]);
    assert!(q[0].2.contains("Subject: Away\r\n"));
    assert!(q[0].2.contains("Auto-Submitted: auto-replied"));
    // automatic mail is never answered
    let auto = msg.replace("Subject:", "Auto-Submitted: auto-generated\r\nSubject:");
    send(
        &f,
        "dave@remote.test",
        "bob@example.test",
        &auto,
        "250 2.0.0",
    )
    .await;
    assert_eq!(queued(&f).len(), 1);
}

#[tokio::test]
async fn global_scripts_run_around_the_users() {
    let f = fixture(1 << 20);
    let before = f.root.join("before.sieve");
    std::fs::write(&before, "require [\"imap4flags\"]; addflag \"$Global\";").unwrap();
    let after = f.root.join("after.sieve");
    std::fs::write(
        &after,
        "require [\"fileinto\", \"copy\"]; fileinto :copy \"Never\";",
    )
    .unwrap();
    let cfg = facteur_config::Sieve {
        before: vec![before],
        after: vec![after],
        ..Default::default()
    };
    f.ctx.sieve.set(crate::sieve::Settings::from_config(&cfg));
    // the user's script files it away: the after script does not run
    put_script(
        &f,
        "bob@example.test",
        r#"require ["fileinto", "mailbox"]; fileinto :create "Kept";"#,
    );
    send(
        &f,
        "journal@news.example",
        "bob@example.test",
        MSG,
        "250 2.0.0",
    )
    .await;
    assert_eq!(folder_files(&f, "bob@example.test", "Kept").len(), 1);
    assert!(folder_files(&f, "bob@example.test", "Never").is_empty());
    // alice has no script: before and after run; "Never" does not exist,
    // so that copy lands in INBOX, once with the implicit keep
    send(
        &f,
        "journal@news.example",
        "alice@example.test",
        MSG,
        "250 2.0.0",
    )
    .await;
    let us = f
        .ctx
        .store
        .open_user("alice@example.test", facteur_store::Quota::default())
        .unwrap();
    let mb = us.select("INBOX").unwrap();
    assert_eq!(mb.messages().len(), 1);
    assert!(mb.messages()[0].flags.keywords.contains("$Global"));
}

#[tokio::test]
async fn a_large_message_is_filtered_on_its_start_and_stored_whole() {
    let f = fixture(4 << 20);
    put_script(
        &f,
        "bob@example.test",
        r#"require ["fileinto", "mailbox"]; if allof (size :over 300K, header :is "subject" "big") { fileinto :create "Big"; }"#,
    );
    let body = "x".repeat(998) + "\r\n";
    let msg = format!("Subject: big\r\n\r\n{}", body.repeat(400));
    send(&f, "s@remote.test", "bob@example.test", &msg, "250 2.0.0").await;
    let (local, domain) = ("bob", "example.test");
    let dir = f
        .root
        .join("mail")
        .join(domain)
        .join(local)
        .join(".Big")
        .join("new");
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1);
    // the whole message, LF form on disk, after Return-Path and Delivered-To
    let stored = std::fs::read(&files[0]).unwrap();
    assert!(stored.len() > 400 * 999, "{}", stored.len());
    assert!(stored.ends_with(b"x\n"));
}
