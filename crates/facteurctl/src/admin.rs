//! Domains, users and aliases: the directory, and the user's mailbox in the
//! store (created with the user; removed only with `--purge`).

use crate::cli::{AliasAction, DomainAction, ExportAction, ImportAction, UserAction};
use anyhow::{Context as _, bail};
use facteur_config::Config;
use facteur_directory::{Directory, password};
use facteur_store::{Quota, Store, StoreConfig};
use std::io::{BufRead, IsTerminal};

/// Opens the configured directory.
pub fn open_directory(cfg: &Config) -> anyhow::Result<std::sync::Arc<dyn Directory>> {
    if let Some(dir) = cfg.directory.path.parent() {
        facteur_util::create_dir_all_mode(dir, 0o750)
            .with_context(|| format!("creating {}", dir.display()))?;
    }
    facteur_directory::open(cfg).context("opening the directory")
}

/// The configured store.
pub fn open_store(cfg: &Config) -> Store {
    Store::new(StoreConfig {
        root: cfg.store.mail_root.clone(),
        hostname: cfg.hostname(),
    })
}

pub fn domain(cfg: &Config, action: DomainAction) -> anyhow::Result<()> {
    let dir = open_directory(cfg)?;
    match action {
        DomainAction::Add { name } => {
            dir.add_domain(&name)?;
            println!("domain {name} added");
        }
        DomainAction::Del { name } => {
            dir.delete_domain(&name)?;
            println!("domain {name} deleted");
        }
        DomainAction::List => {
            for d in dir.list_domains()? {
                println!("{d}");
            }
        }
    }
    Ok(())
}

/// Reads a new password: twice at a prompt, or one line of standard input.
pub fn read_password(prompt: &str) -> anyhow::Result<String> {
    let pw = if std::io::stdin().is_terminal() {
        let a = rpassword::prompt_password(prompt)?;
        let b = rpassword::prompt_password("Again: ")?;
        if a != b {
            bail!("the two passwords differ");
        }
        a
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        line.trim_end_matches(['\r', '\n']).to_string()
    };
    if pw.is_empty() {
        bail!("empty password");
    }
    Ok(pw)
}

fn size_arg(s: &str) -> anyhow::Result<u64> {
    facteur_config::parse_size(s)
        .with_context(|| format!("{s:?} is not a size (bytes, or a number with K, M or G)"))
}

pub fn user(cfg: &Config, action: UserAction) -> anyhow::Result<()> {
    let dir = open_directory(cfg)?;
    let store = open_store(cfg);
    match action {
        UserAction::Add {
            address,
            quota,
            quota_messages,
            hash,
        } => {
            let address = normalize(&address)?;
            let bytes = quota
                .as_deref()
                .map(size_arg)
                .transpose()?
                .unwrap_or(cfg.store.default_quota_bytes.0);
            let messages = quota_messages.unwrap_or(cfg.store.default_quota_messages);
            match hash {
                Some(h) => add_user_hashed(dir.as_ref(), &store, &address, &h, bytes, messages)?,
                None => {
                    let pw = read_password(&format!("Password for {address}: "))?;
                    add_user(dir.as_ref(), &store, &address, &pw, bytes, messages)?;
                }
            }
            println!("user {address} added");
        }
        UserAction::Import { file, domain } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let (mut added, mut kept) = (0, 0);
            for (n, line) in text.lines().enumerate() {
                let Some(entry) = passwd_line(line, domain.as_deref())
                    .with_context(|| format!("{} line {}", file.display(), n + 1))?
                else {
                    continue;
                };
                let address = normalize(&entry.user)
                    .with_context(|| format!("{} line {}", file.display(), n + 1))?;
                if dir.get_user(&address)?.is_some() {
                    println!("{address}: exists, left alone");
                    kept += 1;
                    continue;
                }
                let bytes = entry.quota.unwrap_or(cfg.store.default_quota_bytes.0);
                let messages = cfg.store.default_quota_messages;
                add_user_hashed(dir.as_ref(), &store, &address, &entry.hash, bytes, messages)?;
                added += 1;
            }
            println!("{added} users added, {kept} left alone");
        }
        UserAction::Del { address, purge } => {
            let address = normalize(&address)?;
            dir.delete_user(&address)?;
            if purge {
                store.purge_user(&address)?;
                println!("user {address} deleted, mail removed");
            } else {
                println!(
                    "user {address} deleted; mail kept in {}",
                    store.user_dir(&address)?.display()
                );
            }
        }
        UserAction::Passwd { address } => {
            let address = normalize(&address)?;
            if dir.get_user(&address)?.is_none() {
                bail!("no such user: {address}");
            }
            let pw = read_password(&format!("New password for {address}: "))?;
            set_password(dir.as_ref(), &address, &pw)?;
            println!("password of {address} changed");
        }
        UserAction::List { domain } => {
            for u in dir.list_users(domain.as_deref())? {
                println!(
                    "{}\tquota={}\tmessages={}",
                    u.address,
                    show_limit(u.quota_bytes),
                    show_limit(u.quota_messages)
                );
            }
        }
        UserAction::Quota {
            address,
            bytes,
            messages,
        } => {
            let address = normalize(&address)?;
            let Some(u) = dir.get_user(&address)? else {
                bail!("no such user: {address}")
            };
            if bytes.is_some() || messages.is_some() {
                let b = bytes
                    .as_deref()
                    .map(size_arg)
                    .transpose()?
                    .unwrap_or(u.quota_bytes);
                let m = messages.unwrap_or(u.quota_messages);
                dir.set_quota(&address, b, m)?;
                println!(
                    "quota of {address}: {} bytes, {} messages",
                    show_limit(b),
                    show_limit(m)
                );
            } else {
                let us = store.open_user(
                    &address,
                    Quota {
                        bytes: u.quota_bytes,
                        messages: u.quota_messages,
                    },
                )?;
                let (ub, um) = us.quota_usage()?;
                println!(
                    "{address}: {ub} of {} bytes, {um} of {} messages",
                    show_limit(u.quota_bytes),
                    show_limit(u.quota_messages)
                );
            }
        }
    }
    Ok(())
}

