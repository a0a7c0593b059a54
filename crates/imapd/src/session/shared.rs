//! Shared mailboxes and access control: the `Shared/` namespace (RFC 2342's
//! "other users'" namespace) and ACL (RFC 4314), with LIST-MYRIGHTS (RFC
//! 8440).
//!
//! A user shares a mailbox with SETACL (or an administrator with
//! `facteurctl acl set`); every user of the same domain it names then sees
//! it as `Shared/<owner's local part>/<name>`, and does there what the
//! rights allow: RFC 4314 §4 lists which command needs which right, and
//! each command below checks them. The "team mailbox" of a small office is
//! an ordinary account (`team@example.org`) whose mailboxes are shared with
//! its members.
//!
//! - Names: [`place`] tells a client's name (in store terms) apart: one of
//!   the user's own, another user's, or a level of the namespace (`Shared`,
//!   `Shared/bob`), which LIST shows as `\Noselect` and nothing opens.
//! - Rights are read from the domain's ACL file (facteur-store's acl.rs)
//!   when a command names a mailbox; a selected mailbox keeps the rights it
//!   had at SELECT (RFC 4314 §5.1.1 allows it) until it is selected again.
//! - A mailbox a user has no right on does not exist for them: NO
//!   [NONEXISTENT], not [NOPERM], so that nobody learns another user's
//!   mailbox names by trying (RFC 4314 §6). [NOPERM] is for a mailbox the
//!   user can see but may not do this on.
//! - Flags are the owner's: every user of a shared mailbox sees the same
//!   `\Seen` (no per-user flags). So the shared flag rights (§5.2) are `s`,
//!   `w` and `t`, and SELECT answers READ-ONLY when none of them, `i` or
//!   `e` is granted.
//! - Copies between users are appended (a new file in the other user's
//!   directory, counted in its owner's quota), not hard links; a MOVE
//!   between users is that copy, then an expunge at the source.

use super::{Flow, Session, blocking};
use facteur_imap_proto::encode;
use facteur_store::acl::Change;
use facteur_store::{DELETED, SEEN};
use facteur_store::{FlagMask, MailboxInfo, Quota, Rights, StoreError, UserStore};
use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};

/// The first level of the other users' namespace.
pub(crate) const PREFIX: &str = "Shared";

/// Where a client's mailbox name (in store terms) leads.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Place {
    /// One of the user's own mailboxes.
    Own(String),
    /// Another user's mailbox: the owner's address and the name in the
    /// owner's store.
    Other { owner: String, name: String },
    /// `Shared` or `Shared/<user>`: a level of the namespace.
    Level,
}

/// Where `name` leads for the user `me` (`local@domain`). Pure.
pub(crate) fn place(me: &str, name: &str) -> Place {
    let Some(rest) = name.strip_prefix(PREFIX) else {
        return Place::Own(name.to_string());
    };
    if rest.is_empty() || rest == "/" {
        return Place::Level;
    }
    let Some(rest) = rest.strip_prefix('/') else {
        // "Sharedfoo": an ordinary name.
        return Place::Own(name.to_string());
    };
    let domain = me.rsplit_once('@').map_or("", |(_, d)| d);
    match rest.split_once('/') {
        Some((local, mailbox)) if !local.is_empty() && !mailbox.is_empty() => Place::Other {
            owner: format!("{}@{domain}", local.to_lowercase()),
            name: mailbox.to_string(),
        },
        _ => Place::Level,
    }
}

/// The name under which the user sees `owner`'s mailbox `name`.
pub(crate) fn shown(owner: &str, name: &str) -> String {
    let local = owner.rsplit_once('@').map_or(owner, |(l, _)| l);
    format!("{PREFIX}/{local}/{name}")
}

/// The flags `rights` let a user change (RFC 4314 §4).
pub(crate) fn flag_mask(rights: Rights) -> FlagMask {
    if rights == Rights::ALL {
        return FlagMask::ALL;
    }
    let mut system = 0u8;
    if rights.has('s') {
        system |= SEEN;
    }
    if rights.has('t') {
        system |= DELETED;
    }
    if rights.has('w') {
        system |= !(SEEN | DELETED);
    }
    FlagMask {
        system,
        keywords: rights.has('w'),
    }
}

