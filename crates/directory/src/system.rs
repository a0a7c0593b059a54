//! The host's own addresses: the system aliases file and the Unix users,
//! laid over the directory as Postfix's `mydestination` and `alias_maps`
//! are on Debian.
//!
//! Offers [`SystemAliases`], a [`Directory`] that answers like the one it
//! wraps, and also for the system domains (`[aliases] domains`: the host
//! name and `localhost` by default): such a domain is local, and an
//! address in it that the directory does not know is looked up by its
//! local part in the aliases file (`root: alice@example.org`), else, when
//! it names a Unix user (cron's mail to `www-data`) or is `postmaster` or
//! `mailer-daemon`, goes where `[aliases] unix_users` says (`root`, so
//! where root's alias goes). The resolver does the rest (nesting, loops,
//! `+detail`). Also [`check`], the reading `newaliases` reports.
//!
//! Policy: `:include:` files are read only when `allow_include` is set
//! (their addresses, one level); `|command`, `/file` and `\user` targets
//! are always refused, each with a log line naming the file and line:
//! facteur delivers to mailboxes and addresses, never runs programs or
//! writes files as a side effect of an alias (a list manager such as
//! Mailman 3 takes its mail over LMTP). An entry left with no target is
//! dropped, so its name falls to the Unix-user rule.
//!
//! The file is read on first use and again when it (or an included file)
//! changes, checked at most once a second, and at once on [`Directory::
//! reload_files`] (newaliases tells qmgr). A missing file is an empty one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use facteur_mail::Address;

use crate::aliases_file::{self, Value};
use crate::{AliasRecord, Credentials, Directory, Result, UserRecord};

/// Names that go where Unix users' mail goes when the file has no entry.
const ROLE_NAMES: [&str; 2] = ["postmaster", "mailer-daemon"];

/// How often the files' stamps are looked at.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// What `[aliases]` says, resolved against the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub file: PathBuf,
    /// Lower-case; the first one qualifies the file's local names.
    pub domains: Vec<String>,
    /// `[aliases] unix_users`, qualified.
    pub unix_users: String,
    pub allow_include: bool,
}

impl Settings {
    pub fn from_config(cfg: &facteur_config::Config) -> Settings {
        let domains = cfg.system_domains();
        let first = domains
            .first()
            .cloned()
            .unwrap_or_else(|| "localhost".into());
        let u = cfg.aliases.unix_users.trim();
        let unix_users = if u.contains('@') {
            u.to_string()
        } else {
            format!("{}@{first}", u.to_lowercase())
        };
        Settings {
            file: cfg.aliases.file.clone(),
            domains,
            unix_users,
            allow_include: cfg.aliases.allow_include,
        }
    }

    fn origin(&self) -> &str {
        self.domains.first().map_or("localhost", String::as_str)
    }
}

/// The file as read: targets by lower-case name, and what was refused.
#[derive(Debug, Default)]
pub struct Table {
    pub entries: HashMap<String, Vec<String>>,
    /// `path:line: message`, in file order.
    pub problems: Vec<String>,
    /// Lines that could not be read at all (errors, not refusals).
    pub errors: usize,
    stamps: Vec<(PathBuf, Option<(SystemTime, u64)>)>,
}

fn stamp(p: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(p).ok()?;
    Some((m.modified().ok()?, m.len()))
}

fn read_bounded(p: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut s = String::new();
    std::fs::File::open(p)?
        .take(aliases_file::MAX_FILE)
        .read_to_string(&mut s)?;
    Ok(s)
}

