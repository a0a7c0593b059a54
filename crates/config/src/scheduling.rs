//! `[scheduling]`: how the kernel schedules facteur's daemons.

use serde::Deserialize;

/// The daemons a `[scheduling]` list may name (without `facteur-`).
const DAEMONS: &[&str] = &[
    "smtpd",
    "qmgr",
    "lmtpd",
    "imapd",
    "pop3d",
    "managesieved",
    "fetchd",
];

/// `[scheduling]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Scheduling {
    /// The daemons that run under Linux's `SCHED_BATCH` policy: the same
    /// share of the CPU, but a thread of theirs that wakes up waits for
    /// the running thread to block or use up its slice instead of taking
    /// the CPU from it. Default: the three that carry mail from one to
    /// the next (smtpd, qmgr, lmtpd), where a message wakes a thread at
    /// each step and a millisecond is nothing; not the ones people wait
    /// on (imapd, pop3d, managesieved). `[]`: every daemon normal.
    pub batch: Vec<String>,
}

impl Default for Scheduling {
    fn default() -> Self {
        Scheduling {
            batch: ["smtpd", "qmgr", "lmtpd"].map(String::from).to_vec(),
        }
    }
}

impl Scheduling {
    /// Whether daemon `name` (`facteur-smtpd`, ...) runs under
    /// `SCHED_BATCH`.
    pub fn is_batch(&self, name: &str) -> bool {
        let short = name.strip_prefix("facteur-").unwrap_or(name);
        self.batch.iter().any(|b| b == short)
    }
}

pub(crate) fn check(s: &Scheduling) -> Result<(), (String, String)> {
    match s.batch.iter().find(|b| !DAEMONS.contains(&b.as_str())) {
        Some(b) => Err((
            "scheduling.batch".into(),
            format!("{b:?} is not a daemon (one of {})", DAEMONS.join(", ")),
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mail_path_is_batch_by_default_and_names_are_checked() {
        let s = Scheduling::default();
        for d in ["facteur-smtpd", "facteur-qmgr", "facteur-lmtpd"] {
            assert!(s.is_batch(d), "{d}");
        }
        for d in ["facteur-imapd", "facteur-pop3d", "facteur-managesieved"] {
            assert!(!s.is_batch(d), "{d}");
        }
        assert!(check(&s).is_ok());
        let none = Scheduling { batch: Vec::new() };
        assert!(!none.is_batch("facteur-smtpd"));
        let bad = Scheduling {
            batch: vec!["postfix".into()],
        };
        assert_eq!(check(&bad).unwrap_err().0, "scheduling.batch");
    }
}
