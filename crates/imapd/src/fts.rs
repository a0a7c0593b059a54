//! The full-text index: SEARCH BODY and TEXT answered without reading
//! every message.
//!
//! What it is: for each message, a signature of the trigrams (three-byte
//! windows) of the lower-cased texts BODY and TEXT look in
//! (`Message::search_texts`: the decoded header, decoded text parts and
//! text attachments in their charsets, forwarded messages' headers). A
//! needle's trigrams must all be in a message that contains it, so a
//! message whose signature lacks one of them cannot match, and is not read.
//! The others are read and matched as before: the index only leaves out
//! messages, so SEARCH's answers (substring semantics, RFC 9051 §6.4.4) are
//! exactly those of a scan. A needle shorter than three bytes leaves
//! every message in.
//!
//! Why a signature of our own: a word index (tantivy, SQLite FTS5's
//! unicode61) cannot answer IMAP's substring search ("ello" must find
//! "Hello"), and SQLite's trigram tokenizer measured 1.6 ms per message
//! and an index five times the text. A signature is a bit set of
//! `next_power_of_two(3 × trigrams)` bits (512 to 65,536) with one bit per
//! trigram hash: about 1 KiB for a 5 KiB message, built in tens of µs, and
//! a needle of n trigrams lets through a message without it with a
//! probability under 0.3ⁿ.
//!
//! Where: `facteur-fts` in the mailbox's directory, a cache that can always
//! be deleted (it is rebuilt at the next search): an 8-byte magic, the
//! mailbox's UIDVALIDITY, the highest UID indexed, then records `uid (u32
//! LE), log2 bits (u8), bits` in UID order. Every message up to the highest
//! UID has its record (one that could not be read has all bits set, so
//! every search reads it). A record cut short (a crash) is dropped
//! at the next load; another UIDVALIDITY starts the file afresh; when the
//! messages expunged since outnumber the living, the file is rewritten
//! without them.
//!
//! A search reads the file once, as a stream, and keeps only the UIDs that
//! pass (memory: the candidates, not the index); the whole search runs
//! behind the CPU gate of FETCH and SEARCH (`session::heavy`).
//!
//! When it is updated: as soon as a session sees new messages (a delivery
//! an IDLE client is told of, an APPEND, a COPY) in a mailbox that has an
//! index ([`catch_up`]: the new messages only, from the highest UID
//! indexed, without reading the rest), and at each search for whatever
//! is still missing. Delivery itself (facteur-lmtpd) never opens it, so it
//! stays as fast as before, and a mailbox nobody searches has no index and
//! costs nothing. A file lock serializes the sessions and processes
//! updating one mailbox's file.

use facteur_imap_message::Message;
use facteur_store::Mailbox;
use std::collections::HashSet;
use std::fs::OpenOptions;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;

/// The file, in the mailbox's directory.
pub const FILE: &str = "facteur-fts";
const MAGIC: &[u8; 8] = b"FFTS\x02\0\0\0";
/// The magic, the UIDVALIDITY, the highest UID indexed (all LE).
const HEADER: usize = 16;
const MIN_LOG2: u8 = 9;
const MAX_LOG2: u8 = 16;

/// The hash of a trigram.
fn hash(w: &[u8]) -> u32 {
    let x = u32::from(w[0]) | u32::from(w[1]) << 8 | u32::from(w[2]) << 16;
    // Fibonacci hashing spreads neighbouring trigrams over the bits.
    x.wrapping_mul(0x9E37_79B1).rotate_right(7)
}