/// Reads the aliases file as [`SystemAliases`] does.
pub fn check(settings: &Settings) -> Table {
    let mut t = Table {
        stamps: vec![(settings.file.clone(), stamp(&settings.file))],
        ..Table::default()
    };
    if settings.file.as_os_str().is_empty() {
        return t;
    }
    let text = match read_bounded(&settings.file) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return t,
        Err(e) => {
            t.errors += 1;
            t.problems
                .push(format!("{}: cannot read: {e}", settings.file.display()));
            return t;
        }
    };
    let file = settings.file.display().to_string();
    let (entries, problems) = aliases_file::parse(&text, settings.origin());
    let names: std::collections::HashSet<String> = entries.iter().map(|e| e.name.clone()).collect();
    t.errors += problems.len();
    for p in problems {
        t.problems.push(format!("{file}:{}: {}", p.line, p.message));
    }
    for e in entries {
        let mut targets = Vec::new();
        for v in e.values {
            let at = format!("{file}:{}", e.line);
            match v {
                Value::Address(a) => targets.push(a),
                Value::Include(p) if settings.allow_include => {
                    targets.extend(include(&mut t, &at, &p, settings.origin()))
                }
                Value::Include(p) => t.problems.push(format!(
                    "{at}: `:include:{}` refused (set [aliases] allow_include = true to read it)",
                    p.display()
                )),
                Value::Command(c) => t.problems.push(format!(
                    "{at}: `|{c}` refused: facteur runs no programs from aliases (give a list manager its mail over LMTP)"
                )),
                Value::File(p) => t.problems.push(format!(
                    "{at}: `{}` refused: facteur writes no mail into files",
                    p.display()
                )),
                Value::Mailbox(n) => t.problems.push(format!(
                    "{at}: `\\{n}` refused: facteur has no Unix mailboxes (/var/mail); name an address"
                )),
            }
        }
        for a in &targets {
            let Ok(addr) = Address::parse(a) else {
                continue;
            };
            let name = addr.local().to_lowercase();
            if settings.domains.iter().any(|d| d == addr.domain())
                && !names.contains(&name)
                && !ROLE_NAMES.contains(&name.as_str())
            {
                t.problems.push(format!(
                    "{file}:{}: `{}` is a name of this host with no entry of its own: facteur has no Unix mailboxes, so it goes where `unix_users` says or nowhere; write the address of a mailbox (user@your-domain)",
                    e.line,
                    addr.local()
                ));
            }
        }
        if targets.is_empty() {
            t.problems.push(format!(
                "{file}:{}: {:?} has nothing facteur delivers to; it is left out",
                e.line, e.name
            ));
        } else {
            t.entries.insert(e.name, targets);
        }
    }
    t
}

/// The addresses of an included file (one level: what it includes,
/// commands and files are refused).
fn include(t: &mut Table, at: &str, p: &Path, origin: &str) -> Vec<String> {
    t.stamps.push((p.to_owned(), stamp(p)));
    let text = match read_bounded(p) {
        Ok(s) => s,
        Err(e) => {
            t.errors += 1;
            t.problems
                .push(format!("{at}: `:include:{}`: {e}", p.display()));
            return Vec::new();
        }
    };
    let (values, problems) = aliases_file::parse_values(&text, origin);
    t.errors += problems.len();
    for pr in problems {
        t.problems
            .push(format!("{}:{}: {}", p.display(), pr.line, pr.message));
    }
    let mut out = Vec::new();
    for v in values {
        match v {
            Value::Address(a) => out.push(a),
            other => t.problems.push(format!(
                "{}: {other:?} refused in an included file (addresses only)",
                p.display()
            )),
        }
    }
    out
}

struct State {
    table: Option<Arc<Table>>,
    checked: Instant,
}

/// The directory with the system domains laid over it (see the module).
pub struct SystemAliases {
    inner: Arc<dyn Directory>,
    settings: Settings,
    state: Mutex<State>,
}

impl SystemAliases {
    pub fn new(inner: Arc<dyn Directory>, settings: Settings) -> SystemAliases {
        SystemAliases {
            inner,
            settings,
            state: Mutex::new(State {
                table: None,
                checked: Instant::now(),
            }),
        }
    }

    fn is_system(&self, domain: &str) -> bool {
        let d = domain.trim_end_matches('.');
        self.settings
            .domains
            .iter()
            .any(|s| s.eq_ignore_ascii_case(d))
    }

    fn load(&self, why: &str) -> Arc<Table> {
        let t = Arc::new(check(&self.settings));
        tracing::info!(
            file = %self.settings.file.display(),
            entries = t.entries.len(),
            why,
            "system aliases read"
        );
        for p in &t.problems {
            tracing::warn!("system aliases: {p}");
        }
        t
    }

