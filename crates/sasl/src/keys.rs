//! SCRAM-SHA-256 keys (RFC 5802 §3): what the server stores for a user, how
//! it is derived from a password, its text form, and the fake keys of users
//! that have none.
//!
//! ```text
//!   SaltedPassword = Hi(SASLprep(password), salt, i)      Hi = PBKDF2-HMAC-SHA-256
//!   ClientKey      = HMAC(SaltedPassword, "Client Key")
//!   StoredKey      = SHA-256(ClientKey)                   stored
//!   ServerKey      = HMAC(SaltedPassword, "Server Key")   stored
//! ```
//!
//! Text form (the one PostgreSQL uses for the same keys), stored beside the
//! password hash by facteur-directory:
//! `SCRAM-SHA-256$<iterations>:<salt base64>$<StoredKey base64>:<ServerKey base64>`.
//!
//! SASLprep (RFC 4013) comes from the `stringprep` crate (MIT/Apache-2.0,
//! the one rust-postgres uses for its own SCRAM): writing the RFC 3454
//! tables again would be a few thousand lines of data to get wrong. It
//! treats the password as a "stored string" (unassigned code points are
//! refused), as RFC 5802 §2.2 asks for passwords and as Python's scramp
//! does. Its normalisation tables are newer than Unicode 3.2, which only
//! matters for code points unassigned in 3.2, which SASLprep refuses anyway.
//! A password SASLprep refuses gets no SCRAM keys ([`ScramCredentials::new`]
//! says so): such a user logs in with PLAIN or LOGIN only.
//!
//! Security: `Debug` never shows keys, salts or the secret. Knowing the
//! stored keys is enough to impersonate the server to a client, but not to
//! log in as the user (that takes ClientKey, which the server never keeps).

use crate::Failure;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// RFC 7677 §4: at least 4096 iterations.
pub const MIN_ITERATIONS: u32 = 4096;
/// The iteration count of new keys.
pub const DEFAULT_ITERATIONS: u32 = 10_000;
/// The largest count accepted in a stored record: the client pays for
/// every iteration, a corrupt record must not make it spin for hours.
pub const MAX_ITERATIONS: u32 = 10_000_000;
/// Salt length of new keys, in bytes (as in RFC 7677's example).
pub const SALT_LEN: usize = 16;
/// The longest salt accepted in a stored record.
const MAX_SALT: usize = 64;
/// The scheme prefix of the text form.
const PREFIX: &str = "SCRAM-SHA-256$";

/// One user's stored SCRAM-SHA-256 keys.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramCredentials {
    pub iterations: u32,
    pub salt: Vec<u8>,
    pub stored_key: [u8; 32],
    pub server_key: [u8; 32],
}

impl std::fmt::Debug for ScramCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramCredentials")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

/// Why a password gets no SCRAM keys.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SASLprep refuses this password (RFC 4013): {0}")]
pub struct PrepError(String);

/// SASLprep of a password or user name (RFC 4013, stored-string rules).
pub fn saslprep(s: &str) -> Result<std::borrow::Cow<'_, str>, PrepError> {
    stringprep::saslprep(s).map_err(|e| PrepError(e.to_string()))
}

pub(crate) fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC takes keys of any length: `new_from_slice` cannot fail for it.
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

pub(crate) fn sha256(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

impl ScramCredentials {
    /// Keys for a new password: a fresh random salt, [`DEFAULT_ITERATIONS`].
    pub fn new(password: &str) -> Result<Self, PrepError> {
        Self::derive(
            password,
            &rand::random::<[u8; SALT_LEN]>(),
            DEFAULT_ITERATIONS,
        )
    }

    /// Keys for `password` with this salt and iteration count.
    pub fn derive(password: &str, salt: &[u8], iterations: u32) -> Result<Self, PrepError> {
        let prepared = saslprep(password)?;
        let mut salted = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(prepared.as_bytes(), salt, iterations, &mut salted);
        let client_key = hmac(&salted, &[b"Client Key"]);
        Ok(ScramCredentials {
            iterations,
            salt: salt.to_vec(),
            stored_key: sha256(&client_key),
            server_key: hmac(&salted, &[b"Server Key"]),
        })
    }

    /// Reads the text form; `None` if it is not one (wrong scheme, bad
    /// base64, wrong key length, iteration count out of bounds).
    pub fn parse(text: &str) -> Option<Self> {
        let rest = text.strip_prefix(PREFIX)?;
        let (params, keys) = rest.split_once('$')?;
        let (iter, salt) = params.split_once(':')?;
        let (stored, server) = keys.split_once(':')?;
        if !iter.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let iterations: u32 = iter.parse().ok()?;
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
            return None;
        }
        let salt = STANDARD.decode(salt).ok()?;
        if salt.is_empty() || salt.len() > MAX_SALT {
            return None;
        }
        let key = |k: &str| -> Option<[u8; 32]> { STANDARD.decode(k).ok()?.try_into().ok() };
        Some(ScramCredentials {
            iterations,
            salt,
            stored_key: key(stored)?,
            server_key: key(server)?,
        })
    }

    /// Whether `password` gives these keys (for tests and tools; logins go
    /// through the exchange).
    pub fn matches(&self, password: &str) -> bool {
        Self::derive(password, &self.salt, self.iterations).is_ok_and(|c| {
            crate::scram::ct_eq(&c.stored_key, &self.stored_key)
                && crate::scram::ct_eq(&c.server_key, &self.server_key)
        })
    }
}

