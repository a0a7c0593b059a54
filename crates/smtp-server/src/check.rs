//! The hook points where judgment plugs in: a [`Check`] is asked at each
//! stage of a session — connect, HELO, MAIL, RCPT, end of data — after the
//! handler's own decision, in the order the handler lists them, and may
//! refuse the command or end the connection.
//!
//! DESIGN.md puts every check at the earliest stage that has what it
//! needs, in one place: this is that place. Allow/deny lists and DNSBLs go
//! at connect, HELO and SPF checks at HELO and MAIL, greylisting at RCPT,
//! DKIM/DMARC/scanners at the end of data (they read the whole message
//! through [`Sink::reader`](crate::Sink::reader)). A check holds no session
//! state of its own: what it learns goes into its reply, its verdict, the
//! session's [`Notes`] (for a later stage: SPF at MAIL for DMARC at the end
//! of data, the client's verified name for `Received:`), or header fields
//! it adds at the end of data ([`Message::add_header`], written above the
//! message by the sink: `Authentication-Results`, a spam mark).
//!
//! Every method has a default that accepts, so a check implements only
//! its stages.

use crate::handler::{SessionInfo, Txn};
use facteur_smtp_codec::{MailFrom, RcptTo, Reply};
use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::future::Future;
use std::io::{self, Read};
use std::pin::Pin;
use std::sync::{Arc, Mutex};

/// A future a check returns.
pub type CheckFuture<'a> = Pin<Box<dyn Future<Output = Verdict> + Send + 'a>>;

/// What a check decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing against it: the next check is asked.
    Accept,
    /// Refuse this command (or, at connect, greet with this reply and
    /// refuse every command but QUIT); the session goes on.
    Reject(Reply),
    /// Send this reply and close the connection.
    Disconnect(Reply),
}

/// A message that can be read again from its first byte.
pub trait Content {
    /// A reader over the message as received (network form).
    fn reader(&mut self) -> io::Result<Box<dyn Read + Send + '_>>;
    /// How many bytes [`reader`](Self::reader) gives (with what the sink
    /// wrote above the client's bytes, such as `Received:`); by default
    /// counted by reading.
    fn content_len(&mut self) -> io::Result<u64> {
        io::copy(&mut self.reader()?, &mut io::sink())
    }
}

/// What an end-of-data check is shown.
pub struct Message<'a> {
    pub mail: &'a MailFrom,
    /// The accepted recipients.
    pub rcpts: Vec<&'a RcptTo>,
    pub size: u64,
    pub(crate) content: &'a mut (dyn Content + Send),
    /// Header fields the checks add, in order, CRLF-terminated.
    pub(crate) added: &'a mut Vec<u8>,
    /// Other changes the checks ask for, in order.
    pub(crate) edits: &'a mut Vec<crate::edit::Edit>,
}

/// Most bytes of header fields the checks of one message may add.
pub const MAX_ADDED_HEADERS: usize = 64 * 1024;

impl Message<'_> {
    /// The message from its first byte; each call starts again.
    pub fn reader(&mut self) -> io::Result<Box<dyn Read + Send + '_>> {
        self.content.reader()
    }

    /// How many bytes [`reader`](Self::reader) gives (`size` counts the
    /// client's bytes only).
    pub fn content_len(&mut self) -> io::Result<u64> {
        self.content.content_len()
    }

    /// Adds a header field above the message, if every check accepts it
    /// (the sink writes it: [`Sink::prepend`](crate::Sink::prepend)).
    /// `field` is `Name: value`, folded with CRLF followed by a space or a
    /// tab; a CRLF is added at its end. A field that is not one well-formed
    /// header field (a bare CR or LF, an empty line, no name, a control
    /// character) is refused, as is one past [`MAX_ADDED_HEADERS`]: false,
    /// and nothing is added — values come from peers, and a check must
    /// never turn them into a header of the attacker's choice.
    pub fn add_header(&mut self, field: &str) -> bool {
        let field = field.strip_suffix("\r\n").unwrap_or(field);
        if !well_formed_field(field) || self.added.len() + field.len() + 2 > MAX_ADDED_HEADERS {
            tracing::warn!(field, "a check's header field refused");
            return false;
        }
        self.added.extend_from_slice(field.as_bytes());
        self.added.extend_from_slice(b"\r\n");
        true
    }
}

