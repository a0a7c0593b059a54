//! SRS, the Sender Rewriting Scheme: when an alias forwards a stranger's
//! message to another domain, the envelope sender is rewritten into an
//! address of ours, so that the destination's SPF check sees our server
//! sending for our domain, and a bounce comes back to us, who send it on to
//! the original sender.
//!
//! The form (SRS0, as in the scheme's paper and the common
//! implementations, with our own hash and time stamp encoding):
//!
//! ```text
//! SRS0=HHHHHH=TT=example.net=alice@mail.example.org
//!      hash   day  original domain and local part   our SRS domain
//! ```
//!
//! - `TT`: the day (days since 1970, modulo 1024) in two base32 letters;
//!   an address older than `max_age` days is refused, so a harvested one
//!   stops working.
//! - `HHHHHH`: the first 30 bits of HMAC-SHA256(secret, "TT=domain=local"
//!   in lower case), six base32 letters: only we can make an address that
//!   reverses, so the SRS domain is no open relay. Lower case throughout:
//!   servers on the way may change the case of a local part.
//!
//! Pure code: the secret and the time are given. [`forward`] is what qmgr
//! sends as MAIL FROM; [`reverse`] is what smtpd accepts at RCPT and qmgr
//! resolves to the original sender.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// RFC 4648 base32 alphabet, lower case.
const B32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
/// The longest local part we make (RFC 5321 §4.5.3.1.1).
pub const MAX_LOCAL: usize = 64;

/// The SRS settings of one server.
#[derive(Clone)]
pub struct Srs {
    secret: Vec<u8>,
    /// Our SRS domain, lower case.
    pub domain: String,
    /// Days an address stays valid.
    pub max_age_days: u32,
}

impl std::fmt::Debug for Srs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Srs")
            .field("domain", &self.domain)
            .field("max_age_days", &self.max_age_days)
            .finish_non_exhaustive()
    }
}

/// Why an SRS address does not reverse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SrsError {
    #[error("not an SRS address")]
    NotSrs,
    #[error("SRS address with a bad hash")]
    BadHash,
    #[error("SRS address too old")]
    Expired,
}

fn b32(bits: u64, letters: usize) -> String {
    (0..letters)
        .rev()
        .map(|i| B32[((bits >> (5 * i)) & 31) as usize] as char)
        .collect()
}

fn b32_value(s: &str) -> Option<u64> {
    s.bytes().try_fold(0u64, |acc, c| {
        let v = B32.iter().position(|&x| x == c.to_ascii_lowercase())?;
        Some(acc << 5 | v as u64)
    })
}

impl Srs {
    pub fn new(secret: Vec<u8>, domain: &str, max_age_days: u32) -> Srs {
        Srs {
            secret,
            domain: domain.trim_end_matches('.').to_ascii_lowercase(),
            max_age_days: max_age_days.clamp(1, 1000),
        }
    }

    fn hash(&self, stamp: &str, domain: &str, local: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(
            format!("{stamp}={domain}={local}")
                .to_ascii_lowercase()
                .as_bytes(),
        );
        let out = mac.finalize().into_bytes();
        let bits = u64::from_be_bytes([out[0], out[1], out[2], out[3], 0, 0, 0, 0]) >> 34;
        b32(bits, 6)
    }

