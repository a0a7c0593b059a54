//! Fuzz target for the mail store's pure parts: the Maildir file-name parser
//! (names come from directories other tools write into) and the reversible
//! CRLF <-> LF conversion. Checks: no panic; a parsed name's unique part is a
//! non-empty prefix of the name; a name rebuilt from the parsed flags parses
//! back to the same flags; to_crlf(to_lf(x)) == x for every x whose LFs are
//! all preceded by CR (what the store accepts); the header block read from
//! a file (read_header) is the same whatever the read size, is a prefix of
//! the whole message in CRLF form, and ends at its first empty line.

#![no_main]

use facteur_store::name::cur_name;
use facteur_store::{parse_file_name, read_header, to_crlf, to_lf};
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
    // `data` as a file on disk (LF form): its header block.
    let full = to_crlf(data);
    let head = read_header(&mut &data[..], 8192).expect("reading a slice");
    assert_eq!(
        read_header(&mut &data[..], 3).expect("reading a slice"),
        head
    );
    assert!(full.starts_with(&head));
    if head.len() < full.len() {
        // Ends with the first empty line: no earlier one inside.
        let end = head.len() - 2;
        assert!(head.ends_with(b"\r\n"));
        assert!(end == 0 || head[..end].ends_with(b"\r\n"));
        assert!(!head[..end].starts_with(b"\r\n"));
        assert!(!head[..end].windows(4).any(|w| w == b"\r\n\r\n"));
    }
});
