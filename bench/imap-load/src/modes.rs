//! The load modes of imap-load (see main.rs): `mix`, `big`, `idle`, `hold`.
//! Each returns the JSON object that main prints; numbers only, no
//! judgement — bench/run compares the two servers.

use crate::Opts;
use crate::conn::{Conn, Dial, quote, source_addr};
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::AsyncBufReadExt;
use tokio::sync::Semaphore;

/// A ~4 KB message in network form, unique by its Message-ID.
fn message(worker: usize, cycle: usize) -> Vec<u8> {
    let mut m = format!(
        "From: Load Generator <load@bench.test>\r\nTo: user@example.test\r\n\
         Subject: imap-load append {worker}.{cycle}\r\n\
         Date: Mon, 23 Nov 2026 12:00:00 +0000\r\n\
         Message-ID: <imap-load.{worker}.{cycle}.{}@bench.test>\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n",
        std::process::id()
    );
    while m.len() < 4096 {
        m.push_str("The quick brown fox jumps over the lazy dog, again and again and again.\r\n");
    }
    m.into_bytes()
}

fn median_and(v: &mut [f64], q: f64) -> (f64, f64) {
    if v.is_empty() {
        return (0.0, 0.0);
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let pick = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    (pick(0.5), pick(q))
}

/// One visit of a mail client; returns the number of commands sent.
async fn visit(opts: &Opts, worker: usize, cycle: usize, seeded: u32) -> io::Result<u64> {
    let mut c = Conn::connect(source_addr(worker), opts.dst, opts.timeout).await?;
    c.login(&opts.user(worker), &opts.password).await?;
    c.command("LIST \"\" \"*\"").await?;
    let sel = c.command("SELECT INBOX").await?;
    let mut cmds = 4;
    // Only the seeded messages are read or flagged: the ones appended by
    // concurrent sessions may vanish at any moment.
    let n = sel.exists().unwrap_or(0).min(seeded);
    if n > 0 {
        let lo = n.saturating_sub(19).max(1);
        c.command(&format!(
            "FETCH {lo}:{n} (UID FLAGS RFC822.SIZE INTERNALDATE BODY.PEEK[HEADER.FIELDS (FROM TO SUBJECT DATE MESSAGE-ID)])"
        ))
        .await?;
        cmds += 1;
        for k in 0..3usize {
            let seq = 1 + ((worker * 7 + cycle * 13 + k * 31) % n as usize);
            c.command(&format!("FETCH {seq} (BODY.PEEK[])")).await?;
            let sign = if cycle.is_multiple_of(2) { '+' } else { '-' };
            c.command(&format!("STORE {seq} {sign}FLAGS.SILENT (\\Flagged)")).await?;
            cmds += 2;
        }
    }
    let appended = c.append("INBOX", "\\Seen", &message(worker, cycle)).await?;
    cmds += 1;
    let uid = match appended.append_uid() {
        Some(uid) => uid,
        None => {
            // No UIDPLUS: find the message by its Message-ID.
            let r = c
                .command(&format!("UID SEARCH HEADER Message-ID \"<imap-load.{worker}.{cycle}.{}@bench.test>\"", std::process::id()))
                .await?;
            cmds += 1;
            let found = r.untagged.iter().find_map(|l| l.strip_prefix("* SEARCH ")?.split(' ').next()?.parse().ok());
            found.ok_or_else(|| io::Error::other("appended message not found by SEARCH"))?
        }
    };
    c.command(&format!("UID STORE {uid} +FLAGS.SILENT (\\Deleted)")).await?;
    c.command("EXPUNGE").await?;
    c.logout().await?;
    Ok(cmds + 3)
}

pub async fn mix(opts: &Opts) -> io::Result<String> {
    let sessions = opts.num("sessions", 10);
    let cycles = opts.num("cycles", 10);
    let seeded = opts.num("seeded", 100) as u32;
    let opts = Arc::new(Opts { rest: opts.rest.clone(), password: opts.password.clone(), user_prefix: opts.user_prefix.clone(), user_suffix: opts.user_suffix.clone(), ..*opts });
    let commands = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..sessions {
        let (opts, commands) = (opts.clone(), commands.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(cycles);
            let mut errors: Vec<String> = Vec::new();
            for cy in 0..cycles {
                let t = Instant::now();
                match visit(&opts, w, cy, seeded).await {
                    Ok(n) => {
                        commands.fetch_add(n, Ordering::Relaxed);
                        lat.push(t.elapsed().as_secs_f64() * 1000.0);
                    }
                    Err(e) => errors.push(e.to_string()),
                }
            }
            (lat, errors)
        }));
    }
    let mut lat = Vec::new();
    let mut errors = Vec::new();
    for t in tasks {
        let (l, e) = t.await.map_err(io::Error::other)?;
        lat.extend(l);
        errors.extend(e);
    }
    let secs = start.elapsed().as_secs_f64();
    let ok = lat.len();
    let (p50, p99) = median_and(&mut lat, 0.99);
    Ok(format!(
        "{{\"mode\":\"mix\",\"sessions\":{sessions},\"visits\":{ok},\"errors\":{},\"first_error\":{:?},\"secs\":{secs:.4},\
         \"visits_per_s\":{:.2},\"commands_per_s\":{:.1},\"p50_ms\":{p50:.2},\"p99_ms\":{p99:.2}}}",
        errors.len(),
        errors.first().cloned().unwrap_or_default(),
        ok as f64 / secs,
        commands.load(Ordering::Relaxed) as f64 / secs,
    ))
}

