//! DKIM signing of our own mail (RFC 6376, RFC 8463), with the keys of
//! facteur-dkim's store, for facteur-qmgr.
//!
//! **Where**: as a message leaves the queue for another server (remote
//! delivery), not where it enters. That one place sees every message that
//! leaves — submitted over SMTP, dropped by sendmail (whose user cannot
//! read the keys), and the bounces and delay notices qmgr writes itself —
//! and signs with the keys in force when the message leaves, so a
//! rotation applies at once to mail already queued; local deliveries are
//! not signed at all (nobody verifies them). Mail that only passes through
//! (an alias forwarding a stranger's message) is not ours to vouch for:
//! [`is_ours`] decides. The cost: a message deferred and retried is signed
//! again at each attempt (one body hash and two signatures; well under a
//! millisecond for common sizes), and the signature's `t=` is the time it
//! left, which is what a verifier compares with `x=` anyway (we set none).
//!
//! **Which domain**: the From address's domain, or the nearest parent
//! domain with keys (a signature by `example.org` aligns with mail from
//! `lists.example.org` under DMARC's relaxed alignment, RFC 7489 §3.1.1).
//! One signature per algorithm that has a signing key: Ed25519 and RSA,
//! relaxed/relaxed, over the fields of RFC 6376 §5.4.1 that the message
//! has, with From signed once more than it appears (a From added on the
//! way breaks the signature).
//!
//! Keys are read from the store when a domain's `keys.toml` changes (its
//! modification time), and loaded once per selector; a key that cannot be
//! read is logged by the caller through the error and the message goes
//! unsigned rather than stuck.

use crate::header;
use facteur_dkim::{Algorithm, KeyStore, Keyring};
use mail_auth::common::crypto::{DkimKey, Ed25519Key, RsaKey, Sha256, SigningKey};
use mail_auth::common::headers::{HeaderWriter as _, Writable};
use mail_auth::dkim::{Canonicalization, DkimSigner};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// RFC 6376 §5.4.1: the fields a signer should sign (when present).
const SIGNED_FIELDS: &[&str] = &[
    "From",
    "Reply-To",
    "Subject",
    "Date",
    "To",
    "Cc",
    "Resent-Date",
    "Resent-From",
    "Resent-To",
    "Resent-Cc",
    "In-Reply-To",
    "References",
    "List-Id",
    "List-Help",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "List-Subscribe",
    "List-Post",
    "List-Owner",
    "List-Archive",
    "Message-ID",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
];

/// Whether a message is ours to sign, from its envelope: a user who logged
/// in, a local user of sendmail, or qmgr's own notices.
pub fn is_ours(auth_user: Option<&str>, local_user: Option<&str>, protocol: Option<&str>) -> bool {
    auth_user.is_some_and(|u| !u.is_empty())
        || local_user.is_some_and(|u| !u.is_empty())
        || matches!(protocol, Some("qmgr-dsn" | "qmgr-list"))
}

/// A loaded key, shared by the signatures made at once (mail-auth's
/// signer owns its key, and ring's key pairs cannot be cloned).
#[derive(Clone)]
struct SharedKey(Arc<DkimKey>);

impl SigningKey for SharedKey {
    type Hasher = Sha256;

    fn sign(&self, input: impl Writable) -> mail_auth::Result<Vec<u8>> {
        self.0.sign(input)
    }

    fn algorithm(&self) -> mail_auth::common::crypto::Algorithm {
        self.0.algorithm()
    }
}

struct Cached {
    mtime: Option<SystemTime>,
    ring: Keyring,
    keys: HashMap<String, SharedKey>,
}

/// The signatures made for one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// The `DKIM-Signature` fields, each ending in CRLF, to put above the
    /// message.
    pub fields: Vec<u8>,
    /// The `d=` of the signatures.
    pub domain: String,
    /// Their selectors, Ed25519 first.
    pub selectors: Vec<String>,
}

/// Signs messages with the keys of a store.
pub struct Signer {
    store: KeyStore,
    cache: Mutex<HashMap<String, Cached>>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("store", &self.store.dir())
            .finish_non_exhaustive()
    }
}

/// Why a message could not be signed (it leaves unsigned).
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error(transparent)]
    Store(#[from] facteur_dkim::DkimError),
    #[error("selector {selector} of {domain}: {reason}")]
    Key {
        domain: String,
        selector: String,
        reason: String,
    },
    #[error("signing with {domain}/{selector} failed: {reason}")]
    Sign {
        domain: String,
        selector: String,
        reason: String,
    },
}

