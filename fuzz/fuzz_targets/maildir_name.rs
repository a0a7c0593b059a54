//! Fuzz target for the mail store's pure parts: the Maildir file-name parser
//! (names come from directories other tools write into) and the reversible
//! CRLF <-> LF conversion. Checks: no panic; a parsed name's unique part is a
//! non-empty prefix of the name; a name rebuilt from the parsed flags parses
//! back to the same flags; to_crlf(to_lf(x)) == x for every x whose LFs are
//! all preceded by CR (what the store accepts).

#![no_main]

use facteur_store::name::cur_name;
use facteur_store::{parse_file_name, to_crlf, to_lf};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Some(p) = parse_file_name(s) {
            assert!(!p.unique.is_empty());
            assert!(s.starts_with(p.unique));
            let rebuilt = cur_name(p.base, p.flags, p.other_flags);
            let again = parse_file_name(&rebuilt).expect("a rebuilt name parses");
            assert_eq!(again.flags, p.flags);
            assert_eq!(again.base, p.base);
        }
    }
    // Network form: make every LF part of a CRLF.
    let mut net = Vec::with_capacity(data.len());
    for &b in data {
        if b == b'\n' && net.last() != Some(&b'\r') {
            net.push(b'\r');
        }
        net.push(b);
    }
    assert_eq!(to_crlf(&to_lf(&net)), net);
});