pub async fn big(opts: &Opts) -> io::Result<String> {
    let repeat = opts.num("repeat", 3);
    let warmup = opts.num("warmup", 1);
    let user = opts.rest.get("user").cloned().unwrap_or_else(|| opts.user(0));
    let (mut sel_ms, mut fetch_ms, mut search_ms) = (Vec::new(), Vec::new(), Vec::new());
    let (mut exists, mut fetched, mut found) = (0, 0, 0);
    let (mut cold_ms, mut cold_fetch_ms, mut cold_search_ms) = (-1.0, -1.0, -1.0);
    // `--search NEEDLE`: a SEARCH TEXT after the FETCH, timed too.
    let needle = opts.rest.get("search").cloned();
    for r in 0..warmup + repeat {
        let mut c = Conn::connect(source_addr(r), opts.dst, opts.timeout).await?;
        c.login(&user, &opts.password).await?;
        let t0 = Instant::now();
        let sel = c.command("SELECT INBOX").await?;
        let t1 = Instant::now();
        let f = c.command("FETCH 1:* (FLAGS)").await?;
        let t2 = Instant::now();
        if let Some(n) = &needle {
            let s = c.command(&format!("SEARCH TEXT {}", quote(n))).await?;
            let ms = t2.elapsed().as_secs_f64() * 1000.0;
            found = s
                .untagged
                .iter()
                .filter_map(|l| l.strip_prefix("* SEARCH"))
                .map(|l| l.split_whitespace().count())
                .sum();
            if r == 0 {
                cold_search_ms = ms;
            }
            if r >= warmup {
                search_ms.push(ms);
            }
        }
        c.logout().await?;
        exists = sel.exists().unwrap_or(0);
        fetched = f.untagged.iter().filter(|l| l.contains("FETCH")).count();
        if r == 0 {
            cold_ms = (t1 - t0).as_secs_f64() * 1000.0;
            cold_fetch_ms = (t2 - t1).as_secs_f64() * 1000.0;
        }
        if r >= warmup {
            sel_ms.push((t1 - t0).as_secs_f64() * 1000.0);
            fetch_ms.push((t2 - t1).as_secs_f64() * 1000.0);
        }
    }
    let (s50, _) = median_and(&mut sel_ms, 1.0);
    let (f50, _) = median_and(&mut fetch_ms, 1.0);
    let q50 = if search_ms.is_empty() {
        -1.0
    } else {
        median_and(&mut search_ms, 1.0).0
    };
    Ok(format!(
        "{{\"mode\":\"big\",\"exists\":{exists},\"fetched\":{fetched},\"first_select_ms\":{cold_ms:.3},\"first_fetch_ms\":{cold_fetch_ms:.3},\"select_ms\":{s50:.3},\"fetch_ms\":{f50:.3},\
         \"found\":{found},\"first_search_ms\":{cold_search_ms:.3},\"search_ms\":{q50:.3},\
         \"select_all_ms\":{sel_ms:?},\"fetch_all_ms\":{fetch_ms:?}}}"
    ))
}

