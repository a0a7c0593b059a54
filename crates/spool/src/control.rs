//! Queue administration, the part every program may use: the operations
//! of `facteurctl queue` ([`Op`], [`apply`]), the control socket protocol
//! that lets a running qmgr do them itself (the client side [`request`],
//! the server's parsing and answers [`parse_request`], [`answer`]; qmgr's
//! listener is in `facteur-qmgr`'s `server.rs`), and the queue listing of
//! `mailq` and `facteurctl queue list` ([`list_queue`]). The protocol is
//! specified in `docs/qmgr-control.md`. It lives in the spool, the
//! contract between programs, so that facteurctl and sendmail use it
//! without depending on the queue manager.
//!
//! Why qmgr must do them when it runs: it moves files between active/ and
//! deferred/ at any time, and a message in active/ may be in the middle of a
//! delivery. qmgr runs each operation between two steps of its queue work
//! (never during one), and holds an operation on a message being delivered
//! until that attempt has recorded its results — so a deleted message is
//! never delivered afterwards, and a held one never leaves hold/ by itself.
//! A flush of all of deferred/ it does not run through [`apply`]: it
//! answers at once with the number of messages and moves them in the
//! background, as delivery slots free up (`facteur-qmgr`'s `lane.rs`).
//! With qmgr stopped nobody moves files, so `facteurctl` runs the same
//! [`apply`] on the spool directly.
//!
//! Operations (each durable before it is reported done, with the spool's
//! rename + fsync rules):
//! - `flush [ID]`: deferred/ → active/ with `next_attempt` reset (all of
//!   deferred/ without ID: the directories fsynced once, at the end, not
//!   twice per message); a running qmgr also forgets destination backoffs;
//! - `hold ID`: from maildrop/, incoming/, active/ or deferred/ to hold/;
//! - `release ID`: hold/ → incoming/ (recipients resolved again, which is
//!   idempotent; delivered at once);
//! - `delete ID`: removed from any queue directory (with its state), no
//!   bounce;
//! - `requeue ID`: back to incoming/ with `next_attempt` reset, so its
//!   recipients are resolved again (after an alias change) and it is tried
//!   at once;
//! - `aliases`: qmgr reads the system aliases file again now (what
//!   `newaliases` asks; it touches no message).
//!
//! The listing (`mailq`, `sendmail -bp`, `facteurctl queue list`) reads
//! every queue directory: id, queue, size, arrival, sender, and each
//! recipient with its status and last reply. A directory that cannot be
//! read is reported and the rest still listed; files that cannot be parsed
//! are shown with the reason, never skipped.
//!
//! Security: the control socket is mode 0600 in the run directory: only the
//! daemon's user and root may steer the queue. Queue ids are checked by the
//! spool before they touch a path. A request is one line of at most 4 KiB;
//! an answer is read up to 1 MiB. Listing needs read access to the queue
//! directories (root or the facteur user).

use crate::{QueueFile, QueueName, Spool, SpoolError};
use facteur_util::date::short as short_date;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::Path;
use std::time::Duration;

/// One queue operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Flush(Option<String>),
    Hold(String),
    Release(String),
    Delete(String),
    Requeue(String),
    /// `ALIASES`: read the system aliases file again now (newaliases).
    Aliases,
}

impl Op {
    /// The message it is about, if one.
    pub fn id(&self) -> Option<&str> {
        match self {
            Op::Flush(id) => id.as_deref(),
            Op::Aliases => None,
            Op::Hold(id) | Op::Release(id) | Op::Delete(id) | Op::Requeue(id) => Some(id),
        }
    }

    /// The request line.
    pub fn to_line(&self) -> String {
        match self {
            Op::Flush(None) => "FLUSH".into(),
            Op::Flush(Some(id)) => format!("FLUSH {id}"),
            Op::Hold(id) => format!("HOLD {id}"),
            Op::Release(id) => format!("RELEASE {id}"),
            Op::Delete(id) => format!("DELETE {id}"),
            Op::Requeue(id) => format!("REQUEUE {id}"),
            Op::Aliases => "ALIASES".into(),
        }
    }
}

