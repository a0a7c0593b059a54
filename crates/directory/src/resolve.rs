//! Recipient resolution and login, written once against [`Directory`].
//!
//! Offers [`resolve_for`] (where does mail for an address go, as smtpd's
//! RCPT check, qmgr's expansion or lmtpd's delivery must see it: [`Hop`]
//! writes down who expands aliases), the walk [`resolve()`] it is built on,
//! and [`authenticate`] (the password check), also in its two steps for
//! callers that ration the expensive one: [`lookup_login`], then
//! [`verify_login`] (the hash).
//! Needs only a [`Directory`], so every backend resolves alike.
//!
//! Guarantees: resolution is bounded (at most [`MAX_ALIAS_DEPTH`] nested alias
//! expansions, loops detected), its result holds each user and each external
//! address once, in the order first reached. Security: [`authenticate`] does
//! the same hashing work whether the login exists or not, so response time
//! does not tell a client which logins exist.

use std::collections::{HashMap, HashSet};

use facteur_mail::Address;

use crate::password::{Scratch, verify_password_in};
use crate::{Directory, DirectoryError, Result, UserRecord, check_address};

/// Deepest chain of nested alias expansions [`resolve()`] follows.
pub const MAX_ALIAS_DEPTH: usize = 20;

/// Where mail for an address ends up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A local mailbox; `detail` is the part after the recipient delimiter
    /// when the user was reached through `user+detail@domain` (a hint for
    /// filing, e.g. by Sieve).
    Local {
        user: UserRecord,
        detail: Option<String>,
    },
    /// An address in a domain that is not local: qmgr relays to it.
    External(Address),
}

/// Why an address cannot be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("unknown user")]
    UnknownUser,
    #[error("domain is not local")]
    NotLocal,
    #[error("alias loop")]
    Loop,
    #[error("alias expansion deeper than {0}")]
    TooDeep(usize),
    #[error(transparent)]
    Directory(#[from] DirectoryError),
}

/// Resolves `addr` to the mailboxes and external addresses that receive its
/// mail.
///
/// `addr` must be in a local domain, else [`ResolveError::NotLocal`]. For an
/// address `a` in a local domain, with base `b` and detail `d` from
/// `a.split_detail(delimiters)` (`user+tag@dom` gives `user@dom` and `tag`;
/// `delimiters` is a set, `"+-"` allows both), the first rule that applies
/// wins:
///
/// 1. `a` is an alias source: each target is resolved in turn by these rules;
/// 2. `a` is a user: its mailbox, no detail;
/// 3. `a` has a detail and `b` is an alias source: its targets are resolved
///    (the detail is not carried to them); else if `b` is a user: its mailbox,
///    with detail `d`;
/// 4. the domain has a catch-all alias `@domain`: its targets are resolved;
/// 5. otherwise [`ResolveError::UnknownUser`].
///
/// Alias targets in a domain that is not local become [`Target::External`].
/// A target in a local domain that resolves to no one makes the whole
/// resolution fail with `UnknownUser` (a broken alias is reported, never
/// silently dropped; this may become a per-target result later).
///
/// Nesting and loops: at most [`MAX_ALIAS_DEPTH`] nested expansions, else
/// [`ResolveError::TooDeep`]. An alias source met again while it is being
/// expanded (on the current path) is delivered without looking at aliases:
/// to the user it names (rule 2, or rule 3's user with the detail), which makes
/// the classic "keep a copy" alias `a@d -> a@d, b@d` work; if no user is
/// there, [`ResolveError::Loop`]. A catch-all met again is a loop too.
///
/// Addresses are compared by [`Address::key`]: local part without regard to
/// case, domain lower-cased. Each user appears once in the result (with the
/// detail of the first path that reached it), each external address once;
/// the order is that of a depth-first walk of the targets in the order they
/// were added.
pub fn resolve(
    dir: &dyn Directory,
    addr: &Address,
    delimiters: &str,
) -> std::result::Result<Vec<Target>, ResolveError> {
    resolve_with(dir, addr, delimiters, HashMap::new())
}

