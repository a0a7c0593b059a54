//! A user's Sieve scripts (RFC 5228), as ManageSieve (RFC 5804) and
//! `facteurctl sieve` edit them and facteur-lmtpd reads them.
//!
//! On disk: `<user dir>/sieve/<name>.sieve`, one file per script, and
//! `<user dir>/sieve/active` holding the active script's name (no file: no
//! active script). Every change is an atomic, fsynced write or rename, so
//! a delivery reads either the old or the new script, never half of one.
//! The directory's name cannot clash with a folder (Maildir++ folders
//! start with a dot).
//!
//! Names (RFC 5804 §1.6): UTF-8, 1 to [`MAX_NAME`] characters, no control
//! characters, no `/`, not starting with a dot. Limits per user: at most
//! [`ScriptLimits::max_scripts`] scripts of [`ScriptLimits::max_size`]
//! bytes each (ManageSieve's HAVESPACE and QUOTA/MAXSCRIPTS answers).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::{Result, Store, StoreError};

/// Longest script name, characters.
pub const MAX_NAME: usize = 128;

const ACTIVE: &str = "active";
const SUFFIX: &str = ".sieve";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScriptLimits {
    pub max_scripts: usize,
    pub max_size: usize,
}

impl Default for ScriptLimits {
    fn default() -> ScriptLimits {
        ScriptLimits {
            max_scripts: 64,
            max_size: 1024 * 1024,
        }
    }
}

/// A script's name as the user gave it, when valid.
pub fn valid_script_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().count() <= MAX_NAME
        && !name.starts_with('.')
        && !name
            .chars()
            .any(|c| c.is_control() || c == '/' || c == '\u{2028}' || c == '\u{2029}')
}

fn check(name: &str) -> Result<()> {
    if valid_script_name(name) {
        Ok(())
    } else {
        Err(StoreError::InvalidName(name.to_string()))
    }
}

/// A user's scripts.
#[derive(Debug, Clone)]
pub struct Scripts {
    dir: PathBuf,
}

impl Store {
    /// The scripts of `user` (the directory is made on the first write).
    pub fn scripts(&self, user: &str) -> Result<Scripts> {
        Ok(Scripts {
            dir: self.user_dir(user)?.join("sieve"),
        })
    }

    /// The scripts of a whole domain (`<root>/<domain>/.sieve/`, beside its
    /// users' directories, which never start with a dot): the domain's
    /// filters, which facteur-lmtpd runs for every user of the domain before
    /// the user's own script.
    pub fn domain_scripts(&self, domain: &str) -> Result<Scripts> {
        // a user directory of the domain, for the checks on the name
        let probe = self.user_dir(&format!("probe@{domain}"))?;
        let dir = probe
            .parent()
            .map(|d| d.join(".sieve"))
            .ok_or_else(|| StoreError::InvalidUser(domain.to_string()))?;
        Ok(Scripts { dir })
    }
}

fn not_found(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
}

