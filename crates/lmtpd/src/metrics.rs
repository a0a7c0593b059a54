//! facteur-lmtpd's metrics beyond the LMTP core's (deliveries by result,
//! refusals by code) and the accept loop's: the actions of Sieve scripts.

use facteur_sieve::{Action, Outcome};
use std::sync::Arc;

const ACTIONS: &[&str] = &[
    "keep", "fileinto", "redirect", "reject", "vacation", "discard",
];

fn family() -> Arc<facteur_metrics::Family> {
    facteur_metrics::global().counter(
        "facteur_sieve_actions_total",
        "Actions of Sieve scripts at delivery (an implicit keep counts as keep).",
        &["action"],
    )
}

/// Registers lmtpd's series at zero.
pub fn register() {
    facteur_smtp_server::metrics::register("lmtp");
    let f = family();
    for a in ACTIONS {
        f.register(&[a]);
    }
}

/// The actions of one run.
pub fn sieve_actions(out: &Outcome) {
    let f = family();
    for a in &out.actions {
        f.inc(&[match a {
            Action::Keep { .. } => "keep",
            Action::FileInto { .. } => "fileinto",
            Action::Redirect { .. } => "redirect",
            Action::Reject { .. } => "reject",
            Action::Vacation(_) => "vacation",
            Action::Discard => "discard",
        }]);
    }
    if out.implicit_keep && !out.actions.iter().any(|a| matches!(a, Action::Keep { .. })) {
        f.inc(&["keep"]);
    }
}
