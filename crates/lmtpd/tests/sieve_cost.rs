//! What Sieve adds to a delivery, in-process: finding the user's scripts
//! (`scripts_for`, cached by file stamps) and running a 20-rule script
//! like bench/'s workload 9 on a 5 KB message. Ignored by default; run it
//! in release to read the figures (no timing is asserted, rule 4):
//!
//!     cargo test --release -p facteur-lmtpd --test sieve_cost -- --ignored --nocapture

/// Twenty rules of the kinds of bench/lib/workloads.py's SIEVE_20, none
/// matching the message.
fn script() -> String {
    let mut s = String::from(
        "require [\"fileinto\", \"imap4flags\", \"variables\", \"envelope\", \"relational\", \"comparator-i;ascii-numeric\"];\r\n",
    );
    for i in 0..4 {
        s.push_str(&format!(
            "if address :is \"from\" \"journal{i}@news.example\" {{ fileinto \"News\"; stop; }}\r\n"
        ));
        s.push_str(&format!(
            "if header :contains \"subject\" \"[list-{i}]\" {{ fileinto \"Lists\"; stop; }}\r\n"
        ));
        s.push_str(&format!("if header :contains \"list-id\" \"<team{i}.lists.example>\" {{ fileinto \"Team\"; stop; }}\r\n"));
        s.push_str(&format!(
            "if address :domain :is \"from\" \"spam{i}.example\" {{ discard; stop; }}\r\n"
        ));
        s.push_str(&format!(
            "if header :matches \"subject\" \"*invoice {i}*\" {{ addflag \"$Invoice\"; }}\r\n"
        ));
    }
    s
}

#[test]
#[ignore]
fn sieve_cost_per_delivery() {
    let d = tempfile::tempdir().expect("a temporary directory");
    let store = facteur_testkit::store_at(&d.path().join("mail"));
    let user = "d0@example.test";
    store.create_user(user).expect("a user");
    let sc = store.scripts(user).expect("scripts");
    sc.put(
        "main",
        script().as_bytes(),
        facteur_store::sieve::ScriptLimits::default(),
    )
    .expect("stored");
    sc.activate(Some("main")).expect("active");
    let settings = facteur_lmtpd::sieve::Settings::from_config(&facteur_config::Sieve::default());
    let cache = facteur_lmtpd::sieve::Cache::default();
    let mut msg = b"Return-Path: <bench@example.test>\r\nDelivered-To: d0@example.test\r\nFrom: <bench@example.test>\r\nTo: <d0@example.test>\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-Id: <1@x>\r\n\r\n".to_vec();
    msg.extend(std::iter::repeat_n(b'x', 5000));
    let n = 20_000u32;
    let t = std::time::Instant::now();
    for _ in 0..n {
        let s = facteur_lmtpd::sieve::scripts_for(&store, &cache, &settings, user, "q");
        assert_eq!(s.len(), 1);
    }
    let find = t.elapsed() / n;
    let sources = facteur_lmtpd::sieve::scripts_for(&store, &cache, &settings, user, "q");
    let t = std::time::Instant::now();
    for _ in 0..n {
        let mut host = facteur_lmtpd::sieve::exec::DeliveryHost::new(
            &store,
            None,
            &cache,
            &settings,
            user,
            "mx.example.test",
            vec![user.to_string()],
        );
        let env = facteur_sieve::Envelope {
            from: "bench@example.test".into(),
            to: user.into(),
            orig_to: None,
            auth: None,
        };
        let v = facteur_lmtpd::sieve::exec::run(&mut host, &sources, &msg, msg.len() as u64, env);
        assert!(matches!(v, facteur_lmtpd::sieve::exec::Verdict::Filtered(o) if o.implicit_keep));
    }
    let run = t.elapsed() / n;
    eprintln!("finding the scripts: {find:?} per delivery; running 20 rules: {run:?} per delivery");
}
