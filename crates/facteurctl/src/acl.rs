//! `facteurctl acl`: the grants that share users' mailboxes (IMAP ACL,
//! RFC 4314), as SETACL and GETACL change and show them, for an
//! administrator setting up a team mailbox without an IMAP client.
//! The grants live in the store (facteur-store's acl.rs); imapd reads
//! them at each command, so a change applies at once.

use anyhow::{Context, bail};
use facteur_config::Config;
use facteur_store::acl::Change;
use facteur_store::{Quota, Rights, Store};

use crate::admin::{normalize, open_directory, open_store};
use crate::cli::AclAction;

/// RIGHTS with its shorthands (`all`, `read`, `write`) and its `+`/`-`,
/// as SETACL takes them (RFC 4314 §3.1).
fn parse_rights(s: &str) -> anyhow::Result<Change> {
    let (sign, letters) = match s.as_bytes().first() {
        Some(b'+' | b'-') => s.split_at(1),
        _ => ("", s),
    };
    let letters = match letters {
        "all" => "lrswipkxtea",
        "read" => "lrs",
        "write" => "lrswipkxte",
        l => l,
    };
    Change::parse(&format!("{sign}{letters}"))
        .map_err(|c| anyhow::anyhow!("{c:?} is not a right (they are \"lrswipkxtea\")"))
}

/// The owner's address and the mailbox, checked: the user and the mailbox
/// exist.
fn mailbox(
    store: &Store,
    cfg: &Config,
    user: &str,
    mailbox: &str,
) -> anyhow::Result<(String, String)> {
    let owner = normalize(user)?;
    if open_directory(cfg)?.get_user(&owner)?.is_none() {
        bail!("no such user: {owner}");
    }
    let name = facteur_store::normalize_name(mailbox)
        .with_context(|| format!("{mailbox:?} is not a mailbox name"))?;
    if !store.open_user(&owner, Quota::default())?.exists(&name)? {
        bail!("{owner} has no mailbox {name:?}");
    }
    Ok((owner, name))
}

fn identifier(cfg: &Config, owner: &str, id: &str, must_exist: bool) -> anyhow::Result<String> {
    let id =
        facteur_store::acl::identifier(owner, id).map_err(|e| anyhow::anyhow!("{id:?}: {e}"))?;
    if id == owner {
        bail!("{owner} owns the mailbox: an owner's rights are all the rights, always");
    }
    if must_exist
        && facteur_store::acl::is_user(&id)
        && open_directory(cfg)?.get_user(&id)?.is_none()
    {
        bail!("no such user: {id}");
    }
    Ok(id)
}

pub fn run(cfg: &Config, action: AclAction) -> anyhow::Result<()> {
    let store = open_store(cfg);
    match action {
        AclAction::List { user, mailbox: one } => {
            let owner = normalize(&user)?;
            let names: Vec<String> = match one {
                Some(m) => vec![mailbox(&store, cfg, &owner, &m)?.1],
                None => store
                    .open_user(&owner, Quota::default())?
                    .list_mailboxes()?
                    .into_iter()
                    .map(|m| m.name)
                    .collect(),
            };
            for name in names {
                for (id, rights) in store.acl(&owner, &name)? {
                    println!("{name}\t{id}\t{rights}");
                }
            }
        }
        AclAction::Set {
            user,
            mailbox: m,
            identifier: id,
            rights,
        } => {
            let (owner, name) = mailbox(&store, cfg, &user, &m)?;
            let id = identifier(cfg, &owner, &id, true)?;
            let new = store.change_acl(&owner, &name, &id, parse_rights(&rights)?)?;
            if new.is_empty() {
                println!("{id} has no rights on {owner}'s {name} any more");
            } else {
                println!("{id} has \"{new}\" on {owner}'s {name}");
            }
        }
        AclAction::Delete {
            user,
            mailbox: m,
            identifier: id,
        } => {
            let (owner, name) = mailbox(&store, cfg, &user, &m)?;
            let id = identifier(cfg, &owner, &id, false)?;
            store.set_acl(&owner, &name, &id, Rights::NONE)?;
            println!("{id} has no rights on {owner}'s {name} any more");
        }
        AclAction::Shared { user } => {
            let user = normalize(&user)?;
            for g in store.shared_with(&user)? {
                let local = g.owner.split('@').next().unwrap_or_default();
                println!("Shared/{local}/{}\t{}", g.mailbox, g.rights);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rights_arguments() {
        let p = |s: &str| {
            parse_rights(s).map(|c| match c {
                Change::Add(r) => format!("+{r}"),
                Change::Remove(r) => format!("-{r}"),
                Change::Replace(r) => format!("={r}"),
            })
        };
        assert_eq!(p("lr").unwrap(), "=lr");
        assert_eq!(p("+w").unwrap(), "+w");
        assert_eq!(p("-te").unwrap(), "-ted");
        assert_eq!(p("read").unwrap(), "=lrs");
        assert_eq!(p("write").unwrap(), "=lrswipkxtecd");
        assert_eq!(p("all").unwrap(), "=lrswipkxteacd");
        assert!(p("lrQ").is_err());
    }
}
