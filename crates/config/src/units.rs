//! Human-friendly units in facteur.toml: sizes (`52428800`, `"50M"`, `"1G"`)
//! and durations (`300`, `"5m"`, `"1h"`, `"5d"`). Integers are bytes and
//! seconds. Suffixes are binary for sizes (K = 1024).

use serde::{Deserialize, Deserializer, de};
use std::fmt;

/// A size in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

/// A duration in whole seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Seconds(pub u64);

impl Seconds {
    pub fn duration(self) -> std::time::Duration {
        std::time::Duration::from_secs(self.0)
    }
}

fn parse_suffixed(s: &str, units: &[(char, u64)]) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = match s.chars().last() {
        Some(c) if c.is_ascii_alphabetic() => {
            let m = units.iter().find(|(u, _)| u.eq_ignore_ascii_case(&c))?.1;
            (&s[..s.len() - 1], m)
        }
        _ => (s, 1),
    };
    num.trim().parse::<u64>().ok()?.checked_mul(mult)
}

/// Parses a size: bytes, or a number with a K/M/G suffix (binary).
pub fn parse_size(s: &str) -> Option<u64> {
    parse_suffixed(
        s,
        &[('b', 1), ('k', 1 << 10), ('m', 1 << 20), ('g', 1 << 30)],
    )
}

/// Parses a duration: seconds, or a number with an s/m/h/d suffix.
pub fn parse_duration(s: &str) -> Option<u64> {
    parse_suffixed(s, &[('s', 1), ('m', 60), ('h', 3600), ('d', 86400)])
}

struct UnitVisitor {
    what: &'static str,
    parse: fn(&str) -> Option<u64>,
}

impl de::Visitor<'_> for UnitVisitor {
    type Value = u64;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.what)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        u64::try_from(v).map_err(|_| E::custom(format!("{v} is negative; expected {}", self.what)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        Ok(v)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
        (self.parse)(v).ok_or_else(|| E::custom(format!("{v:?} is not {}", self.what)))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UnitVisitor {
            what: "a size (bytes, or a string such as \"50M\")",
            parse: parse_size,
        })
        .map(ByteSize)
    }
}

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UnitVisitor {
            what: "a duration (seconds, or a string such as \"5m\")",
            parse: parse_duration,
        })
        .map(Seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("50M"), Some(50 << 20));
        assert_eq!(parse_size("1g"), Some(1 << 30));
        assert_eq!(parse_size("10"), Some(10));
        assert_eq!(parse_size("10X"), None);
        assert_eq!(parse_size("M"), None);
        assert_eq!(parse_size("99999999999999999999G"), None);
        assert_eq!(parse_duration("5m"), Some(300));
        assert_eq!(parse_duration("5d"), Some(432_000));
        assert_eq!(parse_duration("-5"), None);
    }
}
