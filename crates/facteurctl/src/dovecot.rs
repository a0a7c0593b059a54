//! `facteurctl import dovecot-maildir` and `export dovecot-maildir`: moving
//! users from Dovecot (Maildir++ layout) to facteur and back, keeping what
//! clients cache — every message's UID under its folder's UIDVALIDITY, its
//! flags and keywords, its INTERNALDATE (the file's mtime) — so that
//! Thunderbird, phones and mbsync download nothing again.
//!
//! What is read (Dovecot 2.x, `mail_location = maildir:...`):
//! - the folders: the user's directory is INBOX, `.Name` directories the
//!   others (`.` separates levels, names in modified UTF-7);
//! - `dovecot-uidlist` of each folder: the header's `V` (UIDVALIDITY) and
//!   `N` (next UID), and one line per message, `<uid> [fields] :<name>`
//!   (version 3; versions 1 and 2 give the name without the colon);
//! - `dovecot-keywords`: `<n> <keyword>` lines; letter `a` + n after `:2,`
//!   in a file's name is keyword n (Dovecot keeps only 26 that way);
//! - the file names' flag letters D F R S T (P, "passed", has no IMAP flag);
//! - `subscriptions` (version 2: `V\t2` then levels joined by tabs; older:
//!   one name per line).
//!
//! Dovecot's binary index (`dovecot.index*`) is neither read nor needed:
//! keywords beyond the 26th of a folder, kept only there, are not carried
//! over (said in the report). A message file that `dovecot-uidlist` does
//! not list yet (delivered after Dovecot last looked) gets a UID from the
//! folder's next UID on: no client has seen it.
//!
//! Nothing at the source is changed. The store does the rest (see
//! facteur_store's import.rs): the import can be run again after an
//! interruption and adds only what is missing.

use anyhow::{Context as _, bail};
use facteur_store::{ANSWERED, DELETED, DRAFT, FLAGGED, Flags, ImportMessage, SEEN, UserStore};
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The flag letters of a Maildir name and their system flags (ASCII order,
/// as they must be written).
const LETTERS: [(char, u8); 5] = [
    ('D', DRAFT),
    ('F', FLAGGED),
    ('R', ANSWERED),
    ('S', SEEN),
    ('T', DELETED),
];

/// A folder of a Dovecot Maildir++ tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folder {
    /// facteur's name: "INBOX", "Lists/rust".
    pub name: String,
    pub dir: PathBuf,
}

/// The folders under `root` (INBOX first).
pub fn folders(root: &Path) -> anyhow::Result<Vec<Folder>> {
    if !root.join("cur").is_dir() {
        bail!("{} is not a Maildir (no cur/)", root.display());
    }
    let mut out = vec![Folder {
        name: "INBOX".into(),
        dir: root.to_path_buf(),
    }];
    let mut others = Vec::new();
    for e in fs::read_dir(root).with_context(|| format!("reading {}", root.display()))? {
        let e = e?;
        let file = e.file_name();
        let Some(f) = file.to_str() else { continue };
        let Some(rest) = f.strip_prefix('.') else {
            continue;
        };
        if rest.is_empty() || rest == "." || !e.path().join("cur").is_dir() {
            continue;
        }
        let mut levels = Vec::new();
        for l in rest.split('.') {
            match facteur_imap_proto::utf7::decode(l) {
                Some(l) if !l.is_empty() => levels.push(l),
                _ => bail!("folder name not in modified UTF-7: {f}"),
            }
        }
        others.push(Folder {
            name: levels.join("/"),
            dir: e.path(),
        });
    }
    others.sort_by(|a, b| a.name.cmp(&b.name));
    out.extend(others);
    Ok(out)
}

/// What `dovecot-uidlist` says.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct UidList {
    pub uidvalidity: u32,
    pub next_uid: u32,
    /// File base (the name before `:`) -> UID.
    pub uids: HashMap<String, u32>,
}