/// Creates a user in the directory (password hash and SCRAM keys) and its
/// mailbox in the store.
pub fn add_user(
    dir: &dyn Directory,
    store: &Store,
    address: &str,
    pw: &str,
    bytes: u64,
    messages: u64,
) -> anyhow::Result<()> {
    dir.add_user_with(address, &password::credentials(pw)?, bytes, messages)?;
    scram_note(address, pw);
    store
        .create_user(address)
        .with_context(|| format!("creating the mailbox of {address}"))?;
    Ok(())
}

/// Creates a user with a password hash made elsewhere (no SCRAM keys: they
/// need the password). A hash no scheme of ours reads is refused, so a
/// typing error cannot lock the user out.
pub fn add_user_hashed(
    dir: &dyn Directory,
    store: &Store,
    address: &str,
    hash: &str,
    bytes: u64,
    messages: u64,
) -> anyhow::Result<()> {
    let Some(scheme) = password::scheme_of(hash) else {
        bail!(
            "{address}: the password hash is of no scheme facteur reads (ARGON2ID, ARGON2I, \
             SHA512-CRYPT, SHA256-CRYPT, BLF-CRYPT, PLAIN)"
        );
    };
    if scheme == "PLAIN" {
        eprintln!("note: {address} has a clear-text password; `facteurctl user passwd` hashes it");
    }
    dir.add_user_with(
        address,
        &facteur_directory::Credentials::hash_only(hash),
        bytes,
        messages,
    )?;
    store
        .create_user(address)
        .with_context(|| format!("creating the mailbox of {address}"))?;
    Ok(())
}

/// One user of a Dovecot passwd-file.
#[derive(Debug, PartialEq, Eq)]
pub struct PasswdEntry {
    pub user: String,
    pub hash: String,
    /// `userdb_quota_rule=*:storage=SIZE`, in bytes.
    pub quota: Option<u64>,
}

/// Reads one line of a Dovecot passwd-file (`user:password:uid:gid:gecos:
/// home:shell:extra fields`): `None` for a blank line or a comment. A
/// name without a domain takes `domain`.
pub fn passwd_line(line: &str, domain: Option<&str>) -> anyhow::Result<Option<PasswdEntry>> {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.trim().is_empty() || line.trim_start().starts_with('#') {
        return Ok(None);
    }
    let fields: Vec<&str> = line.splitn(8, ':').collect();
    let (user, hash) = match fields.as_slice() {
        [u, h, ..] if !u.is_empty() && !h.is_empty() => (*u, *h),
        _ => bail!("expected user:password:..."),
    };
    let user = match (user.contains('@'), domain) {
        (true, _) => user.to_string(),
        (false, Some(d)) => format!("{user}@{d}"),
        (false, None) => bail!("{user:?} has no domain: give --domain"),
    };
    let mut quota = None;
    if let Some(extra) = fields.get(7) {
        for f in extra.split_whitespace() {
            if let Some(rule) = f
                .strip_prefix("userdb_quota_rule=")
                .or_else(|| f.strip_prefix("quota_rule="))
                && let Some(size) = rule.strip_prefix("*:storage=")
            {
                quota = Some(size_arg(size)?);
            }
        }
    }
    Ok(Some(PasswdEntry {
        user,
        hash: hash.to_string(),
        quota,
    }))
}

