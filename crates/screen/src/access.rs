//! The allow and deny lists: networks, addresses and domains always
//! accepted (no pregreet wait, no DNS lists, no FCrDNS, no greylisting) or
//! always refused.
//!
//! Two sources: `[screen] allow/deny` in the configuration, and the file
//! `facteurctl access` keeps (`<state_dir>/screen/access`, one `allow
//! ENTRY` or `deny ENTRY` per line), read again when it changes — looked
//! at most once a second, so an edit applies without a restart.
//!
//! When several entries match, the most specific wins (a longer network
//! prefix; an address over its domain, a domain over its parents); between
//! an allow and a deny equally specific, the deny.

use facteur_config::screen::AccessEntry;
use std::io::{self, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// Which list an entry is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Listed {
    Allow,
    Deny,
}

impl Listed {
    pub fn as_str(self) -> &'static str {
        match self {
            Listed::Allow => "allow",
            Listed::Deny => "deny",
        }
    }
}

/// Entries with their list.
#[derive(Debug, Clone, Default)]
pub struct Entries(Vec<(Listed, AccessEntry)>);

impl Entries {
    /// From the configuration's lists (checked at load: bad ones skipped).
    pub fn from_config(allow: &[String], deny: &[String]) -> Entries {
        let mut v = Vec::new();
        for (l, list) in [(Listed::Allow, allow), (Listed::Deny, deny)] {
            v.extend(
                list.iter()
                    .filter_map(|e| AccessEntry::parse(e).ok().map(|e| (l, e))),
            );
        }
        Entries(v)
    }

    /// The verdict on a client address.
    pub fn client(&self, ip: IpAddr) -> Option<(Listed, u32)> {
        self.best(|e| match e {
            AccessEntry::Network(n) if n.contains(ip) => Some(u32::from(n.prefix)),
            _ => None,
        })
    }

    /// The verdict on an address (sender or recipient), lowercase.
    pub fn address(&self, addr: &str) -> Option<(Listed, u32)> {
        let addr = addr.to_ascii_lowercase();
        let domain = addr.rsplit_once('@').map_or("", |(_, d)| d);
        self.best(|e| match e {
            AccessEntry::Address(a) if *a == addr => Some(1000),
            AccessEntry::Domain { name, subdomains } => {
                let exact = !*subdomains && domain == name;
                let under = *subdomains
                    && domain
                        .strip_suffix(name.as_str())
                        .is_some_and(|head| head.ends_with('.'));
                // Deeper names are more specific.
                (exact || under).then(|| {
                    let labels = name.split('.').count() as u32 * 2;
                    labels + u32::from(exact)
                })
            }
            _ => None,
        })
    }

    fn best(&self, specificity: impl Fn(&AccessEntry) -> Option<u32>) -> Option<(Listed, u32)> {
        self.0
            .iter()
            .filter_map(|(l, e)| specificity(e).map(|s| (*l, s)))
            // Most specific first; on a tie, Deny (which sorts after
            // Allow) wins.
            .max_by_key(|(l, s)| (*s, *l))
    }

    fn merged(&self, other: &Entries) -> Entries {
        Entries(self.0.iter().chain(&other.0).cloned().collect())
    }
}

/// One line of the file: its list, its entry as written, and the entry
/// parsed (or why not).
pub type FileLine = (Listed, String, Result<AccessEntry, String>);

/// The file `facteurctl access` keeps: its lines, read whole. A bad line
/// is an error naming it (the tool refuses to write one; a hand edit is
/// reported by smtpd's log and the line skipped).
pub fn read_file(path: &Path) -> io::Result<Vec<FileLine>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (kind, value) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let value = value.trim().to_string();
        let listed = match kind {
            "allow" => Listed::Allow,
            "deny" => Listed::Deny,
            _ => {
                let e = Err(format!("line {}: expected \"allow\" or \"deny\"", n + 1));
                out.push((Listed::Deny, value, e));
                continue;
            }
        };
        let parsed = AccessEntry::parse(&value).map_err(|r| format!("line {}: {r}", n + 1));
        out.push((listed, value, parsed));
    }
    Ok(out)
}

