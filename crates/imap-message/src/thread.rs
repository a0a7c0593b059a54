//! THREAD=ORDEREDSUBJECT and THREAD=REFERENCES (RFC 5256 §3), over what
//! [`crate::sort`] extracted from each message, and the THREAD response's
//! nested-list syntax.
//!
//! Pure; no recursion deeper than the input allows to matter: containers
//! live in one arena, loops are refused when links are made (a parent chain
//! is walked, bounded by the number of containers), and the tree walks are
//! iterative where depth is chosen by the input (a References chain of 256
//! ids per message can make a long path).

use std::collections::HashMap;

use crate::sort::ThreadIds;

/// One message as THREAD sees it.
#[derive(Debug, Clone)]
pub struct ThreadMessage {
    /// What the response names it by (sequence number or UID).
    pub id: u32,
    /// Sent date (the Date field, else INTERNALDATE), unix seconds.
    pub date: i64,
    /// [`crate::sort::base_subject`]'s result.
    pub base_subject: String,
    pub reply: bool,
    pub ids: ThreadIds,
}

/// The threads found: a forest in one arena (no nesting of values, so a
/// thread thousands deep is dropped and written without recursion).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Forest {
    pub nodes: Vec<Node>,
    /// The threads, in order.
    pub roots: Vec<usize>,
}

/// A message (None: a dummy grouping its children) and its replies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub id: Option<u32>,
    pub children: Vec<usize>,
}

/// THREAD=ORDEREDSUBJECT: messages grouped by base subject, each group's
/// first (by date) the parent of the others; threads ordered by the date of
/// their first message. `msgs` in mailbox order (ties keep it).
pub fn ordered_subject(msgs: &[ThreadMessage]) -> Forest {
    let mut order: Vec<usize> = (0..msgs.len()).collect();
    order.sort_by(|&a, &b| {
        (&msgs[a].base_subject, msgs[a].date, a).cmp(&(&msgs[b].base_subject, msgs[b].date, b))
    });
    let mut f = Forest::default();
    let mut threads: Vec<(i64, usize, usize)> = Vec::new();
    let mut i = 0;
    while i < order.len() {
        let first = order[i];
        let mut j = i + 1;
        let parent = f.nodes.len();
        f.nodes.push(Node {
            id: Some(msgs[first].id),
            children: Vec::new(),
        });
        while j < order.len() && msgs[order[j]].base_subject == msgs[first].base_subject {
            let child = f.nodes.len();
            f.nodes[parent].children.push(child);
            f.nodes.push(Node {
                id: Some(msgs[order[j]].id),
                children: Vec::new(),
            });
            j += 1;
        }
        threads.push((msgs[first].date, first, parent));
        i = j;
    }
    threads.sort_by_key(|t| (t.0, t.1));
    f.roots = threads.into_iter().map(|t| t.2).collect();
    f
}

/// Deepest thread built: a reply further down starts a thread of its own.
pub const MAX_DEPTH: usize = 1000;

#[derive(Default)]
struct Container {
    msg: Option<usize>,
    parent: Option<usize>,
    children: Vec<usize>,
}

struct Arena {
    c: Vec<Container>,
}

impl Arena {
    fn new_container(&mut self) -> usize {
        self.c.push(Container::default());
        self.c.len() - 1
    }

    /// Whether `a` is `b` or one of its ancestors; also true when `b` is
    /// deeper than [`MAX_DEPTH`], so no chain grows past it (each check
    /// costs at most that many steps, whatever the mailbox holds).
    fn is_ancestor(&self, a: usize, b: usize) -> bool {
        let mut cur = Some(b);
        let mut steps = 0;
        while let Some(x) = cur {
            if x == a || steps >= MAX_DEPTH {
                return true;
            }
            steps += 1;
            cur = self.c[x].parent;
        }
        false
    }

    fn unlink(&mut self, child: usize) {
        if let Some(p) = self.c[child].parent.take() {
            self.c[p].children.retain(|&k| k != child);
        }
    }

    fn link(&mut self, parent: usize, child: usize) {
        self.unlink(child);
        self.c[child].parent = Some(parent);
        self.c[parent].children.push(child);
    }
}

