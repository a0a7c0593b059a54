//! imap-load: the IMAP load client of facteur's benchmarks. bench/run
//! drives the same commands against facteur-imapd and Dovecot and compares.
//!
//! Three modes, each printing one JSON object on standard output:
//!
//! - `mix`: S concurrent workers, each running C sessions back to back: a
//!   mail client's visit (connect, LOGIN, LIST, SELECT, FETCH of the newest
//!   headers, FETCH of a few bodies, STORE of flags, APPEND, mark the
//!   appended message \Deleted, EXPUNGE, LOGOUT). Mailbox sizes stay
//!   constant. Reports sessions/s, commands/s, latency of a session.
//! - `big`: SELECT and `FETCH 1:* (FLAGS)` timings on one (large) mailbox,
//!   one fresh connection per repetition, the first W repetitions unmeasured
//!   (warm-up: the server builds its index there).
//! - `idle`: opens N connections that LOGIN, SELECT and IDLE, prints the
//!   JSON line when all are idling, then holds them until standard input
//!   gives a line or closes (the harness measures the server meanwhile).
//!   A line `wake` instead times how long until every connection is told
//!   of a new message, which the harness delivers (bench/scale).
//! - `hold`: opens N POP3 or SMTP connections (greeting; EHLO for SMTP)
//!   and holds them the same way (bench/scale).
//!
//! Options (all modes): --port P [--host 127.0.0.1] --password PW
//! --user-prefix P [--user-suffix S] --users K (users are P0S..P{K-1}S) [--timeout SECS].
//! mix: --sessions S --cycles C. big: --user NAME --repeat R --warmup W
//! [--search NEEDLE] (a SEARCH TEXT after the FETCH, timed).
//! idle: --connections N [--ramp R] [--wake-timeout SECS] [--all-ms 1]. hold: --proto
//! pop3|smtp --connections N [--ramp R]. idle and hold: [--tls 1] (implicit
//! TLS, the certificate not checked: tls.rs) [--buffer BYTES].
//!
//! Loopback only: connections are made from 127.0.0.2-254 to the host given.

mod conn;
mod modes;
mod tls;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

pub struct Opts {
    pub dst: SocketAddr,
    pub password: String,
    pub user_prefix: String,
    pub user_suffix: String,
    pub users: usize,
    pub timeout: Duration,
    pub rest: HashMap<String, String>,
}

impl Opts {
    pub fn num(&self, key: &str, default: usize) -> usize {
        self.rest.get(key).map(|v| v.parse().unwrap_or_else(|_| die(&format!("--{key}: not a number: {v}")))).unwrap_or(default)
    }

    pub fn user(&self, i: usize) -> String {
        format!("{}{}{}", self.user_prefix, i % self.users.max(1), self.user_suffix)
    }
}

fn die(msg: &str) -> ! {
    eprintln!("imap-load: {msg}");
    std::process::exit(2)
}

fn parse_args() -> (String, Opts) {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| die("usage: imap-load mix|big|idle|hold --port P ..."));
    let mut kv = HashMap::new();
    while let Some(a) = args.next() {
        let key = a.strip_prefix("--").unwrap_or_else(|| die(&format!("unexpected argument {a}")));
        let val = args.next().unwrap_or_else(|| die(&format!("--{key} needs a value")));
        kv.insert(key.to_string(), val);
    }
    let take = |kv: &mut HashMap<String, String>, k: &str, d: Option<&str>| {
        kv.remove(k).or(d.map(str::to_string)).unwrap_or_else(|| die(&format!("--{k} is required")))
    };
    let host = take(&mut kv, "host", Some("127.0.0.1"));
    let port = take(&mut kv, "port", None);
    let dst = format!("{host}:{port}").parse().unwrap_or_else(|_| die("bad --host/--port"));
    let password = take(&mut kv, "password", None);
    let user_prefix = take(&mut kv, "user-prefix", Some("user"));
    let user_suffix = take(&mut kv, "user-suffix", Some(""));
    let users = take(&mut kv, "users", Some("1")).parse().unwrap_or_else(|_| die("bad --users"));
    let timeout = Duration::from_secs(take(&mut kv, "timeout", Some("120")).parse().unwrap_or_else(|_| die("bad --timeout")));
    (mode, Opts { dst, password, user_prefix, user_suffix, users, timeout, rest: kv })
}

fn main() {
    let (mode, opts) = parse_args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| die(&format!("tokio runtime: {e}")));
    let result = rt.block_on(async {
        match mode.as_str() {
            "mix" => modes::mix(&opts).await,
            "big" => modes::big(&opts).await,
            "idle" => modes::idle(&opts).await,
            "hold" => modes::hold(&opts).await,
            other => die(&format!("unknown mode {other}")),
        }
    });
    match result {
        Ok(json) if json.is_empty() => {}
        Ok(json) => println!("{json}"),
        Err(e) => die(&e.to_string()),
    }
}
