//! SORT and UID SORT (RFC 5256), their RETURN options (ESORT, RFC 5267
//! §3.2), DISPLAYFROM/DISPLAYTO (SORT=DISPLAY, RFC 5957), and THREAD /
//! UID THREAD with ORDEREDSUBJECT and REFERENCES (RFC 5256).
//!
//! The messages are chosen as SEARCH chooses them (search.rs); then each
//! matching message's header is read once (only when a key needs it:
//! ARRIVAL and SIZE come from the index), its keys extracted
//! (facteur_imap_message::sort) and the list sorted. Ties keep mailbox
//! order (RFC 5256 §3). THREAD builds its trees with
//! facteur_imap_message::thread.

use super::search::{Hit, esearch_items};
use super::{Flow, Session};
use facteur_imap_message::Message;
use facteur_imap_message::sort::{ThreadIds, base_subject};
use facteur_imap_message::thread::{self, ThreadMessage};
use facteur_imap_proto::{SearchKey, SearchReturn, SortCriterion, SortKey, ThreadAlgorithm};
use std::cmp::Ordering;
use std::io;
use tokio::io::{AsyncRead, AsyncWrite};

/// One message's value for one key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Value {
    Num(i64),
    Text(String),
}

fn needs_header(k: SortKey) -> bool {
    !matches!(k, SortKey::Arrival | SortKey::Size)
}

/// The sent date (RFC 5256 §2.2): the Date field in UTC, else INTERNALDATE.
fn sent_date(m: Option<&Message<'_>>, internal: i64) -> i64 {
    m.and_then(Message::sent_date).unwrap_or(internal)
}

