//! A POP3 deletion seen by another process's open view of the mailbox (what
//! an IMAP session holds): the real facteur-pop3d binary runs as a child
//! process; this test process holds a `Mailbox` of the same INBOX, deletes
//! over POP3, and sees the expunges at its next sync. Also: the POP3 lock
//! held by this process keeps the child's session out (`[IN-USE]`).

#![allow(clippy::unwrap_used)]

use facteur_directory::{Directory, SqliteDirectory};
use facteur_store::{Quota, Store, StoreConfig};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Pop {
    r: BufReader<TcpStream>,
}

impl Pop {
    fn connect(port: u16) -> Pop {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match TcpStream::connect(("127.0.0.1", port)) {
                Ok(s) => {
                    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                    let mut p = Pop {
                        r: BufReader::new(s),
                    };
                    assert!(p.line().starts_with("+OK"));
                    return p;
                }
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Err(e) => panic!("facteur-pop3d does not listen: {e}"),
            }
        }
    }

    fn line(&mut self) -> String {
        let mut l = String::new();
        self.r.read_line(&mut l).unwrap();
        l.trim_end().to_string()
    }

    fn cmd(&mut self, c: &str) -> String {
        self.r
            .get_mut()
            .write_all(format!("{c}\r\n").as_bytes())
            .unwrap();
        self.line()
    }
}

#[test]
fn deletion_is_seen_by_another_process_and_the_lock_works_across_processes() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let db = root.join("directory.sqlite");
    let dir = SqliteDirectory::open(&db).unwrap();
    dir.add_domain("example.test").unwrap();
    dir.add_user("alice@example.test", "{PLAIN}pw", 0, 0)
        .unwrap();
    drop(dir);
    let store = Store::new(StoreConfig {
        root: root.join("mail"),
        hostname: "test".into(),
    });
    for i in 0..3 {
        let m = format!("Subject: {i}\r\n\r\nbody {i}\r\n");
        store
            .deliver(
                "alice@example.test",
                None,
                &mut m.as_bytes(),
                Quota::default(),
            )
            .unwrap();
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = root.join("facteur.toml");
    let p = |s: &str| root.join(s).display().to_string();
    std::fs::write(
        &cfg,
        format!(
            "hostname = \"test.example\"\n[paths]\nspool_dir = \"{}\"\nstate_dir = \"{}\"\nrun_dir = \"{}\"\n\
             [tls]\ncert = \"{}\"\nkey = \"{}\"\n[directory]\npath = \"{}\"\n[store]\nmail_root = \"{}\"\n\
             [pop3d]\nlisten = [\"127.0.0.1:{port}\"]\nallow_plaintext_auth_on_loopback = true\n",
            p("spool"),
            p("state"),
            p("run"),
            p("no-cert.pem"),
            p("no-key.pem"),
            db.display(),
            p("mail"),
        ),
    )
    .unwrap();
    let _d = Daemon(
        Command::new(env!("CARGO_BIN_EXE_facteur-pop3d"))
            .arg("--config")
            .arg(&cfg)
            .env("FACTEUR_LOG", "error")
            .spawn()
            .unwrap(),
    );

    // This process's view of the INBOX, open before the POP3 session.
    let us = store
        .open_user("alice@example.test", Quota::default())
        .unwrap();
    let mut view = us.select("INBOX").unwrap();
    assert_eq!(view.messages().len(), 3);

    // The POP3 lock held here keeps the other process's session out.
    let user_dir = store.user_dir("alice@example.test").unwrap();
    let held = facteur_pop3d::maildrop::lock(&user_dir).unwrap();
    let mut c = Pop::connect(port);
    c.cmd("USER alice@example.test");
    assert!(c.cmd("PASS pw").starts_with("-ERR [IN-USE]"));
    drop(held);
    c.cmd("USER alice@example.test");
    assert_eq!(c.cmd("PASS pw"), "+OK Logged in, 3 messages (66 octets)");
    // ... and the other way round.
    assert!(matches!(
        facteur_pop3d::maildrop::lock(&user_dir),
        Err(facteur_pop3d::maildrop::OpenError::InUse)
    ));
    assert_eq!(c.cmd("DELE 2"), "+OK Message 2 deleted");
    assert_eq!(c.cmd("QUIT"), "+OK Bye, 2 messages left");

    let changes = view.sync().unwrap();
    assert_eq!(changes.expunged, [2]);
    assert_eq!(
        view.messages().iter().map(|m| m.uid).collect::<Vec<_>>(),
        [1, 3]
    );
}