/// The distinct trigram hashes of `texts` (already lower-cased).
fn grams<'a>(texts: impl IntoIterator<Item = &'a str>) -> Vec<u32> {
    let mut v: Vec<u32> = texts
        .into_iter()
        .flat_map(|t| t.as_bytes().windows(3).map(hash))
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// The trigram hashes of a SEARCH needle, lower-cased as SEARCH does.
pub fn needle_grams(needle: &str) -> Vec<u32> {
    grams([needle.to_lowercase().as_str()])
}

/// A message's signature: (log2 of its bits, the bits).
fn signature(grams: &[u32]) -> (u8, Vec<u8>) {
    let want = (grams.len() * 3).max(1).next_power_of_two();
    let log2 = (want.trailing_zeros() as u8).clamp(MIN_LOG2, MAX_LOG2);
    let bits = 1usize << log2;
    let mut sig = vec![0u8; bits / 8];
    for &g in grams {
        let b = g as usize & (bits - 1);
        sig[b / 8] |= 1 << (b % 8);
    }
    (log2, sig)
}

fn has_all(log2: u8, sig: &[u8], grams: &[u32]) -> bool {
    let mask = (1usize << log2) - 1;
    grams.iter().all(|&g| {
        let b = g as usize & mask;
        sig.get(b / 8)
            .is_some_and(|byte| byte & (1 << (b % 8)) != 0)
    })
}

/// What a search may skip: the messages whose signatures lack a needle's
/// trigram.
pub struct Candidates {
    /// The messages that may contain every needle.
    pass: HashSet<u32>,
}

impl Candidates {
    /// Whether the message `uid` may contain every needle.
    pub fn may_match(&self, uid: u32) -> bool {
        self.pass.contains(&uid)
    }
}

/// How many messages were indexed by [`candidates`] (tests).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Added(pub usize);

/// The messages of `mb`'s view that may contain every needle (each given
/// by [`needle_grams`]), from its index, which is first brought up to date:
/// the file is read once, as a stream (memory: the candidates, not the
/// index), the messages it lacks are read, indexed and appended.
pub fn candidates(mb: &Mailbox, needles: &[Vec<u32>]) -> io::Result<(Candidates, Added)> {
    let path = mb.dir().join(FILE);
    let mut f = open_nofollow(&path, Open::Create)?;
    f.lock()?;
    let live: HashSet<u32> = mb.messages().iter().map(|m| m.uid).collect();
    let mut c = Candidates {
        pass: HashSet::new(),
    };
    let mut known: HashSet<u32> = HashSet::new();
    let mut dead = 0usize;
    let mut header = [0u8; HEADER];
    let valid = f.read_exact(&mut header).is_ok() && header_valid(&header, mb);
    let end = if valid {
        let mut r = io::BufReader::with_capacity(64 * 1024, &mut f);
        let mut sig = Vec::new();
        let mut at = HEADER as u64;
        while let Some((uid, log2)) = read_record(&mut r, &mut sig)? {
            at += 5 + sig.len() as u64;
            if !live.contains(&uid) {
                dead += 1;
                continue;
            }
            if known.insert(uid) && needles.iter().all(|g| has_all(log2, &sig, g)) {
                c.pass.insert(uid);
            }
        }
        at
    } else {
        header = new_header(mb, 0);
        f.set_len(0)?;
        f.seek(SeekFrom::Start(0))?;
        f.write_all(&header)?;
        HEADER as u64
    };
    // A record cut short (a crash while appending) is dropped.
    if f.metadata()?.len() > end {
        f.set_len(end)?;
    }
    if dead > 256 && dead > known.len() {
        compact(mb, &path, &live)?;
        f = open_nofollow(&path, Open::Create)?;
        f.lock()?;
    }
    // Every message without a record is indexed now: those above the
    // highest UID indexed, and any below it whose record was lost (a file
    // cut short above, with the records written after the cut).
    let todo: Vec<u32> = mb
        .messages()
        .iter()
        .map(|m| m.uid)
        .filter(|u| !known.contains(u))
        .collect();
    let added = append(&mut f, mb, last_uid(&header), &todo, |uid, log2, sig| {
        if needles.iter().all(|g| has_all(log2, sig, g)) {
            c.pass.insert(uid);
        }
    })?;
    Ok((c, Added(added)))
}

/// Indexes what a mailbox that has an index got since (new deliveries,
/// APPENDs, copies): the messages above its highest UID indexed, if they
/// are at most `max` (more are left to the next search). A mailbox
/// without an index is left without one. Returns how many were indexed.
pub fn catch_up(mb: &Mailbox, max: usize) -> io::Result<usize> {
    let mut f = match open_nofollow(&mb.dir().join(FILE), Open::Existing) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    f.lock()?;
    let mut header = [0u8; HEADER];
    if f.read_exact(&mut header).is_err() || !header_valid(&header, mb) {
        // The next search starts it afresh.
        return Ok(0);
    }
    let last = last_uid(&header);
    let msgs = mb.messages();
    let new: Vec<u32> = msgs[msgs.partition_point(|m| m.uid <= last)..]
        .iter()
        .map(|m| m.uid)
        .collect();
    if new.len() > max {
        return Ok(0);
    }
    append(&mut f, mb, last, &new, |_, _, _| {})
}

fn header_valid(header: &[u8; HEADER], mb: &Mailbox) -> bool {
    header[..8] == MAGIC[..] && header[8..12] == mb.uidvalidity().to_le_bytes()
}

fn new_header(mb: &Mailbox, last: u32) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&mb.uidvalidity().to_le_bytes());
    h[12..].copy_from_slice(&last.to_le_bytes());
    h
}

