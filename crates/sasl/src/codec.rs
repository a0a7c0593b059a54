//! Base64 for SASL, as IMAP, POP3 and SMTP use it (RFC 4422 §3.3, RFC 9051
//! §6.2.2, RFC 5034 §4, RFC 4954 §4): challenges go out base64-encoded
//! (standard alphabet, padded); a client response is one line of base64, or
//! `*` to cancel; an initial response on the command line is base64, `=`
//! standing for an empty one.
//!
//! Bounds: a line longer than the base64 form of [`MAX_RESPONSE`] bytes is
//! refused before it is decoded.

use crate::{Failure, MAX_RESPONSE};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// A decoded client response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// `*`: the client gives up.
    Cancel,
    /// The decoded bytes (possibly empty).
    Data(Vec<u8>),
}

/// The longest base64 text that decodes to at most [`MAX_RESPONSE`] bytes.
const MAX_B64: usize = MAX_RESPONSE.div_ceil(3) * 4;

/// Encodes a challenge (or any SASL data) in base64.
pub fn encode(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Decodes a response line (without its line ending; surrounding spaces
/// are ignored): `*` cancels, anything else must be base64 (an empty line
/// is an empty response).
pub fn decode_response(line: &[u8]) -> Result<Response, Failure> {
    let t = line.trim_ascii();
    if t == b"*" {
        return Ok(Response::Cancel);
    }
    decode(t).map(Response::Data)
}

/// Decodes an initial response given on the command line (RFC 4959, RFC
/// 5034, RFC 4954): base64, `=` for an empty one.
pub fn decode_initial(text: &[u8]) -> Result<Vec<u8>, Failure> {
    let t = text.trim_ascii();
    if t == b"=" {
        return Ok(Vec::new());
    }
    decode(t)
}

fn decode(t: &[u8]) -> Result<Vec<u8>, Failure> {
    if t.len() > MAX_B64 {
        return Err(Failure::TooLong);
    }
    let d = STANDARD.decode(t).map_err(|_| Failure::Base64)?;
    if d.len() > MAX_RESPONSE {
        return Err(Failure::TooLong);
    }
    Ok(d)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn responses() {
        let cases: &[(&[u8], Result<Response, Failure>)] = &[
            (b"*", Ok(Response::Cancel)),
            (b" * ", Ok(Response::Cancel)),
            (b"", Ok(Response::Data(vec![]))),
            (b"AGEAYg==", Ok(Response::Data(b"\0a\0b".to_vec()))),
            (b"not base64!", Err(Failure::Base64)),
            (b"AGEAYg", Err(Failure::Base64)),
            (b"=", Err(Failure::Base64)),
        ];
        for (t, want) in cases {
            assert_eq!(&decode_response(t), want, "{t:?}");
        }
        assert_eq!(decode_initial(b"="), Ok(vec![]));
        assert_eq!(decode_initial(b"AGEAYg=="), Ok(b"\0a\0b".to_vec()));
        assert_eq!(decode_initial(b"*"), Err(Failure::Base64));
    }

    #[test]
    fn bounds() {
        let max = encode(&[7u8; MAX_RESPONSE]);
        assert_eq!(max.len(), MAX_B64);
        assert_eq!(
            decode_response(max.as_bytes()),
            Ok(Response::Data(vec![7u8; MAX_RESPONSE]))
        );
        let over = encode(&[7u8; MAX_RESPONSE + 1]);
        assert_eq!(decode_response(over.as_bytes()), Err(Failure::TooLong));
        assert_eq!(decode_response(&vec![b'A'; 1 << 20]), Err(Failure::TooLong));
        assert_eq!(encode(b"\0a\0b"), "AGEAYg==");
    }
}
