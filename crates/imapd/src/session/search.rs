//! SEARCH and UID SEARCH (RFC 9051 §6.4.4), ESEARCH replies (RFC 4731, and
//! always under IMAP4rev2), SEARCHRES (`SAVE`, `$`, RFC 5182), MODSEQ
//! (RFC 7162 §3.1.5), PARTIAL (RFC 5267 §4.4, RFC 9394); UPDATE's
//! contexts are kept in context.rs.
//!
//! Keys on flags, sizes, dates, sequence numbers and UIDs use the index
//! only; a message file is read (once per message) only if a header or text
//! key has to look inside. Dates compare calendar days: INTERNALDATE's in
//! UTC, the Date header's in its own zone (RFC 9051 §6.4.4). facteur keeps
//! no \Recent: RECENT and NEW match nothing, OLD everything.

use super::{Flow, Session, blocking, in_ranges};
use facteur_imap_message::Message;
use facteur_imap_proto::{Date, SearchKey, SearchReturn, SequenceSet, encode};
use facteur_store::{ANSWERED, DELETED, DRAFT, FLAGGED, Mailbox, MessageMeta, SEEN};
use std::cell::OnceCell;
use std::collections::HashMap;
use std::io;
use std::ops::Range;
use tokio::io::{AsyncRead, AsyncWrite};

/// `* ESEARCH (TAG "t") [UID]` and the items `opts` ask for, of `nums`
/// (in the order a SEARCH or a SORT gives them: MIN and MAX are the first
/// and the last), ALL written by `set`; no line end.
pub(super) fn esearch_items(
    out: &mut String,
    tag: &str,
    uid: bool,
    opts: &[SearchReturn],
    nums: &[u32],
    set: impl Fn(&[u32]) -> String,
) {
    out.push_str("* ESEARCH (TAG ");
    let mut t = Vec::new();
    encode::string(&mut t, tag.as_bytes(), false);
    out.push_str(&String::from_utf8_lossy(&t));
    out.push(')');
    if uid {
        out.push_str(" UID");
    }
    for o in opts {
        match o {
            SearchReturn::Min => {
                if let Some(n) = nums.first() {
                    out.push_str(&format!(" MIN {n}"));
                }
            }
            SearchReturn::Max => {
                if let Some(n) = nums.last() {
                    out.push_str(&format!(" MAX {n}"));
                }
            }
            SearchReturn::Count => out.push_str(&format!(" COUNT {}", nums.len())),
            SearchReturn::All => {
                if !nums.is_empty() {
                    out.push_str(&format!(" ALL {}", set(nums)));
                }
            }
            SearchReturn::Partial(first, last) => {
                out.push_str(&format!(" PARTIAL ({first}:{last} "));
                match partial_range(nums.len(), *first, *last) {
                    Some(r) => out.push_str(&set(&nums[r])),
                    None => out.push_str("NIL"),
                }
                out.push(')');
            }
            SearchReturn::Save | SearchReturn::Update => {}
        }
    }
}

/// The positions (0-based, in a result of `n`) that `PARTIAL first:last`
/// names (RFC 9394 §3: 1-based, or from the end when negative); None if
/// the result has none of them.
pub(super) fn partial_range(n: usize, first: i64, last: i64) -> Option<Range<usize>> {
    let n = i64::try_from(n).unwrap_or(i64::MAX);
    let (lo, hi) = if first > 0 {
        (first - 1, last.min(n))
    } else {
        ((n + last).max(0), n + first + 1)
    };
    (lo < hi).then_some(lo as usize..hi as usize)
}

/// A matching message: (sequence number, UID, MODSEQ).
pub(super) type Hit = (u32, u32, u64);

/// What one message evaluation sees.
struct Probe<'a> {
    mb: &'a Mailbox,
    meta: &'a MessageMeta,
    seq: u32,
    count: u32,
    largest_uid: u32,
    saved: &'a [u32],
    /// The session's `\Recent` ranges.
    recent: &'a [(u32, u32)],
    /// Save dates, when a key needs them.
    save_dates: &'a HashMap<u32, i64>,
    /// The message bytes, read on first need (None inside: unreadable).
    raw: &'a OnceCell<Option<facteur_store::Content>>,
    /// The message parsed once, so that its caches (the header's field
    /// index, the MIME tree) serve every key.
    msg: &'a OnceCell<Option<Message<'a>>>,
}

