//! AUTH SCRAM-SHA-256 and LOGIN, with facteur-sasl's client: the exchange
//! with and without an initial response, the final `+ v=...` continuation,
//! and a wrong password refused exactly as PLAIN and PASS refuse it.

use super::*;
use facteur_sasl::client::ScramClient;
use facteur_sasl::{Response as Sasl, decode_response, encode};

/// Gives alice SCRAM keys (the fixture's users have `{PLAIN}` hashes only,
/// as users whose password predates the keys).
fn with_scram_keys(f: &Fixture) {
    let dir = f.ctx.logins.directory().as_ref();
    facteur_directory::password::set_password(dir, "alice@example.test", "alice-pw").unwrap();
}

fn continuation(line: &str) -> Vec<u8> {
    match decode_response(line.strip_prefix("+ ").expect("a continuation").as_bytes()) {
        Ok(Sasl::Data(d)) => d,
        other => panic!("{other:?}"),
    }
}

/// Runs SCRAM as `user` with `pw`; returns the final reply.
async fn scram(c: &mut Client<DuplexStream>, user: &str, pw: &str, ir: bool) -> String {
    let mut client = ScramClient::new(user, pw);
    let first = encode(&client.first());
    let server_first = if ir {
        c.cmd(&format!("AUTH SCRAM-SHA-256 {first}")).await
    } else {
        assert_eq!(c.cmd("AUTH SCRAM-SHA-256").await, "+ ");
        c.cmd(&first).await
    };
    let last = client.respond(&continuation(&server_first)).unwrap();
    let l = c.cmd(&encode(&last)).await;
    if !l.starts_with("+ ") {
        return l;
    }
    client.verify(&continuation(&l)).unwrap();
    c.cmd("").await
}

#[tokio::test]
async fn scram_logs_in_and_a_wrong_password_is_refused_like_plain() {
    let f = fixture(5);
    with_scram_keys(&f);
    for ir in [false, true] {
        let (mut c, s) = f.connect(LOOPBACK).await;
        let reply = scram(&mut c, "alice@example.test", "alice-pw", ir).await;
        assert!(reply.starts_with("+OK Logged in, 3 messages"), "{reply}");
        assert_eq!(c.cmd("QUIT").await, "+OK Bye, 3 messages left");
        s.ended().await;
    }
    let (mut c, _s) = f.connect(LOOPBACK).await;
    let wrong = scram(&mut c, "alice@example.test", "wrong", false).await;
    assert_eq!(wrong, "-ERR [AUTH] Authentication failed");
    let plain = encode(b"\0alice@example.test\0wrong");
    assert_eq!(c.cmd(&format!("AUTH PLAIN {plain}")).await, wrong);
    assert!(c.cmd("USER alice@example.test").await.starts_with("+OK"));
    assert_eq!(c.cmd("PASS wrong").await, wrong);
    // Unknown user, and bob, whose password predates SCRAM keys: the same.
    assert_eq!(scram(&mut c, "nobody@example.test", "x", true).await, wrong);
    assert_eq!(
        scram(&mut c, "bob@example.test", "bob-pw", true).await,
        wrong
    );
    // bob logs in with PLAIN.
    let plain = encode(b"\0bob@example.test\0bob-pw");
    let ok = c.cmd(&format!("AUTH PLAIN {plain}")).await;
    assert!(ok.starts_with("+OK Logged in"), "{ok}");
}

#[tokio::test]
async fn sasl_login_and_refusals() {
    let f = fixture(5);
    let (mut c, _s) = f.connect(LOOPBACK).await;
    // Channel binding required: refused.
    assert_eq!(
        c.cmd("AUTH SCRAM-SHA-256 cD10bHMtdW5pcXVlLCxuPWEscj14")
            .await,
        "-ERR Channel binding is not supported"
    );
    assert_eq!(
        c.cmd("AUTH SCRAM-SHA-256-PLUS").await,
        "-ERR Unsupported authentication mechanism"
    );
    // LOGIN: two prompts, a cancel, then with the name as initial response.
    assert_eq!(c.cmd("AUTH LOGIN").await, "+ VXNlcm5hbWU6");
    assert_eq!(
        c.cmd(&encode(b"alice@example.test")).await,
        "+ UGFzc3dvcmQ6"
    );
    assert_eq!(c.cmd("*").await, "-ERR Authentication cancelled");
    let ir = encode(b"alice@example.test");
    assert_eq!(c.cmd(&format!("auth login {ir}")).await, "+ UGFzc3dvcmQ6");
    let ok = c.cmd(&encode(b"alice-pw")).await;
    assert!(ok.starts_with("+OK Logged in, 3 messages"), "{ok}");
}