/// THREAD=REFERENCES (RFC 5256 §3, the algorithm of its "REFERENCES"
/// description, steps 1 to 6). `msgs` in mailbox order.
pub fn references(msgs: &[ThreadMessage]) -> Forest {
    let mut a = Arena {
        c: Vec::with_capacity(msgs.len() * 2),
    };
    let mut by_id: HashMap<&str, usize> = HashMap::with_capacity(msgs.len() * 2);
    // (1) Containers and links.
    for (mi, m) in msgs.iter().enumerate() {
        let own = match m.ids.message_id.as_deref() {
            Some(id) => match by_id.get(id) {
                Some(&c) if a.c[c].msg.is_none() => c,
                // A duplicate Message-ID: this one is unique.
                Some(_) => a.new_container(),
                None => {
                    let c = a.new_container();
                    by_id.insert(id, c);
                    c
                }
            },
            None => a.new_container(),
        };
        a.c[own].msg = Some(mi);
        // (A) The references, each the parent of the next, links that
        // exist kept, none that would make a loop.
        let mut prev: Option<usize> = None;
        for r in &m.ids.references {
            let c = match by_id.get(r.as_str()) {
                Some(&c) => c,
                None => {
                    let c = a.new_container();
                    by_id.insert(r, c);
                    c
                }
            };
            if let Some(p) = prev
                && a.c[c].parent.is_none()
                && !a.is_ancestor(c, p)
            {
                a.link(p, c);
            }
            prev = Some(c);
        }
        // (B) The message's parent is its last reference (none: a root).
        // A parent it had (from another message's References) goes first,
        // even when the new link would make a loop and is not made: the
        // message's own References are the better witness (Dovecot does
        // the same; imaptest's thread test expects it).
        a.unlink(own);
        if let Some(p) = prev
            && p != own
            && !a.is_ancestor(own, p)
        {
            a.link(p, own);
        }
    }
    // (2) The root set.
    let roots: Vec<usize> = (0..a.c.len())
        .filter(|&c| a.c[c].parent.is_none())
        .collect();
    // (3) Prune dummies.
    let mut roots = prune(&mut a, roots);
    // (4) Sort by date.
    let key = |a: &Arena, c: usize| -> (i64, usize) {
        let m = a.c[c]
            .msg
            .or_else(|| a.c[c].children.first().and_then(|&k| a.c[k].msg));
        m.map_or((i64::MAX, usize::MAX), |m| (msgs[m].date, m))
    };
    sort_all(&mut a, &mut roots, &key);
    // (5) Roots with one base subject join.
    let subject_of = |a: &Arena, c: usize| -> Option<usize> {
        a.c[c]
            .msg
            .or_else(|| a.c[c].children.first().and_then(|&k| a.c[k].msg))
    };
    let mut table: HashMap<&str, usize> = HashMap::new();
    for &r in &roots {
        let Some(m) = subject_of(&a, r) else { continue };
        let subj = msgs[m].base_subject.as_str();
        if subj.is_empty() {
            continue;
        }
        match table.get(subj) {
            None => {
                table.insert(subj, r);
            }
            Some(&old) => {
                let old_reply = a.c[old].msg.is_some_and(|m| msgs[m].reply);
                let this_reply = a.c[r].msg.is_some_and(|m| msgs[m].reply);
                if (a.c[r].msg.is_none() && a.c[old].msg.is_some())
                    || (old_reply && a.c[r].msg.is_some() && !this_reply)
                {
                    table.insert(subj, r);
                }
            }
        }
    }
    // Merge each root into the table's container for its subject. The
    // order of the root set does not matter here: step 6 sorts it.
    let mut added = Vec::new();
    for &r in &roots {
        let subj = match subject_of(&a, r) {
            Some(m) if !msgs[m].base_subject.is_empty() => msgs[m].base_subject.as_str(),
            _ => continue,
        };
        let Some(&t) = table.get(subj) else { continue };
        if t == r {
            continue;
        }
        let t_dummy = a.c[t].msg.is_none();
        let r_dummy = a.c[r].msg.is_none();
        let r_reply = a.c[r].msg.is_some_and(|m| msgs[m].reply);
        let t_reply = a.c[t].msg.is_some_and(|m| msgs[m].reply);
        if t_dummy && r_dummy {
            for k in std::mem::take(&mut a.c[r].children) {
                a.c[k].parent = None;
                a.link(t, k);
            }
        } else if t_dummy {
            a.link(t, r);
        } else if r_dummy {
            a.link(r, t);
            table.insert(subj, r);
        } else if r_reply && !t_reply {
            a.link(t, r);
        } else {
            // Neither is a reply of the other: a new dummy holds both.
            let d = a.new_container();
            a.link(d, t);
            a.link(d, r);
            table.insert(subj, d);
            added.push(d);
        }
    }
    let mut roots: Vec<usize> = roots
        .into_iter()
        .chain(added)
        .filter(|&c| {
            a.c[c].parent.is_none() && (a.c[c].msg.is_some() || !a.c[c].children.is_empty())
        })
        .collect();
    // (6) Sort every level again.
    sort_all(&mut a, &mut roots, &key);
    // The arena becomes the forest: containers map one to one to nodes.
    Forest {
        nodes: a
            .c
            .iter()
            .map(|c| Node {
                id: c.msg.map(|m| msgs[m].id),
                children: c.children.clone(),
            })
            .collect(),
        roots,
    }
}

