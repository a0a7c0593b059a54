//! A process-wide cache of small messages' content, in CRLF form.
//!
//! Clients FETCH ENVELOPE, BODYSTRUCTURE and header fields of the same
//! messages again and again (a message list redrawn, several devices, a
//! webmail that logs in for each page); without this each of them opens,
//! reads and converts the message's file every time, and the `openat` of
//! message files was the largest cost of such FETCHes.
//!
//! An entry is keyed by the mailbox's directory and the message file's
//! base name (the name before `:`, which flag changes leave alone).
//! Message files are immutable (the crate's invariants): a base name in a
//! directory always names the same bytes, so an entry never goes stale,
//! and there is nothing to invalidate. An expunged message's entry is
//! never asked for again and goes in its turn.
//!
//! Bounded: messages of at most [`MAX_MESSAGE`] bytes, [`MAX_BYTES`] in all;
//! the oldest entries go first.
//!
//! An entry also keeps what a reader worked out from its bytes
//! ([`Content::derived`]: imapd's formatted ENVELOPE and BODYSTRUCTURE),
//! which goes with it; the reader bounds it by the entry's size.

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// The biggest message kept (CRLF bytes): bigger ones are read from their
/// files each time, as before (they are few, and a FETCH of their header
/// reads only its first kilobytes).
pub const MAX_MESSAGE: u64 = 64 * 1024;

/// Bytes of content kept in all, for the whole process.
pub const MAX_BYTES: usize = 16 << 20;

/// The cache.
#[derive(Default)]
pub(crate) struct Contents {
    inner: Mutex<Inner>,
}

/// Directory and base name as bytes: hashed whole, once each (a `Path`
/// hashes component by component, which showed in FETCH's profile).
type Key = Box<[u8]>;

#[derive(Default)]
struct Inner {
    /// Directory -> base name -> content.
    map: HashMap<Key, HashMap<Key, Arc<Kept>>>,
    /// Keys in the order they came in: the first goes first.
    order: VecDeque<(Key, Key)>,
    bytes: usize,
}

impl std::fmt::Debug for Contents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Contents")
    }
}

/// Message bytes in CRLF form, as the store hands them out: a whole
/// message, or its header block, shared with the cache without a copy.
#[derive(Clone)]
pub struct Content {
    kept: Arc<Kept>,
    len: usize,
}

/// The bytes of a message as read, and what a reader worked out from them.
struct Kept {
    bytes: Box<[u8]>,
    /// In the cache: [`Content::derived`] is worth keeping.
    cached: AtomicBool,
    derived: OnceLock<Box<dyn Any + Send + Sync>>,
}

impl Content {
    /// The first `len` bytes of `kept` (all of them if fewer).
    fn prefix(kept: Arc<Kept>, len: usize) -> Content {
        let len = len.min(kept.bytes.len());
        Content { kept, len }
    }

    /// The header block of this message (see [`header_of`]).
    pub(crate) fn header(self) -> Content {
        let len = header_of(&self).len();
        Content::prefix(self.kept, len)
    }

    /// What a reader works out from this message's bytes and keeps with
    /// them while the cache holds them (imapd: its formatted ENVELOPE and
    /// BODYSTRUCTURE): made by `make` the first time it is asked for. None
    /// for content the cache does not hold (read from its file each time),
    /// or if another type was kept first. The header block of a message
    /// shares its whole content's. The reader bounds what it keeps there.
    pub fn derived<T: Any + Send + Sync>(&self, make: impl FnOnce() -> T) -> Option<&T> {
        if !self.kept.cached.load(Ordering::Relaxed) {
            return None;
        }
        self.kept
            .derived
            .get_or_init(|| Box::new(make()))
            .downcast_ref::<T>()
    }
}

impl From<Vec<u8>> for Content {
    fn from(v: Vec<u8>) -> Content {
        let len = v.len();
        Content {
            kept: Arc::new(Kept {
                bytes: v.into(),
                cached: AtomicBool::new(false),
                derived: OnceLock::new(),
            }),
            len,
        }
    }
}

impl std::ops::Deref for Content {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.kept.bytes[..self.len]
    }
}

impl AsRef<[u8]> for Content {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl<T: AsRef<[u8]> + ?Sized> PartialEq<T> for Content {
    fn eq(&self, other: &T) -> bool {
        **self == *other.as_ref()
    }
}

impl std::fmt::Debug for Content {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Content({} bytes)", self.len)
    }
}

/// The part of a message file's name that never changes (before `:`).
fn base(file_name: &str) -> &[u8] {
    let name = file_name.as_bytes();
    memchr::memchr(b':', name).map_or(name, |i| &name[..i])
}

impl Contents {
    /// The content of the message in `dir` whose file is `file_name`, if
    /// kept.
    pub fn get(&self, dir: &Path, file_name: &str) -> Option<Content> {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let kept = g
            .map
            .get(dir.as_os_str().as_bytes())?
            .get(base(file_name))?;
        Some(Content::prefix(Arc::clone(kept), usize::MAX))
    }

    /// Keeps `content` (CRLF form) of the message in `dir` whose file is
    /// `file_name`, if it is small enough, dropping the oldest entries to
    /// stay within [`MAX_BYTES`].
    pub fn put(&self, dir: &Path, file_name: &str, content: &Content) {
        if content.len() as u64 > MAX_MESSAGE || content.len != content.kept.bytes.len() {
            return;
        }
        let key = base(file_name);
        let dir = dir.as_os_str().as_bytes();
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let inner = &mut *g;
        if !inner.map.contains_key(dir) {
            inner.map.insert(dir.into(), HashMap::new());
        }
        let Some(files) = inner.map.get_mut(dir) else {
            return;
        };
        if files.contains_key(key) {
            return;
        }
        content.kept.cached.store(true, Ordering::Relaxed);
        files.insert(key.into(), Arc::clone(&content.kept));
        inner.order.push_back((dir.into(), key.into()));
        inner.bytes += content.len();
        while inner.bytes > MAX_BYTES {
            let Some((d, k)) = inner.order.pop_front() else {
                break;
            };
            if let Some(files) = inner.map.get_mut(&d) {
                if let Some(c) = files.remove(&k) {
                    inner.bytes -= c.bytes.len();
                }
                if files.is_empty() {
                    inner.map.remove(&d);
                }
            }
        }
    }
}

