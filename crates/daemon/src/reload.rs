//! Configuration reload on SIGHUP (`systemctl reload facteur-<daemon>`).
//!
//! Offers [`Live`] (a value sessions read at their start and a reload
//! replaces; a session keeps the value it started with) and [`on_hangup`]:
//! on every SIGHUP the daemon reads its configuration file again; a file
//! that does not load or does not pass the checks is logged with its
//! reason and the running configuration stays; otherwise the TLS
//! certificate is loaded again (from the new `[tls]`; a certificate that
//! does not load keeps the old one), the daemon applies what can change
//! while it runs (its `apply`), and every setting that changed but needs a
//! restart (listeners, paths, the directory, ...: its `fixed` list) is
//! logged by name.

use crate::tls::TlsState;
use facteur_config::Config;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use tracing::{info, warn};

/// A value that a reload may replace.
#[derive(Debug)]
pub struct Live<T> {
    cur: RwLock<Arc<T>>,
}

impl<T> Live<T> {
    pub fn new(v: T) -> Live<T> {
        Live {
            cur: RwLock::new(Arc::new(v)),
        }
    }

    /// The current value.
    pub fn get(&self) -> Arc<T> {
        match self.cur.read() {
            Ok(g) => Arc::clone(&g),
            Err(p) => Arc::clone(&p.into_inner()),
        }
    }

    /// Replaces the value; sessions that hold the old one keep it.
    pub fn set(&self, v: T) {
        match self.cur.write() {
            Ok(mut g) => *g = Arc::new(v),
            Err(p) => *p.into_inner() = Arc::new(v),
        }
    }
}

/// A setting a running daemon cannot change: its name in the file and
/// how to read it.
pub type Fixed = (&'static str, fn(&Config) -> String);

/// Settings every daemon takes only at start.
pub const COMMON_FIXED: &[Fixed] = &[
    ("hostname", |c| c.hostname()),
    ("paths", |c| format!("{:?}", c.paths)),
    ("directory", |c| format!("{:?}", c.directory)),
    ("store.mail_root", |c| format!("{:?}", c.store.mail_root)),
    ("log", |c| format!("{:?}", c.log)),
];

/// The names of the settings of `fixed` whose values differ.
pub fn changed(old: &Config, new: &Config, fixed: &[Fixed]) -> Vec<&'static str> {
    fixed
        .iter()
        .filter(|(_, read)| read(old) != read(new))
        .map(|(name, _)| *name)
        .collect()
}

/// Reloads the configuration from `path` on every SIGHUP (see the module
/// header). `apply` gets the new configuration once it loaded; `fixed` are
/// the daemon's own restart-only settings (besides [`COMMON_FIXED`]). Call
/// from inside the runtime.
pub fn on_hangup<F>(
    daemon: &'static str,
    initial: Config,
    tls: Option<TlsState>,
    fixed: &'static [Fixed],
    apply: F,
) -> std::io::Result<()>
where
    F: Fn(&Config) + Send + Sync + 'static,
{
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup())?;
    let path: PathBuf = initial.source.clone();
    tokio::spawn(async move {
        let mut running = initial;
        while hup.recv().await.is_some() {
            let new = match Config::load(&path) {
                Ok(c) => c,
                Err(e) => {
                    // One line: a TOML error spans several.
                    let e = e.to_string().replace('\n', " ");
                    warn!(error = %e, "{daemon}: configuration not reloaded; the running one stays");
                    continue;
                }
            };
            if let Some(tls) = &tls {
                match crate::tls::load(&new.tls.cert, &new.tls.key) {
                    Ok(t) => tls.set(Some(t)),
                    Err(e) => {
                        warn!(error = %format!("{e:#}"), "TLS reload failed; keeping the previous certificate")
                    }
                }
            }
            apply(&new);
            let mut restart = changed(&running, &new, COMMON_FIXED);
            restart.extend(changed(&running, &new, fixed));
            for key in &restart {
                warn!(
                    key,
                    "{daemon}: this setting changed and takes effect at the next restart"
                );
            }
            info!(file = %path.display(), "{daemon}: configuration reloaded");
            running = new;
        }
    });
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn live_values_and_changed_settings() {
        let l = Live::new(1);
        let held = l.get();
        l.set(2);
        assert_eq!((*held, *l.get()), (1, 2));
        let a = Config::parse("", "a.toml").unwrap();
        let b = Config::parse(
            "[smtpd]\nmx = [\"127.0.0.1:25\"]\nmax_recipients = 7\n",
            "b.toml",
        )
        .unwrap();
        const FIXED: &[Fixed] = &[("smtpd.mx", |c| format!("{:?}", c.smtpd.mx))];
        assert_eq!(changed(&a, &b, FIXED), vec!["smtpd.mx"]);
        assert!(changed(&a, &b, COMMON_FIXED).is_empty());
    }
}