impl Scripts {
    /// The directory the scripts are in (a reader that caches them checks
    /// its modification time: every change here renames into it).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of script `name`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}{SUFFIX}"))
    }

    fn ensure_dir(&self) -> Result<()> {
        if self.dir.is_dir() {
            return Ok(());
        }
        let top = self.dir.parent().unwrap_or(Path::new("/"));
        facteur_util::create_dirs_durable(&[&self.dir], top, 0o700)?;
        Ok(())
    }

    /// The names of the scripts, sorted, with the active one marked.
    pub fn list(&self) -> Result<Vec<(String, bool)>> {
        let active = self.active_name()?;
        let mut out = Vec::new();
        let rd = match fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if not_found(&e) => return Ok(out),
            Err(e) => return Err(e.into()),
        };
        for entry in rd {
            let entry = entry?;
            if !entry.file_type()?.is_file() {
                continue;
            }
            let file = entry.file_name().to_string_lossy().into_owned();
            if let Some(name) = file.strip_suffix(SUFFIX)
                && valid_script_name(name)
            {
                let is_active = active.as_deref() == Some(name);
                out.push((name.to_string(), is_active));
            }
        }
        out.sort();
        Ok(out)
    }

    /// A script's text.
    pub fn get(&self, name: &str) -> Result<Option<Vec<u8>>> {
        check(name)?;
        match fs::read(self.path(name)) {
            Ok(b) => Ok(Some(b)),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Would a script of `size` bytes named `name` fit (HAVESPACE)?
    pub fn have_space(&self, name: &str, size: usize, limits: ScriptLimits) -> Result<()> {
        check(name)?;
        if size > limits.max_size {
            return Err(StoreError::Limit(format!(
                "a script may have at most {} bytes",
                limits.max_size
            )));
        }
        let list = self.list()?;
        if !list.iter().any(|(n, _)| n == name) && list.len() >= limits.max_scripts {
            return Err(StoreError::Limit(format!(
                "at most {} scripts per user",
                limits.max_scripts
            )));
        }
        Ok(())
    }

    /// Store a script (replacing one of that name), durably.
    pub fn put(&self, name: &str, text: &[u8], limits: ScriptLimits) -> Result<()> {
        self.have_space(name, text.len(), limits)?;
        self.ensure_dir()?;
        facteur_util::write_atomic(&self.path(name), text, 0o600)?;
        Ok(())
    }

    /// The text an `include` names (RFC 6609): `:global` from
    /// `global_dir/NAME.sieve` (none when there is no such directory), else
    /// this user's script NAME. None when there is none.
    pub fn include_text(
        &self,
        global_dir: Option<&Path>,
        global: bool,
        name: &str,
    ) -> Result<Option<Vec<u8>>> {
        check(name)?;
        if !global {
            return self.get(name);
        }
        let Some(dir) = global_dir else {
            return Ok(None);
        };
        match fs::read(dir.join(format!("{name}{SUFFIX}"))) {
            Ok(t) => Ok(Some(t)),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The active script's name.
    pub fn active_name(&self) -> Result<Option<String>> {
        match fs::read_to_string(self.dir.join(ACTIVE)) {
            Ok(s) => {
                let n = s.trim_end_matches('\n').to_string();
                Ok(valid_script_name(&n).then_some(n))
            }
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The active script: its name and text.
    pub fn active(&self) -> Result<Option<(String, Vec<u8>)>> {
        let Some(name) = self.active_name()? else {
            return Ok(None);
        };
        Ok(self.get(&name)?.map(|t| (name, t)))
    }

    /// Make `name` the active script; None: no script active.
    pub fn activate(&self, name: Option<&str>) -> Result<()> {
        match name {
            Some(n) => {
                if self.get(n)?.is_none() {
                    return Err(StoreError::NoSuchScript(n.to_string()));
                }
                facteur_util::write_atomic(
                    &self.dir.join(ACTIVE),
                    format!("{n}\n").as_bytes(),
                    0o600,
                )?;
            }
            None => match fs::remove_file(self.dir.join(ACTIVE)) {
                Ok(()) => facteur_util::fsync_dir(&self.dir)?,
                Err(e) if not_found(&e) => {}
                Err(e) => return Err(e.into()),
            },
        }
        Ok(())
    }

    /// Delete a script; the active one cannot be (RFC 5804 §2.10).
    pub fn delete(&self, name: &str) -> Result<()> {
        check(name)?;
        if self.active_name()?.as_deref() == Some(name) {
            return Err(StoreError::Limit(format!("{name} is the active script")));
        }
        match fs::remove_file(self.path(name)) {
            Ok(()) => Ok(facteur_util::fsync_dir(&self.dir)?),
            Err(e) if not_found(&e) => Err(StoreError::NoSuchScript(name.to_string())),
            Err(e) => Err(e.into()),
        }
    }

    /// Rename a script (the active mark follows it).
    pub fn rename(&self, from: &str, to: &str) -> Result<()> {
        check(from)?;
        check(to)?;
        if self.get(from)?.is_none() {
            return Err(StoreError::NoSuchScript(from.to_string()));
        }
        if self.get(to)?.is_some() {
            return Err(StoreError::ScriptExists(to.to_string()));
        }
        let was_active = self.active_name()?.as_deref() == Some(from);
        fs::rename(self.path(from), self.path(to))?;
        facteur_util::fsync_dir(&self.dir)?;
        if was_active {
            self.activate(Some(to))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_lifecycle() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::for_tests(d.path());
        s.create_user("ann@x.test").unwrap();
        let sc = s.scripts("ann@x.test").unwrap();
        let lim = ScriptLimits {
            max_scripts: 2,
            max_size: 100,
        };
        assert!(sc.list().unwrap().is_empty());
        assert_eq!(sc.active().unwrap(), None);
        sc.put("main", b"keep;", lim).unwrap();
        sc.put("été", b"discard;", lim).unwrap();
        assert!(matches!(
            sc.put("third", b"x", lim),
            Err(StoreError::Limit(_))
        ));
        assert!(matches!(
            sc.put("main", &[b' '; 101], lim),
            Err(StoreError::Limit(_))
        ));
        sc.put("main", b"stop;", lim).unwrap();
        assert_eq!(sc.get("main").unwrap().as_deref(), Some(&b"stop;"[..]));
        for bad in ["", ".x", "a/b", "a\nb", &"x".repeat(129)] {
            assert!(
                matches!(sc.put(bad, b"", lim), Err(StoreError::InvalidName(_))),
                "{bad:?}"
            );
        }
        sc.activate(Some("main")).unwrap();
        assert_eq!(
            sc.list().unwrap(),
            vec![("main".into(), true), ("été".into(), false)]
        );
        assert!(sc.delete("main").is_err());
        sc.rename("main", "renamed").unwrap();
        assert_eq!(
            sc.active().unwrap(),
            Some(("renamed".into(), b"stop;".to_vec()))
        );
        assert!(sc.rename("été", "renamed").is_err());
        assert!(sc.activate(Some("nope")).is_err());
        sc.activate(None).unwrap();
        sc.activate(None).unwrap();
        sc.delete("renamed").unwrap();
        assert!(sc.delete("renamed").is_err());
        assert_eq!(sc.list().unwrap(), vec![("été".into(), false)]);
        // the scripts directory is not a folder
        let us = s.open_user("ann@x.test", crate::Quota::default()).unwrap();
        assert!(
            !us.list_mailboxes()
                .unwrap()
                .iter()
                .any(|m| m.name.contains("sieve"))
        );
    }
}
