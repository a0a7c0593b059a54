//! Access control lists (RFC 4314): the grants that share a user's
//! mailboxes with other users of the same domain.
//!
//! Where: one SQLite file per domain, `<root>/<domain>/.facteur-acl.sqlite`
//! (the leading dot keeps it apart from the user directories, which can
//! never start with one), table `acl(owner, mailbox, identifier, rights)`.
//! One file per domain, not a table in each owner's index, so that the
//! mailboxes shared with a user are found with one query, without opening
//! every other user's index at each LIST. A domain where nobody shares has
//! no file: a LIST there costs one failed open.
//!
//! What a row means: `identifier` may do `rights` on the owner's mailbox.
//! Owners have every right on their own mailboxes without a row (and it
//! cannot be taken from them). Identifiers are addresses of the domain,
//! lower-case, `anyone` or `authenticated` (the same here: every user of
//! the domain who logged in). No negative rights (RFC 4314 §2 lets a
//! server leave them out). The obsolete rights `c` and `d` stand for `kx`
//! and `te` when given, and are shown whenever one of their members is
//! (§2.1.1).
//!
//! Consistency with the owner's folders (folders.rs): DELETE and RENAME
//! of a mailbox change its rows after the folder itself; CREATE drops any
//! row left for the name first, so a new mailbox never inherits a deleted
//! one's grants. A crash in between can only leave rows for a name that no
//! longer exists, which grant nothing until that name is created, and the
//! creation clears them: access can be lost that way, never gained.

use std::fmt;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use crate::{Result, Store, StoreError};

/// The file, in the domain's directory.
const FILE: &str = ".facteur-acl.sqlite";

/// The rights of RFC 4314 §2.1, in the order they are written.
const LETTERS: &[u8; 11] = b"lrswipkxtea";

/// A set of rights.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Rights(u16);

impl Rights {
    pub const NONE: Rights = Rights(0);
    /// What an owner has.
    pub const ALL: Rights = Rights((1 << LETTERS.len()) - 1);

    fn bit(c: u8) -> Option<u16> {
        LETTERS.iter().position(|&l| l == c).map(|i| 1 << i)
    }

    /// Parses rights letters; `c` and `d` add their members. An unknown
    /// letter (upper case included) is returned as the error: RFC 4314 §3.1
    /// wants a BAD for it, never silence.
    pub fn parse(s: &str) -> std::result::Result<Rights, char> {
        let mut bits = 0;
        for c in s.chars() {
            bits |= match c {
                'c' => Rights::bits_of(b"kx"),
                'd' => Rights::bits_of(b"te"),
                c if c.is_ascii() => Rights::bit(c as u8).ok_or(c)?,
                c => return Err(c),
            };
        }
        Ok(Rights(bits))
    }

    fn bits_of(letters: &[u8]) -> u16 {
        letters
            .iter()
            .filter_map(|&c| Rights::bit(c))
            .fold(0, |a, b| a | b)
    }

    /// Whether `right` (one letter of [`LETTERS`]) is granted.
    pub fn has(self, right: char) -> bool {
        right.is_ascii() && Rights::bit(right as u8).is_some_and(|b| self.0 & b != 0)
    }

    /// Whether any of `rights` is granted.
    pub fn any(self, rights: &str) -> bool {
        rights.chars().any(|c| self.has(c))
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn union(self, other: Rights) -> Rights {
        Rights(self.0 | other.0)
    }

    pub fn without(self, other: Rights) -> Rights {
        Rights(self.0 & !other.0)
    }
}

impl fmt::Display for Rights {
    /// The letters, then `c` and `d` when one of their members is there.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, &c) in LETTERS.iter().enumerate() {
            if self.0 & (1 << i) != 0 {
                write!(f, "{}", c as char)?;
            }
        }
        if self.any("kx") {
            f.write_str("c")?;
        }
        if self.any("te") {
            f.write_str("d")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Rights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Rights({self})")
    }
}

/// A change of one identifier's rights (SETACL's third argument, RFC 4314
/// §3.1): `+` adds rights, `-` removes them, anything else replaces them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Add(Rights),
    Remove(Rights),
    Replace(Rights),
}

impl Change {
    /// Parses `[+|-]letters`; Err: the first letter that is no right.
    pub fn parse(s: &str) -> std::result::Result<Change, char> {
        Ok(match s.as_bytes().first() {
            Some(b'+') => Change::Add(Rights::parse(&s[1..])?),
            Some(b'-') => Change::Remove(Rights::parse(&s[1..])?),
            _ => Change::Replace(Rights::parse(s)?),
        })
    }

