//! SCRAM-SHA-256, server side (RFC 5802 §5, §7; RFC 7677), without channel
//! binding.
//!
//! ```text
//!   C: n,,n=user,r=<c-nonce>                     client-first (gs2 header "n,," or "y,,")
//!   S: r=<c-nonce><s-nonce>,s=<salt>,i=<count>   server-first
//!   C: c=biws,r=<c-nonce><s-nonce>,p=<proof>     client-final
//!   S: v=<ServerSignature>                       server-final
//! ```
//!
//! Channel binding: only SCRAM-SHA-256 is advertised, never -PLUS, so a
//! client that requires binding (`p=...`) is refused; `n` (no binding) and
//! `y` (the client could bind but thinks the server cannot: true) are
//! accepted, and `c=` must carry exactly the gs2 header back (RFC 5802 §7).
//! A mandatory extension (`m=`) is refused (§5.1); other extensions are
//! ignored.
//!
//! The proof is checked as §3 says: ClientKey = proof XOR
//! HMAC(StoredKey, AuthMessage), then SHA-256(ClientKey) == StoredKey, in
//! constant time. With fake keys (unknown user, or no keys stored) the
//! same work is done and the exchange fails at the same point.

use crate::keys::{ScramCredentials, hmac, sha256};
use crate::{Failure, authorize, encode};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

const WHAT: Failure = Failure::Malformed("SCRAM");

/// What the client-first message said.
pub(crate) struct ClientFirst {
    /// The authentication identity (`n=`), unescaped.
    pub user: String,
    /// The gs2 header as sent, e.g. `n,,` or `y,a=user,`.
    gs2_header: String,
    /// client-first-message-bare, as sent.
    bare: String,
    nonce: String,
}

/// The exchange after server-first: what checking client-final needs.
pub(crate) struct Pending {
    user: String,
    gs2_header: String,
    nonce: String,
    /// client-first-message-bare "," server-first-message
    auth_prefix: String,
    stored_key: [u8; 32],
    server_key: [u8; 32],
    /// False for fake keys: the exchange cannot succeed.
    real: bool,
}

