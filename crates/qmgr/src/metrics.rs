//! facteur-qmgr's metrics: delivery attempts by destination class (local
//! over LMTP, remote over SMTP) and result, their duration, the DSNs
//! made, and the queue — messages per queue directory and the age of the
//! oldest, read from the spool at each scrape (queue ids sort by their
//! creation time, so the oldest is the smallest id: no file is opened).

use facteur_spool::{QueueName, Spool};
use std::sync::Arc;
use std::time::Duration;

fn deliveries() -> Arc<facteur_metrics::Family> {
    facteur_metrics::global().counter(
        "facteur_deliveries_total",
        "Recipients' delivery attempts, by destination class (local, remote) and result (delivered, deferred, bounced).",
        &["class", "result"],
    )
}

fn durations() -> Arc<facteur_metrics::Family> {
    facteur_metrics::global().histogram(
        "facteur_delivery_duration_seconds",
        "Time of one delivery transaction (one message to one LMTP server or one remote domain).",
        &["class"],
        facteur_metrics::DURATION_BUCKETS,
    )
}

fn dsns() -> Arc<facteur_metrics::Family> {
    facteur_metrics::global().counter(
        "facteur_dsn_total",
        "Delivery status notifications made: bounce (failure) or delay.",
        &["kind"],
    )
}

/// Registers qmgr's series and the collector of the queue's figures.
pub fn register(spool: &Spool) {
    let d = deliveries();
    for class in ["local", "remote"] {
        for r in ["delivered", "deferred", "bounced"] {
            d.register(&[class, r]);
        }
        durations().register(&[class]);
    }
    for kind in ["bounce", "delay"] {
        dsns().register(&[kind]);
    }
    let r = facteur_metrics::global();
    let size = r.gauge(
        "facteur_queue_messages",
        "Messages in each queue directory.",
        &["queue"],
    );
    let oldest = r.gauge(
        "facteur_queue_oldest_seconds",
        "Age of the oldest message in each queue directory (0 when empty).",
        &["queue"],
    );
    let spool = spool.clone();
    let collect = move || {
        let now = facteur_util::date::now_unix();
        for q in &QueueName::ALL {
            let ids = spool.list(*q).unwrap_or_default();
            size.with(&[q.as_str()]).set(ids.len() as i64);
            let age = ids
                .iter()
                .filter_map(|id| facteur_util::id::id_time(id))
                .min()
                .map_or(0, |t| (now - t).max(0));
            oldest.with(&[q.as_str()]).set(age);
        }
    };
    collect();
    r.on_collect(collect);
}

/// A recipient's outcome.
pub fn delivery(class: &str, result: &str) {
    deliveries().inc(&[class, result]);
}

/// One delivery transaction's time.
pub fn duration(class: &str, d: Duration) {
    durations().observe(&[class], d.as_secs_f64());
}

/// A DSN made (`bounce` or `delay`).
pub fn dsn(kind: &str) {
    dsns().inc(&[kind]);
}
