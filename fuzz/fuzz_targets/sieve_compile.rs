//! Fuzz target for the Sieve lexer, parser and compiler (facteur-sieve):
//! random bytes, with bytes >= 0x80 mapped onto Sieve tokens (commands,
//! tests, tags, strings, multi-line strings, comments, encoded characters,
//! variable references), compiled with every extension on.
//! Checks: no panic; an error names a line and column inside the script;
//! a script that compiles compiles again to the same commands.

#![no_main]

use facteur_sieve::{Options, Script};
use libfuzzer_sys::fuzz_target;

pub const TOKENS: &[&[u8]] = &[
    b"require [\"fileinto\",\"variables\",\"imap4flags\",\"relational\",\"regex\",\"body\",\"date\",\"index\",\"editheader\",\"encoded-character\",\"vacation\",\"envelope\",\"subaddress\",\"copy\",\"mailbox\",\"reject\",\"include\",\"duplicate\"];\n",
    b"if ", b"elsif ", b"else ", b"{", b"}", b"(", b")", b"[", b"]", b",", b";",
    b"header ", b"address ", b"envelope ", b"exists ", b"size ", b"body ", b"date ", b"currentdate ",
    b"allof", b"anyof", b"not ", b"true", b"false", b"string ", b"hasflag ",
    b"keep", b"discard", b"stop", b"fileinto ", b"redirect ", b"reject ", b"vacation ", b"set ",
    b"addflag ", b"addheader ", b"deleteheader ", b"include ", b"return",
    b":is ", b":contains ", b":matches ", b":regex ", b":value \"gt\" ", b":count \"eq\" ",
    b":comparator \"i;ascii-numeric\" ", b":localpart ", b":detail ", b":index 2 ", b":last ",
    b":over 10K ", b":copy ", b":flags ", b":days 3 ", b":upper ", b":length ",
    b"\"subject\" ", b"\"*x?\" ", b"\"${1}${a}\" ", b"\"${hex:40}\" ", b"\"a\\\"b\" ",
    b"text:\n.\n", b"text: # c\nline\n..x\n.\n", b"# comment\n", b"/* c */", b"\n", b"123 ", b"4G ",
];

fn expand(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() * 4);
    for &b in data {
        if b & 0x80 != 0 {
            out.extend_from_slice(TOKENS[(b & 0x7f) as usize % TOKENS.len()]);
        } else {
            out.push(b);
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let src = expand(data);
    let opts = Options::default();
    match Script::compile_bytes(&src, &opts) {
        Ok(s) => {
            let again = Script::compile_bytes(&src, &opts).expect("compiles twice");
            assert_eq!(s.commands(), again.commands());
        }
        Err(errors) => {
            assert!(!errors.is_empty());
            let lines = src.iter().filter(|&&b| b == b'\n').count() as u32 + 1;
            for e in errors {
                assert!(e.line >= 1 && e.line <= lines, "{e}");
            }
        }
    }
});
