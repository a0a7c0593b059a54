//! `sendmail -bp` / `mailq`: lists every queue directory: id, queue, size,
//! arrival, sender, and each recipient with its status and last reply.
//!
//! Needs read access to the queue directories (root or the facteur user);
//! a directory that cannot be read is reported and the rest still listed.
//! Files that cannot be parsed are shown with the reason, never skipped.

use facteur_spool::{QueueFile, QueueName, Spool, SpoolError};
use facteur_util::date::short as short_date;
use std::io::{self, Write};

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

/// Writes the listing to `out`, problems to `err`. Returns whether every
/// directory could be read.
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
mod tests {
    use super::*;
    use facteur_mail::dsn::RcptStatus;
    use facteur_spool::{Envelope, Recipient};

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