/// Where an address is being resolved, and so what aliases mean there.
///
/// The rule of who expands aliases, written once: mail for a local address
/// is expanded exactly once, by the queue manager, which records the
/// result in the queue file before the first delivery. smtpd only checks,
/// at RCPT, that an address reaches someone (and throws the expansion
/// away: the queue does it again once it has the message). The last hop,
/// lmtpd, gets addresses that an MTA has already expanded — facteur-qmgr,
/// or Postfix with its virtual alias maps — so an address that names a user
/// is that user's mailbox whatever aliases say (expanding again would
/// deliver twice with "keep a copy" aliases, `alice -> alice, bob`, or
/// refuse alice's copy when the alias also forwards elsewhere); an address
/// that is not a user is still expanded, for MTAs that do no expansion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hop {
    /// smtpd at RCPT, for an address whose domain the caller has just found
    /// local (the directory is not asked about that domain again).
    Accept,
    /// The queue manager, once per message: the expansion that counts.
    Queue,
    /// The local delivery agent (LMTP): users first, then aliases.
    Deliver,
}

/// Resolves `addr` as `hop` must ([`Hop`] says who expands aliases); the
/// walk itself is [`resolve`]'s.
pub fn resolve_for(
    dir: &dyn Directory,
    addr: &Address,
    delimiters: &str,
    hop: Hop,
) -> std::result::Result<Vec<Target>, ResolveError> {
    match hop {
        Hop::Accept => resolve_local(dir, addr, delimiters),
        Hop::Queue => resolve(dir, addr, delimiters),
        Hop::Deliver => {
            if let Some(user) = dir.get_user(&addr.key())? {
                return Ok(vec![Target::Local { user, detail: None }]);
            }
            let (base, detail) = addr.split_detail(delimiters);
            if detail.is_some()
                && let Some(user) = dir.get_user(&base.key())?
            {
                return Ok(vec![Target::Local { user, detail }]);
            }
            resolve(dir, addr, delimiters)
        }
    }
}

/// [`resolve`] for an address whose domain the caller has just found
/// local: the directory is not asked about that domain again.
pub fn resolve_local(
    dir: &dyn Directory,
    addr: &Address,
    delimiters: &str,
) -> std::result::Result<Vec<Target>, ResolveError> {
    resolve_with(
        dir,
        addr,
        delimiters,
        HashMap::from([(addr.domain().to_owned(), true)]),
    )
}

fn resolve_with(
    dir: &dyn Directory,
    addr: &Address,
    delimiters: &str,
    local: HashMap<String, bool>,
) -> std::result::Result<Vec<Target>, ResolveError> {
    // Every question of one resolution in one read of the directory.
    crate::read_together(dir, || {
        let mut r = Resolver {
            dir,
            delimiters,
            path: Vec::new(),
            seen: HashSet::new(),
            out: Vec::new(),
            local,
        };
        if !r.is_local(addr.domain())? {
            return Err(ResolveError::NotLocal);
        }
        r.expand(addr, 0)?;
        Ok(r.out)
    })
}

struct Resolver<'a> {
    dir: &'a dyn Directory,
    delimiters: &'a str,
    /// Keys of the alias sources being expanded, outermost first.
    path: Vec<String>,
    /// Keys already in `out` (users by address, externals by key).
    seen: HashSet<String>,
    out: Vec<Target>,
    /// Domains already asked about (each is asked once per resolution).
    local: HashMap<String, bool>,
}

type Step = std::result::Result<(), ResolveError>;

