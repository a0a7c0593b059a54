//! DKIM keys (RFC 6376, RFC 8463): generation, the key store and the life
//! of a selector. No signing here (that is facteur-trust's, with
//! mail-auth, in facteur-qmgr), and no DNS client: facteurctl uses this
//! crate and links neither.
//!
//! **The store** is a directory (`<state_dir>/dkim/`), one sub-directory
//! per signing domain:
//!
//! ```text
//! dkim/example.org/keys.toml            the selectors and their dates (0644)
//! dkim/example.org/f20261205e.pem       a private key, PKCS#8 PEM (0600)
//! ```
//!
//! Files are written to a temporary name, fsynced and renamed
//! ([`facteur_util::write_atomic`]); a private key is on disk before the
//! `keys.toml` that names it, so a crash never leaves a selector without
//! its key. When facteurctl runs as root, the files are given to the
//! signing daemon's user (the owner of the spool).
//!
//! **A selector's life** (one [`Key`]), read off its dates at any moment
//! ([`Keyring::state`]):
//! - *pending*: created, published in DNS, not signing yet (`now <
//!   sign_from`): the delay lets the new TXT record reach every resolver;
//! - *signing*: the newest key of its algorithm whose `sign_from` has come;
//! - *published*: superseded by a newer key, still in DNS so that mail
//!   signed with it and still in transit verifies;
//! - *retired*: `retire_at` has passed; not used, not printed in the DNS
//!   records (its TXT record can be removed).
//!
//! A rotation ([`Keyring::rotate_in`]) adds a new key per algorithm with
//! `sign_from = now + delay` and sets `retire_at = sign_from + keep` on the
//! keys it replaces: two selectors per algorithm are published for a while,
//! one signs.
//!
//! Keys: Ed25519 (RFC 8463) from ring; RSA-2048 from the rsa crate (ring
//! cannot generate RSA keys); both stored as PKCS#8, which ring (through
//! mail-auth) loads to sign. The DNS `p=` is the raw 32-byte key for
//! Ed25519 (RFC 8463 §4.2) and the DER SubjectPublicKeyInfo for RSA (what
//! every verifier accepts).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// A signing algorithm; each signs with SHA-256.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    Ed25519,
    Rsa,
}

impl Algorithm {
    /// Both, in the order signatures are added (RFC 8463 §6: the Ed25519
    /// signature beside an RSA one for verifiers that lack Ed25519).
    pub const ALL: [Algorithm; 2] = [Algorithm::Ed25519, Algorithm::Rsa];

    /// The `k=` tag of the DNS record.
    pub fn k_tag(self) -> &'static str {
        match self {
            Algorithm::Ed25519 => "ed25519",
            Algorithm::Rsa => "rsa",
        }
    }

    /// The letter that ends a generated selector.
    fn letter(self) -> char {
        match self {
            Algorithm::Ed25519 => 'e',
            Algorithm::Rsa => 'r',
        }
    }

    pub fn parse(s: &str) -> Option<Algorithm> {
        match s.to_ascii_lowercase().as_str() {
            "ed25519" => Some(Algorithm::Ed25519),
            "rsa" => Some(Algorithm::Rsa),
            _ => None,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.k_tag())
    }
}

/// What went wrong; each names the file or the value.
#[derive(Debug, thiserror::Error)]
pub enum DkimError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("{0:?} is not a valid {1}")]
    BadName(String, &'static str),
    #[error("key generation failed: {0}")]
    Crypto(String),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> DkimError + '_ {
    move |source| DkimError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One selector and its dates (unix seconds; `retire_at` 0 = not
/// scheduled).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Key {
    pub selector: String,
    pub algorithm: Algorithm,
    pub created: i64,
    pub sign_from: i64,
    #[serde(default)]
    pub retire_at: i64,
}

/// Where a key is in its life (see the module).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Pending,
    Signing,
    Published,
    Retired,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Pending => "pending",
            State::Signing => "signing",
            State::Published => "published",
            State::Retired => "retired",
        })
    }
}

