//! What the mail-access daemons (imapd, pop3d, managesieved) count:
//! commands by name and result, and their duration. Each daemon
//! registers its command names at start, so every series exists at zero.

use std::sync::Arc;
use std::time::Duration;

fn commands() -> Arc<facteur_metrics::Family> {
    facteur_metrics::global().counter(
        "facteur_commands_total",
        "Commands answered, by name and result (ok, no, bad; POP3: ok, err).",
        &["command", "result"],
    )
}

fn durations() -> Arc<facteur_metrics::Family> {
    facteur_metrics::global().histogram(
        "facteur_command_duration_seconds",
        "Time from a command's line to its answer, by name.",
        &["command"],
        facteur_metrics::DURATION_BUCKETS,
    )
}

/// Makes the series of `names` × `results` exist, at zero.
pub fn register(names: &[&str], results: &[&str]) {
    let (c, d) = (commands(), durations());
    for n in names {
        d.register(&[n]);
        for r in results {
            c.register(&[n, r]);
        }
    }
}

/// One command answered.
pub fn command(name: &str, result: &str, took: Duration) {
    commands().inc(&[name, result]);
    durations().observe(&[name], took.as_secs_f64());
}
