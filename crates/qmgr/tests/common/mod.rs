//! Test harness: a temporary facteur root (facteur-testkit) with the
//! directory's accounts, an in-process facteur-lmtpd or a scripted fake
//! LMTP server, and qmgr.

#![allow(dead_code, clippy::unwrap_used)]

pub use facteur_testkit::{Root, Running, SpoolExt, stopped, wait_for};

use facteur_config::Config;
use facteur_spool::{Envelope, QueueName, Recipient};
use facteur_testkit::Accounts;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// A root for qmgr: quick retries (1 to 2 s), no DNS answers (unless
/// `extra_qmgr` names `dns_servers`), then `extra_qmgr` in `[qmgr]`; the
/// users alice, bob and carol, the alias team (alice, bob) and the alias
/// broken to a user who does not exist.
pub fn root(extra_qmgr: &str) -> Root {
    // Remote delivery never asks the system's resolver in tests.
    let dns = if extra_qmgr.contains("dns_servers") {
        ""
    } else {
        "dns_servers = [\"127.0.0.1:9\"]\n"
    };
    let accounts = Accounts::new()
        .users(
            &[
                "alice@example.test",
                "bob@example.test",
                "carol@example.test",
            ],
            "{PLAIN}pw",
        )
        .alias(
            "team@example.test",
            &["alice@example.test", "bob@example.test"],
        )
        .alias("broken@example.test", &["gone@example.test"]);
    let qmgr = format!(
        "[qmgr]\nmin_backoff = 1\nmax_backoff = 2\nscan_interval = 30\n\
         {dns}smtp_connect_timeout = 2\n{extra_qmgr}\n"
    );
    Root::with_accounts("mail.example.test", &qmgr, &accounts)
}

/// What the tests do with a root's queue.
pub trait Queue {
    /// Queues a message in incoming/ and wakes qmgr. Returns its id.
    fn queue(&self, sender: &str, rcpts: &[&str], edit: impl FnOnce(&mut Envelope)) -> String;
    /// Ids in a queue directory.
    fn ids(&self, q: QueueName) -> Vec<String>;
    /// Nothing in maildrop/, incoming/, active/ or deferred/.
    fn queue_empty(&self) -> bool;
    /// Points qmgr at another LMTP socket.
    fn set_lmtp(&mut self, path: &Path);
}

impl Queue for Root {
    fn queue(&self, sender: &str, rcpts: &[&str], edit: impl FnOnce(&mut Envelope)) -> String {
        let mut env = Envelope {
            sender: sender.into(),
            recipients: rcpts.iter().map(|r| Recipient::new(*r)).collect(),
            arrival: facteur_qmgr::schedule::now(),
            protocol: Some("ESMTP".into()),
            ..Envelope::default()
        };
        edit(&mut env);
        let id = self.spool().put(
            QueueName::Incoming,
            &env,
            b"From: <sender@example.test>\r\nSubject: test message\r\n\r\nHello.\r\n.dot line\r\n",
        );
        facteur_spool::wake_qmgr(&self.cfg.qmgr_socket());
        id
    }

    fn ids(&self, q: QueueName) -> Vec<String> {
        self.spool().ids(q)
    }

    fn queue_empty(&self) -> bool {
        [
            QueueName::Maildrop,
            QueueName::Incoming,
            QueueName::Active,
            QueueName::Deferred,
        ]
        .iter()
        .all(|q| self.ids(*q).is_empty())
    }

    fn set_lmtp(&mut self, path: &Path) {
        self.cfg.qmgr.lmtp = format!("unix:{}", path.display());
    }
}

/// Waits until deferred/ holds `n` files, `id` among them; returns its
/// envelope.
pub async fn deferred(root: &Root, id: &str, n: usize) -> Envelope {
    let what = format!("{n} in deferred/");
    wait_for(10, &what, || root.ids(QueueName::Deferred).len() == n).await;
    root.spool().envelope(QueueName::Deferred, id)
}

/// The last reply recorded for recipient `i`.
pub fn last_reply(env: &Envelope, i: usize) -> &str {
    env.recipients[i]
        .last_reply
        .as_deref()
        .unwrap_or_else(|| panic!("no reply for recipient {i}: {env:?}"))
}

/// The real facteur-lmtpd, in process.
pub async fn start_lmtpd(cfg: &Config) -> Running {
    let ctx = Arc::new(facteur_lmtpd::Context::from_config(cfg).unwrap());
    let l = facteur_daemon::Listener::bind_unix(&cfg.lmtp_socket(), 0o660).unwrap();
    Running::spawn(|stop| async move {
        facteur_lmtpd::server::serve(ctx, vec![l], 10, None, stopped(stop))
            .await
            .unwrap();
    })
}

/// qmgr, in process.
pub async fn start_qmgr(cfg: &Config) -> Running {
    let mut ctx = facteur_qmgr::Context::from_config(cfg).unwrap();
    ctx.shutdown_grace = Duration::from_secs(5);
    ctx.timeouts = facteur_smtp_client::Timeouts::uniform(Duration::from_secs(5));
    let sock = facteur_qmgr::bind_wakeup(&ctx.socket).unwrap();
    Running::spawn(|stop| async move {
        facteur_qmgr::serve(Arc::new(ctx), sock, stopped(stop))
            .await
            .unwrap();
    })
}

