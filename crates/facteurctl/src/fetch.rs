//! `facteurctl fetch`: the mail collector's accounts (facteur-fetchd's
//! database, `<state_dir>/fetchd.sqlite`, 0600). Run as root, it first
//! becomes the spool's owner (the daemons' user), so the database and the
//! queue files it makes are facteur-fetchd's own.

use crate::cli::FetchAction;
use anyhow::{Context as _, bail};
use facteur_config::Config;
use facteur_fetchd::store::{self, Account, Protocol, Store, Tls};

pub fn run(cfg: &Config, action: FetchAction) -> anyhow::Result<u8> {
    crate::privs::act_as_spool_owner(cfg)?;
    let path = store::path(&cfg.paths.state_dir);
    let st = Store::open(&path).with_context(|| format!("opening {}", path.display()))?;
    match action {
        FetchAction::Add {
            local_user,
            protocol,
            host,
            port,
            tls,
            insecure,
            user,
            keep: _,
            delete,
            new_only,
            interval,
            folders,
            multidrop,
            max,
        } => {
            let protocol = Protocol::parse(&protocol)
                .ok_or_else(|| anyhow::anyhow!("--protocol {protocol:?}: pop3 or imap"))?;
            let tls = Tls::parse(&tls)
                .ok_or_else(|| anyhow::anyhow!("--tls {tls:?}: implicit, starttls or none"))?;
            let interval = facteur_config::parse_duration(&interval)
                .ok_or_else(|| anyhow::anyhow!("--interval {interval:?}: e.g. 10m, 1h"))?;
            if interval < 60 {
                bail!("--interval: at least one minute");
            }
            if protocol == Protocol::Pop3 && !folders.is_empty() {
                bail!("--folder is for IMAP accounts");
            }
            let dir = crate::admin::open_directory(cfg)?;
            let local = facteur_mail::Address::parse(&local_user)
                .map_err(|e| anyhow::anyhow!("{local_user:?}: {e}"))?
                .key();
            if dir.get_user(&local)?.is_none() {
                bail!("{local} is not a user here");
            }
            let port = port.unwrap_or(match (protocol, tls) {
                (Protocol::Pop3, Tls::Implicit) => 995,
                (Protocol::Pop3, _) => 110,
                (Protocol::Imap, Tls::Implicit) => 993,
                (Protocol::Imap, _) => 143,
            });
            let password = crate::admin::read_password(&format!("Password of {user} at {host}: "))?;
            let a = Account {
                id: 0,
                local_user: local,
                protocol,
                host,
                port,
                tls,
                insecure,
                login: user,
                password,
                keep: !delete,
                new_only,
                interval,
                max_per_run: max.max(1),
                folders,
                multidrop,
            };
            let id = st.add(&a)?;
            println!(
                "account {id}: {} into {} (first run within a minute of facteur-fetchd's check)",
                a.label(),
                a.local_user
            );
            if insecure {
                eprintln!("warning: the server's certificate will not be checked (--insecure)");
            }
        }
        FetchAction::List => {
            for a in st.all()? {
                println!(
                    "{}\t{}\t-> {}{}\ttls={}{}\t{}\tevery {}s\t{}{}",
                    a.id,
                    a.label(),
                    a.local_user,
                    if a.multidrop { " (multidrop)" } else { "" },
                    a.tls.as_str(),
                    if a.insecure { " (insecure)" } else { "" },
                    if a.keep { "keep" } else { "delete" },
                    a.interval,
                    if a.new_only { "new only" } else { "all" },
                    if a.folders.is_empty() {
                        String::new()
                    } else {
                        format!("\tfolders={}", a.folders.join(","))
                    },
                );
            }
        }
        FetchAction::Del { id } => {
            st.delete(id)?;
            println!("account {id} removed");
        }
        FetchAction::Run { id, all } => {
            let ids = match (id, all) {
                (Some(id), _) => vec![id],
                (None, true) => st.all()?.into_iter().map(|a| a.id).collect(),
                (None, false) => bail!("fetch run ID, or --all"),
            };
            let ctx = facteur_fetchd::RunCtx::from_config(cfg)?;
            let mut failed = false;
            for id in ids {
                st.reset(id)?;
                match facteur_fetchd::run_now(&ctx, &st, id)? {
                    None => println!("account {id}: a run is already going on"),
                    Some(Ok(r)) => println!("account {id}: {r}"),
                    Some(Err(e)) => {
                        failed = true;
                        println!("account {id}: failed: {e}");
                    }
                }
            }
            facteur_spool::wake_qmgr(&cfg.qmgr_socket());
            return Ok(if failed { 1 } else { 0 });
        }
        FetchAction::Status => {
            for a in st.all()? {
                let s = st.status(a.id)?;
                let when = |t: i64| {
                    if t == 0 {
                        "-".to_string()
                    } else {
                        facteur_util::date::short(t)
                    }
                };
                let stopped = if s.login_failures >= store::STOP_AFTER_LOGIN_FAILURES {
                    "\tSTOPPED: login refused; fix the password (fetch del/add) or `fetch run`"
                } else {
                    ""
                };
                println!(
                    "{}\t{}\tlast={}\t{}\terror={}\tfailures={}\tnext={}{stopped}",
                    a.id,
                    a.label(),
                    when(s.last_run),
                    if s.last_result.is_empty() {
                        "never run"
                    } else {
                        &s.last_result
                    },
                    if s.last_error.is_empty() {
                        "-"
                    } else {
                        &s.last_error
                    },
                    s.failures,
                    when(s.next_run),
                );
            }
        }
    }
    Ok(0)
}
