//! Recently verified logins, kept in memory so that a client that logs in
//! again (a phone polling, Thunderbird opening one connection per folder)
//! does not pay the password hash again: SHA512-CRYPT or argon2 costs
//! milliseconds of CPU per login, the same order as everything else an IMAP
//! visit does.
//!
//! A login is checked in two steps, so that a caller can ration the
//! expensive one: [`LoginCache::prepare`] (the directory lookup and the
//! cache: cheap) either knows the answer ([`Check::Known`]) or hands back a
//! [`Pending`] check, which [`LoginCache::verify`] runs (the hash, in the
//! caller's [`Scratch`]). [`LoginCache::authenticate`] does both.
//!
//! What is kept, per login, for `ttl` after the last *successful*
//! verification: a SHA-256 tag of (a random key made at start-up, the stored
//! hash string, the password), never the password. A later login hits only
//! if the directory still holds the same stored hash (a password change or a
//! deleted user misses at once) and the password gives the same tag; any
//! other login runs the full verification, so a wrong password costs what it
//! always did, and failures are never cached. The map is bounded
//! (`max_entries`; expired entries are swept when it is full, then the whole
//! map is dropped if that is not enough).
//!
//! The trade-off, documented for administrators (`directory.login_cache_seconds`,
//! 0 turns it off): someone who can read the daemon's memory could test
//! password guesses against a tag at SHA-256 speed instead of the stored
//! hash's. Such a reader also sees the passwords of the logins happening at
//! that moment.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::password::{Scratch, constant_time_eq};
use crate::resolve::verify_login;
use crate::{Directory, Result, UserRecord};

/// What [`LoginCache::prepare`] found.
#[derive(Debug)]
pub enum Check {
    /// The cache knows this login and password: the user, no hash needed.
    Known(UserRecord),
    /// The password hash must decide: [`LoginCache::verify`].
    Verify(Pending),
}

/// A login waiting for its password hash: the user (`None`: unknown, a
/// dummy hash is checked instead) and the password.
pub struct Pending {
    user: Option<UserRecord>,
    password: String,
    /// Where a success is kept: the login's key and tag.
    entry: Option<(String, [u8; 32])>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("known", &self.user.is_some())
            .finish_non_exhaustive()
    }
}

struct Entry {
    tag: [u8; 32],
    until: Instant,
}

/// See the module documentation.
pub struct LoginCache {
    key: [u8; 32],
    ttl: Duration,
    max_entries: usize,
    map: Mutex<HashMap<String, Entry>>,
}

impl std::fmt::Debug for LoginCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginCache")
            .field("ttl", &self.ttl)
            .field("max_entries", &self.max_entries)
            .finish_non_exhaustive()
    }
}

impl LoginCache {
    /// The bound the daemons use: far more users than one server logs in
    /// within `ttl`, about 1 MiB of memory.
    pub const MAX_ENTRIES: usize = 10_000;

    /// The daemons' cache: `directory.login_cache_seconds`.
    pub fn from_seconds(seconds: u64) -> Self {
        Self::new(Duration::from_secs(seconds), Self::MAX_ENTRIES)
    }

    /// A cache keeping successful logins for `ttl` (zero: nothing is kept)
    /// and at most `max_entries` of them.
    pub fn new(ttl: Duration, max_entries: usize) -> Self {
        LoginCache {
            key: rand::random(),
            ttl,
            max_entries,
            map: Mutex::new(HashMap::new()),
        }
    }

    /// A cache that keeps nothing.
    pub fn disabled() -> Self {
        Self::new(Duration::ZERO, 0)
    }

    fn enabled(&self) -> bool {
        !self.ttl.is_zero() && self.max_entries > 0
    }