fn value(k: SortKey, m: Option<&Message<'_>>, internal: i64, size: u64) -> Value {
    let text = |f: &dyn Fn(&Message<'_>) -> String| Value::Text(m.map(f).unwrap_or_default());
    match k {
        SortKey::Arrival => Value::Num(internal),
        SortKey::Size => Value::Num(i64::try_from(size).unwrap_or(i64::MAX)),
        SortKey::Date => Value::Num(sent_date(m, internal)),
        SortKey::Subject => text(&|m| base_subject(&m.subject()).0),
        SortKey::From => text(&|m| m.sort_address("from")),
        SortKey::To => text(&|m| m.sort_address("to")),
        SortKey::Cc => text(&|m| m.sort_address("cc")),
        SortKey::DisplayFrom => text(&|m| m.display_address("from")),
        SortKey::DisplayTo => text(&|m| m.display_address("to")),
    }
}

/// The order of two messages' values under `criteria` (ties: Equal; the
/// caller breaks them by mailbox order).
pub(super) fn compare(criteria: &[SortCriterion], a: &[Value], b: &[Value]) -> Ordering {
    for (i, c) in criteria.iter().enumerate() {
        let o = a[i].cmp(&b[i]);
        let o = if c.reverse { o.reverse() } else { o };
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

/// Numbers in the order given, as a sequence set: ascending runs become
/// ranges (`3:4,2`, RFC 5267 §3.2: ALL keeps the sort order).
pub(super) fn ordered_set(nums: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < nums.len() {
        let mut j = i;
        while j + 1 < nums.len() && nums[j + 1] == nums[j].wrapping_add(1) {
            j += 1;
        }
        if !out.is_empty() {
            out.push(',');
        }
        if j > i {
            out.push_str(&format!("{}:{}", nums[i], nums[j]));
        } else {
            out.push_str(&nums[i].to_string());
        }
        i = j + 1;
    }
    out
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    /// Reads the header of the message with `uid` (None if unreadable: it
    /// sorts as one without the fields).
    fn header_of(&self, uid: u32) -> Option<facteur_store::Content> {
        self.sel.as_ref()?.mb.read_header(uid).ok()
    }

    /// The values of the message at `seq` (with `uid`) for `criteria`; its
    /// header is read only if a criterion needs it.
    pub(super) fn sort_values(&self, criteria: &[SortCriterion], seq: u32, uid: u32) -> Vec<Value> {
        let header = criteria.iter().any(|c| needs_header(c.key));
        let raw = if header { self.header_of(uid) } else { None };
        let m = raw.as_deref().map(Message::parse);
        let (internal, size) = (self.internal_date(seq), self.size(seq));
        criteria
            .iter()
            .map(|c| value(c.key, m.as_ref(), internal, size))
            .collect()
    }

    fn internal_date(&self, seq: u32) -> i64 {
        self.sel
            .as_ref()
            .and_then(|s| s.mb.messages().get(seq as usize - 1))
            .map_or(0, |m| m.internal_date)
    }

    fn size(&self, seq: u32) -> u64 {
        self.sel
            .as_ref()
            .and_then(|s| s.mb.messages().get(seq as usize - 1))
            .map_or(0, |m| m.size)
    }

    pub(super) fn sort(
        &mut self,
        tag: &str,
        uid: bool,
        ret: Option<Vec<SearchReturn>>,
        criteria: Vec<SortCriterion>,
        charset: String,
        key: SearchKey,
    ) -> io::Result<Flow> {
        let dates = criteria
            .iter()
            .any(|c| matches!(c.key, SortKey::Arrival | SortKey::Date));
        if !self.search_allowed(tag, Some(&charset), &key, dates) {
            return Ok(Flow::Continue);
        }
        let update = ret
            .as_ref()
            .is_some_and(|o| o.contains(&SearchReturn::Update));
        if update && !self.context_allowed(tag) {
            return Ok(Flow::Continue);
        }
        let hits = self.matching(&key);
        let mut keyed: Vec<(Vec<Value>, Hit)> = hits
            .into_iter()
            .map(|h| (self.sort_values(&criteria, h.0, h.1), h))
            .collect();
        keyed.sort_by(|(a, ha), (b, hb)| compare(&criteria, a, b).then(ha.0.cmp(&hb.0)));
        let nums: Vec<u32> = keyed
            .iter()
            .map(|(_, h)| if uid { h.1 } else { h.0 })
            .collect();
        let mut out = String::new();
        match ret {
            None => {
                out.push_str("* SORT");
                for n in &nums {
                    out.push_str(&format!(" {n}"));
                }
            }
            Some(opts) => {
                let opts = if opts.is_empty() {
                    vec![SearchReturn::All]
                } else {
                    opts
                };
                // SAVE keeps the matches as SEARCH does (RFC 5182 §2.4
                // allows it with SORT).
                esearch_items(&mut out, tag, uid, &opts, &nums, ordered_set);
                if opts.contains(&SearchReturn::Save) {
                    self.saved = keyed.iter().map(|(_, h)| h.1).collect();
                    self.saved.sort_unstable();
                }
            }
        }
        out.push_str("\r\n");
        self.io.write(out.as_bytes());
        if update {
            let result = keyed.iter().map(|(_, h)| h.1).collect();
            self.add_context(tag, uid, key, Some(criteria), result);
        }
        if uid {
            return self.announce_and_ok(tag, "SORT completed");
        }
        self.ok(tag, "SORT completed");
        Ok(Flow::Continue)
    }

    pub(super) fn thread(
        &mut self,
        tag: &str,
        uid: bool,
        algorithm: ThreadAlgorithm,
        charset: String,
        key: SearchKey,
    ) -> io::Result<Flow> {
        if !self.search_allowed(tag, Some(&charset), &key, true) {
            return Ok(Flow::Continue);
        }
        let hits = self.matching(&key);
        let mut msgs = Vec::with_capacity(hits.len());
        for h in hits {
            let raw = self.header_of(h.1);
            let m = raw.as_deref().map(Message::parse);
            let (base, reply) = m
                .as_ref()
                .map_or((String::new(), false), |m| base_subject(&m.subject()));
            let ids = match (&m, algorithm) {
                (Some(m), ThreadAlgorithm::References) => m.thread_ids(),
                _ => ThreadIds::default(),
            };
            msgs.push(ThreadMessage {
                id: if uid { h.1 } else { h.0 },
                date: sent_date(m.as_ref(), self.internal_date(h.0)),
                base_subject: base,
                reply,
                ids,
            });
        }
        let forest = match algorithm {
            ThreadAlgorithm::OrderedSubject => thread::ordered_subject(&msgs),
            ThreadAlgorithm::References => thread::references(&msgs),
        };
        let mut out = String::from("* THREAD");
        if !forest.roots.is_empty() {
            out.push(' ');
            thread::write(&mut out, &forest);
        }
        out.push_str("\r\n");
        self.io.write(out.as_bytes());
        if uid {
            return self.announce_and_ok(tag, "THREAD completed");
        }
        self.ok(tag, "THREAD completed");
        Ok(Flow::Continue)
    }
}

#[cfg(test)]
mod tests {
    use super::ordered_set;

    #[test]
    fn ordered_sets_keep_the_order() {
        assert_eq!(ordered_set(&[1, 2, 3, 4, 5]), "1:5");
        assert_eq!(ordered_set(&[5, 3, 4, 2, 1]), "5,3:4,2,1");
        assert_eq!(ordered_set(&[]), "");
        assert_eq!(ordered_set(&[7]), "7");
    }
}
