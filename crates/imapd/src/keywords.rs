//! The keywords a session has announced in `* FLAGS`, and the board that
//! keeps every session of a mailbox in this process agreeing on them.
//!
//! RFC 9051 §7.3.5: FLAGS tells the client the flags that apply to the
//! mailbox; a keyword must be in it before a message shows it. A session
//! learns keywords from what it shows (SELECT's messages, a sync's new or
//! changed messages, its own STORE). That alone can leave two sessions
//! disagreeing for good: a keyword set on a message that another session
//! never sees (expunged before it synced) reaches only the first. So each
//! mailbox has a board in the process, where every session posts the
//! keywords it announces and from which every sync takes what others
//! posted; the set only grows while the mailbox is selected somewhere (the
//! board goes when the last session leaves it). Dovecot behaves the same
//! way with its per-mailbox keyword list.
//!
//! Bounded: at most [`MAX_POSTED`] keywords per board; past that the board
//! takes no more, and each session keeps the further keywords it shows for
//! itself. A session holds only a reference to the board and the version
//! it last announced: an idle session costs a few words, not a copy.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use facteur_store::{ANSWERED, DELETED, DRAFT, FLAGGED, FlagMask, Flags, SEEN};

/// Most keywords one mailbox's board holds.
const MAX_POSTED: usize = 1024;

/// Keywords offered in every mailbox's FLAGS (RFC 5788 registry: those
/// clients set on their own).
pub(crate) const USUAL: [&str; 4] = ["$Forwarded", "$MDNSent", "$Junk", "$NotJunk"];

#[derive(Default)]
struct Posted {
    version: u64,
    set: BTreeSet<String>,
}

/// One mailbox's board.
#[derive(Default)]
pub struct Board {
    posted: Mutex<Posted>,
}

/// The boards of the mailboxes selected in this process, by directory.
#[derive(Default)]
pub struct Boards {
    by_dir: Mutex<HashMap<PathBuf, Weak<Board>>>,
}

impl Boards {
    /// The board of the mailbox in `dir` (made if no session has one).
    pub(crate) fn get(&self, dir: &Path) -> Arc<Board> {
        let mut map = self.by_dir.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = map.get(dir).and_then(Weak::upgrade) {
            return b;
        }
        // Forget boards nobody holds any more (each insert pays for the
        // entries it could have reused, so the map stays near the number
        // of selected mailboxes).
        if map.len() >= 64 && map.len().is_power_of_two() {
            map.retain(|_, w| w.strong_count() > 0);
        }
        let b = Arc::new(Board::default());
        map.insert(dir.to_path_buf(), Arc::downgrade(&b));
        b
    }
}

/// What one session has announced: the board's set as of version
/// `seen`, plus (only once the board is full) keywords of its own. An idle
/// session holds no copy of the set (IMAP IDLE memory counts).
pub(crate) struct Keywords {
    board: Arc<Board>,
    seen: u64,
    extra: BTreeSet<String>,
}