/// Constant-time equality of two keys.
pub(crate) fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `saslname` (RFC 5802 §7): `=2C` for `,`, `=3D` for `=`, no other `=`.
fn unescape(s: &str) -> Result<String, Failure> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        let esc = rest.get(i..i + 3).ok_or(WHAT)?;
        out.push(match esc {
            "=2C" => ',',
            "=3D" => '=',
            _ => return Err(WHAT),
        });
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A nonce: printable ASCII but `,`, not empty.
fn valid_nonce(n: &str) -> bool {
    !n.is_empty() && n.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

/// Parses client-first-message.
pub(crate) fn client_first(raw: &[u8]) -> Result<ClientFirst, Failure> {
    let msg = std::str::from_utf8(raw).map_err(|_| WHAT)?;
    let (flag, rest) = msg.split_once(',').ok_or(WHAT)?;
    match flag {
        "n" | "y" => {}
        f if f.starts_with("p=") => return Err(Failure::ChannelBinding),
        _ => return Err(WHAT),
    }
    let (authzid, bare) = rest.split_once(',').ok_or(WHAT)?;
    let authzid = match authzid {
        "" => None,
        a => Some(unescape(a.strip_prefix("a=").ok_or(WHAT)?)?),
    };
    let gs2_header = msg[..msg.len() - bare.len()].to_owned();
    let mut attrs = bare.split(',');
    let user = match attrs.next() {
        Some(a) if a.starts_with("m=") => return Err(Failure::Malformed("SCRAM (m=)")),
        Some(a) => unescape(a.strip_prefix("n=").ok_or(WHAT)?)?,
        None => return Err(WHAT),
    };
    let nonce = attrs
        .next()
        .and_then(|a| a.strip_prefix("r="))
        .ok_or(WHAT)?;
    if user.is_empty() || !valid_nonce(nonce) {
        return Err(WHAT);
    }
    // Extensions: `attr=value`, ignored.
    if !attrs
        .all(|a| a.len() >= 2 && a.as_bytes()[0].is_ascii_alphabetic() && a.as_bytes()[1] == b'=')
    {
        return Err(WHAT);
    }
    authorize(authzid.as_deref(), &user)?;
    Ok(ClientFirst {
        user,
        gs2_header,
        bare: bare.to_owned(),
        nonce: nonce.to_owned(),
    })
}

/// server-first-message for these keys (real or fake), and what client-final
/// is checked against.
pub(crate) fn server_first(
    first: ClientFirst,
    keys: &ScramCredentials,
    real: bool,
    server_nonce: &str,
) -> (Vec<u8>, Pending) {
    let nonce = format!("{}{server_nonce}", first.nonce);
    let msg = format!(
        "r={nonce},s={},i={}",
        STANDARD.encode(&keys.salt),
        keys.iterations
    );
    let pending = Pending {
        user: first.user,
        gs2_header: first.gs2_header,
        nonce,
        auth_prefix: format!("{},{msg}", first.bare),
        stored_key: keys.stored_key,
        server_key: keys.server_key,
        real,
    };
    (msg.into_bytes(), pending)
}

/// Checks client-final-message: `Ok((user, server-final))` on a good proof.
pub(crate) fn client_final(p: &Pending, raw: &[u8]) -> Result<(String, Vec<u8>), Failure> {
    let msg = std::str::from_utf8(raw).map_err(|_| WHAT)?;
    let (without_proof, proof) = msg.rsplit_once(",p=").ok_or(WHAT)?;
    let mut attrs = without_proof.split(',');
    let binding = attrs
        .next()
        .and_then(|a| a.strip_prefix("c="))
        .ok_or(WHAT)?;
    let nonce = attrs
        .next()
        .and_then(|a| a.strip_prefix("r="))
        .ok_or(WHAT)?;
    // No channel binding: c= is the gs2 header, nothing after it.
    if STANDARD.decode(binding).ok().as_deref() != Some(p.gs2_header.as_bytes()) {
        return Err(Failure::Malformed("SCRAM (c=)"));
    }
    if nonce != p.nonce {
        return Err(Failure::Malformed("SCRAM (r=)"));
    }
    let proof: [u8; 32] = STANDARD
        .decode(proof)
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or(WHAT)?;
    let auth_message = format!("{},{without_proof}", p.auth_prefix);
    let signature = hmac(&p.stored_key, &[auth_message.as_bytes()]);
    let mut client_key = [0u8; 32];
    for (k, (a, b)) in client_key.iter_mut().zip(proof.iter().zip(signature)) {
        *k = a ^ b;
    }
    let good = ct_eq(&sha256(&client_key), &p.stored_key);
    if !(good && p.real) {
        return Err(Failure::Credentials);
    }
    let server_signature = hmac(&p.server_key, &[auth_message.as_bytes()]);
    let last = format!("v={}", encode(&server_signature));
    Ok((p.user.clone(), last.into_bytes()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn client_first_forms() {
        let f = client_first(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO").unwrap();
        assert_eq!(
            (f.user.as_str(), f.gs2_header.as_str(), f.bare.as_str()),
            ("user", "n,,", "n=user,r=rOprNGfwEbeRWgbNEkqO")
        );
        let f = client_first(b"y,a=A=3Db=2Cc,n=a=3Db=2Cc,r=x,e=ext").unwrap();
        assert_eq!(
            (f.user.as_str(), f.gs2_header.as_str()),
            ("a=b,c", "y,a=A=3Db=2Cc,")
        );
        let cases: &[(&[u8], Failure)] = &[
            (b"p=tls-unique,,n=user,r=x", Failure::ChannelBinding),
            (b"n,a=bob,n=user,r=x", Failure::AuthzidMismatch),
            (b"n,,m=ext,n=user,r=x", Failure::Malformed("SCRAM (m=)")),
            (b"x,,n=user,r=x", WHAT),
            (b"n,,n=user", WHAT),
            (b"n,,n=,r=x", WHAT),
            (b"n,,n=us=er,r=x", WHAT),
            (b"n,,n=user=2", WHAT),
            (b"n,,n=user,r=", WHAT),
            (b"n,,n=user,r=a b", WHAT),
            (b"n,,r=x,n=user", WHAT),
            (b"n,,n=user,r=x,junk", WHAT),
            (b"n,x,n=user,r=x", WHAT),
            (b"n,,n=\xff,r=x", WHAT),
            (b"", WHAT),
        ];
        for (raw, want) in cases {
            assert_eq!(client_first(raw).err(), Some(*want), "{raw:?}");
        }
    }
}
