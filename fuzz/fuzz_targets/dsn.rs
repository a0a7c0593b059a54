//! Fuzz target for the bounces facteur-qmgr builds (issue 14: "DSN of a
//! hostile original"). Everything in a DSN but our own words comes from
//! others: the envelope (sender, recipients, ORCPT, ENVID: from SMTP
//! clients or a local user's maildrop file), the remote servers' replies,
//! and the original message itself. Checks: the DSN's header section and
//! its `message/delivery-status` part consist only of the fields we write
//! (a hostile value cannot add one: no CR or LF gets through), every
//! reported recipient has its block, and the original, returned whole,
//! comes back byte for byte inside the DSN.

#![no_main]

use facteur_mail::dsn::RcptStatus;
use facteur_qmgr::dsn::{DsnContext, Original, build};
use facteur_spool::{Envelope, Recipient};
use libfuzzer_sys::fuzz_target;

const HEADER_FIELDS: &[&str] = &[
    "from", "to", "subject", "date", "message-id", "auto-submitted", "mime-version", "content-type",
    "content-transfer-encoding", "in-reply-to", "references",
];
const DSN_FIELDS: &[&str] = &[
    "reporting-mta", "original-envelope-id", "arrival-date", "final-recipient", "original-recipient", "action",
    "status", "remote-mta", "diagnostic-code", "last-attempt-date", "will-retry-until",
];

/// Splits `data` into `n` strings at 0xff bytes (lossy UTF-8).
fn fields(data: &[u8], n: usize) -> Vec<String> {
    let mut v: Vec<String> = data.splitn(n, |&b| b == 0xff).map(|p| String::from_utf8_lossy(p).into_owned()).collect();
    v.resize(n, String::new());
    v
}

fn check_fields(block: &str, allowed: &[&str], what: &str) {
    for line in block.split("\r\n") {
        if line.is_empty() || line.starts_with([' ', '\t']) {
            continue;
        }
        let name = line.split(':').next().unwrap_or("").to_ascii_lowercase();
        assert!(allowed.contains(&name.as_str()), "{what}: a field we do not write: {line:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let f = fields(data, 7);
    let (sender, rcpts, orcpt, reply, envid, original, id) = (&f[0], &f[1], &f[2], &f[3], &f[4], &f[5], &f[6]);
    if sender.is_empty() {
        return;
    }
    let mut env = Envelope::default();
    env.sender = sender.clone();
    env.envid = (!envid.is_empty()).then(|| envid.clone());
    for a in rcpts.split(',').take(5) {
        let mut r = Recipient::new(a);
        r.status = RcptStatus::Bounced;
        r.orcpt = (!orcpt.is_empty()).then(|| orcpt.clone());
        r.last_reply = (!reply.is_empty()).then(|| reply.clone());
        env.recipients.push(r);
    }
    let ctx = DsnContext { hostname: "mx.example.test", queue_id: id, now: 1_700_000_000, unique: "u1" };
    let Some(dsn) = build(&ctx, &env, Original::Full(original.as_bytes().to_vec())) else {
        panic!("a failed recipient without NOTIFY gets a DSN");
    };
    let text = String::from_utf8_lossy(&dsn);
    let head_end = text.find("\r\n\r\n").expect("a header section");
    check_fields(&text[..head_end], HEADER_FIELDS, "header");
    let ds_start = text.find("Content-Type: message/delivery-status").expect("the delivery-status part");
    let body_start = text[ds_start..].find("\r\n\r\n").expect("its header") + ds_start + 4;
    let body_end = text[body_start..].find("\r\n--").map_or(text.len(), |i| body_start + i);
    let ds = &text[body_start..body_end];
    check_fields(ds, DSN_FIELDS, "delivery-status");
    assert_eq!(ds.matches("\r\nFinal-Recipient:").count() + usize::from(ds.starts_with("Final-Recipient:")), env.recipients.len());
    assert!(dsn.windows(original.len().max(1)).any(|w| w == original.as_bytes()) || original.is_empty(),
        "the original comes back whole");
});
