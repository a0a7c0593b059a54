//! Which names LIST and LSUB return, and with what (pure: the mailboxes,
//! the subscriptions and the command in, the entries out; the session
//! writes them).
//!
//! - LIST: every mailbox matching a pattern, and every missing ancestor of
//!   one (a placeholder, so that `%` shows the hierarchy).
//! - LIST (SUBSCRIBED) (RFC 5258 §3.1): every subscribed name matching,
//!   whether its mailbox exists or not (`\NonExistent` then: DELETE keeps
//!   the subscription, RFC 9051 §6.3.4); with RECURSIVEMATCH (§3.5) also a
//!   name that matches but is not itself selected, when a subscribed
//!   descendant of it does not match any pattern (so it is not returned
//!   itself): that name carries `CHILDINFO ("SUBSCRIBED")`.
//! - LSUB (RFC 3501 §6.3.9): every subscribed name matching; and, for a
//!   `%` pattern, a name that matches and is not subscribed but has a
//!   subscribed descendant is returned `\Noselect` ("foo" for a subscribed
//!   "foo/bar").

use super::mailboxes::matches;
use facteur_imap_proto::ListSelect;
use facteur_store::MailboxInfo;
use std::collections::BTreeSet;

/// One name to return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Listed<'a> {
    pub name: String,
    /// The mailbox, when it exists.
    pub info: Option<&'a MailboxInfo>,
    pub subscribed: bool,
    /// An existing mailbox below it.
    pub has_children: bool,
    /// RECURSIVEMATCH: `CHILDINFO ("SUBSCRIBED")`.
    pub childinfo: bool,
    /// LSUB: returned for a subscribed descendant only.
    pub lsub_noselect: bool,
}

fn ancestors(name: &str) -> impl Iterator<Item = &str> {
    name.match_indices('/').map(move |(i, _)| &name[..i])
}

fn below(d: &str, n: &str) -> bool {
    d.len() > n.len() && d.starts_with(n) && d.as_bytes()[n.len()] == b'/'
}

