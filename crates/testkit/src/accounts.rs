//! Domains, users and aliases for a test directory, written once and put
//! into a SQLite directory in memory, on disk, or any `Directory`.

use facteur_directory::{Directory, SqliteDirectory};
use std::path::Path;

/// The domain every [`Accounts`] starts with.
pub const DOMAIN: &str = "example.test";

/// What a test directory holds. Passwords are stored as given: a hash
/// such as `{PLAIN}pw`, or one made with
/// `facteur_directory::password::hash_password`.
#[derive(Debug, Clone)]
pub struct Accounts {
    domains: Vec<String>,
    /// (address, password hash, quota in bytes; 0 = none)
    users: Vec<(String, String, u64)>,
    /// (source, target), in the order added
    aliases: Vec<(String, String)>,
}

impl Default for Accounts {
    fn default() -> Self {
        Accounts::new()
    }
}

impl Accounts {
    /// The domain `example.test`, no users, no aliases.
    pub fn new() -> Accounts {
        Accounts {
            domains: vec![DOMAIN.into()],
            users: Vec::new(),
            aliases: Vec::new(),
        }
    }

    /// One more local domain.
    pub fn domain(mut self, name: &str) -> Accounts {
        self.domains.push(name.into());
        self
    }

    /// A user with this password hash and no quota.
    pub fn user(self, address: &str, password_hash: &str) -> Accounts {
        self.user_with_quota(address, password_hash, 0)
    }

    /// Several users, each with this password hash and no quota.
    pub fn users(self, addresses: &[&str], password_hash: &str) -> Accounts {
        addresses
            .iter()
            .fold(self, |a, u| a.user_with_quota(u, password_hash, 0))
    }

    /// A user with a quota of `quota_bytes`.
    pub fn user_with_quota(
        mut self,
        address: &str,
        password_hash: &str,
        quota_bytes: u64,
    ) -> Accounts {
        self.users
            .push((address.into(), password_hash.into(), quota_bytes));
        self
    }

    /// An alias from `source` to each of `targets`.
    pub fn alias(mut self, source: &str, targets: &[&str]) -> Accounts {
        self.aliases
            .extend(targets.iter().map(|t| (source.to_string(), t.to_string())));
        self
    }

    /// Adds everything to `d`.
    pub fn add_to(&self, d: &dyn Directory) {
        for name in &self.domains {
            d.add_domain(name).expect("adding a test domain");
        }
        for (address, hash, quota) in &self.users {
            d.add_user(address, hash, *quota, 0)
                .unwrap_or_else(|e| panic!("adding {address}: {e}"));
        }
        for (source, target) in &self.aliases {
            d.add_alias(source, target)
                .unwrap_or_else(|e| panic!("adding {source} -> {target}: {e}"));
        }
    }

    /// A directory in memory with these accounts.
    pub fn in_memory(&self) -> SqliteDirectory {
        let d = SqliteDirectory::open_in_memory().expect("a directory in memory");
        self.add_to(&d);
        d
    }

    /// The directory database at `path` (created) with these accounts.
    pub fn on_disk(&self, path: &Path) -> SqliteDirectory {
        let d = SqliteDirectory::open(path).expect("a directory on disk");
        self.add_to(&d);
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_added_is_there() {
        let d = Accounts::new()
            .domain("other.test")
            .users(&["a@example.test", "b@other.test"], "{PLAIN}x")
            .user_with_quota("small@example.test", "{PLAIN}y", 1000)
            .alias("team@example.test", &["a@example.test", "b@other.test"])
            .in_memory();
        assert!(d.is_local_domain("other.test").unwrap());
        assert_eq!(
            d.get_user("small@example.test")
                .unwrap()
                .unwrap()
                .quota_bytes,
            1000
        );
        assert_eq!(
            d.alias_targets("team@example.test").unwrap(),
            ["a@example.test", "b@other.test"]
        );
    }
}