/// Parses a `dovecot-uidlist` (None: not one we understand).
pub fn parse_uidlist(text: &str) -> Option<UidList> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next()?.split_whitespace().collect();
    let mut l = UidList::default();
    match *header.first()? {
        "3" => {
            for f in &header[1..] {
                if let Some(v) = f.strip_prefix('V') {
                    l.uidvalidity = v.parse().ok()?;
                } else if let Some(n) = f.strip_prefix('N') {
                    l.next_uid = n.parse().ok()?;
                }
            }
        }
        "1" | "2" => {
            l.uidvalidity = header.get(1)?.parse().ok()?;
            l.next_uid = header.get(2)?.parse().ok()?;
        }
        _ => return None,
    }
    for line in lines {
        let Some((uid, rest)) = line.split_once(' ') else {
            continue;
        };
        let Ok(uid) = uid.parse::<u32>() else {
            continue;
        };
        // Version 3: `<uid> [fields] :<name>`; older: `<uid> <name>`.
        let name = match rest.find(':') {
            Some(i) if header[0] == "3" => &rest[i + 1..],
            _ => rest.trim(),
        };
        let base = name.split(':').next().unwrap_or(name);
        if uid > 0 && !base.is_empty() {
            l.uids.insert(base.to_string(), uid);
        }
    }
    (l.uidvalidity > 0).then_some(l)
}

/// Keywords of `dovecot-keywords` by index.
pub fn parse_keywords(text: &str) -> BTreeMap<u32, String> {
    text.lines()
        .filter_map(|l| {
            let (i, k) = l.split_once(' ')?;
            Some((i.parse().ok()?, k.trim().to_string()))
        })
        .filter(|(_, k)| !k.is_empty())
        .collect()
}

/// The flags of a file name's `:2,` part; keywords by letter. Returns the
/// flags and the letters that name no known keyword.
pub fn flags_of(name: &str, keywords: &BTreeMap<u32, String>) -> (Flags, Vec<char>) {
    let mut f = Flags::default();
    let mut unknown = Vec::new();
    let Some((_, info)) = name.split_once(":2,") else {
        return (f, unknown);
    };
    for c in info.chars() {
        if let Some(&(_, bit)) = LETTERS.iter().find(|(l, _)| *l == c) {
            f.system |= bit;
        } else if c.is_ascii_lowercase() {
            match keywords.get(&(c as u32 - 'a' as u32)) {
                Some(k) => {
                    f.keywords.insert(k.clone());
                }
                None => unknown.push(c),
            }
        }
    }
    (f, unknown)
}

/// The messages of one folder for import, and its UIDVALIDITY and next
/// UID.
pub fn read_folder(dir: &Path) -> anyhow::Result<(u32, u32, Vec<ImportMessage>)> {
    let list = fs::read_to_string(dir.join("dovecot-uidlist"))
        .ok()
        .and_then(|t| parse_uidlist(&t));
    let keywords = fs::read_to_string(dir.join("dovecot-keywords"))
        .map(|t| parse_keywords(&t))
        .unwrap_or_default();
    let mut files: Vec<(String, PathBuf, i64)> = Vec::new();
    for sub in ["cur", "new"] {
        let d = dir.join(sub);
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd {
            let e = e?;
            let meta = fs::symlink_metadata(e.path())?;
            let Some(name) = e.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if !meta.is_file() || name.starts_with('.') {
                continue;
            }
            files.push((name, e.path(), meta.mtime()));
        }
    }
    // Unlisted files in delivery order after the listed ones.
    files.sort_by(|a, b| (a.2, &a.0).cmp(&(b.2, &b.0)));
    let (uidvalidity, mut next) = match &list {
        Some(l) => (l.uidvalidity, l.next_uid.max(1)),
        None => (now_secs(), 1),
    };
    let mut msgs = Vec::with_capacity(files.len());
    let mut seen_uids = std::collections::HashSet::new();
    for (name, path, mtime) in files {
        let base = name.split(':').next().unwrap_or(&name).to_string();
        let listed = list.as_ref().and_then(|l| l.uids.get(&base).copied());
        let uid = match listed {
            Some(u) if seen_uids.insert(u) => u,
            _ => {
                let u = next;
                next += 1;
                seen_uids.insert(u);
                u
            }
        };
        let (flags, unknown) = flags_of(&name, &keywords);
        if !unknown.is_empty() {
            eprintln!(
                "{}: keyword letters {:?} of {name} are not in dovecot-keywords: left out",
                dir.display(),
                unknown
            );
        }
        let unique = base.split(',').next().unwrap_or(&base).to_string();
        msgs.push(ImportMessage {
            source: path,
            unique,
            uid,
            flags,
            internal_date: mtime,
        });
    }
    let max_uid = msgs.iter().map(|m| m.uid).max().unwrap_or(0);
    Ok((uidvalidity, next.max(max_uid + 1), msgs))
}

