//! TLS for outbound SMTP: the rustls client configurations of the policies
//! `may`/`encrypt` (any certificate) and `verify` (chain and name checked).
//!
//! Offers [`TlsClients`], built once from `[qmgr]` (`tls_ca_file`), with
//! [`TlsClients::config`] for a policy. Needs rustls with the ring provider
//! (the workspace's).
//!
//! Why a custom verifier for `may` and `encrypt`: RFC 3207 §4.1 and RFC
//! 7435 (opportunistic security): most MX certificates on the Internet are
//! self-signed, expired or for another name, and refusing them would only
//! push mail back to cleartext. [`AnyCertificate`] accepts any certificate
//! but still checks the handshake signatures with the provider's algorithms
//! (so the session keys are bound to the certificate that was shown), which
//! is what an encrypted-only channel needs. `verify` uses rustls' WebPKI
//! verifier with the roots from the CA file (the system bundle by default,
//! a test CA in tests): chain, validity and host name are all checked.
//!
//! Security role: this is the only place where certificate checks are
//! relaxed, and only for the policies that say so.

use facteur_config::TlsPolicy;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::path::Path;
use std::sync::Arc;

/// The client configurations, one per kind of check.
#[derive(Clone)]
pub struct TlsClients {
    any: Arc<ClientConfig>,
    /// `None` when the CA file could not be read (the reason is kept):
    /// `verify` destinations are then deferred, never sent in clear.
    verified: Result<Arc<ClientConfig>, String>,
}

impl std::fmt::Debug for TlsClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsClients").finish_non_exhaustive()
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl TlsClients {
    /// Builds both configurations; a bad CA file only disables `verify`.
    pub fn new(ca_file: &Path) -> Result<TlsClients, rustls::Error> {
        let any = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider())))
            .with_no_client_auth();
        let verified = load_roots(ca_file).and_then(|roots| {
            ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .map(|b| Arc::new(b.with_root_certificates(roots).with_no_client_auth()))
                .map_err(|e| e.to_string())
        });
        Ok(TlsClients {
            any: Arc::new(any),
            verified,
        })
    }

    /// The configuration for `policy` (`None` for the policy `none`), or
    /// why `verify` is impossible.
    pub fn config(&self, policy: TlsPolicy) -> Result<Option<Arc<ClientConfig>>, String> {
        match policy {
            TlsPolicy::None => Ok(None),
            TlsPolicy::May | TlsPolicy::Encrypt => Ok(Some(Arc::clone(&self.any))),
            TlsPolicy::Verify => self.verified.clone().map(Some),
        }
    }
}

fn load_roots(ca_file: &Path) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(ca_file)
        .map_err(|e| format!("{}: {e}", ca_file.display()))?;
    for c in certs {
        let c = c.map_err(|e| format!("{}: {e}", ca_file.display()))?;
        // A bundle may hold certificates WebPKI cannot use; skip those.
        let _ = roots.add(c);
    }
    if roots.is_empty() {
        return Err(format!("{}: no usable CA certificate", ca_file.display()));
    }
    Ok(roots)
}

/// Accepts any certificate; checks the handshake signatures.
#[derive(Debug)]
pub struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
