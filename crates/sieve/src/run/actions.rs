//! The result of a run: actions in order, the implicit keep, the edited
//! message, and what the host records once the delivery succeeded
//! (duplicate ids). Adding an action applies RFC 5228 §2.10: duplicates
//! collapse (a second fileinto to the same mailbox, keep and fileinto
//! "INBOX", a second redirect to the same address; the last flags given
//! win, RFC 5232 §3.2), actions cancel the
//! implicit keep, and the limits and conflicts of RFC 5429 (reject) and
//! RFC 5230 (vacation) hold.

use super::{RunError, Runtime};

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Store in INBOX with these flags.
    Keep {
        flags: Vec<String>,
        message: Option<usize>,
    },
    FileInto {
        mailbox: String,
        flags: Vec<String>,
        create: bool,
        special_use: Option<String>,
        copy: bool,
        /// Index into [`Outcome::message_versions`] when the header was
        /// edited before this action; None for the message as received.
        message: Option<usize>,
    },
    Redirect {
        address: String,
        copy: bool,
        message: Option<usize>,
    },
    /// reject (a DSN to the sender) or ereject (refused at the protocol
    /// level when possible: LMTP's 550 for this recipient).
    Reject {
        reason: String,
        extended: bool,
    },
    Vacation(Box<super::vacation::VacationReply>),
    /// `discard` (listed so the order of actions is kept; it only cancels
    /// the implicit keep).
    Discard,
}

impl Action {
    pub fn name(&self) -> &'static str {
        match self {
            Action::Keep { .. } => "keep",
            Action::FileInto { .. } => "fileinto",
            Action::Redirect { .. } => "redirect",
            Action::Reject {
                extended: false, ..
            } => "reject",
            Action::Reject { extended: true, .. } => "ereject",
            Action::Vacation(_) => "vacation",
            Action::Discard => "discard",
        }
    }
}

/// A duplicate-test id to record when the delivery succeeds (RFC 7352 §3:
/// only then).
#[derive(Debug, Clone, PartialEq)]
pub struct DuplicateMark {
    pub handle: String,
    pub id: String,
    pub period: u64,
    pub last: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub actions: Vec<Action>,
    /// No action cancelled the implicit keep: store in INBOX too.
    pub implicit_keep: bool,
    /// The imap4flags flags for the implicit keep.
    pub implicit_keep_flags: Vec<String>,
    /// `discard` ran.
    pub discarded: bool,
    /// The message with the header edits (editheader), when any.
    pub edited_message: Option<Vec<u8>>,
    /// Versions of the message actions refer to (edit count, bytes).
    pub message_versions: Vec<(u32, Vec<u8>)>,
    pub duplicates: Vec<DuplicateMark>,
    pub(crate) closed: bool,
}

impl Outcome {
    pub(crate) fn new() -> Outcome {
        Outcome {
            actions: Vec::new(),
            implicit_keep: true,
            implicit_keep_flags: Vec::new(),
            discarded: false,
            edited_message: None,
            message_versions: Vec::new(),
            duplicates: Vec::new(),
            closed: false,
        }
    }

    /// The outcome of no script at all: the implicit keep, nothing else
    /// (what a delivery does when a script failed).
    pub fn keep_only() -> Outcome {
        let mut o = Outcome::new();
        o.closed = true;
        o
    }

    /// The mailboxes to store into, with their flags, the implicit keep
    /// included ("INBOX" for keep), each once.
    pub fn stores(&self) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for a in &self.actions {
            match a {
                Action::Keep { flags, .. } => out.push(("INBOX".into(), flags.clone())),
                Action::FileInto { mailbox, flags, .. } => {
                    out.push((mailbox.clone(), flags.clone()))
                }
                _ => {}
            }
        }
        if self.implicit_keep && !out.iter().any(|(m, _)| is_inbox(m)) {
            out.push(("INBOX".into(), self.implicit_keep_flags.clone()));
        }
        out
    }

    /// The bytes of the message an action carries.
    pub fn message_for<'a>(&'a self, version: Option<usize>, original: &'a [u8]) -> &'a [u8] {
        version
            .and_then(|i| self.message_versions.get(i))
            .map_or(original, |(_, m)| m.as_slice())
    }
}

pub fn is_inbox(name: &str) -> bool {
    name.eq_ignore_ascii_case("inbox")
}

