//! Whose files facteurctl makes when run as root.
//!
//! The daemons that write mailboxes run as the mail store's owner (`vmail`
//! in the Debian package), and the store makes its files 0600 and its
//! directories 0700. A mailbox, index or quota file created by facteurctl
//! as root would lock those daemons out of it. So when facteurctl runs as
//! root and the mail root belongs to someone else, the commands that touch
//! the directory and the store (`domain`, `user`, `alias`) first become that
//! owner, keeping as a supplementary group the group of the directory
//! database (`facteur`), which lets them write the database. Nothing changes
//! when facteurctl is not root, or when the mail root is root's (a trial
//! setup made by root with `init --dev`).
//!
//! Security: privileges are dropped for good (setgroups, setgid, then setuid)
//! before the command does anything, and before any thread exists.

use anyhow::Context as _;
use facteur_config::Config;
use nix::unistd::{Gid, Uid};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The identity to take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

/// Decides whether to switch: running as `euid`, with a mail root owned by
/// `store_owner` (uid, gid) if it exists, and a directory database whose
/// group is `directory_group` if known.
pub fn target(
    euid: u32,
    store_owner: Option<(u32, u32)>,
    directory_group: Option<u32>,
) -> Option<Identity> {
    let (uid, gid) = store_owner?;
    if euid != 0 || uid == 0 {
        return None;
    }
    let mut groups = vec![gid];
    if let Some(g) = directory_group.filter(|&g| g != gid && g != 0) {
        groups.push(g);
    }
    Some(Identity { uid, gid, groups })
}

fn owner(path: &Path) -> Option<(u32, u32)> {
    std::fs::metadata(path).ok().map(|m| (m.uid(), m.gid()))
}

/// Becomes the mail store's owner if running as root (see the module).
pub fn act_as_store_owner(cfg: &Config) -> anyhow::Result<()> {
    let db = &cfg.directory.path;
    let directory_group = owner(db)
        .or_else(|| db.parent().and_then(owner))
        .map(|(_, g)| g);
    let id = target(
        Uid::effective().as_raw(),
        owner(&cfg.store.mail_root),
        directory_group,
    );
    become_(id, &cfg.store.mail_root)
}

/// Becomes the spool's owner (`facteur`, the daemons' user) if running as
/// root: `facteurctl fetch` writes fetchd's 0600 database and queue files
/// as facteur-fetchd does.
pub fn act_as_spool_owner(cfg: &Config) -> anyhow::Result<()> {
    let spool = &cfg.paths.spool_dir;
    let id = target(Uid::effective().as_raw(), owner(spool), None);
    become_(id, spool)
}

fn become_(id: Option<Identity>, of: &Path) -> anyhow::Result<()> {
    let Some(id) = id else {
        return Ok(());
    };
    let groups: Vec<Gid> = id.groups.iter().map(|&g| Gid::from_raw(g)).collect();
    nix::unistd::setgroups(&groups).context("setgroups")?;
    nix::unistd::setgid(Gid::from_raw(id.gid)).context("setgid")?;
    nix::unistd::setuid(Uid::from_raw(id.uid)).with_context(|| {
        format!(
            "cannot become uid {}, the owner of {}",
            id.uid,
            of.display()
        )
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_becomes_the_store_owner_with_the_directory_group() {
        assert_eq!(
            target(0, Some((998, 997)), Some(996)),
            Some(Identity {
                uid: 998,
                gid: 997,
                groups: vec![997, 996]
            })
        );
        // Same group, or a root-owned database: no extra group.
        assert_eq!(
            target(0, Some((998, 997)), Some(997)).unwrap().groups,
            [997]
        );
        assert_eq!(target(0, Some((998, 997)), Some(0)).unwrap().groups, [997]);
        assert_eq!(target(0, Some((998, 997)), None).unwrap().groups, [997]);
    }

    #[test]
    fn no_switch_unless_root_and_a_foreign_store() {
        assert_eq!(target(1000, Some((998, 997)), Some(996)), None);
        assert_eq!(target(0, Some((0, 0)), Some(996)), None);
        assert_eq!(target(0, None, Some(996)), None);
    }
}