    /// The rights after the change, from `old`.
    pub fn apply(self, old: Rights) -> Rights {
        match self {
            Change::Add(r) => old.union(r),
            Change::Remove(r) => old.without(r),
            Change::Replace(r) => r,
        }
    }
}

/// A mailbox shared with a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The owner's address.
    pub owner: String,
    /// The mailbox, in the owner's names.
    pub mailbox: String,
    /// The user's rights on it (their own row, `anyone` and
    /// `authenticated` together).
    pub rights: Rights,
}

/// Why an identifier cannot be given rights.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadIdentifier {
    #[error("negative rights are not supported")]
    Negative,
    #[error("mailboxes are shared only with users of {0}")]
    OtherDomain(String),
}

/// An identifier (of SETACL, DELETEACL, LISTRIGHTS, `facteurctl acl`) in
/// the form the file keeps: `anyone`, `authenticated`, or a lower-case
/// address of the owner's domain, a bare local part being taken in it.
/// Whether such a user exists is the caller's to check (its directory).
pub fn identifier(owner: &str, id: &str) -> std::result::Result<String, BadIdentifier> {
    let id = id.to_lowercase();
    if EVERYONE.contains(&id.as_str()) {
        return Ok(id);
    }
    if id.starts_with('-') {
        return Err(BadIdentifier::Negative);
    }
    let domain = owner.rsplit_once('@').map_or("", |(_, d)| d);
    let id = if id.contains('@') {
        id
    } else {
        format!("{id}@{domain}")
    };
    if id.rsplit_once('@').map(|(_, d)| d) != Some(domain) {
        return Err(BadIdentifier::OtherDomain(domain.to_string()));
    }
    Ok(id)
}

/// Whether `id` (as [`identifier`] gives it) names a user, not everyone.
pub fn is_user(id: &str) -> bool {
    !EVERYONE.contains(&id)
}

/// The identifiers every user of the domain matches.
const EVERYONE: [&str; 2] = ["anyone", "authenticated"];

fn domain_of(address: &str) -> Result<&str> {
    address
        .rsplit_once('@')
        .map(|(_, d)| d)
        .ok_or_else(|| StoreError::InvalidUser(address.to_owned()))
}

/// The ACL file of a user directory's domain.
fn file_of_user_dir(user_dir: &Path) -> Option<PathBuf> {
    user_dir.parent().map(|d| d.join(FILE))
}

/// The owner a user directory stands for (`local@domain`).
fn owner_of_user_dir(user_dir: &Path) -> Option<String> {
    let local = user_dir.file_name()?.to_str()?;
    let domain = user_dir.parent()?.file_name()?.to_str()?;
    Some(format!("{local}@{domain}"))
}

/// Opens the file; None when it does not exist and `create` is false.
fn open(path: &Path, create: bool) -> Result<Option<Connection>> {
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if create {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    } else if !path.exists() {
        return Ok(None);
    }
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    // Rollback journal with full syncs: a grant is durable when SETACL
    // answers OK, and writes are rare.
    conn.execute_batch(
        "PRAGMA synchronous=FULL;
         CREATE TABLE IF NOT EXISTS acl (
             owner TEXT NOT NULL,
             mailbox TEXT NOT NULL,
             identifier TEXT NOT NULL,
             rights TEXT NOT NULL,
             PRIMARY KEY (owner, mailbox, identifier)
         );
         CREATE INDEX IF NOT EXISTS acl_by_identifier ON acl (identifier);",
    )?;
    Ok(Some(conn))
}

fn parse_stored(s: &str) -> Rights {
    // Written by `Rights`' Display: only known letters.
    Rights::parse(s).unwrap_or_default()
}

/// A change to the rows of one owner's mailboxes, made by the store.
fn change_owner_rows(user_dir: &Path, f: impl FnOnce(&Connection, &str) -> Result<()>) {
    let (Some(path), Some(owner)) = (file_of_user_dir(user_dir), owner_of_user_dir(user_dir))
    else {
        return;
    };
    let r = open(&path, false).and_then(|c| match c {
        Some(c) => f(&c, &owner),
        None => Ok(()),
    });
    if let Err(e) = r {
        tracing::warn!(dir = %user_dir.display(), error = %e, "cannot update the access control lists");
    }
}

/// The mailbox `name` of the user at `user_dir` is gone (DELETE) or about
/// to be made (CREATE): its grants go.
pub(crate) fn forget(user_dir: &Path, name: &str) {
    change_owner_rows(user_dir, |c, owner| {
        c.execute(
            "DELETE FROM acl WHERE owner = ?1 AND mailbox = ?2",
            params![owner, name],
        )?;
        Ok(())
    });
}

