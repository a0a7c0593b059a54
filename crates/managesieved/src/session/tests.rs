//! Transcript tests: ManageSieve sessions in memory, with a real directory
//! (SQLite in memory), a real store (temporary directory) and the real
//! Sieve compiler.

#![allow(clippy::unwrap_used)]

use super::*;
use facteur_access::Access;
use facteur_testkit::{ALICE, LineClient, MailHome, Running, Session as Pipe};
use tokio::io::DuplexStream;

struct Fixture {
    home: MailHome,
    ctx: Arc<Context>,
}

fn fixture(max_script: u64, max_errors: u32) -> Fixture {
    let home = MailHome::new(&[]);
    let cfg = facteur_config::Managesieved {
        allow_plaintext_auth_on_loopback: true,
        max_errors,
        ..Default::default()
    };
    let sieve = facteur_config::Sieve {
        max_script_size: facteur_config::ByteSize(max_script),
        max_scripts: 3,
        ..Default::default()
    };
    let access = Access::for_tests(&home.directory, home.other_store(), home.tls_files()).unwrap();
    Fixture {
        ctx: Arc::new(Context::new(access, cfg, sieve)),
        home,
    }
}

type Client = LineClient<DuplexStream>;

impl Fixture {
    /// A client from `ip`, after the capabilities and the OK.
    async fn connect(&self, ip: &str) -> (Client, Running, Vec<String>) {
        let (ctx, ip) = (Arc::clone(&self.ctx), ip.parse().unwrap());
        let Pipe { mut client, server } =
            Pipe::start(move |io, stop| serve(ctx, Conn::Plain(io), ip, stop));
        let caps = until_final(&mut client).await;
        (client, server, caps)
    }

    async fn login(&self) -> (Client, Running) {
        let (mut c, s, _) = self.connect("127.0.0.1").await;
        // PLAIN: \0alice@example.test\0alice-pw
        let cred = facteur_sasl::encode(format!("\0{}\0{}", ALICE.0, ALICE.1).as_bytes());
        c.send_line(&format!("AUTHENTICATE \"PLAIN\" \"{cred}\""))
            .await;
        assert_eq!(c.line().await, "OK \"Logged in\"");
        (c, s)
    }
}

/// Lines up to and including the final OK/NO/BYE.
async fn until_final(c: &mut Client) -> Vec<String> {
    let mut out = Vec::new();
    loop {
        let l = c.line().await;
        let last = l.starts_with("OK") || l.starts_with("NO") || l.starts_with("BYE");
        out.push(l);
        if last {
            return out;
        }
    }
}

async fn cmd(c: &mut Client, line: &[u8]) -> Vec<String> {
    c.send(line).await;
    until_final(c).await
}

#[tokio::test]
async fn greeting_capabilities_and_no_login_without_tls() {
    let f = fixture(1 << 16, 20);
    let (_c, _s, caps) = f.connect("127.0.0.1").await;
    assert!(
        caps.contains(&"\"IMPLEMENTATION\" \"facteur\"".to_string()),
        "{caps:?}"
    );
    assert!(caps.iter().any(|l| l.starts_with("\"SIEVE\" \"")
        && l.contains("fileinto")
        && l.contains("vacation")));
    assert!(
        caps.iter()
            .any(|l| l.starts_with("\"SASL\" \"") && l.contains("PLAIN"))
    );
    assert!(caps.contains(&"\"STARTTLS\"".to_string()));
    assert!(caps.contains(&"\"VERSION\" \"1.0\"".to_string()));
    assert!(caps.last().unwrap().starts_with("OK"));
    // from elsewhere, in clear text: no mechanism offered, none accepted
    let (mut c, _s, caps) = f.connect("192.0.2.7").await;
    assert!(caps.contains(&"\"SASL\" \"\"".to_string()), "{caps:?}");
    let r = cmd(&mut c, b"AUTHENTICATE \"PLAIN\" \"AGFsaWNlAHB3\"\r\n").await;
    assert_eq!(
        r,
        ["NO (ENCRYPT-NEEDED) \"Use STARTTLS before AUTHENTICATE\""]
    );
    let r = cmd(&mut c, b"LISTSCRIPTS\r\n").await;
    assert!(r[0].starts_with("NO"), "{r:?}");
}