fn last_uid(header: &[u8; HEADER]) -> u32 {
    u32::from_le_bytes([header[12], header[13], header[14], header[15]])
}

/// Indexes the messages `uids` (ascending), appends their records, then
/// writes the new highest UID indexed (at least `last`) in the header;
/// `each` sees every new signature. The file is locked.
fn append(
    f: &mut std::fs::File,
    mb: &Mailbox,
    last: u32,
    uids: &[u32],
    mut each: impl FnMut(u32, u8, &[u8]),
) -> io::Result<usize> {
    if uids.is_empty() {
        return Ok(0);
    }
    let mut out = Vec::new();
    let mut high = last;
    f.seek(SeekFrom::End(0))?;
    for &uid in uids {
        let (log2, sig) = match mb.read_message(uid) {
            Ok(raw) => {
                let texts = Message::parse(&raw).search_texts();
                signature(&grams(texts.iter().map(String::as_str)))
            }
            // Unreadable (gone meanwhile?): every bit set, so that every
            // search reads it and finds out.
            Err(_) => (MIN_LOG2, vec![0xff; (1usize << MIN_LOG2) / 8]),
        };
        each(uid, log2, &sig);
        out.extend_from_slice(&uid.to_le_bytes());
        out.push(log2);
        out.extend_from_slice(&sig);
        high = high.max(uid);
        // Written as it grows, so a mailbox indexed at once for the first
        // time does not hold its whole index in memory.
        if out.len() >= 1 << 20 {
            f.write_all(&out)?;
            out.clear();
        }
    }
    // Not fsynced: the index is a cache. The highest UID goes in after
    // the records: a crash in between leaves records that the next
    // search's catch-up writes again (a UID read twice counts once).
    f.write_all(&out)?;
    f.seek(SeekFrom::Start(12))?;
    f.write_all(&high.to_le_bytes())?;
    Ok(uids.len())
}

/// How [`open_nofollow`] opens.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Open {
    /// Only a file that exists.
    Existing,
    /// Made if missing.
    Create,
    /// Made if missing, emptied.
    Truncate,
}

/// The file at `path` for reading and writing, never through a link.
fn open_nofollow(path: &std::path::Path, how: Open) -> io::Result<std::fs::File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(how != Open::Existing)
        .truncate(how == Open::Truncate)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
}

/// The next whole record: (uid, log2) with its bits in `sig`; None at the
/// end or at a record cut short or malformed.
fn read_record(r: &mut impl Read, sig: &mut Vec<u8>) -> io::Result<Option<(u32, u8)>> {
    let mut head = [0u8; 5];
    match r.read_exact(&mut head) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let uid = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
    let log2 = head[4];
    if !(MIN_LOG2..=MAX_LOG2).contains(&log2) {
        return Ok(None);
    }
    sig.resize((1usize << log2) / 8, 0);
    match r.read_exact(sig) {
        Ok(()) => Ok(Some((uid, log2))),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(e),
    }
}

