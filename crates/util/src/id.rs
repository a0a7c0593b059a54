//! Short, unique, time-sortable identifiers for transactions and queue files.
//!
//! An id is 14 characters of Crockford base32 (digits and upper-case letters
//! without I, L, O, U): 11 encode the microseconds since the Unix epoch (so ids
//! sort by creation time, as text), 3 encode a per-process counter mixed with
//! the process id (so two processes, or two ids in one microsecond, differ).
//! Uniqueness across processes is probabilistic; users that need a guarantee
//! (queue files) also create their file with O_EXCL.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
static COUNTER: AtomicU32 = AtomicU32::new(0);

fn push_base32(out: &mut String, mut v: u64, digits: usize) {
    let mut buf = [0u8; 13];
    for i in (0..digits).rev() {
        buf[i] = ALPHABET[(v & 31) as usize];
        v >>= 5;
    }
    out.extend(buf[..digits].iter().map(|&b| b as char));
}

/// A new identifier.
pub fn new_id() -> String {
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let tail = (n.wrapping_mul(2654435761) ^ std::process::id().wrapping_mul(40503)) & 0x7fff;
    let mut s = String::with_capacity(14);
    push_base32(&mut s, micros, 11);
    push_base32(&mut s, tail as u64, 3);
    s
}

/// When an id was made (Unix seconds), from its first 11 characters;
/// `None` for a string that is not an id of [`new_id`].
pub fn id_time(id: &str) -> Option<i64> {
    let mut micros: u64 = 0;
    for b in id.get(..11)?.bytes() {
        let v = ALPHABET.iter().position(|&a| a == b)? as u64;
        micros = micros.checked_mul(32)?.checked_add(v)?;
    }
    i64::try_from(micros / 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_short_unique_and_sorted() {
        let ids: Vec<String> = (0..2000).map(|_| new_id()).collect();
        for w in ids.windows(2) {
            assert_eq!(w[0].len(), 14);
            assert!(w[0][..11] <= w[1][..11], "{} > {}", w[0], w[1]);
        }
        let set: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(set.len(), ids.len());
        assert!(ids[0].bytes().all(|b| ALPHABET.contains(&b)));
    }

    #[test]
    fn an_id_tells_when_it_was_made() {
        let before = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let t = id_time(&new_id()).unwrap();
        assert!((before..=before + 1).contains(&t), "{t} {before}");
        assert_eq!(id_time("short"), None);
        assert_eq!(id_time("IIIIIIIIIIIII0"), None);
    }
}