#[tokio::test]
async fn put_list_activate_get_rename_delete() {
    let f = fixture(1 << 16, 20);
    let (mut c, _s) = f.login().await;
    let script =
        b"require \"fileinto\";\r\nif header :contains \"subject\" \"x\" { fileinto \"X\"; }\r\n";
    let put = [
        format!("PUTSCRIPT \"main\" {{{}+}}\r\n", script.len()).into_bytes(),
        script.to_vec(),
        b"\r\n".to_vec(),
    ]
    .concat();
    assert_eq!(cmd(&mut c, &put).await, ["OK \"Script stored\""]);
    assert_eq!(
        cmd(&mut c, b"LISTSCRIPTS\r\n").await,
        ["\"main\"", "OK \"Listscripts completed\""]
    );
    assert_eq!(
        cmd(&mut c, b"SETACTIVE \"main\"\r\n").await,
        ["OK \"Script activated\""]
    );
    assert_eq!(
        cmd(&mut c, b"LISTSCRIPTS\r\n").await,
        ["\"main\" ACTIVE", "OK \"Listscripts completed\""]
    );
    let got = cmd(&mut c, b"GETSCRIPT \"main\"\r\n").await;
    assert_eq!(got[0], format!("{{{}}}", script.len()));
    assert_eq!(got.last().unwrap(), "OK \"Getscript completed\"");
    assert_eq!(
        f.home.store.scripts(ALICE.0).unwrap().active().unwrap(),
        Some(("main".to_string(), script.to_vec()))
    );
    assert!(cmd(&mut c, b"DELETESCRIPT \"main\"\r\n").await[0].starts_with("NO (ACTIVE)"));
    assert_eq!(
        cmd(&mut c, b"RENAMESCRIPT \"main\" \"other\"\r\n").await,
        ["OK \"Script renamed\""]
    );
    assert!(cmd(&mut c, b"GETSCRIPT \"main\"\r\n").await[0].starts_with("NO (NONEXISTENT)"));
    assert_eq!(
        cmd(&mut c, b"SETACTIVE \"\"\r\n").await,
        ["OK \"No script active\""]
    );
    assert_eq!(
        cmd(&mut c, b"DELETESCRIPT \"other\"\r\n").await,
        ["OK \"Script deleted\""]
    );
    assert_eq!(
        cmd(&mut c, b"NOOP \"t1\"\r\n").await,
        ["OK (TAG \"t1\") \"Done\""]
    );
    assert_eq!(
        cmd(&mut c, b"UNAUTHENTICATE\r\n").await,
        ["OK \"Logged out\""]
    );
    assert!(cmd(&mut c, b"LISTSCRIPTS\r\n").await[0].starts_with("NO"));
    assert_eq!(
        cmd(&mut c, b"LOGOUT\r\n").await,
        ["OK \"Logout completed\""]
    );
}

