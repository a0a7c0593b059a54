//! Fuzz target for the SASL mechanisms (facteur-sasl), server side.
//!
//! The first byte picks the mechanism (SCRAM-SHA-256, PLAIN, LOGIN),
//! whether the first message is an initial response, and what the
//! directory answers (SCRAM: the keys of "pencil", or none; PLAIN/LOGIN:
//! the password is right only if it is "pencil"). The rest is mapped onto
//! the mechanisms' alphabet (gs2 headers, attributes, escapes, the server
//! nonce, base64, NUL) and split at '\n' into client messages; each line is
//! also fed to the base64 response decoder.
//!
//! Checks: no panic; every challenge is at most MAX_CHALLENGE bytes; a
//! SCRAM exchange never succeeds (no fuzzed proof is right: that would take
//! inverting HMAC-SHA-256, so a success is a broken check); PLAIN and LOGIN
//! succeed only after `Verify` with the right password, as the user it
//! named; every call after the end fails with OutOfOrder.

#![no_main]

use facteur_sasl::{
    Exchange, Failure, MAX_CHALLENGE, Mechanism, ScramCredentials, Secret, Step, decode_response,
};
use libfuzzer_sys::fuzz_target;

const S_NONCE: &str = "SRV";

const TOKENS: &[&[u8]] = &[
    b"n,,", b"y,,", b"p=tls-unique,,", b"n,a=user,", b"n=user", b",r=", b"r=", b"cn", b"cnSRV", b"SRV", b"c=biws",
    b"c=eSws", b",p=", b"p=", b"=2C", b"=3D", b"=", b",", b"m=ext,", b",e=x", b"s=", b"i=4096", b"\0", b"user", b"pencil",
    b"\0user\0pencil", b"user\0user\0pencil", b"USER\0user\0pencil", b"dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
    b"*", b"biws", b"AGEAYg==", b"\xc3\xa9", b"\xff", b"\r",
];

fn expand(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
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
    let Some((&head, rest)) = data.split_first() else {
        return;
    };
    let mechanism = Mechanism::ALL[(head % 3) as usize];
    let initial = head & 4 != 0;
    let with_keys = head & 8 != 0;
    let input = expand(rest);
    let mut messages = input.split(|&b| b == b'\n');
    for m in input.split(|&b| b == b'\n') {
        let _ = decode_response(m);
    }

    // Built once: PBKDF2 at 4096 rounds per input would slow the fuzzer.
    static KEYS: std::sync::OnceLock<ScramCredentials> = std::sync::OnceLock::new();
    let keys = KEYS.get_or_init(|| ScramCredentials::derive("pencil", b"salt-salt-salt!!", 4096).unwrap());
    let secret = Secret::new([7; 32]);

    let ir = if initial { messages.next() } else { None };
    let (mut ex, mut step) = Exchange::start_with_nonce(mechanism, ir, &secret, S_NONCE);
    let mut verified_as: Option<String> = None;
    for _ in 0..16 {
        step = match step {
            Step::Challenge(c) => {
                assert!(c.len() <= MAX_CHALLENGE, "challenge of {} bytes", c.len());
                match messages.next() {
                    Some(b"*") => ex.cancel(),
                    Some(m) => ex.step(m),
                    None => break,
                }
            }
            Step::NeedCredentials { .. } => ex.credentials(with_keys.then_some(keys)),
            Step::Verify { user, password } => {
                let ok = password == "pencil";
                if ok {
                    verified_as = Some(user);
                }
                ex.verified(ok)
            }
            Step::Success { user, final_data } => {
                assert_ne!(mechanism, Mechanism::ScramSha256, "a fuzzed SCRAM proof succeeded");
                assert!(final_data.is_none());
                assert_eq!(verified_as.as_deref(), Some(user.as_str()));
                assert!(matches!(ex.step(b""), Step::Failure(Failure::OutOfOrder)));
                break;
            }
            Step::Failure(_) => {
                assert!(ex.is_done());
                assert!(matches!(ex.step(b"x"), Step::Failure(Failure::OutOfOrder)));
                assert!(matches!(ex.credentials(None), Step::Failure(Failure::OutOfOrder)));
                break;
            }
        };
    }
    // Whatever state it is in, a cancel ends it.
    assert!(matches!(ex.cancel(), Step::Failure(Failure::Cancelled)));
});
