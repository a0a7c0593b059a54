//! The queue-file and state-file formats: round trips, every cut, every
//! corruption, and the untrusted fields of hand-written files.

use super::*;

pub(crate) fn full_envelope() -> Envelope {
    Envelope {
        queue_id: "0ABCDEFGHJKMNP".into(),
        sender: "jöran@exämple.org".into(),
        recipients: vec![
            Recipient {
                address: "a@example.net".into(),
                orcpt: Some("rfc822;a@example.net".into()),
                notify: Notify {
                    success: true,
                    failure: true,
                    delay: false,
                    never: false,
                },
                status: RcptStatus::Deferred,
                last_reply: Some("451 4.3.0 try later".into()),
            },
            Recipient {
                address: "用户@例子.测试".into(),
                orcpt: None,
                notify: Notify {
                    never: true,
                    ..Notify::default()
                },
                status: RcptStatus::Delivered,
                last_reply: None,
            },
            Recipient::new("c@example.com"),
        ],
        ret: Some(Ret::Hdrs),
        envid: Some("QQ314159".into()),
        body: BodyType::EightBitMime,
        smtputf8: true,
        client_addr: Some("2001:db8::1".into()),
        client_name: Some("mx.example.org".into()),
        helo: Some("mx.example.org".into()),
        protocol: Some("ESMTPSA".into()),
        auth_user: Some("jöran".into()),
        local_user: Some("root".into()),
        arrival: 1_700_000_000,
        attempts: 3,
        next_attempt: 1_700_003_600,
        delay_notified: true,
    }
}

#[test]
fn round_trip_every_field() {
    let env = full_envelope();
    let msg = b"Subject: hi\r\n\r\nbody\r\n.\r\n";
    let bytes = encode_queue_file_bytes(&env, 42, msg).unwrap();
    let p = parse_queue_file_bytes(&bytes).unwrap();
    assert_eq!(p.envelope, env);
    assert_eq!(p.nonce, 42);
    let range = p.message_offset as usize..(p.message_offset + p.message_len) as usize;
    assert_eq!(&bytes[range], msg);
}

#[test]
fn round_trip_minimal_and_null_sender() {
    let env = Envelope {
        queue_id: "X".into(),
        ..Envelope::default()
    };
    let bytes = encode_queue_file_bytes(&env, 0, b"").unwrap();
    let p = parse_queue_file_bytes(&bytes).unwrap();
    assert_eq!(p.envelope, env);
    assert_eq!(p.envelope.sender, "");
    assert_eq!(p.message_len, 0);
}