/// Rewrites the index with only the `live` messages' records (a new file
/// renamed over the old one, under the old one's lock).
fn compact(mb: &Mailbox, path: &std::path::Path, live: &HashSet<u32>) -> io::Result<()> {
    let tmp = mb.dir().join(format!("{FILE}.new"));
    let mut src = io::BufReader::new(open_nofollow(path, Open::Existing)?);
    let mut dst = io::BufWriter::new(open_nofollow(&tmp, Open::Truncate)?);
    let mut header = [0u8; HEADER];
    src.read_exact(&mut header)?;
    dst.write_all(&header)?;
    let mut sig = Vec::new();
    let mut seen = HashSet::new();
    while let Some((uid, log2)) = read_record(&mut src, &mut sig)? {
        if live.contains(&uid) && seen.insert(uid) {
            dst.write_all(&uid.to_le_bytes())?;
            dst.write_all(&[log2])?;
            dst.write_all(&sig)?;
        }
    }
    dst.flush()?;
    drop(dst);
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_has_every_trigram_of_its_texts() {
        let text = "hello world, this is facteur's full-text index";
        let g = grams([text]);
        let (log2, sig) = signature(&g);
        assert_eq!(log2, MIN_LOG2);
        for needle in ["hello", "World", "ull-te", "facteur's", "s i"] {
            assert!(has_all(log2, &sig, &needle_grams(needle)), "{needle}");
        }
        // Most absent trigrams are absent from the signature.
        let absent = ["zyxwvu", "qqqqqq", "jjjkkk", "mmmnnnooo", "xylophone"];
        let through = absent
            .iter()
            .filter(|n| has_all(log2, &sig, &needle_grams(n)))
            .count();
        assert!(through <= 1, "{through}");
        // Short needles have no trigram: every message may match.
        assert!(needle_grams("ab").is_empty());
        // Large texts get larger signatures, up to the bound.
        let big: String = (0..200_000u32)
            .map(|i| char::from(b'a' + (i * 7 % 26) as u8))
            .collect::<String>()
            + &(0..50_000u32).map(|i| format!("{i:x}")).collect::<String>();
        let (log2, _) = signature(&grams([big.as_str()]));
        assert!((MIN_LOG2 + 1..=MAX_LOG2).contains(&log2), "{log2}");
    }

    #[test]
    fn no_substring_of_a_text_is_ever_left_out() {
        // Texts of random words (with non-ASCII), needles cut anywhere in
        // them (on character boundaries): the signature must let each
        // through, whatever the text's size.
        let words = [
            "réunion",
            "café",
            "hello",
            "Ωmega",
            "x",
            "mail",
            "日本語",
            "to",
            "the",
        ];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..300 {
            let n = 1 + (next() % (1 + round * 5)) as usize;
            let text: String = (0..n)
                .map(|_| words[(next() % words.len() as u64) as usize])
                .collect::<Vec<_>>()
                .join(" ")
                .to_lowercase();
            let (log2, sig) = signature(&grams([text.as_str()]));
            let bounds: Vec<usize> = text
                .char_indices()
                .map(|(i, _)| i)
                .chain([text.len()])
                .collect();
            for _ in 0..20 {
                let a = bounds[(next() % bounds.len() as u64) as usize];
                let b = bounds[(next() % bounds.len() as u64) as usize];
                let (a, b) = (a.min(b), a.max(b));
                let needle = text[a..b].to_uppercase();
                assert!(
                    has_all(log2, &sig, &needle_grams(&needle)),
                    "{needle:?} in {text:?}"
                );
            }
        }
    }

    #[test]
    fn records_cut_short_or_malformed_end_the_file() {
        let mut data = Vec::new();
        for uid in 1..=3u32 {
            let (log2, sig) = signature(&grams(["some text"]));
            data.extend_from_slice(&uid.to_le_bytes());
            data.push(log2);
            data.extend_from_slice(&sig);
        }
        let read_all = |bytes: &[u8]| {
            let mut r = bytes;
            let mut sig = Vec::new();
            let mut uids = Vec::new();
            while let Some((uid, _)) = read_record(&mut r, &mut sig).unwrap() {
                uids.push(uid);
            }
            uids
        };
        assert_eq!(read_all(&data), [1, 2, 3]);
        let mut cut = data.clone();
        cut.extend_from_slice(&[4, 0, 0, 0, MIN_LOG2, 1, 2]);
        assert_eq!(read_all(&cut), [1, 2, 3]);
        let mut bad = data.clone();
        bad.extend_from_slice(&[4, 0, 0, 0, 40, 0, 0, 0]);
        assert_eq!(read_all(&bad), [1, 2, 3]);
        assert_eq!(read_all(&data[..3]), Vec::<u32>::new());
    }
}

