//! What the SMTP/LMTP core counts (facteur-metrics): refusals by
//! listener, stage and status code, and messages received with their
//! sizes. The programs on the core register their listeners at start
//! ([`register`]), so every series exists at zero.

use facteur_metrics::Family;
use facteur_smtp_codec::Reply;
use std::sync::{Arc, OnceLock};

struct Families {
    deliveries: Arc<Family>,
    rejects: Arc<Family>,
    messages: Arc<Family>,
    sizes: Arc<Family>,
}

fn families() -> &'static Families {
    static F: OnceLock<Families> = OnceLock::new();
    F.get_or_init(|| {
        let r = facteur_metrics::global();
        Families {
            deliveries: r.counter(
                "facteur_lmtp_deliveries_total",
                "LMTP: the reply for each recipient after the data: delivered, deferred, refused, over_quota.",
                &["result"],
            ),
            rejects: r.counter(
                "facteur_smtp_rejects_total",
                "Replies of 4xx and 5xx, per listener, stage (connect, helo, auth, mail, rcpt, data, other) and status code.",
                &["listener", "stage", "code"],
            ),
            messages: r.counter(
                "facteur_smtp_messages_total",
                "Messages received (a 2xx after the data), per listener.",
                &["listener"],
            ),
            sizes: r.histogram(
                "facteur_smtp_message_size_bytes",
                "Sizes of the messages received, per listener.",
                &["listener"],
                facteur_metrics::SIZE_BUCKETS,
            ),
        }
    })
}

/// The stages of a session.
pub const STAGES: &[&str] = &["connect", "helo", "auth", "mail", "rcpt", "data", "other"];
/// The codes registered at zero (others appear when first given).
const COMMON_CODES: &[&str] = &[
    "4.3.0", "4.7.0", "4.7.1", "4.7.5", "5.1.1", "5.5.1", "5.5.2", "5.6.0", "5.7.1", "5.7.25",
];

/// Makes `listener`'s series exist, at zero.
pub fn register(listener: &str) {
    let f = families();
    if listener == "lmtp" {
        for r in LMTP_RESULTS {
            f.deliveries.register(&[r]);
        }
    }
    f.messages.register(&[listener]);
    f.sizes.register(&[listener]);
    for stage in STAGES {
        for code in COMMON_CODES {
            f.rejects.register(&[listener, stage, code]);
        }
    }
}

/// The code label of a reply: its enhanced code, else its basic one.
fn code(r: &Reply) -> String {
    match r.enhanced {
        Some((a, b, c)) => format!("{a}.{b}.{c}"),
        None => r.code.to_string(),
    }
}

/// A reply sent at `stage`: counted when it refuses.
pub(crate) fn reply(listener: &str, stage: &str, r: &Reply) {
    if r.code >= 400 {
        families().rejects.inc(&[listener, stage, &code(r)]);
    }
}

const LMTP_RESULTS: &[&str] = &["delivered", "deferred", "refused", "over_quota"];

/// LMTP: one recipient's reply after the data.
pub(crate) fn lmtp_delivery(r: &Reply) {
    let result = match (r.code / 100, r.enhanced) {
        (4 | 5, Some((_, 2, 2))) => "over_quota",
        (2, _) => "delivered",
        (4, _) => "deferred",
        _ => "refused",
    };
    families().deliveries.inc(&[result]);
}

/// A message received.
pub(crate) fn message(listener: &str, size: u64) {
    let f = families();
    f.messages.inc(&[listener]);
    f.sizes.observe(&[listener], size as f64);
}