impl Resolver<'_> {
    fn is_local(&mut self, domain: &str) -> std::result::Result<bool, ResolveError> {
        // Address literals are never local (and are not valid domain names
        // for the directory, so do not ask it).
        if domain.starts_with('[') {
            return Ok(false);
        }
        if let Some(&l) = self.local.get(domain) {
            return Ok(l);
        }
        let l = self.dir.is_local_domain(domain)?;
        self.local.insert(domain.to_owned(), l);
        Ok(l)
    }

    fn push_local(&mut self, user: UserRecord, detail: Option<String>) {
        if self.seen.insert(user.address.clone()) {
            self.out.push(Target::Local { user, detail });
        }
    }

    fn expand(&mut self, a: &Address, depth: usize) -> Step {
        if !self.is_local(a.domain())? {
            if self.seen.insert(a.key()) {
                self.out.push(Target::External(a.clone()));
            }
            return Ok(());
        }
        let (base, detail) = a.split_detail(self.delimiters);
        let a_str = a.to_string();

        // (1) the address itself is an alias.
        let targets = self.dir.alias_targets(&a_str)?;
        if !targets.is_empty() {
            let key = a.key();
            if !self.path.contains(&key) {
                return self.expand_targets(key, &targets, depth);
            }
            // Met again: deliver as rules 2 and 3 would, ignoring aliases.
            if let Some(user) = self.dir.get_user(&a_str)? {
                self.push_local(user, None);
                return Ok(());
            }
            if let Some(d) = detail
                && let Some(user) = self.dir.get_user(&base.to_string())?
            {
                self.push_local(user, Some(d));
                return Ok(());
            }
            return Err(ResolveError::Loop);
        }

        // (2) a user.
        if let Some(user) = self.dir.get_user(&a_str)? {
            self.push_local(user, None);
            return Ok(());
        }

        // (3) the address without its detail.
        if let Some(d) = detail {
            let b_str = base.to_string();
            let targets = self.dir.alias_targets(&b_str)?;
            let key = base.key();
            if !targets.is_empty() && !self.path.contains(&key) {
                return self.expand_targets(key, &targets, depth);
            }
            if let Some(user) = self.dir.get_user(&b_str)? {
                self.push_local(user, Some(d));
                return Ok(());
            }
            if !targets.is_empty() {
                return Err(ResolveError::Loop);
            }
        }

        // (4) the domain's catch-all.
        let catch_all = format!("@{}", a.domain());
        let targets = self.dir.alias_targets(&catch_all)?;
        if !targets.is_empty() {
            if self.path.contains(&catch_all) {
                return Err(ResolveError::Loop);
            }
            return self.expand_targets(catch_all, &targets, depth);
        }

        // (5)
        Err(ResolveError::UnknownUser)
    }

    /// Resolves each target of the alias `source` one level deeper.
    fn expand_targets(&mut self, source: String, targets: &[String], depth: usize) -> Step {
        if depth >= MAX_ALIAS_DEPTH {
            return Err(ResolveError::TooDeep(MAX_ALIAS_DEPTH));
        }
        self.path.push(source);
        for t in targets {
            // Targets were validated when written; a bad one means the
            // database was edited by hand.
            let addr = Address::parse(t).map_err(|e| {
                DirectoryError::InvalidAddress(format!("stored alias target {t:?}: {e}"))
            })?;
            self.expand(&addr, depth + 1)?;
        }
        self.path.pop();
        Ok(())
    }
}

/// A valid argon2id hash (of a random password nobody knows, made with
/// argon2-cffi at the parameters [`crate::password::hash_password`] uses), verified
/// against when the login is unknown so that the reply takes as long as for a
/// known user with a wrong password.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$W/NesLyQaAND4aLF6T83Ow$DEZUfBK8bBoM+yL+GDLYPjX9VXi5e+On4cwU6siJtkE";

/// Checks a login (the full address, any case) and password. `Ok(None)` for an
/// unknown or malformed login, a wrong password, or an empty password (never
/// accepted, whatever is stored). Errors only when the directory fails.
pub fn authenticate(
    dir: &dyn Directory,
    login: &str,
    password: &str,
) -> Result<Option<UserRecord>> {
    let user = lookup_login(dir, login)?;
    Ok(verify_login(user, password, &mut Scratch::new()))
}

/// The user a login names: `None` for an unknown or malformed login.
/// Errors only when the directory fails.
pub fn lookup_login(dir: &dyn Directory, login: &str) -> Result<Option<UserRecord>> {
    match check_address(login) {
        Ok(a) => dir.get_user(&a.to_string()),
        Err(_) => Ok(None),
    }
}