impl Probe<'_> {
    fn with_message(&mut self, f: impl FnOnce(&Message<'_>) -> bool) -> bool {
        let raw = self.raw.get_or_init(|| {
            let uid = self.meta.uid;
            blocking(|| self.mb.read_message(uid)).ok()
        });
        match self.msg.get_or_init(|| raw.as_deref().map(Message::parse)) {
            Some(m) => f(m),
            None => false,
        }
    }
}

/// Keys that look inside messages, in one SEARCH, at most: each costs a
/// pass over every message it is tested on.
pub(crate) const MAX_CONTENT_KEYS: usize = 32;

/// How many keys of `key` look inside messages (header, body, text, sent
/// date).
fn content_keys(key: &SearchKey) -> usize {
    match key {
        SearchKey::And(ks) => ks.iter().map(content_keys).sum(),
        SearchKey::Not(k) => content_keys(k),
        SearchKey::Or(a, b) => content_keys(a) + content_keys(b),
        SearchKey::Bcc(_)
        | SearchKey::Cc(_)
        | SearchKey::From(_)
        | SearchKey::To(_)
        | SearchKey::Subject(_)
        | SearchKey::Header(..)
        | SearchKey::Body(_)
        | SearchKey::Text(_)
        | SearchKey::SentBefore(_)
        | SearchKey::SentOn(_)
        | SearchKey::SentSince(_) => 1,
        _ => 0,
    }
}

fn day(d: &Date) -> i64 {
    encode::days_from_civil(i64::from(d.year), u32::from(d.month), u32::from(d.day))
}

fn in_set(set: &SequenceSet, n: u32, largest: u32, saved_hit: bool) -> bool {
    match set {
        SequenceSet::Saved => saved_hit,
        s => s.contains(n, largest),
    }
}

/// The trigrams of the BODY and TEXT needles every message `key` matches
/// must contain (its top-level conjuncts; none under OR or NOT).
fn required_needles(key: &SearchKey, out: &mut Vec<Vec<u32>>) {
    match key {
        SearchKey::And(keys) => keys.iter().for_each(|k| required_needles(k, out)),
        SearchKey::Body(s) | SearchKey::Text(s) => {
            let g = crate::fts::needle_grams(s);
            if !g.is_empty() {
                out.push(g);
            }
        }
        _ => {}
    }
}

