//! The mutable delivery state: [`Spool::update`] appends a checksummed
//! frame to `state/<id>.state` (docs/queue-file.md, "Mutable state" and
//! "State file"), reusing a kept state file for a message's first update
//! (recycle.rs).

use super::recycle::sole_name;
use super::{FILE_MODE, STATE_DIR, invalid_input};
use crate::format;
use crate::{Envelope, QueueName, Result, Spool};
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;

impl Spool {
    /// Durably replaces the mutable state (recipients' status and last
    /// reply, attempts, next attempt, delay notified). `env` must have the
    /// same recipients, in the same order, as the file.
    pub fn update(&self, q: QueueName, id: &str, env: &Envelope) -> Result<()> {
        let (_, parsed, _) = self.parse(q, id)?;
        let old = &parsed.envelope.recipients;
        if old.len() != env.recipients.len()
            || old
                .iter()
                .zip(&env.recipients)
                .any(|(a, b)| a.address != b.address)
        {
            return Err(invalid_input(format!(
                "update of {id}: the recipient list differs (use rewrite_recipients)"
            )));
        }
        let data = format::encode_state(env, parsed.nonce)?;
        let path = self.state_path(id);
        let frame = state_frame(&data);
        // Append to the state log while it is small and intact: one write
        // and one fdatasync, no new inode, no directory fsync (a new state
        // file per update cost the qmgr most of its CPU in ext4 inode
        // allocation). A log whose tail a crash cut is rewritten instead,
        // so no frame ever follows a broken one.
        let intact = match fs::read(&path) {
            Ok(old) => {
                old.len() + frame.len() <= MAX_STATE_LOG as usize
                    && framed_state(&old).is_some_and(|(_, clean)| clean)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // The first update: a state file of a delivered message is
                // reused when there is one (creating an inode per message
                // was most of the qmgr's kernel time), else one is created
                // in place (no temporary name). Either way a crash mid-write
                // leaves a file with no intact frame of this message (the
                // frames of the file's previous message have another
                // nonce), read as "no state yet" — what there was.
                if let Some(free) = self.take_free_state()
                    && fs::rename(&free, &path).is_ok()
                {
                    let mut f = OpenOptions::new()
                        .write(true)
                        .custom_flags(libc::O_NOFOLLOW)
                        .open(&path)?;
                    if sole_name(&f) {
                        f.set_len(0)?;
                        f.write_all(&frame)?;
                        f.sync_data()?;
                        facteur_util::fsync_dir(&self.root.join(STATE_DIR))?;
                        return Ok(());
                    }
                    // Another message's state file too: not ours to cut.
                    drop(f);
                    fs::remove_file(&path)?;
                }
                match OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(FILE_MODE)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&path)
                {
                    Ok(mut f) => {
                        f.write_all(&frame)?;
                        f.sync_data()?;
                        facteur_util::fsync_dir(&self.root.join(STATE_DIR))?;
                        return Ok(());
                    }
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) => return Err(e.into()),
        };
        if intact {
            let mut f = OpenOptions::new()
                .append(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&path)?;
            f.write_all(&frame)?;
            f.sync_data()?;
            return Ok(());
        }
        // First update, or a log grown long: a fresh log of one frame.
        facteur_util::write_atomic(&path, &frame, FILE_MODE)?;
        Ok(())
    }
}

/// The state log is rewritten whole past this size.
const MAX_STATE_LOG: u64 = 64 * 1024;
/// Starts every frame of a state log (docs/queue-file.md, "State file").
const FRAME_MAGIC: &[u8; 4] = b"FQSL";