/// The entries for `pats` (already in store terms; none matches nothing).
pub(crate) fn listing<'a>(
    boxes: &'a [MailboxInfo],
    subs: &BTreeSet<String>,
    pats: &[String],
    select: &ListSelect,
    lsub: bool,
) -> Vec<Listed<'a>> {
    let matching = |n: &str| pats.iter().any(|p| matches(p, n));
    let existing: BTreeSet<&str> = boxes.iter().map(|b| b.name.as_str()).collect();
    let by_subscription = lsub || select.subscribed;
    let mut universe: BTreeSet<&str> = BTreeSet::new();
    for n in existing.iter().copied() {
        universe.insert(n);
        universe.extend(ancestors(n));
    }
    if by_subscription {
        for s in subs {
            universe.insert(s);
            universe.extend(ancestors(s));
        }
    }
    let mut names: Vec<&str> = universe.into_iter().collect();
    // INBOX first, as the store lists it.
    names.sort_by_key(|n| (*n != "INBOX", *n));
    let mut out = Vec::new();
    for n in names {
        if !matching(n) {
            continue;
        }
        let info = boxes.iter().find(|b| b.name == n);
        let subscribed = subs.contains(n);
        let entry = |childinfo, lsub_noselect| Listed {
            name: n.to_string(),
            info,
            subscribed,
            has_children: existing.iter().any(|d| below(d, n)),
            childinfo,
            lsub_noselect,
        };
        if lsub {
            if subscribed {
                out.push(entry(false, false));
            } else if subs.iter().any(|d| below(d, n))
                && pats.iter().any(|p| p.contains('%') && matches(p, n))
            {
                out.push(entry(false, true));
            }
            continue;
        }
        if select.special_use && info.is_none_or(|i| i.special_use.is_none()) {
            continue;
        }
        if select.subscribed {
            let childinfo =
                select.recursive_match && subs.iter().any(|d| below(d, n) && !matching(d));
            if subscribed || childinfo {
                out.push(entry(childinfo, false));
            }
            continue;
        }
        out.push(entry(false, false));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mb(name: &str) -> MailboxInfo {
        MailboxInfo {
            name: name.into(),
            special_use: None,
            subscribed: false,
        }
    }

    fn names(v: &[Listed<'_>]) -> Vec<String> {
        v.iter()
            .map(|l| {
                let mut s = l.name.clone();
                if l.info.is_none() {
                    s.push_str(" nonexistent");
                }
                if l.subscribed {
                    s.push_str(" subscribed");
                }
                if l.childinfo {
                    s.push_str(" childinfo");
                }
                if l.lsub_noselect {
                    s.push_str(" noselect");
                }
                s
            })
            .collect()
    }

    fn set(v: &[&str]) -> BTreeSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn pats(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    const SUB: ListSelect = ListSelect {
        subscribed: true,
        remote: false,
        recursive_match: false,
        special_use: false,
    };
    const RECURSIVE: ListSelect = ListSelect {
        subscribed: true,
        remote: false,
        recursive_match: true,
        special_use: false,
    };

    #[test]
    fn lsub_returns_parents_of_subscribed_children_as_noselect_for_percent() {
        let boxes = [
            mb("INBOX"),
            mb("t"),
            mb("t/test"),
            mb("t/test2"),
            mb("t/test2/test"),
            mb("t/test3/test3"),
        ];
        let subs = set(&["t/test", "t/test2/test", "t/test3/test3"]);
        let l = listing(&boxes, &subs, &pats(&["t/%"]), &ListSelect::default(), true);
        assert_eq!(
            names(&l),
            [
                "t/test subscribed",
                "t/test2 noselect",
                "t/test3 nonexistent noselect"
            ]
        );
        let l = listing(
            &boxes,
            &subs,
            &pats(&["*test"]),
            &ListSelect::default(),
            true,
        );
        assert_eq!(names(&l), ["t/test subscribed", "t/test2/test subscribed"]);
        let l = listing(&boxes, &subs, &pats(&["t/*"]), &ListSelect::default(), true);
        assert_eq!(
            names(&l),
            [
                "t/test subscribed",
                "t/test2/test subscribed",
                "t/test3/test3 subscribed"
            ]
        );
    }

    #[test]
    fn list_subscribed_keeps_deleted_mailboxes_and_recursivematch_gives_childinfo() {
        let boxes = [
            mb("INBOX"),
            mb("m"),
            mb("m/test1"),
            mb("m/test2"),
            mb("m/test2/test1"),
            mb("m/test7"),
            mb("m/test7/test7"),
            mb("m/test8"),
            mb("m/test8/test8"),
            mb("m/test8/test9"),
        ];
        let subs = set(&[
            "m/test1",
            "m/test2/test1",
            "m/test6",
            "m/test7/test7",
            "m/test8/test8",
            "m/test8/test9",
        ]);
        let l = listing(&boxes, &subs, &pats(&["m/*"]), &SUB, false);
        assert_eq!(
            names(&l),
            [
                "m/test1 subscribed",
                "m/test2/test1 subscribed",
                "m/test6 nonexistent subscribed",
                "m/test7/test7 subscribed",
                "m/test8/test8 subscribed",
                "m/test8/test9 subscribed"
            ]
        );
        let l = listing(&boxes, &subs, &pats(&["m/test2%"]), &RECURSIVE, false);
        assert_eq!(names(&l), ["m/test2 childinfo"]);
        assert!(l[0].has_children);
        // The subscribed child is returned itself: no CHILDINFO for the parent.
        let l = listing(&boxes, &subs, &pats(&["m*test7"]), &RECURSIVE, false);
        assert_eq!(names(&l), ["m/test7/test7 subscribed"]);
        let l = listing(
            &boxes,
            &subs,
            &pats(&["m/test2", "m/test2/test1"]),
            &RECURSIVE,
            false,
        );
        assert_eq!(names(&l), ["m/test2/test1 subscribed"]);
        let l = listing(&boxes, &subs, &pats(&["m*test8"]), &RECURSIVE, false);
        assert_eq!(names(&l), ["m/test8 childinfo", "m/test8/test8 subscribed"]);
        // Without SUBSCRIBED, a subscription of a missing mailbox is not listed.
        let l = listing(
            &boxes,
            &subs,
            &pats(&["m/%"]),
            &ListSelect::default(),
            false,
        );
        assert!(
            !names(&l).iter().any(|n| n.starts_with("m/test6")),
            "{:?}",
            names(&l)
        );
    }

    #[test]
    fn placeholders_and_no_patterns() {
        let boxes = [mb("INBOX"), mb("a/b/c")];
        let l = listing(
            &boxes,
            &BTreeSet::new(),
            &pats(&["%"]),
            &ListSelect::default(),
            false,
        );
        assert_eq!(names(&l), ["INBOX", "a nonexistent"]);
        assert!(l[1].has_children);
        assert!(listing(&boxes, &BTreeSet::new(), &[], &ListSelect::default(), false).is_empty());
    }
}
