//! facteur-sasl: the server side of the SASL mechanisms facteur offers, as
//! pure state machines (no I/O), shared by smtpd (AUTH, RFC 4954), imapd
//! (AUTHENTICATE, RFC 9051 §6.2.2, SASL-IR RFC 4959) and pop3d (AUTH,
//! RFC 5034).
//!
//! Layout:
//! - `lib.rs`: [`Mechanism`], [`Step`], [`Failure`], the identity rule
//!   ([`authorize`]) and the size bounds;
//! - [`exchange`]: [`Exchange`], one authentication exchange, whatever the
//!   mechanism: `start`, then `step` with each client response, and the
//!   caller's answers to [`Step::NeedCredentials`] ([`Exchange::credentials`])
//!   and [`Step::Verify`] ([`Exchange::verified`]);
//! - `plain.rs`: PLAIN (RFC 4616) and LOGIN (draft-murchison-sasl-login:
//!   the prompts `Username:` and `Password:`);
//! - `scram.rs`: SCRAM-SHA-256 (RFC 5802, RFC 7677), without channel binding;
//! - [`keys`]: [`ScramCredentials`] (what is stored beside the password
//!   hash: salt, iteration count, StoredKey, ServerKey, and their text form),
//!   SASLprep, and the [`Secret`] from which unknown users get fake ones;
//! - [`client`]: a minimal SCRAM-SHA-256 client, for tests and tools;
//! - [`codec`]: base64 of challenges and responses, `*` (cancel), `=` (an
//!   empty initial response), each protocol wraps them in its own lines.
//!
//! How a session drives an exchange: [`Exchange::start`] with the mechanism
//! and the initial response, if any; then, until [`Step::Success`] or
//! [`Step::Failure`]: send a [`Step::Challenge`] and `step` with the
//! client's decoded answer (a `*` calls [`Exchange::cancel`]); on
//! [`Step::NeedCredentials`] look the user's SCRAM record up and call
//! `credentials` (`None` for an unknown user or one without SCRAM keys); on
//! [`Step::Verify`] check the password and call `verified`. facteur-auth
//! does all this against the directory, with the login slow-down.
//!
//! Invariants: one rule for the authorization identity in every mechanism
//! ([`authorize`]: when given, it must be the authentication identity,
//! compared without regard to case), so no login acts for another user;
//! every client message is refused above [`MAX_RESPONSE`] bytes and every
//! challenge is under [`MAX_CHALLENGE`] bytes, so memory per exchange is
//! bounded; no input makes this crate panic; a method called out of turn
//! fails the exchange ([`Failure::OutOfOrder`]).
//!
//! Needs: nothing from outside but randomness (rand's thread generator,
//! seeded by the OS) for SCRAM server nonces and the salts of new keys;
//! tests and the fuzz target fix the nonce ([`Exchange::start_with_nonce`]).
//!
//! Standards: RFC 4422 (SASL), RFC 4616 (PLAIN), RFC 5802 and RFC 7677
//! (SCRAM-SHA-256), RFC 4013 (SASLprep), draft-murchison-sasl-login (LOGIN).
//!
//! Security: SCRAM answers an unknown user, and a user whose password was
//! set before SCRAM keys were stored, with a salt and an iteration count
//! derived from the user name and a server [`Secret`], and fails only at the
//! end, exactly as for a wrong password: the exchange does not tell which
//! logins exist. Proofs are compared in constant time. Passwords, keys and
//! the secret never appear in `Debug` output; this crate logs nothing.

pub mod client;
pub mod codec;
pub mod exchange;
pub mod keys;
mod plain;
mod scram;

pub use codec::{Response, decode_initial, decode_response, encode};
pub use exchange::Exchange;
pub use keys::{ScramCredentials, Secret};

/// The largest client message (decoded) accepted: a PLAIN message of three
/// 255-octet fields (RFC 4616 §2) fits with room to spare, and so does any
/// SCRAM message a real client sends.
pub const MAX_RESPONSE: usize = 2048;

/// The largest challenge an exchange produces (SCRAM's server-first echoes
/// the client nonce, itself bounded by [`MAX_RESPONSE`]).
pub const MAX_CHALLENGE: usize = MAX_RESPONSE + 256;

/// A mechanism facteur offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mechanism {
    /// SCRAM-SHA-256 (RFC 7677): the password never crosses the wire.
    ScramSha256,
    /// PLAIN (RFC 4616).
    Plain,
    /// LOGIN (draft-murchison-sasl-login), for old clients.
    Login,
}

impl Mechanism {
    /// Every mechanism, strongest first: the order of the lists servers
    /// advertise (CAPABILITY, CAPA, EHLO).
    pub const ALL: [Mechanism; 3] = [Mechanism::ScramSha256, Mechanism::Plain, Mechanism::Login];

    /// The registered name.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::Plain => "PLAIN",
            Mechanism::Login => "LOGIN",
        }
    }

    /// The mechanism a client names, in any case (RFC 4422 §3.1 names are
    /// upper-case; clients send them in any case).
    pub fn from_name(name: &str) -> Option<Mechanism> {
        Self::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(name))
    }

    /// The names of [`Mechanism::ALL`], separated by spaces.
    pub fn list() -> String {
        Self::ALL.map(Mechanism::name).join(" ")
    }
}

