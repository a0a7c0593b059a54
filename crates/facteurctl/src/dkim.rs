//! `facteurctl dkim`: make, list, rotate and publish DKIM keys (the store
//! and the life of a selector: facteur-dkim; the signing: facteur-qmgr).
//!
//! Run as root, the files are given to the owner of the spool directory,
//! the user facteur-qmgr runs as (`facteur` in the Debian package), since
//! qmgr reads the private keys and nobody else may (0600).

use crate::cli::DkimAction;
use crate::dns::{Rec, zone_line};
use anyhow::{Context as _, bail};
use facteur_config::{Config, parse_duration};
use facteur_dkim::{Algorithm, Key, KeyStore, Keyring, State};
use facteur_util::date::{now_unix, short};
use std::os::unix::fs::MetadataExt;

/// Runs one `dkim` command.
pub fn run(cfg: &Config, action: DkimAction) -> anyhow::Result<u8> {
    let store = store(cfg);
    let now = now_unix();
    match action {
        DkimAction::Generate {
            domain,
            selector,
            algorithm,
            delay,
        } => {
            let domain = crate::dns::domain_name(&domain)?;
            let algs = match algorithm.as_deref() {
                None => Algorithm::ALL.to_vec(),
                Some(a) => vec![
                    Algorithm::parse(a)
                        .with_context(|| format!("--algorithm {a:?}: ed25519 or rsa"))?,
                ],
            };
            if selector.is_some() && algs.len() > 1 {
                bail!("--selector names one key: add --algorithm ed25519 or --algorithm rsa");
            }
            let delay = duration("--delay", &delay)?;
            let mut ring = store.load(&domain)?;
            for &a in &algs {
                if let Some(k) = ring
                    .keys
                    .iter()
                    .find(|k| k.algorithm == a && k.retire_at == 0)
                {
                    bail!(
                        "{domain} already has an {a} key (selector {}): use `facteurctl dkim rotate {domain}` to replace it",
                        k.selector
                    );
                }
            }
            let new = make_keys(&store, &domain, &ring, &algs, selector, now, now + delay)?;
            ring.keys.extend(new.iter().cloned());
            store.save(&domain, &ring)?;
            for k in &new {
                println!(
                    "{domain}: {} key, selector {}, signs from {}",
                    k.algorithm,
                    k.selector,
                    when(k.sign_from, now)
                );
            }
            println!("Publish these records (facteurctl dkim dns {domain} prints them again):");
            print_records(&store, &domain, &new)?;
            Ok(0)
        }
        DkimAction::List { domain } => {
            let domains = match domain {
                Some(d) => vec![crate::dns::domain_name(&d)?],
                None => store.domains()?,
            };
            println!(
                "{:<24} {:<14} {:<9} {:<10} {:<20} {:<20} RETIRES",
                "DOMAIN", "SELECTOR", "ALGORITHM", "STATE", "CREATED", "SIGNS FROM"
            );
            for d in domains {
                let ring = store.load(&d)?;
                for k in &ring.keys {
                    println!(
                        "{:<24} {:<14} {:<9} {:<10} {:<20} {:<20} {}",
                        d,
                        k.selector,
                        k.algorithm.to_string(),
                        ring.state(k, now).to_string(),
                        short(k.created),
                        short(k.sign_from),
                        if k.retire_at == 0 {
                            "-".to_string()
                        } else {
                            short(k.retire_at)
                        }
                    );
                }
            }
            Ok(0)
        }
        DkimAction::Rotate {
            domain,
            delay,
            retire_after,
        } => {
            let domain = crate::dns::domain_name(&domain)?;
            let o = &cfg.trust.outgoing;
            let delay = match delay {
                Some(d) => duration("--delay", &d)?,
                None => o.rotation_delay.0 as i64,
            };
            let keep = match retire_after {
                Some(d) => duration("--retire-after", &d)?,
                None => o.retire_after.0 as i64,
            };
            let mut ring = store.load(&domain)?;
            let mut algs: Vec<Algorithm> =
                ring.published(now).iter().map(|k| k.algorithm).collect();
            algs.sort();
            algs.dedup();
            if algs.is_empty() {
                bail!(
                    "{domain} has no keys to rotate: `facteurctl dkim generate {domain}` makes them"
                );
            }
            let new = make_keys(&store, &domain, &ring, &algs, None, now, now + delay)?;
            let replaced: Vec<String> = ring
                .keys
                .iter()
                .filter(|k| algs.contains(&k.algorithm) && k.retire_at == 0)
                .map(|k| k.selector.clone())
                .collect();
            ring.rotate_in(new.clone(), keep);
            store.save(&domain, &ring)?;
            for k in &new {
                println!(
                    "{domain}: new {} selector {} signs from {}",
                    k.algorithm,
                    k.selector,
                    when(k.sign_from, now)
                );
            }
            if let Some(k) = ring.keys.iter().find(|k| replaced.contains(&k.selector)) {
                println!(
                    "{domain}: {} stay published until {} UTC, then retire",
                    replaced.join(", "),
                    short(k.retire_at)
                );
            }
            println!("Publish these records now, before the new selectors sign:");
            print_records(&store, &domain, &new)?;
            Ok(0)
        }
        DkimAction::Dns { domain } => {
            let domain = crate::dns::domain_name(&domain)?;
            let recs = published_records(cfg, &domain)?;
            if recs.is_empty() {
                bail!("{domain} has no DKIM keys: `facteurctl dkim generate {domain}` makes them");
            }
            for r in &recs {
                print!("{}", zone_line(r, None));
            }
            Ok(0)
        }
    }
}

