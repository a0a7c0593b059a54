//! `facteurctl queue ...`: the administrator's view of the mail queue and
//! the levers on it.
//!
//! `list` and `show` only read the spool (safe at any time; a file moved
//! while we read is skipped or reported). The operations go to the running
//! facteur-qmgr over its control socket (`qmgr.control_socket`, protocol in
//! `docs/qmgr-control.md`), which applies them between scans and after any
//! delivery in progress. When no qmgr runs (nothing listens on either of
//! its sockets) they are applied to the spool directly with the same code;
//! when qmgr runs but its control socket does not answer, nothing is done
//! and the command says why.

use crate::cli::QueueAction;
use anyhow::{Context as _, bail};
use facteur_config::Config;
use facteur_spool::control::{self, Op};
use facteur_spool::{QueueName, Spool};
use std::io::{self, Read};

/// Runs one queue command; returns the exit code.
pub fn run(cfg: &Config, action: QueueAction) -> anyhow::Result<u8> {
    let spool = Spool::open(&cfg.paths.spool_dir)
        .with_context(|| format!("spool {}", cfg.paths.spool_dir.display()))?;
    match action {
        QueueAction::List => {
            let ok =
                control::list_queue(&spool, &mut io::stdout().lock(), &mut io::stderr().lock())?;
            Ok(if ok { 0 } else { 1 })
        }
        QueueAction::Show { id } => show(&spool, &id).map(|_| 0),
        QueueAction::Flush { id } => ops(cfg, &spool, vec![Op::Flush(id)]),
        QueueAction::Hold { id } => ops(cfg, &spool, vec![Op::Hold(id)]),
        QueueAction::Release { id } => ops(cfg, &spool, vec![Op::Release(id)]),
        QueueAction::Requeue { id } => ops(cfg, &spool, vec![Op::Requeue(id)]),
        QueueAction::Delete { ids, from } => {
            let mut all = ids;
            if let Some(f) = from {
                let want = if f == "<>" { String::new() } else { f };
                all.extend(by_sender(&spool, &want));
                if all.is_empty() {
                    println!("no message from <{want}> in the queue");
                    return Ok(0);
                }
            }
            if all.is_empty() {
                bail!("queue delete: give queue ids, or --from ADDR");
            }
            ops(cfg, &spool, all.into_iter().map(Op::Delete).collect())
        }
    }
}

/// Ids of the messages whose envelope sender is `sender` (any case).
fn by_sender(spool: &Spool, sender: &str) -> Vec<String> {
    let mut out = Vec::new();
    for q in QueueName::ALL {
        for id in spool.list(q).unwrap_or_default() {
            if let Ok(qf) = spool.read(q, &id)
                && qf.envelope.sender.eq_ignore_ascii_case(sender)
            {
                out.push(id);
            }
        }
    }
    out
}

/// Whether a qmgr is bound to the wake-up socket.
fn qmgr_running(cfg: &Config) -> bool {
    std::os::unix::net::UnixDatagram::unbound()
        .and_then(|s| s.connect(cfg.qmgr_socket()))
        .is_ok()
}

fn ops(cfg: &Config, spool: &Spool, ops: Vec<Op>) -> anyhow::Result<u8> {
    let sock = cfg.qmgr_control_socket();
    let mut status = 0;
    let mut offline_said = false;
    for op in ops {
        let res = match control::request(&sock, &op) {
            Ok(r) => r,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
                ) =>
            {
                if qmgr_running(cfg) {
                    bail!(
                        "facteur-qmgr is running but its control socket {} does not answer ({e}); nothing done",
                        sock.display()
                    );
                }
                if !offline_said {
                    eprintln!("facteur-qmgr is not running: acting on the spool directly");
                    offline_said = true;
                }
                control::apply(spool, &op)
            }
            Err(e) => bail!("{}: {e}", sock.display()),
        };
        match res {
            Ok(lines) => lines.iter().for_each(|l| println!("{l}")),
            Err(e) => {
                eprintln!("{e}");
                status = 1;
            }
        }
    }
    Ok(status)
}

/// Envelope, recipients and the message header.
fn show(spool: &Spool, id: &str) -> anyhow::Result<()> {
    if !facteur_spool::valid_queue_id(id) {
        bail!("{id:?} is not a queue id");
    }
    let qf = spool.find(id).with_context(|| format!("queue id {id}"))?;
    let e = &qf.envelope;
    println!("queue id:     {id}");
    println!("queue:        {}", qf.queue);
    println!("size:         {}", qf.message_size);
    println!("arrival:      {}", facteur_util::date::short(e.arrival));
    println!("sender:       <{}>", e.sender);
    if let Some(p) = &e.protocol {
        println!("protocol:     {p}");
    }
    if let Some(c) = &e.client_addr {
        println!("client:       {c}");
    }
    if let Some(u) = e.auth_user.as_ref().or(e.local_user.as_ref()) {
        println!("submitted by: {u}");
    }
    println!("attempts:     {}", e.attempts);
    if e.next_attempt > 0 {
        println!(
            "next attempt: {}",
            facteur_util::date::short(e.next_attempt)
        );
    }
    for r in &e.recipients {
        println!(
            "recipient:    <{}> {}{}",
            r.address,
            r.status,
            r.last_reply
                .as_deref()
                .map(|l| format!(": {l}"))
                .unwrap_or_default()
        );
    }
    println!();
    let mut head = Vec::new();
    spool
        .open_message(qf.queue, id)?
        .take(64 * 1024)
        .read_to_end(&mut head)?;
    let end = head
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 2)
        .unwrap_or(head.len());
    print!(
        "{}",
        String::from_utf8_lossy(&head[..end]).replace("\r\n", "\n")
    );
    Ok(())
}