/// Parses a request line (`VERB [ID]`).
pub fn parse_request(line: &str) -> Result<Op, String> {
    let mut it = line.split_ascii_whitespace();
    let verb = it.next().unwrap_or("").to_ascii_uppercase();
    let id = it.next().map(str::to_string);
    if it.next().is_some() {
        return Err("too many arguments".into());
    }
    if let Some(i) = &id
        && !crate::valid_queue_id(i)
    {
        return Err(format!("{i:?} is not a queue id"));
    }
    let need = |id: Option<String>| id.ok_or_else(|| format!("{verb} needs a queue id"));
    match verb.as_str() {
        "FLUSH" => Ok(Op::Flush(id)),
        "HOLD" => Ok(Op::Hold(need(id)?)),
        "RELEASE" => Ok(Op::Release(need(id)?)),
        "DELETE" => Ok(Op::Delete(need(id)?)),
        "REQUEUE" => Ok(Op::Requeue(need(id)?)),
        "ALIASES" if id.is_none() => Ok(Op::Aliases),
        "ALIASES" => Err("ALIASES takes no argument".into()),
        _ => Err(format!("unknown request {verb:?}")),
    }
}

fn find(spool: &Spool, id: &str) -> Result<QueueName, String> {
    for q in QueueName::ALL {
        if spool.dir(q).join(id).exists() {
            return Ok(q);
        }
    }
    Err(format!("{id}: no such message in the queue"))
}

fn err(id: &str, e: SpoolError) -> String {
    format!("{id}: {e}")
}

/// Resets `next_attempt` so the message is due now.
fn make_due(spool: &Spool, q: QueueName, id: &str) -> Result<(), String> {
    let qf = spool.read(q, id).map_err(|e| err(id, e))?;
    let mut env = qf.envelope;
    env.next_attempt = 0;
    spool.update(q, id, &env).map_err(|e| err(id, e))
}

/// Runs `op` on the spool. Blocking. The caller guarantees nobody else
/// moves the message meanwhile (see the module header). Returns what was
/// done, one line per message.
pub fn apply(spool: &Spool, op: &Op) -> Result<Vec<String>, String> {
    match op {
        Op::Flush(None) => {
            let ids = spool
                .list(QueueName::Deferred)
                .map_err(|e| format!("deferred/: {e}"))?;
            let mut out = Vec::new();
            let mut failed = Ok(());
            for id in ids {
                let moved = make_due(spool, QueueName::Deferred, &id).and_then(|()| {
                    spool
                        .relocate(&id, QueueName::Deferred, QueueName::Active)
                        .map_err(|e| err(&id, e))
                });
                if let Err(e) = moved {
                    failed = Err(e);
                    break;
                }
                out.push(format!("{id}: flushed"));
            }
            // One fsync of each directory for all the renames (each is
            // atomic; these make them durable before the answer).
            if !out.is_empty() {
                for q in [QueueName::Active, QueueName::Deferred] {
                    facteur_util::fsync_dir(&spool.dir(q)).map_err(|e| format!("{q}/: {e}"))?;
                }
            }
            failed?;
            if out.is_empty() {
                out.push("nothing deferred".into());
            }
            Ok(out)
        }
        Op::Flush(Some(id)) => match find(spool, id)? {
            QueueName::Deferred => {
                make_due(spool, QueueName::Deferred, id)?;
                spool
                    .move_to(id, QueueName::Deferred, QueueName::Active)
                    .map_err(|e| err(id, e))?;
                Ok(vec![format!("{id}: flushed")])
            }
            QueueName::Hold => Err(format!("{id}: on hold; release it first")),
            QueueName::Corrupt => Err(format!("{id}: in corrupt/, cannot be delivered")),
            q => Ok(vec![format!("{id}: already due ({q})")]),
        },
        Op::Hold(id) => match find(spool, id)? {
            QueueName::Hold => Ok(vec![format!("{id}: already on hold")]),
            QueueName::Corrupt => Err(format!("{id}: in corrupt/")),
            q => {
                spool
                    .move_to(id, q, QueueName::Hold)
                    .map_err(|e| err(id, e))?;
                Ok(vec![format!("{id}: held (was in {q}/)")])
            }
        },
        Op::Release(id) => match find(spool, id)? {
            QueueName::Hold => {
                make_due(spool, QueueName::Hold, id)?;
                spool
                    .move_to(id, QueueName::Hold, QueueName::Incoming)
                    .map_err(|e| err(id, e))?;
                Ok(vec![format!("{id}: released")])
            }
            q => Err(format!("{id}: not on hold (in {q}/)")),
        },
        Op::Delete(id) => {
            let q = find(spool, id)?;
            spool.remove(q, id).map_err(|e| err(id, e))?;
            Ok(vec![format!("{id}: deleted (was in {q}/)")])
        }
        Op::Requeue(id) => match find(spool, id)? {
            QueueName::Corrupt => Err(format!("{id}: in corrupt/")),
            QueueName::Hold => Err(format!("{id}: on hold; release it instead")),
            QueueName::Incoming | QueueName::Maildrop => {
                Ok(vec![format!("{id}: not yet picked up, nothing to do")])
            }
            q => {
                make_due(spool, q, id)?;
                spool
                    .move_to(id, q, QueueName::Incoming)
                    .map_err(|e| err(id, e))?;
                Ok(vec![format!("{id}: requeued")])
            }
        },
        // Without qmgr nobody holds the file: the next reader reads it.
        Op::Aliases => Ok(vec![
            "qmgr is not running; it reads the file when it starts".into(),
        ]),
    }
}