/// The store, its files given to the spool's owner when run as root.
fn store(cfg: &Config) -> KeyStore {
    let owner = std::fs::metadata(&cfg.paths.spool_dir)
        .ok()
        .map(|m| (m.uid(), m.gid()))
        .filter(|&(uid, _)| nix::unistd::Uid::effective().is_root() && uid != 0);
    KeyStore::new(cfg.dkim_dir()).with_owner(owner)
}

fn duration(flag: &str, s: &str) -> anyhow::Result<i64> {
    parse_duration(s)
        .and_then(|d| i64::try_from(d).ok())
        .with_context(|| format!("{flag} {s:?}: a duration like 0, 30m, 2h or 2d"))
}

fn when(t: i64, now: i64) -> String {
    if t <= now {
        "now".into()
    } else {
        format!("{} UTC", short(t))
    }
}

/// Makes one key per algorithm, private keys written first.
fn make_keys(
    store: &KeyStore,
    domain: &str,
    ring: &Keyring,
    algs: &[Algorithm],
    selector: Option<String>,
    now: i64,
    sign_from: i64,
) -> anyhow::Result<Vec<Key>> {
    let mut scratch = ring.clone();
    let mut out = Vec::new();
    for &alg in algs {
        let sel = match &selector {
            Some(s) => {
                facteur_dkim::check_selector(s)?;
                if ring.keys.iter().any(|k| &k.selector == s) {
                    bail!("{domain} already has a selector {s}");
                }
                s.clone()
            }
            None => scratch.new_selector(alg, now),
        };
        let pair = facteur_dkim::generate(alg)?;
        store.write_private(domain, &sel, &pair.pkcs8)?;
        let k = Key {
            selector: sel,
            algorithm: alg,
            created: now,
            sign_from,
            retire_at: 0,
        };
        scratch.keys.push(k.clone());
        out.push(k);
    }
    Ok(out)
}

/// The TXT record of key `k` of `domain`, with `note` as its comment.
fn record(store: &KeyStore, domain: &str, k: &Key, note: String) -> anyhow::Result<Rec> {
    let der = store.read_private(domain, &k.selector)?;
    let public = facteur_dkim::public_key(k.algorithm, &der)?;
    Ok(Rec::txt(
        &format!("{}._domainkey.{domain}", k.selector),
        &facteur_dkim::txt_record(k.algorithm, &public),
        note,
    ))
}

fn print_records(store: &KeyStore, domain: &str, keys: &[Key]) -> anyhow::Result<()> {
    for k in keys {
        print!(
            "{}",
            zone_line(&record(store, domain, k, String::new())?, None)
        );
    }
    Ok(())
}

/// The TXT records of every DKIM key of `domain` that must be in DNS now
/// (pending, signing, published), each with its state as its note.
pub fn published_records(cfg: &Config, domain: &str) -> anyhow::Result<Vec<Rec>> {
    let store = KeyStore::new(cfg.dkim_dir());
    let ring = store.load(domain)?;
    let now = now_unix();
    let mut out = Vec::new();
    for k in ring.published(now) {
        let note = match ring.state(k, now) {
            State::Pending => format!("pending: signs from {} UTC", short(k.sign_from)),
            State::Published if k.retire_at != 0 => {
                format!("replaced: retires {} UTC", short(k.retire_at))
            }
            s => s.to_string(),
        };
        out.push(record(&store, domain, k, note)?);
    }
    Ok(out)
}
