//! ClamAV's clamd, over its INSTREAM command (clamd(8)): `zINSTREAM\0`,
//! then the message in chunks, each a 4-byte big-endian length and its
//! bytes, ended by a zero length; the reply is `stream: OK`,
//! `stream: NAME FOUND` or `... ERROR`, ended by a NUL. clamd refuses a
//! stream past its StreamMaxLength (and closes the connection): the
//! caller does not send a message larger than its `max_size`.

use crate::ScanError;
use crate::conn;
use facteur_config::scan::ScanAddr;
use std::io::Read;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What clamd found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    Clean,
    /// The signature's name.
    Virus(String),
}

/// Most bytes of a reply read.
const MAX_REPLY: usize = 4096;
const CHUNK: usize = 64 * 1024;

/// Parses a reply (without its NUL).
pub fn parse_reply(reply: &[u8]) -> Result<Finding, String> {
    let text = String::from_utf8_lossy(reply);
    let text = text.trim_end_matches(['\0', '\n', '\r']).trim();
    let rest = text.strip_prefix("stream:").map(str::trim).unwrap_or(text);
    if rest == "OK" {
        return Ok(Finding::Clean);
    }
    if let Some(name) = rest.strip_suffix(" FOUND") {
        let name = name.trim();
        if !name.is_empty() {
            return Ok(Finding::Virus(
                name.chars().filter(|c| !c.is_control()).take(200).collect(),
            ));
        }
    }
    // At most 200 characters (a byte index could fall inside one).
    let shown: String = text.chars().take(200).collect();
    Err(format!("clamd said {shown:?}"))
}

/// Scans the message read from `message`, within `timeout`.
pub async fn scan(
    addr: &ScanAddr,
    timeout: Duration,
    message: &mut (dyn Read + Send),
) -> Result<Finding, ScanError> {
    let exchange = async {
        let mut s = conn::connect(addr, timeout).await?;
        let mut buf = vec![0u8; CHUNK + 4];
        let sent = async {
            s.write_all(b"zINSTREAM\0").await?;
            loop {
                let n = message.read(&mut buf[4..])?;
                buf[..4].copy_from_slice(&(n as u32).to_be_bytes());
                s.write_all(&buf[..4 + n]).await?;
                if n == 0 {
                    break;
                }
            }
            s.flush().await
        }
        .await;
        // clamd may stop reading and answer with an error: its reply says
        // more than the broken pipe.
        let mut reply = Vec::new();
        let read = (&mut s)
            .take(MAX_REPLY as u64)
            .read_to_end(&mut reply)
            .await;
        let end = reply.iter().position(|&b| b == 0).unwrap_or(reply.len());
        if end == 0 {
            sent?;
            read?;
            return Err(ScanError::Protocol("clamd closed without a reply".into()));
        }
        parse_reply(&reply[..end]).map_err(ScanError::Protocol)
    };
    crate::within(timeout, exchange).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies() {
        assert_eq!(parse_reply(b"stream: OK"), Ok(Finding::Clean));
        assert_eq!(
            parse_reply(b"stream: Eicar-Test-Signature FOUND"),
            Ok(Finding::Virus("Eicar-Test-Signature".into()))
        );
        assert!(parse_reply(b"INSTREAM size limit exceeded. ERROR").is_err());
        assert!(parse_reply(b"stream:  FOUND").is_err());
        assert!(parse_reply(b"").is_err());
        // A long reply of multi-byte characters (the fuzzer's find: a cut
        // at byte 200 fell inside one).
        let mut long = b"\x06 y".to_vec();
        long.extend(std::iter::repeat_n(0xaf, 300));
        assert!(parse_reply(&long).is_err());
    }

    /// A clamd stand-in that reads the stream and answers as clamd does:
    /// the framing is what is tested (the real clamd is in the e2e tests).
    #[tokio::test]
    async fn the_stream_is_framed_and_ended() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clamd.sock");
        let l = tokio::net::UnixListener::bind(&path).unwrap();
        let server = tokio::spawn(async move {
            let (mut c, _) = l.accept().await.unwrap();
            let mut cmd = [0u8; 10];
            c.read_exact(&mut cmd).await.unwrap();
            assert_eq!(&cmd, b"zINSTREAM\0");
            let mut got = Vec::new();
            loop {
                let n = c.read_u32().await.unwrap() as usize;
                if n == 0 {
                    break;
                }
                let mut b = vec![0u8; n];
                c.read_exact(&mut b).await.unwrap();
                got.extend_from_slice(&b);
            }
            let reply: &[u8] = if got.windows(5).any(|w| w == b"VIRUS") {
                b"stream: Test.Virus FOUND\0"
            } else {
                b"stream: OK\0"
            };
            c.write_all(reply).await.unwrap();
            got.len()
        });
        let big: Vec<u8> = b"x".repeat(200_000).into_iter().chain(*b"VIRUS").collect();
        let addr = ScanAddr::Unix(path);
        let f = scan(&addr, Duration::from_secs(5), &mut &big[..])
            .await
            .unwrap();
        assert_eq!(f, Finding::Virus("Test.Virus".into()));
        assert_eq!(server.await.unwrap(), big.len());
    }
}
