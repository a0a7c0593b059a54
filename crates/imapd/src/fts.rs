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
//! mailbox's UIDVALIDITY, then records `uid (u32 LE), log2 bits (u8), bits`
//! in the order they were added. A record cut short (a crash) is dropped
//! at the next load; another UIDVALIDITY starts the file afresh; when the
//! messages expunged since outnumber the living, the file is rewritten
//! without them.
//!
//! When it is updated: at each search that needs it, the messages it lacks
//! are indexed first (new deliveries, APPENDs, copies): delivery itself
//! (facteur-lmtpd) never opens it, so it stays as fast as before, and a
//! mailbox nobody searches costs nothing. A file lock serializes the
//! sessions and processes updating one mailbox's file.

use facteur_imap_message::Message;
use facteur_store::Mailbox;
use std::collections::HashSet;
use std::fs::OpenOptions;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;

/// The file, in the mailbox's directory.
pub const FILE: &str = "facteur-fts";
const MAGIC: &[u8; 8] = b"FFTS\x01\0\0\0";
const HEADER: usize = 12;
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

/// One message's record: its UID and where its signature is in `data`.
#[derive(Clone, Copy)]
struct Entry {
    uid: u32,
    log2: u8,
    at: usize,
}

/// A mailbox's index, loaded and brought up to date.
pub struct Index {
    data: Vec<u8>,
    /// By UID.
    entries: Vec<Entry>,
}

/// How many messages were indexed by [`Index::up_to_date`] (tests).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Added(pub usize);

impl Index {
    /// The index of `mb`, with every message of its view in it: the file is
    /// read, the messages it lacks are read, indexed and appended.
    pub fn up_to_date(mb: &Mailbox) -> io::Result<(Index, Added)> {
        let path = mb.dir().join(FILE);
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&path)?;
        f.lock()?;
        let mut data = Vec::new();
        f.read_to_end(&mut data)?;
        let uidvalidity = mb.uidvalidity().to_le_bytes();
        let (mut entries, good) =
            if data.len() >= HEADER && data[..8] == MAGIC[..] && data[8..12] == uidvalidity {
                parse(&data)
            } else {
                data.clear();
                data.extend_from_slice(MAGIC);
                data.extend_from_slice(&uidvalidity);
                f.set_len(0)?;
                f.seek(SeekFrom::Start(0))?;
                f.write_all(&data)?;
                (Vec::new(), HEADER)
            };
        if good < data.len() {
            // A record cut short: dropped.
            data.truncate(good);
            f.set_len(good as u64)?;
        }
        entries.sort_by_key(|e| e.uid);
        entries.dedup_by_key(|e| e.uid);
        let live: HashSet<u32> = mb.messages().iter().map(|m| m.uid).collect();
        let dead = entries.iter().filter(|e| !live.contains(&e.uid)).count();
        if dead > 256 && dead > entries.len() - dead {
            let (d, e) = rewrite(&data, &entries, &live);
            data = d;
            entries = e;
            let tmp = mb.dir().join(format!("{FILE}.new"));
            std::fs::write(&tmp, &data)?;
            std::fs::rename(&tmp, &path)?;
        }
        let known: HashSet<u32> = entries.iter().map(|e| e.uid).collect();
        let mut added = Vec::new();
        let start = data.len();
        for m in mb.messages() {
            if known.contains(&m.uid) {
                continue;
            }
            let raw = match mb.read_message(m.uid) {
                Ok(r) => r,
                // Gone meanwhile: not indexed (a later search sees it go).
                Err(_) => continue,
            };
            let msg = Message::parse(&raw);
            let texts = msg.search_texts();
            let (log2, sig) = signature(&grams(texts.iter().map(String::as_str)));
            data.extend_from_slice(&m.uid.to_le_bytes());
            data.push(log2);
            added.push(Entry {
                uid: m.uid,
                log2,
                at: data.len(),
            });
            data.extend_from_slice(&sig);
        }
        if !added.is_empty() {
            // Not fsynced: the index is a cache; a record lost or cut in a
            // crash is indexed again.
            f.seek(SeekFrom::End(0))?;
            f.write_all(&data[start..])?;
        }
        let n = added.len();
        entries.extend(added);
        entries.sort_by_key(|e| e.uid);
        Ok((Index { data, entries }, Added(n)))
    }

    /// Whether the message `uid` may contain every needle (each given by
    /// [`needle_grams`]). A message not in the index may.
    pub fn may_match(&self, uid: u32, needles: &[Vec<u32>]) -> bool {
        let Ok(i) = self.entries.binary_search_by_key(&uid, |e| e.uid) else {
            return true;
        };
        let e = self.entries[i];
        let sig = &self.data[e.at..e.at + (1usize << e.log2) / 8];
        needles.iter().all(|g| has_all(e.log2, sig, g))
    }

    /// The size of the index in bytes (reports).
    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The records of a file whose header is valid, and the length of its