/// The text form (see the module documentation).
impl std::fmt::Display for ScramCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{PREFIX}{}:{}${}:{}",
            self.iterations,
            STANDARD.encode(&self.salt),
            STANDARD.encode(self.stored_key),
            STANDARD.encode(self.server_key)
        )
    }
}

impl std::str::FromStr for ScramCredentials {
    type Err = Failure;
    fn from_str(s: &str) -> Result<Self, Failure> {
        Self::parse(s).ok_or(Failure::Malformed("stored SCRAM"))
    }
}

/// A server secret, the same in every daemon and across restarts (the
/// directory keeps it), from which users without SCRAM keys get a fake
/// salt: the same one every time for the same name, so a client cannot
/// tell them from real users by asking twice.
#[derive(Clone)]
pub struct Secret([u8; 32]);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    pub fn new(bytes: [u8; 32]) -> Self {
        Secret(bytes)
    }

    /// A secret from stored bytes of any length (hashed to 32 bytes).
    pub fn from_slice(bytes: &[u8]) -> Self {
        Secret(sha256(bytes))
    }

    /// Fake keys for `user` (compared without regard to case, as logins
    /// are): a salt like a real one, the default iteration count, and keys
    /// no password gives (the exchange fails them anyway).
    pub(crate) fn fake(&self, user: &str) -> ScramCredentials {
        let name = user.to_lowercase();
        let salt = hmac(&self.0, &[b"facteur scram salt\0", name.as_bytes()]);
        ScramCredentials {
            iterations: DEFAULT_ITERATIONS,
            salt: salt[..SALT_LEN].to_vec(),
            stored_key: hmac(&self.0, &[b"facteur scram stored\0", name.as_bytes()]),
            server_key: hmac(&self.0, &[b"facteur scram server\0", name.as_bytes()]),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
mod tests {
    use super::*;

    /// RFC 7677 §3: user "user", password "pencil", this salt, 4096.
    pub(crate) fn rfc7677() -> ScramCredentials {
        let salt = STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        ScramCredentials::derive("pencil", &salt, 4096).unwrap()
    }

    #[test]
    fn text_form_round_trip() {
        let c = rfc7677();
        let t = c.to_string();
        assert!(
            t.starts_with("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"),
            "{t}"
        );
        assert_eq!(ScramCredentials::parse(&t), Some(c.clone()));
        assert_eq!(t.parse::<ScramCredentials>(), Ok(c.clone()));
        assert!(c.matches("pencil"));
        assert!(!c.matches("pencil "));
        assert!(!format!("{c:?}").contains(&STANDARD.encode(c.stored_key)));
    }

    #[test]
    fn bad_text_forms() {
        let good = rfc7677().to_string();
        let bad = [
            "",
            "SCRAM-SHA-1$4096:W22ZaJ0SNY7soEsUEjb6gQ==$a:b",
            &good.replace("4096", "4095"),
            &good.replace("4096", "+4096"),
            &good.replace("4096", "99999999999"),
            &good.replace("W22ZaJ0SNY7soEsUEjb6gQ==", ""),
            &good.replace("W22ZaJ0SNY7soEsUEjb6gQ==", "!!"),
            &good[..good.len() - 4],
            &good.replacen(':', ";", 1),
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA",
        ];
        for b in bad {
            assert_eq!(ScramCredentials::parse(b), None, "{b:?}");
        }
    }

    #[test]
    fn new_keys_and_saslprep() {
        let c = ScramCredentials::new("correct horse").unwrap();
        assert_eq!(c.iterations, DEFAULT_ITERATIONS);
        assert_eq!(c.salt.len(), SALT_LEN);
        assert!(c.matches("correct horse"));
        assert_ne!(ScramCredentials::new("correct horse").unwrap().salt, c.salt);
        // RFC 4013 §3 examples: SOFT HYPHEN maps to nothing, NBSP to space,
        // a control character is refused.
        assert_eq!(saslprep("I\u{ad}X").unwrap(), "IX");
        assert_eq!(saslprep("a\u{a0}b").unwrap(), "a b");
        assert_eq!(saslprep("\u{aa}").unwrap(), "a");
        assert_eq!(saslprep("\u{2168}").unwrap(), "IX");
        assert!(saslprep("\u{7}").is_err());
        assert!(saslprep("\u{627}1").is_err());
        assert!(ScramCredentials::new("bell\u{7}").is_err());
        // Prepared alike, same keys.
        let salt = [1u8; 16];
        assert_eq!(
            ScramCredentials::derive("I\u{ad}X", &salt, 4096).unwrap(),
            ScramCredentials::derive("IX", &salt, 4096).unwrap()
        );
    }

    #[test]
    fn fake_keys_are_stable_per_name_and_secret() {
        let s = Secret::new([9; 32]);
        let a = s.fake("Nobody@Example.test");
        assert_eq!(a, s.fake("nobody@example.test"));
        assert_ne!(a.salt, s.fake("other@example.test").salt);
        assert_ne!(
            a.salt,
            Secret::new([8; 32]).fake("nobody@example.test").salt
        );
        assert_eq!(a.iterations, DEFAULT_ITERATIONS);
        assert_eq!(a.salt.len(), SALT_LEN);
        assert_eq!(format!("{s:?}"), "Secret(..)");
    }
}
