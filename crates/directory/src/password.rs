//! Password hashing and verification.
//!
//! Offers [`credentials`] (what a new password stores: its hash and its
//! SCRAM-SHA-256 keys) and [`set_password`], [`hash_password`] (new hashes are always argon2id PHC strings,
//! `$argon2id$v=19$m=19456,t=2,p=1$salt$hash`, the `argon2` crate's defaults
//! and OWASP's recommendation), [`verify_password`] and [`scheme_of`], and
//! [`verify_password_in`] with its [`Scratch`]: the same check in working
//! memory the caller keeps, so that a process bounds what password hashes
//! cost it (facteur-auth keeps one per hashing slot).
//!
//! Stored strings accepted by [`verify_password`], so admins can import users
//! from Dovecot, Postfix-admin or `/etc/shadow`:
//!
//! | stored form | scheme |
//! |---|---|
//! | `$argon2id$...`, `{ARGON2ID}$argon2id$...` | ARGON2ID |
//! | `$argon2i$...`, `{ARGON2I}$argon2i$...` | ARGON2I |
//! | `$6$...`, `{SHA512-CRYPT}$6$...` | SHA512-CRYPT |
//! | `$5$...`, `{SHA256-CRYPT}$5$...` | SHA256-CRYPT |
//! | `$2y$`, `$2a$`, `$2b$...`, `{BLF-CRYPT}$2y$...` | BLF-CRYPT |
//! | `{CRYPT}` followed by any of the crypt forms above | as the crypt form |
//! | `{PLAIN}secret`, `{CLEAR}secret` | PLAIN |
//!
//! Scheme names in braces are matched case-insensitively, as Dovecot does; the
//! payload must match the scheme named (`{SHA512-CRYPT}$5$...` is refused).
//! Anything else verifies as false.
//!
//! Needs `argon2`, `sha-crypt`, `bcrypt`, and the OS random source for salts.
//!
//! Security: [`verify_password`] never panics and never aborts on a malformed
//! or hostile stored string: argon2 parameters are bounded
//! ([`MAX_ARGON2_MEMORY_KIB`]) before any memory is allocated; comparisons are
//! constant-time (the hash crates use `subtle`; `{PLAIN}` uses
//! [`constant_time_eq`]). Passwords and hashes are never logged.

use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};

use crate::{Credentials, Directory, DirectoryError, Result};

/// Largest argon2 memory cost (in KiB) [`verify_password`] will spend on a
/// stored hash: 1 GiB. A larger one is refused rather than risk an
/// allocation failure that would abort the process.
pub const MAX_ARGON2_MEMORY_KIB: u32 = 1 << 20;
/// Largest argon2 time cost accepted, for the same reason.
pub const MAX_ARGON2_TIME: u32 = 64;

/// Hashes `plain` for storage: argon2id, version 19, m=19456 KiB, t=2, p=1,
/// with a fresh 16-byte random salt.
pub fn hash_password(plain: &str) -> Result<String> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(plain.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| DirectoryError::Password(e.to_string()))
}

/// What setting `plain` as a password stores: its argon2id hash and its
/// SCRAM-SHA-256 keys ([`facteur_sasl::keys::DEFAULT_ITERATIONS`], a fresh
/// salt). A password SASLprep refuses (control characters, unassigned
/// code points: RFC 4013) gets no keys: that user logs in with PLAIN or
/// LOGIN only (see [`scram_refusal`] to tell the administrator).
pub fn credentials(plain: &str) -> Result<Credentials> {
    Ok(Credentials {
        password_hash: hash_password(plain)?,
        scram: facteur_sasl::ScramCredentials::new(plain)
            .ok()
            .map(|k| k.to_string()),
    })
}

/// Sets `plain` as the password of `address`: its [`credentials`], hash
/// and SCRAM keys in one write.
pub fn set_password(dir: &dyn Directory, address: &str, plain: &str) -> Result<()> {
    dir.set_credentials(address, &credentials(plain)?)
}

/// Why `plain` cannot get SCRAM keys, if it cannot.
pub fn scram_refusal(plain: &str) -> Option<String> {
    facteur_sasl::keys::saslprep(plain)
        .err()
        .map(|e| e.to_string())
}

/// The schemes we know, with the part of the stored string they verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Argon2id,
    Argon2i,
    Sha512Crypt,
    Sha256Crypt,
    Bcrypt,
    Plain,
}

