//! Delivery status notification parameters (RFC 3461) and the body types of
//! MAIL FROM (RFC 6152, RFC 3030): the values every program that accepts,
//! queues, delivers or shows mail speaks of (smtpd and sendmail write them,
//! the spool stores them, qmgr obeys them, facteurctl and mailq show them).
//!
//! Each type has one [`Display`](std::fmt::Display): the keyword as it
//! appears on the wire (`FULL`, `8BITMIME`, `SUCCESS,FAILURE`), or, for
//! [`RcptStatus`], the word facteurctl and mailq print. Pure code.

use std::fmt;

/// RFC 3461 RET: what a failure DSN should return.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ret {
    Full,
    Hdrs,
}

impl fmt::Display for Ret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Ret::Full => "FULL",
            Ret::Hdrs => "HDRS",
        })
    }
}

/// The body type declared with MAIL FROM BODY= (RFC 6152, RFC 3030).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum BodyType {
    #[default]
    SevenBit,
    EightBitMime,
    BinaryMime,
}

impl fmt::Display for BodyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BodyType::SevenBit => "7BIT",
            BodyType::EightBitMime => "8BITMIME",
            BodyType::BinaryMime => "BINARYMIME",
        })
    }
}

/// RFC 3461 NOTIFY. All false = not given (default behaviour:
/// failure + delay).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Notify {
    pub success: bool,
    pub failure: bool,
    pub delay: bool,
    pub never: bool,
}

impl Notify {
    /// Whether NOTIFY was given at all.
    pub fn is_given(self) -> bool {
        self.success || self.failure || self.delay || self.never
    }

    /// Parses the value of NOTIFY (`NEVER` or a comma list of `SUCCESS`,
    /// `FAILURE`, `DELAY`; any case). `None` when a word is unknown, a word
    /// repeats nothing wrong but NEVER is mixed with the others, or it is
    /// empty (RFC 3461 §4.1).
    pub fn parse(s: &str) -> Option<Notify> {
        let mut n = Notify::default();
        for word in s.split(',') {
            let w = word.trim();
            if w.eq_ignore_ascii_case("never") {
                n.never = true;
            } else if w.eq_ignore_ascii_case("success") {
                n.success = true;
            } else if w.eq_ignore_ascii_case("failure") {
                n.failure = true;
            } else if w.eq_ignore_ascii_case("delay") {
                n.delay = true;
            } else {
                return None;
            }
        }
        if n.never && (n.success || n.failure || n.delay) {
            return None;
        }
        Some(n)
    }
}

impl fmt::Display for Notify {
    /// `NEVER`, or the comma list in RFC order; empty when not given.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.never {
            return f.write_str("NEVER");
        }
        let mut sep = "";
        for (on, word) in [
            (self.success, "SUCCESS"),
            (self.failure, "FAILURE"),
            (self.delay, "DELAY"),
        ] {
            if on {
                f.write_str(sep)?;
                f.write_str(word)?;
                sep = ",";
            }
        }
        Ok(())
    }
}

/// Where a recipient stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RcptStatus {
    /// Not tried yet.
    #[default]
    Pending,
    /// Final: accepted by the next hop or the store.
    Delivered,
    /// Final: rejected permanently (a bounce is due or was sent).
    Bounced,
    /// Still pending, with an earlier temporary failure.
    Deferred,
}

impl RcptStatus {
    /// Delivered or Bounced.
    pub fn is_final(self) -> bool {
        matches!(self, RcptStatus::Delivered | RcptStatus::Bounced)
    }
}

impl fmt::Display for RcptStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RcptStatus::Pending => "pending",
            RcptStatus::Delivered => "delivered",
            RcptStatus::Bounced => "bounced",
            RcptStatus::Deferred => "deferred",
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn notify_round_trip() {
        for s in [
            "NEVER",
            "SUCCESS",
            "SUCCESS,FAILURE",
            "FAILURE,DELAY",
            "DELAY",
        ] {
            assert_eq!(Notify::parse(s).unwrap().to_string(), s);
        }
        assert_eq!(
            Notify::parse("delay, success").unwrap().to_string(),
            "SUCCESS,DELAY"
        );
        assert_eq!(Notify::parse("never,success"), None);
        assert_eq!(Notify::parse("sometimes"), None);
        assert_eq!(Notify::parse(""), None);
        assert_eq!(Notify::default().to_string(), "");
        assert!(!Notify::default().is_given());
    }

    #[test]
    fn keywords() {
        assert_eq!(Ret::Hdrs.to_string(), "HDRS");
        assert_eq!(BodyType::EightBitMime.to_string(), "8BITMIME");
        assert_eq!(RcptStatus::Deferred.to_string(), "deferred");
        assert!(RcptStatus::Bounced.is_final() && !RcptStatus::Deferred.is_final());
    }
}