/// The mailbox `from` and its children were renamed `to`: their grants
/// follow them (RFC 4314 §4: RENAME keeps the ACLs).
pub(crate) fn renamed(user_dir: &Path, from: &str, to: &str) {
    change_owner_rows(user_dir, |c, owner| {
        let prefix = format!("{from}/");
        let mut rows = Vec::new();
        {
            let mut st = c.prepare("SELECT mailbox FROM acl WHERE owner = ?1")?;
            let names = st.query_map([owner], |r| r.get::<_, String>(0))?;
            for n in names {
                let n = n?;
                if n == from {
                    rows.push((n, to.to_string()));
                } else if let Some(rest) = n.strip_prefix(&prefix) {
                    let new = format!("{to}/{rest}");
                    rows.push((n, new));
                }
            }
        }
        rows.sort();
        rows.dedup();
        let tx = c.unchecked_transaction()?;
        for (a, b) in rows {
            tx.execute(
                "DELETE FROM acl WHERE owner = ?1 AND mailbox = ?2",
                params![owner, b],
            )?;
            tx.execute(
                "UPDATE acl SET mailbox = ?3 WHERE owner = ?1 AND mailbox = ?2",
                params![owner, a, b],
            )?;
        }
        tx.commit()?;
        Ok(())
    });
}

impl Store {
    fn acl_file(&self, address: &str) -> Result<PathBuf> {
        let dir = self.user_dir(address)?;
        file_of_user_dir(&dir).ok_or_else(|| StoreError::InvalidUser(address.to_owned()))
    }

