//! AUTHENTICATE SCRAM-SHA-256 and LOGIN, with facteur-sasl's client: the
//! exchange, the final `+ v=...` continuation, and a wrong password refused
//! exactly as PLAIN refuses it.

use super::*;
use facteur_sasl::client::ScramClient;
use facteur_sasl::encode;

/// Gives alice SCRAM keys (the fixture's users have `{PLAIN}` hashes only,
/// as users whose password predates the keys).
fn with_scram_keys(f: &Fixture) {
    let dir = f.ctx.logins.directory().as_ref();
    facteur_directory::password::set_password(dir, "alice@example.test", "alice-pw").unwrap();
}

/// The base64 of a `+ ` continuation.
fn continuation(line: &str) -> Vec<u8> {
    let b64 = line.strip_prefix("+ ").expect("a continuation");
    base64_decode(b64)
}

fn base64_decode(s: &str) -> Vec<u8> {
    match facteur_sasl::decode_response(s.as_bytes()).unwrap() {
        facteur_sasl::Response::Data(d) => d,
        facteur_sasl::Response::Cancel => panic!("not data"),
    }
}

/// Runs SCRAM for alice with `pw` on `c`, SASL-IR or not; returns the
/// tagged reply.
async fn scram(c: &mut Client<DuplexStream>, tag: &str, pw: &str, ir: bool) -> String {
    let mut client = ScramClient::new("alice@example.test", pw);
    if ir {
        let first = encode(&client.first());
        c.send(format!("{tag} AUTHENTICATE SCRAM-SHA-256 {first}\r\n").as_bytes())
            .await;
    } else {
        c.send(format!("{tag} authenticate scram-sha-256\r\n").as_bytes())
            .await;
        assert_eq!(c.line().await, "+ ");
        c.send(format!("{}\r\n", encode(&client.first())).as_bytes())
            .await;
    }
    let server_first = continuation(&c.line().await);
    let last = client.respond(&server_first).unwrap();
    c.send(format!("{}\r\n", encode(&last)).as_bytes()).await;
    let l = c.line().await;
    if !l.starts_with("+ ") {
        return l;
    }
    client.verify(&continuation(&l)).unwrap();
    c.send(b"\r\n").await;
    c.line().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_logs_in_with_and_without_initial_response() {
    let f = fixture();
    with_scram_keys(&f);
    for ir in [false, true] {
        let (mut c, s) = f.connect(LOOPBACK).await;
        let reply = scram(&mut c, "a", "alice-pw", ir).await;
        assert!(reply.starts_with("a OK [CAPABILITY "), "{reply}");
        assert!(reply.ends_with("] Logged in"), "{reply}");
        let sel = c.cmd("b", "SELECT INBOX").await;
        assert!(sel.last().unwrap().starts_with("b OK"), "{sel:?}");
        c.cmd("c", "LOGOUT").await;
        drop(c);
        s.ended().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_wrong_password_is_refused_like_plain() {
    let f = fixture();
    with_scram_keys(&f);
    let (mut c, _s) = f.connect(LOOPBACK).await;
    let scram_reply = scram(&mut c, "a", "wrong", false).await;
    let plain = encode(b"\0alice@example.test\0wrong");
    let plain_reply = c.cmd("a", &format!("AUTHENTICATE PLAIN {plain}")).await;
    let login_reply = c.cmd("a", "LOGIN alice@example.test wrong").await;
    assert_eq!(
        scram_reply,
        "a NO [AUTHENTICATIONFAILED] Authentication failed"
    );
    assert_eq!(plain_reply, std::slice::from_ref(&scram_reply));
    assert_eq!(login_reply, [scram_reply]);
    // A user whose password predates SCRAM keys (bob): SCRAM fails as a
    // wrong password does, PLAIN works.
    let mut client = ScramClient::new("bob@example.test", "bob-pw");
    c.send(
        format!(
            "b AUTHENTICATE SCRAM-SHA-256 {}\r\n",
            encode(&client.first())
        )
        .as_bytes(),
    )
    .await;
    let server_first = continuation(&c.line().await);
    let last = client.respond(&server_first).unwrap();
    c.send(format!("{}\r\n", encode(&last)).as_bytes()).await;
    assert_eq!(
        c.line().await,
        "b NO [AUTHENTICATIONFAILED] Authentication failed"
    );
    let plain = encode(b"\0bob@example.test\0bob-pw");
    let ok = c.cmd("c", &format!("AUTHENTICATE PLAIN {plain}")).await;
    assert!(ok[0].starts_with("c OK [CAPABILITY"), "{ok:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_login_and_refusals() {
    let f = fixture();
    f.transcript(
        r#"
        C: a AUTHENTICATE SCRAM-SHA-256 cD10bHMtdW5pcXVlLCxuPWEscj14
        S: a NO [AUTHENTICATIONFAILED] Channel binding is not supported
        C: b AUTHENTICATE SCRAM-SHA-256-PLUS
        S: b NO [CANNOT] Unsupported authentication mechanism
        C: c AUTHENTICATE LOGIN
        S: + VXNlcm5hbWU6
        C: YWxpY2VAZXhhbXBsZS50ZXN0
        S: + UGFzc3dvcmQ6
        C: *
        S: c BAD Authentication cancelled
        C: d AUTHENTICATE LOGIN YWxpY2VAZXhhbXBsZS50ZXN0
        S: + UGFzc3dvcmQ6
        C: YWxpY2UtcHc=
        S: d OK [CAPABILITY **] Logged in
        "#,
    )
    .await;
}
