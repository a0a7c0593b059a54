//! `facteurctl up`: runs every daemon of the suite in the foreground, for
//! trials, development machines and tests. Production uses systemd
//! (`facteur.target`), not this.
//!
//! Each daemon is started from the directory facteurctl itself lives in
//! (falling back to PATH) with `--config` pointing at the same file, one
//! after the other, each waited for until it says it is ready (the
//! systemd readiness protocol: `READY=1` on a datagram socket of ours,
//! named by `NOTIFY_SOCKET`). A daemon that exits before it is ready —
//! an address already in use, a permission, a bad certificate — stops
//! `up` with that daemon's error and exit status, instead of being
//! restarted every few seconds for ever. A daemon that exits later is
//! restarted after a pause that doubles while it keeps dying quickly (1 s
//! up to 30 s). SIGINT or SIGTERM stops them all: SIGTERM first, SIGKILL
//! after 15 s.

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
    "facteur-managesieved",
    "facteur-fetchd",
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
        "facteur-managesieved"
            if cfg.managesieved.listen.is_empty() && cfg.managesieved.listen_tls.is_empty() =>
        {
            Some("managesieved")
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

fn spawn(name: &str, config: &Path, notify: Option<&Path>) -> anyhow::Result<Child> {
    let mut c = Command::new(program_path(name));
    c.arg("--config").arg(config).kill_on_drop(true);
    match notify {
        Some(p) => c.env("NOTIFY_SOCKET", p),
        None => c.env_remove("NOTIFY_SOCKET"),
    };
    c.spawn().with_context(|| format!("starting {name}"))
}

/// How long a daemon may take to become ready.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The readiness socket of daemon `name`.
fn notify_socket(
    run_dir: &Path,
    name: &str,
) -> anyhow::Result<(PathBuf, tokio::net::UnixDatagram)> {
    let path = run_dir.join(format!(".up-{name}.notify"));
    let _ = std::fs::remove_file(&path);
    let sock = tokio::net::UnixDatagram::bind(&path)
        .with_context(|| format!("binding {}", path.display()))?;
    Ok((path, sock))
}

/// Waits until `child` says READY=1 on `sock`. `Err` with the exit status
/// when it exits first (or says nothing in time).
async fn wait_ready(child: &mut Child, sock: &tokio::net::UnixDatagram) -> Result<(), String> {
    let ready = async {
        let mut buf = [0u8; 512];
        loop {
            match sock.recv(&mut buf).await {
                Ok(n) if buf[..n].split(|&b| b == b'\n').any(|l| l == b"READY=1") => return,
                Ok(_) => continue,
                // A broken socket: readiness cannot be known; assume ready.
                Err(_) => return,
            }
        }
    };
    tokio::select! {
        _ = ready => Ok(()),
        status = child.wait() => Err(match status {
            Ok(s) => s.to_string(),
            Err(e) => e.to_string(),
        }),
        _ = tokio::time::sleep(START_TIMEOUT) => Err(format!("not ready after {START_TIMEOUT:?}")),
    }
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
    let mut daemons: Vec<Supervised> = Vec::new();
    let mut notify = Vec::new();
    for &name in DAEMONS {
        if let Some(section) = unconfigured(cfg, name) {
            eprintln!("facteurctl up: not starting {name}: [{section}] has no listener");
            continue;
        }
        let (path, sock) = notify_socket(&cfg.paths.run_dir, name)?;
        let mut child = spawn(name, &config, Some(&path))?;
        let pid = child.id().unwrap_or(0);
        if let Err(why) = wait_ready(&mut child, &sock).await {
            eprintln!(
                "facteurctl up: {name} could not start ({why}); see its error above. Stopping."
            );
            daemons.push(Supervised {
                name,
                child: Some(child),
                started: Instant::now(),
                backoff: Duration::ZERO,
                restart_at: None,
            });
            stop_all(&mut daemons).await;
            let _ = std::fs::remove_file(&path);
            return Ok(1);
        }
        eprintln!("facteurctl up: started {name} (pid {pid})");
        notify.push(path);
        daemons.push(Supervised {
            name,
            child: Some(child),
            started: Instant::now(),
            backoff: Duration::from_secs(1),
            restart_at: None,
        });
    }
    // Restarts are not waited for.
    for p in &notify {
        let _ = std::fs::remove_file(p);
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
                    match spawn(d.name, &config, None) {
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
    stop_all(&mut daemons).await;
    Ok(0)
}

/// SIGTERM to every child, SIGKILL to those still there after 15 s.
async fn stop_all(daemons: &mut [Supervised]) {
    for d in daemons.iter() {
        if let Some(pid) = d.child.as_ref().and_then(|c| c.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
    }
    for d in daemons.iter_mut() {
        if let Some(c) = d.child.as_mut()
            && tokio::time::timeout(Duration::from_secs(15), c.wait())
                .await
                .is_err()
        {
            let _ = c.kill().await;
        }
    }
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
