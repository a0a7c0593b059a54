//! Fuzz target for SRS (`facteur_mail::srs`): the addresses smtpd checks
//! at RCPT and qmgr resolves come from strangers. Checks: `reverse` never
//! panics and accepts only what `forward` could have made (a reversed
//! address forwards back to the same SRS address, up to case); any sender
//! that `forward` rewrites reverses to itself, on that day and within
//! `max_age` days after it.

#![no_main]

use facteur_mail::srs::Srs;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&d, rest)) = data.split_first() else { return };
    let Ok(s) = std::str::from_utf8(rest) else { return };
    let srs = Srs::new(b"fuzz secret".to_vec(), "srs.example.org", 21);
    let day = 20_000 + i64::from(d);
    let _ = srs.is_ours(s);
    if let Ok(orig) = srs.reverse(s, day) {
        // Only a forwarded address of some day within max_age reverses.
        let made = (0..=21).any(|back| {
            srs.forward(&orig, day - back)
                .is_some_and(|f| f.eq_ignore_ascii_case(s.trim_end_matches('.')))
        });
        assert!(made, "{s:?} reversed to {orig:?} but is no address of ours");
    }
    if let Some(f) = srs.forward(s, day) {
        assert!(f.len() <= facteur_mail::srs::MAX_LOCAL + 1 + srs.domain.len());
        assert_eq!(srs.reverse(&f, day).as_deref(), Ok(s), "{s:?} -> {f:?}");
        assert_eq!(srs.reverse(&f, day + 21).as_deref(), Ok(s));
        assert!(srs.reverse(&f, day + 22).is_err());
    }
});
