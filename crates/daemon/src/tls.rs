//! TLS for the daemons: the rustls server configuration built from the
//! certificate chain and key files of `[tls]`, shared by all sessions and
//! replaced on SIGHUP (a bad new certificate keeps the old one and logs why).
//!
//! Uses the ring provider and rustls' safe defaults (TLS 1.2 and 1.3).

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::{Arc, RwLock};

/// The current TLS configuration; `None` when no certificate is configured
/// or readable (STARTTLS is then not offered). Clones share the state.
#[derive(Debug, Default, Clone)]
pub struct TlsState {
    current: Arc<RwLock<Option<Arc<ServerConfig>>>>,
}

impl TlsState {
    pub fn get(&self) -> Option<Arc<ServerConfig>> {
        self.current.read().ok().and_then(|g| g.clone())
    }

    pub fn set(&self, cfg: Option<Arc<ServerConfig>>) {
        if let Ok(mut g) = self.current.write() {
            *g = cfg;
        }
    }
}

/// The daemon's starting TLS state from `[tls]`: the certificate if it
/// loads; without one, an error if an implicit-TLS listener (`needed_by`,
/// named in the message) needs it, else a warning that STARTTLS (or STLS)
/// will not be offered.
pub fn initial(tls: &facteur_config::Tls, needed_by: Option<&str>) -> anyhow::Result<TlsState> {
    let state = TlsState::default();
    match load(&tls.cert, &tls.key) {
        Ok(t) => state.set(Some(t)),
        Err(e) => {
            if let Some(what) = needed_by {
                anyhow::bail!("TLS is needed for {what}: {e:#}");
            }
            tracing::warn!(error = %format!("{e:#}"), "no TLS certificate: STARTTLS will not be offered");
        }
    }
    Ok(state)
}

/// Loads the certificate chain and key.
pub fn load(cert: &Path, key: &Path) -> anyhow::Result<Arc<ServerConfig>> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| anyhow::anyhow!("{}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("{}: {e}", cert.display()))?;
    if certs.is_empty() {
        anyhow::bail!("{}: no certificate found", cert.display());
    }
    let key =
        PrivateKeyDer::from_pem_file(key).map_err(|e| anyhow::anyhow!("{}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(Arc::new(cfg))
}