/// Step 3: dummies without children go; a dummy's children take its place,
/// except at the root when there are several (they keep their dummy).
/// Post-order, iterative over the explicit stack.
fn prune(a: &mut Arena, roots: Vec<usize>) -> Vec<usize> {
    // Process containers children-first: an explicit post-order.
    let mut order = Vec::new();
    let mut stack: Vec<usize> = roots.clone();
    while let Some(c) = stack.pop() {
        order.push(c);
        stack.extend(a.c[c].children.iter().copied());
    }
    for &c in order.iter().rev() {
        let kids = std::mem::take(&mut a.c[c].children);
        let mut keep = Vec::with_capacity(kids.len());
        for k in kids {
            if a.c[k].msg.is_some() {
                keep.push(k);
            } else {
                // A non-root dummy: its (already pruned) children move up.
                let grand = std::mem::take(&mut a.c[k].children);
                for g in grand {
                    a.c[g].parent = Some(c);
                    keep.push(g);
                }
                a.c[k].parent = None;
            }
        }
        a.c[c].children = keep;
    }
    let mut out = Vec::with_capacity(roots.len());
    for r in roots {
        if a.c[r].msg.is_some() {
            out.push(r);
            continue;
        }
        match a.c[r].children.len() {
            0 => {}
            1 => {
                let k = a.c[r].children[0];
                a.c[r].children.clear();
                a.c[k].parent = None;
                out.push(k);
            }
            _ => out.push(r),
        }
    }
    out
}

/// Sorts every set of siblings under `roots` (deepest first) and `roots`.
fn sort_all(a: &mut Arena, roots: &mut [usize], key: &impl Fn(&Arena, usize) -> (i64, usize)) {
    let mut order = Vec::new();
    let mut stack: Vec<usize> = roots.to_vec();
    while let Some(c) = stack.pop() {
        order.push(c);
        stack.extend(a.c[c].children.iter().copied());
    }
    for &c in order.iter().rev() {
        let mut kids = std::mem::take(&mut a.c[c].children);
        kids.sort_by_key(|&k| key(a, k));
        a.c[c].children = kids;
    }
    roots.sort_by_key(|&r| key(a, r));
}