/// How `idle` and `hold` dial: `--tls 1` for an implicit-TLS port,
/// `--buffer B` bytes of read buffer per connection (16 KiB by default).
fn dial(opts: &Opts) -> Dial {
    Dial {
        tls: (opts.num("tls", 0) == 1).then(crate::tls::Client::new),
        buf: opts.num("buffer", 16 * 1024),
        timeout: opts.timeout,
    }
}

/// `idle`: N connections LOGIN, SELECT INBOX and IDLE; one JSON line when
/// all are idling. Then each standard-input line `wake` starts a clock and
/// waits (up to --wake-timeout seconds, 120 by default) until every idling
/// connection has been told of a new message (`* N EXISTS`; the harness
/// delivers one to each user right after writing the line), and prints a
/// second JSON line: how many were told, and when (ms after the line;
/// with --all-ms 1, every connection's figure as well).
/// Any other line, or the end of standard input, closes everything.
pub async fn idle(opts: &Opts) -> io::Result<String> {
    let n = opts.num("connections", 100);
    let ramp = Arc::new(Semaphore::new(opts.num("ramp", 100)));
    let d = dial(opts);
    let start = Instant::now();
    let woke_at: Arc<std::sync::OnceLock<Instant>> = Arc::default();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel();
    let (told_tx, mut told_rx) = tokio::sync::mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    for i in 0..n {
        let (ramp, dst, user, pw, d) = (ramp.clone(), opts.dst, opts.user(i), opts.password.clone(), d.clone());
        let (ready_tx, told_tx, woke_at, mut stop) = (ready_tx.clone(), told_tx.clone(), woke_at.clone(), stop_rx.clone());
        tokio::spawn(async move {
            let opened = async {
                let _permit = ramp.acquire_owned().await.map_err(io::Error::other)?;
                let mut c = Conn::dial(source_addr(i), dst, &d, "* OK").await?;
                c.login(&user, &pw).await?;
                c.command("SELECT INBOX").await?;
                c.idle().await?;
                Ok::<_, io::Error>(c)
            }
            .await;
            let mut c = match opened {
                Ok(c) => c,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                    return;
                }
            };
            let _ = ready_tx.send(Ok(()));
            tokio::select! {
                _ = stop.changed() => {}
                told = async {
                    loop {
                        c.wait_exists().await?;
                        if let Some(t) = woke_at.get() {
                            return Ok::<_, io::Error>(t.elapsed());
                        }
                    }
                } => {
                    if let Ok(after) = told {
                        let _ = told_tx.send(after);
                    }
                    let _ = stop.changed().await;
                }
            }
        });
    }
    let (mut idling, mut errors) = (0usize, Vec::new());
    for _ in 0..n {
        match ready_rx.recv().await {
            Some(Ok(())) => idling += 1,
            Some(Err(e)) => errors.push(e),
            None => break,
        }
    }
    println!(
        "{{\"mode\":\"idle\",\"connections\":{n},\"idling\":{idling},\"errors\":{},\"first_error\":{:?},\"secs\":{:.3}}}",
        errors.len(),
        errors.first().cloned().unwrap_or_default(),
        start.elapsed().as_secs_f64()
    );
    let wake_timeout = Duration::from_secs(opts.num("wake-timeout", 120) as u64);
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin());
    let mut line = String::new();
    // Hold the connections until the harness has measured the server.
    while tokio::time::timeout(Duration::from_secs(1800), stdin.read_line(&mut line)).await.is_ok_and(|r| r.is_ok_and(|n| n > 0))
        && line.trim() == "wake"
        && woke_at.get().is_none()
    {
        line.clear();
        let _ = woke_at.set(Instant::now());
        let mut ms = Vec::with_capacity(idling);
        let until = tokio::time::Instant::now() + wake_timeout;
        while ms.len() < idling {
            match tokio::time::timeout_at(until, told_rx.recv()).await {
                Ok(Some(after)) => ms.push(after.as_secs_f64() * 1000.0),
                _ => break,
            }
        }
        ms.sort_by(f64::total_cmp);
        let q = |f: f64| ms.get(((ms.len() as f64 * f) as usize).min(ms.len().saturating_sub(1))).copied().unwrap_or(0.0);
        // --all-ms 1: every figure too, for a harness that merges the
        // figures of several imap-load processes (bench/scale).
        let all = if opts.num("all-ms", 0) != 0 {
            let list: Vec<String> = ms.iter().map(|m| format!("{m:.1}")).collect();
            format!(",\"ms\":[{}]", list.join(","))
        } else {
            String::new()
        };
        println!(
            "{{\"mode\":\"wake\",\"idling\":{idling},\"told\":{},\"p50_ms\":{:.1},\"p99_ms\":{:.1},\"max_ms\":{:.1}{all}}}",
            ms.len(),
            q(0.5),
            q(0.99),
            ms.last().copied().unwrap_or(0.0)
        );
    }
    let _ = stop_tx.send(true);
    Ok(String::new())
}

