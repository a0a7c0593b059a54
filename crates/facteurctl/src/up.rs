//! `facteurctl up`: runs every daemon of the suite in the foreground, for
//! trials, development machines and tests. Production uses systemd
//! (`facteur.target`), not this.
//!
//! Each daemon is started from the directory facteurctl itself lives in
//! (falling back to PATH) with `--config` pointing at the same file. A
//! daemon that exits is restarted after a pause that doubles while it keeps
//! dying quickly (1 s up to 30 s). SIGINT or SIGTERM stops them all: SIGTERM
//! first, SIGKILL after 15 s.

use anyhow::Context as _;
use facteur_config::Config;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// The daemons of the suite, in start order.
pub const DAEMONS: &[&str] = &[
    "facteur-lmtpd",
    "facteur-qmgr",
    "facteur-smtpd",
    "facteur-pop3d",
    "facteur-imapd",
];

/// Finds a program beside the running executable, else relies on PATH.
pub fn program_path(name: &str) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join(name)))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from(name))
}

/// The config section of a mail access daemon that has no listener
/// configured (POP3 or IMAP not offered): `up` leaves that daemon out
/// rather than restart it forever.
fn unconfigured(cfg: &Config, name: &str) -> Option<&'static str> {
    match name {
        "facteur-pop3d" if cfg.pop3d.listen.is_empty() && cfg.pop3d.listen_tls.is_empty() => {
            Some("pop3d")
        }
        "facteur-imapd" if cfg.imapd.listen.is_empty() && cfg.imapd.listen_tls.is_empty() => {
            Some("imapd")
        }
        _ => None,
    }
}

struct Supervised {
    name: &'static str,
    child: Option<Child>,
    started: Instant,
    backoff: Duration,
    restart_at: Option<tokio::time::Instant>,
}

fn spawn(name: &str, config: &Path) -> anyhow::Result<Child> {
    Command::new(program_path(name))
        .arg("--config")
        .arg(config)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {name}"))
}

pub fn up(cfg: &Config) -> anyhow::Result<u8> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(supervise(cfg))
}

async fn supervise(cfg: &Config) -> anyhow::Result<u8> {
    use tokio::signal::unix::{SignalKind, signal};
    let config = cfg.source.clone();
    for dir in [
        &cfg.paths.run_dir,
        &cfg.paths.spool_dir,
        &cfg.paths.state_dir,
    ] {
        facteur_util::create_dir_all_mode(dir, 0o755)
            .with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut daemons = Vec::new();
    for &name in DAEMONS {
        if let Some(section) = unconfigured(cfg, name) {
            eprintln!("facteurctl up: not starting {name}: [{section}] has no listener");
            continue;
        }
        let child = spawn(name, &config)?;
        eprintln!(
            "facteurctl up: started {name} (pid {})",
            child.id().unwrap_or(0)
        );
        daemons.push(Supervised {
            name,
            child: Some(child),
            started: Instant::now(),
            backoff: Duration::from_secs(1),
            restart_at: None,
        });
    }
    loop {
        let next_restart = daemons.iter().filter_map(|d| d.restart_at).min();
        let exited = async {
            // Wait for the first child to exit.
            let waits = daemons.iter_mut().enumerate().filter_map(|(i, d)| {
                d.child
                    .as_mut()
                    .map(|c| Box::pin(async move { (i, c.wait().await) }))
            });
            let waits: Vec<_> = waits.collect();
            if waits.is_empty() {
                std::future::pending::<(usize, std::io::Result<std::process::ExitStatus>)>().await
            } else {
                futures_select_all(waits).await
            }
        };
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = async { match next_restart { Some(t) => tokio::time::sleep_until(t).await, None => std::future::pending().await } } => {
                let now = tokio::time::Instant::now();
                for d in daemons.iter_mut().filter(|d| d.restart_at.is_some_and(|t| t <= now)) {
                    d.restart_at = None;
                    match spawn(d.name, &config) {
                        Ok(c) => {
                            eprintln!("facteurctl up: restarted {} (pid {})", d.name, c.id().unwrap_or(0));
                            d.child = Some(c);
                            d.started = Instant::now();
                        }
                        Err(e) => {
                            eprintln!("facteurctl up: {e:#}");
                            d.restart_at = Some(now + d.backoff);
                        }
                    }
                }
            }
            (i, status) = exited => {
                let d = &mut daemons[i];
                d.child = None;
                let quick = d.started.elapsed() < Duration::from_secs(10);
                d.backoff = if quick { (d.backoff * 2).min(Duration::from_secs(30)) } else { Duration::from_secs(1) };
                eprintln!("facteurctl up: {} exited ({}); restarting in {:?}", d.name, status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string()), d.backoff);
                d.restart_at = Some(tokio::time::Instant::now() + d.backoff);
            }
        }
    }
    eprintln!("facteurctl up: stopping");
    for d in &daemons {
        if let Some(pid) = d.child.as_ref().and_then(|c| c.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
    }
    for d in &mut daemons {
        if let Some(c) = d.child.as_mut()
            && tokio::time::timeout(Duration::from_secs(15), c.wait())
                .await
                .is_err()
        {
            let _ = c.kill().await;
        }
    }
    Ok(0)
}

/// Resolves with the first of several futures (a tiny select_all, to avoid a
/// dependency for one use).
async fn futures_select_all<F, T>(mut futs: Vec<std::pin::Pin<Box<F>>>) -> T
where
    F: std::future::Future<Output = T> + ?Sized,
{
    std::future::poll_fn(move |cx| {
        for f in futs.iter_mut() {
            if let std::task::Poll::Ready(v) = f.as_mut().poll(cx) {
                return std::task::Poll::Ready(v);
            }
        }
        std::task::Poll::Pending
    })
    .await
}
