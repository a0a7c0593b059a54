//! DSN building, checked by parsing the result back with mail-parser.

use super::*;
use facteur_mail::dsn::Notify;
use facteur_spool::Recipient;
use mail_parser::{MessageParser, MimeHeaders};

const ORIGINAL: &[u8] = b"From: s@remote.test\r\nSubject: hello\r\n\r\nbody line\r\n";

fn env() -> Envelope {
    let mut failed = Recipient::new("gone@example.test");
    failed.status = RcptStatus::Bounced;
    failed.last_reply = Some("550 5.1.1 <gone@example.test>: no such user here".into());
    failed.orcpt = Some("rfc822;list@example.test".into());
    let mut ok = Recipient::new("alice@example.test");
    ok.status = RcptStatus::Delivered;
    ok.last_reply = Some("250 2.0.0 <alice@example.test> Saved as T1".into());
    Envelope {
        queue_id: "Q1".into(),
        sender: "s@remote.test".into(),
        recipients: vec![failed, ok],
        envid: Some("ENV123".into()),
        arrival: 1_700_000_000,
        ..Envelope::default()
    }
}

fn ctx() -> DsnContext<'static> {
    DsnContext {
        hostname: "mail.example.test",
        queue_id: "Q1",
        now: 1_700_000_100,
        unique: "DSN1",
    }
}

#[test]
fn failure_report_structure() {
    let e = env();
    let orig = read_original(ORIGINAL, e.ret, ORIGINAL.len() as u64).unwrap();
    assert!(matches!(orig, Original::Full(_)));
    let bytes = build(&ctx(), &e, orig).unwrap();
    let m = MessageParser::default().parse(&bytes).unwrap();
    assert_eq!(m.subject(), Some("Undelivered Mail Returned to Sender"));
    let from = m.from().unwrap().first().unwrap();
    assert_eq!(from.address(), Some("MAILER-DAEMON@mail.example.test"));
    assert_eq!(
        m.to().unwrap().first().unwrap().address(),
        Some("s@remote.test")
    );
    assert_eq!(
        m.header_raw("Auto-Submitted").map(str::trim),
        Some("auto-replied")
    );
    let ct = m.content_type().unwrap();
    assert_eq!((ct.ctype(), ct.subtype()), ("multipart", Some("report")));
    assert_eq!(ct.attribute("report-type"), Some("delivery-status"));
    let root = m.root_part().sub_parts().unwrap().to_vec();
    assert_eq!(root.len(), 3);
    let kinds: Vec<String> = root
        .iter()
        .map(|&i| {
            let p = m.part(i).unwrap();
            let ct = p.content_type().unwrap();
            format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or(""))
        })
        .collect();
    assert_eq!(
        kinds,
        vec!["text/plain", "message/delivery-status", "message/rfc822"]
    );
    let text = m.part(root[0]).unwrap().text_contents().unwrap();
    assert!(
        text.contains("<gone@example.test>: failed: 550 5.1.1"),
        "{text}"
    );
    // Only the failure is reported: alice had no NOTIFY=SUCCESS.
    assert!(!text.contains("alice@"));
    let ds = String::from_utf8_lossy(m.part(root[1]).unwrap().contents()).to_string();
    for want in [
        "Reporting-MTA: dns; mail.example.test",
        "Original-Envelope-Id: ENV123",
        "Arrival-Date: ",
        "Final-Recipient: rfc822; gone@example.test",
        "Original-Recipient: rfc822;list@example.test",
        "Action: failed",
        "Status: 5.1.1",
        "Diagnostic-Code: smtp; 550 5.1.1 <gone@example.test>: no such user here",
    ] {
        assert!(ds.contains(want), "missing {want:?} in\n{ds}");
    }
    let inner = m.part(root[2]).unwrap().message().unwrap();
    assert_eq!(inner.subject(), Some("hello"));
    assert!(inner.raw_message().ends_with(b"body line\r\n"));
}

#[test]
fn ret_hdrs_returns_headers_only() {
    let mut e = env();
    e.ret = Some(Ret::Hdrs);
    let orig = read_original(ORIGINAL, e.ret, ORIGINAL.len() as u64).unwrap();
    assert_eq!(
        orig,
        Original::Headers(b"From: s@remote.test\r\nSubject: hello\r\n".to_vec())
    );
    let bytes = build(&ctx(), &e, orig).unwrap();
    let m = MessageParser::default().parse(&bytes).unwrap();
    let root = m.root_part().sub_parts().unwrap().to_vec();
    let p = m.part(root[2]).unwrap();
    let ct = p.content_type().unwrap();
    assert_eq!((ct.ctype(), ct.subtype()), ("text", Some("rfc822-headers")));
    let c = String::from_utf8_lossy(p.contents()).to_string();
    assert!(
        c.contains("Subject: hello") && !c.contains("body line"),
        "{c}"
    );
}

#[test]
fn large_original_returns_headers_only() {
    let mut big = b"Subject: big\r\n\r\n".to_vec();
    big.extend(std::iter::repeat_n(b'x', MAX_RETURNED as usize + 10));
    let o = read_original(&big[..], None, big.len() as u64).unwrap();
    assert_eq!(o, Original::Headers(b"Subject: big\r\n".to_vec()));
    // A header with no end is cut at a line boundary.
    let endless = b"A: 1\r\nB: 2".to_vec();
    let o = read_original(&endless[..], Some(Ret::Hdrs), 11).unwrap();
    assert_eq!(o, Original::Headers(b"A: 1\r\n".to_vec()));
}