/// The keys of one domain (`keys.toml`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Keyring {
    #[serde(default, rename = "key")]
    pub keys: Vec<Key>,
}

impl Keyring {
    fn retired(k: &Key, now: i64) -> bool {
        k.retire_at != 0 && now >= k.retire_at
    }

    /// The key of `alg` that signs at `now`: the newest (by `sign_from`,
    /// then by position) whose `sign_from` has come and that is not
    /// retired.
    pub fn signing_key(&self, alg: Algorithm, now: i64) -> Option<&Key> {
        self.keys
            .iter()
            .filter(|k| k.algorithm == alg && k.sign_from <= now && !Self::retired(k, now))
            .max_by_key(|k| k.sign_from)
    }

    /// The keys that sign at `now`, Ed25519 first.
    pub fn signing(&self, now: i64) -> Vec<&Key> {
        Algorithm::ALL
            .iter()
            .filter_map(|&a| self.signing_key(a, now))
            .collect()
    }

    /// The state of `k` (one of this ring's keys) at `now`.
    pub fn state(&self, k: &Key, now: i64) -> State {
        if Self::retired(k, now) {
            State::Retired
        } else if now < k.sign_from {
            State::Pending
        } else if self.signing_key(k.algorithm, now) == Some(k) {
            State::Signing
        } else {
            State::Published
        }
    }

    /// The keys whose TXT record must be in DNS at `now`.
    pub fn published(&self, now: i64) -> Vec<&Key> {
        self.keys
            .iter()
            .filter(|k| !Self::retired(k, now))
            .collect()
    }

    /// A selector for a new `alg` key made at `now` that no key of this
    /// ring has: `f` + the date + `e`/`r`, then `2`, `3`... on the same day.
    pub fn new_selector(&self, alg: Algorithm, now: i64) -> String {
        let date: String = facteur_util::date::short(now)
            .chars()
            .take(10)
            .filter(char::is_ascii_digit)
            .collect();
        let base = format!("f{date}{}", alg.letter());
        let taken = |s: &str| self.keys.iter().any(|k| k.selector == s);
        if !taken(&base) {
            return base;
        }
        (2u32..)
            .map(|n| format!("{base}{n}"))
            .find(|s| !taken(s))
            .unwrap_or(base)
    }

    /// Adds `new` keys and schedules the retirement of the keys they
    /// replace: every older key of the same algorithm that is not retired
    /// or scheduled already retires `keep` seconds after the new one starts
    /// signing.
    pub fn rotate_in(&mut self, new: Vec<Key>, keep: i64) {
        for n in &new {
            for k in self
                .keys
                .iter_mut()
                .filter(|k| k.algorithm == n.algorithm && k.retire_at == 0)
            {
                k.retire_at = n.sign_from.saturating_add(keep.max(0)).max(1);
            }
        }
        self.keys.extend(new);
    }
}

/// Checks a domain name used as a directory name: lower case letters,
/// digits, `-` and `.`, labels of 1 to 63, 253 in all.
pub fn check_domain(d: &str) -> Result<(), DkimError> {
    let ok = !d.is_empty()
        && d.len() <= 253
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(DkimError::BadName(d.into(), "domain name (lower case)"))
    }
}

/// Checks a selector (RFC 6376 §3.1: a sub-domain; here one label, so
/// that it is also a file name).
pub fn check_selector(s: &str) -> Result<(), DkimError> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && !s.starts_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(DkimError::BadName(s.into(), "selector"))
    }
}

/// The key store (see the module).
#[derive(Debug, Clone)]
pub struct KeyStore {
    dir: PathBuf,
    /// Given to every file and directory written (root only).
    owner: Option<(u32, u32)>,
}

const KEYS_FILE: &str = "keys.toml";

impl KeyStore {
    /// The store under `dir` (`<state_dir>/dkim`).
    pub fn new(dir: impl Into<PathBuf>) -> KeyStore {
        KeyStore {
            dir: dir.into(),
            owner: None,
        }
    }

