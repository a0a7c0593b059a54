//! facteur-metrics: counters, gauges and histograms each daemon keeps, and
//! their Prometheus text exposition (version 0.0.4, which Prometheus,
//! VictoriaMetrics and `prometheus_client`'s parser read), served over
//! HTTP by [`serve`] when `[metrics] listen` is set.
//!
//! Every series a daemon can report is registered at start-up, at zero
//! ([`Family::register`]): a series that appears only after its first
//! event breaks alerting (`rate()` over a missing series is nothing, not
//! zero). Labels are low-cardinality by construction: listener names,
//! stages, reasons from fixed lists, never addresses or domains.
//!
//! Written here rather than taken from the `prometheus` crate: that one
//! pulls protobuf and a registry of its own design for a few hundred lines
//! of what we need; the exposition format is plain text.

mod http;
mod render;

pub use http::{Handler, response, serve, serve_with};

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

/// What a family measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// One series: a counter, a gauge, or a histogram's buckets.
#[derive(Debug)]
pub struct Series {
    value: AtomicI64,
    /// Histograms: the count of each bucket (not cumulative), the sum
    /// (f64 bits) and the count.
    buckets: Vec<AtomicU64>,
    sum_bits: AtomicU64,
    count: AtomicU64,
}

/// A named metric with its label names and series.
#[derive(Debug)]
pub struct Family {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    label_names: Vec<&'static str>,
    /// Histograms: the upper bounds of the buckets (without +Inf).
    bounds: Vec<f64>,
    series: RwLock<SeriesList>,
}

impl Family {
    fn new_series(&self) -> Series {
        Series {
            value: AtomicI64::new(0),
            buckets: self.bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            sum_bits: AtomicU64::new(0f64.to_bits()),
            count: AtomicU64::new(0),
        }
    }

    /// The series of these label values (created at zero if new). The
    /// values must be as many as the label names.
    pub fn with(&self, values: &[&str]) -> Arc<Series> {
        debug_assert_eq!(values.len(), self.label_names.len(), "{}", self.name);
        if let Ok(m) = self.series.read()
            && let Some(s) = find(&m, values)
        {
            return s;
        }
        let mut m = self.series.write().unwrap_or_else(|p| p.into_inner());
        match m.binary_search_by(|(k, _)| cmp_key(k, values)) {
            Ok(i) => Arc::clone(&m[i].1),
            Err(i) => {
                let key: Vec<String> = values.iter().map(|v| v.to_string()).collect();
                let s = Arc::new(self.new_series());
                m.insert(i, (key, Arc::clone(&s)));
                s
            }
        }
    }

    /// Makes a series exist at zero.
    pub fn register(&self, values: &[&str]) {
        self.with(values);
    }

    /// Adds one to a counter's series.
    pub fn inc(&self, values: &[&str]) {
        self.with(values).add(1);
    }

    /// The current value of a counter or gauge series (tests).
    pub fn get(&self, values: &[&str]) -> i64 {
        self.with(values).value.load(Ordering::Relaxed)
    }
}

/// Orders a stored key against label values, as `[String]` orders.
fn cmp_key(k: &[String], values: &[&str]) -> std::cmp::Ordering {
    k.iter().map(String::as_str).cmp(values.iter().copied())
}

/// Series sorted by their label values: found by binary search, without
/// allocating a key.
type SeriesList = Vec<(Vec<String>, Arc<Series>)>;

fn find(m: &SeriesList, values: &[&str]) -> Option<Arc<Series>> {
    m.binary_search_by(|(k, _)| cmp_key(k, values))
        .ok()
        .map(|i| Arc::clone(&m[i].1))
}

impl Series {
    /// Counter: adds `n`.
    pub fn add(&self, n: u64) {
        self.value.fetch_add(n as i64, Ordering::Relaxed);
    }

    /// Gauge: sets the value.
    pub fn set(&self, v: i64) {
        self.value.store(v, Ordering::Relaxed);
    }

