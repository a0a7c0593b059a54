//! NOTIFY (RFC 5465 §8): `NOTIFY NONE` or `NOTIFY SET [STATUS]` and the
//! event groups, each a mailbox filter and its events.
//!
//! The rules between events (MessageNew and MessageExpunge together,
//! FlagChange only with both, fetch attributes only for the selected
//! mailbox) are checked here, as the RFC makes them syntax errors (BAD);
//! which events the server supports is the session's business (`NO
//! [BADEVENT]`).
//!
//! Needs the lexer; guarantees what it does (no panic, linear time).

use super::fetch::fetch_att;
use super::lexer::{Parser, Res};
use crate::types::{Command, NotifyEvent, NotifyFilter, NotifyGroup, NotifySet};

/// `NOTIFY SP (NONE / SET [SP STATUS] SP event-group *(SP event-group))`.
pub(super) fn notify(p: &mut Parser<'_>) -> Res<Command> {
    p.arg("missing NONE or SET")?;
    let w = p.word();
    if w.eq_ignore_ascii_case(b"NONE") {
        return Ok(Command::Notify(None));
    }
    if !w.eq_ignore_ascii_case(b"SET") {
        return Err("expected NONE or SET");
    }
    p.arg("missing event groups")?;
    let m = p.mark();
    let status = p.word().eq_ignore_ascii_case(b"STATUS");
    if status {
        p.arg("missing event groups")?;
    } else {
        p.reset(m);
    }
    let mut groups = vec![group(p)?];
    while !p.at_end() {
        p.sp()?;
        groups.push(group(p)?);
    }
    Ok(Command::Notify(Some(NotifySet { status, groups })))
}

/// `"(" filter-mailboxes SP events ")"`.
fn group(p: &mut Parser<'_>) -> Res<NotifyGroup> {
    p.expect(b'(', "expected '('")?;
    let w = p.word();
    let is = |s: &str| w.eq_ignore_ascii_case(s.as_bytes());
    let filter = if is("SELECTED") {
        NotifyFilter::Selected
    } else if is("SELECTED-DELAYED") {
        NotifyFilter::SelectedDelayed
    } else if is("INBOXES") {
        NotifyFilter::Inboxes
    } else if is("PERSONAL") {
        NotifyFilter::Personal
    } else if is("SUBSCRIBED") {
        NotifyFilter::Subscribed
    } else if is("SUBTREE") {
        p.arg("missing mailbox")?;
        NotifyFilter::Subtree(mailboxes(p)?)
    } else if is("MAILBOXES") {
        p.arg("missing mailbox")?;
        NotifyFilter::Mailboxes(mailboxes(p)?)
    } else {
        return Err("unknown NOTIFY filter");
    };
    p.arg("missing events")?;
    let selected = matches!(
        filter,
        NotifyFilter::Selected | NotifyFilter::SelectedDelayed
    );
    let m = p.mark();
    let events = if p.word().eq_ignore_ascii_case(b"NONE") {
        Vec::new()
    } else {
        p.reset(m);
        if p.peek() == Some(b'(') {
            p.paren_list(|p| event(p, selected))?
        } else {
            // Without the parentheses, as RFC 5465 §8's own example
            // writes them.
            let mut v = vec![event(p, selected)?];
            while p.eat(b' ') {
                v.push(event(p, selected)?);
            }
            v
        }
    };
    let has = |f: &dyn Fn(&NotifyEvent) -> bool| events.iter().any(f);
    let new = has(&|e| matches!(e, NotifyEvent::MessageNew(_)));
    let expunge = has(&|e| matches!(e, NotifyEvent::MessageExpunge));
    let flags = has(&|e| matches!(e, NotifyEvent::FlagChange));
    let annotation = has(&|e| matches!(e, NotifyEvent::AnnotationChange));
    if new != expunge {
        return Err("MessageNew and MessageExpunge go together");
    }
    if (flags || annotation) && !new {
        return Err("FlagChange and AnnotationChange need MessageNew and MessageExpunge");
    }
    p.expect(b')', "expected ')'")?;
    Ok(NotifyGroup { filter, events })
}

/// `one-or-more-mailbox = mailbox / "(" mailbox *(SP mailbox) ")"`.
fn mailboxes(p: &mut Parser<'_>) -> Res<Vec<String>> {
    if p.peek() == Some(b'(') {
        p.paren_list(|p| p.mailbox())
    } else {
        Ok(vec![p.mailbox()?])
    }
}