impl std::fmt::Display for Mechanism {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What the exchange needs next.
pub enum Step {
    /// Send these bytes to the client as a challenge (each protocol
    /// base64-encodes them into its continuation line) and `step` with the
    /// answer.
    Challenge(Vec<u8>),
    /// SCRAM: look up the stored [`ScramCredentials`] of `user` (the
    /// authentication identity, as the client wrote it) and call
    /// [`Exchange::credentials`] with them, or with `None`.
    NeedCredentials { user: String },
    /// PLAIN, LOGIN: check `password` for `user` and call
    /// [`Exchange::verified`] with the result.
    Verify { user: String, password: String },
    /// Authenticated as `user`. `final_data`, when present (SCRAM's
    /// server-final `v=...`), must reach the client before the success
    /// reply: as a last challenge whose answer is empty (IMAP, POP3, SMTP
    /// `334` before `235`), or as the protocol's success data.
    Success {
        user: String,
        final_data: Option<Vec<u8>>,
    },
    /// The exchange failed; it is over.
    Failure(Failure),
}

impl std::fmt::Debug for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::Challenge(c) => f
                .debug_tuple("Challenge")
                .field(&String::from_utf8_lossy(c))
                .finish(),
            Step::NeedCredentials { user } => f
                .debug_struct("NeedCredentials")
                .field("user", user)
                .finish(),
            // Never the password.
            Step::Verify { user, .. } => f
                .debug_struct("Verify")
                .field("user", user)
                .finish_non_exhaustive(),
            Step::Success { user, final_data } => f
                .debug_struct("Success")
                .field("user", user)
                .field(
                    "final_data",
                    &final_data.as_deref().map(String::from_utf8_lossy),
                )
                .finish(),
            Step::Failure(r) => f.debug_tuple("Failure").field(r).finish(),
        }
    }
}

/// Why an exchange failed. Only [`Failure::Credentials`] is a failed login
/// (a wrong password, an unknown user): the others are protocol errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// The credentials are wrong: wrong password or proof, unknown user,
    /// a user without SCRAM keys. The same value in every case, on purpose.
    #[error("authentication failed")]
    Credentials,
    /// The client cancelled with `*`.
    #[error("authentication cancelled")]
    Cancelled,
    /// The authorization identity is not the authentication identity.
    #[error("authorization identity differs from the authentication identity")]
    AuthzidMismatch,
    /// SCRAM: the client requires channel binding (`p=`), which is not
    /// offered (only SCRAM-SHA-256, never -PLUS, is advertised).
    #[error("channel binding is not supported")]
    ChannelBinding,
    /// A client message over [`MAX_RESPONSE`] bytes.
    #[error("response too long")]
    TooLong,
    /// A response that is not base64.
    #[error("invalid base64")]
    Base64,
    /// A client message the mechanism cannot parse.
    #[error("malformed {0} message")]
    Malformed(&'static str),
    /// A method of [`Exchange`] called at the wrong time (a caller's bug).
    #[error("exchange used out of order")]
    OutOfOrder,
}

impl Failure {
    /// The reason as the text of a protocol reply: capitalised.
    pub fn sentence(self) -> String {
        let t = self.to_string();
        let mut c = t.chars();
        match c.next() {
            Some(f) => f.to_uppercase().chain(c).collect(),
            None => t,
        }
    }
}

/// The one rule for the authorization identity, in every mechanism: when
/// the client gives one, it must be the authentication identity, compared
/// without regard to case (logins are addresses, and the directory looks
/// them up lower-cased). There are no proxy logins.
pub fn authorize(authzid: Option<&str>, authcid: &str) -> Result<(), Failure> {
    match authzid {
        None | Some("") => Ok(()),
        Some(a) if a == authcid || a.to_lowercase() == authcid.to_lowercase() => Ok(()),
        Some(_) => Err(Failure::AuthzidMismatch),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(Mechanism::from_name("plain"), Some(Mechanism::Plain));
        assert_eq!(
            Mechanism::from_name("Scram-Sha-256"),
            Some(Mechanism::ScramSha256)
        );
        assert_eq!(Mechanism::from_name("SCRAM-SHA-256-PLUS"), None);
        assert_eq!(Mechanism::from_name("CRAM-MD5"), None);
        assert_eq!(Mechanism::list(), "SCRAM-SHA-256 PLAIN LOGIN");
    }

    #[test]
    fn authorization_identity() {
        assert_eq!(authorize(None, "a@x"), Ok(()));
        assert_eq!(authorize(Some(""), "a@x"), Ok(()));
        assert_eq!(authorize(Some("A@X"), "a@x"), Ok(()));
        assert_eq!(authorize(Some("Élise@x"), "élise@x"), Ok(()));
        assert_eq!(authorize(Some("b@x"), "a@x"), Err(Failure::AuthzidMismatch));
    }

    #[test]
    fn sentences() {
        assert_eq!(Failure::Credentials.sentence(), "Authentication failed");
        assert_eq!(
            Failure::Malformed("PLAIN").sentence(),
            "Malformed PLAIN message"
        );
    }

    #[test]
    fn debug_hides_the_password() {
        let s = Step::Verify {
            user: "a@x".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