impl Keywords {
    /// At SELECT: the board's keywords (the usual ones and every one a
    /// session of this mailbox has shown) and those of the mailbox's
    /// messages.
    pub(crate) fn new<'a>(board: Arc<Board>, flags: impl IntoIterator<Item = &'a Flags>) -> Self {
        let mut k = Keywords {
            board,
            seen: 0,
            extra: BTreeSet::new(),
        };
        k.learn(flags);
        k
    }

    /// Posts what `flags` show; true when the set this session announced
    /// grew (by them or by other sessions' posts).
    fn learn<'a>(&mut self, flags: impl IntoIterator<Item = &'a Flags>) -> bool {
        let mut posted = self.board.posted.lock().unwrap_or_else(|e| e.into_inner());
        if posted.set.is_empty() {
            posted.set.extend(USUAL.iter().map(|k| k.to_string()));
        }
        let mut grew = false;
        for f in flags {
            for k in &f.keywords {
                if posted.set.contains(k) {
                    continue;
                }
                if posted.set.len() < MAX_POSTED {
                    posted.set.insert(k.clone());
                    posted.version += 1;
                } else {
                    grew |= self.extra.insert(k.clone());
                }
            }
        }
        grew |= posted.version != self.seen;
        self.seen = posted.version;
        grew
    }

    /// Before messages with `flags` are shown (and at every sync): when
    /// they or another session bring a keyword not yet announced, the set
    /// grows and the lists go out again.
    pub(crate) fn announce<'a>(
        &mut self,
        permanent: FlagMask,
        flags: impl IntoIterator<Item = &'a Flags>,
        out: &mut Vec<u8>,
    ) {
        if self.learn(flags) {
            self.write(out, permanent);
        }
    }

    /// The `* FLAGS` response and the PERMANENTFLAGS that goes with it:
    /// the flags in `permanent` (what the session may change: nothing in a
    /// read-only mailbox, what the user's rights allow in a shared one).
    pub(crate) fn write(&self, out: &mut Vec<u8>, permanent: FlagMask) {
        let posted = self.board.posted.lock().unwrap_or_else(|e| e.into_inner());
        let mut names: Vec<&str> = posted.set.iter().map(String::as_str).collect();
        if !self.extra.is_empty() {
            names.extend(self.extra.iter().map(String::as_str));
            names.sort_unstable();
            names.dedup();
        }
        let list = |out: &mut Vec<u8>| {
            for k in &names {
                out.push(b' ');
                out.extend_from_slice(k.as_bytes());
            }
        };
        out.extend_from_slice(b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft");
        list(out);
        out.extend_from_slice(b")\r\n");
        // PERMANENTFLAGS lists the keywords too (every one is kept), then
        // `\*`: new ones may be created.
        if permanent == FlagMask::NONE {
            out.extend_from_slice(b"* OK [PERMANENTFLAGS ()] Read-only mailbox\r\n");
            return;
        }
        let system: Vec<&str> = [
            (ANSWERED, "\\Answered"),
            (FLAGGED, "\\Flagged"),
            (DELETED, "\\Deleted"),
            (SEEN, "\\Seen"),
            (DRAFT, "\\Draft"),
        ]
        .iter()
        .filter(|(bit, _)| permanent.system & bit != 0)
        .map(|(_, name)| *name)
        .collect();
        out.extend_from_slice(b"* OK [PERMANENTFLAGS (");
        out.extend_from_slice(system.join(" ").as_bytes());
        if permanent.keywords {
            list(out);
            out.extend_from_slice(b" \\*");
        }
        out.extend_from_slice(b")] Flags permitted\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kw(names: &[&str]) -> Flags {
        Flags {
            keywords: names.iter().map(|s| s.to_string()).collect(),
            ..Flags::default()
        }
    }

    fn listed(k: &Keywords) -> String {
        let mut out = Vec::new();
        k.write(&mut out, FlagMask::NONE);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn sessions_of_one_mailbox_learn_each_others_keywords() {
        let boards = Boards::default();
        let dir = Path::new("/m/INBOX");
        let mut a = Keywords::new(boards.get(dir), [&kw(&["$a"])]);
        let mut b = Keywords::new(boards.get(dir), [&kw(&[])]);
        let mut out = Vec::new();
        // b's SELECT took a's keyword from the board.
        assert!(listed(&b).contains(" $a)"));
        b.announce(FlagMask::ALL, [], &mut out);
        assert!(out.is_empty());
        // a sets $new on a message b never sees: b learns it anyway.
        out.clear();
        a.announce(FlagMask::ALL, [&kw(&["$new"])], &mut out);
        assert!(!out.is_empty());
        out.clear();
        b.announce(FlagMask::ALL, [], &mut out);
        assert!(listed(&b).contains("$new"));
        // Nothing new: nothing sent.
        out.clear();
        b.announce(FlagMask::ALL, [&kw(&["$new", "$a"])], &mut out);
        a.announce(FlagMask::ALL, [], &mut out);
        assert!(out.is_empty(), "{}", String::from_utf8_lossy(&out));
        assert_eq!(listed(&a), listed(&b));
        // Another mailbox has its own board.
        let c = Keywords::new(boards.get(Path::new("/m/Other")), [&kw(&[])]);
        assert!(!listed(&c).contains("$new"));
    }

    #[test]
    fn a_board_is_bounded_and_forgotten_with_its_sessions() {
        let boards = Boards::default();
        let dir = Path::new("/m/INBOX");
        let mut a = Keywords::new(boards.get(dir), [&kw(&[])]);
        let many: Vec<String> = (0..MAX_POSTED + 10).map(|i| format!("k{i}")).collect();
        let f = Flags {
            keywords: many.iter().cloned().collect(),
            ..Flags::default()
        };
        let mut out = Vec::new();
        a.announce(FlagMask::ALL, [&f], &mut out);
        assert_eq!(a.board.posted.lock().unwrap().set.len(), MAX_POSTED);
        // The rest are this session's own, still announced.
        assert_eq!(a.extra.len(), USUAL.len() + 10);
        assert!(listed(&a).contains(&format!(" k{} ", MAX_POSTED + 9)));
        drop(a);
        let b = Keywords::new(boards.get(dir), [&kw(&[])]);
        assert_eq!(b.board.posted.lock().unwrap().set.len(), USUAL.len());
    }
}
