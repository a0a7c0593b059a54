//! facteur-managesieved: ManageSieve (RFC 5804), where users' mail clients
//! and webmails store, check, list and activate their Sieve scripts, which
//! facteur-lmtpd then runs at delivery.
//!
//! Listeners (`[managesieved]`): `listen` (4190, STARTTLS offered) and
//! `listen_tls`. Logins are AUTHENTICATE with the SASL mechanisms of
//! facteur-sasl (SCRAM-SHA-256, PLAIN, LOGIN) against the directory,
//! through facteur-auth (the same slow-down and limits as IMAP and POP3).
//! Scripts are stored by facteur-store (`<user dir>/sieve/`), compiled by
//! facteur-sieve before they are stored: a script that does not compile
//! is refused with its errors' lines and columns, never stored.
//!
//! Layout: [`server`] binds and serves the listeners (facteur-access);
//! [`session`] is one connection (framing of lines and literals by
//! facteur-managesieve-proto, login, STARTTLS); `session/scripts.rs` the
//! commands on scripts.
//!
//! Security: no password before TLS (unless `allow_plaintext_auth_on_loopback`
//! and a loopback client); after STARTTLS the clear-text input is thrown
//! away; literals are bounded by `[sieve] max_script_size` and refused
//! before they are read; the number and size of a user's scripts are
//! bounded (`max_scripts`, `max_script_size`).
//!
//! Standards: RFC 5804 (ManageSieve), RFC 4422 (SASL), RFC 4616 (PLAIN),
//! RFC 7677 (SCRAM-SHA-256), RFC 5228 (the scripts).

pub mod server;
pub mod session;

use facteur_access::Access;
use facteur_config::Config;

pub use server::run;

/// Everything sessions share: the access daemons' part and the settings.
pub struct Context {
    pub access: Access,
    /// `[managesieved]`, replaced by a reload.
    pub cfg: facteur_daemon::reload::Live<facteur_config::Managesieved>,
    /// `[sieve]`: script limits and the extensions scripts may use.
    pub sieve: facteur_daemon::reload::Live<facteur_config::Sieve>,
}

impl std::ops::Deref for Context {
    type Target = Access;
    fn deref(&self) -> &Access {
        &self.access
    }
}

impl Context {
    pub fn from_config(cfg: &Config) -> anyhow::Result<Context> {
        Ok(Context::new(
            Access::from_config(cfg, facteur_access::Daemon::Managesieved)?,
            cfg.managesieved.clone(),
            cfg.sieve.clone(),
        ))
    }

    /// A context around `access` (tests build theirs this way).
    pub fn new(
        access: Access,
        cfg: facteur_config::Managesieved,
        sieve: facteur_config::Sieve,
    ) -> Context {
        Context {
            access,
            cfg: facteur_daemon::reload::Live::new(cfg),
            sieve: facteur_daemon::reload::Live::new(sieve),
        }
    }
}
