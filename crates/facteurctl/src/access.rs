//! `facteurctl access`: the allow and deny lists smtpd's screening reads
//! from `<state_dir>/screen/access` (beside `[screen] allow/deny` of the
//! configuration), checked the moment they change.

use crate::cli::AccessAction;
use anyhow::bail;
use facteur_config::Config;
use facteur_config::screen::AccessEntry;
use facteur_screen::access::{self, Listed};

pub fn run(cfg: &Config, action: AccessAction) -> anyhow::Result<u8> {
    let path = access::file_path(&cfg.paths.state_dir);
    // The file's entries; a line a hand made bad is kept as it is.
    let mut entries: Vec<(Listed, String)> = access::read_file(&path)?
        .into_iter()
        .map(|(l, v, _)| (l, v))
        .collect();
    let (listed, entry) = match action {
        AccessAction::List => {
            for (name, list) in [("allow", &cfg.screen.allow), ("deny", &cfg.screen.deny)] {
                for e in list {
                    println!("{name}\t{e}\t(configuration)");
                }
            }
            for (l, v, parsed) in access::read_file(&path)? {
                match parsed {
                    Ok(_) => println!("{}\t{v}", l.as_str()),
                    Err(r) => println!("?\t{v}\t(ignored: {r})"),
                }
            }
            return Ok(0);
        }
        AccessAction::Del { entry } => {
            let key = normalized(&entry)?;
            let before = entries.len();
            entries.retain(|(_, v)| normalized(v).ok().as_deref() != Some(key.as_str()));
            if entries.len() == before {
                bail!("{entry:?} is not in the lists `facteurctl access` keeps");
            }
            access::write_file(&path, &entries)?;
            println!("removed {entry}");
            return Ok(0);
        }
        AccessAction::Allow { entry } => (Listed::Allow, entry),
        AccessAction::Deny { entry } => (Listed::Deny, entry),
    };
    let key = normalized(&entry)?;
    // One list per entry: allowing what was denied moves it.
    entries.retain(|(_, v)| normalized(v).ok().as_deref() != Some(key.as_str()));
    entries.push((listed, key.clone()));
    access::write_file(&path, &entries)?;
    println!("{} {key}", listed.as_str());
    Ok(0)
}

/// The entry as the file keeps it (lowercase; a network as given).
fn normalized(entry: &str) -> anyhow::Result<String> {
    match AccessEntry::parse(entry) {
        Ok(AccessEntry::Network(_)) => Ok(entry.trim().to_string()),
        Ok(_) => Ok(entry.trim().to_ascii_lowercase()),
        Err(r) => bail!("{r}"),
    }
}