    /// Whether `addr` is in our SRS domain and looks like an SRS address
    /// (it may still not reverse).
    pub fn is_ours(&self, addr: &str) -> bool {
        addr.rsplit_once('@').is_some_and(|(l, d)| {
            d.trim_end_matches('.').eq_ignore_ascii_case(&self.domain)
                && l.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("srs0="))
        })
    }

    /// The address to send as for `sender` on `day` (days since 1970);
    /// `None` when it cannot be made (no domain, or a local part that
    /// would be too long).
    pub fn forward(&self, sender: &str, day: i64) -> Option<String> {
        let (local, domain) = sender.rsplit_once('@')?;
        // A domain never holds `=`; refusing one keeps the hashed text
        // `TT=domain=local` unambiguous (seen while writing the fuzz target).
        if local.is_empty() || domain.is_empty() || domain.contains('=') || self.is_ours(sender) {
            return None;
        }
        let stamp = b32(day.rem_euclid(1024) as u64, 2);
        let hash = self.hash(&stamp, domain, local);
        let new_local = format!("SRS0={hash}={stamp}={domain}={local}");
        (new_local.len() <= MAX_LOCAL).then(|| format!("{new_local}@{}", self.domain))
    }

    /// The original sender of an SRS address of ours, checked on `day`.
    pub fn reverse(&self, addr: &str, day: i64) -> Result<String, SrsError> {
        if !self.is_ours(addr) {
            return Err(SrsError::NotSrs);
        }
        let (local, _) = addr.rsplit_once('@').ok_or(SrsError::NotSrs)?;
        let mut parts = local[5..].splitn(4, '=');
        let (Some(hash), Some(stamp), Some(domain), Some(orig)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(SrsError::NotSrs);
        };
        if hash.len() != 6 || stamp.len() != 2 || domain.is_empty() || orig.is_empty() {
            return Err(SrsError::NotSrs);
        }
        let want = self.hash(stamp, domain, orig);
        // Not a secret comparison that matters much (30 bits, checked per
        // RCPT), but constant-time all the same.
        let same = want
            .bytes()
            .zip(hash.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b.to_ascii_lowercase()));
        if same != 0 {
            return Err(SrsError::BadHash);
        }
        let then = b32_value(stamp).ok_or(SrsError::NotSrs)? as i64;
        let age = (day.rem_euclid(1024) - then).rem_euclid(1024);
        if age > i64::from(self.max_age_days) {
            return Err(SrsError::Expired);
        }
        Ok(format!("{orig}@{domain}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn srs() -> Srs {
        Srs::new(b"secret".to_vec(), "Mail.Example.ORG.", 21)
    }

    #[test]
    fn round_trip_case_insensitive() {
        let s = srs();
        let day = 20_000;
        let f = s.forward("Alice.B=c@example.net", day).unwrap();
        assert!(
            f.starts_with("SRS0=") && f.ends_with("=example.net=Alice.B=c@mail.example.org"),
            "{f}"
        );
        assert!(s.is_ours(&f));
        assert_eq!(s.reverse(&f, day).unwrap(), "Alice.B=c@example.net");
        assert_eq!(
            s.reverse(&f.to_uppercase(), day + 21).unwrap(),
            "ALICE.B=C@EXAMPLE.NET"
        );
        assert_eq!(
            s.reverse(&f.to_lowercase(), day + 3).unwrap(),
            "alice.b=c@example.net"
        );
    }

    #[test]
    fn forgeries_and_old_addresses_are_refused() {
        let s = srs();
        let f = s.forward("bob@example.net", 5000).unwrap();
        assert_eq!(s.reverse(&f, 5022), Err(SrsError::Expired));
        // Another target with the same hash.
        let forged = f.replace("=bob@", "=eve@");
        assert_eq!(s.reverse(&forged, 5000), Err(SrsError::BadHash));
        // Another secret.
        let other = Srs::new(b"other".to_vec(), "mail.example.org", 21);
        assert_eq!(other.reverse(&f, 5000), Err(SrsError::BadHash));
        for bad in [
            "bob@mail.example.org",
            "SRS0=@mail.example.org",
            "SRS0=abcdef=aa=example.net@mail.example.org",
            "SRS0=abcdef=a=example.net=bob@mail.example.org",
            "SRS0=abcdef=!!=example.net=bob@mail.example.org",
            "SRS0=abcdef=aa=example.net=bob@elsewhere.org",
            "SRS0=\u{e9}\u{e9}\u{e9}=aa=example.net=bob@mail.example.org",
        ] {
            assert!(s.reverse(bad, 5000).is_err(), "{bad}");
        }
    }

    #[test]
    fn what_cannot_be_rewritten() {
        let s = srs();
        assert_eq!(s.forward("", 1), None);
        assert_eq!(s.forward("nodomain", 1), None);
        assert_eq!(s.forward("a@x=y", 1), None);
        assert_eq!(
            s.forward(&format!("{}@example.net", "x".repeat(60)), 1),
            None
        );
        let f = s.forward("a@example.net", 1).unwrap();
        assert_eq!(s.forward(&f, 1), None, "ours already");
    }

    #[test]
    fn the_day_wraps() {
        let s = srs();
        let f = s.forward("a@example.net", 1023).unwrap();
        assert_eq!(s.reverse(&f, 1024 + 5).unwrap(), "a@example.net");
    }
}
