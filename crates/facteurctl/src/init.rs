//! `facteurctl init --dev DIR [--port-base N]`: a complete development
//! setup under DIR.
//!
//! Writes `DIR/facteur.toml` (loopback only, the development ports of
//! DESIGN.md, moved together by `--port-base`, so that several instances
//! run side by side), a self-signed certificate in `DIR/tls/`, the directory with the
//! domain `example.test` and the user `demo@example.test` (a random password,
//! printed and written to `DIR/demo-password`, mode 0600), `DIR/aliases`
//! (the system aliases: root's mail to the demo user), and the spool,
//! state, run and mail directories.

use anyhow::{Context as _, bail};
use facteur_config::Config;
use rand::Rng;
use std::path::{Path, PathBuf};

pub const DEV_DOMAIN: &str = "example.test";
pub const DEV_USER: &str = "demo@example.test";
pub const DEV_HOSTNAME: &str = "mail.example.test";
/// The default port base: the development ports of DESIGN.md.
pub const DEV_PORT_BASE: u16 = 2000;

/// The development ports, each at a fixed offset from a base (2000 gives
/// DESIGN.md's set: SMTP 2525, submission 2587, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    pub lmtp: u16,
    pub smtp: u16,
    pub submission: u16,
    pub submissions: u16,
    pub pop3: u16,
    pub pop3s: u16,
    pub imap: u16,
    pub imaps: u16,
    pub managesieve: u16,
}

impl Ports {
    /// The set at `base`, or `None` when a port would pass 65535.
    pub fn from_base(base: u16) -> Option<Ports> {
        let p = |offset: u16| base.checked_add(offset);
        Some(Ports {
            lmtp: p(24)?,
            smtp: p(525)?,
            submission: p(587)?,
            submissions: p(465)?,
            pop3: p(110)?,
            pop3s: p(995)?,
            imap: p(143)?,
            imaps: p(993)?,
            managesieve: p(22190)?,
        })
    }
}

/// The development configuration for `dir` (absolute).
pub fn dev_config(dir: &Path, ports: &Ports) -> String {
    let ports = *ports;
    let (lmtp, smtp, submission, submissions) =
        (ports.lmtp, ports.smtp, ports.submission, ports.submissions);
    let (pop3, pop3s, imap, imaps) = (ports.pop3, ports.pop3s, ports.imap, ports.imaps);
    format!(
        "# facteur development setup, written by `facteurctl init --dev`.\n\
         # Loopback only. See etc/facteur.toml in the sources for every key.\n\
         hostname = \"{DEV_HOSTNAME}\"\n\n\
         {}\
         [log]\nlevel = \"info\"\n\n\
         [lmtpd]\nsocket = \"lmtp.sock\"\nsocket_mode = \"0660\"\nlisten = [\"127.0.0.1:{lmtp}\"]\n\n\
         [smtpd]\nmx = [\"127.0.0.1:{smtp}\"]\nsubmission = [\"127.0.0.1:{submission}\"]\n\
         submissions = [\"127.0.0.1:{submissions}\"]\nmynetworks = [\"127.0.0.0/8\", \"::1/128\"]\n\n\
         [qmgr]\nsocket = \"qmgr.sock\"\n\n\
         [pop3d]\nlisten = [\"127.0.0.1:{pop3}\"]\nlisten_tls = [\"127.0.0.1:{pop3s}\"]\n\n\
         [imapd]\nlisten = [\"127.0.0.1:{imap}\"]\nlisten_tls = [\"127.0.0.1:{imaps}\"]\n\n\
         [managesieved]\nlisten = [\"127.0.0.1:{}\"]\n",
        facteur_config::sections_under(dir),
        ports.managesieve,
    )
}

fn random_password() -> String {
    const CHARS: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::thread_rng();
    (0..20)
        .map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char)
        .collect()
}