fn eval(key: &SearchKey, p: &mut Probe<'_>) -> bool {
    let meta: &MessageMeta = p.meta;
    let f = &meta.flags;
    let has = |bit: u8| f.system & bit != 0;
    let internal_day = meta.internal_date.div_euclid(86_400);
    let sent_day = |p: &mut Probe<'_>| -> Option<i64> {
        let mut out = None;
        p.with_message(|m| {
            out = m.sent_day().map(|(y, mo, d)| {
                encode::days_from_civil(i64::from(y), u32::from(mo), u32::from(d))
            });
            true
        });
        out
    };
    match key {
        SearchKey::And(keys) => keys.iter().all(|k| eval(k, p)),
        SearchKey::All => true,
        SearchKey::Answered => has(ANSWERED),
        SearchKey::Unanswered => !has(ANSWERED),
        SearchKey::Deleted => has(DELETED),
        SearchKey::Undeleted => !has(DELETED),
        SearchKey::Draft => has(DRAFT),
        SearchKey::Undraft => !has(DRAFT),
        SearchKey::Flagged => has(FLAGGED),
        SearchKey::Unflagged => !has(FLAGGED),
        SearchKey::Seen => has(SEEN),
        SearchKey::Unseen => !has(SEEN),
        SearchKey::Recent => in_ranges(p.recent, p.meta.uid),
        SearchKey::New => in_ranges(p.recent, p.meta.uid) && !has(SEEN),
        SearchKey::Old => !in_ranges(p.recent, p.meta.uid),
        SearchKey::Keyword(k) => f.keywords.iter().any(|x| x.eq_ignore_ascii_case(k)),
        SearchKey::Unkeyword(k) => !f.keywords.iter().any(|x| x.eq_ignore_ascii_case(k)),
        SearchKey::Larger(n) => p.meta.size > *n,
        SearchKey::Smaller(n) => p.meta.size < *n,
        SearchKey::Before(d) => internal_day < day(d),
        SearchKey::On(d) => internal_day == day(d),
        SearchKey::Since(d) => internal_day >= day(d),
        SearchKey::SentBefore(d) => sent_day(p).is_some_and(|s| s < day(d)),
        SearchKey::SentOn(d) => sent_day(p).is_some_and(|s| s == day(d)),
        SearchKey::SentSince(d) => sent_day(p).is_some_and(|s| s >= day(d)),
        SearchKey::ModSeq(n) => p.meta.modseq >= *n,
        SearchKey::EmailId(id) => facteur_store::email_id(&p.meta.file_name) == *id,
        // THREADID is NIL for every message: none has this one.
        SearchKey::ThreadId(_) => false,
        SearchKey::SaveDateSupported => true,
        SearchKey::SavedBefore(d) => saved_day(p).is_some_and(|s| s < day(d)),
        SearchKey::SavedOn(d) => saved_day(p).is_some_and(|s| s == day(d)),
        SearchKey::SavedSince(d) => saved_day(p).is_some_and(|s| s >= day(d)),
        SearchKey::Not(k) => !eval(k, p),
        SearchKey::Or(a, b) => eval(a, p) || eval(b, p),
        SearchKey::Seq(set) => {
            let hit = p.saved.binary_search(&p.meta.uid).is_ok();
            in_set(set, p.seq, p.count, hit)
        }
        SearchKey::Uid(set) => {
            let hit = p.saved.binary_search(&p.meta.uid).is_ok();
            in_set(set, p.meta.uid, p.largest_uid, hit)
        }
        SearchKey::Bcc(s) => p.with_message(|m| m.header_contains("Bcc", s)),
        SearchKey::Cc(s) => p.with_message(|m| m.header_contains("Cc", s)),
        SearchKey::From(s) => p.with_message(|m| m.header_contains("From", s)),
        SearchKey::To(s) => p.with_message(|m| m.header_contains("To", s)),
        SearchKey::Subject(s) => p.with_message(|m| m.header_contains("Subject", s)),
        SearchKey::Header(name, v) => p.with_message(|m| m.header_contains(name, v)),
        SearchKey::Body(s) => p.with_message(|m| m.body_contains(s)),
        SearchKey::Text(s) => p.with_message(|m| m.text_contains(s)),
    }
}

/// The UTC day of the message's save date (None: unknown).
fn saved_day(p: &Probe<'_>) -> Option<i64> {
    p.save_dates.get(&p.meta.uid).map(|t| t.div_euclid(86_400))
}

/// Whether `key` or a key inside it (AND, OR, NOT) is one `leaf` picks.
fn uses(key: &SearchKey, leaf: fn(&SearchKey) -> bool) -> bool {
    match key {
        SearchKey::And(ks) => ks.iter().any(|k| uses(k, leaf)),
        SearchKey::Not(k) => uses(k, leaf),
        SearchKey::Or(a, b) => uses(a, leaf) || uses(b, leaf),
        k => leaf(k),
    }
}

fn uses_save_date(key: &SearchKey) -> bool {
    uses(key, |k| {
        matches!(
            k,
            SearchKey::SavedBefore(_) | SearchKey::SavedOn(_) | SearchKey::SavedSince(_)
        )
    })
}

fn uses_internal_date(key: &SearchKey) -> bool {
    uses(key, |k| {
        matches!(
            k,
            SearchKey::Before(_) | SearchKey::On(_) | SearchKey::Since(_)
        )
    })
}