#[cfg(test)]
mod bench {
    use super::*;

    /// `cargo test --release -p facteur-imapd --lib -- --ignored --nocapture
    /// bench_search_100k`: the index of 100,000 messages of 1 KB (bench/'s
    /// seed), built, then searched warm for a phrase one message has
    /// (the index loaded, every signature tested, the candidates read and
    /// matched). Set FTS_BENCH_DIR to a tmpfs to keep the disk out of it.
    #[test]
    #[ignore]
    fn bench_search_100k() {
        use facteur_store::{Quota, Store, StoreConfig};
        let base = std::env::var("FTS_BENCH_DIR")
            .unwrap_or_else(|_| std::env::temp_dir().display().to_string());
        let d = tempfile::tempdir_in(base).unwrap();
        let s = Store::new(StoreConfig {
            root: d.path().to_path_buf(),
            hostname: "h".into(),
        });
        s.create_user("u@x.test").unwrap();
        let cur = d.path().join("x.test/u/cur");
        let words = "postman letter parcel stamp route morning village sorting bag bicycle address envelope receipt window counter delivery evening square";
        let words: Vec<&str> = words.split(' ').collect();
        for i in 0..100_000usize {
            let mut m = format!(
                "From: Sender {} <sender{}@bench.test>\nTo: Reader <reader@example.test>\nSubject: big message {i}: {} {}\nMessage-ID: <big.{i}@bench.test>\n\n",
                i % 7,
                i % 7,
                words[i % words.len()],
                words[i * 7 % words.len()]
            );
            let mut k = i;
            while m.len() < 1000 {
                let line: Vec<&str> = (0..9).map(|j| words[(k + j) % words.len()]).collect();
                m.push_str(&format!("{} {k}\n", line.join(" ")));
                k += 1;
            }
            let w = m.len() + m.matches('\n').count();
            std::fs::write(
                cur.join(format!(
                    "{}.M{i}P1Q{i}R0.h,S={},W={w}:2,S",
                    1_600_000_000 + i,
                    m.len()
                )),
                m,
            )
            .unwrap();
        }
        let us = s.open_user("u@x.test", Quota::default()).unwrap();
        let mb = us.select("INBOX").unwrap();
        let needle = vec![needle_grams("message 50000:")];
        let t = std::time::Instant::now();
        let (_, added) = candidates(&mb, &needle).unwrap();
        let size = std::fs::metadata(mb.dir().join(FILE)).unwrap().len();
        eprintln!(
            "built: {} messages in {:?}, {size} bytes",
            added.0,
            t.elapsed()
        );
        for _ in 0..3 {
            let t = std::time::Instant::now();
            let (c, added) = candidates(&mb, &needle).unwrap();
            assert_eq!(added.0, 0);
            let loaded = t.elapsed();
            let cands: Vec<u32> = mb
                .messages()
                .iter()
                .map(|m| m.uid)
                .filter(|&u| c.may_match(u))
                .collect();
            let hits: Vec<u32> = cands
                .iter()
                .copied()
                .filter(|&u| {
                    Message::parse(&mb.read_message(u).unwrap()).text_contains("message 50000:")
                })
                .collect();
            eprintln!(
                "warm search: {:?} (index read in {loaded:?}), {} candidates, {} hits",
                t.elapsed(),
                cands.len(),
                hits.len()
            );
            assert_eq!(hits.len(), 1);
        }
    }
}