    /// Files written from now on get this owner (uid, gid).
    pub fn with_owner(mut self, owner: Option<(u32, u32)>) -> KeyStore {
        self.owner = owner;
        self
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The `keys.toml` of `domain`.
    pub fn keyring_path(&self, domain: &str) -> PathBuf {
        self.dir.join(domain).join(KEYS_FILE)
    }

    /// The private key file of `selector`.
    pub fn key_path(&self, domain: &str, selector: &str) -> PathBuf {
        self.dir.join(domain).join(format!("{selector}.pem"))
    }

    /// The domains that have a `keys.toml`, sorted.
    pub fn domains(&self) -> Result<Vec<String>, DkimError> {
        let rd = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(&self.dir)(e)),
        };
        let mut out = Vec::new();
        for e in rd {
            let e = e.map_err(io_err(&self.dir))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if check_domain(&name).is_ok() && e.path().join(KEYS_FILE).is_file() {
                out.push(name);
            }
        }
        out.sort();
        Ok(out)
    }

    /// The keys of `domain`; none if it has no `keys.toml`.
    pub fn load(&self, domain: &str) -> Result<Keyring, DkimError> {
        check_domain(domain)?;
        let path = self.keyring_path(domain);
        match std::fs::read(&path) {
            Ok(b) => parse_keyring(&b).map_err(|reason| DkimError::Corrupt { path, reason }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Keyring::default()),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    /// Writes `ring` as the keys of `domain`, durably.
    pub fn save(&self, domain: &str, ring: &Keyring) -> Result<(), DkimError> {
        check_domain(domain)?;
        self.domain_dir(domain)?;
        let path = self.keyring_path(domain);
        let mut text = String::from(
            "# DKIM selectors of this domain, written by `facteurctl dkim`.\n\
             # Dates are unix seconds; retire_at = 0: not scheduled.\n\n",
        );
        text.push_str(&toml::to_string(ring).map_err(|e| DkimError::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        })?);
        self.write(&path, text.as_bytes(), 0o644)
    }

    /// Writes the private key of `selector` (PKCS#8 DER, stored as PEM,
    /// mode 0600), durably.
    pub fn write_private(
        &self,
        domain: &str,
        selector: &str,
        pkcs8: &[u8],
    ) -> Result<(), DkimError> {
        check_domain(domain)?;
        check_selector(selector)?;
        self.domain_dir(domain)?;
        let path = self.key_path(domain, selector);
        self.write(&path, pem_encode("PRIVATE KEY", pkcs8).as_bytes(), 0o600)
    }

    /// Reads the private key of `selector` (PKCS#8 DER).
    pub fn read_private(&self, domain: &str, selector: &str) -> Result<Vec<u8>, DkimError> {
        check_domain(domain)?;
        check_selector(selector)?;
        let path = self.key_path(domain, selector);
        let text = std::fs::read(&path).map_err(io_err(&path))?;
        pem_decode("PRIVATE KEY", &text).ok_or_else(|| DkimError::Corrupt {
            path,
            reason: "not a PEM \"PRIVATE KEY\" (PKCS#8)".into(),
        })
    }

    fn domain_dir(&self, domain: &str) -> Result<(), DkimError> {
        let d = self.dir.join(domain);
        if d.is_dir() {
            return Ok(());
        }
        facteur_util::create_dirs_durable(
            &[&self.dir, &d],
            self.dir.parent().unwrap_or(&self.dir),
            0o750,
        )
        .map_err(io_err(&d))?;
        for p in [&self.dir, &d] {
            self.chown(p)?;
        }
        Ok(())
    }

    fn write(&self, path: &Path, bytes: &[u8], mode: u32) -> Result<(), DkimError> {
        facteur_util::write_atomic(path, bytes, mode).map_err(io_err(path))?;
        self.chown(path)
    }

    fn chown(&self, path: &Path) -> Result<(), DkimError> {
        if let Some((uid, gid)) = self.owner {
            std::os::unix::fs::chown(path, Some(uid), Some(gid)).map_err(io_err(path))?;
        }
        Ok(())
    }
}

