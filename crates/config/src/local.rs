//! The Debian MTA habits: `[aliases]` (the system's `/etc/aliases` for the
//! host's own addresses and its Unix users) and `[report]` (the daily
//! report mailed by the packaged timer).

use serde::Deserialize;
use std::path::PathBuf;

/// `[aliases]`: mail for the host's own names (`root@<host name>`, cron's
/// mail to a Unix user, `postmaster@localhost`) goes where the system's
/// aliases file says, as with Postfix and Exim on Debian.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Aliases {
    /// The aliases file, aliases(5) format; "" = none. A missing file is
    /// an empty one.
    pub file: PathBuf,
    /// The system domains whose addresses the file and the Unix users
    /// answer for (Postfix's `mydestination`); empty = the host name and
    /// `localhost`. A domain that is also in the directory is asked there
    /// first.
    pub domains: Vec<String>,
    /// Where mail for a Unix user with no alias goes: a name in the file
    /// (`root`, the default) or an address.
    pub unix_users: String,
    /// Whether `:include:/path` targets are read (one level, the file's
    /// addresses). Off: they are refused with a log line, as are
    /// `|command` and `/file` targets always.
    pub allow_include: bool,
}

impl Default for Aliases {
    fn default() -> Self {
        Aliases {
            file: PathBuf::from("/etc/aliases"),
            domains: Vec::new(),
            unix_users: "root".into(),
            allow_include: false,
        }
    }
}

/// `[report]`: the daily report (`facteurctl report --day yesterday
/// --mail`, run each morning by `facteur-report.timer`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Report {
    /// Who gets it (a local name such as `postmaster`, or an address);
    /// "" = the report is not mailed (the timer then does nothing).
    pub mail_to: String,
}
