//! The text exposition format (Prometheus 0.0.4): for each family its
//! `# HELP` and `# TYPE` lines, then one line per series; a histogram's
//! series are its cumulative `_bucket{le=...}` lines, `_sum` and `_count`.

use crate::{Family, Kind};
use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;

fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

fn escape_value(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn labels(names: &[&str], values: &[String], extra: Option<(&str, &str)>) -> String {
    let mut parts: Vec<String> = names
        .iter()
        .zip(values)
        .map(|(n, v)| format!("{n}=\"{}\"", escape_value(v)))
        .collect();
    if let Some((n, v)) = extra {
        parts.push(format!("{n}=\"{v}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

fn number(v: f64) -> String {
    if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{v}")
    }
}

/// The whole exposition of `fams`.
pub fn text(fams: &[Arc<Family>]) -> String {
    let mut out = String::with_capacity(8 * 1024);
    for f in fams {
        let kind = match f.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        };
        let _ = writeln!(out, "# HELP {} {}", f.name, escape_help(f.help));
        let _ = writeln!(out, "# TYPE {} {kind}", f.name);
        let series = match f.series.read() {
            Ok(s) => s.clone(),
            Err(p) => p.into_inner().clone(),
        };
        for (values, s) in &series {
            match f.kind {
                Kind::Counter | Kind::Gauge => {
                    let _ = writeln!(
                        out,
                        "{}{} {}",
                        f.name,
                        labels(&f.label_names, values, None),
                        s.value.load(Ordering::Relaxed)
                    );
                }
                Kind::Histogram => {
                    let mut cumulative = 0u64;
                    for (b, n) in f.bounds.iter().zip(&s.buckets) {
                        cumulative += n.load(Ordering::Relaxed);
                        let l = labels(&f.label_names, values, Some(("le", &number(*b))));
                        let _ = writeln!(out, "{}_bucket{l} {cumulative}", f.name);
                    }
                    let count = s.count.load(Ordering::Relaxed);
                    let l = labels(&f.label_names, values, Some(("le", "+Inf")));
                    let _ = writeln!(out, "{}_bucket{l} {count}", f.name);
                    let l = labels(&f.label_names, values, None);
                    let sum = f64::from_bits(s.sum_bits.load(Ordering::Relaxed));
                    let _ = writeln!(out, "{}_sum{l} {}", f.name, number(sum));
                    let _ = writeln!(out, "{}_count{l} {count}", f.name);
                }
            }
        }
    }
    out
}