/// Parses a `keys.toml`, checking every selector.
pub fn parse_keyring(bytes: &[u8]) -> Result<Keyring, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_string())?;
    let ring: Keyring = toml::from_str(text).map_err(|e| e.to_string())?;
    for k in &ring.keys {
        check_selector(&k.selector).map_err(|e| e.to_string())?;
    }
    Ok(ring)
}

/// A new key pair.
pub struct NewKey {
    /// The private key, PKCS#8 DER.
    pub pkcs8: Vec<u8>,
    /// The public key as the DNS record carries it.
    pub public: Vec<u8>,
}

impl fmt::Debug for NewKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewKey").finish_non_exhaustive()
    }
}

/// RSA keys are 2048 bits: what RFC 8301 asks signers for, and still
/// within one 512-byte UDP answer with the record's other tags.
pub const RSA_BITS: usize = 2048;

/// Generates a key pair.
pub fn generate(alg: Algorithm) -> Result<NewKey, DkimError> {
    let pkcs8 = match alg {
        Algorithm::Ed25519 => {
            let rng = ring::rand::SystemRandom::new();
            ring::signature::Ed25519KeyPair::generate_pkcs8(&rng)
                .map_err(|e| DkimError::Crypto(e.to_string()))?
                .as_ref()
                .to_vec()
        }
        Algorithm::Rsa => {
            use rsa::pkcs8::EncodePrivateKey;
            let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, RSA_BITS)
                .map_err(|e| DkimError::Crypto(e.to_string()))?;
            key.to_pkcs8_der()
                .map_err(|e| DkimError::Crypto(e.to_string()))?
                .as_bytes()
                .to_vec()
        }
    };
    let public = public_key(alg, &pkcs8)?;
    Ok(NewKey { pkcs8, public })
}

/// The public key of a private one (PKCS#8 DER), as DNS carries it.
pub fn public_key(alg: Algorithm, pkcs8: &[u8]) -> Result<Vec<u8>, DkimError> {
    use ring::signature::KeyPair as _;
    let bad = |e: String| DkimError::Crypto(format!("not a usable {alg} private key: {e}"));
    match alg {
        Algorithm::Ed25519 => Ok(ring::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(
            pkcs8,
        )
        .map_err(|e| bad(e.to_string()))?
        .public_key()
        .as_ref()
        .to_vec()),
        Algorithm::Rsa => {
            use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey};
            let key = rsa::RsaPrivateKey::from_pkcs8_der(pkcs8).map_err(|e| bad(e.to_string()))?;
            Ok(key
                .to_public_key()
                .to_public_key_der()
                .map_err(|e| bad(e.to_string()))?
                .as_bytes()
                .to_vec())
        }
    }
}

/// The TXT record's text (RFC 6376 §3.6.1).
pub fn txt_record(alg: Algorithm, public: &[u8]) -> String {
    format!("v=DKIM1; k={}; p={}", alg.k_tag(), B64.encode(public))
}

/// PEM with 64-column base64 lines (RFC 7468).
pub fn pem_encode(label: &str, der: &[u8]) -> String {
    let b = B64.encode(der);
    let mut s = format!("-----BEGIN {label}-----\n");
    for line in b.as_bytes().chunks(64) {
        s.push_str(&String::from_utf8_lossy(line));
        s.push('\n');
    }
    s.push_str(&format!("-----END {label}-----\n"));
    s
}

/// The DER inside the first `label` block of `text`; `None` without one
/// or with bad base64.
pub fn pem_decode(label: &str, text: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(text).ok()?;
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin)? + begin.len();
    let stop = start + text[start..].find(&end)?;
    let b64: String = text[start..stop]
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    B64.decode(b64).ok().filter(|d| !d.is_empty())
}

#[cfg(test)]
mod tests;
