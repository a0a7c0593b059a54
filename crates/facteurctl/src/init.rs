//! `facteurctl init --dev DIR`: a complete development setup under DIR.
//!
//! Writes `DIR/facteur.toml` (loopback only, the development ports of
//! DESIGN.md), a self-signed certificate in `DIR/tls/`, the directory with the
//! domain `example.test` and the user `demo@example.test` (a random password,
//! printed and written to `DIR/demo-password`, mode 0600), and the spool,
//! state, run and mail directories.

use anyhow::{Context as _, bail};
use facteur_config::Config;
use rand::Rng;
use std::path::{Path, PathBuf};

pub const DEV_DOMAIN: &str = "example.test";
pub const DEV_USER: &str = "demo@example.test";
pub const DEV_HOSTNAME: &str = "mail.example.test";
/// Development ports (DESIGN.md: development defaults).
pub const DEV_LMTP_PORT: u16 = 2024;
pub const DEV_SMTP_PORT: u16 = 2525;
pub const DEV_SUBMISSION_PORT: u16 = 2587;
pub const DEV_SUBMISSIONS_PORT: u16 = 2465;
pub const DEV_POP3_PORT: u16 = 2110;
pub const DEV_POP3S_PORT: u16 = 2995;
pub const DEV_IMAP_PORT: u16 = 2143;
pub const DEV_IMAPS_PORT: u16 = 2993;

fn toml_str(p: &Path) -> String {
    toml::Value::String(p.display().to_string()).to_string()
}

/// The development configuration for `dir` (absolute).
pub fn dev_config(dir: &Path) -> String {
    let p = |s: &str| toml_str(&dir.join(s));
    format!(
        "# facteur development setup, written by `facteurctl init --dev`.\n\
         # Loopback only. See etc/facteur.toml in the sources for every key.\n\
         hostname = \"{DEV_HOSTNAME}\"\n\n\
         [paths]\nspool_dir = {}\nstate_dir = {}\nrun_dir = {}\n\n\
         [tls]\ncert = {}\nkey = {}\n\n\
         [directory]\npath = {}\n\n\
         [store]\nmail_root = {}\n\n\
         [log]\nlevel = \"info\"\n\n\
         [lmtpd]\nsocket = \"lmtp.sock\"\nsocket_mode = \"0660\"\nlisten = [\"127.0.0.1:{DEV_LMTP_PORT}\"]\n\n\
         [smtpd]\nmx = [\"127.0.0.1:{DEV_SMTP_PORT}\"]\nsubmission = [\"127.0.0.1:{DEV_SUBMISSION_PORT}\"]\n\
         submissions = [\"127.0.0.1:{DEV_SUBMISSIONS_PORT}\"]\nmynetworks = [\"127.0.0.0/8\", \"::1/128\"]\n\n\
         [qmgr]\nsocket = \"qmgr.sock\"\n\n\
         [pop3d]\nlisten = [\"127.0.0.1:{DEV_POP3_PORT}\"]\nlisten_tls = [\"127.0.0.1:{DEV_POP3S_PORT}\"]\n\n\
         [imapd]\nlisten = [\"127.0.0.1:{DEV_IMAP_PORT}\"]\nlisten_tls = [\"127.0.0.1:{DEV_IMAPS_PORT}\"]\n",
        p("spool"),
        p("state"),
        p("run"),
        p("tls/cert.pem"),
        p("tls/key.pem"),
        p("state/directory.sqlite"),
        p("mail"),
    )
}

fn random_password() -> String {
    const CHARS: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::thread_rng();
    (0..20)
        .map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char)
        .collect()
}

/// Writes the setup; returns the demo user's password.
pub fn init_dev(dir: &Path, force: bool) -> anyhow::Result<String> {
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
    let text = dev_config(&dir);
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

    println!("facteur development setup written to {}", dir.display());
    println!("  configuration: {}", cfg_path.display());
    println!("  user:          {DEV_USER}");
    println!(
        "  password:      {password}   (also in {})",
        dir.join("demo-password").display()
    );
    println!(
        "  SMTP:          127.0.0.1:{DEV_SMTP_PORT} (MX), 127.0.0.1:{DEV_SUBMISSION_PORT} (submission: STARTTLS, AUTH), 127.0.0.1:{DEV_SUBMISSIONS_PORT} (TLS)"
    );
    println!(
        "  LMTP:          {} and 127.0.0.1:{DEV_LMTP_PORT}",
        cfg.lmtp_socket().display()
    );
    println!("  POP3:          127.0.0.1:{DEV_POP3_PORT} (STLS), 127.0.0.1:{DEV_POP3S_PORT} (TLS)");
    println!(
        "  IMAP:          127.0.0.1:{DEV_IMAP_PORT} (STARTTLS), 127.0.0.1:{DEV_IMAPS_PORT} (TLS)"
    );
    println!("  mail:          {}", cfg.store.mail_root.display());
    println!(
        "Start it with: facteurctl up --config {}",
        cfg_path.display()
    );
    Ok(password)
}