/// `hold`: N connections to a POP3 (`--proto pop3`: greeting only, the
/// session left in its AUTHORIZATION state) or SMTP server (`--proto smtp`:
/// greeting and EHLO), held open; one JSON line when all are open, then
/// held until standard input gives a line or closes.
pub async fn hold(opts: &Opts) -> io::Result<String> {
    let n = opts.num("connections", 100);
    let smtp = match opts.rest.get("proto").map(String::as_str) {
        Some("smtp") => true,
        Some("pop3") => false,
        _ => return Err(io::Error::other("hold: --proto pop3|smtp")),
    };
    let ramp = Arc::new(Semaphore::new(opts.num("ramp", 100)));
    let d = dial(opts);
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let (ramp, dst, d) = (ramp.clone(), opts.dst, d.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = ramp.acquire_owned().await.map_err(io::Error::other)?;
            let mut c = Conn::dial(source_addr(i), dst, &d, if smtp { "220" } else { "+OK" }).await?;
            if smtp {
                c.say("EHLO load.bench.test", "250 ").await?;
            }
            Ok::<_, io::Error>(c)
        }));
    }
    let mut held = Vec::with_capacity(n);
    let mut errors = Vec::new();
    for t in tasks {
        match t.await.map_err(io::Error::other)? {
            Ok(c) => held.push(c),
            Err(e) => errors.push(e.to_string()),
        }
    }
    println!(
        "{{\"mode\":\"hold\",\"connections\":{n},\"open\":{},\"errors\":{},\"first_error\":{:?},\"secs\":{:.3}}}",
        held.len(),
        errors.len(),
        errors.first().cloned().unwrap_or_default(),
        start.elapsed().as_secs_f64()
    );
    let mut line = String::new();
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin());
    let _ = tokio::time::timeout(Duration::from_secs(1800), stdin.read_line(&mut line)).await;
    drop(held);
    Ok(String::new())
}
