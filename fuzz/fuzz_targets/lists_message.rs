//! Fuzz target for the list copy of a post and the reading of delivery
//! reports (`facteur_lists::message`): posts and reports come from
//! strangers. Checks: no panic; the copy starts with the list's List-Id,
//! carries it (so a second pass is seen as a loop) and ends with the
//! post's body unchanged; a report yields at most MAX_REPORTED addresses,
//! each one that parses.

#![no_main]

use facteur_lists::message::{
    MAX_REPORTED, carries_list_id, failed_recipients, from_address, list_copy, subject,
};
use facteur_lists::{List, Post};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, msg)) = data.split_first() else { return };
    let list = List {
        address: "team@example.org".into(),
        owner: if flags & 1 != 0 { "boss@example.org".into() } else { String::new() },
        post: Post::Members,
        reply_to_list: flags & 2 != 0,
        subject_tag: if flags & 4 != 0 { "team".into() } else { String::new() },
        bounce_limit: 5,
        munge_from: flags & 8 != 0,
    };
    let copy = list_copy(&list, msg);
    assert!(copy.starts_with(b"List-Id: <team.example.org>"));
    assert!(carries_list_id(&copy, &list.list_id()));
    // The body (after the first empty line within the header bound) is
    // kept: the copy ends with whatever followed the post's header.
    if let Some(p) = msg.windows(4).position(|w| w == b"\r\n\r\n").filter(|&p| p < 200_000) {
        let lf_before = msg[..p].windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r')
            || msg[..p].first() == Some(&b'\n');
        if !lf_before {
            assert!(copy.ends_with(&msg[p + 4..]));
        }
    }
    let _ = subject(msg);
    let _ = from_address(msg);
    let failed = failed_recipients(msg);
    assert!(failed.len() <= MAX_REPORTED);
    for a in failed {
        assert!(facteur_mail::Address::parse(&a).is_ok(), "{a:?}");
    }
});