/// Writes the file whole (a temporary file fsynced, then renamed over it,
/// then the directory fsynced).
pub fn write_file(path: &Path, entries: &[(Listed, String)]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(".access.tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        writeln!(
            f,
            "# facteur allow and deny lists; edit with `facteurctl access`."
        )?;
        for (l, v) in entries {
            writeln!(f, "{} {v}", l.as_str())?;
        }
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

/// The file's place under the state directory.
pub fn file_path(state_dir: &Path) -> PathBuf {
    state_dir.join("screen").join("access")
}

/// The lists a daemon consults: the configuration's and the file's.
pub struct AccessLists {
    config: Entries,
    file: PathBuf,
    state: Mutex<FileState>,
}

struct FileState {
    checked: Option<Instant>,
    stamp: Option<(SystemTime, u64)>,
    all: std::sync::Arc<Entries>,
}

/// How often the file's time stamp is looked at.
const RECHECK: Duration = Duration::from_secs(1);

impl AccessLists {
    pub fn new(config: Entries, file: PathBuf) -> AccessLists {
        let all = std::sync::Arc::new(config.clone());
        AccessLists {
            config,
            file,
            state: Mutex::new(FileState {
                checked: None,
                stamp: None,
                all,
            }),
        }
    }

    /// The entries now in force (the file read again if it changed).
    pub fn current(&self) -> std::sync::Arc<Entries> {
        let Ok(mut st) = self.state.lock() else {
            return std::sync::Arc::new(self.config.clone());
        };
        let now = Instant::now();
        if st.checked.is_some_and(|t| now.duration_since(t) < RECHECK) {
            return st.all.clone();
        }
        st.checked = Some(now);
        let stamp = std::fs::metadata(&self.file)
            .ok()
            .and_then(|m| Some((m.modified().ok()?, m.len())));
        if stamp != st.stamp {
            st.stamp = stamp;
            let mut from_file = Vec::new();
            match read_file(&self.file) {
                Ok(lines) => {
                    for (l, v, parsed) in lines {
                        match parsed {
                            Ok(e) => from_file.push((l, e)),
                            Err(r) => {
                                tracing::warn!(file = %self.file.display(), entry = v, "{r}")
                            }
                        }
                    }
                    tracing::info!(
                        file = %self.file.display(),
                        entries = from_file.len(),
                        "access lists read"
                    );
                }
                Err(e) => tracing::warn!(file = %self.file.display(), error = %e, "access lists"),
            }
            st.all = std::sync::Arc::new(self.config.merged(&Entries(from_file)));
        }
        st.all.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(allow: &[&str], deny: &[&str]) -> Entries {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        Entries::from_config(&s(allow), &s(deny))
    }

    #[test]
    fn the_most_specific_entry_wins() {
        let e = entries(
            &["192.0.2.0/24", "boss@sub.example.org", "good.example"],
            &[
                "192.0.2.5",
                ".example.org",
                "spam@good.example",
                "198.51.100.0/24",
            ],
        );
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(e.client(ip("192.0.2.4")).map(|x| x.0), Some(Listed::Allow));
        assert_eq!(e.client(ip("192.0.2.5")).map(|x| x.0), Some(Listed::Deny));
        assert_eq!(
            e.client(ip("198.51.100.9")).map(|x| x.0),
            Some(Listed::Deny)
        );
        assert_eq!(e.client(ip("203.0.113.1")), None);
        assert_eq!(
            e.address("Boss@Sub.Example.org").map(|x| x.0),
            Some(Listed::Allow)
        );
        assert_eq!(
            e.address("other@sub.example.org").map(|x| x.0),
            Some(Listed::Deny)
        );
        // `.example.org` is its subdomains only.
        assert_eq!(e.address("x@example.org"), None);
        assert_eq!(e.address("x@notexample.org"), None);
        assert_eq!(
            e.address("x@good.example").map(|x| x.0),
            Some(Listed::Allow)
        );
        assert_eq!(
            e.address("spam@good.example").map(|x| x.0),
            Some(Listed::Deny)
        );
        assert_eq!(e.address("x@sub.good.example"), None);
    }

    #[test]
    fn equal_specificity_deny_wins() {
        let e = entries(&["a@b.example"], &["a@b.example"]);
        assert_eq!(e.address("a@b.example").map(|x| x.0), Some(Listed::Deny));
    }

    #[test]
    fn the_file_is_read_again_when_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = file_path(dir.path());
        let lists = AccessLists::new(entries(&["a@b.example"], &[]), path.clone());
        assert!(lists.current().address("x@spam.example").is_none());
        write_file(&path, &[(Listed::Deny, "spam.example".into())]).unwrap();
        // Within a second of the last look, the old lists still apply.
        std::thread::sleep(RECHECK + Duration::from_millis(50));
        let now = lists.current();
        assert_eq!(
            now.address("x@spam.example").map(|x| x.0),
            Some(Listed::Deny)
        );
        assert_eq!(now.address("a@b.example").map(|x| x.0), Some(Listed::Allow));
        // A bad hand-edited line is skipped, the others kept.
        std::fs::write(
            &path,
            "deny spam.example\nallow not an entry\nfrobnicate x\n",
        )
        .unwrap();
        std::thread::sleep(RECHECK + Duration::from_millis(50));
        let lines = read_file(&path).unwrap();
        assert_eq!(lines.len(), 3);
        assert!(lines[1].2.is_err() && lines[2].2.is_err());
        assert!(lists.current().address("x@spam.example").is_some());
    }
}
