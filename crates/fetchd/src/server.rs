//! The daemon: every `[fetchd] check_interval`, the accounts due are run,
//! at most `[fetchd] max_parallel` at once, each on a blocking thread
//! ([`crate::run_now`] records the outcome and the next run: the account's
//! interval, doubled per failure in a row up to 6 hours; three refused
//! logins in a row stop it until `facteurctl fetch run` or a new password).

use crate::store::{self, Store};
use crate::{RunCtx, run_now};
use facteur_config::Config;
use std::sync::Arc;
use tokio::sync::Semaphore;
use tracing::{error, info};

pub async fn run(cfg: Config) -> anyhow::Result<()> {
    let ctx = Arc::new(RunCtx::from_config(&cfg)?);
    let path = store::path(&cfg.paths.state_dir);
    let st = Arc::new(Store::open(&path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?);
    let every = cfg
        .fetchd
        .check_interval
        .duration()
        .max(std::time::Duration::from_secs(1));
    let slots = Arc::new(Semaphore::new(cfg.fetchd.max_parallel.max(1) as usize));
    facteur_daemon::ignore_hangup("facteur-fetchd")?;
    facteur_daemon::systemd::ready();
    info!(accounts = %path.display(), "facteur-fetchd started");
    let shutdown = facteur_daemon::shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        let s = Arc::clone(&st);
        let now = facteur_util::date::now_unix();
        let due = match tokio::task::spawn_blocking(move || s.due(now)).await? {
            Ok(d) => d,
            Err(e) => {
                error!(error = %e, "cannot read the accounts");
                Vec::new()
            }
        };
        for id in due {
            let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
                break;
            };
            let (ctx, st) = (Arc::clone(&ctx), Arc::clone(&st));
            tokio::task::spawn_blocking(move || {
                if let Err(e) = run_now(&ctx, &st, id) {
                    error!(account = id, error = %e, "cannot record the run");
                }
                drop(permit);
            });
        }
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tokio::time::sleep(every) => {}
        }
    }
    info!("facteur-fetchd stopping");
    Ok(())
}
