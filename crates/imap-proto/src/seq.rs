//! Evaluating a [`SequenceSet`] against a mailbox: membership and
//! normalized ranges (RFC 9051 §9 `sequence-set`, §6.4.8 on `*`).
//!
//! `*` stands for `largest`: the number of messages for sequence numbers,
//! the largest UID in use for UIDs. `a:b` means the same as `b:a`. The
//! saved result `$` (RFC 5182) is resolved by the session, which holds it:
//! here it matches nothing.
//!
//! Empty mailbox (`largest == 0`): `*` has no value, so a range with a `*`
//! bound matches nothing at all (`1:*` is empty, as `UID FETCH 1:*` on an
//! empty mailbox returns nothing; RFC 9051 §6.4.8 and §9). Ranges without
//! `*` are kept as written; the session decides whether numbers beyond
//! `largest` are an error (sequence numbers) or simply absent (UIDs).
//!
//! Guarantees: no panics, no allocation proportional to the numbers (only
//! to the number of ranges), `ranges` is O(k log k) for k ranges.

use crate::types::{SeqBound, SequenceSet};

impl SeqBound {
    /// The value of this bound, or None for `*` in an empty mailbox.
    pub fn resolve(self, largest: u32) -> Option<u32> {
        match self {
            SeqBound::Num(n) => Some(n),
            SeqBound::Star if largest == 0 => None,
            SeqBound::Star => Some(largest),
        }
    }
}

impl SequenceSet {
    /// Whether `n` is in the set (see the module notes on `*` and `$`).
    pub fn contains(&self, n: u32, largest: u32) -> bool {
        let SequenceSet::Ranges(r) = self else {
            return false;
        };
        r.iter()
            .any(|&(a, b)| match (a.resolve(largest), b.resolve(largest)) {
                (Some(a), Some(b)) => a.min(b) <= n && n <= a.max(b),
                _ => false,
            })
    }

    /// The set as sorted, merged, inclusive `(lo, hi)` ranges with
    /// `lo <= hi`; adjacent ranges are merged (`1:2,3` gives `(1, 3)`).
    pub fn ranges(&self, largest: u32) -> Vec<(u32, u32)> {
        let SequenceSet::Ranges(r) = self else {
            return Vec::new();
        };
        let mut v: Vec<(u32, u32)> = r
            .iter()
            .filter_map(|&(a, b)| {
                let (a, b) = (a.resolve(largest)?, b.resolve(largest)?);
                Some((a.min(b), a.max(b)))
            })
            .collect();
        v.sort_unstable();
        let mut out: Vec<(u32, u32)> = Vec::with_capacity(v.len());
        for (lo, hi) in v {
            match out.last_mut() {
                Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
                _ => out.push((lo, hi)),
            }
        }
        out
    }

    /// True for `$`.
    pub fn is_saved(&self) -> bool {
        matches!(self, SequenceSet::Saved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use SeqBound::{Num, Star};

    fn set(r: &[(SeqBound, SeqBound)]) -> SequenceSet {
        SequenceSet::Ranges(r.to_vec())
    }

    #[test]
    fn contains() {
        let s = set(&[(Num(1), Num(4)), (Num(7), Num(7)), (Num(9), Star)]);
        let cases = [
            (1, 10, true),
            (4, 10, true),
            (5, 10, false),
            (7, 10, true),
            (8, 10, false),
            (9, 10, true),
            (10, 10, true),
            (11, 10, false),
            (0, 10, false),
        ];
        for (n, largest, want) in cases {
            assert_eq!(s.contains(n, largest), want, "{n} of {largest}");
        }
        // 9:* with largest 5 means 5:9.
        assert!(s.contains(5, 5));
        assert!(s.contains(6, 5));
        // Reversed ranges.
        assert!(set(&[(Num(10), Num(3))]).contains(5, 20));
        assert!(set(&[(Star, Num(3))]).contains(5, 20));
        assert!(!set(&[(Star, Num(3))]).contains(21, 20));
        // Empty mailbox: `*` matches nothing.
        assert!(!set(&[(Num(1), Star)]).contains(1, 0));
        assert!(!set(&[(Star, Star)]).contains(0, 0));
        assert!(set(&[(Num(1), Num(1))]).contains(1, 0));
        assert!(!SequenceSet::Saved.contains(1, 10));
    }

    #[test]
    fn ranges() {
        let s = set(&[
            (Num(9), Star),
            (Num(4), Num(1)),
            (Num(7), Num(7)),
            (Num(5), Num(5)),
            (Num(2), Num(3)),
        ]);
        assert_eq!(s.ranges(20), vec![(1, 5), (7, 7), (9, 20)]);
        assert_eq!(s.ranges(3), vec![(1, 9)]); // 9:* is 3:9
        assert_eq!(s.ranges(0), vec![(1, 5), (7, 7)]);
        assert_eq!(set(&[(Num(1), Star)]).ranges(0), vec![]);
        assert_eq!(
            set(&[(Num(u32::MAX), Num(1)), (Num(5), Num(5))]).ranges(1),
            vec![(1, u32::MAX)]
        );
        assert_eq!(
            set(&[
                (Num(u32::MAX), Num(u32::MAX)),
                (Num(u32::MAX - 1), Num(u32::MAX - 1))
            ])
            .ranges(1),
            vec![(u32::MAX - 1, u32::MAX)]
        );
        assert_eq!(SequenceSet::Saved.ranges(10), vec![]);
    }
}