/// facteur-lmtpd and qmgr running on one root.
pub struct Suite {
    lmtpd: Running,
    qmgr: Running,
}

impl Suite {
    pub async fn start(cfg: &Config) -> Suite {
        Suite {
            lmtpd: start_lmtpd(cfg).await,
            qmgr: start_qmgr(cfg).await,
        }
    }

    /// Stops qmgr, then lmtpd.
    pub async fn stop(self) {
        self.qmgr.stop().await;
        self.lmtpd.stop().await;
    }
}

/// A fake LMTP server in `mode` at the root's `fake.sock`, with qmgr
/// pointed at it, and qmgr running.
pub async fn with_fake(root: &mut Root, mode: u8) -> (Fake, Running) {
    let fake = Fake::start(root.path().join("fake.sock"), mode);
    root.set_lmtp(&fake.path);
    let qmgr = start_qmgr(&root.cfg).await;
    (fake, qmgr)
}

/// What the fake LMTP server does.
pub const ACCEPT: u8 = 0;
/// 451 to every RCPT.
pub const TEMPFAIL: u8 = 1;
/// 550 to every RCPT.
pub const PERMFAIL: u8 = 2;
/// Accepts the RCPTs, reads the message, then closes without replying.
pub const DROP: u8 = 3;
/// First RCPT 250, second 450, third 550.
pub const ONE_OF_THREE: u8 = 4;

/// A scripted LMTP server on a Unix socket; the mode can change at any time.
pub struct Fake {
    pub path: PathBuf,
    pub mode: Arc<AtomicU8>,
    pub transactions: Arc<AtomicUsize>,
    /// Every command line received (not the message).
    pub lines: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Fake {
    pub fn start(path: PathBuf, mode: u8) -> Fake {
        let mode = Arc::new(AtomicU8::new(mode));
        let transactions = Arc::new(AtomicUsize::new(0));
        let lines = Arc::new(std::sync::Mutex::new(Vec::new()));
        let l = tokio::net::UnixListener::bind(&path).unwrap();
        let (m, t, ls) = (
            Arc::clone(&mode),
            Arc::clone(&transactions),
            Arc::clone(&lines),
        );
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                let (m, t, ls) = (Arc::clone(&m), Arc::clone(&t), Arc::clone(&ls));
                tokio::spawn(async move {
                    let _ = fake_session(s, m, t, ls).await;
                });
            }
        });
        Fake {
            path,
            mode,
            transactions,
            lines,
        }
    }

    pub fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
    }

    /// Messages it received whole.
    pub fn transactions(&self) -> usize {
        self.transactions.load(Ordering::SeqCst)
    }
}

async fn fake_session(
    s: tokio::net::UnixStream,
    mode: Arc<AtomicU8>,
    txns: Arc<AtomicUsize>,
    lines: Arc<std::sync::Mutex<Vec<String>>>,
) -> std::io::Result<()> {
    let (r, mut w) = s.into_split();
    let mut r = BufReader::new(r);
    w.write_all(b"220 fake LMTP\r\n").await?;
    let mut accepted = 0usize;
    let mut nrcpt = 0usize;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        lines.lock().unwrap().push(line.trim_end().to_string());
        let upper = line.to_ascii_uppercase();
        let m = mode.load(Ordering::SeqCst);
        let reply: String = if upper.starts_with("LHLO") {
            "250-fake\r\n250-PIPELINING\r\n250 8BITMIME\r\n".into()
        } else if upper.starts_with("MAIL") {
            accepted = 0;
            nrcpt = 0;
            "250 2.1.0 OK\r\n".into()
        } else if upper.starts_with("RCPT") {
            nrcpt += 1;
            let code = match (m, nrcpt) {
                (TEMPFAIL, _) => "451 4.3.0 try again later",
                (PERMFAIL, _) => "550 5.1.1 no such mailbox",
                (ONE_OF_THREE, 2) => "450 4.2.1 mailbox busy",
                (ONE_OF_THREE, n) if n >= 3 => "550 5.1.1 no such mailbox",
                _ => "250 2.1.5 OK",
            };
            if code.starts_with('2') {
                accepted += 1;
            }
            format!("{code}\r\n")
        } else if upper.starts_with("DATA") {
            if accepted == 0 {
                "503 5.5.1 no valid recipients\r\n".into()
            } else {
                w.write_all(b"354 go ahead\r\n").await?;
                loop {
                    let mut l = String::new();
                    if r.read_line(&mut l).await? == 0 || l == ".\r\n" {
                        break;
                    }
                }
                txns.fetch_add(1, Ordering::SeqCst);
                if m == DROP {
                    return Ok(());
                }
                "250 2.0.0 Saved as FAKE1\r\n".repeat(accepted)
            }
        } else if upper.starts_with("RSET") {
            "250 2.0.0 OK\r\n".into()
        } else if upper.starts_with("QUIT") {
            w.write_all(b"221 2.0.0 bye\r\n").await?;
            return Ok(());
        } else {
            "500 5.5.2 what?\r\n".into()
        };
        w.write_all(reply.as_bytes()).await?;
    }
}
