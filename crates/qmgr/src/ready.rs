//! The messages in active/ that wait for a delivery slot, in two lines.
//!
//! Offers [`Ready`]: [`Ready::push`] (with the line, [`Line`]),
//! [`Ready::pop`] (the next message to attempt), and the lengths the
//! scheduler's back-pressure reads. Pure bookkeeping, no I/O.
//!
//! - **New mail** ([`Line::New`]): picked up from maildrop/ and
//!   incoming/, released or flushed one by one by the administrator;
//! - **Backlog** ([`Line::Backlog`]): due or flushed from deferred/,
//!   found in active/ at start-up or by a scan.
//!
//! When both lines hold messages, slots go to them in turn, so new mail
//! never waits behind a backlog of any size (a flush of 100,000 deferred
//! messages after an outage), and a steady stream of new mail never
//! starves the backlog (Postfix's queue manager alternates its incoming
//! and deferred queues the same way). Within a line, first in, first out.
//!
//! Invariant: an id is in at most one line, once (a second push is
//! ignored and says so).

use std::collections::{HashSet, VecDeque};

/// Which line a message waits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line {
    New,
    Backlog,
}

/// The two lines.
#[derive(Debug, Default)]
pub struct Ready {
    new: VecDeque<String>,
    backlog: VecDeque<String>,
    members: HashSet<String>,
    /// The backlog had the last slot given while both lines waited.
    backlog_last: bool,
}

impl Ready {
    /// Queues `id` at the end of `line`; false if it already waits.
    pub fn push(&mut self, id: String, line: Line) -> bool {
        if !self.members.insert(id.clone()) {
            return false;
        }
        match line {
            Line::New => self.new.push_back(id),
            Line::Backlog => self.backlog.push_back(id),
        }
        true
    }

    /// The next message to attempt: the lines in turn while both wait.
    pub fn pop(&mut self) -> Option<String> {
        let from_backlog = match (self.new.is_empty(), self.backlog.is_empty()) {
            (true, true) => return None,
            (false, true) => false,
            (true, false) => true,
            (false, false) => !self.backlog_last,
        };
        let id = if from_backlog {
            self.backlog.pop_front()
        } else {
            self.new.pop_front()
        }?;
        if !self.new.is_empty() || !self.backlog.is_empty() {
            self.backlog_last = from_backlog;
        }
        self.members.remove(&id);
        Some(id)
    }

    pub fn contains(&self, id: &str) -> bool {
        self.members.contains(id)
    }

    pub fn new_len(&self) -> usize {
        self.new.len()
    }

    pub fn backlog_len(&self) -> usize {
        self.backlog.len()
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(r: &mut Ready) -> Vec<String> {
        std::iter::from_fn(|| r.pop()).collect()
    }

    #[test]
    fn lines_take_turns_and_keep_their_order() {
        let mut r = Ready::default();
        for i in 0..5 {
            assert!(r.push(format!("B{i}"), Line::Backlog));
        }
        assert_eq!(r.pop().as_deref(), Some("B0"));
        r.push("N0".into(), Line::New);
        r.push("N1".into(), Line::New);
        assert_eq!((r.new_len(), r.backlog_len(), r.len()), (2, 4, 6));
        assert_eq!(drain(&mut r), ["N0", "B1", "N1", "B2", "B3", "B4"]);
        assert!(r.is_empty());
    }

    #[test]
    fn new_mail_is_next_or_second_behind_any_backlog() {
        let mut r = Ready::default();
        for i in 0..100_000 {
            r.push(format!("B{i}"), Line::Backlog);
        }
        for _ in 0..1000 {
            r.pop();
        }
        r.push("NEW".into(), Line::New);
        let next: Vec<String> = (0..2).filter_map(|_| r.pop()).collect();
        assert!(next.iter().any(|i| i == "NEW"), "{next:?}");
    }

    #[test]
    fn an_id_waits_once() {
        let mut r = Ready::default();
        assert!(r.push("A".into(), Line::New));
        assert!(!r.push("A".into(), Line::Backlog));
        assert!(r.contains("A"));
        assert_eq!(drain(&mut r), ["A"]);
        assert!(!r.contains("A"));
        assert!(r.push("A".into(), Line::Backlog));
    }
}
