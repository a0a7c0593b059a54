//! Fuzz target for the Sieve interpreter (facteur-sieve): the first bytes
//! pick one of a set of scripts that use every test and action, the rest
//! is a message (bytes >= 0x80 mapped onto header and MIME tokens), run
//! with tight limits.
//! Checks: no panic; the run ends (limits hold); every action's message
//! version exists; the implicit keep and the stores agree.

#![no_main]

use facteur_sieve::{Envelope, Host, Limits, Options, Script};
use libfuzzer_sys::fuzz_target;

const SCRIPTS: &[&str] = &[
    r#"require ["fileinto","variables","imap4flags","relational","regex","body","date","index","editheader","envelope","subaddress","copy","vacation","comparator-i;ascii-numeric"];
if header :matches "subject" "*[*]*" { set :lower "l" "${2}"; fileinto :flags "\\Seen ${l}" "lists.${l}"; }
if address :detail :index 1 "to" "*" { addflag "$${1}"; }
if header :regex "from" "^(.*)@(.*)$" { set "d" "${2}"; }
if body :text :contains "x" { addheader :last "X-Body" "${d}"; }
if date :zone "+0100" :value "ge" "date" "hour" "12" { deleteheader :index 1 "received"; }
if header :count "gt" :comparator "i;ascii-numeric" "received" "3" { redirect :copy "a@example.com"; }
if envelope :domain "from" "example.com" { vacation :days 1 :subject "Re: ${d}" "away"; }
if size :over 1K { discard; }"#,
    r#"require ["fileinto","body","editheader","variables"];
if body :raw :matches "*a*b*c*d*e*" { fileinto "x"; }
if body :content "text/plain" :contains "é" { fileinto "y"; }
deleteheader :matches "x-*" "*";
addheader "X-Sieve" "été ${1}";
keep;"#,
];

const TOKENS: &[&[u8]] = &[
    b"\r\n", b"\r\n\r\n", b"Subject: [list] hello\r\n", b"From: a@example.com\r\n",
    b"To: u+tag@example.org, g: b@c;\r\n", b"Received: from x; Mon, 02 Jan 2006 23:30:00 -0800\r\n",
    b"Date: Mon, 02 Jan 2006 23:30:00 -0800\r\n", b"Content-Type: multipart/mixed; boundary=b\r\n",
    b"--b\r\n", b"--b--\r\n", b"Content-Type: text/plain; charset=iso-8859-1\r\n",
    b"Content-Transfer-Encoding: base64\r\n", b"=?utf-8?q?caf=C3=A9?=", b" ", b"\xff", b"*", b"abcde",
    b"X-A: 1\r\n", b"List-Id: <l>\r\n", b"\"q\\\"\"", b"(c\\", b"<@a,@b:", b"\xc3\xa9",
];

struct H;
impl Host for H {
    fn now(&mut self) -> i64 {
        1_700_000_000
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let script = Script::compile(SCRIPTS[pick as usize % SCRIPTS.len()], &Options::default())
        .expect("the fuzz scripts compile");
    let mut msg = Vec::with_capacity(rest.len() * 8);
    for &b in rest {
        if b & 0x80 != 0 {
            msg.extend_from_slice(TOKENS[(b & 0x7f) as usize % TOKENS.len()]);
        } else {
            msg.push(b);
        }
    }
    let env = Envelope {
        from: "a@example.com".into(),
        to: "u+tag@example.org".into(),
        orig_to: None,
        auth: None,
    };
    let limits = Limits {
        max_steps: 20_000,
        ..Limits::default()
    };
    // the address parsers of redirect and of envelope paths, on anything
    let text = String::from_utf8_lossy(&msg);
    for line in text.split('\n').take(64) {
        let _ = facteur_sieve::run::address::parse_mailbox(line);
        let _ = facteur_sieve::run::address::parse_path(line);
    }
    if let Ok(out) = facteur_sieve::run::run(&script, &msg, env, &mut H, limits) {
        for a in &out.actions {
            if let facteur_sieve::Action::FileInto { message: Some(v), .. }
            | facteur_sieve::Action::Keep { message: Some(v), .. } = a
            {
                assert!(*v < out.message_versions.len());
            }
        }
        let stores = out.stores();
        if out.implicit_keep {
            assert!(stores.iter().any(|(m, _)| m.eq_ignore_ascii_case("inbox")));
        }
    }
});
