//! A minimal SCRAM-SHA-256 client (RFC 5802 §3, §5), without channel
//! binding: what the servers' tests and tools use to log in. Not used by
//! any daemon.
//!
//! ```text
//!   let mut c = ScramClient::new("user", "pencil");
//!   send(c.first());                           // n,,n=user,r=<nonce>
//!   send(c.respond(&server_first)?);           // c=biws,r=...,p=<proof>
//!   c.verify(&server_final)?;                  // v=<ServerSignature>
//! ```

use crate::Failure;
use crate::keys::{hmac, saslprep, sha256};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

const WHAT: Failure = Failure::Malformed("SCRAM server");

/// One client side of an exchange.
pub struct ScramClient {
    gs2_header: String,
    password: String,
    bare: String,
    nonce: String,
    server_signature: Option<[u8; 32]>,
}

impl std::fmt::Debug for ScramClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramClient")
            .field("bare", &self.bare)
            .finish_non_exhaustive()
    }
}

impl ScramClient {
    /// A client for `user` with a fresh random nonce.
    pub fn new(user: &str, password: &str) -> Self {
        Self::with_nonce(user, password, &crate::encode(&rand::random::<[u8; 18]>()))
    }

    /// A client with a fixed nonce (RFC examples).
    pub fn with_nonce(user: &str, password: &str, nonce: &str) -> Self {
        let name = user.replace('=', "=3D").replace(',', "=2C");
        ScramClient {
            gs2_header: "n,,".to_owned(),
            password: password.to_owned(),
            bare: format!("n={name},r={nonce}"),
            nonce: nonce.to_owned(),
            server_signature: None,
        }
    }

    /// Another gs2 header than `n,,` (`y,,`, or one with an authzid such as
    /// `n,a=user,`; escape `,` and `=` in it), to test servers.
    pub fn with_gs2_header(mut self, header: &str) -> Self {
        self.gs2_header = header.to_owned();
        self
    }

    /// client-first-message.
    pub fn first(&self) -> Vec<u8> {
        format!("{}{}", self.gs2_header, self.bare).into_bytes()
    }

    /// client-final-message for server-first-message.
    pub fn respond(&mut self, server_first: &[u8]) -> Result<Vec<u8>, Failure> {
        let s_first = std::str::from_utf8(server_first).map_err(|_| WHAT)?;
        let attr = |k: &str| s_first.split(',').find_map(|a| a.strip_prefix(k));
        let nonce = attr("r=").ok_or(WHAT)?;
        if !nonce.starts_with(&self.nonce) {
            return Err(WHAT);
        }
        let salt = STANDARD.decode(attr("s=").ok_or(WHAT)?).map_err(|_| WHAT)?;
        let iterations: u32 = attr("i=").and_then(|i| i.parse().ok()).ok_or(WHAT)?;
        let password = saslprep(&self.password).map_err(|_| Failure::Malformed("password"))?;
        let mut salted = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password.as_bytes(), &salt, iterations, &mut salted);
        let client_key = hmac(&salted, &[b"Client Key"]);
        let without_proof = format!("c={},r={nonce}", crate::encode(self.gs2_header.as_bytes()));
        let auth = format!("{},{s_first},{without_proof}", self.bare);
        let signature = hmac(&sha256(&client_key), &[auth.as_bytes()]);
        let proof: Vec<u8> = client_key
            .iter()
            .zip(signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let server_key = hmac(&salted, &[b"Server Key"]);
        self.server_signature = Some(hmac(&server_key, &[auth.as_bytes()]));
        Ok(format!("{without_proof},p={}", STANDARD.encode(proof)).into_bytes())
    }

    /// Checks server-final-message: the server knew the keys.
    pub fn verify(&self, server_final: &[u8]) -> Result<(), Failure> {
        let want = self.server_signature.ok_or(Failure::OutOfOrder)?;
        let v = server_final.strip_prefix(b"v=").ok_or(WHAT)?;
        let got: [u8; 32] = STANDARD
            .decode(v)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or(WHAT)?;
        if crate::scram::ct_eq(&got, &want) {
            Ok(())
        } else {
            Err(Failure::Credentials)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn rfc7677_client_side() {
        let mut c = ScramClient::with_nonce("user", "pencil", "rOprNGfwEbeRWgbNEkqO");
        assert_eq!(c.first(), b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let s_first = b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                        s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        assert_eq!(
            c.respond(s_first).unwrap(),
            b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
              p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        assert_eq!(
            c.verify(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="),
            Ok(())
        );
        assert_eq!(
            c.verify(b"v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="),
            Err(Failure::Credentials)
        );
        assert!(c.respond(b"r=other,s=AAAA,i=4096").is_err());
    }
}
