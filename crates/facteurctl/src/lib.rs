//! facteurctl: the administrator's tool.
//!
//! Layout: [`cli`] declares the command line; [`admin`] manages domains,
//! users and aliases in the directory (and mailboxes in the store);
//! [`init`] writes a development setup; [`up`] runs the suite in the
//! foreground, restarting a daemon that dies (production uses systemd).
//!
//! Security: passwords never come from the command line (visible in `ps` and
//! shell history): a prompt on a terminal, otherwise the first line of
//! standard input.

pub mod admin;
pub mod cli;
pub mod init;
pub mod up;

use anyhow::Context as _;
use cli::{Cli, Command, ConfigAction};
use facteur_config::Config;

/// Runs one command; returns the process exit code.
pub fn run(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Config {
            action: ConfigAction::Check,
        } => match Config::load(&cli.config) {
            Ok(_) => {
                println!("{}: ok", cli.config.display());
                Ok(0)
            }
            Err(e) => {
                eprintln!("{e}");
                Ok(78) // EX_CONFIG
            }
        },
        Command::Init(args) => {
            init::init_dev(&args.dev, args.force)?;
            Ok(0)
        }
        Command::Up(args) => {
            let config = match &args.dev {
                Some(dir) => {
                    let path = dir.join("facteur.toml");
                    if !path.exists() {
                        init::init_dev(dir, false)?;
                    }
                    path
                }
                None => cli.config.clone(),
            };
            let cfg = load(&config)?;
            up::up(&cfg)
        }
        Command::Domain { action } => admin::domain(&load(&cli.config)?, action).map(|_| 0),
        Command::User { action } => admin::user(&load(&cli.config)?, action).map(|_| 0),
        Command::Alias { action } => admin::alias(&load(&cli.config)?, action).map(|_| 0),
    }
}

fn load(path: &std::path::Path) -> anyhow::Result<Config> {
    Config::load(path)
        .map_err(anyhow::Error::from)
        .context("configuration")
}
