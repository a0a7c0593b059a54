//! The POP3 size of each message: its octets as RETR sends them, CRLF line
//! endings and dot-stuffing included, kept in a per-user cache file.
//!
//! Why: STAT and LIST must announce, before any RETR, exactly what RETR will
//! send. The store knows each message's CRLF size (in its index) but not how
//! many of its lines start with a dot, so the stuffed size needs one pass
//! over the message. A pass over every message at every login would read
//! the whole mailbox each time; instead a message is measured once in its
//! life (files are immutable, and a UID never names another message within
//! one UIDVALIDITY), and the result is kept in `<user dir>/facteur-pop3-sizes`.
//! A login then reads only the messages delivered since the last one.
//!
//! Measuring streams the message through the same [`DotStuffer`] that RETR
//! uses ([`measure`]), in 64 KiB chunks, counting only.
//!
//! Format (version 1), text, one record per line:
//!
//! ```text
//!   facteur-pop3-sizes 1 <uidvalidity>
//!   <uid> <size>
//!   ...
//!   end <number of records>
//! ```
//!
//! The cache is only a cache: a missing, foreign, truncated or malformed file
//! (no `end` line, or a count that does not match), or one for another
//! UIDVALIDITY, is ignored as a whole and rebuilt. It is written atomically
//! (temporary file, fsync, rename) by the session that holds the POP3 lock,
//! so two writers never race. RETR checks the count it actually sent against
//! the announced one and logs a mismatch.

use facteur_pop3_proto::DotStuffer;
use std::collections::HashMap;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// The cache file's name in the user's directory.
pub const FILE_NAME: &str = "facteur-pop3-sizes";
const MAGIC: &str = "facteur-pop3-sizes 1";

/// The cache file of a user directory.
pub fn path(user_dir: &Path) -> PathBuf {
    user_dir.join(FILE_NAME)
}

/// Parses the cache text; `None` if it is not a complete version-1 cache
/// for `uidvalidity`.
pub fn parse(text: &str, uidvalidity: u32) -> Option<HashMap<u32, u64>> {
    let mut lines = text.split_inclusive('\n');
    let head = lines.next()?.strip_suffix('\n')?;
    let v: u32 = head.strip_prefix(MAGIC)?.strip_prefix(' ')?.parse().ok()?;
    if v != uidvalidity {
        return None;
    }
    let mut map = HashMap::new();
    for l in lines {
        let l = l.strip_suffix('\n')?;
        if let Some(n) = l.strip_prefix("end ") {
            let n: usize = n.parse().ok()?;
            return (n == map.len()).then_some(map);
        }
        let (uid, size) = l.split_once(' ')?;
        map.insert(uid.parse().ok()?, size.parse().ok()?);
    }
    None
}

/// The cache text for `sizes` (sorted by UID).
pub fn format(uidvalidity: u32, sizes: &[(u32, u64)]) -> String {
    let mut s = format!("{MAGIC} {uidvalidity}\n");
    for (uid, size) in sizes {
        s.push_str(&format!("{uid} {size}\n"));
    }
    s.push_str(&format!("end {}\n", sizes.len()));
    s
}

/// Reads the cache of `user_dir`; empty when there is none or it is unfit.
pub fn load(user_dir: &Path, uidvalidity: u32) -> HashMap<u32, u64> {
    std::fs::read_to_string(path(user_dir))
        .ok()
        .and_then(|t| parse(&t, uidvalidity))
        .unwrap_or_default()
}

/// Writes the cache of `user_dir`.
pub fn save(user_dir: &Path, uidvalidity: u32, sizes: &[(u32, u64)]) -> io::Result<()> {
    facteur_util::write_atomic(
        &path(user_dir),
        format(uidvalidity, sizes).as_bytes(),
        0o600,
    )
}

/// The POP3 size of a message: streams it once through the dot-stuffer,
/// counting.
pub fn measure(mut message: impl Read) -> io::Result<u64> {
    let mut stuffer = DotStuffer::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match message.read(&mut buf) {
            Ok(0) => return Ok(stuffer.message_len()),
            Ok(n) => stuffer.measure(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let sizes = [(1, 120), (7, 3), (4_000_000_000, 1 << 40)];
        let text = format(42, &sizes);
        let map = parse(&text, 42).unwrap();
        assert_eq!(map.len(), 3);
        assert_eq!(map[&7], 3);
        assert_eq!(map[&4_000_000_000], 1 << 40);
        assert!(parse(&text, 43).is_none(), "other UIDVALIDITY");
        // Truncated anywhere: refused as a whole.
        for cut in 0..text.len() {
            assert!(parse(&text[..cut], 42).is_none(), "cut at {cut}");
        }
        assert!(parse(&text.replace("end 3", "end 2"), 42).is_none());
        assert!(parse(&text.replace("7 3", "7 x"), 42).is_none());
        assert!(parse("garbage\n", 42).is_none());
        assert_eq!(parse(&format(1, &[]), 1).unwrap().len(), 0);
    }

    #[test]
    fn save_load_measure() {
        let d = tempfile::tempdir().unwrap();
        assert!(load(d.path(), 5).is_empty());
        save(d.path(), 5, &[(1, 10)]).unwrap();
        assert_eq!(load(d.path(), 5)[&1], 10);
        assert!(load(d.path(), 6).is_empty());
        assert_eq!(measure(&b"a\r\n.b\r\n"[..]).unwrap(), 8);
        assert_eq!(measure(&b"a"[..]).unwrap(), 3);
        assert_eq!(measure(&b""[..]).unwrap(), 0);
    }
}
