//! The milter protocol's packets (Sendmail's libmilter, version 6): a
//! 4-byte big-endian length (the command byte included), a command byte,
//! its data. Pure: [`encode`] builds what the MTA sends, [`decode`] reads
//! what a milter answers (fuzzed: `fuzz_targets/milter_codec.rs`).
//!
//! There is no RFC; the protocol is defined by libmilter's sources and
//! `mfdef.h`, which Postfix, OpenDKIM, clamav-milter and spamass-milter
//! all follow. Our own implementation: no maintained Rust milter client
//! exists, and the MTA side is small.

/// Commands the MTA sends.
pub mod cmd {
    pub const ABORT: u8 = b'A';
    pub const BODY: u8 = b'B';
    pub const CONNECT: u8 = b'C';
    pub const MACRO: u8 = b'D';
    pub const BODYEOB: u8 = b'E';
    pub const HELO: u8 = b'H';
    pub const QUIT_NC: u8 = b'K';
    pub const HEADER: u8 = b'L';
    pub const MAIL: u8 = b'M';
    pub const EOH: u8 = b'N';
    pub const OPTNEG: u8 = b'O';
    pub const QUIT: u8 = b'Q';
    pub const RCPT: u8 = b'R';
    pub const DATA: u8 = b'T';
}

/// Protocol flags: steps the MTA may leave out, or answers the milter
/// will not send (`SMFIP_*`).
pub mod proto {
    pub const NOCONNECT: u32 = 0x1;
    pub const NOHELO: u32 = 0x2;
    pub const NOMAIL: u32 = 0x4;
    pub const NORCPT: u32 = 0x8;
    pub const NOBODY: u32 = 0x10;
    pub const NOHDRS: u32 = 0x20;
    pub const NOEOH: u32 = 0x40;
    pub const NR_HDR: u32 = 0x80;
    pub const NOUNKNOWN: u32 = 0x100;
    pub const NODATA: u32 = 0x200;
    pub const SKIP: u32 = 0x400;
    pub const NR_CONN: u32 = 0x1000;
    pub const NR_HELO: u32 = 0x2000;
    pub const NR_MAIL: u32 = 0x4000;
    pub const NR_RCPT: u32 = 0x8000;
    pub const NR_DATA: u32 = 0x10000;
    pub const NR_UNKN: u32 = 0x20000;
    pub const NR_EOH: u32 = 0x40000;
    pub const NR_BODY: u32 = 0x80000;
    /// What we offer: every step may be left out, every no-reply, SKIP.
    pub const OFFERED: u32 = NOCONNECT
        | NOHELO
        | NOMAIL
        | NORCPT
        | NOBODY
        | NOHDRS
        | NOEOH
        | NR_HDR
        | NOUNKNOWN
        | NODATA
        | SKIP
        | NR_CONN
        | NR_HELO
        | NR_MAIL
        | NR_RCPT
        | NR_DATA
        | NR_UNKN
        | NR_EOH
        | NR_BODY;
}

/// Actions a milter may take at the end of the message (`SMFIF_*`): the
/// ones we carry out.
pub mod actions {
    pub const ADDHDRS: u32 = 0x1;
    pub const CHGBODY: u32 = 0x2;
    pub const CHGHDRS: u32 = 0x10;
    pub const QUARANTINE: u32 = 0x20;
    pub const OFFERED: u32 = ADDHDRS | CHGBODY | CHGHDRS | QUARANTINE;
}

pub const VERSION: u32 = 6;
/// Most bytes of one packet we accept from a milter.
pub const MAX_PACKET: usize = 1024 * 1024;
/// Body chunks we send are at most this long (libmilter's MILTER_CHUNK_SIZE).
pub const CHUNK: usize = 65_535;

/// One packet: its bytes on the wire.
pub fn encode(command: u8, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + data.len());
    out.extend_from_slice(&(data.len() as u32 + 1).to_be_bytes());
    out.push(command);
    out.extend_from_slice(data);
    out
}

/// NUL-terminated strings, one after the other.
pub fn strings(parts: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in parts {
        // A NUL inside would cut the string short on the other side.
        out.extend(p.bytes().filter(|&b| b != 0));
        out.push(0);
    }
    out
}