    /// The table, read again when a file changed.
    fn table(&self) -> Arc<Table> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match st.table.clone() {
            None => {
                let t = self.load("first use");
                st.table = Some(t.clone());
                st.checked = Instant::now();
                t
            }
            Some(t) if st.checked.elapsed() < CHECK_EVERY => t,
            Some(t) => {
                st.checked = Instant::now();
                if t.stamps.iter().all(|(p, s)| stamp(p) == *s) {
                    return t;
                }
                let t = self.load("changed");
                st.table = Some(t.clone());
                t
            }
        }
    }

    /// The targets of a system address the directory does not know.
    fn system_targets(&self, a: &Address) -> Vec<String> {
        let name = a.local().to_lowercase();
        if let Some(t) = self.table().entries.get(&name) {
            return t.clone();
        }
        let unix_users = &self.settings.unix_users;
        let fallback_is_self = Address::parse(unix_users)
            .is_ok_and(|u| u.local().eq_ignore_ascii_case(&name) && self.is_system(u.domain()));
        if !fallback_is_self && (ROLE_NAMES.contains(&name.as_str()) || is_unix_user(&name)) {
            return vec![unix_users.clone()];
        }
        Vec::new()
    }
}

/// Whether `name` is a login of this machine (getpwnam).
fn is_unix_user(name: &str) -> bool {
    let plausible = !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    plausible && matches!(nix::unistd::User::from_name(name), Ok(Some(_)))
}

