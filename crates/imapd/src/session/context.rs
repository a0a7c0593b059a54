//! Search contexts (CONTEXT=SEARCH and CONTEXT=SORT, RFC 5267 §4): a
//! SEARCH or SORT with `RETURN (UPDATE)` keeps its result, and while the
//! mailbox stays selected the session reports how it changes — `ESEARCH
//! (TAG "t") ADDTO (position set)` and `REMOVEFROM (position set)` — until
//! CANCELUPDATE.
//!
//! Only the messages that changed are evaluated again: those added to the
//! mailbox and those whose flags changed (a message's text never changes;
//! an expunged one leaves every result). A SORT result takes a new message
//! at its place by a binary search, reading the headers of the O(log n)
//! messages it is compared with. Positions are 1-based. For SORT, each
//! run of neighbouring positions gets its own line, in an order where every
//! line applies to the result as the lines before left it (removals from
//! the end, additions from the start); for SEARCH, whose order the numbers
//! give, one line with the first position says it all. Removals of
//! expunged messages go out before their EXPUNGE lines, in the numbers the
//! client still has.
//!
//! A session keeps at most `MAX_CONTEXTS`; one more is refused with
//! `NO [NOUPDATE "tag"]`, as RFC 5267 §4.1 provides.

use super::search::esearch_items;
use super::sort::{Value, compare, ordered_set};
use super::{Flow, Session};
use facteur_imap_proto::{SearchKey, SortCriterion, encode};
use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::io;
use tokio::io::{AsyncRead, AsyncWrite};

/// The most search contexts one session keeps at once.
pub(crate) const MAX_CONTEXTS: usize = 16;

/// A search whose result the client keeps up to date.
pub(crate) struct SearchContext {
    /// The tag of the SEARCH or SORT (the client's name for it).
    tag: String,
    /// Whether its numbers are UIDs.
    uid: bool,
    key: SearchKey,
    /// SORT's criteria; None for SEARCH (the result in mailbox order).
    sort: Option<Vec<SortCriterion>>,
    /// The UIDs of the result, in its order.
    result: Vec<u32>,
}

/// Which way a result changed.
#[derive(Clone, Copy)]
enum Change {
    Add,
    Remove,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    /// Whether one more context fits; if not, the NO is sent.
    pub(super) fn context_allowed(&mut self, tag: &str) -> bool {
        let n = self
            .sel
            .as_ref()
            .map_or(0, |s| s.contexts.iter().filter(|c| c.tag != tag).count());
        if n < MAX_CONTEXTS {
            return true;
        }
        let mut t = Vec::new();
        encode::string(&mut t, tag.as_bytes(), false);
        self.no(
            tag,
            &format!(
                "[NOUPDATE {}] Too many searches kept up to date (at most {MAX_CONTEXTS})",
                String::from_utf8_lossy(&t)
            ),
        );
        false
    }

    /// Keeps the result of the search `tag` up to date (a context with the
    /// same tag is replaced).
    pub(super) fn add_context(
        &mut self,
        tag: &str,
        uid: bool,
        key: SearchKey,
        sort: Option<Vec<SortCriterion>>,
        result: Vec<u32>,
    ) {
        if let Some(sel) = &mut self.sel {
            sel.contexts.retain(|c| c.tag != tag);
            sel.contexts.push(SearchContext {
                tag: tag.to_string(),
                uid,
                key,
                sort,
                result,
            });
        }
    }

    /// CANCELUPDATE: the contexts named stop (a name that is none of
    /// them is no error: it may have ended with its mailbox).
    pub(super) fn cancel_update(&mut self, tag: &str, tags: &[String]) -> io::Result<Flow> {
        if let Some(sel) = &mut self.sel {
            sel.contexts.retain(|c| !tags.contains(&c.tag));
        }
        self.ok(tag, "CANCELUPDATE completed");
        Ok(Flow::Continue)
    }

    /// REMOVEFROM for expunged messages, before their EXPUNGE (or
    /// VANISHED) lines: `gone` holds (UID, sequence number before any of
    /// them went).
    pub(super) fn contexts_expunged(&mut self, gone: &[(u32, usize)]) {
        let Some(sel) = &mut self.sel else { return };
        if sel.contexts.is_empty() || gone.is_empty() {
            return;
        }
        let seq_of: HashMap<u32, u32> = gone.iter().map(|&(u, s)| (u, s as u32)).collect();
        let mut contexts = std::mem::take(&mut sel.contexts);
        let mut out = String::new();
        for c in &mut contexts {
            let at: Vec<usize> = (0..c.result.len())
                .filter(|&i| seq_of.contains_key(&c.result[i]))
                .collect();
            let num = |u: u32| if c.uid { u } else { seq_of[&u] };
            write_changes(&mut out, c, Change::Remove, &at, &num);
            let gone: HashSet<u32> = at.iter().map(|&i| c.result[i]).collect();
            c.result.retain(|u| !gone.contains(u));
        }
        self.io.write(out.as_bytes());
        if let Some(sel) = &mut self.sel {
            sel.contexts = contexts;
        }
    }