/// The subscribed names of a Dovecot `subscriptions` file.
pub fn parse_subscriptions(text: &str) -> Vec<String> {
    let mut lines = text.lines().peekable();
    let v2 = lines.peek() == Some(&"V\t2");
    if v2 {
        lines.next();
    }
    lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            if v2 {
                l.replace('\t', "/")
            } else {
                l.to_string()
            }
        })
        .collect()
}

/// Imports the Dovecot Maildir at `src` into `us`; prints a line per
/// folder.
pub fn import_user(us: &UserStore, src: &Path, who: &str) -> anyhow::Result<()> {
    let (mut imported, mut skipped) = (0, 0);
    for f in folders(src)? {
        let (uidvalidity, next, msgs) = read_folder(&f.dir)?;
        let c = us
            .import_messages(&f.name, uidvalidity, next, &msgs)
            .with_context(|| format!("{who}: importing {}", f.name))?;
        println!(
            "{who}: {}: {} imported, {} already there (UIDVALIDITY {uidvalidity}, next UID {next})",
            f.name, c.imported, c.skipped
        );
        imported += c.imported;
        skipped += c.skipped;
    }
    if let Ok(t) = fs::read_to_string(src.join("subscriptions")) {
        for name in parse_subscriptions(&t) {
            us.subscribe(&name, true)
                .with_context(|| format!("{who}: subscribing {name}"))?;
        }
    }
    println!("{who}: {imported} messages imported, {skipped} already there");
    Ok(())
}

/// Writes the mailboxes of `us` as a Dovecot Maildir++ tree at `dst` (which
/// must not hold a Maildir yet).
pub fn export_user(us: &UserStore, dst: &Path, who: &str) -> anyhow::Result<()> {
    if dst.join("cur").exists() {
        bail!("{} already holds a Maildir", dst.display());
    }
    let mut total = 0;
    for info in us.list_mailboxes()? {
        let dir = if info.name == "INBOX" {
            dst.to_path_buf()
        } else {
            let levels: Vec<String> = info
                .name
                .split('/')
                .map(facteur_imap_proto::utf7::encode)
                .collect();
            dst.join(format!(".{}", levels.join(".")))
        };
        for sub in ["cur", "new", "tmp"] {
            fs::create_dir_all(dir.join(sub))?;
        }
        let e = us.export_mailbox(&info.name)?;
        // Keyword letters: the folder's keywords in order, 26 at most.
        let mut kws: Vec<&String> = e.messages.iter().flat_map(|m| &m.2.keywords).collect();
        kws.sort();
        kws.dedup();
        if kws.len() > 26 {
            eprintln!(
                "{who}: {}: {} keywords; Dovecot's file names hold 26: the others are left out",
                info.name,
                kws.len()
            );
        }
        let letter: HashMap<&String, char> = kws
            .iter()
            .take(26)
            .enumerate()
            .map(|(i, k)| (*k, (b'a' + i as u8) as char))
            .collect();
        let mut uidlist = format!(
            "3 V{} N{} G{:016x}{:016x}\n",
            e.uidvalidity,
            e.uidnext,
            rand::random::<u64>(),
            rand::random::<u64>()
        );
        for (uid, file, flags, date) in &e.messages {
            let name = file
                .file_name()
                .and_then(|n| n.to_str())
                .context("a message file name")?;
            let base = name.split(':').next().unwrap_or(name);
            let mut letters: Vec<char> = LETTERS
                .iter()
                .filter(|(_, b)| flags.system & b != 0)
                .map(|(l, _)| *l)
                .collect();
            let mut kl: Vec<char> = flags
                .keywords
                .iter()
                .filter_map(|k| letter.get(k).copied())
                .collect();
            kl.sort_unstable();
            letters.extend(kl);
            let target = dir
                .join("cur")
                .join(format!("{base}:2,{}", letters.iter().collect::<String>()));
            fs::copy(file, &target).with_context(|| format!("copying {}", file.display()))?;
            let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs((*date).max(0) as u64);
            fs::File::options()
                .write(true)
                .open(&target)?
                .set_modified(t)?;
            uidlist.push_str(&format!("{uid} :{base}\n"));
            total += 1;
        }
        fs::write(dir.join("dovecot-uidlist"), uidlist)?;
        if !kws.is_empty() {
            let mut k = fs::File::create(dir.join("dovecot-keywords"))?;
            for (i, kw) in kws.iter().take(26).enumerate() {
                writeln!(k, "{i} {kw}")?;
            }
        }
        println!(
            "{who}: {}: {} messages (UIDVALIDITY {}, next UID {})",
            info.name,
            e.messages.len(),
            e.uidvalidity,
            e.uidnext
        );
    }
    let mut subs = String::from("V\t2\n\n");
    for name in us.subscriptions()? {
        subs.push_str(&name.replace('/', "\t"));
        subs.push('\n');
    }
    fs::write(dst.join("subscriptions"), subs)?;
    println!("{who}: {total} messages written to {}", dst.display());
    Ok(())
}