/// Writes the setup with the ports at `port_base`; returns the demo
/// user's password.
pub fn init_dev(dir: &Path, force: bool, port_base: u16) -> anyhow::Result<String> {
    let Some(ports) = Ports::from_base(port_base) else {
        bail!("--port-base {port_base}: the ports would pass 65535");
    };
    facteur_util::create_dir_all_mode(dir, 0o755)
        .with_context(|| format!("creating {}", dir.display()))?;
    let dir: PathBuf = dir
        .canonicalize()
        .with_context(|| format!("resolving {}", dir.display()))?;
    let cfg_path = dir.join("facteur.toml");
    if cfg_path.exists() && !force {
        bail!(
            "{} already exists (use --force to overwrite the configuration)",
            cfg_path.display()
        );
    }
    for sub in ["spool", "state", "mail", "tls"] {
        facteur_util::create_dir_all_mode(&dir.join(sub), 0o750)?;
    }
    // The socket directory must be searchable by the MTA that delivers over
    // LMTP (Postfix's unprivileged lmtp client); the sockets' own modes guard
    // who may connect.
    facteur_util::create_dir_all_mode(&dir.join("run"), 0o755)?;
    let text = dev_config(&dir, &ports);
    facteur_util::write_atomic(&cfg_path, text.as_bytes(), 0o644)?;
    let cfg = Config::load(&cfg_path)?;

    let names = vec![
        DEV_HOSTNAME.to_string(),
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    let ck = rcgen::generate_simple_self_signed(names)
        .context("generating the self-signed certificate")?;
    facteur_util::write_atomic(&cfg.tls.cert, ck.cert.pem().as_bytes(), 0o644)?;
    facteur_util::write_atomic(&cfg.tls.key, ck.key_pair.serialize_pem().as_bytes(), 0o600)?;

    let directory = crate::admin::open_directory(&cfg)?;
    let store = crate::admin::open_store(&cfg);
    if !directory.is_local_domain(DEV_DOMAIN)? {
        directory.add_domain(DEV_DOMAIN)?;
    }
    let password = random_password();
    if directory.get_user(DEV_USER)?.is_some() {
        crate::admin::set_password(directory.as_ref(), DEV_USER, &password)?;
        store.create_user(DEV_USER)?;
    } else {
        crate::admin::add_user(directory.as_ref(), &store, DEV_USER, &password, 0, 0)?;
    }
    facteur_util::write_atomic(
        &dir.join("demo-password"),
        format!("{password}\n").as_bytes(),
        0o600,
    )?;
    // The system aliases of this setup (`[aliases] file`), as Debian's
    // /etc/aliases with root's mail given to someone: kept when present.
    if !cfg.aliases.file.exists() {
        facteur_util::write_atomic(
            &cfg.aliases.file,
            format!(
                "# System aliases, aliases(5): root, postmaster and the machine's Unix users.\n\
                 postmaster: root\nroot: {DEV_USER}\n"
            )
            .as_bytes(),
            0o644,
        )?;
    }

    print_setup(&dir, &cfg_path, &cfg, &password, &ports);
    Ok(password)
}

/// What `init` tells the developer: where things are, how to connect.
fn print_setup(dir: &Path, cfg_path: &Path, cfg: &Config, password: &str, p: &Ports) {
    let (lmtp, smtp, submission, submissions) = (p.lmtp, p.smtp, p.submission, p.submissions);
    let (pop3, pop3s, imap, imaps) = (p.pop3, p.pop3s, p.imap, p.imaps);
    println!("facteur development setup written to {}", dir.display());
    println!("  configuration: {}", cfg_path.display());
    println!("  user:          {DEV_USER}");
    println!(
        "  password:      {password}   (also in {})",
        dir.join("demo-password").display()
    );
    println!(
        "  SMTP:          127.0.0.1:{smtp} (MX), 127.0.0.1:{submission} (submission: STARTTLS, AUTH), 127.0.0.1:{submissions} (TLS)"
    );
    println!(
        "  LMTP:          {} and 127.0.0.1:{lmtp}",
        cfg.lmtp_socket().display()
    );
    println!("  POP3:          127.0.0.1:{pop3} (STLS), 127.0.0.1:{pop3s} (TLS)");
    println!("  IMAP:          127.0.0.1:{imap} (STARTTLS), 127.0.0.1:{imaps} (TLS)");
    println!("  ManageSieve:   127.0.0.1:{} (STARTTLS)", p.managesieve);
    println!("  mail:          {}", cfg.store.mail_root.display());
    println!(
        "Start it with: facteurctl up --config {}",
        cfg_path.display()
    );
}