impl Signer {
    /// A signer over the store in `dir` (`<state_dir>/dkim`).
    pub fn new(dir: impl Into<PathBuf>) -> Signer {
        Signer {
            store: KeyStore::new(dir),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Signs `message` (network form, the whole of it) at `now` (unix
    /// seconds) for its From domain: `Ok(None)` when the message has no
    /// From domain or no domain of it has a signing key. Blocking (reads
    /// files, hashes the message): call it on a blocking thread.
    pub fn sign(&self, message: &[u8], now: i64) -> Result<Option<Signed>, SignError> {
        let Some(from) = from_domain(message) else {
            return Ok(None);
        };
        let names = fields_to_sign(message);
        for domain in candidates(&from) {
            let keys = self.signing_keys(domain, now)?;
            if keys.is_empty() {
                continue;
            }
            let mut out = Signed {
                fields: Vec::new(),
                domain: domain.to_string(),
                selectors: Vec::new(),
            };
            for (selector, key) in keys {
                let err = |reason: String| SignError::Sign {
                    domain: domain.to_string(),
                    selector: selector.clone(),
                    reason,
                };
                let sig = DkimSigner::from_key(key)
                    .domain(domain)
                    .selector(&selector)
                    .headers(names.iter().map(String::as_str))
                    .header_canonicalization(Canonicalization::Relaxed)
                    .body_canonicalization(Canonicalization::Relaxed)
                    .sign(message)
                    .map_err(|e| err(e.to_string()))?;
                out.fields.extend_from_slice(sig.to_header().as_bytes());
                out.selectors.push(selector);
            }
            return Ok(Some(out));
        }
        Ok(None)
    }

    /// The keys of `domain` that sign at `now`, loaded.
    fn signing_keys(&self, domain: &str, now: i64) -> Result<Vec<(String, SharedKey)>, SignError> {
        if facteur_dkim::check_domain(domain).is_err() {
            return Ok(Vec::new());
        }
        let path = self.store.keyring_path(domain);
        let mtime = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let fresh = cache.get(domain).is_some_and(|c| c.mtime == mtime);
        if !fresh {
            let ring = if mtime.is_some() {
                self.store.load(domain)?
            } else {
                Keyring::default()
            };
            cache.insert(
                domain.to_string(),
                Cached {
                    mtime,
                    ring,
                    keys: HashMap::new(),
                },
            );
        }
        let Some(c) = cache.get_mut(domain) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for k in c.ring.signing(now) {
            let loaded = match c.keys.get(&k.selector) {
                Some(l) => l.clone(),
                None => {
                    let der = self.store.read_private(domain, &k.selector)?;
                    let bad = |reason: String| SignError::Key {
                        domain: domain.to_string(),
                        selector: k.selector.clone(),
                        reason,
                    };
                    let l = SharedKey(Arc::new(match k.algorithm {
                        Algorithm::Ed25519 => DkimKey::Ed25519(
                            Ed25519Key::from_pkcs8_der(&der).map_err(|e| bad(e.to_string()))?,
                        ),
                        Algorithm::Rsa => DkimKey::Rsa(
                            RsaKey::<Sha256>::from_key_der(PrivateKeyDer::Pkcs8(
                                PrivatePkcs8KeyDer::from(der.as_slice()),
                            ))
                            .map_err(|e| bad(e.to_string()))?,
                        ),
                    }));
                    c.keys.insert(k.selector.clone(), l.clone());
                    l
                }
            };
            out.push((k.selector.clone(), loaded));
        }
        Ok(out)
    }
}

/// The fields of [`SIGNED_FIELDS`] the message has, with From once more
/// (oversigned: mail-auth puts a listed name that matches no field into
/// `h=` as it is, which is what signing a field's absence means).
fn fields_to_sign(message: &[u8]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for f in header::fields(message) {
        if let Some(n) = SIGNED_FIELDS.iter().find(|n| f.is(n))
            && !names.iter().any(|m| m == n)
        {
            names.push((*n).to_string());
        }
    }
    names.push("From".into());
    names
}

/// The domain of the first address of the From field, lower case.
pub fn from_domain(message: &[u8]) -> Option<String> {
    let m = mail_parser::MessageParser::new().parse_headers(message)?;
    let addr = m.from()?.first()?.address()?;
    let (_, d) = addr.rsplit_once('@')?;
    let d = d.trim().trim_end_matches('.').to_ascii_lowercase();
    (!d.is_empty()).then_some(d)
}

/// `a.b.example.org`, `b.example.org`, `example.org`: the domain and its
/// parents down to two labels.
fn candidates(domain: &str) -> impl Iterator<Item = &str> {
    std::iter::successors(Some(domain), |d| {
        d.split_once('.')
            .map(|(_, rest)| rest)
            .filter(|rest| rest.contains('.'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use facteur_dkim::Key;
    use std::path::Path;

    fn store_with(dir: &Path, domain: &str, keys: &[(&str, Algorithm, i64)]) {
        let store = KeyStore::new(dir);
        let mut ring = Keyring::default();
        for &(sel, alg, from) in keys {
            let k = facteur_dkim::generate(alg).unwrap();
            store.write_private(domain, sel, &k.pkcs8).unwrap();
            ring.keys.push(Key {
                selector: sel.into(),
                algorithm: alg,
                created: from,
                sign_from: from,
                retire_at: 0,
            });
        }
        store.save(domain, &ring).unwrap();
    }

    const MSG: &[u8] = b"From: Alice <alice@mail.example.org>\r\nTo: bob@remote.test\r\nSubject: hi\r\nX-Other: 1\r\n\r\nHello\r\n";

    #[test]
    fn signs_with_both_algorithms_for_the_parent_domain() {
        let dir = tempfile::tempdir().unwrap();
        store_with(
            dir.path(),
            "example.org",
            &[("s1", Algorithm::Ed25519, 0), ("s1r", Algorithm::Rsa, 0)],
        );
        let s = Signer::new(dir.path());
        let signed = s.sign(MSG, 100).unwrap().unwrap();
        assert_eq!(signed.domain, "example.org");
        assert_eq!(signed.selectors, ["s1", "s1r"]);
        let text = String::from_utf8(signed.fields).unwrap();
        assert_eq!(text.matches("DKIM-Signature:").count(), 2, "{text}");
        assert!(
            text.contains("a=ed25519-sha256") && text.contains("a=rsa-sha256"),
            "{text}"
        );
        assert!(text.contains("c=relaxed/relaxed"), "{text}");
        assert!(text.contains("d=example.org"), "{text}");
        assert!(
            !text.contains("X-Other") && !text.contains("Reply-To"),
            "{text}"
        );
        // From is listed twice (oversigned).
        let h = text.split("h=").nth(1).unwrap();
        let h = &h[..h.find(';').unwrap()];
        assert_eq!(h.matches("From").count(), 2, "{h}");
        assert!(text.ends_with("\r\n"));
    }

    #[test]
    fn no_keys_no_from_or_a_pending_key_means_unsigned() {
        let dir = tempfile::tempdir().unwrap();
        store_with(
            dir.path(),
            "example.org",
            &[("later", Algorithm::Ed25519, 1000)],
        );
        let s = Signer::new(dir.path());
        assert_eq!(s.sign(MSG, 999).unwrap(), None);
        assert_eq!(s.sign(b"To: x@y.test\r\n\r\nbody\r\n", 2000).unwrap(), None);
        assert_eq!(
            s.sign(b"From: a@other.test\r\n\r\nbody\r\n", 2000).unwrap(),
            None
        );
        assert_eq!(s.sign(b"\xff\xfe garbage", 2000).unwrap(), None);
        assert_eq!(s.sign(MSG, 1000).unwrap().unwrap().selectors, ["later"]);
    }

    #[test]
    fn a_rotation_is_seen_without_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        store_with(dir.path(), "example.org", &[("old", Algorithm::Ed25519, 0)]);
        let s = Signer::new(dir.path());
        assert_eq!(s.sign(MSG, 10).unwrap().unwrap().selectors, ["old"]);
        // Same second, same size: make sure the mtime moves.
        std::thread::sleep(std::time::Duration::from_millis(20));
        store_with(
            dir.path(),
            "example.org",
            &[
                ("old", Algorithm::Ed25519, 0),
                ("new", Algorithm::Ed25519, 5),
            ],
        );
        assert_eq!(s.sign(MSG, 10).unwrap().unwrap().selectors, ["new"]);
    }

    #[test]
    fn a_missing_key_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        store_with(dir.path(), "example.org", &[("s1", Algorithm::Ed25519, 0)]);
        std::fs::remove_file(KeyStore::new(dir.path()).key_path("example.org", "s1")).unwrap();
        assert!(Signer::new(dir.path()).sign(MSG, 10).is_err());
    }

    #[test]
    fn ours() {
        assert!(is_ours(Some("alice@example.org"), None, Some("ESMTPSA")));
        assert!(is_ours(None, Some("root"), Some("sendmail")));
        assert!(is_ours(None, None, Some("qmgr-dsn")));
        assert!(is_ours(None, None, Some("qmgr-list")));
        assert!(!is_ours(None, None, Some("ESMTPS")));
        assert!(!is_ours(Some(""), None, None));
    }

    #[test]
    fn parent_domains() {
        let v: Vec<&str> = candidates("a.b.example.org").collect();
        assert_eq!(v, ["a.b.example.org", "b.example.org", "example.org"]);
        assert_eq!(candidates("org").collect::<Vec<_>>(), ["org"]);
    }
}
