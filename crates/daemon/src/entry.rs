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
    crate::init_logging(&cfg.log);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{name}: cannot start the runtime: {e}");
            return ExitCode::from(71); // EX_OSERR
        }
    };
    match rt.block_on(run(cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("{name}: {e:#}");
            ExitCode::from(1)
        }
    }
}
