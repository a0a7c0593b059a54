//! DKIM signing as a message leaves for another server (why there and not
//! at the queue's entrance: `facteur_trust::sign`). Remote delivery reads
//! the message through an [`Opener`]; [`signed_opener`] puts the
//! `DKIM-Signature` fields above what it reads. Ours to sign: mail from a
//! login, from sendmail, qmgr's own notices, and what `smtpd.mynetworks`
//! relays (as OpenDKIM signs for its internal hosts).
//!
//! Bounds: each message being signed is read whole into memory, at most
//! `trust.outgoing.max_parallel` at once (default: one per core), on
//! blocking threads. A message that cannot be signed (a key file that
//! cannot be read, say) leaves unsigned, with an error in the log: an
//! unsigned message still passes DMARC through SPF where the domain's SPF
//! lists this server, where a stuck queue would stop all mail.

use crate::Context;
use crate::schedule::now;
use facteur_smtp_client::Opener;
use facteur_spool::{Envelope, QueueName};
use std::io::{Cursor, Read};
use std::sync::Arc;
use tracing::{error, info};

/// The signer and its gate (`Context::dkim`).
#[derive(Debug)]
pub struct Dkim {
    pub signer: facteur_trust::sign::Signer,
    gate: Arc<tokio::sync::Semaphore>,
}

impl Dkim {
    /// From `[trust.outgoing]`; `None` when signing is off.
    pub fn from_config(cfg: &facteur_config::Config) -> Option<Dkim> {
        let o = &cfg.trust.outgoing;
        if !o.sign {
            return None;
        }
        let n = match o.max_parallel {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n as usize,
        };
        Some(Dkim {
            signer: facteur_trust::sign::Signer::new(cfg.dkim_dir()),
            gate: Arc::new(tokio::sync::Semaphore::new(n)),
        })
    }
}

/// The `DKIM-Signature` fields for message `id` (in active/), or nothing
/// when it is not ours ([`Context::is_ours`]), signing is off or its domain has no keys.
pub async fn fields(ctx: &Arc<Context>, id: &str, env: &Envelope) -> Vec<u8> {
    let Some(dkim) = &ctx.dkim else {
        return Vec::new();
    };
    if !ctx.is_ours(env) {
        return Vec::new();
    }
    let Ok(_permit) = Arc::clone(&dkim.gate).acquire_owned().await else {
        return Vec::new();
    };
    let (c, i) = (Arc::clone(ctx), id.to_string());
    let job = tokio::task::spawn_blocking(move || -> Result<_, String> {
        let mut msg = Vec::new();
        c.spool
            .open_message(QueueName::Active, &i)
            .map_err(|e| e.to_string())?
            .read_to_end(&mut msg)
            .map_err(|e| e.to_string())?;
        let Some(d) = c.dkim.as_ref() else {
            return Ok(None);
        };
        d.signer.sign(&msg, now()).map_err(|e| e.to_string())
    });
    match job.await {
        Ok(Ok(Some(s))) => {
            info!(queue_id = %id, domain = %s.domain, selectors = %s.selectors.join(","), "DKIM-signed");
            s.fields
        }
        Ok(Ok(None)) => Vec::new(),
        Ok(Err(e)) => {
            error!(queue_id = %id, error = %e, "cannot DKIM-sign: the message leaves unsigned");
            Vec::new()
        }
        Err(e) => {
            error!(queue_id = %id, error = %e, "cannot DKIM-sign: the message leaves unsigned");
            Vec::new()
        }
    }
}

/// `open` with `fields` above what it reads.
pub fn signed_opener(open: &Opener, fields: Vec<u8>) -> Opener {
    if fields.is_empty() {
        return Arc::clone(open);
    }
    let (open, fields): (Opener, Arc<[u8]>) = (Arc::clone(open), fields.into());
    Arc::new(move || {
        let rest = open()?;
        Ok(Box::new(Cursor::new(Arc::clone(&fields)).chain(rest)) as Box<dyn Read + Send>)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fields_come_first_at_every_open() {
        let open: Opener = Arc::new(|| {
            Ok(
                Box::new(Cursor::new(b"Subject: x\r\n\r\nbody\r\n".to_vec()))
                    as Box<dyn Read + Send>,
            )
        });
        let o = signed_opener(&open, b"DKIM-Signature: v=1\r\n".to_vec());
        for _ in 0..2 {
            let mut s = String::new();
            o().unwrap().read_to_string(&mut s).unwrap();
            assert_eq!(s, "DKIM-Signature: v=1\r\nSubject: x\r\n\r\nbody\r\n");
        }
        let mut s = String::new();
        signed_opener(&open, Vec::new())()
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        assert_eq!(s, "Subject: x\r\n\r\nbody\r\n");
    }
}