/// A mailbox a command names, with the store it is in.
pub(crate) struct Target {
    pub store: Arc<UserStore>,
    /// The owner's address.
    pub owner: String,
    /// The name in the owner's store (normalized).
    pub name: String,
    pub rights: Rights,
}

/// Which rights the ACL commands require (RFC 4314 §4).
const ADMIN: &str = "a";

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    /// The logged-in user's address.
    pub(super) fn me_address(&self) -> &str {
        self.user.as_ref().map_or("", |u| u.address.as_str())
    }

    /// Another user's store, opened with their quota (for APPEND and COPY
    /// into their mailboxes). NoSuchMailbox: no such user.
    pub(super) fn owner_store(&self, owner: &str) -> Result<Arc<UserStore>, StoreError> {
        let dir = self.ctx.logins.directory();
        let record =
            blocking(|| dir.get_user(owner)).map_err(|e| StoreError::Index(e.to_string()))?;
        let Some(r) = record else {
            return Err(StoreError::NoSuchMailbox(owner.to_string()));
        };
        let q = Quota {
            bytes: r.quota_bytes,
            messages: r.quota_messages,
        };
        blocking(|| self.ctx.user_store(&r.address, q))
    }

    /// The mailbox `name` (store terms) names, if the user has every right
    /// in `need` on it. A mailbox on which the user has no right at all
    /// does not exist for them (NoSuchMailbox); one they may see but not
    /// use so gives NoPermission.
    pub(crate) fn target(&self, name: &str, need: &str) -> Result<Target, StoreError> {
        let Some(user) = &self.user else {
            return Err(StoreError::NoSuchMailbox(name.to_string()));
        };
        let own = |n: &str| -> Result<Target, StoreError> {
            Ok(Target {
                store: Arc::clone(&user.store),
                owner: user.address.clone(),
                name: facteur_store::normalize_name(n)?,
                rights: Rights::ALL,
            })
        };
        let place = place(&user.address, name);
        // A folder of the user's own made under that name before the
        // namespace existed stays theirs.
        if !matches!(place, Place::Own(_)) && blocking(|| user.store.exists(name)).unwrap_or(false)
        {
            return own(name);
        }
        let (owner, name) = match place {
            Place::Own(n) => return own(&n),
            Place::Level => return Err(StoreError::NoSuchMailbox(name.to_string())),
            Place::Other { owner, name } => (owner, facteur_store::normalize_name(&name)?),
        };
        if owner == user.address {
            return own(&name);
        }
        let rights = blocking(|| self.ctx.store.rights(&owner, &name, &user.address)).map_err(
            |e| match e {
                // `Shared/../x`: no user has that name.
                StoreError::InvalidUser(_) => StoreError::NoSuchMailbox(name.clone()),
                e => e,
            },
        )?;
        if rights.is_empty() {
            return Err(StoreError::NoSuchMailbox(name));
        }
        if !need.chars().all(|c| rights.has(c)) {
            return Err(StoreError::NoPermission(format!(
                "Needs the right{} \"{need}\" on this mailbox",
                if need.len() > 1 { "s" } else { "" }
            )));
        }
        let store = self.owner_store(&owner)?;
        Ok(Target {
            store,
            owner,
            name,
            rights,
        })
    }

    /// The target of a command that must exist, with its name as the
    /// client gave it (decoded), or its NO sent and None.
    fn target_or_no(&mut self, tag: &str, name: &str, need: &str) -> Option<(String, Target)> {
        let name = self.name_or_no(tag, name)?;
        match self.target(&name, need) {
            Ok(t) => match blocking(|| t.store.exists(&t.name)) {
                Ok(true) => Some((name, t)),
                Ok(false) => {
                    self.no(tag, "[NONEXISTENT] No such mailbox");
                    None
                }
                Err(e) => {
                    self.store_error(tag, &e);
                    None
                }
            },
            Err(e) => {
                self.store_error(tag, &e);
                None
            }
        }
    }

    /// The other users' mailboxes the user may list, as LIST entries,
    /// with the user's rights by shown name.
    pub(super) fn shared_boxes(
        &self,
    ) -> Result<(Vec<MailboxInfo>, HashMap<String, Rights>), StoreError> {
        let me = self.me_address();
        let grants = self.ctx.store.shared_with(me)?;
        let mut boxes = Vec::new();
        let mut rights = HashMap::new();
        for g in grants.into_iter().filter(|g| g.rights.has('l')) {
            let name = shown(&g.owner, &g.mailbox);
            rights.insert(name.clone(), g.rights);
            boxes.push(MailboxInfo {
                name,
                special_use: None,
                subscribed: false,
            });
        }
        Ok((boxes, rights))
    }

    /// An identifier of SETACL, DELETEACL or LISTRIGHTS in the form the
    /// ACL file keeps: `anyone`, `authenticated`, or an address of the
    /// owner's domain (a bare local part is taken in that domain). Err:
    /// the text of the NO.
    fn identifier(&self, owner: &str, id: &str, must_exist: bool) -> Result<String, String> {
        let id = facteur_store::acl::identifier(owner, id).map_err(|e| {
            let text = e.to_string();
            let mut c = text.chars();
            let first = c.next().map(|f| f.to_uppercase().collect::<String>());
            format!("[CANNOT] {}{}", first.unwrap_or_default(), c.as_str())
        })?;
        if must_exist && facteur_store::acl::is_user(&id) {
            let dir = self.ctx.logins.directory();
            match blocking(|| dir.get_user(&id)) {
                Ok(Some(_)) => {}
                Ok(None) => return Err("[CANNOT] No such user".into()),
                Err(_) => return Err("[UNAVAILABLE] Cannot look the user up, try again".into()),
            }
        }
        Ok(id)
    }

    /// `* name` and a mailbox name (as the client names it).
    fn untagged(&self, what: &str, name: &str) -> Vec<u8> {
        let mut out = format!("* {what} ").into_bytes();
        self.mailbox_out(&mut out, name);
        out
    }

    /// SETACL and DELETEACL (`rights` None).
    pub(super) fn set_acl(
        &mut self,
        tag: &str,
        mailbox: &str,
        identifier: &str,
        rights: Option<&str>,
    ) -> io::Result<Flow> {
        let change = match rights.map(Change::parse) {
            None => Change::Replace(Rights::NONE),
            Some(Ok(c)) => c,
            Some(Err(c)) => {
                self.bad(Some(tag), &format!("Unknown right {c:?}"));
                return Ok(Flow::Continue);
            }
        };
        let Some((_, t)) = self.target_or_no(tag, mailbox, ADMIN) else {
            return Ok(Flow::Continue);
        };
        let id = match self.identifier(&t.owner, identifier, rights.is_some()) {
            Ok(id) => id,
            Err(text) => {
                self.no(tag, &text);
                return Ok(Flow::Continue);
            }
        };
        if id == t.owner {
            self.no(tag, "[CANNOT] The owner's rights cannot be changed");
            return Ok(Flow::Continue);
        }
        match blocking(|| self.ctx.store.change_acl(&t.owner, &t.name, &id, change)) {
            Ok(new) => {
                tracing::info!(owner = %t.owner, mailbox = %t.name, identifier = %id, rights = %new, "access control list changed");
                self.announce_and_ok(
                    tag,
                    if rights.is_some() {
                        "SETACL completed"
                    } else {
                        "DELETEACL completed"
                    },
                )
            }
            Err(e) => {
                self.store_error(tag, &e);
                Ok(Flow::Continue)
            }
        }
    }

    /// GETACL: the owner (every right) and each grant.
    pub(super) fn get_acl(&mut self, tag: &str, mailbox: &str) -> io::Result<Flow> {
        let Some((name, t)) = self.target_or_no(tag, mailbox, ADMIN) else {
            return Ok(Flow::Continue);
        };
        let entries = match blocking(|| self.ctx.store.acl(&t.owner, &t.name)) {
            Ok(e) => e,
            Err(e) => {
                self.store_error(tag, &e);
                return Ok(Flow::Continue);
            }
        };
        let mut out = self.untagged("ACL", &name);
        for (id, r) in std::iter::once((t.owner.clone(), Rights::ALL)).chain(entries) {
            out.push(b' ');
            encode::astring(&mut out, &id, false);
            out.push(b' ');
            encode::astring(&mut out, &r.to_string(), false);
        }
        out.extend_from_slice(b"\r\n");
        self.io.write(&out);
        self.announce_and_ok(tag, "GETACL completed")
    }

    /// LISTRIGHTS: the owner always has every right and nobody can change
    /// them; anybody else can be granted each right alone (`c` and `d` by
    /// themselves too, RFC 4314 §2.1.1).
    pub(super) fn list_rights(
        &mut self,
        tag: &str,
        mailbox: &str,
        identifier: &str,
    ) -> io::Result<Flow> {
        let Some((name, t)) = self.target_or_no(tag, mailbox, ADMIN) else {
            return Ok(Flow::Continue);
        };
        let id = match self.identifier(&t.owner, identifier, false) {
            Ok(id) => id,
            Err(text) => {
                self.no(tag, &text);
                return Ok(Flow::Continue);
            }
        };
        let mut out = self.untagged("LISTRIGHTS", &name);
        out.push(b' ');
        // The identifier as the client gave it (§3.4).
        encode::astring(&mut out, identifier, false);
        if id == t.owner {
            out.extend_from_slice(format!(" {}\r\n", Rights::ALL).as_bytes());
        } else {
            out.extend_from_slice(b" \"\" l r s w i p k x t e a c d\r\n");
        }
        self.io.write(&out);
        self.announce_and_ok(tag, "LISTRIGHTS completed")
    }

    /// MYRIGHTS: any right lets a user ask (§4).
    pub(super) fn my_rights(&mut self, tag: &str, mailbox: &str) -> io::Result<Flow> {
        let Some((name, t)) = self.target_or_no(tag, mailbox, "") else {
            return Ok(Flow::Continue);
        };
        if !t.rights.any("lrikxa") {
            self.no(tag, "[NONEXISTENT] No such mailbox");
            return Ok(Flow::Continue);
        }
        let mut out = Vec::new();
        self.write_myrights(&mut out, &name, t.rights);
        self.io.write(&out);
        self.announce_and_ok(tag, "MYRIGHTS completed")
    }

    /// `* MYRIGHTS` for LIST RETURN (MYRIGHTS) (RFC 8440 §3).
    pub(super) fn write_myrights(&self, out: &mut Vec<u8>, name: &str, rights: Rights) {
        out.extend_from_slice(b"* MYRIGHTS ");
        self.mailbox_out(out, name);
        out.push(b' ');
        encode::astring(out, &rights.to_string(), false);
        out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use facteur_store::Flags;

    #[test]
    fn names_lead_to_own_other_or_a_level() {
        let me = "alice@example.test";
        assert_eq!(place(me, "INBOX"), Place::Own("INBOX".into()));
        assert_eq!(place(me, "Sharedfoo"), Place::Own("Sharedfoo".into()));
        assert_eq!(place(me, "Shared"), Place::Level);
        assert_eq!(place(me, "Shared/"), Place::Level);
        assert_eq!(place(me, "Shared/bob"), Place::Level);
        assert_eq!(place(me, "Shared//x"), Place::Level);
        assert_eq!(place(me, "Shared/bob/"), Place::Level);
        assert_eq!(
            place(me, "Shared/Bob/Team/2026"),
            Place::Other {
                owner: "bob@example.test".into(),
                name: "Team/2026".into()
            }
        );
        assert_eq!(
            shown("bob@example.test", "Team/2026"),
            "Shared/bob/Team/2026"
        );
    }

    #[test]
    fn rights_give_the_flags_rfc_4314_says() {
        let m = |r: &str| flag_mask(Rights::parse(r).unwrap());
        assert_eq!(m("lrswipkxtea"), FlagMask::ALL);
        assert_eq!(m("lrs").system, SEEN);
        assert!(!m("lrs").keywords);
        assert_eq!(m("lrt").system, DELETED);
        let w = m("lrw");
        assert!(w.keywords && w.system & SEEN == 0 && w.system & DELETED == 0);
        assert!(w.system & facteur_store::FLAGGED != 0);
        let mut f = Flags::system(SEEN | DELETED | facteur_store::ANSWERED);
        f.keywords.insert("$Work".into());
        assert_eq!(
            flag_mask(Rights::parse("lris").unwrap()).filter(&f),
            Flags::system(SEEN)
        );
    }
}
