//! facteurctl: the administrator's tool.
//!
//! Layout: [`cli`] declares the command line; [`admin`] manages domains,
//! users and aliases in the directory (and mailboxes in the store);
//! [`init`] writes a development setup; [`up`] runs the suite in the
//! foreground, restarting a daemon that dies (production uses systemd);
//! [`tls`] writes a self-signed certificate; [`dns`] prints the DNS records
//! to publish; [`dkim`] makes and rotates DKIM keys; [`queue`] lists and steers the mail queue; [`dovecot`] imports and exports
//! Dovecot Maildirs; [`sieve`] manages users' Sieve scripts; [`privs`] makes root act as the mail store's owner, so files
//! created for the daemons belong to them.
//!
//! Security: passwords never come from the command line (visible in `ps` and
//! shell history): a prompt on a terminal, otherwise the first line of
//! standard input.

pub mod access;
pub mod acl;
pub mod admin;
pub mod cli;
pub mod dkim;
pub mod dns;
pub mod dnscheck;
pub mod dovecot;
pub mod fetch;
pub mod filter;
pub mod init;
pub mod lists;
pub mod log;
pub mod privs;
pub mod queue;
pub mod sieve;
pub mod stats;
pub mod tls;
pub mod up;

use anyhow::Context as _;
use cli::{Cli, Command, ConfigAction, TlsAction};
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
            init::init_dev(&args.dev, args.force, args.port_base)?;
            Ok(0)
        }
        Command::Up(args) => {
            let config = match &args.dev {
                Some(dir) => {
                    let path = dir.join("facteur.toml");
                    if !path.exists() {
                        init::init_dev(dir, false, args.port_base)?;
                    }
                    path
                }
                None => cli.config.clone(),
            };
            let cfg = load(&config)?;
            up::up(&cfg)
        }
        Command::Domain { action } => {
            admin::domain(&load_as_owner(&cli.config)?, action).map(|_| 0)
        }
        Command::User { action } => admin::user(&load_as_owner(&cli.config)?, action).map(|_| 0),
        Command::Alias { action } => admin::alias(&load_as_owner(&cli.config)?, action).map(|_| 0),
        Command::List { action } => lists::run(&load_as_owner(&cli.config)?, action),
        Command::Fetch { action } => fetch::run(&load(&cli.config)?, action),
        Command::Queue { action } => queue::run(&load(&cli.config)?, action),
        Command::Tls {
            action:
                TlsAction::SelfSigned {
                    cert,
                    key,
                    names,
                    force,
                },
        } => {
            // The configuration is needed only for what was not given.
            let (cert, key, names) = match (cert, key, names.is_empty()) {
                (Some(c), Some(k), false) => (c, k, names),
                (c, k, _) => {
                    let cfg = load(&cli.config)?;
                    let names = if names.is_empty() {
                        vec![cfg.hostname()]
                    } else {
                        names
                    };
                    (c.unwrap_or(cfg.tls.cert), k.unwrap_or(cfg.tls.key), names)
                }
            };
            tls::self_signed(&cert, &key, &names, force)?;
            println!(
                "self-signed certificate for {} written to {} (key: {})",
                names.join(", "),
                cert.display(),
                key.display()
            );
            Ok(0)
        }
        Command::DnsRecords(args) => {
            let cfg = load(&cli.config)?;
            let domain = dns::domain_name(&args.domain)?;
            let host = cfg.hostname();
            let (v4, v6) = if args.ipv4.is_empty() && args.ipv6.is_empty() {
                dns::public_addresses(&host)
            } else {
                (args.ipv4, args.ipv6)
            };
            let dkim = dkim::published_records(&cfg, &domain)?;
            if args.check {
                let set = dns::record_set(&domain, &host, &v4, &v6, &dkim);
                let server = dnscheck::nameserver(args.nameserver)?;
                let (verdicts, all_ok) = dnscheck::check(&set, &dnscheck::Udp::new(server));
                print!(
                    "{}",
                    dns::records(&domain, &host, &v4, &v6, &dkim, Some(&verdicts))
                );
                return Ok(if all_ok { 0 } else { 1 });
            }
            print!("{}", dns::records(&domain, &host, &v4, &v6, &dkim, None));
            Ok(0)
        }
        Command::Dkim { action } => dkim::run(&load(&cli.config)?, action),
        Command::Import { action } => {
            admin::import(&load_as_owner(&cli.config)?, action).map(|_| 0)
        }
        Command::Export { action } => {
            admin::export(&load_as_owner(&cli.config)?, action).map(|_| 0)
        }
        Command::Filter { action } => filter::run(&load_as_owner(&cli.config)?, action),
        Command::Access { action } => access::run(&load_as_owner(&cli.config)?, action),
        Command::Acl { action } => acl::run(&load_as_owner(&cli.config)?, action).map(|_| 0),
        // The journal or files only: no configuration needed.
        Command::Log(a) => {
            let f = log::Filter {
                date: a.date,
                since: a.since,
                until: a.until,
                grep: a.grep,
                queue_id: a.queue_id,
                address: a.address,
                errors: a.errors,
            };
            log::run(&f, a.dir.as_deref(), a.follow)
        }
        Command::Stats(a) => {
            let deliverability = match a.what.as_deref() {
                None => false,
                Some("deliverability") => true,
                Some(other) => anyhow::bail!("{other:?}: the only one is `stats deliverability`"),
            };
            let by = if deliverability {
                "recipient-domain"
            } else {
                a.by.as_str()
            };
            let by = stats::By::parse(by).with_context(|| {
                format!("--by {by:?}: sender-domain, recipient-domain, mailbox, hour, day, month, remote-host or total")
            })?;
            if !["table", "json", "csv"].contains(&a.format.as_str()) {
                anyhow::bail!("--format {:?}: table, json or csv", a.format);
            }
            let f = log::Filter {
                since: a.since,
                until: a.until,
                ..log::Filter::default()
            };
            let mut t = stats::Tally::default();
            t.add(&stats::lines(&f, a.dir.as_deref())?, by);
            print!("{}", stats::render(&t.rows, &a.format, deliverability));
            Ok(0)
        }
        Command::Report(a) => {
            let day = match a.day.as_deref() {
                None | Some("yesterday") => {
                    facteur_util::date::short(facteur_util::date::now_unix() - 86_400)[..10]
                        .to_string()
                }
                Some("today") => {
                    facteur_util::date::short(facteur_util::date::now_unix())[..10].to_string()
                }
                Some(d) => d.to_string(),
            };
            let f = log::Filter {
                date: Some(day.clone()),
                ..log::Filter::default()
            };
            let cfg = if a.mail {
                let cfg = Config::load(&cli.config)?;
                if cfg.report.mail_to.trim().is_empty() {
                    eprintln!("the daily report is not mailed: [report] mail_to is empty");
                    return Ok(0);
                }
                Some(cfg)
            } else {
                None
            };
            let text = stats::report(&stats::lines(&f, a.dir.as_deref())?, &day);
            match cfg {
                Some(cfg) => {
                    let (to, id) = stats::mail_report(&cfg, &day, &text)?;
                    println!("report of {day} queued for {to} as {id}");
                }
                None => print!("{text}"),
            }
            Ok(0)
        }
        Command::Sieve { action } => match action {
            // check and test need no configuration (one is used if present)
            cli::SieveAction::Check { .. } | cli::SieveAction::Test { .. } => {
                let cfg = Config::load(&cli.config).ok();
                sieve::run(cfg.as_ref(), action)
            }
            _ => sieve::run(Some(&load_as_owner(&cli.config)?), action),
        },
    }
}

/// Loads the configuration, then (as root) becomes the mail store's owner.
fn load_as_owner(path: &std::path::Path) -> anyhow::Result<Config> {
    let cfg = load(path)?;
    privs::act_as_store_owner(&cfg)?;
    Ok(cfg)
}

fn load(path: &std::path::Path) -> anyhow::Result<Config> {
    Config::load(path)
        .map_err(anyhow::Error::from)
        .context("configuration")
}