fn now_secs() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uidlists_of_each_version() {
        let l = parse_uidlist(
            "3 V1700000000 N42 G0123456789abcdef0123456789abcdef\n\
             1 :1700000000.M1P2.host,S=10,W=12\n\
             7 G0123 W300 :1700000001.M2P2.host,S=290:2,S\n",
        )
        .unwrap();
        assert_eq!((l.uidvalidity, l.next_uid), (1_700_000_000, 42));
        assert_eq!(l.uids["1700000000.M1P2.host,S=10,W=12"], 1);
        assert_eq!(l.uids["1700000001.M2P2.host,S=290"], 7);
        let l = parse_uidlist("1 1234 5\n4 1700.M1.h\n").unwrap();
        assert_eq!(
            (l.uidvalidity, l.next_uid, l.uids["1700.M1.h"]),
            (1234, 5, 4)
        );
        assert_eq!(parse_uidlist("9 x\n"), None);
        assert_eq!(parse_uidlist(""), None);
    }

    #[test]
    fn flags_and_keywords_from_names() {
        let kw = parse_keywords("0 $Forwarded\n1 work\n25 last\n");
        let (f, unknown) = flags_of("1.M1.h,S=1:2,DFPRSTabcz", &kw);
        assert_eq!(f.system, DRAFT | FLAGGED | ANSWERED | SEEN | DELETED);
        assert_eq!(
            f.keywords.iter().cloned().collect::<Vec<_>>(),
            ["$Forwarded", "last", "work"]
        );
        assert_eq!(unknown, ['c']);
        assert_eq!(flags_of("1.M1.h", &kw).0, Flags::default());
    }

    #[test]
    fn subscriptions_of_each_version() {
        assert_eq!(
            parse_subscriptions("V\t2\n\nINBOX\nLists\trust\n"),
            ["INBOX", "Lists/rust"]
        );
        assert_eq!(
            parse_subscriptions("Sent\nLists/rust\n"),
            ["Sent", "Lists/rust"]
        );
    }

    #[test]
    fn folders_of_a_maildir_tree() {
        let d = tempfile::tempdir().unwrap();
        for f in ["", ".Sent", ".Lists.rust", ".&AMk-t&AOk-", ".notmaildir"] {
            let p = d.path().join(f);
            fs::create_dir_all(if f == ".notmaildir" { p } else { p.join("cur") }).unwrap();
        }
        let names: Vec<String> = folders(d.path())
            .unwrap()
            .into_iter()
            .map(|f| f.name)
            .collect();
        assert_eq!(names, ["INBOX", "Lists/rust", "Sent", "Été"]);
    }
}
