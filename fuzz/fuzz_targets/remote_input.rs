//! Fuzz target for what the queue manager reads from other servers (issue
//! 14): an EHLO reply's keywords and an MTA-STS policy file. Checks: a
//! `SIZE n` keyword is read as exactly n or as "no known limit" (never
//! wrapped or saturated into another limit), AUTH keeps at most MAX_AUTH_MECHS mechanisms, upper case; a
//! policy that parses has a known mode, a `max_age` within RFC 8461's
//! bound, MX patterns that are lower case, non-empty and without a
//! trailing dot (so that an empty pattern never matches an empty host),
//! and at least one of them unless the mode is `none`.

#![no_main]

use facteur_remote::mta_sts::{MAX_AGE, Mode, parse_policy};
use facteur_smtp_codec::Extensions;
use facteur_smtp_codec::client::MAX_AUTH_MECHS;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(rest);
    if which & 1 == 0 {
        // As the reply parser hands them over: one line each, no line end.
        let lines: Vec<&str> = text.lines().collect();
        let e = Extensions::from_ehlo(&lines);
        assert!(e.auth.len() <= MAX_AUTH_MECHS);
        assert!(e.auth.iter().all(|m| *m == m.to_ascii_uppercase()));
        // SIZE n (n > 0) is a limit some SIZE line wrote exactly; 0 (no
        // limit known) is what a SIZE without a readable number gives.
        if let Some(n) = e.size.filter(|&n| n > 0) {
            let carried = lines.iter().skip(1).any(|l| {
                let mut w = l.split_ascii_whitespace();
                w.next().is_some_and(|k| k.eq_ignore_ascii_case("SIZE"))
                    && w.next().and_then(|a| a.parse::<u128>().ok()) == Some(u128::from(n))
            });
            assert!(carried, "SIZE {n} from {lines:?}");
        }
    } else if let Ok(p) = parse_policy(&text) {
        assert!(p.max_age <= MAX_AGE);
        assert!(p.mode == Mode::None || !p.mx.is_empty());
        for m in &p.mx {
            assert!(!m.is_empty() && !m.ends_with('.') && *m == m.to_ascii_lowercase(), "{m:?}");
        }
        assert!(!p.allows("") && !p.allows("."));
    }
});