/// Adds `a` to the actions of a result that was executed already (see
/// `Runtime::append_outcome`).
pub(crate) fn merge_executed(actions: &mut Vec<Action>, a: Action) {
    match &a {
        Action::Reject { .. } if actions.iter().any(|x| matches!(x, Action::Reject { .. })) => {}
        Action::Keep { .. } => {
            match actions.iter().position(|x| {
                matches!(x, Action::Keep { .. })
                    || matches!(x, Action::FileInto { mailbox, .. } if is_inbox(mailbox))
            }) {
                Some(i) => actions[i] = a,
                None => actions.push(a),
            }
        }
        Action::FileInto { mailbox, .. } => {
            let same = actions.iter().any(|x| match x {
                Action::FileInto { mailbox: m, .. } => m == mailbox,
                Action::Keep { .. } => is_inbox(mailbox),
                _ => false,
            });
            if !same {
                actions.push(a);
            }
        }
        Action::Redirect { address, .. } => {
            let same = actions.iter().any(
                |x| matches!(x, Action::Redirect { address: y, .. } if y.eq_ignore_ascii_case(address)),
            );
            if !same {
                actions.push(a);
            }
        }
        _ => actions.push(a),
    }
}

impl Runtime<'_> {
    pub(crate) fn add_action(&mut self, action: Action) -> Result<(), RunError> {
        let has_reject = self
            .out
            .actions
            .iter()
            .any(|a| matches!(a, Action::Reject { .. }));
        let delivers = matches!(
            action,
            Action::Keep { .. } | Action::FileInto { .. } | Action::Redirect { .. }
        );
        if has_reject && (delivers || matches!(action, Action::Vacation(_) | Action::Reject { .. }))
        {
            return Err(self.fail(format!(
                "the {} action conflicts with the earlier reject action",
                action.name()
            )));
        }
        if let Action::Reject { .. } = action
            && let Some(other) = self
                .out
                .actions
                .iter()
                .find(|a| !matches!(a, Action::Reject { .. } | Action::Discard))
        {
            return Err(self.fail(format!(
                "the reject action conflicts with the earlier {} action",
                other.name()
            )));
        }
        match action {
            Action::Keep { flags, message } => {
                self.out.implicit_keep = false;
                for a in &mut self.out.actions {
                    match a {
                        Action::Keep { flags: f, .. } => {
                            *f = flags;
                            return Ok(());
                        }
                        Action::FileInto { mailbox, .. } if is_inbox(mailbox) => {
                            // the keep takes that entry's place
                            *a = Action::Keep { flags, message };
                            return Ok(());
                        }
                        _ => {}
                    }
                }
                self.push(Action::Keep { flags, message })
            }
            Action::FileInto {
                mailbox,
                flags,
                create,
                special_use,
                copy,
                message,
            } => {
                if !copy {
                    self.out.implicit_keep = false;
                }
                for a in &mut self.out.actions {
                    match a {
                        Action::FileInto {
                            mailbox: m,
                            flags: f,
                            ..
                        } if *m == mailbox => {
                            *f = flags;
                            return Ok(());
                        }
                        Action::Keep { flags: f, .. } if is_inbox(&mailbox) => {
                            *f = flags;
                            return Ok(());
                        }
                        _ => {}
                    }
                }
                self.push(Action::FileInto {
                    mailbox,
                    flags,
                    create,
                    special_use,
                    copy,
                    message,
                })
            }
            Action::Redirect {
                address,
                copy,
                message,
            } => {
                if !copy {
                    self.out.implicit_keep = false;
                }
                if self.out.actions.iter().any(
                    |a| matches!(a, Action::Redirect { address: x, .. } if x.eq_ignore_ascii_case(&address)),
                ) {
                    return Ok(());
                }
                let redirects = self
                    .out
                    .actions
                    .iter()
                    .filter(|a| matches!(a, Action::Redirect { .. }))
                    .count();
                if redirects >= self.limits.max_redirects {
                    return Err(self.fail(format!(
                        "number of redirect actions exceeds policy limit ({} > {})",
                        redirects + 1,
                        self.limits.max_redirects
                    )));
                }
                self.push(Action::Redirect {
                    address,
                    copy,
                    message,
                })
            }
            Action::Reject { .. } => {
                self.out.implicit_keep = false;
                self.push(action)
            }
            Action::Discard => {
                self.out.implicit_keep = false;
                self.out.discarded = true;
                if self
                    .out
                    .actions
                    .iter()
                    .any(|a| matches!(a, Action::Discard))
                {
                    return Ok(());
                }
                self.push(action)
            }
            Action::Vacation(_) => {
                if self
                    .out
                    .actions
                    .iter()
                    .any(|a| matches!(a, Action::Vacation(_)))
                {
                    return Err(self.fail("only one vacation action per script run"));
                }
                self.push(action)
            }
        }
    }

    fn push(&mut self, action: Action) -> Result<(), RunError> {
        if self.out.actions.len() >= self.limits.max_actions {
            return Err(self.fail(format!(
                "total number of actions exceeds policy limit ({} > {})",
                self.out.actions.len() + 1,
                self.limits.max_actions
            )));
        }
        self.out.actions.push(action);
        Ok(())
    }
}
