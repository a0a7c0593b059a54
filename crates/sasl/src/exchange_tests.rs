//! Exchanges of every mechanism, RFC 7677's example first.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use super::*;
use crate::client::ScramClient;
use crate::keys::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

const SECRET: [u8; 32] = [42; 32];
/// RFC 7677 §3.
const C_FIRST: &str = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
const S_NONCE: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
const S_FIRST: &str =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
const C_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                       p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
const S_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

fn pencil() -> ScramCredentials {
    let salt = STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
    ScramCredentials::derive("pencil", &salt, 4096).unwrap()
}

fn secret() -> Secret {
    Secret::new(SECRET)
}

fn challenge(s: Step) -> String {
    match s {
        Step::Challenge(c) => String::from_utf8(c).unwrap(),
        other => panic!("expected a challenge, got {other:?}"),
    }
}

fn failure(s: Step) -> Failure {
    match s {
        Step::Failure(f) => f,
        other => panic!("expected a failure, got {other:?}"),
    }
}

/// What a client computes: client-final for `password` over this exchange.
fn client_final(password: &str, gs2: &str, c_first_bare: &str, s_first: &str) -> String {
    let nonce = c_first_bare.split_once(",r=").unwrap().1;
    let user = c_first_bare
        .strip_prefix("n=")
        .unwrap()
        .split_once(',')
        .unwrap()
        .0;
    let mut c = ScramClient::with_nonce(user, password, nonce).with_gs2_header(gs2);
    assert_eq!(c.first(), format!("{gs2}{c_first_bare}").as_bytes());
    String::from_utf8(c.respond(s_first.as_bytes()).unwrap()).unwrap()
}

/// Runs SCRAM up to server-first with these keys.
fn scram_to_server_first(first: &str, keys: Option<&ScramCredentials>) -> (Exchange, String) {
    let (mut ex, s) = Exchange::start_with_nonce(Mechanism::ScramSha256, None, &secret(), S_NONCE);
    assert_eq!(challenge(s), "");
    match ex.step(first.as_bytes()) {
        Step::NeedCredentials { user } => assert_eq!(user, "user"),
        other => panic!("{other:?}"),
    }
    let s_first = challenge(ex.credentials(keys));
    (ex, s_first)
}

#[test]
fn rfc7677_example() {
    let (mut ex, s_first) = scram_to_server_first(C_FIRST, Some(&pencil()));
    assert_eq!(s_first, S_FIRST);
    match ex.step(C_FINAL.as_bytes()) {
        Step::Success { user, final_data } => {
            assert_eq!(user, "user");
            assert_eq!(final_data.as_deref(), Some(S_FINAL.as_bytes()));
        }
        other => panic!("{other:?}"),
    }
    assert!(ex.is_done());
    assert_eq!(failure(ex.step(b"")), Failure::OutOfOrder);
    // Our client helper computes RFC 7677's proof.
    assert_eq!(
        client_final("pencil", "n,,", &C_FIRST[3..], S_FIRST),
        C_FINAL
    );
}

#[test]
fn rfc7677_with_initial_response() {
    let (mut ex, s) = Exchange::start_with_nonce(
        Mechanism::ScramSha256,
        Some(C_FIRST.as_bytes()),
        &secret(),
        S_NONCE,
    );
    assert!(matches!(s, Step::NeedCredentials { ref user } if user == "user"));
    assert_eq!(challenge(ex.credentials(Some(&pencil()))), S_FIRST);
    assert!(matches!(ex.step(C_FINAL.as_bytes()), Step::Success { .. }));
}

#[test]
fn wrong_password_fails_like_an_unknown_user() {
    let (mut ex, s_first) = scram_to_server_first(C_FIRST, Some(&pencil()));
    let bad = client_final("pencil!", "n,,", &C_FIRST[3..], &s_first);
    assert_eq!(failure(ex.step(bad.as_bytes())), Failure::Credentials);

    // Unknown: a salt like a real one, stable per name, the default count.
    let (_, a) = scram_to_server_first(C_FIRST, None);
    let (mut ex, b) = scram_to_server_first(C_FIRST, None);
    assert_eq!(a, b);
    assert!(b.ends_with(",i=10000"), "{b}");
    assert_ne!(b, S_FIRST);
    let c_final = client_final("pencil", "n,,", &C_FIRST[3..], &b);
    assert_eq!(failure(ex.step(c_final.as_bytes())), Failure::Credentials);

    // Whatever the proof, fake keys never succeed (the flag `real` is
    // false; here the proof is also built from the fake StoredKey).
    let fake = secret().fake("user");
    let (mut ex, s_first) = scram_to_server_first(C_FIRST, None);
    let without_proof = format!("c=biws,r=rOprNGfwEbeRWgbNEkqO{S_NONCE}");
    let auth = format!("{},{s_first},{without_proof}", &C_FIRST[3..]);
    let sig = hmac(&fake.stored_key, &[auth.as_bytes()]);
    let proof: Vec<u8> = sig.iter().map(|b| !b).collect();
    let msg = format!("{without_proof},p={}", STANDARD.encode(proof));
    assert_eq!(failure(ex.step(msg.as_bytes())), Failure::Credentials);
}

