//! facteur-lists: simple mailing lists, kept beside the directory.
//!
//! A list `team@example.org` is an address whose mail goes to its members,
//! as a new message with the list's own envelope sender
//! (`team-bounces@example.org`) and the RFC 2369/2919 header fields, so that
//! bounces come back to the list (and are counted per member) instead of
//! to the author. Three more addresses belong to it: `team-bounces`
//! (delivery reports, counted), `team-owner` and `team-request` (both to the
//! owner).
//!
//! Offers [`ListStore`] (the lists, their members and the moderation queue,
//! in tables of the directory's SQLite database, so that every program that
//! may change the directory may change them), [`Role`] (what an address is
//! to a list), [`decide`] (the posting policy) and [`message`] (the list
//! copy of a post, and the failed recipients of a delivery report: pure
//! functions). Who acts on them: facteur-qmgr when it picks a message up
//! (before aliases), facteur-smtpd at RCPT (a list address is accepted),
//! `facteurctl list`.
//!
//! Durability: a held post is committed (synchronous=FULL) before qmgr
//! records the list recipient as done; bounce counts likewise.
//!
//! Why our own: Mailman 3 and Sympa are whole applications (web UI,
//! archives, Python or Perl stacks) and are the answer for real lists
//! (README shows Mailman 3 behind facteur); this is the "distribution list"
//! a console offers, with the habits that keep such a list deliverable.

pub mod message;
pub mod send;

pub use send::{PROTOCOL, queue_copies};

use facteur_mail::Address;
use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

/// Why a list operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error("no such list: {0}")]
    NoList(String),
    #[error("{0} is already a list")]
    Exists(String),
    #[error("invalid address {0:?}")]
    Address(String),
    #[error("no held post {0}")]
    NoPending(String),
    #[error("{0}")]
    Invalid(String),
    #[error("lists database: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("queue: {0}")]
    Spool(String),
}

pub type Result<T> = std::result::Result<T, ListError>;

/// Who may post.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Post {
    /// Members (and the owner); others are held for the owner.
    Members,
    /// Anyone.
    Anyone,
    /// Every post is held for the owner.
    Moderated,
}

impl Post {
    pub fn parse(s: &str) -> Result<Post> {
        match s {
            "members" => Ok(Post::Members),
            "anyone" => Ok(Post::Anyone),
            "moderated" => Ok(Post::Moderated),
            _ => Err(ListError::Invalid(format!(
                "--post {s:?}: members, anyone or moderated"
            ))),
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Post::Members => "members",
            Post::Anyone => "anyone",
            Post::Moderated => "moderated",
        }
    }
}

/// One list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct List {
    /// `name@domain`, lower-case.
    pub address: String,
    /// Gets `-owner`, `-request` and held-post notices; "" = none.
    pub owner: String,
    pub post: Post,
    /// Replies go to the list (a `Reply-To:` is set) rather than the author.
    pub reply_to_list: bool,
    /// Put in front of the subject as `[tag]`; "" = none.
    pub subject_tag: String,
    /// A member whose mail bounced this many times is disabled.
    pub bounce_limit: u32,
    /// Rewrite From: to the list (the author in Reply-To:), as Mailman does
    /// for DMARC, whenever the copy changes what the author's DKIM
    /// signature covers (a subject tag, a Reply-To:).
    pub munge_from: bool,
}

impl List {
    fn split(&self) -> (&str, &str) {
        self.address.rsplit_once('@').unwrap_or((&self.address, ""))
    }
    /// The local part.
    pub fn name(&self) -> &str {
        self.split().0
    }
    pub fn domain(&self) -> &str {
        self.split().1
    }
    /// `name-suffix@domain`.
    pub fn role_address(&self, suffix: &str) -> String {
        format!("{}-{suffix}@{}", self.name(), self.domain())
    }
    /// RFC 2919 list identifier: `name.domain`.
    pub fn list_id(&self) -> String {
        format!("{}.{}", self.name(), self.domain())
    }
}

/// A member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub address: String,
    pub bounces: u32,
    pub disabled: bool,
}

/// A post held for the owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub id: String,
    pub list: String,
    pub sender: String,
    pub subject: String,
    pub received: i64,
    pub reason: String,
}

/// What an address is to a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Post,
    Bounces,
    Owner,
    Request,
}