/// Sets a user's password: its hash and its SCRAM keys, in one write.
pub fn set_password(dir: &dyn Directory, address: &str, pw: &str) -> anyhow::Result<()> {
    password::set_password(dir, address, pw)?;
    scram_note(address, pw);
    Ok(())
}

/// Tells the administrator when a password gets no SCRAM keys.
fn scram_note(address: &str, pw: &str) {
    if let Some(why) = password::scram_refusal(pw) {
        eprintln!(
            "note: {why}; {address} can log in with PLAIN and LOGIN (over TLS), not SCRAM-SHA-256"
        );
    }
}

fn show_limit(v: u64) -> String {
    if v == 0 {
        "unlimited".into()
    } else {
        v.to_string()
    }
}

pub(crate) fn normalize(address: &str) -> anyhow::Result<String> {
    Ok(facteur_mail::Address::parse(address)
        .with_context(|| format!("{address:?} is not an address"))?
        .key())
}

pub fn alias(cfg: &Config, action: AliasAction) -> anyhow::Result<()> {
    let dir = open_directory(cfg)?;
    match action {
        AliasAction::Add { source, targets } => {
            for t in &targets {
                dir.add_alias(&source, t)?;
            }
            println!("alias {source} -> {}", targets.join(", "));
        }
        AliasAction::Del { source, target } => {
            dir.delete_alias(&source, target.as_deref())?;
            println!("alias {source} deleted");
        }
        AliasAction::List { domain } => {
            for a in dir.list_aliases(domain.as_deref())? {
                println!("{}\t{}", a.source, a.targets.join(", "));
            }
        }
    }
    Ok(())
}

/// Opens the store of an existing user, with its quota.
fn user_store(
    cfg: &Config,
    dir: &dyn Directory,
    address: &str,
) -> anyhow::Result<facteur_store::UserStore> {
    let address = normalize(address)?;
    let Some(u) = dir.get_user(&address)? else {
        bail!("no such user: {address} (add it first: facteurctl user add {address})")
    };
    Ok(open_store(cfg).open_user(
        &address,
        Quota {
            bytes: u.quota_bytes,
            messages: u.quota_messages,
        },
    )?)
}

pub fn import(cfg: &Config, action: ImportAction) -> anyhow::Result<()> {
    let dir = open_directory(cfg)?;
    match action {
        ImportAction::DovecotMaildir {
            src,
            user,
            domain,
            subdir,
        } => match (user, domain) {
            (Some(user), None) => {
                let us = user_store(cfg, dir.as_ref(), &user)?;
                crate::dovecot::import_user(&us, &src, &user)
            }
            (None, Some(domain)) => {
                let domain = domain.to_ascii_lowercase();
                let mut failed = 0;
                for u in dir.list_users(Some(&domain))? {
                    let local = u.address.rsplit_once('@').map_or(&*u.address, |(l, _)| l);
                    let maildir = match &subdir {
                        Some(s) => src.join(local).join(s),
                        None => src.join(local),
                    };
                    if !maildir.join("cur").is_dir() {
                        println!(
                            "{}: no Maildir at {}: skipped",
                            u.address,
                            maildir.display()
                        );
                        continue;
                    }
                    let us = user_store(cfg, dir.as_ref(), &u.address)?;
                    if let Err(e) = crate::dovecot::import_user(&us, &maildir, &u.address) {
                        eprintln!("{}: {e:#}", u.address);
                        failed += 1;
                    }
                }
                if failed > 0 {
                    bail!(
                        "{failed} users not imported whole (run again once fixed: what is there is kept)"
                    );
                }
                Ok(())
            }
            _ => bail!("give either USER or --domain DOMAIN"),
        },
    }
}

pub fn export(cfg: &Config, action: ExportAction) -> anyhow::Result<()> {
    let dir = open_directory(cfg)?;
    match action {
        ExportAction::DovecotMaildir { user, dst } => {
            let us = user_store(cfg, dir.as_ref(), &user)?;
            crate::dovecot::export_user(&us, &dst, &user)
        }
    }
}
