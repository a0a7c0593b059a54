//! The `[sieve]` section: mail filtering at delivery (facteur-lmtpd) and
//! the script limits ManageSieve and `facteurctl sieve` enforce.
//!
//! Pigeonhole's model: for each recipient, the `before` scripts run in
//! order, then the user's active script, then the `after` scripts; a
//! script runs only while the ones before it kept the message (an explicit
//! or implicit keep). Every key is documented in `etc/facteur.toml`.

use crate::units::{ByteSize, Seconds};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;

/// `[managesieved]`: facteur-managesieved, ManageSieve (RFC 5804), where
/// users' mail clients and webmails edit their Sieve scripts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Managesieved {
    /// Listeners (4190): STARTTLS offered, no password before TLS.
    pub listen: Vec<SocketAddr>,
    /// Implicit-TLS listeners (no standard port; some set-ups use one).
    pub listen_tls: Vec<SocketAddr>,
    pub max_connections: u32,
    pub max_connections_per_ip: u32,
    /// Idle time allowed between commands.
    pub timeout: Seconds,
    /// Bad commands tolerated before the connection is closed.
    pub max_errors: u32,
    /// Accept AUTHENTICATE without TLS from loopback clients.
    pub allow_plaintext_auth_on_loopback: bool,
}

impl Default for Managesieved {
    fn default() -> Self {
        Managesieved {
            listen: Vec::new(),
            listen_tls: Vec::new(),
            max_connections: 200,
            max_connections_per_ip: 10,
            timeout: Seconds(600),
            max_errors: 20,
            allow_plaintext_auth_on_loopback: false,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Sieve {
    /// Run users' scripts at all (the global scripts run regardless).
    pub enabled: bool,
    /// Global scripts run before the user's (files, in order).
    pub before: Vec<PathBuf>,
    /// Global scripts run after the user's.
    pub after: Vec<PathBuf>,
    /// Directory of the scripts `include :global` finds.
    pub global_dir: Option<PathBuf>,
    /// Extensions users' scripts may not use (e.g. `["editheader"]`).
    pub disabled_extensions: Vec<String>,
    /// Largest script a user may store.
    pub max_script_size: ByteSize,
    /// Most scripts a user may store.
    pub max_scripts: u32,
    /// Most actions one run may take.
    pub max_actions: u32,
    /// Most redirects one run may make.
    pub max_redirects: u32,
    /// vacation's period when the script names none, and its bounds.
    pub vacation_default_period: Seconds,
    pub vacation_min_period: Seconds,
    pub vacation_max_period: Seconds,
    /// How long duplicate-test records are kept when the script says no
    /// `:seconds` (RFC 7352 leaves the default to the site).
    pub duplicate_default_period: Seconds,
    /// Header fields scripts may neither add nor delete (editheader),
    /// beside Received and Auto-Submitted, which they never delete; e.g.
    /// `["X-Spam-Status"]`. Subject cannot be protected.
    pub editheader_protected: Vec<String>,
    /// Fields scripts may not add.
    pub editheader_forbid_add: Vec<String>,
    /// Fields scripts may not delete.
    pub editheader_forbid_delete: Vec<String>,
    /// Longest value a script's addheader may add.
    pub editheader_max_header_size: ByteSize,
    /// vacation's reply subject when the script gives none: for a message
    /// without a Subject, and the template for one with (`%$` is its
    /// subject), cut at this many characters.
    pub vacation_default_subject: String,
    pub vacation_subject_template: String,
    pub vacation_max_subject_codepoints: u32,
    /// The address the message was sent to before aliases counts as the
    /// user's (mail to an alias gets replies).
    pub vacation_use_original_recipient: bool,
    /// Reply even to mail that names none of the user's addresses.
    pub vacation_dont_check_recipient: bool,
    /// Send replies from the recipient's address instead of `<>` (some
    /// receivers refuse null-sender mail; replies can then bounce back).
    pub vacation_send_from_recipient: bool,
    /// Address the reply to the message's Sender/From even when the
    /// envelope sender differs (forwarded mail with SRS senders).
    pub vacation_to_header_ignore_envelope: bool,
    /// The envelope sender of redirected messages: `sender` (the message's
    /// own: SPF then fails at the next hop unless senders are rewritten),
    /// `recipient`, `orig_recipient`, `user_email` (the mailbox's
    /// address), `postmaster`, or a fixed `<address>` (`<>` for none). A
    /// message with the null sender is always redirected with the null
    /// sender (RFC 5228 §4.2).
    pub redirect_envelope_from: String,
}

impl Default for Sieve {
    fn default() -> Self {
        Sieve {
            enabled: true,
            before: Vec::new(),
            after: Vec::new(),
            global_dir: None,
            disabled_extensions: Vec::new(),
            max_script_size: ByteSize(1024 * 1024),
            max_scripts: 64,
            max_actions: 32,
            max_redirects: 4,
            vacation_default_period: Seconds(7 * 86_400),
            vacation_min_period: Seconds(86_400),
            vacation_max_period: Seconds(90 * 86_400),
            duplicate_default_period: Seconds(12 * 3600),
            editheader_protected: Vec::new(),
            editheader_forbid_add: Vec::new(),
            editheader_forbid_delete: Vec::new(),
            editheader_max_header_size: ByteSize(2048),
            vacation_default_subject: "Automated reply".into(),
            vacation_subject_template: "Auto: %$".into(),
            vacation_max_subject_codepoints: 256,
            vacation_use_original_recipient: false,
            vacation_dont_check_recipient: false,
            vacation_send_from_recipient: false,
            vacation_to_header_ignore_envelope: false,
            redirect_envelope_from: "sender".into(),
        }
    }
}

/// Checked at load: the limits are usable.
pub(crate) fn check(s: &Sieve) -> Result<(), (String, String)> {
    if s.max_actions == 0 {
        return Err(("sieve.max_actions".into(), "must be at least 1".into()));
    }
    if s.vacation_min_period.0 > s.vacation_max_period.0 {
        return Err((
            "sieve.vacation_min_period".into(),
            "must not be above sieve.vacation_max_period".into(),
        ));
    }
    if !redirect_sender_ok(&s.redirect_envelope_from) {
        return Err((
            "sieve.redirect_envelope_from".into(),
            "expected sender, recipient, orig_recipient, user_email, postmaster or <address>"
                .into(),
        ));
    }
    Ok(())
}

/// The forms facteur_sieve::RedirectSender::parse takes (this crate does
/// not depend on the interpreter).
fn redirect_sender_ok(v: &str) -> bool {
    let v = v.trim();
    match v.strip_prefix('<').and_then(|r| r.strip_suffix('>')) {
        Some(a) => {
            let a = a.trim();
            a.is_empty()
                || a.split_once('@').is_some_and(|(l, d)| {
                    !l.is_empty()
                        && !d.is_empty()
                        && !a.contains(|c: char| c.is_whitespace() || c == '<' || c == '>')
                })
        }
        None => matches!(
            v.to_ascii_lowercase().as_str(),
            "" | "sender" | "recipient" | "orig_recipient" | "user_email" | "postmaster"
        ),
    }
}