    fn tag(&self, stored: &str, password: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.key);
        // Lengths first: no two (stored, password) pairs feed the same bytes.
        h.update((stored.len() as u64).to_be_bytes());
        h.update(stored.as_bytes());
        h.update((password.len() as u64).to_be_bytes());
        h.update(password.as_bytes());
        h.finalize().into()
    }

    /// [`authenticate`], skipping the password hash when this login
    /// succeeded with the same password and stored hash within `ttl`:
    /// [`LoginCache::prepare`], then [`LoginCache::verify`] if needed.
    pub fn authenticate(
        &self,
        dir: &dyn Directory,
        login: &str,
        password: &str,
    ) -> Result<Option<UserRecord>> {
        Ok(match self.prepare(dir, login, password)? {
            Check::Known(user) => Some(user),
            Check::Verify(p) => self.verify(p, &mut Scratch::new()),
        })
    }

    /// The cheap part of a login: the directory lookup and the cache. The
    /// directory is asked every time, so a changed or removed user is seen
    /// at once. Errors only when the directory fails.
    pub fn prepare(&self, dir: &dyn Directory, login: &str, password: &str) -> Result<Check> {
        let pending = |user, entry| {
            Check::Verify(Pending {
                user,
                password: password.to_owned(),
                entry,
            })
        };
        let Ok(addr) = crate::check_address(login) else {
            return Ok(pending(None, None));
        };
        let Some(user) = dir.get_user(&addr.to_string())? else {
            // Unknown: the verification spends the same time as for a
            // wrong password.
            return Ok(pending(None, None));
        };
        if !self.enabled() || password.is_empty() {
            return Ok(pending(Some(user), None));
        }
        let key = addr.key();
        let tag = self.tag(&user.password_hash, password);
        let now = Instant::now();
        let hit = self
            .lock()
            .get(&key)
            .is_some_and(|e| e.until > now && constant_time_eq(&e.tag, &tag));
        if hit {
            return Ok(Check::Known(user));
        }
        Ok(pending(Some(user), Some((key, tag))))
    }

    /// The expensive part: the password hash ([`verify_login`]), with
    /// argon2's working memory from `scratch`. A success is remembered.
    pub fn verify(&self, pending: Pending, scratch: &mut Scratch) -> Option<UserRecord> {
        let Pending {
            user,
            password,
            entry,
        } = pending;
        let verified = verify_login(user, &password, scratch);
        if let (Some(_), Some((key, tag))) = (&verified, entry) {
            let now = Instant::now();
            let mut map = self.lock();
            if map.len() >= self.max_entries && !map.contains_key(&key) {
                map.retain(|_, e| e.until > now);
                if map.len() >= self.max_entries {
                    map.clear();
                }
            }
            map.insert(
                key,
                Entry {
                    tag,
                    until: now + self.ttl,
                },
            );
        }
        verified
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many logins are kept (tests).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no login is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
mod tests {
    use super::*;
    use crate::SqliteDirectory;

    const ALICE: &str = "alice@example.test";

    fn dir() -> SqliteDirectory {
        let d = SqliteDirectory::open_in_memory().unwrap();
        d.add_domain("example.test").unwrap();
        d.add_user(ALICE, "{PLAIN}right", 0, 0).unwrap();
        d
    }

    /// Whether `login` with `password` is let in.
    fn lets_in(c: &LoginCache, d: &SqliteDirectory, login: &str, password: &str) -> bool {
        c.authenticate(d, login, password).unwrap().is_some()
    }

    /// Puts an entry for alice as if (`stored`, `password`) had been
    /// verified, valid until `until`.
    fn plant(c: &LoginCache, stored: &str, password: &str, until: Instant) {
        let tag = c.tag(stored, password);
        c.lock().insert(ALICE.into(), Entry { tag, until });
    }

    #[test]
    fn hits_only_the_same_password_and_stored_hash() {
        let d = dir();
        let c = LoginCache::new(Duration::from_secs(60), 10);
        assert!(!lets_in(&c, &d, ALICE, "wrong"));
        assert!(c.is_empty(), "failures are not kept");
        assert!(lets_in(&c, &d, "Alice@Example.test", "right"));
        assert_eq!(c.len(), 1);
        // A hit: same login (any case), same password.
        assert!(lets_in(&c, &d, ALICE, "right"));
        // A wrong password never hits.
        assert!(!lets_in(&c, &d, ALICE, "righ"));
        assert!(!lets_in(&c, &d, ALICE, ""));
        // A password change is seen at once: the old one no longer works.
        d.set_password_hash(ALICE, "{PLAIN}new").unwrap();
        assert!(!lets_in(&c, &d, ALICE, "right"));
        assert!(lets_in(&c, &d, ALICE, "new"));
        // A deleted user is refused at once.
        d.delete_user(ALICE).unwrap();
        assert!(!lets_in(&c, &d, ALICE, "new"));
    }

    #[test]
    fn a_hit_skips_the_verification() {
        // An entry planted for the current stored hash answers for a
        // password the verifier would refuse: the verification was skipped.
        // One planted for another stored hash does not answer.
        let d = dir();
        let c = LoginCache::new(Duration::from_secs(60), 10);
        let later = Instant::now() + Duration::from_secs(60);
        plant(&c, "{PLAIN}right", "planted", later);
        assert!(lets_in(&c, &d, ALICE, "planted"), "the cache answered");
        plant(&c, "{PLAIN}other", "planted2", later);
        assert!(!lets_in(&c, &d, ALICE, "planted2"));
    }

    #[test]
    fn prepare_says_when_a_hash_is_needed() {
        let d = dir();
        let c = LoginCache::new(Duration::from_secs(60), 10);
        let needs_hash = |login: &str, pw: &str| match c.prepare(&d, login, pw).unwrap() {
            Check::Known(_) => None,
            Check::Verify(p) => Some(p),
        };
        // Unknown, malformed, wrong, not yet seen: all need the hash.
        for (login, pw) in [
            ("nobody@example.test", "right"),
            ("not an address", "right"),
            (ALICE, "wrong"),
            (ALICE, ""),
        ] {
            let p = needs_hash(login, pw).expect(login);
            assert!(c.verify(p, &mut Scratch::new()).is_none(), "{login}");
        }
        let p = needs_hash(ALICE, "right").unwrap();
        assert!(!format!("{p:?}").contains("right"));
        let user = c.verify(p, &mut Scratch::new()).unwrap();
        assert_eq!(user.address, ALICE);
        // Now known: no hash, the directory's record.
        match c.prepare(&d, "ALICE@example.test", "right").unwrap() {
            Check::Known(u) => assert_eq!(u.address, ALICE),
            Check::Verify(_) => panic!("expected a cache hit"),
        }
        assert!(needs_hash(ALICE, "wrong").is_some());
    }

    #[test]
    fn expiry_bound_and_disabled() {
        let d = dir();
        let c = LoginCache::new(Duration::from_secs(60), 10);
        plant(
            &c,
            "{PLAIN}right",
            "planted",
            Instant::now() - Duration::from_millis(1),
        );
        assert!(
            !lets_in(&c, &d, ALICE, "planted"),
            "expired entries do not answer"
        );
        let off = LoginCache::disabled();
        assert!(lets_in(&off, &d, ALICE, "right"));
        assert!(off.is_empty());
        // Bounded: a full map makes room.
        let small = LoginCache::new(Duration::from_secs(60), 1);
        d.add_user("bob@example.test", "{PLAIN}b", 0, 0).unwrap();
        assert!(lets_in(&small, &d, ALICE, "right"));
        assert!(lets_in(&small, &d, "bob@example.test", "b"));
        assert_eq!(small.len(), 1);
    }
}