#[test]
fn every_truncation_fails_cleanly() {
    let bytes =
        encode_queue_file_bytes(&full_envelope(), 7, b"Subject: x\r\n\r\nhello\r\n").unwrap();
    for cut in 0..bytes.len() {
        match parse_queue_file_bytes(&bytes[..cut]) {
            Err(SpoolError::Incomplete(_)) | Err(SpoolError::Corrupt(_)) => {}
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
}

#[test]
fn no_end_record_is_incomplete() {
    let bytes = encode_queue_file_bytes(&full_envelope(), 7, b"hello\r\n").unwrap();
    let cut = &bytes[..bytes.len() - END_RECORD.len()];
    assert!(matches!(
        parse_queue_file_bytes(cut),
        Err(SpoolError::Incomplete(_))
    ));
}

#[test]
fn garbage_is_corrupt() {
    for g in [
        &b"From: x\r\n\r\nhi"[..],
        b"\x89FQF\r\n\x1a\n\x00\x02",
        b"\x89FQS\r\n\x1a\n\x00\x01",
    ] {
        assert!(
            matches!(parse_queue_file_bytes(g), Err(SpoolError::Corrupt(_))),
            "{g:?}"
        );
    }
    // Trailing bytes after END, an unknown record, a bad UTF-8 sender.
    let good = encode_queue_file_bytes(&full_envelope(), 7, b"x").unwrap();
    let mut trailing = good.clone();
    trailing.push(0);
    assert!(matches!(
        parse_queue_file_bytes(&trailing),
        Err(SpoolError::Corrupt(_))
    ));
    let mut env = Envelope {
        queue_id: "Y".into(),
        ..Envelope::default()
    };
    env.sender = "ab".into();
    let mut bad = encode_queue_file_bytes(&env, 1, b"").unwrap();
    let pos = bad.windows(3).position(|w| w == b"\x02ab").unwrap();
    bad[pos + 1] = 0xff;
    assert!(matches!(
        parse_queue_file_bytes(&bad),
        Err(SpoolError::Corrupt(_))
    ));
    let mut unknown = header(&MAGIC);
    put(&mut unknown, b'z', b"").unwrap();
    assert!(matches!(
        parse_queue_file_bytes(&unknown),
        Err(SpoolError::Corrupt(_))
    ));
}

#[test]
fn huge_length_does_not_allocate() {
    let mut b = header(&MAGIC);
    b.extend_from_slice(&[rec::SENDER, 0xff, 0xff, 0xff, 0xff]);
    assert!(parse_queue_file_bytes(&b).is_err());
    let mut b = header(&STATE_MAGIC);
    b.extend_from_slice(&[rec::RCPT_STATE, 0, 0, 0, 6, 0, 1, 0xff, 0xff, 0xff, 0xff]);
    assert!(matches!(parse_state_bytes(&b), Err(SpoolError::Corrupt(_))));
}

#[test]
fn extension_records_are_skipped() {
    let env = full_envelope();
    let mut b = encode_envelope(&env, 9).unwrap();
    put(&mut b, 0x90, b"future").unwrap();
    b.extend_from_slice(&message_record_head(2));
    b.extend_from_slice(b"hi");
    b.extend_from_slice(&END_RECORD);
    assert_eq!(parse_queue_file_bytes(&b).unwrap().envelope, env);
}

#[test]
fn state_round_trip_and_truncation() {
    let env = full_envelope();
    let s = encode_state(&env, 99).unwrap();
    let st = parse_state_bytes(&s).unwrap();
    assert_eq!(st.nonce, 99);
    let mut other = env.clone();
    for r in &mut other.recipients {
        r.status = RcptStatus::Pending;
        r.last_reply = None;
    }
    other.attempts = 0;
    assert!(st.apply(&mut other));
    assert_eq!(other, env);
    for cut in 0..s.len() {
        assert!(parse_state_bytes(&s[..cut]).is_err());
    }
}
#[test]
fn random_mutations_never_panic() {
    use rand::{Rng, SeedableRng};
    let good = encode_queue_file_bytes(&full_envelope(), 5, b"Subject: x\r\n\r\nhi\r\n").unwrap();
    let state = encode_state(&full_envelope(), 5).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    for round in 0..20_000 {
        let mut b = if round % 2 == 0 {
            good.clone()
        } else {
            state.clone()
        };
        for _ in 0..rng.gen_range(1..4) {
            let i = rng.gen_range(0..b.len());
            match rng.gen_range(0..3) {
                0 => b[i] ^= 1 << rng.gen_range(0..8),
                1 => b[i] = rng.r#gen(),
                _ => {
                    b.remove(i);
                }
            }
        }
        // The fuzz target's property: what parses re-encodes and re-parses.
        if let Ok(p) = parse_queue_file_bytes(&b) {
            let start = p.message_offset as usize;
            let m = &b[start..start + p.message_len as usize];
            let again = encode_queue_file_bytes(&p.envelope, p.nonce, m).unwrap();
            assert_eq!(parse_queue_file_bytes(&again).unwrap().envelope, p.envelope);
        }
        let _ = parse_state_bytes(&b);
    }
}

/// A file whose `field` holds `value`, written as an attacker would (the
/// encoder refuses it): encoded with a same-length placeholder, patched.
pub(crate) fn hand_written(edit: Edit, value: &str) -> Vec<u8> {
    let placeholder: String = value
        .chars()
        .map(|c| if c.is_control() { 'Z' } else { c })
        .collect();
    assert_eq!(placeholder.len(), value.len(), "one-byte controls only");
    let mut env = Envelope {
        queue_id: "HANDWRITTEN1".into(),
        sender: "s@example.org".into(),
        recipients: vec![Recipient::new("r@example.org")],
        ..Envelope::default()
    };
    edit(&mut env, &placeholder);
    let mut bytes = encode_queue_file_bytes(&env, 7, b"Subject: x\r\n\r\nx\r\n").unwrap();
    let at = bytes
        .windows(placeholder.len())
        .position(|w| w == placeholder.as_bytes())
        .unwrap();
    bytes[at..at + value.len()].copy_from_slice(value.as_bytes());
    bytes
}

/// Puts a value into one field of an envelope.
type Edit = fn(&mut Envelope, &str);

#[test]
fn control_characters_in_envelope_fields_are_corrupt() {
    let injection = "a@b\r\nRCPT TO:<x@y>";
    let cases: [(&str, Edit, &str); 6] = [
        ("sender", |e, v| e.sender = v.into(), injection),
        (
            "recipient",
            |e, v| e.recipients[0].address = v.into(),
            "x@y\n.test",
        ),
        (
            "recipient",
            |e, v| e.recipients[0].address = v.into(),
            "x\0@y.test",
        ),
        (
            "ORCPT",
            |e, v| e.recipients[0].orcpt = Some(v.into()),
            "rfc822;a\r@b",
        ),
        ("ENVID", |e, v| e.envid = Some(v.into()), "id\x7f1"),
        ("sender", |e, v| e.sender = v.into(), "a\tb@c"),
    ];
    for (what, edit, value) in cases {
        let bytes = hand_written(edit, value);
        match parse_queue_file_bytes(&bytes) {
            Err(SpoolError::Corrupt(m)) => {
                assert!(m.starts_with(what), "{value:?}: {m}");
                assert!(m.contains("control character"), "{m}");
            }
            other => panic!("{value:?} was read: {other:?}"),
        }
        // The writer never writes such a file.
        let mut env = Envelope {
            queue_id: "HANDWRITTEN1".into(),
            recipients: vec![Recipient::new("r@example.org")],
            ..Envelope::default()
        };
        edit(&mut env, value);
        assert!(encode_envelope(&env, 1).is_err(), "{value:?} was written");
    }
    // Non-ASCII addresses (SMTPUTF8) are fine; a C1 control is not.
    assert!(clean_field("用户@例子.测试"));
    assert!(!clean_field("a\u{85}b@c"));
}

#[test]
fn prepended_fields_round_trip_and_old_files_read_the_same() {
    let env = full_envelope();
    let msg = b"Subject: hi\r\n\r\nbody\r\n";
    let fields = b"Authentication-Results: mx.test; spf=pass\r\n\tsmtp.mailfrom=a@b\r\n";
    let bytes = encode_queue_file_with_prepend(&env, 9, msg, fields).unwrap();
    let p = parse_queue_file_bytes(&bytes).unwrap();
    assert_eq!(p.prepend, fields);
    assert_eq!(p.size(), (fields.len() + msg.len()) as u64);
    let range = p.message_offset as usize..(p.message_offset + p.message_len) as usize;
    assert_eq!(&bytes[range], msg);
    // Without fields, the file is byte for byte what it always was.
    assert_eq!(
        encode_queue_file_with_prepend(&env, 9, msg, b"").unwrap(),
        encode_queue_file_bytes(&env, 9, msg).unwrap()
    );
    assert!(
        parse_queue_file_bytes(&encode_queue_file_bytes(&env, 9, msg).unwrap())
            .unwrap()
            .prepend
            .is_empty()
    );
    // Every cut of a file with an F record is Incomplete.
    for cut in 0..bytes.len() {
        match parse_queue_file_bytes(&bytes[..cut]) {
            Err(SpoolError::Incomplete(_)) => {}
            Err(SpoolError::Corrupt(_)) if cut < 8 => {}
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
}

#[test]
fn a_bad_or_second_f_record_is_corrupt() {
    let env = full_envelope();
    let good = encode_queue_file_with_prepend(&env, 9, b"x\r\n", b"A: b\r\n").unwrap();
    let end = good.len() - END_RECORD.len();
    // Two F records.
    let mut two = good[..end].to_vec();
    two.extend_from_slice(&prepend_record(b"C: d\r\n").unwrap());
    two.extend_from_slice(&END_RECORD);
    assert!(matches!(
        parse_queue_file_bytes(&two),
        Err(SpoolError::Corrupt(_))
    ));
    // Fields without their CRLF.
    let mut cut = encode_queue_file_bytes(&env, 9, b"x\r\n").unwrap();
    cut.truncate(cut.len() - END_RECORD.len());
    cut.extend_from_slice(&[rec::PREPEND, 0, 0, 0, 4]);
    cut.extend_from_slice(b"A: b");
    cut.extend_from_slice(&END_RECORD);
    assert!(matches!(
        parse_queue_file_bytes(&cut),
        Err(SpoolError::Corrupt(_))
    ));
    // An F record before the message is an unknown envelope record.
    let mut early = encode_envelope(&env, 9).unwrap();
    early.extend_from_slice(&prepend_record(b"A: b\r\n").unwrap());
    early.extend_from_slice(&message_record_head(0));
    early.extend_from_slice(&END_RECORD);
    assert!(matches!(
        parse_queue_file_bytes(&early),
        Err(SpoolError::Corrupt(_))
    ));
    assert!(prepend_record(b"no crlf").is_err());
}
