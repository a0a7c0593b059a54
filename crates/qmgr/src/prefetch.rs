//! What a pickup read of a new message, kept for its first attempt.
//!
//! Pickup (on the lane, a blocking thread) reads a new message's queue
//! file to resolve its recipients; its first attempt, a few milliseconds
//! later, used to read the same file again on another trip to a blocking
//! thread. When pickup left the file as it found it (no recipient
//! rewritten), it now keeps that read here: the queue file as it is in
//! active/, which recipients are local, and a small message's bytes. The
//! attempt takes it instead of reading.
//!
//! It stays right because nothing else writes a message between its pickup
//! and its first attempt, except a control request (`facteurctl queue hold
//! ID`, `delete`, ...): the lane forgets the message's read before it
//! applies one (`lane::control`), and the scheduler never starts an attempt
//! while a request about that message waits (`scheduler.rs`). A read older
//! than [`MAX_AGE`] is not used (the directory may have changed meanwhile).
//!
//! Bounded: at most [`MAX_ENTRIES`] reads and [`MAX_BYTES`] of message
//! bytes; past that, pickup keeps nothing and the attempt reads as before.

use facteur_spool::QueueFile;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Reads kept at most.
pub const MAX_ENTRIES: usize = 256;
/// Message bytes kept at most, all reads together.
pub const MAX_BYTES: usize = 4 << 20;
/// A read older than this is dropped, not used.
pub const MAX_AGE: Duration = Duration::from_secs(10);

/// Which recipients are local, by index: `None` for a final recipient
/// (not tried), `Some(Err)` when the directory could not say.
pub type Locality = Vec<Option<Result<bool, String>>>;

/// What an attempt needs from its read of the queue file.
#[derive(Debug)]
pub struct Read {
    pub qf: QueueFile,
    pub local: Locality,
    /// The message (with its prepended fields) when it is small.
    pub held: Option<Vec<u8>>,
}

impl Read {
    fn bytes(&self) -> usize {
        self.held.as_ref().map_or(0, Vec::len)
    }
}

/// The kept reads, by queue id.
#[derive(Debug, Default)]
pub struct Prefetch {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    reads: HashMap<String, (Instant, Read)>,
    bytes: usize,
}

impl Inner {
    fn remove(&mut self, id: &str) -> Option<(Instant, Read)> {
        let r = self.reads.remove(id)?;
        self.bytes -= r.1.bytes();
        Some(r)
    }

    fn drop_old(&mut self, now: Instant) {
        let old: Vec<String> = self
            .reads
            .iter()
            .filter(|(_, (at, _))| now.duration_since(*at) > MAX_AGE)
            .map(|(id, _)| id.clone())
            .collect();
        for id in old {
            self.remove(&id);
        }
    }

    fn fits(&self, bytes: usize) -> bool {
        self.reads.len() < MAX_ENTRIES && self.bytes + bytes <= MAX_BYTES
    }
}

impl Prefetch {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding it leaves nothing half-done worth refusing.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a read of a message of `bytes` would be kept (pickup asks
    /// before it reads the message's bytes at all).
    pub fn has_room(&self, bytes: usize) -> bool {
        let mut g = self.lock();
        if !g.fits(bytes) {
            g.drop_old(Instant::now());
        }
        g.fits(bytes)
    }

    /// Keeps `read` for `id`'s first attempt, unless full (then the
    /// attempt reads the file itself).
    pub fn put(&self, id: String, read: Read) {
        let mut g = self.lock();
        let bytes = read.bytes();
        g.remove(&id);
        if !g.fits(bytes) {
            g.drop_old(Instant::now());
            if !g.fits(bytes) {
                return;
            }
        }
        g.bytes += bytes;
        g.reads.insert(id, (Instant::now(), read));
    }

    /// The read kept for `id`, if one younger than [`MAX_AGE`]; it is
    /// kept no more either way.
    pub fn take(&self, id: &str) -> Option<Read> {
        let (at, read) = self.lock().remove(id)?;
        (at.elapsed() <= MAX_AGE).then_some(read)
    }

    /// Drops what is kept for `id` (before a control request changes it).
    pub fn forget(&self, id: &str) {
        self.lock().remove(id);
    }

    /// Reads kept.
    pub fn len(&self) -> usize {
        self.lock().reads.len()
    }

    /// Nothing kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use facteur_spool::{Envelope, QueueName};

    fn read(bytes: usize) -> Read {
        Read {
            qf: QueueFile {
                queue: QueueName::Active,
                envelope: Envelope::default(),
                message_size: bytes as u64,
                path: "/nonexistent".into(),
            },
            local: vec![Some(Ok(true))],
            held: Some(vec![b'x'; bytes]),
        }
    }

    #[test]
    fn take_gives_it_once_and_forget_drops_it() {
        let p = Prefetch::default();
        p.put("A".into(), read(10));
        p.put("B".into(), read(10));
        assert_eq!(p.len(), 2);
        assert_eq!(p.take("A").unwrap().held.unwrap().len(), 10);
        assert!(p.take("A").is_none(), "taken twice");
        p.forget("B");
        assert!(p.take("B").is_none(), "forgotten, still given");
        assert!(p.is_empty());
        assert_eq!(p.lock().bytes, 0);
    }

    #[test]
    fn bounded_in_entries_and_bytes() {
        let p = Prefetch::default();
        for i in 0..MAX_ENTRIES + 10 {
            p.put(format!("E{i}"), read(1));
        }
        assert_eq!(p.len(), MAX_ENTRIES);
        assert!(!p.has_room(0));
        assert!(p.take(&format!("E{}", MAX_ENTRIES + 5)).is_none());

        let p = Prefetch::default();
        p.put("big".into(), read(MAX_BYTES - 100));
        assert!(p.has_room(100));
        assert!(!p.has_room(101));
        p.put("over".into(), read(101));
        assert!(p.take("over").is_none(), "kept past the byte bound");
        p.put("fits".into(), read(100));
        assert_eq!(p.lock().bytes, MAX_BYTES);
        assert!(p.take("big").is_some());
        assert!(p.has_room(MAX_BYTES - 100));
    }

    #[test]
    fn a_read_put_again_replaces_the_old_one_and_its_bytes() {
        let p = Prefetch::default();
        p.put("A".into(), read(1000));
        p.put("A".into(), read(10));
        assert_eq!(p.len(), 1);
        assert_eq!(p.lock().bytes, 10);
    }

    #[test]
    fn an_old_read_is_not_used_and_makes_room() {
        let p = Prefetch::default();
        p.put("A".into(), read(10));
        let past = Instant::now()
            .checked_sub(MAX_AGE + Duration::from_secs(1))
            .expect("the clock is past MAX_AGE");
        p.lock().reads.get_mut("A").unwrap().0 = past;
        assert!(p.take("A").is_none(), "a stale read was used");
        assert_eq!(p.lock().bytes, 0);

        for i in 0..MAX_ENTRIES {
            p.put(format!("E{i}"), read(1));
        }
        for (at, _) in p.lock().reads.values_mut() {
            *at = past;
        }
        assert!(p.has_room(1), "old reads kept taking room");
        assert!(p.is_empty());
    }
}