/// What to do with a post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// To these members (enabled ones).
    Distribute(Vec<String>),
    /// For the owner, with why.
    Hold(String),
    /// Thrown away, with why (a loop, a bounce sent to the post address).
    Drop(String),
}

/// The posting policy: `sender` (envelope) and `from` (the From: address)
/// of a post that carries `list_id` already (`looped`) or not.
pub fn decide(list: &List, members: &[Member], sender: &str, from: &str, looped: bool) -> Decision {
    if looped {
        return Decision::Drop("the post carries this list's List-Id (a loop)".into());
    }
    if sender.is_empty() {
        return Decision::Drop("a delivery report sent to the post address".into());
    }
    let is = |a: &str, b: &str| !a.is_empty() && a.eq_ignore_ascii_case(b);
    let known = |a: &str| is(a, &list.owner) || members.iter().any(|m| is(a, &m.address));
    let to: Vec<String> = members
        .iter()
        .filter(|m| !m.disabled)
        .map(|m| m.address.clone())
        .collect();
    match list.post {
        Post::Anyone => Decision::Distribute(to),
        Post::Moderated => Decision::Hold("the list is moderated".into()),
        Post::Members if known(sender) || known(from) => Decision::Distribute(to),
        Post::Members => Decision::Hold(format!("{sender} is not a member")),
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS lists (
    address TEXT PRIMARY KEY,
    owner TEXT NOT NULL DEFAULT '',
    post TEXT NOT NULL DEFAULT 'members',
    reply_to_list INTEGER NOT NULL DEFAULT 0,
    subject_tag TEXT NOT NULL DEFAULT '',
    bounce_limit INTEGER NOT NULL DEFAULT 5,
    munge_from INTEGER NOT NULL DEFAULT 1,
    secret TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS list_members (
    list TEXT NOT NULL REFERENCES lists(address) ON DELETE CASCADE,
    member TEXT NOT NULL,
    bounces INTEGER NOT NULL DEFAULT 0,
    disabled INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (list, member)
);
CREATE TABLE IF NOT EXISTS list_pending (
    id TEXT PRIMARY KEY,
    list TEXT NOT NULL REFERENCES lists(address) ON DELETE CASCADE,
    sender TEXT NOT NULL,
    subject TEXT NOT NULL,
    received INTEGER NOT NULL,
    reason TEXT NOT NULL,
    message BLOB NOT NULL
);
";

/// At most this many held posts per list (the oldest stay; new ones are
/// dropped with a log line by the caller).
pub const MAX_PENDING: u64 = 1000;

/// The lists, their members and held posts (see the module).
pub struct ListStore {
    conn: Mutex<Connection>,
    /// The lists' addresses, read again when another connection changed
    /// the database (`PRAGMA data_version`): [`ListStore::role`], asked for
    /// every recipient, answers "not a list" without a query.
    names: Mutex<Option<(i64, std::collections::HashSet<String>)>>,
}

fn key(address: &str) -> Result<String> {
    Address::parse(address.trim())
        .map(|a| a.key())
        .map_err(|_| ListError::Address(address.to_string()))
}

fn list_row(r: &rusqlite::Row) -> rusqlite::Result<List> {
    Ok(List {
        address: r.get(0)?,
        owner: r.get(1)?,
        post: Post::parse(&r.get::<_, String>(2)?).unwrap_or(Post::Members),
        reply_to_list: r.get(3)?,
        subject_tag: r.get(4)?,
        bounce_limit: r.get(5)?,
        munge_from: r.get(6)?,
    })
}

fn pending_row(r: &rusqlite::Row) -> rusqlite::Result<Pending> {
    Ok(Pending {
        id: r.get(0)?,
        list: r.get(1)?,
        sender: r.get(2)?,
        subject: r.get(3)?,
        received: r.get(4)?,
        reason: r.get(5)?,
    })
}

const GET_LIST: &str = "SELECT address, owner, post, reply_to_list, subject_tag, bounce_limit, munge_from FROM lists WHERE address = ?1";

const LIST_COLUMNS: &str =
    "address, owner, post, reply_to_list, subject_tag, bounce_limit, munge_from";

/// How long a query waits for another process's lock on the database.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The lists `address` may belong to, each with the role it would have
/// there: the list itself (`team@d`), then `team-bounces@d`,
/// `team-owner@d`, `team-request@d`. Keys as the lists table has them.
fn role_candidates(address: &str) -> Vec<(String, Role)> {
    let Ok(a) = Address::parse(address) else {
        return Vec::new();
    };
    let local = a.local().to_lowercase();
    let mut out = vec![(a.key(), Role::Post)];
    for (suffix, role) in [
        ("-bounces", Role::Bounces),
        ("-owner", Role::Owner),
        ("-request", Role::Request),
    ] {
        if let Some(name) = local.strip_suffix(suffix)
            && !name.is_empty()
        {
            out.push((format!("{name}@{}", a.domain()), role));
        }
    }
    out
}

impl ListStore {
    /// Opens the tables in the SQLite database at `path` (the directory's),
    /// creating them when missing.
    pub fn open(path: &Path) -> Result<ListStore> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.pragma_update(None, "foreign_keys", true)?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(SCHEMA)?;
        Ok(ListStore {
            conn: Mutex::new(conn),
            names: Mutex::new(None),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates a list (its domain's local-ness is the caller's check).
    pub fn create(&self, address: &str, owner: &str) -> Result<List> {
        let a = key(address)?;
        let owner = match owner.trim() {
            "" => String::new(),
            o => key(o)?,
        };
        if self.get(&a)?.is_some() {
            return Err(ListError::Exists(a));
        }
        use rand::Rng;
        let secret: String = (0..32)
            .map(|_| format!("{:02x}", rand::thread_rng().r#gen::<u8>()))
            .collect();
        self.lock().execute(
            "INSERT INTO lists (address, owner, secret) VALUES (?1, ?2, ?3)",
            params![a, owner, secret],
        )?;
        self.forget_names();
        self.get(&a)?.ok_or(ListError::NoList(a))
    }

    /// Deletes a list with its members and held posts.
    pub fn delete(&self, address: &str) -> Result<()> {
        let a = key(address)?;
        let n = self
            .lock()
            .execute("DELETE FROM lists WHERE address = ?1", [&a])?;
        self.forget_names();
        match n {
            0 => Err(ListError::NoList(a)),
            _ => Ok(()),
        }
    }

    pub fn get(&self, address: &str) -> Result<Option<List>> {
        let a = key(address)?;
        Ok(self
            .lock()
            .prepare_cached(GET_LIST)?
            .query_row([&a], list_row)
            .optional()?)
    }

    /// This connection's own changes do not move `data_version`.
    fn forget_names(&self) {
        *self.names.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Whether `key` (lower-case) names a list, from the cached names.
    fn is_list(&self, key: &str) -> Result<bool> {
        self.is_list_on(&self.lock(), key)
    }

    /// [`ListStore::is_list`] on the connection `c` (this store's, locked).
    fn is_list_on(&self, c: &Connection, key: &str) -> Result<bool> {
        let version: i64 = c
            .prepare_cached("PRAGMA data_version")?
            .query_row([], |r| r.get(0))?;
        let mut names = self.names.lock().unwrap_or_else(|e| e.into_inner());
        if names.as_ref().is_none_or(|(v, _)| *v != version) {
            let mut st = c.prepare_cached("SELECT address FROM lists")?;
            let set = st
                .query_map([], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<_>>()?;
            *names = Some((version, set));
        }
        Ok(names.as_ref().is_some_and(|(_, s)| s.contains(key)))
    }

    fn need(&self, address: &str) -> Result<List> {
        self.get(address)?
            .ok_or_else(|| ListError::NoList(address.to_string()))
    }

    pub fn all(&self) -> Result<Vec<List>> {
        let c = self.lock();
        let mut st = c.prepare(&format!(
            "SELECT {LIST_COLUMNS} FROM lists ORDER BY address"
        ))?;
        let rows = st.query_map([], list_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Saves the settings of `list` (its address names the row).
    pub fn update(&self, list: &List) -> Result<()> {
        let owner = match list.owner.trim() {
            "" => String::new(),
            o => key(o)?,
        };
        let n = self.lock().execute(
            "UPDATE lists SET owner = ?2, post = ?3, reply_to_list = ?4, subject_tag = ?5,
             bounce_limit = ?6, munge_from = ?7 WHERE address = ?1",
            params![
                key(&list.address)?,
                owner,
                list.post.as_str(),
                list.reply_to_list,
                list.subject_tag,
                list.bounce_limit,
                list.munge_from
            ],
        )?;
        match n {
            0 => Err(ListError::NoList(list.address.clone())),
            _ => Ok(()),
        }
    }

    /// Adds members (an address already there is enabled again, its
    /// bounces forgotten); returns how many were new.
    pub fn add(&self, list: &str, members: &[String]) -> Result<usize> {
        let l = self.need(list)?;
        let keys = members.iter().map(|m| key(m)).collect::<Result<Vec<_>>>()?;
        let mut c = self.lock();
        let tx = c.transaction()?;
        let mut new = 0;
        for k in keys {
            new += tx.execute(
                "INSERT OR IGNORE INTO list_members (list, member) VALUES (?1, ?2)",
                params![l.address, k],
            )?;
            tx.execute(
                "UPDATE list_members SET bounces = 0, disabled = 0 WHERE list = ?1 AND member = ?2",
                params![l.address, k],
            )?;
        }
        tx.commit()?;
        Ok(new)
    }

    /// Removes members; returns how many were there.
    pub fn remove(&self, list: &str, members: &[String]) -> Result<usize> {
        let l = self.need(list)?;
        let mut n = 0;
        for m in members {
            n += self.lock().execute(
                "DELETE FROM list_members WHERE list = ?1 AND member = ?2",
                params![l.address, key(m)?],
            )?;
        }
        Ok(n)
    }

    pub fn members(&self, list: &str) -> Result<Vec<Member>> {
        let l = self.need(list)?;
        let c = self.lock();
        let mut st = c.prepare(
            "SELECT member, bounces, disabled FROM list_members WHERE list = ?1 ORDER BY member",
        )?;
        let rows = st.query_map([&l.address], |r| {
            Ok(Member {
                address: r.get(0)?,
                bounces: r.get(1)?,
                disabled: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The list an address belongs to, and as what: `team@d` (post),
    /// `team-bounces@d`, `team-owner@d`, `team-request@d`.
    pub fn role(&self, address: &str) -> Result<Option<(List, Role)>> {
        for (list, role) in role_candidates(address) {
            if self.is_list(&list)?
                && let Some(l) = self.get(&list)?
            {
                return Ok(Some((l, role)));
            }
        }
        Ok(None)
    }

    /// Whether [`ListStore::role`] would find `address`, answered only when
    /// nothing has to wait: `None` if another thread holds the connection
    /// or another process a lock on the database (the busy time-out is off
    /// meanwhile). For a caller on an async thread, which asks again on a
    /// blocking one after a `None`.
    pub fn is_role_address_now(&self, address: &str) -> Option<Result<bool>> {
        let c = match self.conn.try_lock() {
            Ok(c) => c,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return None,
        };
        c.busy_timeout(Duration::ZERO).ok()?;
        let mut found = Ok(false);
        for (list, _) in role_candidates(address) {
            found = self.is_list_on(&c, &list);
            if !matches!(found, Ok(false)) {
                break;
            }
        }
        let _ = c.busy_timeout(BUSY_TIMEOUT);
        match found {
            Err(ListError::Db(e))
                if matches!(
                    e.sqlite_error_code(),
                    Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
                ) =>
            {
                None
            }
            r => Some(r),
        }
    }

    /// The unsubscription token of `member` on `list` (an HMAC of both
    /// with the list's secret, made at creation): what the one-click URL
    /// carries, so that only the member's own copy can unsubscribe it.
    pub fn token(&self, list: &str, member: &str) -> Result<String> {
        let l = key(list)?;
        let secret: String = self
            .lock()
            .query_row("SELECT secret FROM lists WHERE address = ?1", [&l], |r| {
                r.get(0)
            })
            .optional()?
            .ok_or_else(|| ListError::NoList(l.clone()))?;
        Ok(token(secret.as_bytes(), &l, &key(member)?))
    }

    /// Removes `member` from `list` if `token` is theirs; whether it was
    /// removed (false: a wrong token, or not a member any more).
    pub fn unsubscribe(&self, list: &str, member: &str, token: &str) -> Result<bool> {
        let good = self.token(list, member)?;
        if !constant_eq(good.as_bytes(), token.as_bytes()) {
            return Ok(false);
        }
        Ok(self.remove(list, &[member.to_string()])? == 1)
    }

    /// Counts a bounce of `member`'s mail; returns its count and whether
    /// this one disabled it. `None`: not a member.
    pub fn bounced(&self, list: &str, member: &str) -> Result<Option<(u32, bool)>> {
        let l = self.need(list)?;
        let m = key(member)?;
        let mut c = self.lock();
        let tx = c.transaction()?;
        let row: Option<(u32, bool)> = tx
            .query_row(
                "SELECT bounces, disabled FROM list_members WHERE list = ?1 AND member = ?2",
                params![l.address, m],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((n, was)) = row else {
            return Ok(None);
        };
        let n = n.saturating_add(1);
        let disable = !was && n >= l.bounce_limit.max(1);
        tx.execute(
            "UPDATE list_members SET bounces = ?3, disabled = disabled OR ?4 WHERE list = ?1 AND member = ?2",
            params![l.address, m, n, disable],
        )?;
        tx.commit()?;
        Ok(Some((n, disable)))
    }

    /// Holds a post for the owner; returns its id. Committed durably before
    /// it returns. `Ok(None)` when the list has [`MAX_PENDING`] held posts.
    pub fn hold(
        &self,
        list: &str,
        sender: &str,
        reason: &str,
        message: &[u8],
    ) -> Result<Option<String>> {
        let l = self.need(list)?;
        let c = self.lock();
        let n: u64 = c.query_row(
            "SELECT COUNT(*) FROM list_pending WHERE list = ?1",
            [&l.address],
            |r| r.get(0),
        )?;
        if n >= MAX_PENDING {
            return Ok(None);
        }
        let id = facteur_util::new_id();
        let subject = message::subject(message);
        c.execute(
            "INSERT INTO list_pending (id, list, sender, subject, received, reason, message)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                id,
                l.address,
                sender,
                subject,
                facteur_util::date::now_unix(),
                reason,
                message
            ],
        )?;
        Ok(Some(id))
    }

    /// Held posts, of one list or all, oldest first.
    pub fn pending(&self, list: Option<&str>) -> Result<Vec<Pending>> {
        let l = list.map(|l| self.need(l)).transpose()?.map(|l| l.address);
        let c = self.lock();
        let mut st = c.prepare(
            "SELECT id, list, sender, subject, received, reason FROM list_pending
             WHERE ?1 IS NULL OR list = ?1 ORDER BY received, id",
        )?;
        let rows = st.query_map([&l], pending_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// A held post and its message.
    pub fn pending_message(&self, id: &str) -> Result<(Pending, Vec<u8>)> {
        self.lock()
            .query_row(
                "SELECT id, list, sender, subject, received, reason, message FROM list_pending WHERE id = ?1",
                [id],
                |r| Ok((pending_row(r)?, r.get(6)?)),
            )
            .optional()?
            .ok_or_else(|| ListError::NoPending(id.to_string()))
    }

    /// Forgets a held post (after it was sent on, or refused).
    pub fn drop_pending(&self, id: &str) -> Result<()> {
        match self
            .lock()
            .execute("DELETE FROM list_pending WHERE id = ?1", [id])?
        {
            0 => Err(ListError::NoPending(id.to_string())),
            _ => Ok(()),
        }
    }
}

/// HMAC-SHA256 of `list` and `member` under `secret`, hex, 32 digits.
fn token(secret: &[u8], list: &str, member: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).expect("HMAC takes any key");
    mac.update(list.as_bytes());
    mac.update(b"\0");
    mac.update(member.as_bytes());
    mac.finalize().into_bytes()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Percent-encodes an address for a URL path segment (RFC 3986: letters,
/// digits, `-._~` and `@+` as they are).
pub fn path_segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'@' | b'+' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Decodes a percent-encoded path segment (`None` when malformed or not
/// UTF-8).
pub fn decode_segment(s: &str) -> Option<String> {
    facteur_util::percent_decode(s)
}

/// The one-click unsubscription URL of `member` under `base`.
pub fn unsubscribe_url(base: &str, list: &str, member: &str, token: &str) -> String {
    format!(
        "{}/{}/{}/{token}",
        base.trim_end_matches('/'),
        path_segment(list),
        path_segment(member)
    )
}

#[cfg(test)]
mod tests;