/// One event; fetch attributes after MessageNew only for the selected
/// mailbox.
fn event(p: &mut Parser<'_>, selected: bool) -> Res<NotifyEvent> {
    let w = p.word();
    let is = |s: &str| w.eq_ignore_ascii_case(s.as_bytes());
    Ok(if is("MessageNew") {
        let m = p.mark();
        if p.eat(b' ') && p.peek() == Some(b'(') {
            if !selected {
                return Err("fetch attributes only for the selected mailbox");
            }
            NotifyEvent::MessageNew(p.paren_list(fetch_att)?)
        } else {
            p.reset(m);
            NotifyEvent::MessageNew(Vec::new())
        }
    } else if is("MessageExpunge") {
        NotifyEvent::MessageExpunge
    } else if is("FlagChange") {
        NotifyEvent::FlagChange
    } else if is("AnnotationChange") {
        NotifyEvent::AnnotationChange
    } else if is("MailboxName") {
        NotifyEvent::MailboxName
    } else if is("SubscriptionChange") {
        NotifyEvent::SubscriptionChange
    } else if is("MailboxMetadataChange") {
        NotifyEvent::MailboxMetadataChange
    } else if is("ServerMetadataChange") {
        NotifyEvent::ServerMetadataChange
    } else if !w.is_empty() && w.len() <= 64 && w.iter().all(u8::is_ascii_alphanumeric) {
        NotifyEvent::Other(String::from_utf8_lossy(w).into_owned())
    } else {
        return Err("invalid NOTIFY event");
    })
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{ok, parses, refused};
    use crate::types::*;

    fn set(status: bool, groups: Vec<NotifyGroup>) -> Command {
        Command::Notify(Some(NotifySet { status, groups }))
    }

    fn g(filter: NotifyFilter, events: Vec<NotifyEvent>) -> NotifyGroup {
        NotifyGroup { filter, events }
    }

    #[test]
    fn notify_commands() {
        use NotifyEvent as E;
        let msg = || vec![E::MessageNew(vec![]), E::MessageExpunge];
        parses(&[("a NOTIFY NONE", Command::Notify(None))]);
        // RFC 5465 §8's example.
        let Command::Notify(Some(n)) = ok(
            "a notify set status (selected MessageNew (uid body.peek[header.fields (from to subject)]) MessageExpunge) (subtree Lists MessageNew MessageExpunge) (mailboxes misc MessageNew MessageExpunge)",
        ) else {
            panic!("not a NOTIFY SET");
        };
        assert!(n.status);
        assert_eq!(n.groups.len(), 3);
        assert!(matches!(&n.groups[0].events[0], E::MessageNew(a) if a.len() == 2));
        assert_eq!(
            n.groups[2],
            g(NotifyFilter::Mailboxes(vec!["misc".into()]), msg())
        );
        parses(&[
            (
                "a NOTIFY SET STATUS (MAILBOXES box2 (MessageNew MessageExpunge))",
                set(
                    true,
                    vec![g(NotifyFilter::Mailboxes(vec!["box2".into()]), msg())],
                ),
            ),
            (
                "a NOTIFY SET (SELECTED (MessageNew (UID FLAGS) MessageExpunge FlagChange)) (SUBTREE (Lists \"Other x\") (MailboxName SubscriptionChange)) (PERSONAL NONE) (INBOXES (MessageNew MessageExpunge))",
                set(
                    false,
                    vec![
                        g(
                            NotifyFilter::Selected,
                            vec![
                                E::MessageNew(vec![FetchAttr::Uid, FetchAttr::Flags]),
                                E::MessageExpunge,
                                E::FlagChange,
                            ],
                        ),
                        g(
                            NotifyFilter::Subtree(vec!["Lists".into(), "Other x".into()]),
                            vec![E::MailboxName, E::SubscriptionChange],
                        ),
                        g(NotifyFilter::Personal, vec![]),
                        g(NotifyFilter::Inboxes, msg()),
                    ],
                ),
            ),
            (
                "a NOTIFY SET (subscribed (MessageNew MessageExpunge Foo)) (selected-delayed NONE)",
                set(
                    false,
                    vec![
                        g(
                            NotifyFilter::Subscribed,
                            vec![
                                E::MessageNew(vec![]),
                                E::MessageExpunge,
                                E::Other("Foo".into()),
                            ],
                        ),
                        g(NotifyFilter::SelectedDelayed, vec![]),
                    ],
                ),
            ),
        ]);
        refused(&[
            (&b"a NOTIFY"[..], "missing NONE or SET"),
            (b"a NOTIFY FOO", "expected NONE or SET"),
            (b"a NOTIFY SET", "missing event groups"),
            (b"a NOTIFY SET STATUS", "missing event groups"),
            (
                b"a NOTIFY SET (INBOXES (MessageNew))",
                "MessageNew and MessageExpunge go together",
            ),
            (
                b"a NOTIFY SET (INBOXES (MessageExpunge))",
                "MessageNew and MessageExpunge go together",
            ),
            (
                b"a NOTIFY SET (INBOXES (FlagChange))",
                "FlagChange and AnnotationChange need MessageNew and MessageExpunge",
            ),
            (
                b"a NOTIFY SET (INBOXES (MessageNew (UID) MessageExpunge))",
                "fetch attributes only for the selected mailbox",
            ),
            (b"a NOTIFY SET (ELSEWHERE NONE)", "unknown NOTIFY filter"),
            (b"a NOTIFY SET (INBOXES)", "expected a space"),
            (b"a NOTIFY SET (INBOXES ())", "invalid NOTIFY event"),
            (b"a NOTIFY SET (INBOXES NONE", "expected ')'"),
        ]);
    }
}