impl Scheme {
    fn name(self) -> &'static str {
        match self {
            Scheme::Argon2id => "ARGON2ID",
            Scheme::Argon2i => "ARGON2I",
            Scheme::Sha512Crypt => "SHA512-CRYPT",
            Scheme::Sha256Crypt => "SHA256-CRYPT",
            Scheme::Bcrypt => "BLF-CRYPT",
            Scheme::Plain => "PLAIN",
        }
    }
}

/// Recognises a bare crypt/PHC string by its `$id$` prefix.
fn bare_scheme(s: &str) -> Option<Scheme> {
    if s.starts_with("$argon2id$") {
        Some(Scheme::Argon2id)
    } else if s.starts_with("$argon2i$") {
        Some(Scheme::Argon2i)
    } else if s.starts_with("$6$") {
        Some(Scheme::Sha512Crypt)
    } else if s.starts_with("$5$") {
        Some(Scheme::Sha256Crypt)
    } else if s.starts_with("$2y$") || s.starts_with("$2a$") || s.starts_with("$2b$") {
        Some(Scheme::Bcrypt)
    } else {
        None
    }
}

/// Splits a stored string into its scheme and the payload to verify.
fn parse(stored: &str) -> Option<(Scheme, &str)> {
    let Some(rest) = stored.strip_prefix('{') else {
        return bare_scheme(stored).map(|s| (s, stored));
    };
    let (name, payload) = rest.split_once('}')?;
    let name = name.to_ascii_uppercase();
    let scheme = match name.as_str() {
        "PLAIN" | "CLEAR" => return Some((Scheme::Plain, payload)),
        "CRYPT" => return bare_scheme(payload).map(|s| (s, payload)),
        "ARGON2ID" => Scheme::Argon2id,
        "ARGON2I" => Scheme::Argon2i,
        "SHA512-CRYPT" => Scheme::Sha512Crypt,
        "SHA256-CRYPT" => Scheme::Sha256Crypt,
        "BLF-CRYPT" => Scheme::Bcrypt,
        _ => return None,
    };
    (bare_scheme(payload) == Some(scheme)).then_some((scheme, payload))
}

/// The scheme of a stored string (`"ARGON2ID"`, `"SHA512-CRYPT"`, ...), or
/// `None` when [`verify_password`] would not understand it.
pub fn scheme_of(stored: &str) -> Option<&'static str> {
    parse(stored).map(|(s, _)| s.name())
}

/// Working memory for argon2 verifications, reused from one verification
/// to the next.
///
/// argon2id at the parameters of [`hash_password`] fills 19 MiB. Allocated
/// and freed per verification, that memory is not given back to the
/// system: glibc raises its mmap threshold to the size of the last freed
/// block and keeps such blocks in per-thread arenas, so a process that
/// verified on many threads keeps 19 MiB per thread. Holding the memory in
/// a `Scratch` makes the cost exactly the scratches alive: one per
/// verification that may run at once.
///
/// A stored hash with a larger memory cost (imported, at most
/// [`MAX_ARGON2_MEMORY_KIB`]) grows the scratch for that verification;
/// the scratch lets go of it afterwards and keeps nothing larger than the
/// default parameters need.
#[derive(Default)]
pub struct Scratch {
    blocks: Vec<Block>,
}

impl std::fmt::Debug for Scratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scratch")
            .field("bytes", &self.bytes())
            .finish()
    }
}

impl Scratch {
    /// Empty: memory comes with the first argon2 verification.
    pub fn new() -> Self {
        Scratch::default()
    }

    /// Bytes held now.
    pub fn bytes(&self) -> usize {
        self.blocks.len() * Block::SIZE
    }

    /// `n` blocks of working memory (their contents are overwritten by
    /// the hash).
    fn blocks(&mut self, n: usize) -> &mut [Block] {
        if self.blocks.len() < n {
            self.blocks = Vec::new();
            self.blocks.resize(n, Block::default());
        }
        &mut self.blocks[..n]
    }

    /// Lets go of memory beyond what the default parameters need.
    fn trim(&mut self) {
        if self.blocks.len() > Params::DEFAULT_M_COST as usize {
            self.blocks = Vec::new();
        }
    }
}

/// Whether `plain` matches `stored`. False on any malformed, unknown or
/// out-of-bounds stored string; never panics. Allocates an argon2 hash's
/// working memory for the call: see [`verify_password_in`].
pub fn verify_password(stored: &str, plain: &str) -> bool {
    verify_password_in(stored, plain, &mut Scratch::new())
}

