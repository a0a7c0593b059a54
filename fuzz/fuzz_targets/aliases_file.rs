//! Fuzz target for the system aliases file parser
//! (`facteur_directory::aliases_file`): whatever the text, no panic, and
//! what comes out is well formed — names lower-case, non-empty and no
//! longer than a local part, addresses that parse, every problem on a line
//! of the text.

#![no_main]

use facteur_directory::aliases_file::{Value, parse, parse_values};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let lines = text.lines().count().max(1);
    let (entries, problems) = parse(&text, "host.example");
    for e in &entries {
        assert!(!e.name.is_empty() && e.name.len() <= facteur_mail::MAX_LOCAL_LEN);
        assert_eq!(e.name, e.name.to_lowercase());
        assert!(!e.values.is_empty());
        assert!(e.line >= 1 && e.line <= lines);
        check(&e.values);
    }
    for p in &problems {
        assert!(p.line >= 1 && p.line <= lines, "{p:?} of {lines}");
    }
    let (values, _) = parse_values(&text, "host.example");
    check(&values);
});

fn check(values: &[Value]) {
    for v in values {
        if let Value::Address(a) = v {
            assert!(facteur_mail::Address::parse(a).is_ok(), "{a:?}");
        }
    }
}
