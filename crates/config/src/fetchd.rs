//! `[fetchd]`: facteur-fetchd, the mail collector (remote POP3/IMAP
//! accounts into the queue). The accounts themselves are kept by
//! `facteurctl fetch` in `<state_dir>/fetchd.sqlite`.

use crate::{ByteSize, Seconds};
use serde::Deserialize;
use std::path::PathBuf;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Fetchd {
    /// The CA bundle remote servers' certificates are checked against.
    pub ca_file: PathBuf,
    /// How often the accounts due are looked for.
    pub check_interval: Seconds,
    /// Accounts collected at once.
    pub max_parallel: u32,
    /// A remote server silent this long fails the run.
    pub timeout: Seconds,
    /// A larger message is left on the server (and reported).
    pub max_message_size: ByteSize,
}

impl Default for Fetchd {
    fn default() -> Self {
        Fetchd {
            ca_file: PathBuf::from("/etc/ssl/certs/ca-certificates.crt"),
            check_interval: Seconds(30),
            max_parallel: 4,
            timeout: Seconds(120),
            max_message_size: ByteSize(50 << 20),
        }
    }
}
