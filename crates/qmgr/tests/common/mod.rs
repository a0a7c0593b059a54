//! Test harness: a temporary facteur root with a directory, a spool, an
//! in-process facteur-lmtpd or a scripted fake LMTP server, and qmgr.

#![allow(dead_code, clippy::unwrap_used)]

use facteur_config::Config;
use facteur_directory::{Directory, SqliteDirectory};
use facteur_spool::{Envelope, QueueName, Recipient, Spool};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::oneshot;

pub struct Root {
    pub dir: tempfile::TempDir,
    pub cfg: Config,
}

impl Root {
    /// `extra_qmgr`: more lines for `[qmgr]`.
    pub fn new(extra_qmgr: &str) -> Root {
        // Remote delivery never asks the system's resolver in tests.
        let dns = if extra_qmgr.contains("dns_servers") {
            ""
        } else {
            "dns_servers = [\"127.0.0.1:9\"]\n"
        };
        let dir = tempfile::tempdir().unwrap();
        let p = |s: &str| {
            let v = dir.path().join(s);
            toml_str(&v)
        };
        let text = format!(
            "hostname = \"mail.example.test\"\n\
             [paths]\nspool_dir = {}\nstate_dir = {}\nrun_dir = {}\n\
             [tls]\ncert = {}\nkey = {}\n\
             [directory]\npath = {}\n\
             [store]\nmail_root = {}\n\
             [qmgr]\nmin_backoff = 1\nmax_backoff = 2\nscan_interval = 30\n\
             {dns}smtp_connect_timeout = 2\n{extra_qmgr}\n",
            p("spool"),
            p("state"),
            p("run"),
            p("tls/cert.pem"),
            p("tls/key.pem"),
            p("state/directory.sqlite"),
            p("mail"),
        );
        for d in ["spool", "state", "run", "mail"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        let path = dir.path().join("facteur.toml");
        std::fs::write(&path, text).unwrap();
        let cfg = Config::load(&path).unwrap();
        let d = SqliteDirectory::open(&cfg.directory.path).unwrap();
        d.add_domain("example.test").unwrap();
        for u in [
            "alice@example.test",
            "bob@example.test",
            "carol@example.test",
        ] {
            d.add_user(u, "{PLAIN}pw", 0, 0).unwrap();
        }
        d.add_alias("team@example.test", "alice@example.test")
            .unwrap();
        d.add_alias("team@example.test", "bob@example.test")
            .unwrap();
        d.add_alias("broken@example.test", "gone@example.test")
            .unwrap();
        Root { dir, cfg }
    }

    pub fn spool(&self) -> Spool {
        Spool::open(&self.cfg.paths.spool_dir).unwrap()
    }

    /// Queues a message in incoming/ and wakes qmgr. Returns its id.
    pub fn queue(&self, sender: &str, rcpts: &[&str], edit: impl FnOnce(&mut Envelope)) -> String {
        let mut env = Envelope {
            sender: sender.into(),
            recipients: rcpts.iter().map(|r| Recipient::new(*r)).collect(),
            arrival: facteur_qmgr::schedule::now(),
            protocol: Some("ESMTP".into()),
            ..Envelope::default()
        };
        edit(&mut env);
        let mut w = self.spool().create(QueueName::Incoming, &env).unwrap();
        w.write_all(
            b"From: <sender@example.test>\r\nSubject: test message\r\n\r\nHello.\r\n.dot line\r\n",
        )
        .unwrap();
        let id = w.commit().unwrap();
        facteur_spool::wake_qmgr(&self.cfg.qmgr_socket());
        id
    }

    /// Messages in a user's INBOX new/.
    pub fn mailbox(&self, user: &str) -> Vec<Vec<u8>> {
        let (local, domain) = user.split_once('@').unwrap();
        let new = self
            .cfg
            .store
            .mail_root
            .join(domain)
            .join(local)
            .join("new");
        let mut out = Vec::new();
        if let Ok(rd) = std::fs::read_dir(&new) {
            for e in rd {
                out.push(std::fs::read(e.unwrap().path()).unwrap());
            }
        }
        out
    }

    /// Ids in a queue directory.
    pub fn ids(&self, q: QueueName) -> Vec<String> {
        self.spool().list(q).unwrap()
    }

    pub fn queue_empty(&self) -> bool {
        [
            QueueName::Maildrop,
            QueueName::Incoming,
            QueueName::Active,
            QueueName::Deferred,
        ]
        .iter()
        .all(|q| self.ids(*q).is_empty())
    }

    pub fn directory(&self) -> SqliteDirectory {
        SqliteDirectory::open(&self.cfg.directory.path).unwrap()
    }

    /// Points qmgr at another LMTP socket.
    pub fn set_lmtp(&mut self, path: &Path) {
        self.cfg.qmgr.lmtp = format!("unix:{}", path.display());
    }
}

fn toml_str(p: &Path) -> String {
    format!("\"{}\"", p.display())
}

/// A running task with its shutdown trigger.
pub struct Running {
    stop: Option<oneshot::Sender<()>>,
    handle: tokio::task::JoinHandle<()>,
}

impl Running {
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        tokio::time::timeout(Duration::from_secs(20), &mut self.handle)
            .await
            .expect("stopped in time")
            .unwrap();
    }
}

/// The real facteur-lmtpd, in process.
pub async fn start_lmtpd(cfg: &Config) -> Running {
    let ctx = Arc::new(facteur_lmtpd::Context::from_config(cfg).unwrap());
    let l = facteur_daemon::Listener::bind_unix(&cfg.lmtp_socket(), 0o660).unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        facteur_lmtpd::server::serve(ctx, vec![l], 10, None, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    Running {
        stop: Some(tx),
        handle,
    }
}

/// A nameserver on loopback that answers every query SERVFAIL (a DNS
/// outage, fast). Returns its address.
pub fn servfail_dns() -> std::net::SocketAddr {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = s.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut b = [0u8; 512];
        while let Ok((n, peer)) = s.recv_from(&mut b) {
            if n < 12 {
                continue;
            }
            let mut r = b[..n].to_vec();
            r[2] = 0x80 | (r[2] & 0x01); // QR, RD copied
            r[3] = 0x82; // RA, SERVFAIL
            let _ = s.send_to(&r, peer);
        }
    });
    addr
}

/// qmgr, in process.
pub async fn start_qmgr(cfg: &Config) -> Running {
    let mut ctx = facteur_qmgr::Context::from_config(cfg).unwrap();
    ctx.shutdown_grace = Duration::from_secs(5);
    ctx.timeouts = facteur_smtp_client::Timeouts::uniform(Duration::from_secs(5));
    let sock = facteur_qmgr::bind_wakeup(&ctx.socket).unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        facteur_qmgr::serve(Arc::new(ctx), sock, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    Running {
        stop: Some(tx),
        handle,
    }
}

/// Polls `cond` every 50 ms for up to `secs` seconds.
pub async fn wait_for(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !cond() {
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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
    pub transactions: Arc<std::sync::atomic::AtomicUsize>,
    /// Every command line received (not the message).
    pub lines: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Fake {
    pub fn start(path: PathBuf, mode: u8) -> Fake {
        let mode = Arc::new(AtomicU8::new(mode));
        let transactions = Arc::new(std::sync::atomic::AtomicUsize::new(0));
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
}

async fn fake_session(
    s: tokio::net::UnixStream,
    mode: Arc<AtomicU8>,
    txns: Arc<std::sync::atomic::AtomicUsize>,
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
