//! Fuzz target for the header parsers facteur-trust owns (header.rs): the
//! fields of a header section, the authserv-id of an
//! `Authentication-Results` value, forged-field removal and the spam mark
//! — all fed bytes from the network. Checks: no panic; the fields tile a
//! prefix of the input, in order; an authserv-id is in ASCII lower case,
//! without white space or dots at its ends; removal only ever removes (the output is
//! shorter, and a subsequence of fields of the input); once removed,
//! nothing forged is left among the whole fields of a complete header
//! section.

#![no_main]

use facteur_trust::header::{authserv_id, fields, forged_count, has_spam_mark, strip_forged};
use libfuzzer_sys::fuzz_target;

const ID: &str = "mx.example.test";

fuzz_target!(|data: &[u8]| {
    // The fields tile the start of the input.
    let mut at = 0usize;
    let mut it = fields(data);
    while let Some(f) = it.next() {
        assert_eq!(&data[at..at + f.raw.len()], f.raw);
        at += f.raw.len();
        assert_eq!(it.rest(), &data[at..]);
        if let Some(id) = authserv_id(f.value) {
            assert!(!id.is_empty() && !id.ends_with('.'));
            assert!(!id.bytes().any(|b| b.is_ascii_uppercase()));
            assert_eq!(id.trim(), id);
        }
    }
    let _ = has_spam_mark(data);
    if let Some(out) = strip_forged(data, ID) {
        assert!(out.len() < data.len());
        // Complete sections (an empty line ends them): nothing forged left.
        let mut all = fields(data);
        while all.next().is_some() {}
        let complete = !all.rest().is_empty();
        if complete {
            assert_eq!(forged_count(&out, ID), 0);
        }
        assert!(strip_forged(&out, ID).is_none() || !complete);
    }
});