/// `FQSL` length:u32 checksum:u64 payload, big-endian; the checksum is
/// FNV-1a over the payload (it detects a frame cut by a crash, not an
/// adversary: the spool is private to facteur).
pub(super) fn state_frame(payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(payload.len() + 16);
    f.extend_from_slice(FRAME_MAGIC);
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    f.extend_from_slice(&fnv1a(payload).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn fnv1a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The payload of the last intact frame of a state log (`Err` if none is)
/// and whether the frames cover the whole file; `None` if `data` is not a
/// state log.
pub(super) fn framed_state(data: &[u8]) -> Option<(std::result::Result<&[u8], ()>, bool)> {
    if data.len() < FRAME_MAGIC.len() && FRAME_MAGIC.starts_with(data) {
        // An empty file, or one cut inside the first frame's magic: the
        // first write (into a file created for it) did not finish. Found
        // by a helper's spool_state fuzz target: this was read as a
        // corrupt whole-file state.
        return Some((Err(()), data.is_empty()));
    }
    if !data.starts_with(FRAME_MAGIC) {
        return None;
    }
    let mut last = Err(());
    let mut rest = data;
    while rest.len() >= 16 && rest.starts_with(FRAME_MAGIC) {
        let len = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]) as usize;
        let sum = u64::from_be_bytes([
            rest[8], rest[9], rest[10], rest[11], rest[12], rest[13], rest[14], rest[15],
        ]);
        let Some(payload) = rest.get(16..16 + len) else {
            break;
        };
        if fnv1a(payload) != sum {
            break;
        }
        last = Ok(payload);
        rest = &rest[16 + len..];
    }
    Some((last, rest.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::testutil::*;
    use facteur_mail::dsn::RcptStatus;

    #[test]
    fn frames_torn_tails_and_old_files() {
        let a = state_frame(b"first");
        let b = state_frame(b"second");
        let mut log = [a.clone(), b.clone()].concat();
        assert_eq!(framed_state(&log), Some((Ok(&b"second"[..]), true)));
        // A crash in the middle of the second frame: the first one holds.
        for cut in a.len()..log.len() {
            let (last, clean) = framed_state(&log[..cut]).unwrap_or((Err(()), false));
            assert_eq!(last, Ok(&b"first"[..]), "cut at {cut}");
            assert_eq!(clean, cut == a.len());
        }
        // A crash during the very first write: no state at all.
        for cut in 4..a.len() {
            assert_eq!(framed_state(&a[..cut]).map(|x| x.0), Some(Err(())));
        }
        // A flipped byte in the last frame is caught by the checksum.
        let n = log.len() - 1;
        log[n] ^= 1;
        assert_eq!(framed_state(&log), Some((Ok(&b"first"[..]), false)));
        // Not a log (a whole-file state of the first format).
        assert_eq!(framed_state(b"\x89FQS...."), None);
        // A first write cut inside the magic, or before any byte: no
        // state yet, not a corrupt file.
        for cut in 0..4 {
            assert_eq!(
                framed_state(&log[..cut]),
                Some((Err(()), cut == 0)),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn update_is_durable_and_follows_moves() {
        let (d, spool) = temp_spool();
        let id = put(&spool, QueueName::Incoming, b"m\r\n");
        spool
            .move_to(&id, QueueName::Incoming, QueueName::Active)
            .unwrap();
        let mut e = spool.read(QueueName::Active, &id).unwrap().envelope;
        e.recipients[0].status = RcptStatus::Delivered;
        e.recipients[0].last_reply = Some("250 2.0.0 ok".into());
        e.recipients[1].status = RcptStatus::Deferred;
        e.recipients[1].last_reply = Some("451 4.4.1 no answer".into());
        e.attempts = 1;
        e.next_attempt = 1_700_000_600;
        e.delay_notified = true;
        spool.update(QueueName::Active, &id, &e).unwrap();
        // A fresh handle sees it (nothing cached).
        let again = Spool::open(d.path()).unwrap();
        assert_eq!(again.read(QueueName::Active, &id).unwrap().envelope, e);
        again
            .move_to(&id, QueueName::Active, QueueName::Deferred)
            .unwrap();
        assert_eq!(again.read(QueueName::Deferred, &id).unwrap().envelope, e);
        assert!(matches!(
            again.read(QueueName::Active, &id),
            Err(SpoolError::NotFound(_))
        ));
        assert_eq!(message(&again, QueueName::Deferred, &id), b"m\r\n");
        // A different recipient list is refused.
        let mut wrong = e.clone();
        wrong.recipients.pop();
        assert!(spool.update(QueueName::Deferred, &id, &wrong).is_err());
        // remove takes the state file along.
        spool.remove(QueueName::Deferred, &id).unwrap();
        assert!(!spool.state_path(&id).exists());
        assert!(matches!(
            spool.remove(QueueName::Deferred, &id),
            Err(SpoolError::NotFound(_))
        ));
        assert!(matches!(
            spool.move_to(&id, QueueName::Deferred, QueueName::Hold),
            Err(SpoolError::NotFound(_))
        ));
    }
}