/// The password check of [`authenticate`], once the user is looked up
/// (`None`: unknown): the user when `password` (not empty) matches. The
/// work is the same either way: an unknown user is checked against a dummy
/// argon2id hash at the default parameters, an empty password against the
/// stored hash.
pub fn verify_login(
    user: Option<UserRecord>,
    password: &str,
    scratch: &mut Scratch,
) -> Option<UserRecord> {
    match user {
        Some(u) => {
            let ok = verify_password_in(&u.password_hash, password, scratch);
            (ok && !password.is_empty()).then_some(u)
        }
        None => {
            let _ = verify_password_in(DUMMY_HASH, password, scratch);
            None
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
mod tests {
    use super::*;
    use crate::SqliteDirectory;

    fn setup() -> SqliteDirectory {
        let d = SqliteDirectory::open_in_memory().unwrap();
        d.add_domain("example.test").unwrap();
        d.add_domain("other.test").unwrap();
        for u in ["alice@example.test", "bob@example.test", "carol@other.test"] {
            d.add_user(u, "{PLAIN}pw", 0, 0).unwrap();
        }
        d
    }

    fn addr(s: &str) -> Address {
        Address::parse(s).unwrap()
    }

    /// Compact view: "user@dom" or "user@dom+detail" for locals, "ext:addr".
    fn run(
        d: &SqliteDirectory,
        a: &str,
        delims: &str,
    ) -> std::result::Result<Vec<String>, ResolveError> {
        run_at(d, a, delims, Hop::Queue)
    }

    fn run_at(
        d: &SqliteDirectory,
        a: &str,
        delims: &str,
        hop: Hop,
    ) -> std::result::Result<Vec<String>, ResolveError> {
        Ok(resolve_for(d, &addr(a), delims, hop)?
            .into_iter()
            .map(|t| match t {
                Target::Local { user, detail: None } => user.address,
                Target::Local {
                    user,
                    detail: Some(x),
                } => format!("{}+{x}", user.address),
                Target::External(a) => format!("ext:{a}"),
            })
            .collect())
    }

    #[test]
    fn who_expands_aliases() {
        let d = setup();
        // "Keep a copy and forward", and an alias that is not a user.
        d.add_alias("alice@example.test", "alice@example.test")
            .unwrap();
        d.add_alias("alice@example.test", "friend@elsewhere.test")
            .unwrap();
        d.add_alias("team@example.test", "bob@example.test")
            .unwrap();
        // The queue expands; smtpd's check sees the same walk.
        for hop in [Hop::Queue, Hop::Accept] {
            assert_eq!(
                run_at(&d, "alice@example.test", "+", hop).unwrap(),
                ["alice@example.test", "ext:friend@elsewhere.test"]
            );
        }
        // The last hop: a user is that user's mailbox, details kept;
        // what is not a user is still expanded.
        assert_eq!(
            run_at(&d, "Alice@example.test", "+", Hop::Deliver).unwrap(),
            ["alice@example.test"]
        );
        assert_eq!(
            run_at(&d, "alice+x@example.test", "+", Hop::Deliver).unwrap(),
            ["alice@example.test+x"]
        );
        assert_eq!(
            run_at(&d, "team@example.test", "+", Hop::Deliver).unwrap(),
            ["bob@example.test"]
        );
        assert!(matches!(
            run_at(&d, "nobody@example.test", "+", Hop::Deliver),
            Err(ResolveError::UnknownUser)
        ));
    }

    #[test]
    fn plain_user_any_case() {
        let d = setup();
        assert_eq!(
            run(&d, "Alice@EXAMPLE.test", "+").unwrap(),
            vec!["alice@example.test"]
        );
        let t = resolve(&d, &addr("alice@example.test"), "+").unwrap();
        assert!(
            matches!(&t[..], [Target::Local { user, detail: None }] if user.address == "alice@example.test")
        );
    }

    #[test]
    fn unknown_and_not_local() {
        let d = setup();
        assert!(matches!(
            run(&d, "nobody@example.test", "+"),
            Err(ResolveError::UnknownUser)
        ));
        assert!(matches!(
            run(&d, "alice@remote.test", "+"),
            Err(ResolveError::NotLocal)
        ));
        assert!(matches!(
            run(&d, "alice@[127.0.0.1]", "+"),
            Err(ResolveError::NotLocal)
        ));
    }

    #[test]
    fn detail_and_delimiters() {
        let d = setup();
        assert_eq!(
            run(&d, "alice+lists@example.test", "+").unwrap(),
            vec!["alice@example.test+lists"]
        );
        assert!(matches!(
            run(&d, "alice-lists@example.test", "+"),
            Err(ResolveError::UnknownUser)
        ));
        assert_eq!(
            run(&d, "alice-lists@example.test", "+-").unwrap(),
            vec!["alice@example.test+lists"]
        );
        assert_eq!(
            run(&d, "Alice+Tag@example.test", "+-").unwrap(),
            vec!["alice@example.test+Tag"]
        );
        // No delimiters: no detail.
        assert!(matches!(
            run(&d, "alice+lists@example.test", ""),
            Err(ResolveError::UnknownUser)
        ));
        // An exact user or alias wins over the detail split.
        d.add_user("alice+special@example.test", "{PLAIN}x", 0, 0)
            .unwrap();
        assert_eq!(
            run(&d, "alice+special@example.test", "+").unwrap(),
            vec!["alice+special@example.test"]
        );
        d.add_alias("bob+news@example.test", "carol@other.test")
            .unwrap();
        assert_eq!(
            run(&d, "bob+news@example.test", "+").unwrap(),
            vec!["carol@other.test"]
        );
        // Unknown base with detail.
        assert!(matches!(
            run(&d, "zed+x@example.test", "+"),
            Err(ResolveError::UnknownUser)
        ));
    }

    #[test]
    fn alias_on_base_address() {
        let d = setup();
        d.add_alias("sales@example.test", "bob@example.test")
            .unwrap();
        assert_eq!(
            run(&d, "sales+q3@example.test", "+").unwrap(),
            vec!["bob@example.test"]
        );
    }

    #[test]
    fn alias_fan_out_external_and_dedup() {
        let d = setup();
        d.add_alias("team@example.test", "alice@example.test")
            .unwrap();
        d.add_alias("team@example.test", "Dave@Remote.Test")
            .unwrap();
        d.add_alias("team@example.test", "carol@other.test")
            .unwrap();
        d.add_alias("team@example.test", "sub@example.test")
            .unwrap();
        d.add_alias("sub@example.test", "ALICE@example.test")
            .unwrap();
        d.add_alias("sub@example.test", "dave@remote.test").unwrap();
        d.add_alias("sub@example.test", "bob+x@example.test")
            .unwrap();
        assert_eq!(
            run(&d, "team@example.test", "+").unwrap(),
            vec![
                "alice@example.test",
                "ext:Dave@remote.test",
                "carol@other.test",
                "bob@example.test+x"
            ]
        );
        // An alias wins over a user of the same name.
        d.add_alias("alice@example.test", "bob@example.test")
            .unwrap();
        assert_eq!(
            run(&d, "alice@example.test", "+").unwrap(),
            vec!["bob@example.test"]
        );
    }

    #[test]
    fn catch_all() {
        let d = setup();
        assert!(matches!(
            run(&d, "anything@example.test", "+"),
            Err(ResolveError::UnknownUser)
        ));
        d.add_alias("@example.test", "bob@example.test").unwrap();
        assert_eq!(
            run(&d, "anything@example.test", "+").unwrap(),
            vec!["bob@example.test"]
        );
        assert_eq!(
            run(&d, "any+thing@example.test", "+").unwrap(),
            vec!["bob@example.test"]
        );
        // Users and the detail rule still come first.
        assert_eq!(
            run(&d, "alice+x@example.test", "+").unwrap(),
            vec!["alice@example.test+x"]
        );
        // The catch-all of one domain does not catch another.
        assert!(matches!(
            run(&d, "anything@other.test", "+"),
            Err(ResolveError::UnknownUser)
        ));
        // A catch-all to an unknown address of its own domain loops.
        d.add_alias("@other.test", "typo@other.test").unwrap();
        assert!(matches!(
            run(&d, "x@other.test", "+"),
            Err(ResolveError::Loop)
        ));
        // A catch-all may forward a whole domain elsewhere.
        d.delete_alias("@other.test", None).unwrap();
        d.add_alias("@other.test", "archive@remote.test").unwrap();
        assert_eq!(
            run(&d, "x@other.test", "+").unwrap(),
            vec!["ext:archive@remote.test"]
        );
    }

    #[test]
    fn broken_local_target_fails_whole_resolution() {
        let d = setup();
        d.add_alias("list@example.test", "alice@example.test")
            .unwrap();
        d.add_alias("list@example.test", "gone@example.test")
            .unwrap();
        assert!(matches!(
            run(&d, "list@example.test", "+"),
            Err(ResolveError::UnknownUser)
        ));
    }

    #[test]
    fn loops() {
        let d = setup();
        d.add_alias("a@example.test", "b@example.test").unwrap();
        d.add_alias("b@example.test", "a@example.test").unwrap();
        assert!(matches!(
            run(&d, "a@example.test", "+"),
            Err(ResolveError::Loop)
        ));
        d.add_alias("self@example.test", "self@example.test")
            .unwrap();
        assert!(matches!(
            run(&d, "self@example.test", "+"),
            Err(ResolveError::Loop)
        ));
        // Loop through the detail rule: base alias to its own detailed form.
        d.add_alias("c@example.test", "c+x@example.test").unwrap();
        assert!(matches!(
            run(&d, "c@example.test", "+"),
            Err(ResolveError::Loop)
        ));
    }

    #[test]
    fn loop_back_to_a_user_delivers() {
        let d = setup();
        // Keep a copy: alice's alias includes alice.
        d.add_alias("alice@example.test", "alice@example.test")
            .unwrap();
        d.add_alias("alice@example.test", "bob@example.test")
            .unwrap();
        assert_eq!(
            run(&d, "alice@example.test", "+").unwrap(),
            vec!["alice@example.test", "bob@example.test"]
        );
        assert_eq!(
            run(&d, "ALICE+tag@example.test", "+").unwrap(),
            vec!["alice@example.test", "bob@example.test"]
        );
        // Through a second alias and back, and with a detail on the way.
        d.add_alias("bob@example.test", "bob+copy@example.test")
            .unwrap();
        d.add_alias("bob@example.test", "alice@example.test")
            .unwrap();
        assert_eq!(
            run(&d, "bob@example.test", "+").unwrap(),
            vec!["bob@example.test+copy", "alice@example.test"]
        );
    }

    #[test]
    fn depth_limit() {
        let d = setup();
        // chainI -> chainI+1 for I < n, chainN -> alice: n + 1 nested expansions.
        let link = |i: usize, to: &str| d.add_alias(&format!("chain{i}@example.test"), to).unwrap();
        for i in 0..MAX_ALIAS_DEPTH - 1 {
            link(i, &format!("chain{}@example.test", i + 1));
        }
        link(MAX_ALIAS_DEPTH - 1, "alice@example.test");
        assert_eq!(
            run(&d, "chain0@example.test", "+").unwrap(),
            vec!["alice@example.test"]
        );
        // One link more is one too many.
        let last = format!("chain{}@example.test", MAX_ALIAS_DEPTH - 1);
        d.delete_alias(&last, None).unwrap();
        link(
            MAX_ALIAS_DEPTH - 1,
            &format!("chain{MAX_ALIAS_DEPTH}@example.test"),
        );
        link(MAX_ALIAS_DEPTH, "alice@example.test");
        assert!(matches!(
            run(&d, "chain0@example.test", "+"),
            Err(ResolveError::TooDeep(20))
        ));
        // Starting one step further in fits again.
        assert_eq!(
            run(&d, "chain1@example.test", "+").unwrap(),
            vec!["alice@example.test"]
        );
    }

    #[test]
    fn authenticate_paths() {
        let d = SqliteDirectory::open_in_memory().unwrap();
        d.add_domain("example.test").unwrap();
        d.add_user(
            "alice@example.test",
            &crate::password::hash_password("s3cret").unwrap(),
            0,
            0,
        )
        .unwrap();
        d.add_user("plain@example.test", "{PLAIN}", 0, 0).unwrap();
        let u = authenticate(&d, "Alice@Example.Test", "s3cret")
            .unwrap()
            .unwrap();
        assert_eq!(u.address, "alice@example.test");
        assert_eq!(
            authenticate(&d, "alice@example.test", "wrong").unwrap(),
            None
        );
        assert_eq!(authenticate(&d, "alice@example.test", "").unwrap(), None);
        // Unknown user: goes through the dummy hash, returns None.
        assert_eq!(
            authenticate(&d, "nobody@example.test", "s3cret").unwrap(),
            None
        );
        assert_eq!(authenticate(&d, "not a login", "s3cret").unwrap(), None);
        assert_eq!(authenticate(&d, "alice", "s3cret").unwrap(), None);
        // An empty stored plain password never lets anyone in.
        assert_eq!(authenticate(&d, "plain@example.test", "").unwrap(), None);
        // The dummy hash is a real one, so the work is really done.
        assert_eq!(crate::password::scheme_of(DUMMY_HASH), Some("ARGON2ID"));
        assert!(argon2::password_hash::PasswordHash::new(DUMMY_HASH).is_ok());
    }
}
