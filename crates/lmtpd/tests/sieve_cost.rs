//! What Sieve adds to a delivery, in-process: finding the user's scripts
//! (`scripts_for`, cached by file stamps) and running a 20-rule script
//! like bench/'s workload 9 on a 5 KB message. The timing test is ignored
//! by default; run it in release to read the figures (no timing is
//! asserted, rule 4):
//!
//!     cargo test --release -p facteur-lmtpd --test sieve_cost -- --ignored --nocapture
//!
//! Besides the time it prints the heap allocations per delivery (counted
//! by this binary's allocator): in lmtpd each one is a malloc and a free
//! on a worker thread, a cost the in-process time hides and bench/ shows.
//! (The counting allocator is the only unsafe code here: a test's
//! instrument, passing every call to the system allocator.)
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is passed to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's layout, as GlobalAlloc::alloc requires.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: ptr came from System.alloc with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as GlobalAlloc::realloc requires, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.load(Ordering::Relaxed)
}

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

/// What `n` deliveries cost: (time and allocations to find the scripts,
/// time and allocations to run them), per delivery.
struct Cost {
    find: std::time::Duration,
    find_allocs: u64,
    run: std::time::Duration,
    run_allocs: u64,
}

/// The allocation counter is the process's: one measurement at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn measure(n: u32) -> Cost {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
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
    // the first lookup compiles the script: not what a delivery pays
    facteur_lmtpd::sieve::scripts_for(&store, &cache, &settings, user, "q");
    let a = allocations();
    let t = std::time::Instant::now();
    for _ in 0..n {
        let s = facteur_lmtpd::sieve::scripts_for(&store, &cache, &settings, user, "q");
        assert_eq!(s.len(), 1);
    }
    let find = t.elapsed() / n;
    let find_allocs = (allocations() - a) / u64::from(n);
    let sources = facteur_lmtpd::sieve::scripts_for(&store, &cache, &settings, user, "q");
    let a = allocations();
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
    Cost {
        find,
        find_allocs,
        run: t.elapsed() / n,
        run_allocs: (allocations() - a) / u64::from(n),
    }
}

#[test]
#[ignore]
fn sieve_cost_per_delivery() {
    let c = measure(20_000);
    eprintln!(
        "finding the scripts: {:?} and {} allocations per delivery; \
         running 20 rules: {:?} and {} allocations per delivery",
        c.find, c.find_allocs, c.run, c.run_allocs
    );
}

/// Each allocation is a malloc and a free on a worker thread at every
/// delivery; the 20 rules used to make 140 (a copy of every header name,
/// key and value they looked at), now about 30. A change that brings the
/// copies back fails here rather than only in bench/'s workload 9.
#[test]
fn running_the_rules_allocates_little() {
    let c = measure(50);
    assert!(c.run_allocs <= 40, "{} allocations per run", c.run_allocs);
    assert!(
        c.find_allocs <= 30,
        "{} allocations per lookup",
        c.find_allocs
    );
}