#[test]
fn scram_binding_flags_and_final_checks() {
    // y,, is accepted with c=eSws ("y,,"); an authzid equal to the user too.
    for (first, gs2) in [
        ("y,,n=user,r=abc", "y,,"),
        ("n,a=USER,n=user,r=abc", "n,a=USER,"),
    ] {
        let (mut ex, s_first) = scram_to_server_first(first, Some(&pencil()));
        let bare = &first[gs2.len()..];
        let msg = client_final("pencil", gs2, bare, &s_first);
        assert!(
            matches!(ex.step(msg.as_bytes()), Step::Success { .. }),
            "{first}"
        );
    }
    let (mut ex, s_first) = scram_to_server_first(C_FIRST, Some(&pencil()));
    let good = client_final("pencil", "n,,", &C_FIRST[3..], &s_first);
    let cases = [
        (
            good.replace("c=biws", "c=eSws"),
            Failure::Malformed("SCRAM (c=)"),
        ),
        (
            good.replace("c=biws", "c=cD10bHMtdW5pcXVlLCw="),
            Failure::Malformed("SCRAM (c=)"),
        ),
        (
            good.replace(S_NONCE, "other"),
            Failure::Malformed("SCRAM (r=)"),
        ),
        (good.replace(",p=", ",x="), Failure::Malformed("SCRAM")),
        (
            good[..good.len() - 4].to_string(),
            Failure::Malformed("SCRAM"),
        ),
        ("r=x,c=biws,p=AAAA".to_string(), Failure::Malformed("SCRAM")),
    ];
    for (msg, want) in cases {
        let (mut ex, _) = scram_to_server_first(C_FIRST, Some(&pencil()));
        assert_eq!(failure(ex.step(msg.as_bytes())), want, "{msg}");
    }
    // The good one still works after all that (on its own exchange).
    assert!(matches!(ex.step(good.as_bytes()), Step::Success { .. }));
    // Channel binding required: refused at once.
    let (mut ex, _) = Exchange::start(Mechanism::ScramSha256, None, &secret());
    assert_eq!(
        failure(ex.step(b"p=tls-server-end-point,,n=user,r=abc")),
        Failure::ChannelBinding
    );
}

#[test]
fn fresh_server_nonces() {
    let nonce = |_| {
        let (mut ex, _) =
            Exchange::start(Mechanism::ScramSha256, Some(C_FIRST.as_bytes()), &secret());
        challenge(ex.credentials(Some(&pencil())))
    };
    let (a, b) = (nonce(0), nonce(1));
    assert_ne!(a, b);
    let r = a.split(',').next().unwrap();
    assert_eq!(r.len(), "r=".len() + 20 + 24, "{a}");
}

#[test]
fn plain_exchanges() {
    let (mut ex, s) = Exchange::start(Mechanism::Plain, Some(b"\0a@x\0pw"), &secret());
    match s {
        Step::Verify { user, password } => {
            assert_eq!((user.as_str(), password.as_str()), ("a@x", "pw"))
        }
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(ex.verified(true), Step::Success { ref user, final_data: None } if user == "a@x")
    );
    assert_eq!(failure(ex.verified(true)), Failure::OutOfOrder);

    let (mut ex, s) = Exchange::start(Mechanism::Plain, None, &secret());
    assert_eq!(challenge(s), "");
    assert!(matches!(ex.step(b"A@X\0a@x\0pw"), Step::Verify { .. }));
    assert_eq!(failure(ex.verified(false)), Failure::Credentials);

    let (mut ex, _) = Exchange::start(Mechanism::Plain, None, &secret());
    assert_eq!(failure(ex.step(b"b@x\0a@x\0pw")), Failure::AuthzidMismatch);
    let (_, s) = Exchange::start(Mechanism::Plain, Some(b""), &secret());
    assert_eq!(failure(s), Failure::Malformed("PLAIN"));
    let (mut ex, _) = Exchange::start(Mechanism::Plain, None, &secret());
    assert_eq!(failure(ex.cancel()), Failure::Cancelled);
    assert!(ex.is_done());
}

#[test]
fn login_exchanges() {
    let (mut ex, s) = Exchange::start(Mechanism::Login, None, &secret());
    assert_eq!(challenge(s), "Username:");
    assert_eq!(challenge(ex.step(b"a@x")), "Password:");
    assert!(
        matches!(ex.step(b"pw"), Step::Verify { ref user, ref password } if user == "a@x" && password == "pw")
    );
    assert!(matches!(ex.verified(true), Step::Success { .. }));
    // The initial response is the user name.
    let (mut ex, s) = Exchange::start(Mechanism::Login, Some(b"a@x"), &secret());
    assert_eq!(challenge(s), "Password:");
    assert_eq!(failure(ex.step(b"")), Failure::Malformed("LOGIN"));
}

#[test]
fn out_of_order_and_bounds() {
    let (mut ex, _) = Exchange::start(Mechanism::Plain, None, &secret());
    assert_eq!(failure(ex.credentials(None)), Failure::OutOfOrder);
    let (mut ex, _) = Exchange::start(Mechanism::ScramSha256, None, &secret());
    assert_eq!(failure(ex.verified(true)), Failure::OutOfOrder);
    let (mut ex, _) = Exchange::start(Mechanism::ScramSha256, Some(C_FIRST.as_bytes()), &secret());
    assert_eq!(failure(ex.step(b"c=biws")), Failure::OutOfOrder);
    let (mut ex, _) = Exchange::start(Mechanism::Plain, None, &secret());
    assert_eq!(
        failure(ex.step(&vec![b'a'; MAX_RESPONSE + 1])),
        Failure::TooLong
    );
    // The longest client nonce still gives a bounded challenge.
    let first = format!("n,,n=user,r={}", "x".repeat(MAX_RESPONSE - 14));
    let (mut ex, _) = Exchange::start(Mechanism::ScramSha256, Some(first.as_bytes()), &secret());
    match ex.credentials(None) {
        Step::Challenge(c) => assert!(c.len() <= crate::MAX_CHALLENGE, "{}", c.len()),
        other => panic!("{other:?}"),
    }
}