/// The option negotiation we open with.
pub fn optneg() -> Vec<u8> {
    let mut d = Vec::with_capacity(12);
    d.extend_from_slice(&VERSION.to_be_bytes());
    d.extend_from_slice(&actions::OFFERED.to_be_bytes());
    d.extend_from_slice(&proto::OFFERED.to_be_bytes());
    encode(cmd::OPTNEG, &d)
}

/// `SMFIC_MACRO` for the stage `stage` (the command it precedes).
pub fn macros(stage: u8, pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut d = vec![stage];
    for (k, v) in pairs {
        d.extend_from_slice(&strings(&[k, v]));
    }
    encode(cmd::MACRO, &d)
}

/// `SMFIC_CONNECT`: the client's name, then its address (family `4`,
/// `6`, or `U` for unknown without port and address).
pub fn connect(hostname: &str, ip: Option<std::net::IpAddr>, port: u16) -> Vec<u8> {
    let mut d = strings(&[hostname]);
    match ip {
        Some(ip) => {
            d.push(if ip.is_ipv4() { b'4' } else { b'6' });
            d.extend_from_slice(&port.to_be_bytes());
            d.extend_from_slice(&strings(&[&ip.to_string()]));
        }
        None => d.push(b'U'),
    }
    encode(cmd::CONNECT, &d)
}

/// What a milter answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// The option negotiation: version, actions, protocol flags.
    Negotiate {
        version: u32,
        actions: u32,
        protocol: u32,
    },
    Continue,
    /// Accept: no more of this message (or connection) for this milter.
    Accept,
    Reject,
    Tempfail,
    Discard,
    /// A whole SMTP reply (`550 5.7.1 text`).
    ReplyCode(String),
    /// No more body chunks, please.
    Skip,
    /// Still working (resets the time-out).
    Progress,
    AddHeader {
        name: String,
        value: String,
    },
    InsHeader {
        index: u32,
        name: String,
        value: String,
    },
    ChgHeader {
        index: u32,
        name: String,
        value: String,
    },
    ReplBody(Vec<u8>),
    Quarantine(String),
    /// An action we did not offer (recipients, sender changes, ...).
    Unsupported(u8),
}

/// Reads one packet from the start of `buf`: the response and the bytes
/// it took, `Ok(None)` if more bytes are needed, or why it is broken.
pub fn decode(buf: &[u8]) -> Result<Option<(Response, usize)>, String> {
    let Some(len) = buf.get(..4) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
    if len == 0 || len > MAX_PACKET {
        return Err(format!("packet length {len}"));
    }
    let Some(packet) = buf.get(4..4 + len) else {
        return Ok(None);
    };
    let (code, data) = (packet[0], &packet[1..]);
    let r = match code {
        b'O' => {
            let n = |i: usize| {
                data.get(i..i + 4)
                    .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                    .ok_or_else(|| "short option negotiation".to_string())
            };
            Response::Negotiate {
                version: n(0)?,
                actions: n(4)?,
                protocol: n(8)?,
            }
        }
        b'c' => Response::Continue,
        b'a' => Response::Accept,
        b'r' => Response::Reject,
        b't' => Response::Tempfail,
        b'd' => Response::Discard,
        b's' => Response::Skip,
        b'p' => Response::Progress,
        b'y' => Response::ReplyCode(cstrings(data, 1)?.remove(0)),
        b'h' => {
            let mut s = cstrings(data, 2)?;
            let value = s.remove(1);
            Response::AddHeader {
                name: s.remove(0),
                value,
            }
        }
        b'i' | b'm' => {
            let idx = data.get(..4).ok_or("short header change")?;
            let index = u32::from_be_bytes([idx[0], idx[1], idx[2], idx[3]]);
            let mut s = cstrings(&data[4..], 2)?;
            let (name, value) = (s.remove(0), s.remove(0));
            if code == b'i' {
                Response::InsHeader { index, name, value }
            } else {
                Response::ChgHeader { index, name, value }
            }
        }
        b'b' => Response::ReplBody(data.to_vec()),
        b'q' => Response::Quarantine(cstrings(data, 1)?.remove(0)),
        other => Response::Unsupported(other),
    };
    Ok(Some((r, 4 + len)))
}