/// The THREAD response's data (RFC 5256 §4): `(1 2 (3)(4 5))(6)`.
/// Iterative: a chain of single children continues the list (`1 2 3`);
/// several children are a list each (`1 (2)(3)`).
pub fn write(out: &mut String, f: &Forest) {
    enum Step {
        Node(usize, bool),
        Open,
        Close,
    }
    let mut stack = Vec::new();
    for &r in f.roots.iter().rev() {
        stack.push(Step::Close);
        stack.push(Step::Node(r, false));
        stack.push(Step::Open);
    }
    while let Some(step) = stack.pop() {
        match step {
            Step::Open => out.push('('),
            Step::Close => out.push(')'),
            Step::Node(i, after_id) => {
                let Some(n) = f.nodes.get(i) else { continue };
                if let Some(id) = n.id {
                    if after_id {
                        out.push(' ');
                    }
                    out.push_str(&id.to_string());
                }
                let wrote = n.id.is_some() || after_id;
                match n.children.as_slice() {
                    [] => {}
                    &[only] => stack.push(Step::Node(only, wrote)),
                    several => {
                        if wrote {
                            out.push(' ');
                        }
                        for &k in several.iter().rev() {
                            stack.push(Step::Close);
                            stack.push(Step::Node(k, false));
                            stack.push(Step::Open);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(id: u32, date: i64, subject: &str, mid: &str, refs: &[&str]) -> ThreadMessage {
        let (base_subject, reply) = crate::sort::base_subject(subject);
        ThreadMessage {
            id,
            date,
            base_subject,
            reply,
            ids: ThreadIds {
                message_id: (!mid.is_empty()).then(|| mid.to_string()),
                references: refs.iter().map(|r| r.to_string()).collect(),
            },
        }
    }

    fn text(f: &Forest) -> String {
        let mut s = String::new();
        write(&mut s, f);
        s
    }

    #[test]
    fn ordered_subject_groups_by_base_subject_then_date() {
        let msgs = [
            m(1, 10, "a", "", &[]),
            m(2, 5, "b", "", &[]),
            m(3, 20, "Re: a", "", &[]),
            m(4, 30, "Re: a", "", &[]),
            m(5, 40, "Re: b", "", &[]),
            m(6, 1, "c", "", &[]),
        ];
        assert_eq!(text(&ordered_subject(&msgs)), "(6)(2 5)(1 (3)(4))");
    }

    #[test]
    fn references_build_trees_with_dummies_and_subjects() {
        let msgs = [
            m(1, 10, "root", "r@x", &[]),
            m(2, 20, "Re: root", "c1@x", &["r@x"]),
            m(3, 30, "Re: root", "c2@x", &["r@x"]),
            m(4, 40, "Re: root", "gc@x", &["r@x", "c1@x"]),
            // Two replies to a message we do not have: a dummy root.
            m(5, 50, "lost", "l1@x", &["missing@x"]),
            m(6, 60, "lost", "l2@x", &["missing@x"]),
            // A reply to a message we do not have, alone: promoted.
            m(7, 70, "alone", "a@x", &["gone@x"]),
            // Same base subject as 1, no references: joins 1 as a reply.
            m(8, 80, "Re: root", "", &[]),
        ];
        assert_eq!(text(&references(&msgs)), "(1 (2 4)(3)(8))((5)(6))(7)");
    }

    #[test]
    fn loops_and_duplicates_do_not_hang_or_lose_messages() {
        let msgs = [
            m(1, 1, "x", "a@x", &["b@x"]),
            m(2, 2, "y", "b@x", &["a@x"]),
            m(3, 3, "z", "a@x", &["a@x"]),
            m(4, 4, "w", "d@x", &["d@x"]),
        ];
        let t = text(&references(&msgs));
        for id in ["1", "2", "3", "4"] {
            assert!(t.contains(id), "{t}");
        }
    }

    #[test]
    fn a_long_reference_chain_is_handled_without_recursion() {
        let n = 20_000u32;
        let msgs: Vec<ThreadMessage> = (1..=n)
            .map(|i| {
                let prev = format!("{}@x", i - 1);
                let refs: Vec<&str> = if i > 1 { vec![prev.as_str()] } else { vec![] };
                m(
                    i,
                    i64::from(i),
                    &format!("part {i}"),
                    &format!("{i}@x"),
                    &refs,
                )
            })
            .collect();
        let s = text(&references(&msgs));
        assert!(s.starts_with("(1 2 3 "));
        // Chains deeper than MAX_DEPTH are cut into several threads.
        assert!(s.ends_with(&format!(" {n})")));
        let threads = s.matches('(').count();
        assert!(
            threads >= n as usize / (MAX_DEPTH + 1)
                && threads <= (n as usize).div_ceil(MAX_DEPTH - 1)
        );
    }
}