impl Message<'_> {
    /// Asks for a change to the message (see [`crate::edit`]), made if
    /// every check accepts it. A new field that is not one well-formed
    /// field is refused (false, nothing done), as by
    /// [`add_header`](Self::add_header), and so is a change past the
    /// 64th (a replaced body is as large as its check made it).
    pub fn edit(&mut self, e: crate::edit::Edit) -> bool {
        use crate::edit::Edit;
        let ok = match &e {
            Edit::Remove { name, .. } => valid_name(name),
            Edit::Change { name, value, .. } => {
                valid_name(name) && well_formed_field(&format!("{name}: {value}"))
            }
            Edit::Insert { field, .. } => well_formed_field(field),
            Edit::ReplaceBody(_) | Edit::ReplaceAll(_) => true,
        };
        if !ok || self.edits.len() >= 64 {
            tracing::warn!(edit = ?e, "a check's change refused");
            return false;
        }
        self.edits.push(e);
        true
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| (33..=126).contains(&b) && b != b':')
}

/// One header field (without its final CRLF): a name of printable ASCII
/// without `:`, a colon, then lines joined by CRLF + WSP; no other CR or
/// LF, no control character but TAB.
fn well_formed_field(f: &str) -> bool {
    let Some((name, _)) = f.split_once(':') else {
        return false;
    };
    let name_ok = !name.is_empty() && name.bytes().all(|b| (33..=126).contains(&b));
    let lines_ok = f.split("\r\n").enumerate().all(|(i, line)| {
        // A continuation line starts with WSP and is not all WSP (that
        // would be an empty line to many parsers).
        (i == 0 || (line.starts_with([' ', '\t']) && !line.trim().is_empty()))
            && !line.chars().any(|c| c.is_control() && c != '\t')
    });
    name_ok && lines_ok
}

/// What checks learn at one stage for a later one (the client's verified
/// name at connect, SPF at HELO and MAIL for DMARC at the end of data),
/// kept for the whole session: one value per type, a later one replaces
/// it. Shared by the clones of a [`SessionInfo`]; a check that relies on a
/// note checks that it is about what it sees now (the same HELO name, the
/// same sender), since the session does not clear notes.
#[derive(Clone, Default)]
pub struct Notes(Arc<Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>>);

impl std::fmt::Debug for Notes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.0.lock().map(|m| m.len()).unwrap_or(0);
        write!(f, "Notes({n})")
    }
}

impl Notes {
    /// Keeps `v`, replacing the note of its type.
    pub fn set<T: Any + Send + Sync>(&self, v: T) {
        if let Ok(mut m) = self.0.lock() {
            m.insert(TypeId::of::<T>(), Arc::new(v));
        }
    }

    /// The note of type `T`, if one was kept.
    pub fn get<T: Any + Send + Sync>(&self) -> Option<Arc<T>> {
        let v = self.0.lock().ok()?.get(&TypeId::of::<T>())?.clone();
        v.downcast::<T>().ok()
    }
}

fn accept<'a>() -> CheckFuture<'a> {
    Box::pin(std::future::ready(Verdict::Accept))
}

/// One check. See the module header.
pub trait Check: Send + Sync {
    /// For logs: which check refused.
    fn name(&self) -> &'static str;
    /// Before the greeting.
    fn connect<'a>(&'a self, _s: &'a SessionInfo) -> CheckFuture<'a> {
        accept()
    }
    /// EHLO, HELO or LHLO.
    fn helo<'a>(&'a self, _s: &'a SessionInfo, _name: &'a str) -> CheckFuture<'a> {
        accept()
    }
    /// MAIL, after the handler accepted the sender.
    fn mail<'a>(&'a self, _s: &'a SessionInfo, _from: &'a MailFrom) -> CheckFuture<'a> {
        accept()
    }
    /// RCPT, after the handler accepted the recipient.
    fn rcpt<'a>(
        &'a self,
        _s: &'a SessionInfo,
        _from: &'a MailFrom,
        _to: &'a RcptTo,
    ) -> CheckFuture<'a> {
        accept()
    }
    /// The end of data, before the message is made durable.
    fn data<'a>(&'a self, _s: &'a SessionInfo, _m: Message<'a>) -> CheckFuture<'a> {
        accept()
    }
}

/// Logs a refusal by check `c`.
pub(crate) fn log_refusal(c: &dyn Check, v: &Verdict) {
    if *v != Verdict::Accept {
        tracing::info!(check = c.name(), verdict = ?v, "check refused");
    }
}

/// The first verdict of `checks` that is not [`Verdict::Accept`].
pub(crate) async fn first_refusal<'a, F>(checks: &'a [std::sync::Arc<dyn Check>], ask: F) -> Verdict
where
    F: Fn(&'a dyn Check) -> CheckFuture<'a>,
{
    for c in checks {
        let v = ask(c.as_ref()).await;
        if v != Verdict::Accept {
            log_refusal(c.as_ref(), &v);
            return v;
        }
    }
    Verdict::Accept
}

/// The recipients of a transaction, as checks see them.
pub(crate) fn rcpts_of<R>(t: &Txn<R>) -> Vec<&RcptTo> {
    t.rcpts.iter().map(|(r, _)| r).collect()
}