    /// ADDTO and REMOVEFROM for the messages with `uids` (added to the
    /// mailbox, or with changed flags), after their EXISTS.
    pub(super) fn contexts_touched(&mut self, uids: &[u32]) {
        let Some(sel) = &mut self.sel else { return };
        if sel.contexts.is_empty() || uids.is_empty() {
            return;
        }
        let mut contexts = std::mem::take(&mut sel.contexts);
        let Some(sel) = &self.sel else { return };
        let msgs = sel.mb.messages();
        let mut positions: Vec<usize> = uids
            .iter()
            .filter_map(|u| msgs.binary_search_by_key(u, |m| m.uid).ok())
            .collect();
        positions.sort_unstable();
        positions.dedup();
        let seq_of = |u: u32| {
            msgs.binary_search_by_key(&u, |m| m.uid)
                .map_or(0, |i| i as u32 + 1)
        };
        let mut out = String::new();
        for c in &mut contexts {
            let now: HashSet<u32> = self
                .matching_at(&c.key, positions.iter().copied())
                .into_iter()
                .map(|i| msgs[i].uid)
                .collect();
            let touched: HashSet<u32> = positions.iter().map(|&i| msgs[i].uid).collect();
            let num = |u: u32| if c.uid { u } else { seq_of(u) };
            // Removals first, at their positions in the result as it is.
            let at: Vec<usize> = (0..c.result.len())
                .filter(|&i| touched.contains(&c.result[i]) && !now.contains(&c.result[i]))
                .collect();
            write_changes(&mut out, c, Change::Remove, &at, &num);
            c.result.retain(|u| !touched.contains(u) || now.contains(u));
            let had: HashSet<u32> = c.result.iter().copied().collect();
            let mut added: Vec<u32> = now.into_iter().filter(|u| !had.contains(u)).collect();
            if added.is_empty() {
                continue;
            }
            added.sort_unstable();
            match &c.sort {
                None => {
                    c.result.extend_from_slice(&added);
                    c.result.sort_unstable();
                }
                Some(criteria) => {
                    let mut cache: HashMap<u32, Vec<Value>> = HashMap::new();
                    let mut values = |u: u32| -> Vec<Value> {
                        cache
                            .entry(u)
                            .or_insert_with(|| self.sort_values(criteria, seq_of(u), u))
                            .clone()
                    };
                    for &u in &added {
                        let v = values(u);
                        let at = c.result.partition_point(|&x| {
                            compare(criteria, &values(x), &v).then(x.cmp(&u)) == Ordering::Less
                        });
                        c.result.insert(at, u);
                    }
                }
            }
            let added: HashSet<u32> = added.into_iter().collect();
            let at: Vec<usize> = (0..c.result.len())
                .filter(|&i| added.contains(&c.result[i]))
                .collect();
            write_changes(&mut out, c, Change::Add, &at, &num);
        }
        self.io.write(out.as_bytes());
        if let Some(sel) = &mut self.sel {
            sel.contexts = contexts;
        }
    }
}

/// The ESEARCH lines of one change to `c`'s result: the messages at the
/// 0-based positions `at` (ascending) of the result (before a removal,
/// after an addition), numbered by `num`.
fn write_changes(
    out: &mut String,
    c: &SearchContext,
    change: Change,
    at: &[usize],
    num: &dyn Fn(u32) -> u32,
) {
    if at.is_empty() {
        return;
    }
    let word = match change {
        Change::Add => "ADDTO",
        Change::Remove => "REMOVEFROM",
    };
    let mut line = |first: usize, set: String| {
        esearch_items(out, &c.tag, c.uid, &[], &[], encode::seq_set);
        out.push_str(&format!(" {word} ({} {set})\r\n", first + 1));
    };
    if c.sort.is_none() {
        let nums: Vec<u32> = at.iter().map(|&i| num(c.result[i])).collect();
        line(at[0], encode::seq_set(&nums));
        return;
    }
    let mut runs: Vec<&[usize]> = at.chunk_by(|a, b| b.checked_sub(*a) == Some(1)).collect();
    if let Change::Remove = change {
        runs.reverse();
    }
    for run in runs {
        let nums: Vec<u32> = run.iter().map(|&i| num(c.result[i])).collect();
        line(run[0], ordered_set(&nums));
    }
}
