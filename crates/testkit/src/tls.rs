//! A test CA: a CA certificate and a `localhost` certificate it signed,
//! written as PEM files a daemon loads like any others, and a TLS client
//! that trusts the CA (and nothing else), for STARTTLS/STLS and implicit
//! TLS tests. Keys are fresh for each CA; nothing is trusted system-wide.

use rustls_pki_types::{CertificateDer, ServerName};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::client::TlsStream;

/// The name in the server certificate.
pub const SERVER_NAME: &str = "localhost";

/// A CA and a server certificate signed by it.
pub struct TestCa {
    /// The CA's certificate.
    pub ca: CertificateDer<'static>,
    /// The server's certificate chain (PEM).
    pub cert: PathBuf,
    /// The server's private key (PEM).
    pub key: PathBuf,
}

impl TestCa {
    /// Makes the CA and the `localhost` certificate; writes `cert.pem` and
    /// `key.pem` into `dir`.
    pub fn new(dir: &Path) -> TestCa {
        let ca_key = rcgen::KeyPair::generate().expect("a CA key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = params.self_signed(&ca_key).expect("the CA certificate");
        let key = rcgen::KeyPair::generate().expect("a server key");
        let server = rcgen::CertificateParams::new(vec![SERVER_NAME.to_string()])
            .and_then(|p| p.signed_by(&key, &ca, &ca_key))
            .expect("the server certificate");
        let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert_path, server.pem()).expect("writing cert.pem");
        std::fs::write(&key_path, key.serialize_pem()).expect("writing key.pem");
        TestCa {
            ca: ca.der().clone(),
            cert: cert_path,
            key: key_path,
        }
    }

    /// A TLS client handshake over `io` that trusts this CA only and
    /// expects the server to be [`SERVER_NAME`].
    pub async fn connect<S>(&self, io: S) -> TlsStream<S>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.clone()).expect("the CA is a valid root");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports TLS 1.2 and 1.3")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = ServerName::try_from(SERVER_NAME).expect("a DNS name");
        tokio_rustls::TlsConnector::from(Arc::new(cfg))
            .connect(name, io)
            .await
            .expect("the TLS handshake")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::PrivateKeyDer;
    use rustls_pki_types::pem::PemObject;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn the_client_trusts_the_server_the_ca_signed() {
        let d = tempfile::tempdir().unwrap();
        let ca = TestCa::new(d.path());
        let chain: Vec<_> = CertificateDer::pem_file_iter(&ca.cert)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(&ca.key).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        let (a, b) = tokio::io::duplex(1 << 14);
        let server = tokio::spawn(async move {
            let mut s = tokio_rustls::TlsAcceptor::from(Arc::new(cfg))
                .accept(b)
                .await
                .unwrap();
            s.write_all(b"hello").await.unwrap();
            s.shutdown().await.unwrap();
        });
        let mut c = ca.connect(a).await;
        let mut got = Vec::new();
        c.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"hello");
        server.await.unwrap();
    }
}