/// The client side: sends `op` to the qmgr control socket at `path`.
/// `Err(NotFound | ConnectionRefused)`: qmgr is not running there.
/// `Ok(Err(text))`: qmgr refused the operation.
pub fn request(path: &Path, op: &Op) -> io::Result<Result<Vec<String>, String>> {
    let mut s = std::os::unix::net::UnixStream::connect(path)?;
    s.set_read_timeout(Some(Duration::from_secs(120)))?;
    s.set_write_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(format!("{}\n", op.to_line()).as_bytes())?;
    let mut lines = Vec::new();
    let r = BufReader::new(s.take(1 << 20));
    for l in r.lines() {
        let l = l?;
        if let Some(rest) = l.strip_prefix("OK ") {
            lines.push(rest.to_string());
        } else if let Some(rest) = l.strip_prefix("DONE") {
            let _ = rest;
            return Ok(Ok(lines));
        } else if let Some(rest) = l.strip_prefix("ERR ") {
            return Ok(Err(rest.to_string()));
        }
    }
    Err(io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "qmgr closed the control connection without an answer",
    ))
}

/// The answer for a request: `OK line`... `DONE`, or `ERR text`.
pub fn answer(res: &Result<Vec<String>, String>) -> String {
    let one = |s: &str| s.replace(['\r', '\n'], " ");
    match res {
        Ok(lines) => {
            let mut a: String = lines.iter().map(|l| format!("OK {}\n", one(l))).collect();
            a.push_str("DONE\n");
            a
        }
        Err(e) => format!("ERR {}\n", one(e)),
    }
}

const INDENT: &str = "                                                   ";

fn entry(out: &mut impl Write, id: &str, q: QueueName, qf: &QueueFile) -> io::Result<()> {
    let e = &qf.envelope;
    let sender = if e.sender.is_empty() { "<>" } else { &e.sender };
    writeln!(
        out,
        "{id:<15} {:<8} {:>8} {} {sender}",
        q.as_str(),
        qf.message_size,
        short_date(e.arrival)
    )?;
    for r in &e.recipients {
        match &r.last_reply {
            Some(reply) => writeln!(out, "{INDENT}{} ({}: {reply})", r.address, r.status)?,
            None => writeln!(out, "{INDENT}{} ({})", r.address, r.status)?,
        }
    }
    writeln!(out)
}