    /// Gauge: adds (or, negative, removes).
    pub fn shift(&self, d: i64) {
        self.value.fetch_add(d, Ordering::Relaxed);
    }

    pub fn get(&self) -> i64 {
        self.value.load(Ordering::Relaxed)
    }

    /// Histogram: one observation (`bounds` are the family's).
    fn observe_in(&self, bounds: &[f64], v: f64) {
        if let Some(i) = bounds.iter().position(|b| v <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let mut cur = self.sum_bits.load(Ordering::Relaxed);
        loop {
            let new = (f64::from_bits(cur) + v).to_bits();
            match self.sum_bits.compare_exchange_weak(
                cur,
                new,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(x) => cur = x,
            }
        }
    }
}

impl Family {
    /// Histogram: records `v` in the series of these label values.
    pub fn observe(&self, values: &[&str], v: f64) {
        self.with(values).observe_in(&self.bounds, v);
    }
}

/// A function run before each exposition (gauges read from elsewhere:
/// the queue's size, a library's counters).
type Collector = Box<dyn Fn() + Send + Sync>;

/// A daemon's metrics.
#[derive(Default)]
pub struct Registry {
    families: Mutex<Vec<Arc<Family>>>,
    collectors: Mutex<Vec<Collector>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Registry")
    }
}

/// Seconds: the buckets of durations.
pub const DURATION_BUCKETS: &[f64] = &[0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0];
/// Bytes: the buckets of message sizes.
pub const SIZE_BUCKETS: &[f64] = &[
    1024.0,
    4096.0,
    16384.0,
    65536.0,
    262_144.0,
    1_048_576.0,
    4_194_304.0,
    16_777_216.0,
    67_108_864.0,
];

impl Registry {
    fn family(
        &self,
        name: &'static str,
        help: &'static str,
        kind: Kind,
        labels: &[&'static str],
        bounds: &[f64],
    ) -> Arc<Family> {
        let mut fams = self.families.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = fams.iter().find(|f| f.name == name) {
            return Arc::clone(f);
        }
        let f = Arc::new(Family {
            name,
            help,
            kind,
            label_names: labels.to_vec(),
            bounds: bounds.to_vec(),
            series: RwLock::new(Vec::new()),
        });
        if labels.is_empty() {
            f.register(&[]);
        }
        fams.push(Arc::clone(&f));
        f
    }

    /// A counter family (the name ends in `_total`); asking again for a
    /// name gives the same family.
    pub fn counter(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[&'static str],
    ) -> Arc<Family> {
        self.family(name, help, Kind::Counter, labels, &[])
    }

    pub fn gauge(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[&'static str],
    ) -> Arc<Family> {
        self.family(name, help, Kind::Gauge, labels, &[])
    }

    pub fn histogram(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[&'static str],
        bounds: &[f64],
    ) -> Arc<Family> {
        self.family(name, help, Kind::Histogram, labels, bounds)
    }

    /// Runs `f` before each exposition.
    pub fn on_collect(&self, f: impl Fn() + Send + Sync + 'static) {
        self.collectors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Box::new(f));
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        for c in self
            .collectors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            c();
        }
        let fams: Vec<Arc<Family>> = self
            .families
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        render::text(&fams)
    }
}

/// The daemon's registry (one per process).
pub fn global() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(Registry::default)
}

/// The git revision this was built from (`unknown` outside a checkout).
pub const REVISION: &str = env!("FACTEUR_REVISION");

/// `facteur_build_info{daemon, version, revision} 1`.
pub fn build_info(daemon: &str, version: &str, revision: &str) {
    global()
        .gauge(
            "facteur_build_info",
            "The daemon, its version and the git revision it was built from.",
            &["daemon", "version", "revision"],
        )
        .with(&[daemon, version, revision])
        .set(1);
}

#[cfg(test)]
mod tests;