impl Directory for SystemAliases {
    fn read_together(&self, f: &mut dyn FnMut()) {
        self.inner.read_together(f)
    }
    fn add_domain(&self, name: &str) -> Result<()> {
        self.inner.add_domain(name)
    }
    fn delete_domain(&self, name: &str) -> Result<()> {
        self.inner.delete_domain(name)
    }
    fn list_domains(&self) -> Result<Vec<String>> {
        self.inner.list_domains()
    }
    fn is_local_domain(&self, name: &str) -> Result<bool> {
        Ok(self.is_system(name) || self.inner.is_local_domain(name)?)
    }
    fn add_user_with(&self, a: &str, c: &Credentials, qb: u64, qm: u64) -> Result<()> {
        self.inner.add_user_with(a, c, qb, qm)
    }
    fn delete_user(&self, address: &str) -> Result<()> {
        self.inner.delete_user(address)
    }
    fn set_credentials(&self, address: &str, credentials: &Credentials) -> Result<()> {
        self.inner.set_credentials(address, credentials)
    }
    fn set_quota(&self, address: &str, qb: u64, qm: u64) -> Result<()> {
        self.inner.set_quota(address, qb, qm)
    }
    fn get_user(&self, address: &str) -> Result<Option<UserRecord>> {
        self.inner.get_user(address)
    }
    fn list_users(&self, domain: Option<&str>) -> Result<Vec<UserRecord>> {
        self.inner.list_users(domain)
    }
    fn add_alias(&self, source: &str, target: &str) -> Result<()> {
        self.inner.add_alias(source, target)
    }
    fn delete_alias(&self, source: &str, target: Option<&str>) -> Result<()> {
        self.inner.delete_alias(source, target)
    }
    fn alias_targets(&self, source: &str) -> Result<Vec<String>> {
        let found = self.inner.alias_targets(source)?;
        if !found.is_empty() || source.starts_with('@') {
            return Ok(found);
        }
        match Address::parse(source) {
            // Its files and the system's user database (getpwnam, maybe
            // remote) are not for an async thread.
            Ok(a) if self.is_system(a.domain()) && crate::nowait::active() => {
                Err(crate::nowait::would_wait())
            }
            Ok(a) if self.is_system(a.domain()) && self.inner.get_user(source)?.is_none() => {
                Ok(self.system_targets(&a))
            }
            _ => Ok(found),
        }
    }
    fn list_aliases(&self, domain: Option<&str>) -> Result<Vec<AliasRecord>> {
        self.inner.list_aliases(domain)
    }
    fn scram_secret(&self) -> Result<Vec<u8>> {
        self.inner.scram_secret()
    }
    fn reload_files(&self) -> Result<Option<String>> {
        let t = self.load("reload asked");
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.table = Some(t.clone());
        st.checked = Instant::now();
        Ok(Some(format!(
            "{}: {} aliases, {} problems",
            self.settings.file.display(),
            t.entries.len(),
            t.problems.len()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SqliteDirectory, Target, resolve};

    fn setup(text: &str, allow_include: bool) -> (tempfile::TempDir, SystemAliases) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("aliases");
        std::fs::write(&file, text).unwrap();
        let inner = SqliteDirectory::open_in_memory().unwrap();
        inner.add_domain("example.org").unwrap();
        inner.add_user("alice@example.org", "x", 0, 0).unwrap();
        inner.add_user("bob@example.org", "x", 0, 0).unwrap();
        let settings = Settings {
            file,
            domains: vec!["mail.example.org".into(), "localhost".into()],
            unix_users: "root@mail.example.org".into(),
            allow_include,
        };
        (dir, SystemAliases::new(Arc::new(inner), settings))
    }

    fn users(d: &dyn Directory, a: &str) -> Vec<String> {
        resolve(d, &Address::parse(a).unwrap(), "+")
            .unwrap()
            .into_iter()
            .map(|t| match t {
                Target::Local { user, .. } => user.address,
                Target::External(a) => a.to_string(),
            })
            .collect()
    }

    #[test]
    fn root_postmaster_and_unix_users_reach_the_alias() {
        let (_d, s) = setup("postmaster: root\nroot: alice@example.org\n", false);
        assert!(s.is_local_domain("MAIL.example.org").unwrap());
        assert!(s.is_local_domain("localhost").unwrap());
        assert!(!s.is_local_domain("other.test").unwrap());
        for a in [
            "root@mail.example.org",
            "Root@localhost",
            "postmaster@mail.example.org",
            "root+cron@mail.example.org",
            "mailer-daemon@localhost",
        ] {
            assert_eq!(users(&s, a), ["alice@example.org"], "{a}");
        }
        // A Unix user every system has, with no entry: root's way.
        assert_eq!(users(&s, "daemon@mail.example.org"), ["alice@example.org"]);
        // Neither an entry nor a user.
        assert!(matches!(
            resolve(&s, &Address::parse("nosuch-xyz@localhost").unwrap(), "+"),
            Err(crate::ResolveError::UnknownUser)
        ));
        // The directory's own domains are untouched.
        assert_eq!(users(&s, "bob@example.org"), ["bob@example.org"]);
    }

    #[test]
    fn root_without_an_entry_is_unknown_not_a_loop() {
        let (_d, s) = setup("# nothing\n", false);
        assert!(matches!(
            resolve(&s, &Address::parse("root@localhost").unwrap(), "+"),
            Err(crate::ResolveError::UnknownUser)
        ));
        assert!(matches!(
            resolve(&s, &Address::parse("daemon@localhost").unwrap(), "+"),
            Err(crate::ResolveError::UnknownUser)
        ));
    }

    #[test]
    fn refused_targets_are_reported_and_left_out() {
        let (_d, s) = setup(
            "root: alice@example.org, |/usr/bin/procmail, /tmp/log, \\root\n\
             staff: :include:/nonexistent/staff\nbox: |/bin/true\n",
            false,
        );
        let t = s.table();
        assert_eq!(t.entries["root"], ["alice@example.org"]);
        assert!(!t.entries.contains_key("staff"));
        assert!(!t.entries.contains_key("box"));
        let all = t.problems.join("\n");
        assert!(all.contains(":1: `|/usr/bin/procmail` refused"), "{all}");
        assert!(all.contains("`/tmp/log` refused"), "{all}");
        assert!(all.contains("allow_include"), "{all}");
        assert!(all.contains(":3: \"box\" has nothing"), "{all}");
    }

    #[test]
    fn includes_when_allowed_and_changes_seen() {
        let (d, s) = setup("", true);
        let inc = d.path().join("staff");
        std::fs::write(&inc, "alice@example.org\nbob@example.org, |x\n").unwrap();
        std::fs::write(
            d.path().join("aliases"),
            format!("staff: :include:{}\n", inc.display()),
        )
        .unwrap();
        s.reload_files().unwrap();
        assert_eq!(
            users(&s, "staff@localhost"),
            ["alice@example.org", "bob@example.org"]
        );
        assert!(s.table().problems.join("\n").contains("addresses only"));
        // An edit of the included file is seen after the check interval.
        std::fs::write(&inc, "bob@example.org\n").unwrap();
        s.state.lock().unwrap().checked = Instant::now() - CHECK_EVERY;
        assert_eq!(users(&s, "staff@localhost"), ["bob@example.org"]);
    }

    #[test]
    fn a_directory_entry_wins_in_a_shared_domain() {
        let (_d, s) = setup("alice: bob@example.org\n", false);
        let s = SystemAliases {
            settings: Settings {
                domains: vec!["example.org".into()],
                unix_users: "root@example.org".into(),
                ..s.settings.clone()
            },
            ..s
        };
        assert_eq!(users(&s, "alice@example.org"), ["alice@example.org"]);
    }
}
