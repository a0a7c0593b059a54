//! facteur-smtpd's metrics beyond the SMTP core's and the accept loop's:
//! the screen's decisions and the scanners' verdicts (their counters,
//! copied at each scrape), and mail authentication results (SPF of the
//! sender, each DKIM signature, DMARC), all registered at zero at start.

use crate::Context;
use std::sync::Arc;

const OUTCOMES: &[&str] = &[
    "none",
    "pass",
    "fail",
    "softfail",
    "neutral",
    "temperror",
    "permerror",
];

fn auth_results() -> Arc<facteur_metrics::Family> {
    facteur_metrics::global().counter(
        "facteur_auth_results_total",
        "Mail authentication results of checked messages: method (spf, dkim, dmarc) and result.",
        &["method", "result"],
    )
}

/// Registers smtpd's series and the collectors that copy the screen's
/// and the scanners' counters.
pub fn register(ctx: &Arc<Context>, listeners: &[&str]) {
    for l in listeners {
        facteur_smtp_server::metrics::register(l);
    }
    let a = auth_results();
    for m in ["spf", "dkim", "dmarc"] {
        for o in OUTCOMES {
            a.register(&[m, o]);
        }
    }
    let r = facteur_metrics::global();
    let screen = r.counter(
        "facteur_screen_decisions_total",
        "Decisions of the screen (pregreet, DNS lists, HELO, greylisting, ...): check and result.",
        &["check", "result"],
    );
    let scan = r.counter(
        "facteur_scan_results_total",
        "Verdicts and errors of the content scanners: scanner and result.",
        &["scanner", "result"],
    );
    let copy = |family: &facteur_metrics::Family, counters: &facteur_screen::Counters| {
        for (check, result, n) in counters.snapshot() {
            family.with(&[&check, &result]).set(n as i64);
        }
    };
    if let Some(s) = &ctx.screen {
        copy(&screen, &s.counters);
    }
    copy(&scan, &ctx.scan_counters);
    let ctx = Arc::clone(ctx);
    r.on_collect(move || {
        if let Some(s) = &ctx.screen {
            copy(&screen, &s.counters);
        }
        copy(&scan, &ctx.scan_counters);
    });
}

/// The results of one checked message.
pub fn authentication(spf: Option<&str>, dkim: &[&str], dmarc: &str) {
    let a = auth_results();
    if let Some(s) = spf {
        a.inc(&["spf", s]);
    }
    for d in dkim {
        a.inc(&["dkim", d]);
    }
    a.inc(&["dmarc", dmarc]);
}