fn uses_modseq(key: &SearchKey) -> bool {
    uses(key, |k| matches!(k, SearchKey::ModSeq(_)))
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    /// The checks SEARCH, SORT and THREAD share before they run: the
    /// charset, the count of content keys, MODSEQ enabling CONDSTORE,
    /// dates resolved for date keys. False: the reply is sent.
    pub(super) fn search_allowed(
        &mut self,
        tag: &str,
        charset: Option<&str>,
        key: &SearchKey,
        dates: bool,
    ) -> bool {
        if let Some(c) = charset
            && !c.eq_ignore_ascii_case("UTF-8")
            && !c.eq_ignore_ascii_case("US-ASCII")
        {
            self.no(tag, "[BADCHARSET (UTF-8 US-ASCII)] Unsupported charset");
            return false;
        }
        if content_keys(key) > MAX_CONTENT_KEYS {
            self.bad(
                Some(tag),
                &format!(
                    "Too many header, body or text keys in one SEARCH (at most {MAX_CONTENT_KEYS})"
                ),
            );
            return false;
        }
        if uses_modseq(key) {
            self.enable_condstore();
        }
        if (dates || uses_internal_date(key))
            && let Some(sel) = &mut self.sel
            && let Err(e) = sel.mb.resolve_dates(None)
        {
            self.store_error(tag, &e);
            return false;
        }
        true
    }

    /// The messages of the selected mailbox `key` matches, in mailbox
    /// order: (position, sequence number, UID, MODSEQ).
    pub(super) fn matching(&self, key: &SearchKey) -> Vec<Hit> {
        let Some(sel) = &self.sel else {
            return Vec::new();
        };
        let msgs = sel.mb.messages();
        self.matching_at(key, 0..msgs.len())
            .into_iter()
            .map(|i| (i as u32 + 1, msgs[i].uid, msgs[i].modseq))
            .collect()
    }

    /// Those of the messages at `positions` (0-based, in the selected
    /// mailbox) that `key` matches.
    pub(super) fn matching_at(
        &self,
        key: &SearchKey,
        positions: impl IntoIterator<Item = usize>,
    ) -> Vec<usize> {
        let Some(sel) = &self.sel else {
            return Vec::new();
        };
        let msgs = sel.mb.messages();
        let positions: Vec<usize> = positions.into_iter().collect();
        // BODY and TEXT: the full-text index leaves out the messages that
        // cannot contain every needle the key requires (fts.rs); the
        // others are matched as always. Not for one or two messages
        // (updates of search contexts), which are as quickly read.
        let mut needles = Vec::new();
        required_needles(key, &mut needles);
        let index = if needles.is_empty() || positions.len() < 3 {
            None
        } else {
            match blocking(|| crate::fts::candidates(&sel.mb, &needles)) {
                Ok((c, _)) => Some(c),
                Err(e) => {
                    tracing::warn!(dir = %sel.mb.dir().display(), error = %e, "full-text index unavailable: searching every message");
                    None
                }
            }
        };
        let mut saved = self.saved.clone();
        saved.sort_unstable();
        let largest_uid = msgs.last().map_or(0, |m| m.uid);
        let save_dates = if uses_save_date(key) {
            blocking(|| sel.mb.save_dates(None)).unwrap_or_default()
        } else {
            HashMap::new()
        };
        let mut hits = Vec::new();
        for i in positions {
            let Some(meta) = msgs.get(i) else { continue };
            if index.as_ref().is_some_and(|c| !c.may_match(meta.uid)) {
                continue;
            }
            let raw = OnceCell::new();
            let msg = OnceCell::new();
            let mut p = Probe {
                mb: &sel.mb,
                meta,
                seq: i as u32 + 1,
                count: msgs.len() as u32,
                largest_uid,
                saved: &saved,
                recent: &sel.recent,
                save_dates: &save_dates,
                raw: &raw,
                msg: &msg,
            };
            if eval(key, &mut p) {
                hits.push(i);
            }
        }
        hits
    }

    pub(super) fn search(
        &mut self,
        tag: &str,
        uid: bool,
        ret: Option<Vec<SearchReturn>>,
        charset: Option<String>,
        key: SearchKey,
    ) -> io::Result<Flow> {
        if !self.search_allowed(tag, charset.as_deref(), &key, false) {
            return Ok(Flow::Continue);
        }
        let modseq_key = uses_modseq(&key);
        let update = ret
            .as_ref()
            .is_some_and(|o| o.contains(&SearchReturn::Update));
        if update && !self.context_allowed(tag) {
            return Ok(Flow::Continue);
        }
        let hits = self.matching(&key);
        let nums: Vec<u32> = hits.iter().map(|h| if uid { h.1 } else { h.0 }).collect();
        let esearch = ret.is_some() || self.rev2;
        let opts = match ret {
            Some(o) if o.is_empty() => vec![SearchReturn::All],
            Some(o) => o,
            None => vec![SearchReturn::All],
        };
        // The MODSEQ of the reply: the highest of the messages it returns
        // (RFC 7162 §3.1.5): all of them, or only MIN's and MAX's when
        // those are all it returns.
        let ends_only =
            esearch && !opts.contains(&SearchReturn::All) && !opts.contains(&SearchReturn::Count);
        let max_modseq = if ends_only {
            let mut v = Vec::new();
            if opts.contains(&SearchReturn::Min) {
                v.extend(hits.first().map(|h| h.2));
            }
            if opts.contains(&SearchReturn::Max) {
                v.extend(hits.last().map(|h| h.2));
            }
            for o in &opts {
                if let SearchReturn::Partial(a, b) = *o
                    && let Some(r) = partial_range(hits.len(), a, b)
                {
                    v.extend(hits[r].iter().map(|h| h.2));
                }
            }
            v.into_iter().max()
        } else {
            hits.iter().map(|h| h.2).max()
        };
        if esearch && opts.contains(&SearchReturn::Save) {
            let only_ends = !opts.contains(&SearchReturn::All)
                && !opts.contains(&SearchReturn::Count)
                && (opts.contains(&SearchReturn::Min) || opts.contains(&SearchReturn::Max));
            self.saved = if only_ends {
                let mut v = Vec::new();
                if opts.contains(&SearchReturn::Min)
                    && let Some(h) = hits.first()
                {
                    v.push(h.1);
                }
                if opts.contains(&SearchReturn::Max)
                    && let Some(h) = hits.last()
                {
                    v.push(h.1);
                }
                v
            } else {
                hits.iter().map(|h| h.1).collect()
            };
        }
        let mut out = String::new();
        if !esearch {
            out.push_str("* SEARCH");
            for n in &nums {
                out.push_str(&format!(" {n}"));
            }
            if modseq_key && let Some(m) = max_modseq {
                out.push_str(&format!(" (MODSEQ {m})"));
            }
            out.push_str("\r\n");
        } else if opts.iter().any(|o| *o != SearchReturn::Save) {
            esearch_items(&mut out, tag, uid, &opts, &nums, encode::seq_set);
            if modseq_key && let Some(m) = max_modseq {
                out.push_str(&format!(" MODSEQ {m}"));
            }
            out.push_str("\r\n");
        }
        self.io.write(out.as_bytes());
        if update {
            let result = hits.iter().map(|h| h.1).collect();
            self.add_context(tag, uid, key, None, result);
        }
        if uid {
            return self.announce_and_ok(tag, "SEARCH completed");
        }
        self.ok(tag, "SEARCH completed");
        Ok(Flow::Continue)
    }
}

#[cfg(test)]
mod tests {
    use super::partial_range;

    #[test]
    fn partial_ranges_from_either_end() {
        assert_eq!(partial_range(5, 1, 1), Some(0..1));
        assert_eq!(partial_range(5, 2, 4), Some(1..4));
        assert_eq!(partial_range(5, 1, 6), Some(0..5));
        assert_eq!(partial_range(5, 6, 6), None);
        assert_eq!(partial_range(0, 1, 1), None);
        assert_eq!(partial_range(5, -1, -1), Some(4..5));
        assert_eq!(partial_range(5, -1, -2), Some(3..5));
        assert_eq!(partial_range(5, -2, -9), Some(0..4));
        assert_eq!(partial_range(5, -6, -9), None);
        assert_eq!(partial_range(3, 1, 4_294_967_295), Some(0..3));
        assert_eq!(partial_range(3, -4_294_967_295, -4_294_967_295), None);
    }
}