/// The first `n` NUL-terminated strings of `data` (lossy UTF-8).
fn cstrings(data: &[u8], n: usize) -> Result<Vec<String>, String> {
    let mut out = Vec::with_capacity(n);
    let mut rest = data;
    for _ in 0..n {
        let end = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or("a string without its NUL")?;
        out.push(String::from_utf8_lossy(&rest[..end]).into_owned());
        rest = &rest[end + 1..];
    }
    Ok(out)
}

/// A reply code from `SMFIR_REPLYCODE` made safe: three digits, 4xx or
/// 5xx, one line. `None` when it is not usable.
pub fn reply_code(text: &str) -> Option<(u16, String)> {
    let code: u16 = text.get(..3)?.parse().ok()?;
    if !(400..600).contains(&code) {
        return None;
    }
    // A multi-line reply: the lines' texts, each without its code.
    let lines: Vec<String> = text
        .split(['\r', '\n'])
        .filter(|l| !l.is_empty())
        .map(|l| {
            let l = l.strip_prefix(&text[..3]).unwrap_or(l);
            let l = l.trim_start_matches(['-', ' ']).trim();
            l.chars().filter(|c| !c.is_control()).collect()
        })
        .collect();
    Some((code, lines.join(" ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_out() {
        assert_eq!(encode(cmd::ABORT, b""), [0, 0, 0, 1, b'A']);
        let o = optneg();
        assert_eq!(&o[..5], [0, 0, 0, 13, b'O']);
        assert_eq!(&o[5..9], &6u32.to_be_bytes());
        let c = connect("mail.example", Some("192.0.2.1".parse().unwrap()), 25);
        assert_eq!(&c[5..], b"mail.example\x004\x00\x19192.0.2.1\x00");
        assert_eq!(&connect("x", None, 0)[5..], b"x\x00U");
        assert_eq!(&macros(cmd::MAIL, &[("i", "Q1")])[5..], b"Mi\x00Q1\x00");
        assert_eq!(strings(&["a\0b"]), b"ab\0");
    }

    #[test]
    fn packets_in() {
        let mut buf = encode(b'h', b"X-Virus-Scanned\0ClamAV\0");
        buf.extend(encode(b'm', b"\0\0\0\x02Subject\0[SPAM] x\0"));
        buf.extend(encode(b'y', b"550 5.7.1 Virus found\0"));
        buf.extend(encode(b'c', b""));
        let (r, n) = decode(&buf).unwrap().unwrap();
        assert_eq!(
            r,
            Response::AddHeader {
                name: "X-Virus-Scanned".into(),
                value: "ClamAV".into()
            }
        );
        let (r, m) = decode(&buf[n..]).unwrap().unwrap();
        assert_eq!(
            r,
            Response::ChgHeader {
                index: 2,
                name: "Subject".into(),
                value: "[SPAM] x".into()
            }
        );
        let (r, k) = decode(&buf[n + m..]).unwrap().unwrap();
        assert_eq!(r, Response::ReplyCode("550 5.7.1 Virus found".into()));
        assert_eq!(
            decode(&buf[n + m + k..]).unwrap().unwrap().0,
            Response::Continue
        );
        // Incomplete: more bytes needed; broken: an error.
        assert_eq!(decode(&buf[..3]), Ok(None));
        assert_eq!(decode(&buf[..10]), Ok(None));
        assert!(decode(&[0, 0, 0, 0]).is_err());
        assert!(decode(&[0xff, 0, 0, 0, b'c']).is_err());
        assert!(decode(&encode(b'h', b"no nul")).is_err());
        assert!(decode(&encode(b'O', b"\0\0")).is_err());
        assert_eq!(
            decode(&encode(b'+', b"<x@y>\0")).unwrap().unwrap().0,
            Response::Unsupported(b'+')
        );
    }

    #[test]
    fn reply_codes() {
        assert_eq!(
            reply_code("550 5.7.1 go away"),
            Some((550, "5.7.1 go away".into()))
        );
        assert_eq!(
            reply_code("451-4.7.1 later\r\n451 4.7.1 more"),
            Some((451, "4.7.1 later 4.7.1 more".into()))
        );
        assert_eq!(reply_code("250 ok"), None);
        assert_eq!(reply_code("5x0"), None);
    }
}