#[tokio::test]
async fn bad_scripts_and_limits() {
    let f = fixture(200, 20);
    let (mut c, _s) = f.login().await;
    // a script that does not compile is refused with its line and column
    let r = cmd(&mut c, b"PUTSCRIPT \"bad\" {14+}\r\nif true { ke;\r\n").await;
    assert!(r.last().unwrap().starts_with("NO "), "{r:?}");
    assert!(r.join("\n").contains("line 1"), "{r:?}");
    let r = cmd(&mut c, b"CHECKSCRIPT \"fileinto \\\"x\\\";\"\r\n").await;
    assert!(r.join("\n").contains("fileinto"), "{r:?}");
    assert_eq!(
        cmd(&mut c, b"CHECKSCRIPT \"keep;\"\r\n").await,
        ["OK \"Script is valid\""]
    );
    // a missing include is found before the script is stored
    let r = cmd(
        &mut c,
        b"PUTSCRIPT \"inc\" \"require \\\"include\\\"; include \\\"nope\\\";\"\r\n",
    )
    .await;
    assert!(r.join("\n").contains("does not exist"), "{r:?}");
    // a literal over max_script_size is refused and skipped
    let big = [
        b"PUTSCRIPT \"big\" {300+}\r\n".to_vec(),
        vec![b'#'; 300],
        b"\r\n".to_vec(),
    ]
    .concat();
    assert!(cmd(&mut c, &big).await[0].starts_with("NO (QUOTA/MAXSIZE)"));
    assert_eq!(
        cmd(&mut c, b"HAVESPACE \"x\" 100\r\n").await,
        ["OK \"Putscript would succeed\""]
    );
    assert!(cmd(&mut c, b"HAVESPACE \"x\" 100000\r\n").await[0].starts_with("NO (QUOTA/MAXSIZE)"));
    // a literal far over the limit is not read at all: the connection ends
    let (mut c2, _s2) = f.login().await;
    let r = cmd(&mut c2, b"PUTSCRIPT \"huge\" {99999999999+}\r\n").await;
    assert!(r[0].starts_with("BYE (QUOTA/MAXSIZE)"), "{r:?}");
    assert_eq!(c2.next_line().await, None);
    for n in ["a", "b", "c"] {
        assert_eq!(
            cmd(
                &mut c,
                format!("PUTSCRIPT \"{n}\" \"keep;\"\r\n").as_bytes()
            )
            .await,
            ["OK \"Script stored\""]
        );
    }
    assert!(
        cmd(&mut c, b"PUTSCRIPT \"d\" \"keep;\"\r\n").await[0].starts_with("NO (QUOTA/MAXSCRIPTS)")
    );
    assert!(cmd(&mut c, b"GETSCRIPT \"../x\"\r\n").await[0].starts_with("NO"));
}

#[tokio::test]
async fn garbage_gets_errors_then_bye() {
    let f = fixture(1 << 16, 6);
    let (mut c, _s, _) = f.connect("127.0.0.1").await;
    for line in [
        &b"FROB\r\n"[..],
        b"\"unterminated\r\n",
        b"GETSCRIPT\r\n",
        b"{5}\r\n12345\r\n",
        b"X \0 Y\r\n",
    ] {
        assert!(cmd(&mut c, line).await[0].starts_with("NO"), "{line:?}");
    }
    let r = cmd(&mut c, b"FROB\r\n").await;
    assert_eq!(r[0], "NO \"unknown command\"");
    let r = until_final(&mut c).await;
    assert!(r[0].starts_with("BYE"), "{r:?}");
}

#[tokio::test]
async fn wrong_password_and_sasl_exchange() {
    let f = fixture(1 << 16, 20);
    let (mut c, _s, _) = f.connect("127.0.0.1").await;
    let bad = facteur_sasl::encode(format!("\0{}\0wrong", ALICE.0).as_bytes());
    let r = cmd(
        &mut c,
        format!("AUTHENTICATE \"PLAIN\" \"{bad}\"\r\n").as_bytes(),
    )
    .await;
    assert_eq!(r, ["NO \"Authentication failed\""]);
    // PLAIN without initial response: an empty challenge, then the answer
    // as a literal
    c.send(b"AUTHENTICATE \"PLAIN\"\r\n").await;
    assert_eq!(c.line().await, "\"\"");
    let good = facteur_sasl::encode(format!("\0{}\0{}", ALICE.0, ALICE.1).as_bytes());
    c.send(format!("{{{}+}}\r\n{good}\r\n", good.len()).as_bytes())
        .await;
    assert_eq!(c.line().await, "OK \"Logged in\"");
}