#[test]
fn notify_rules_and_null_sender() {
    let mut e = env();
    e.recipients[0].notify = Notify {
        never: true,
        ..Notify::default()
    };
    assert!(reported(&e).is_empty());
    assert!(build(&ctx(), &e, Original::Headers(vec![])).is_none());
    // NOTIFY=DELAY only: no failure report.
    e.recipients[0].notify = Notify {
        delay: true,
        ..Notify::default()
    };
    assert!(reported(&e).is_empty());
    // NOTIFY=FAILURE,SUCCESS on both: both reported.
    for r in &mut e.recipients {
        r.notify = Notify {
            failure: true,
            success: true,
            ..Notify::default()
        };
    }
    assert_eq!(
        reported(&e),
        vec![(0, Action::Failed), (1, Action::Delivered)]
    );
    // The null sender never gets a DSN.
    e.sender.clear();
    assert!(reported(&e).is_empty());
    assert!(build(&ctx(), &e, Original::Headers(vec![])).is_none());
}

#[test]
fn success_report() {
    let mut e = env();
    e.recipients.remove(0);
    e.recipients[0].notify.success = true;
    let bytes = build(&ctx(), &e, Original::Headers(b"Subject: x\r\n".to_vec())).unwrap();
    let m = MessageParser::default().parse(&bytes).unwrap();
    assert_eq!(m.subject(), Some("Successful Mail Delivery Report"));
    let root = m.root_part().sub_parts().unwrap().to_vec();
    let ds = String::from_utf8_lossy(m.part(root[1]).unwrap().contents()).to_string();
    assert!(
        ds.contains("Action: delivered") && ds.contains("Status: 2.0.0"),
        "{ds}"
    );
}

#[test]
fn status_extraction_and_hostile_text() {
    assert_eq!(status_of(Some("550 5.7.1 no"), Action::Failed), "5.7.1");
    assert_eq!(
        status_of(Some("4.4.7 message expired"), Action::Failed),
        "4.4.7"
    );
    assert_eq!(status_of(Some("550 go away"), Action::Failed), "5.0.0");
    assert_eq!(status_of(None, Action::Failed), "5.0.0");
    let mut e = env();
    e.recipients[0].last_reply = Some("550 x\r\nX-Injected: yes".into());
    e.envid = Some("a\r\nB: c".into());
    let bytes = build(&ctx(), &e, Original::Headers(vec![])).unwrap();
    let s = String::from_utf8_lossy(&bytes);
    assert!(!s.contains("\nX-Injected"), "{s}");
    assert!(!s.contains("\nB: c"), "{s}");
}

#[test]
fn delayed_notice_honours_notify() {
    let mut e = env();
    let mut waiting = Recipient::new("slow@remote.test");
    waiting.status = RcptStatus::Deferred;
    waiting.last_reply = Some("451 4.2.0 <slow@remote.test> try later".into());
    let mut quiet = Recipient::new("quiet@remote.test");
    quiet.status = RcptStatus::Deferred;
    quiet.notify = Notify {
        failure: true,
        ..Notify::default()
    };
    let mut asked = Recipient::new("asked@remote.test");
    asked.notify = Notify {
        delay: true,
        ..Notify::default()
    };
    e.recipients = vec![e.recipients[0].clone(), waiting, quiet, asked];
    // Final recipients and NOTIFY without DELAY are left out.
    let r: Vec<usize> = reported_delayed(&e).into_iter().map(|(i, _)| i).collect();
    assert_eq!(r, vec![1, 3]);
    let orig = read_original(ORIGINAL, Some(facteur_mail::dsn::Ret::Hdrs), 10).unwrap();
    let bytes = build_delayed(&ctx(), &e, orig, 1_700_432_000).unwrap();
    let m = MessageParser::default().parse(&bytes).unwrap();
    assert_eq!(m.subject(), Some("Delayed Mail (still being retried)"));
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains("Action: delayed"), "{text}");
    assert!(text.contains("Status: 4.2.0"), "{text}");
    assert!(text.contains("Status: 4.0.0"), "{text}");
    assert!(text.contains("Will-Retry-Until: "), "{text}");
    assert!(!text.contains("quiet@remote.test"), "{text}");
    assert!(!text.contains("Action: failed"), "{text}");
    // The null sender never gets one.
    e.sender.clear();
    assert!(reported_delayed(&e).is_empty());
}

#[test]
fn a_sender_with_a_line_break_adds_no_header_field() {
    // Found by fuzz/fuzz_targets/dsn.rs: the sender went into To: as it
    // was. The queue-file reader refuses such a sender; the DSN does not
    // rely on it.
    let mut e = env();
    e.sender = "s@remote.test\r\nBcc: victim@example.net".into();
    let dsn = build(&ctx(), &e, Original::Full(ORIGINAL.to_vec())).unwrap();
    let text = String::from_utf8_lossy(&dsn);
    let head = &text[..text.find("\r\n\r\n").unwrap()];
    assert!(!head.lines().any(|l| l.starts_with("Bcc:")), "{head}");
}