/// Writes the listing of every queue directory to `out`, problems to
/// `err`. Returns whether every directory could be read.
pub fn list_queue(spool: &Spool, out: &mut impl Write, err: &mut impl Write) -> io::Result<bool> {
    let mut all_read = true;
    let mut count = 0u64;
    let mut bytes = 0u64;
    for q in QueueName::ALL {
        let ids = match spool.list(q) {
            Ok(ids) => ids,
            Err(e) => {
                writeln!(err, "mailq: cannot read {}: {e}", spool.dir(q).display())?;
                all_read = false;
                continue;
            }
        };
        for id in ids {
            if count == 0 {
                writeln!(
                    out,
                    "{:<15} {:<8} {:>8} {:<19} -Sender/Recipient-",
                    "-Queue ID-", "-Queue-", "--Size--", "---Arrival Time---"
                )?;
            }
            match spool.read(q, &id) {
                Ok(qf) => {
                    count += 1;
                    bytes += qf.message_size;
                    entry(out, &id, q, &qf)?;
                }
                // Removed or moved by qmgr while we listed.
                Err(SpoolError::NotFound(_)) => {}
                Err(e) => {
                    count += 1;
                    writeln!(out, "{id:<15} {:<8} (unreadable: {e})\n", q.as_str())?;
                }
            }
        }
    }
    if count == 0 {
        writeln!(out, "Mail queue is empty")?;
    } else {
        writeln!(
            out,
            "-- {} Kbytes in {count} Request{}.",
            bytes.div_ceil(1024),
            if count == 1 { "" } else { "s" }
        )?;
    }
    Ok(all_read)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
mod tests {
    use super::*;
    use crate::{Envelope, Recipient};
    use facteur_mail::dsn::RcptStatus;

    fn queued(spool: &Spool) -> String {
        let env = Envelope {
            sender: "s@x.test".into(),
            recipients: vec![Recipient::new("r@remote.test")],
            ..Envelope::default()
        };
        let mut w = spool.create(QueueName::Incoming, &env).unwrap();
        w.write_all(b"Subject: x\r\n\r\nbody\r\n").unwrap();
        w.commit().unwrap()
    }

    #[test]
    fn requests_parse() {
        assert_eq!(parse_request("flush").unwrap(), Op::Flush(None));
        assert_eq!(
            parse_request("HOLD ABC123").unwrap(),
            Op::Hold("ABC123".into())
        );
        assert!(parse_request("HOLD").is_err());
        assert!(parse_request("DELETE ../x").is_err());
        assert!(parse_request("EXPLODE").is_err());
        for op in [Op::Flush(Some("A1".into())), Op::Requeue("B2".into())] {
            assert_eq!(parse_request(&op.to_line()).unwrap(), op);
        }
    }

    #[test]
    fn operations_on_the_spool() {
        let d = tempfile::tempdir().unwrap();
        let spool = Spool::open(d.path()).unwrap();
        let id = queued(&spool);
        spool
            .move_to(&id, QueueName::Incoming, QueueName::Deferred)
            .unwrap();
        let mut env = spool.read(QueueName::Deferred, &id).unwrap().envelope;
        env.next_attempt = i64::MAX;
        spool.update(QueueName::Deferred, &id, &env).unwrap();

        apply(&spool, &Op::Hold(id.clone())).unwrap();
        assert!(spool.read(QueueName::Hold, &id).is_ok());
        assert!(apply(&spool, &Op::Flush(Some(id.clone()))).is_err());
        assert!(apply(&spool, &Op::Requeue(id.clone())).is_err());
        apply(&spool, &Op::Release(id.clone())).unwrap();
        let qf = spool.read(QueueName::Incoming, &id).unwrap();
        assert_eq!(qf.envelope.next_attempt, 0);
        spool
            .move_to(&id, QueueName::Incoming, QueueName::Deferred)
            .unwrap();
        assert_eq!(
            apply(&spool, &Op::Flush(None)).unwrap(),
            vec![format!("{id}: flushed")]
        );
        assert!(spool.read(QueueName::Active, &id).is_ok());
        apply(&spool, &Op::Requeue(id.clone())).unwrap();
        assert!(spool.read(QueueName::Incoming, &id).is_ok());
        apply(&spool, &Op::Delete(id.clone())).unwrap();
        assert!(apply(&spool, &Op::Delete(id.clone())).is_err());
        assert!(spool.find(&id).is_err());
    }

    #[test]
    fn answers() {
        assert_eq!(answer(&Ok(vec!["a\nb".into()])), "OK a b\nDONE\n");
        assert_eq!(answer(&Err("no".into())), "ERR no\n");
    }

    #[test]
    fn lists_every_queue_with_statuses() {
        let d = tempfile::tempdir().unwrap();
        let spool = Spool::open(d.path()).unwrap();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        assert!(list_queue(&spool, &mut out, &mut err).unwrap());
        assert_eq!(String::from_utf8(out).unwrap(), "Mail queue is empty\n");

        let env = Envelope {
            sender: "".into(),
            recipients: vec![Recipient::new("a@x.example"), Recipient::new("b@x.example")],
            arrival: 1_700_000_000,
            ..Envelope::default()
        };
        let mut w = spool.create(QueueName::Maildrop, &env).unwrap();
        w.write_all(&[b'x'; 2000]).unwrap();
        let id = w.commit().unwrap();
        spool
            .move_to(&id, QueueName::Maildrop, QueueName::Deferred)
            .unwrap();
        let mut e = spool.read(QueueName::Deferred, &id).unwrap().envelope;
        e.recipients[1].status = RcptStatus::Deferred;
        e.recipients[1].last_reply = Some("451 4.4.1 host down".into());
        spool.update(QueueName::Deferred, &id, &e).unwrap();
        std::fs::write(spool.dir(QueueName::Corrupt).join("BAD"), b"junk").unwrap();

        let (mut out, mut err) = (Vec::new(), Vec::new());
        assert!(list_queue(&spool, &mut out, &mut err).unwrap());
        let out = String::from_utf8(out).unwrap();
        assert!(
            out.contains(&format!(
                "{id:<15} deferred     2000 2023-11-14 22:13:20 <>"
            )),
            "{out}"
        );
        assert!(out.contains("a@x.example (pending)"), "{out}");
        assert!(
            out.contains("b@x.example (deferred: 451 4.4.1 host down)"),
            "{out}"
        );
        assert!(
            out.contains("BAD             corrupt  (unreadable: corrupt queue file"),
            "{out}"
        );
        assert!(out.ends_with("-- 2 Kbytes in 2 Requests.\n"), "{out}");
        assert!(err.is_empty());
    }
}