/// The header block of a message in CRLF form: up to and with the empty
/// line that ends it, everything if no line is empty (what
/// `crlf::read_header` reads from a file).
pub(crate) fn header_of(crlf: &[u8]) -> &[u8] {
    if crlf.starts_with(b"\r\n") {
        return &crlf[..2];
    }
    match memchr::memmem::find(crlf, b"\r\n\r\n") {
        Some(i) => &crlf[..i + 4],
        None => crlf,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content(n: usize, fill: u8) -> Content {
        vec![fill; n].into()
    }

    #[test]
    fn an_entry_is_found_under_any_flags_of_its_file_and_only_in_its_directory() {
        let c = Contents::default();
        let a = Path::new("/m/a/u/cur");
        let b = Path::new("/m/b/u/cur");
        c.put(a, "1733400000.M1P2.host,S=5,W=6:2,S", &content(6, b'x'));
        assert_eq!(
            &*c.get(a, "1733400000.M1P2.host,S=5,W=6:2,").unwrap(),
            b"xxxxxx"
        );
        assert_eq!(
            &*c.get(a, "1733400000.M1P2.host,S=5,W=6").unwrap(),
            b"xxxxxx"
        );
        assert!(c.get(b, "1733400000.M1P2.host,S=5,W=6:2,S").is_none());
        assert!(c.get(a, "1733400000.M1P3.host,S=5,W=6:2,S").is_none());
    }

    #[test]
    fn big_messages_are_not_kept_and_the_oldest_go_past_the_bound() {
        let c = Contents::default();
        let d = Path::new("/m/a/u/cur");
        c.put(d, "big", &content(MAX_MESSAGE as usize + 1, b'b'));
        assert!(c.get(d, "big").is_none());
        let each = MAX_MESSAGE as usize;
        let fit = MAX_BYTES / each;
        for i in 0..=fit {
            c.put(d, &format!("m{i}"), &content(each, b'm'));
        }
        assert!(c.get(d, "m0").is_none(), "the first one went");
        assert!(c.get(d, "m1").is_some());
        assert!(c.get(d, &format!("m{fit}")).is_some());
        let g = c.inner.lock().unwrap();
        assert!(g.bytes <= MAX_BYTES);
        assert_eq!(g.bytes, fit * each);
        assert_eq!(g.order.len(), fit);
    }

    #[test]
    fn putting_a_kept_message_again_counts_it_once() {
        let c = Contents::default();
        let d = Path::new("/m/a/u/cur");
        c.put(d, "m:2,", &content(10, b'a'));
        c.put(d, "m:2,S", &content(10, b'a'));
        let g = c.inner.lock().unwrap();
        assert_eq!((g.bytes, g.order.len()), (10, 1));
    }

    #[test]
    fn a_header_is_the_start_of_its_message_and_is_not_kept_as_one() {
        let c = Contents::default();
        let d = Path::new("/m/a/u/cur");
        let whole = Content::from(b"A: 1\r\n\r\nbody\r\n".to_vec());
        let header = whole.clone().header();
        assert_eq!(&*header, b"A: 1\r\n\r\n");
        c.put(d, "h", &header);
        assert!(c.get(d, "h").is_none(), "a part is never taken for a whole");
        c.put(d, "h", &whole);
        assert_eq!(&*c.get(d, "h").unwrap().header(), b"A: 1\r\n\r\n");
    }

    #[test]
    fn what_is_derived_stays_with_a_kept_entry_only() {
        let c = Contents::default();
        let d = Path::new("/m/a/u/cur");
        let whole = Content::from(b"A: 1\r\n\r\nbody\r\n".to_vec());
        // Not in the cache: nothing is kept with it.
        assert!(whole.derived(|| 1u32).is_none());
        c.put(d, "m:2,", &whole);
        let made = std::cell::Cell::new(0);
        let make = || {
            made.set(made.get() + 1);
            7u32
        };
        // The reader's own copy, what the cache hands out later (under
        // other flags) and its header block share one.
        assert_eq!(whole.derived(make), Some(&7));
        assert_eq!(c.get(d, "m:2,S").unwrap().derived(make), Some(&7));
        assert_eq!(c.get(d, "m").unwrap().header().derived(make), Some(&7));
        assert_eq!(made.get(), 1);
        // Another type: none.
        assert!(c.get(d, "m").unwrap().derived(String::new).is_none());
        // Another message: its own.
        c.put(d, "n", &content(3, b'n'));
        assert_eq!(c.get(d, "n").unwrap().derived(|| 8u32), Some(&8));
    }

    #[test]
    fn the_header_of_a_message_ends_with_its_first_empty_line() {
        assert_eq!(
            header_of(b"A: 1\r\nB: 2\r\n\r\nbody\r\n\r\n"),
            b"A: 1\r\nB: 2\r\n\r\n"
        );
        assert_eq!(header_of(b"\r\nbody\r\n"), b"\r\n");
        assert_eq!(header_of(b"A: 1\r\n"), b"A: 1\r\n");
        assert_eq!(header_of(b""), b"");
    }
}
