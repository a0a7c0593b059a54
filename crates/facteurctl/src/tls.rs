//! `facteurctl tls self-signed`: a self-signed certificate and its key, so
//! STARTTLS and implicit TLS work from the first start (the Debian package's
//! postinst makes one when none exists). Replace it with a certificate from
//! a CA (Let's Encrypt) before real use: senders accept a self-signed
//! certificate for opportunistic STARTTLS, mail programs warn about it.
//!
//! Guarantees: never overwrites an existing certificate or key without
//! `--force`; the key is written atomically with mode 0600 (its owner and
//! group are the installer's business), the certificate 0644.

use anyhow::{Context as _, bail};
use std::path::Path;

/// Writes a self-signed certificate for `names` (DNS names or IP addresses;
/// the first is the subject) to `cert` and its private key to `key`.
pub fn self_signed(cert: &Path, key: &Path, names: &[String], force: bool) -> anyhow::Result<()> {
    if names.is_empty() {
        bail!("at least one --name is needed");
    }
    if !force {
        for p in [cert, key] {
            if p.exists() {
                bail!("{} already exists (use --force to replace it)", p.display());
            }
        }
    }
    let ck = rcgen::generate_simple_self_signed(names.to_vec())
        .context("generating the self-signed certificate")?;
    for p in [cert, key] {
        if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
            facteur_util::create_dir_all_mode(dir, 0o755)
                .with_context(|| format!("creating {}", dir.display()))?;
        }
    }
    facteur_util::write_atomic(key, ck.key_pair.serialize_pem().as_bytes(), 0o600)
        .with_context(|| format!("writing {}", key.display()))?;
    facteur_util::write_atomic(cert, ck.cert.pem().as_bytes(), 0o644)
        .with_context(|| format!("writing {}", cert.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn writes_a_pair_and_refuses_to_overwrite() {
        let d = tempfile::tempdir().unwrap();
        let (c, k) = (d.path().join("tls/cert.pem"), d.path().join("tls/key.pem"));
        let names = vec!["mail.example.test".to_string()];
        self_signed(&c, &k, &names, false).unwrap();
        let cert = std::fs::read_to_string(&c).unwrap();
        assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(std::fs::read_to_string(&k).unwrap().contains("PRIVATE KEY"));
        let mode = std::fs::metadata(&k).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let e = self_signed(&c, &k, &names, false).unwrap_err();
        assert!(e.to_string().contains("already exists"));
        assert_eq!(std::fs::read_to_string(&c).unwrap(), cert);
        self_signed(&c, &k, &names, true).unwrap();
        assert_ne!(std::fs::read_to_string(&c).unwrap(), cert);
        assert!(self_signed(&c, &k, &[], true).is_err());
    }
}
