//! facteur-qmgr: parse arguments, load the configuration, start logging, run.

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;

/// facteur's queue manager.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// The configuration file.
    #[arg(long, short = 'c', default_value = facteur_config::DEFAULT_PATH)]
    config: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let cfg = match facteur_config::Config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("facteur-qmgr: {e}");
            return ExitCode::from(78); // EX_CONFIG
        }
    };
    facteur_daemon::init_logging(&cfg.log);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("facteur-qmgr: cannot start the runtime: {e}");
            return ExitCode::from(71); // EX_OSERR
        }
    };
    match rt.block_on(facteur_qmgr::run(cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("facteur-qmgr: {e:#}");
            ExitCode::from(1)
        }
    }
}