/// [`verify_password`], with argon2's working memory taken from `scratch`.
pub fn verify_password_in(stored: &str, plain: &str, scratch: &mut Scratch) -> bool {
    let Some((scheme, payload)) = parse(stored) else {
        return false;
    };
    match scheme {
        Scheme::Argon2id | Scheme::Argon2i => {
            let ok = verify_argon2(payload, plain, scratch);
            scratch.trim();
            ok
        }
        Scheme::Sha512Crypt => sha_crypt::sha512_check(plain, payload).is_ok(),
        Scheme::Sha256Crypt => sha_crypt::sha256_check(plain, payload).is_ok(),
        Scheme::Bcrypt => bcrypt::verify(plain, payload).unwrap_or(false),
        Scheme::Plain => constant_time_eq(payload.as_bytes(), plain.as_bytes()),
    }
}

/// What the `argon2` crate's `PasswordVerifier` does (algorithm, version,
/// parameters, salt and output length from the PHC string; the output
/// compared in constant time), with the working memory from `scratch`.
fn verify_argon2(payload: &str, plain: &str, scratch: &mut Scratch) -> bool {
    let Ok(hash) = PasswordHash::new(payload) else {
        return false;
    };
    // Output length included: `Params` takes it from the hash.
    let Ok(params) = Params::try_from(&hash) else {
        return false;
    };
    if params.m_cost() > MAX_ARGON2_MEMORY_KIB || params.t_cost() > MAX_ARGON2_TIME {
        return false;
    }
    let (Some(salt), Some(expected)) = (hash.salt, hash.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(hash.algorithm) else {
        return false;
    };
    let version = match hash.version.map(Version::try_from).transpose() {
        Ok(v) => v.unwrap_or_default(),
        Err(_) => return false,
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let mut out = vec![0u8; expected.len()];
    let blocks = scratch.blocks(params.block_count());
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(plain.as_bytes(), salt, &mut out, blocks)
        .is_ok()
        && constant_time_eq(&out, expected.as_bytes())
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    // Walk the longer string in full so the time does not reveal where a
    // shorter candidate stopped matching.
    let n = a.len().max(b.len());
    for i in 0..n {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
mod tests {
    use super::*;

    // Vectors made outside Rust:
    // - argon2: Python argon2-cffi 25.1 (the reference C implementation),
    //   PasswordHasher(time_cost=2, memory_cost=1024, parallelism=1[, type=I]);
    // - SHA-crypt and bcrypt: Python 3.11 `crypt.crypt` (libxcrypt).
    // Each hashes "secret" unless named otherwise.
    const ARGON2ID: &str = "$argon2id$v=19$m=1024,t=2,p=1$Z1z5LYWGFlVidGHNhZpKhg$NY4xp2HGMHPlWJmUyQQZdlpoplDYASmWNLGl1Z6GaSg";
    const ARGON2I: &str = "$argon2i$v=19$m=1024,t=2,p=1$T5rbvSZlbIFH0Tm+6AI1zw$iX7nOwOzuH7zI1+ULcT9+BJa7cKnOx01FtxSTEAKDQw";
    /// "pässwörd"
    const ARGON2ID_UTF8: &str = "$argon2id$v=19$m=1024,t=2,p=1$EL2LVE/5+nLfiqzprAMBAg$tQIwGLQa8DEEP3ZR+6bcr5LwcVUYywVS5WbpZzEKw/w";
    const SHA512: &str = "$6$2hsnzAyeYc7sQYQJ$89vk1bhjRR8MTFwrIH5v.sYGXTqjFNEm4ZFWzVyN2PbWFZlncoxpFlboRGLxSdarSZUA/4rIKp1tJLAZytBtb/";
    const SHA512_ROUNDS: &str = "$6$rounds=10000$saltsaltsalt$mxZLFC.27fmAOmrI3MHCgrNvevu4IGEUC1gDEROE3aOW7NYpdeD3Aqx8vf/dRCUEMDtPgGPhepq3R/j4C3Yvq/";
    /// "pässwörd"
    const SHA512_UTF8: &str = "$6$f2pE4qTqpXdrER0l$wF7Tel2kHEJu/zxphj5RFCWzta9npzMw1xItuYsptoueyzCj8olHMNFmY8/5iWbAmpJHiDd7HRRKdQr1dK3XO.";
    const SHA256: &str = "$5$eL4K5qTI9qZNfrXd$f0r3ZuRjiXFVydMkAU0Ez7NeZTyr3dc7cwDDW90UMD2";
    const BCRYPT_2B: &str = "$2b$04$abcdefghijklmnopqrstuu2r9OfJnfCsdneAXAGHnS4UpFFP8WIrW";
    const BCRYPT_2Y: &str = "$2y$05$abcdefghijklmnopqrstuuOQiyCxlgf/oeuTqixKmWdcYUh4Hjl0a";
    const BCRYPT_2A: &str = "$2a$05$abcdefghijklmnopqrstuuOQiyCxlgf/oeuTqixKmWdcYUh4Hjl0a";

    #[test]
    fn credentials_hold_hash_and_scram_keys() {
        let c = credentials("pässwörd").unwrap();
        assert!(verify_password(&c.password_hash, "pässwörd"));
        let keys = facteur_sasl::ScramCredentials::parse(c.scram.as_deref().unwrap()).unwrap();
        assert!(keys.matches("pässwörd"));
        assert_eq!(keys.iterations, facteur_sasl::keys::DEFAULT_ITERATIONS);
        assert!(!format!("{c:?}").contains(&c.password_hash));
        assert_eq!(scram_refusal("pässwörd"), None);
        // SASLprep refuses a control character: hash only, and a reason.
        let c = credentials("tab\there").unwrap();
        assert!(verify_password(&c.password_hash, "tab\there"));
        assert_eq!(c.scram, None);
        assert!(scram_refusal("tab\there").is_some());
    }

    #[test]
    fn vectors_verify_and_reject() {
        let cases: &[(&str, &str, &str)] = &[
            (ARGON2ID, "secret", "ARGON2ID"),
            (ARGON2I, "secret", "ARGON2I"),
            (ARGON2ID_UTF8, "pässwörd", "ARGON2ID"),
            (SHA512, "secret", "SHA512-CRYPT"),
            (SHA512_ROUNDS, "secret", "SHA512-CRYPT"),
            (SHA512_UTF8, "pässwörd", "SHA512-CRYPT"),
            (SHA256, "secret", "SHA256-CRYPT"),
            (BCRYPT_2B, "secret", "BLF-CRYPT"),
            (BCRYPT_2Y, "secret", "BLF-CRYPT"),
            (BCRYPT_2A, "secret", "BLF-CRYPT"),
        ];
        for &(stored, plain, scheme) in cases {
            let prefixed = format!("{{{scheme}}}{stored}");
            for s in [stored, prefixed.as_str()] {
                assert!(verify_password(s, plain), "{s} should accept {plain}");
                assert!(
                    !verify_password(s, "Secret"),
                    "{s} accepted a wrong password"
                );
                assert!(!verify_password(s, ""), "{s} accepted the empty password");
                assert!(
                    !verify_password(s, &format!("{plain}x")),
                    "{s} accepted a longer password"
                );
                assert_eq!(scheme_of(s), Some(scheme), "{s}");
            }
        }
    }

    #[test]
    fn dovecot_prefix_forms() {
        assert!(verify_password(
            &format!("{{sha512-crypt}}{SHA512}"),
            "secret"
        ));
        assert!(verify_password(&format!("{{CRYPT}}{SHA256}"), "secret"));
        assert_eq!(
            scheme_of(&format!("{{CRYPT}}{BCRYPT_2Y}")),
            Some("BLF-CRYPT")
        );
        // The payload must match the scheme named.
        let mismatched = format!("{{SHA256-CRYPT}}{SHA512}");
        assert!(!verify_password(&mismatched, "secret"));
        assert_eq!(scheme_of(&mismatched), None);
        assert!(!verify_password(
            &format!("{{ARGON2I}}{ARGON2ID}"),
            "secret"
        ));
        assert!(!verify_password(
            &format!("{{MD5-CRYPT}}{SHA512}"),
            "secret"
        ));
    }

    #[test]
    fn plain_and_clear() {
        for s in ["{PLAIN}secret", "{CLEAR}secret", "{plain}secret"] {
            assert!(verify_password(s, "secret"), "{s}");
            assert!(!verify_password(s, "secre"));
            assert!(!verify_password(s, "secret "));
            assert_eq!(scheme_of(s), Some("PLAIN"));
        }
        assert!(verify_password("{PLAIN}", ""));
        assert!(verify_password("{PLAIN}a}b", "a}b"));
        // A bare string is never taken as plain text.
        assert!(!verify_password("secret", "secret"));
        assert_eq!(scheme_of("secret"), None);
    }

    #[test]
    fn garbage_is_false_never_panics() {
        let long = "$".repeat(10_000);
        let garbage: Vec<String> = vec![
            "".into(),
            "$".into(),
            "{".into(),
            "{}".into(),
            "{PLAIN".into(),
            "$6$".into(),
            "$6$salt".into(),
            "$6$salt$".into(),
            "$6$rounds=abc$salt$hash".into(),
            "$6$rounds=5$salt$hash".into(),
            "$6$salt$not-base64!!".into(),
            "$6$salt$hash$extra".into(),
            "$5$$".into(),
            "$2y$".into(),
            "$2y$05$short".into(),
            "$2y$99$abcdefghijklmnopqrstuuOQiyCxlgf/oeuTqixKmWdcYUh4Hjl0a".into(),
            "$2y$xx$abcdefghijklmnopqrstuuOQiyCxlgf/oeuTqixKmWdcYUh4Hjl0a".into(),
            "$2y$05$ééééééééééééééééééééééOQiyCxlgf/oeuTqixKmWdcYUh4Hjl0".into(),
            "$argon2id$".into(),
            "$argon2id$v=19$m=1024,t=2,p=1$bad salt$bad hash".into(),
            "$argon2id$v=19$m=4294967295,t=2,p=1$Z1z5LYWGFlVidGHNhZpKhg$NY4xp2HGMHPlWJmUyQQZdlpoplDYASmWNLGl1Z6GaSg".into(),
            "$argon2id$v=19$m=1024,t=4294967295,p=1$Z1z5LYWGFlVidGHNhZpKhg$NY4xp2HGMHPlWJmUyQQZdlpoplDYASmWNLGl1Z6GaSg".into(),
            "$argon2id$v=19$m=1024,t=2,p=0$Z1z5LYWGFlVidGHNhZpKhg$NY4xp2HGMHPlWJmUyQQZdlpoplDYASmWNLGl1Z6GaSg".into(),
            "$argon2id$v=99$m=1024,t=2,p=1$Z1z5LYWGFlVidGHNhZpKhg$NY4xp2HGMHPlWJmUyQQZdlpoplDYASmWNLGl1Z6GaSg".into(),
            "$argon2d$v=19$m=1024,t=2,p=1$Z1z5LYWGFlVidGHNhZpKhg$NY4xp2HGMHPlWJmUyQQZdlpoplDYASmWNLGl1Z6GaSg".into(),
            "$1$saltsalt$hash".into(),
            "{SSHA}abcdef".into(),
            "{ARGON2ID}".into(),
            "\0\u{1}\u{ffff}".into(),
            long,
        ];
        for g in &garbage {
            assert!(!verify_password(g, "secret"), "{g:?}");
            assert!(!verify_password(g, ""), "{g:?}");
        }
        assert_eq!(
            scheme_of("$argon2d$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA"),
            None
        );
    }

    #[test]
    fn new_hashes_are_argon2id_and_salted() {
        let a = hash_password("secret").unwrap();
        let b = hash_password("secret").unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert_ne!(a, b, "salts must differ");
        assert_eq!(scheme_of(&a), Some("ARGON2ID"));
        assert!(verify_password(&a, "secret"));
        assert!(!verify_password(&a, "secreT"));
        assert!(verify_password(&format!("{{ARGON2ID}}{b}"), "secret"));
        let empty = hash_password("").unwrap();
        assert!(verify_password(&empty, ""));
        assert!(!verify_password(&empty, " "));
    }

    #[test]
    fn scratch_is_reused_and_trimmed() {
        let mut s = Scratch::new();
        assert_eq!(s.bytes(), 0);
        let stored = hash_password("secret").unwrap();
        assert!(verify_password_in(&stored, "secret", &mut s));
        assert_eq!(s.bytes(), Params::DEFAULT_M_COST as usize * 1024);
        // The same memory serves the next verifications, smaller ones too.
        assert!(!verify_password_in(&stored, "Secret", &mut s));
        assert!(verify_password_in(ARGON2ID, "secret", &mut s));
        assert!(verify_password_in(ARGON2I, "secret", &mut s));
        assert!(!verify_password_in(ARGON2I, "secreT", &mut s));
        assert!(verify_password_in(SHA512, "secret", &mut s));
        assert_eq!(s.bytes(), Params::DEFAULT_M_COST as usize * 1024);
        // A larger memory cost is served, then let go of.
        let big = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(Params::DEFAULT_M_COST + 1024, 1, 1, None).unwrap(),
        );
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        let stored = big.hash_password(b"big", &salt).unwrap().to_string();
        assert!(verify_password_in(&stored, "big", &mut s));
        assert!(!verify_password_in(&stored, "bi", &mut s));
        assert_eq!(s.bytes(), 0);
        assert!(verify_password(&stored, "big"));
    }

    #[test]
    fn constant_time_eq_cases() {
        assert!(constant_time_eq(b"", b""));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"ab", b"abc"));
        assert!(!constant_time_eq(b"\0", b""));
    }
}