/// whole records.
fn parse(data: &[u8]) -> (Vec<Entry>, usize) {
    let mut entries = Vec::new();
    let mut at = HEADER;
    while at + 5 <= data.len() {
        let uid = u32::from_le_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]);
        let log2 = data[at + 4];
        if !(MIN_LOG2..=MAX_LOG2).contains(&log2) {
            break;
        }
        let len = (1usize << log2) / 8;
        if at + 5 + len > data.len() {
            break;
        }
        entries.push(Entry {
            uid,
            log2,
            at: at + 5,
        });
        at += 5 + len;
    }
    (entries, at)
}

/// The file's bytes and entries with only the `live` messages.
fn rewrite(data: &[u8], entries: &[Entry], live: &HashSet<u32>) -> (Vec<u8>, Vec<Entry>) {
    let mut out = data[..HEADER].to_vec();
    let mut kept = Vec::new();
    for e in entries.iter().filter(|e| live.contains(&e.uid)) {
        out.extend_from_slice(&e.uid.to_le_bytes());
        out.push(e.log2);
        kept.push(Entry {
            uid: e.uid,
            log2: e.log2,
            at: out.len(),
        });
        out.extend_from_slice(&data[e.at..e.at + (1usize << e.log2) / 8]);
    }
    (out, kept)
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
    fn a_file_cut_short_keeps_its_whole_records() {
        let mut data = MAGIC.to_vec();
        data.extend_from_slice(&7u32.to_le_bytes());
        for uid in 1..=3u32 {
            let (log2, sig) = signature(&grams(["some text"]));
            data.extend_from_slice(&uid.to_le_bytes());
            data.push(log2);
            data.extend_from_slice(&sig);
        }
        let whole = data.len();
        data.extend_from_slice(&[4, 0, 0, 0, MIN_LOG2, 1, 2]);
        let (entries, good) = parse(&data);
        assert_eq!(entries.len(), 3);
        assert_eq!(good, whole);
        // A bad size byte ends the records too.
        data.truncate(whole);
        data.extend_from_slice(&[4, 0, 0, 0, 40]);
        assert_eq!(parse(&data).1, whole);
        // Rewriting keeps the live ones, readable again.
        let live: HashSet<u32> = [1, 3].into_iter().collect();
        let (out, kept) = rewrite(&data, &entries, &live);
        assert_eq!(kept.iter().map(|e| e.uid).collect::<Vec<_>>(), [1, 3]);
        assert_eq!(parse(&out).0.len(), 2);
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
        let t = std::time::Instant::now();
        let (ix, added) = Index::up_to_date(&mb).unwrap();
        eprintln!(
            "built: {} messages in {:?}, {} bytes",
            added.0,
            t.elapsed(),
            ix.len()
        );
        let needle = needle_grams("message 50000:");
        for _ in 0..3 {
            let t = std::time::Instant::now();
            let (ix, added) = Index::up_to_date(&mb).unwrap();
            assert_eq!(added.0, 0);
            let loaded = t.elapsed();
            let cands: Vec<u32> = mb
                .messages()
                .iter()
                .map(|m| m.uid)
                .filter(|&u| ix.may_match(u, std::slice::from_ref(&needle)))
                .collect();
            let hits: Vec<u32> = cands
                .iter()
                .copied()
                .filter(|&u| {
                    Message::parse(&mb.read_message(u).unwrap()).text_contains("message 50000:")
                })
                .collect();
            eprintln!(
                "warm search: {:?} (index loaded in {loaded:?}), {} candidates, {} hits",
                t.elapsed(),
                cands.len(),
                hits.len()
            );
            assert_eq!(hits.len(), 1);
        }
    }
}