    /// The grants on `owner`'s mailbox `mailbox` (normalized), by
    /// identifier.
    pub fn acl(&self, owner: &str, mailbox: &str) -> Result<Vec<(String, Rights)>> {
        let Some(c) = open(&self.acl_file(owner)?, false)? else {
            return Ok(Vec::new());
        };
        let mut st = c.prepare(
            "SELECT identifier, rights FROM acl WHERE owner = ?1 AND mailbox = ?2
             ORDER BY identifier",
        )?;
        let rows = st.query_map(params![owner, mailbox], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        let mut out = Vec::new();
        for r in rows {
            let (id, rights) = r?;
            out.push((id, parse_stored(&rights)));
        }
        Ok(out)
    }

    /// Sets `identifier`'s rights on `owner`'s mailbox (none: its row
    /// goes). The caller has checked the identifier (an address of the
    /// owner's domain, `anyone` or `authenticated`) and the mailbox.
    pub fn set_acl(
        &self,
        owner: &str,
        mailbox: &str,
        identifier: &str,
        rights: Rights,
    ) -> Result<()> {
        self.change_acl(owner, mailbox, identifier, Change::Replace(rights))
            .map(|_| ())
    }

    /// Changes `identifier`'s rights on `owner`'s mailbox as `change`
    /// says, in one transaction (two SETACL `+` at once both count);
    /// returns the rights it has now. Checked as for [`Store::set_acl`].
    pub fn change_acl(
        &self,
        owner: &str,
        mailbox: &str,
        identifier: &str,
        change: Change,
    ) -> Result<Rights> {
        if identifier == owner {
            return Err(StoreError::Index(
                "an owner's own rights cannot change".into(),
            ));
        }
        let path = self.acl_file(owner)?;
        // No file yet and nothing granted: nothing to remove.
        let grants = matches!(change, Change::Add(r) | Change::Replace(r) if !r.is_empty());
        let Some(mut c) = open(&path, grants)? else {
            return Ok(Rights::NONE);
        };
        let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let old = tx
            .query_row(
                "SELECT rights FROM acl WHERE owner = ?1 AND mailbox = ?2 AND identifier = ?3",
                params![owner, mailbox, identifier],
                |r| r.get::<_, String>(0),
            )
            .optional()?
            .map_or(Rights::NONE, |s| parse_stored(&s));
        let new = change.apply(old);
        if new.is_empty() {
            tx.execute(
                "DELETE FROM acl WHERE owner = ?1 AND mailbox = ?2 AND identifier = ?3",
                params![owner, mailbox, identifier],
            )?;
        } else {
            tx.execute(
                "INSERT INTO acl (owner, mailbox, identifier, rights) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (owner, mailbox, identifier) DO UPDATE SET rights = excluded.rights",
                params![owner, mailbox, identifier, new.to_string()],
            )?;
        }
        tx.commit()?;
        Ok(new)
    }

    /// What `user` may do on `owner`'s mailbox: everything for the owner,
    /// else the union of the user's row and the rows for everyone.
    pub fn rights(&self, owner: &str, mailbox: &str, user: &str) -> Result<Rights> {
        if owner == user {
            return Ok(Rights::ALL);
        }
        if domain_of(owner)? != domain_of(user)? {
            return Ok(Rights::NONE);
        }
        let Some(c) = open(&self.acl_file(owner)?, false)? else {
            return Ok(Rights::NONE);
        };
        let mut st = c.prepare(
            "SELECT rights FROM acl WHERE owner = ?1 AND mailbox = ?2
             AND identifier IN (?3, ?4, ?5)",
        )?;
        let rows = st.query_map(
            params![owner, mailbox, user, EVERYONE[0], EVERYONE[1]],
            |r| r.get::<_, String>(0),
        )?;
        let mut rights = Rights::NONE;
        for r in rows {
            rights = rights.union(parse_stored(&r?));
        }
        Ok(rights)
    }

    /// The other users' mailboxes shared with `user`, by owner and name.
    pub fn shared_with(&self, user: &str) -> Result<Vec<Grant>> {
        let Some(c) = open(&self.acl_file(user)?, false)? else {
            return Ok(Vec::new());
        };
        let mut st = c.prepare(
            "SELECT owner, mailbox, rights FROM acl
             WHERE identifier IN (?1, ?2, ?3) AND owner <> ?1
             ORDER BY owner, mailbox",
        )?;
        let rows = st.query_map(params![user, EVERYONE[0], EVERYONE[1]], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        let mut out: Vec<Grant> = Vec::new();
        for r in rows {
            let (owner, mailbox, rights) = r?;
            let rights = parse_stored(&rights);
            match out.last_mut() {
                Some(g) if g.owner == owner && g.mailbox == mailbox => {
                    g.rights = g.rights.union(rights);
                }
                _ => out.push(Grant {
                    owner,
                    mailbox,
                    rights,
                }),
            }
        }
        Ok(out)
    }

    /// Every row naming `user`, as owner or as identifier (the user is
    /// being removed).
    pub(crate) fn forget_user(&self, user: &str) -> Result<()> {
        if let Some(c) = open(&self.acl_file(user)?, false)? {
            c.execute(
                "DELETE FROM acl WHERE owner = ?1 OR identifier = ?1",
                [user],
            )?;
        }
        Ok(())
    }

    /// Whether the ACL file has a row for this exact grant (tests, tools).
    pub fn has_acl_row(&self, owner: &str, mailbox: &str, identifier: &str) -> Result<bool> {
        let Some(c) = open(&self.acl_file(owner)?, false)? else {
            return Ok(false);
        };
        Ok(c.query_row(
            "SELECT 1 FROM acl WHERE owner = ?1 AND mailbox = ?2 AND identifier = ?3",
            params![owner, mailbox, identifier],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Quota, StoreConfig};

    fn store() -> (tempfile::TempDir, Store) {
        let t = tempfile::tempdir().unwrap();
        let s = Store::new(StoreConfig {
            root: t.path().to_path_buf(),
            hostname: "test".into(),
        });
        for u in ["alice@example.test", "bob@example.test", "eve@other.test"] {
            s.create_user(u).unwrap();
        }
        (t, s)
    }

    #[test]
    fn rights_parse_expand_and_show_the_obsolete_letters() {
        let r = Rights::parse("lrswida").unwrap();
        assert!(r.has('t') && r.has('e') && !r.has('k'));
        assert_eq!(r.to_string(), "lrswitead");
        assert_eq!(Rights::parse("lr").unwrap().to_string(), "lr");
        assert_eq!(Rights::parse("k").unwrap().to_string(), "kc");
        assert_eq!(Rights::parse("c").unwrap().to_string(), "kxc");
        assert_eq!(Rights::ALL.to_string(), "lrswipkxteacd");
        assert_eq!(Rights::parse("lrQ"), Err('Q'));
        assert_eq!(Rights::parse("lq"), Err('q'));
        assert_eq!(Rights::parse("é"), Err('é'));
        assert_eq!(Rights::parse(""), Ok(Rights::NONE));
        let back = Rights::parse(&Rights::ALL.to_string()).unwrap();
        assert_eq!(back, Rights::ALL);
        assert_eq!(
            Rights::ALL.without(Rights::parse("a").unwrap()).to_string(),
            "lrswipkxtecd"
        );
    }

    #[test]
    fn identifiers_take_one_form() {
        let o = "alice@example.test";
        assert_eq!(identifier(o, "Bob").unwrap(), "bob@example.test");
        assert_eq!(
            identifier(o, "BOB@Example.Test").unwrap(),
            "bob@example.test"
        );
        assert_eq!(identifier(o, "Anyone").unwrap(), "anyone");
        assert_eq!(identifier(o, "authenticated").unwrap(), "authenticated");
        assert_eq!(identifier(o, "-bob"), Err(BadIdentifier::Negative));
        assert_eq!(
            identifier(o, "eve@other.test"),
            Err(BadIdentifier::OtherDomain("example.test".into()))
        );
        assert!(is_user("bob@example.test") && !is_user("anyone"));
    }

    #[test]
    fn grants_are_found_by_the_grantee_and_joined_with_anyone() {
        let (_t, s) = store();
        let (a, b) = ("alice@example.test", "bob@example.test");
        assert!(s.shared_with(b).unwrap().is_empty());
        assert_eq!(s.rights(a, "INBOX", b).unwrap(), Rights::NONE);
        assert_eq!(s.rights(a, "INBOX", a).unwrap(), Rights::ALL);
        s.set_acl(a, "Sent", b, Rights::parse("lr").unwrap())
            .unwrap();
        s.set_acl(a, "Sent", "anyone", Rights::parse("s").unwrap())
            .unwrap();
        assert_eq!(s.rights(a, "Sent", b).unwrap().to_string(), "lrs");
        let g = s.shared_with(b).unwrap();
        assert_eq!(g.len(), 1);
        assert_eq!((g[0].owner.as_str(), g[0].mailbox.as_str()), (a, "Sent"));
        assert_eq!(g[0].rights.to_string(), "lrs");
        // Alice does not see her own mailbox as shared with her.
        assert!(s.shared_with(a).unwrap().is_empty());
        // Another domain shares nothing.
        assert_eq!(s.rights(a, "Sent", "eve@other.test").unwrap(), Rights::NONE);
        assert!(s.shared_with("eve@other.test").unwrap().is_empty());
        // The owner's rights are not rows.
        assert!(s.set_acl(a, "Sent", a, Rights::NONE).is_err());
        // Changes add to and take from what is there.
        let change = |s: &str| Change::parse(s).unwrap();
        assert_eq!(change("+w"), Change::Add(Rights::parse("w").unwrap()));
        assert_eq!(Change::parse("-lQ"), Err('Q'));
        assert_eq!(
            s.change_acl(a, "Sent", b, change("+iw"))
                .unwrap()
                .to_string(),
            "lrwi"
        );
        assert_eq!(
            s.change_acl(a, "Sent", b, change("-rd"))
                .unwrap()
                .to_string(),
            "lwi"
        );
        assert_eq!(s.rights(a, "Sent", b).unwrap().to_string(), "lswi");
        // No rights: the row goes.
        s.set_acl(a, "Sent", b, Rights::NONE).unwrap();
        assert!(!s.has_acl_row(a, "Sent", b).unwrap());
        assert_eq!(s.acl(a, "Sent").unwrap().len(), 1);
    }

    #[test]
    fn rename_moves_grants_with_children_and_delete_or_create_drops_them() {
        let (_t, s) = store();
        let (a, b) = ("alice@example.test", "bob@example.test");
        let u = s.open_user(a, Quota::default()).unwrap();
        u.create_mailbox("Team/2026", None).unwrap();
        let lr = Rights::parse("lr").unwrap();
        s.set_acl(a, "Team", b, lr).unwrap();
        s.set_acl(a, "Team/2026", b, lr).unwrap();
        s.set_acl(a, "Teams", b, lr).unwrap();
        u.rename_mailbox("Team", "Office").unwrap();
        assert!(s.has_acl_row(a, "Office", b).unwrap());
        assert!(s.has_acl_row(a, "Office/2026", b).unwrap());
        assert!(!s.has_acl_row(a, "Team", b).unwrap());
        // Only the renamed tree moves.
        assert!(s.has_acl_row(a, "Teams", b).unwrap());
        u.delete_mailbox("Office/2026").unwrap();
        assert!(!s.has_acl_row(a, "Office/2026", b).unwrap());
        // A row left for a name (a crash after a DELETE) does not pass to
        // a new mailbox of that name.
        s.set_acl(a, "Later", b, lr).unwrap();
        u.create_mailbox("Later", None).unwrap();
        assert!(!s.has_acl_row(a, "Later", b).unwrap());
        // Removing a user removes the rows naming them.
        s.set_acl(a, "Office", "anyone", lr).unwrap();
        s.purge_user(b).unwrap();
        assert_eq!(
            s.acl(a, "Office").unwrap(),
            vec![("anyone".to_string(), lr)]
        );
    }
}
