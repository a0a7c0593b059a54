//! URLAUTH access keys (RFC 4467 §3): one random 256-bit key per mailbox
//! of a user, with which facteur-imapd computes and checks the tokens of
//! URLAUTH-authorized URLs (the HMAC itself is imapd's).
//!
//! They live in the plain file `facteur-urlauth` of the user directory,
//! one line per mailbox: `<UIDVALIDITY> <key, 64 hex digits> <normalized
//! name>`. A key holds only for the UIDVALIDITY it was made with, so a
//! mailbox deleted and created again under the same name (a new
//! UIDVALIDITY) does not honour the old URLs. The file is replaced whole
//! (written, fsynced, renamed) under the user's write lock; lines of
//! mailboxes that no longer exist are dropped at each write. Lost, it only
//! voids the URLs given out so far (as RESETKEY does).

use std::io;
use std::path::Path;

use crate::Result;
use crate::dirfd::is_link_refused;
use crate::folders::UserStore;
use crate::layout::normalize;

/// The keys file, in the user directory.
pub const URLAUTH_KEYS: &str = "facteur-urlauth";

#[derive(Debug, Clone, PartialEq, Eq)]
struct Key {
    uidvalidity: u32,
    key: [u8; 32],
    name: String,
}

impl UserStore {
    /// The URLAUTH key of `mailbox` for its `uidvalidity`. With `create`,
    /// one is made (and on disk before this returns) when there is none.
    pub fn urlauth_key(
        &self,
        mailbox: &str,
        uidvalidity: u32,
        create: bool,
    ) -> Result<Option<[u8; 32]>> {
        let norm = normalize(mailbox)?;
        let dir = self.dir();
        let find = |keys: &[Key]| {
            keys.iter()
                .find(|k| k.name == norm && k.uidvalidity == uidvalidity)
                .map(|k| k.key)
        };
        if let Some(k) = find(&read(dir)?) {
            return Ok(Some(k));
        }
        if !create {
            return Ok(None);
        }
        self.inner.write(|_| {
            let mut keys = read(dir)?;
            if let Some(k) = find(&keys) {
                return Ok(Some(k));
            }
            keys.retain(|k| k.name != norm && self.exists(&k.name).unwrap_or(false));
            let key: [u8; 32] = rand::random();
            keys.push(Key {
                uidvalidity,
                key,
                name: norm.clone(),
            });
            write(dir, &keys)?;
            Ok(Some(key))
        })
    }

    /// RESETKEY: forgets the key of `mailbox`, or every key of the user
    /// (the URLs made with them stop working; new ones get new keys).
    pub fn reset_urlauth_keys(&self, mailbox: Option<&str>) -> Result<()> {
        let norm = mailbox.map(normalize).transpose()?;
        let dir = self.dir();
        self.inner.write(|_| {
            let mut keys = read(dir)?;
            let before = keys.len();
            keys.retain(|k| norm.as_ref().is_some_and(|n| *n != k.name));
            if keys.len() != before {
                write(dir, &keys)?;
            }
            Ok(())
        })
    }
}

fn read(dir: &Path) -> io::Result<Vec<Key>> {
    let text = match crate::dirfd::read_to_string(&dir.join(URLAUTH_KEYS)) {
        Ok(s) => s,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) if is_link_refused(&e) => {
            tracing::warn!(dir = %dir.display(), "{URLAUTH_KEYS} is a symbolic link: not read (replaced at the next change)");
            return Ok(Vec::new());
        }
        Err(e) => return Err(e),
    };
    Ok(text.lines().filter_map(parse_line).collect())
}

/// One line; None for a malformed one (skipped: its URLs stop working).
fn parse_line(line: &str) -> Option<Key> {
    let mut it = line.splitn(3, ' ');
    let uidvalidity = it.next()?.parse().ok()?;
    let hex = it.next()?.as_bytes();
    let name = it.next().filter(|n| !n.is_empty())?.to_string();
    if hex.len() != 64 {
        return None;
    }
    let mut key = [0u8; 32];
    for (k, pair) in key.iter_mut().zip(hex.chunks(2)) {
        let digit = |b: u8| char::from(b).to_digit(16);
        *k = u8::try_from(digit(pair[0])? * 16 + digit(pair[1])?).ok()?;
    }
    Some(Key {
        uidvalidity,
        key,
        name,
    })
}

fn write(dir: &Path, keys: &[Key]) -> io::Result<()> {
    let mut s = String::new();
    for k in keys {
        s.push_str(&k.uidvalidity.to_string());
        s.push(' ');
        for b in k.key {
            s.push_str(&format!("{b:02x}"));
        }
        s.push(' ');
        s.push_str(&k.name);
        s.push('\n');
    }
    facteur_util::write_atomic(&dir.join(URLAUTH_KEYS), s.as_bytes(), 0o600)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_per_mailbox_and_uidvalidity() {
        let tmp = tempfile::tempdir().unwrap();
        let store = crate::Store::new(crate::StoreConfig {
            root: tmp.path().to_path_buf(),
            hostname: "test".into(),
        });
        store.create_user("ann@example.test").unwrap();
        let open = || {
            store
                .open_user("ann@example.test", crate::Quota::default())
                .unwrap()
        };
        let user = open();
        if !user.exists("Sent").unwrap() {
            user.create_mailbox("Sent", None).unwrap();
        }
        assert_eq!(user.urlauth_key("INBOX", 7, false).unwrap(), None);
        let k1 = user.urlauth_key("INBOX", 7, true).unwrap().unwrap();
        assert_eq!(user.urlauth_key("inbox", 7, false).unwrap(), Some(k1));
        // another UIDVALIDITY: not that key; making one replaces it
        assert_eq!(user.urlauth_key("INBOX", 8, false).unwrap(), None);
        let k2 = user.urlauth_key("INBOX", 8, true).unwrap().unwrap();
        assert_ne!(k1, k2);
        assert_eq!(user.urlauth_key("INBOX", 7, false).unwrap(), None);
        let sent = user.urlauth_key("Sent", 1, true).unwrap().unwrap();
        // a fresh handle reads the same file
        let again = open();
        assert_eq!(again.urlauth_key("Sent", 1, false).unwrap(), Some(sent));
        user.reset_urlauth_keys(Some("Sent")).unwrap();
        assert_eq!(user.urlauth_key("Sent", 1, false).unwrap(), None);
        assert_eq!(user.urlauth_key("INBOX", 8, false).unwrap(), Some(k2));
        user.reset_urlauth_keys(None).unwrap();
        assert_eq!(user.urlauth_key("INBOX", 8, false).unwrap(), None);
        // a deleted mailbox's line goes at the next write
        let _ = user.urlauth_key("Sent", 1, true).unwrap();
        user.delete_mailbox("Sent").unwrap();
        let _ = user.urlauth_key("INBOX", 8, true).unwrap();
        let text = std::fs::read_to_string(user.dir().join(URLAUTH_KEYS)).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.ends_with(" INBOX\n"), "{text}");
    }

    #[test]
    fn malformed_lines_are_skipped() {
        assert_eq!(parse_line("1 00 INBOX"), None);
        assert_eq!(parse_line(&format!("x {} INBOX", "0".repeat(64))), None);
        assert_eq!(parse_line(&format!("1 {}", "0".repeat(64))), None);
        assert_eq!(parse_line(&format!("1 {} ", "g".repeat(64))), None);
        let k = parse_line(&format!("5 {} a b", "ff".repeat(32))).unwrap();
        assert_eq!(
            (k.uidvalidity, k.key, k.name.as_str()),
            (5, [255; 32], "a b")
        );
    }
}
