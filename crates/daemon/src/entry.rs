//! The whole `main` of a facteur daemon: parse `--config`, load and check the
//! configuration (exit 78, EX_CONFIG, with the file, key and reason), start
//! logging, and run the daemon's async `run` on a multi-threaded runtime.
//! A daemon's `main.rs` is one call to [`main`].

use facteur_config::Config;
use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Parser)]
struct Args {
    /// The configuration file.
    #[arg(long, short = 'c', default_value = facteur_config::DEFAULT_PATH)]
    config: PathBuf,
}

/// Threads for blocking work (tokio's pool: `spawn_blocking`, and the
/// replacement workers of `block_in_place`). The mail-access daemons serve
/// many connections with short store calls, and each call in progress
/// became a thread that outlived it: 1,000 IMAP clients logging in and
/// going IDLE left 170 threads, their stacks (about 85 KiB touched each)
/// still resident while the clients idled, 13 KiB per connection. They get
/// 8 per core, at least 16 (on 2 cores, 1,000 IDLE connections: 12.8 KiB
/// each instead of 21.6; 19 threads). The others keep tokio's 512: a delivery's fsync waits
/// on its own thread, and parallel fsyncs are what a fast disk wants.
fn blocking_threads(name: &str) -> usize {
    match name {
        "facteur-imapd" | "facteur-pop3d" => {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            (cores * 8).max(16)
        }
        _ => 512,
    }
}

/// Runs daemon `name` (as it names itself in messages) with `run`.
pub fn main<F, Fut>(name: &'static str, about: &'static str, run: F) -> ExitCode
where
    F: FnOnce(Config) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    use clap::{CommandFactory, FromArgMatches};
    let matches = Args::command()
        .name(name)
        .about(about)
        .version(env!("CARGO_PKG_VERSION"))
        .get_matches();
    let args = match Args::from_arg_matches(&matches) {
        Ok(a) => a,
        Err(e) => e.exit(),
    };
    let cfg = match Config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{name}: {e}");
            return ExitCode::from(78); // EX_CONFIG
        }
    };
    crate::init_logging(&cfg.log, name);
    fix_mmap_threshold();
    if cfg.scheduling.is_batch(name) {
        batch_scheduling();
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(blocking_threads(name))
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{name}: cannot start the runtime: {e}");
            return ExitCode::from(71); // EX_OSERR
        }
    };
    let started = async {
        crate::metrics::start(name, &cfg).await?;
        run(cfg).await
    };
    match rt.block_on(started) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("{name}: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Pins glibc's mmap threshold at its default (128 KiB).
///
/// Every login verifies an argon2id hash, which allocates 19 MiB and frees
/// it. glibc's threshold is dynamic: after the first such block is freed it
/// rises to 19 MiB, later blocks come from the heap arenas instead of
/// mmap, and (measured on facteur-imapd: 50 logins, 780 MiB of anonymous
/// memory; without this, about 15 MiB more per login) the arenas keep
/// them. A fixed threshold makes every large block an mmap that goes back
/// to the system when freed.
fn fix_mmap_threshold() {
    // SAFETY: mallopt only sets an allocator parameter; it is called here
    // before the runtime starts any thread, and a failure (0) just leaves
    // the default behaviour.
    #[allow(unsafe_code)]
    let ok = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024) };
    if ok == 0 {
        tracing::debug!("mallopt(M_MMAP_THRESHOLD) refused");
    }
}

/// Puts this thread, and so every thread the runtime starts after, under
/// `SCHED_BATCH` (`[scheduling] batch`). Measured on bench/'s workload 1
/// (facteur alone, 6 rounds of 5,000 messages, alternated): context
/// switches per message 12.3 / 8.7 / 14.9 (lmtpd, qmgr, smtpd) became
/// 10.9 / 6.2 / 12.8, and CPU per message 0.89 ms became 0.78. Most of a
/// message's steps wake a thread of the next daemon or of the blocking
/// pool; under the normal policy the woken thread often preempts the one
/// that woke it, which is switched back in a moment later to finish.
fn batch_scheduling() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: sched_setscheduler reads the parameter we pass and changes
    // only the calling thread's policy; no memory is handed over.
    #[allow(unsafe_code)]
    let r = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) };
    if r != 0 {
        tracing::warn!(
            error = %std::io::Error::last_os_error(),
            "cannot switch to SCHED_BATCH ([scheduling] batch); running under the normal policy"
        );
    }
}
