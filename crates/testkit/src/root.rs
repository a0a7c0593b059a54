//! Temporary facteur roots: a directory with `facteur.toml` and the
//! layout of `facteurctl init --dev` (spool, state, run, mail), removed on
//! drop; and reading a mail root's `new/` messages.

use crate::accounts::Accounts;
use facteur_config::Config;
use facteur_directory::SqliteDirectory;
use facteur_spool::Spool;
use facteur_store::{Store, StoreConfig};
use std::path::{Path, PathBuf};

/// A temporary root and the configuration loaded from its `facteur.toml`.
/// Tests may change `cfg` after loading (it is theirs; the file stays).
pub struct Root {
    pub dir: tempfile::TempDir,
    pub cfg: Config,
}

impl Root {
    /// A root whose `facteur.toml` names `hostname`, the shared sections
    /// of [`facteur_config::sections_under`], then `more` (TOML text: the
    /// programs' own sections).
    pub fn new(hostname: &str, more: &str) -> Root {
        let dir = tempfile::tempdir().expect("a temporary directory");
        for d in ["spool", "state", "run", "mail"] {
            std::fs::create_dir_all(dir.path().join(d)).expect("creating the root's layout");
        }
        let path = dir.path().join("facteur.toml");
        let text = format!(
            "hostname = \"{hostname}\"\n{}{more}",
            facteur_config::sections_under(dir.path())
        );
        std::fs::write(&path, text).expect("writing facteur.toml");
        let cfg = Config::load(&path).unwrap_or_else(|e| panic!("the test configuration: {e}"));
        Root { dir, cfg }
    }

    /// As [`Root::new`], with `accounts` in the root's directory database.
    pub fn with_accounts(hostname: &str, more: &str, accounts: &Accounts) -> Root {
        let root = Root::new(hostname, more);
        accounts.on_disk(&root.cfg.directory.path);
        root
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The configuration file.
    pub fn config_path(&self) -> PathBuf {
        self.path().join("facteur.toml")
    }

    /// The spool the configuration names.
    pub fn spool(&self) -> Spool {
        Spool::open(&self.cfg.paths.spool_dir).expect("opening the spool")
    }

    /// The directory database the configuration names (created if new).
    pub fn directory(&self) -> SqliteDirectory {
        SqliteDirectory::open(&self.cfg.directory.path).expect("opening the directory")
    }

    /// The mail store the configuration names.
    pub fn store(&self) -> Store {
        store_at(&self.cfg.store.mail_root)
    }

    /// The messages in `user`'s INBOX `new/`.
    pub fn mailbox(&self, user: &str) -> Vec<Vec<u8>> {
        maildir_new(&self.cfg.store.mail_root, user)
    }
}

/// A store on the mail root `root`, for the host `mail.example.test`.
pub fn store_at(root: &Path) -> Store {
    Store::new(StoreConfig {
        root: root.to_path_buf(),
        hostname: "mail.example.test".into(),
    })
}

/// The contents of the files in `user`'s INBOX `new/` under the mail root
/// `mail_root`, sorted; empty if the Maildir does not exist (yet).
pub fn maildir_new(mail_root: &Path, user: &str) -> Vec<Vec<u8>> {
    let (local, domain) = user.split_once('@').expect("user@domain");
    let new = mail_root.join(domain).join(local).join("new");
    let mut out: Vec<Vec<u8>> = match std::fs::read_dir(&new) {
        Ok(rd) => rd
            .map(|e| std::fs::read(e.expect("listing new/").path()).expect("reading a message"))
            .collect(),
        Err(_) => Vec::new(),
    };
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use facteur_directory::Directory as _;

    #[test]
    fn a_root_loads_and_delivers_where_it_reads() {
        let root = Root::with_accounts(
            "mx.example.test",
            "[qmgr]\nmin_backoff = 1\n",
            &Accounts::new().user("alice@example.test", "{PLAIN}x"),
        );
        assert_eq!(root.cfg.hostname(), "mx.example.test");
        assert_eq!(root.cfg.qmgr.min_backoff.0, 1);
        assert!(root.cfg.paths.spool_dir.starts_with(root.path()));
        assert!(
            root.directory()
                .get_user("alice@example.test")
                .unwrap()
                .is_some()
        );
        assert!(root.mailbox("alice@example.test").is_empty());
        root.store()
            .deliver(
                "alice@example.test",
                None,
                &mut &b"Subject: x\r\n\r\nx\r\n"[..],
                Default::default(),
            )
            .unwrap();
        assert_eq!(
            root.mailbox("alice@example.test"),
            [b"Subject: x\n\nx\n".to_vec()]
        );
    }
}
