//! One conversation with a milter, alongside one SMTP session: options
//! negotiated at the start, then each stage (connect, HELO, MAIL, RCPT,
//! the message) sent with its macros, unless the milter asked to skip it,
//! and its answer read, unless the milter said it would not send one.
//! Every read has the time-out (a progress packet restarts it).

use super::codec::{self, Response, actions, cmd, proto};
use crate::ScanError;
use crate::conn::{self, Stream};
use facteur_config::scan::ScanAddr;
use std::io::{BufRead, Read};
use std::pin::Pin;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A milter's decision at a stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Continue,
    /// No more for this message (at connect or HELO: for the session).
    Accept,
    Reject,
    Tempfail,
    Discard,
    /// A reply of the milter's: code and text.
    Reply(u16, String),
}

impl Decision {
    fn from(r: &Response) -> Option<Decision> {
        Some(match r {
            Response::Continue => Decision::Continue,
            Response::Accept => Decision::Accept,
            Response::Reject => Decision::Reject,
            Response::Tempfail => Decision::Tempfail,
            Response::Discard => Decision::Discard,
            Response::ReplyCode(t) => match codec::reply_code(t) {
                Some((code, text)) => Decision::Reply(code, text),
                None if t.starts_with('4') => Decision::Tempfail,
                None => Decision::Reject,
            },
            _ => return None,
        })
    }
}

/// The end of a message: the decision, and the changes asked before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndOfMessage {
    pub decision: Decision,
    pub changes: Vec<Response>,
}

/// The MTA's side of one milter conversation.
pub struct Session {
    stream: Pin<Box<dyn Stream>>,
    buf: Vec<u8>,
    timeout: Duration,
    /// What the milter asked for (steps left out, answers it won't send).
    protocol: u32,
    /// The actions it may take (those we offered and it wants).
    pub actions: u32,
    /// A transaction was started (MAIL sent) and not ended.
    in_txn: bool,
}

impl Session {
    /// Connects and negotiates.
    pub async fn open(addr: &ScanAddr, timeout: Duration) -> Result<Session, ScanError> {
        let stream = conn::connect(addr, timeout).await?;
        let mut s = Session {
            stream,
            buf: Vec::new(),
            timeout,
            protocol: 0,
            actions: 0,
            in_txn: false,
        };
        s.send(&codec::optneg()).await?;
        match s.read().await? {
            Response::Negotiate {
                version,
                actions: a,
                protocol,
            } => {
                if version < 2 {
                    return Err(ScanError::Protocol(format!(
                        "milter protocol version {version}"
                    )));
                }
                // A milter may ask only for what was offered.
                s.actions = a & actions::OFFERED;
                s.protocol = protocol & proto::OFFERED;
                Ok(s)
            }
            other => Err(ScanError::Protocol(format!(
                "{other:?} instead of the negotiation"
            ))),
        }
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<(), ScanError> {
        match tokio::time::timeout(self.timeout, self.stream.write_all(bytes)).await {
            Ok(r) => Ok(r?),
            Err(_) => Err(ScanError::Timeout(self.timeout.as_secs())),
        }
    }

    /// The next packet (progress packets skipped, each restarting the
    /// time-out).
    async fn read(&mut self) -> Result<Response, ScanError> {
        loop {
            match codec::decode(&self.buf).map_err(ScanError::Protocol)? {
                Some((Response::Progress, n)) => {
                    self.buf.drain(..n);
                }
                Some((r, n)) => {
                    self.buf.drain(..n);
                    return Ok(r);
                }
                None => {
                    let mut chunk = [0u8; 16 * 1024];
                    let n = match tokio::time::timeout(self.timeout, self.stream.read(&mut chunk))
                        .await
                    {
                        Ok(r) => r?,
                        Err(_) => return Err(ScanError::Timeout(self.timeout.as_secs())),
                    };
                    if n == 0 {
                        return Err(ScanError::Protocol(
                            "the milter closed the connection".into(),
                        ));
                    }
                    self.buf.extend_from_slice(&chunk[..n]);
                }
            }
        }
    }

    /// Reads until a decision.
    async fn decision(&mut self) -> Result<Decision, ScanError> {
        let r = self.read().await?;
        Decision::from(&r).ok_or_else(|| ScanError::Protocol(format!("{r:?} out of place")))
    }

    /// Sends a stage (with its macros first) unless it is left out, and
    /// reads its answer unless none comes.
    async fn stage(
        &mut self,
        command: u8,
        data: Vec<u8>,
        macros: &[(&str, &str)],
        skip: u32,
        no_reply: u32,
    ) -> Result<Decision, ScanError> {
        if self.protocol & skip != 0 {
            return Ok(Decision::Continue);
        }
        let mut out = if macros.is_empty() {
            Vec::new()
        } else {
            codec::macros(command, macros)
        };
        out.extend_from_slice(&codec::encode(command, &data));
        self.send(&out).await?;
        if self.protocol & no_reply != 0 {
            return Ok(Decision::Continue);
        }
        self.decision().await
    }

    pub async fn connect(
        &mut self,
        hostname: &str,
        ip: Option<std::net::IpAddr>,
        port: u16,
        macros: &[(&str, &str)],
    ) -> Result<Decision, ScanError> {
        let packet = codec::connect(hostname, ip, port);
        self.stage(
            cmd::CONNECT,
            packet[5..].to_vec(),
            macros,
            proto::NOCONNECT,
            proto::NR_CONN,
        )
        .await
    }

    pub async fn helo(
        &mut self,
        name: &str,
        macros: &[(&str, &str)],
    ) -> Result<Decision, ScanError> {
        self.stage(
            cmd::HELO,
            codec::strings(&[name]),
            macros,
            proto::NOHELO,
            proto::NR_HELO,
        )
        .await
    }

    /// MAIL: `<address>` then its ESMTP parameters. A transaction still
    /// open (an RSET or a refused message) is aborted first.
    pub async fn mail(
        &mut self,
        args: &[&str],
        macros: &[(&str, &str)],
    ) -> Result<Decision, ScanError> {
        self.abort().await?;
        self.in_txn = true;
        self.stage(
            cmd::MAIL,
            codec::strings(args),
            macros,
            proto::NOMAIL,
            proto::NR_MAIL,
        )
        .await
    }

    pub async fn rcpt(
        &mut self,
        args: &[&str],
        macros: &[(&str, &str)],
    ) -> Result<Decision, ScanError> {
        self.stage(
            cmd::RCPT,
            codec::strings(args),
            macros,
            proto::NORCPT,
            proto::NR_RCPT,
        )
        .await
    }

    /// Ends the transaction the milter is in, if any.
    pub async fn abort(&mut self) -> Result<(), ScanError> {
        if self.in_txn {
            self.in_txn = false;
            self.send(&codec::encode(cmd::ABORT, b"")).await?;
        }
        Ok(())
    }

    /// The message: DATA, its header fields, the end of the header,
    /// the body in chunks, then the end of the body and the changes
    /// asked. `message` is the message as received (CRLF lines).
    pub async fn message(
        &mut self,
        message: &mut (dyn Read + Send),
        macros: &[(&str, &str)],
        max_header: usize,
    ) -> Result<EndOfMessage, ScanError> {
        let end = |d| {
            Ok(EndOfMessage {
                decision: d,
                changes: Vec::new(),
            })
        };
        let d = self
            .stage(cmd::DATA, Vec::new(), macros, proto::NODATA, proto::NR_DATA)
            .await?;
        if d != Decision::Continue {
            return end(d);
        }
        let mut r = std::io::BufReader::new(message);
        let fields = read_header(&mut r, max_header)?;
        if self.protocol & proto::NOHDRS == 0 {
            for (name, value) in &fields {
                let d = self
                    .stage(
                        cmd::HEADER,
                        codec::strings(&[name, value]),
                        &[],
                        0,
                        proto::NR_HDR,
                    )
                    .await?;
                if d != Decision::Continue {
                    return end(d);
                }
            }
        }
        let d = self
            .stage(cmd::EOH, Vec::new(), macros, proto::NOEOH, proto::NR_EOH)
            .await?;
        if d != Decision::Continue {
            return end(d);
        }
        if self.protocol & proto::NOBODY == 0 {
            let mut chunk = vec![0u8; codec::CHUNK];
            loop {
                let n = fill(&mut r, &mut chunk)?;
                if n == 0 {
                    break;
                }
                self.send(&codec::encode(cmd::BODY, &chunk[..n])).await?;
                if self.protocol & proto::NR_BODY == 0 {
                    match self.read().await? {
                        Response::Skip => break,
                        r => match Decision::from(&r) {
                            Some(Decision::Continue) => {}
                            Some(d) => return end(d),
                            None => return Err(ScanError::Protocol(format!("{r:?} in the body"))),
                        },
                    }
                }
            }
        }
        self.send(&codec::encode(cmd::BODYEOB, b"")).await?;
        let mut changes = Vec::new();
        loop {
            let r = self.read().await?;
            if let Some(d) = Decision::from(&r) {
                self.in_txn = false;
                return Ok(EndOfMessage {
                    decision: d,
                    changes,
                });
            }
            match &r {
                Response::AddHeader { .. }
                | Response::InsHeader { .. }
                | Response::ChgHeader { .. }
                    if self.actions & (actions::ADDHDRS | actions::CHGHDRS) != 0 => {}
                Response::ReplBody(_) if self.actions & actions::CHGBODY != 0 => {}
                Response::Quarantine(_) if self.actions & actions::QUARANTINE != 0 => {}
                other => {
                    return Err(ScanError::Protocol(format!(
                        "{other:?}: not an action it may take"
                    )));
                }
            }
            changes.push(r);
            if changes.len() > 10_000 {
                return Err(ScanError::Protocol("too many changes".into()));
            }
        }
    }

    /// Says goodbye (the milter may keep its state for the next session).
    pub async fn quit(mut self) {
        let _ = self.send(&codec::encode(cmd::QUIT, b"")).await;
    }
}

/// Reads as much as fits (a body chunk), unlike a single `read`.
fn fill(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        let k = r.read(&mut buf[n..])?;
        if k == 0 {
            break;
        }
        n += k;
    }
    Ok(n)
}

/// The header fields of a message, as milters get them: the name, and
/// the value without the space after the colon, folded lines joined by
/// LF (Sendmail's form). The reader is left at the body.
pub fn read_header(r: &mut impl BufRead, max: usize) -> Result<Vec<(String, String)>, ScanError> {
    let mut fields: Vec<(String, String)> = Vec::new();
    let mut total = 0;
    loop {
        let mut line = Vec::new();
        let n = r
            .by_ref()
            .take(max as u64 + 1)
            .read_until(b'\n', &mut line)?;
        total += n;
        if total > max {
            return Err(ScanError::Protocol(
                "header section too large for the milter".into(),
            ));
        }
        if n == 0 || line == b"\r\n" || line == b"\n" {
            return Ok(fields);
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        match (text.starts_with([' ', '\t']), fields.last_mut()) {
            (true, Some((_, v))) => {
                v.push('\n');
                v.push_str(text);
            }
            _ => {
                let (name, value) = text.split_once(':').unwrap_or((text, ""));
                let value = value.strip_prefix(' ').unwrap_or(value);
                fields.push((name.trim().to_string(), value.to_string()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A milter stand-in that records each packet's command and answers
    /// as libmilter does (the real clamav-milter is in the e2e tests):
    /// the framing of every stage is what is tested.
    #[tokio::test]
    async fn every_stage_is_one_framed_packet_after_its_macros() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = ScanAddr::Tcp(l.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let (mut c, _) = l.accept().await.unwrap();
            let mut seen = Vec::new();
            loop {
                let Ok(n) = c.read_u32().await else {
                    return seen;
                };
                let mut p = vec![0u8; n as usize];
                c.read_exact(&mut p).await.unwrap();
                seen.push(p[0]);
                let reply: Vec<u8> = match p[0] {
                    b'O' => codec::encode(b'O', &[0, 0, 0, 6, 0, 0, 0, 0x11, 0, 0, 0, 0]),
                    b'E' => {
                        let mut r = codec::encode(b'h', b"X-Scanned\0yes\0");
                        r.extend(codec::encode(b'p', b""));
                        r.extend(codec::encode(b'c', b""));
                        r
                    }
                    b'D' => continue,
                    b'R' => codec::encode(b'y', b"550 5.1.1 no such user\0"),
                    b'Q' => return seen,
                    _ => codec::encode(b'c', b""),
                };
                c.write_all(&reply).await.unwrap();
            }
        });
        let t = Duration::from_secs(5);
        let mut s = Session::open(&addr, t).await.unwrap();
        assert_eq!(s.actions, actions::ADDHDRS | actions::CHGHDRS);
        let ip = Some("192.0.2.1".parse().unwrap());
        assert_eq!(
            s.connect("c.example", ip, 0, &[("j", "mx")]).await.unwrap(),
            Decision::Continue
        );
        assert_eq!(s.helo("c.example", &[]).await.unwrap(), Decision::Continue);
        assert_eq!(
            s.mail(&["<a@b.example>"], &[]).await.unwrap(),
            Decision::Continue
        );
        assert_eq!(
            s.rcpt(&["<x@y.example>"], &[]).await.unwrap(),
            Decision::Reply(550, "5.1.1 no such user".into())
        );
        let msg = b"Subject: a\r\nX-B: b\r\n\r\nbody\r\n";
        let eom = s.message(&mut &msg[..], &[("i", "Q")], 1000).await.unwrap();
        assert_eq!(eom.decision, Decision::Continue);
        assert_eq!(
            eom.changes,
            [Response::AddHeader {
                name: "X-Scanned".into(),
                value: "yes".into()
            }]
        );
        s.quit().await;
        let seen = String::from_utf8(server.await.unwrap()).unwrap();
        assert_eq!(seen, "ODCHMRDTLLDNBEQ");
    }

    #[test]
    fn header_fields_as_milters_see_them() {
        let msg = b"Received: from a\r\n\tby b\r\nSubject:  two spaces\r\nX-Empty:\r\n\r\nbody\r\n";
        let mut r = std::io::BufReader::new(&msg[..]);
        let f = read_header(&mut r, 1000).unwrap();
        assert_eq!(
            f,
            vec![
                ("Received".into(), "from a\n\tby b".into()),
                ("Subject".into(), " two spaces".into()),
                ("X-Empty".into(), "".into()),
            ]
        );
        let mut rest = String::new();
        r.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "body\r\n");
        let mut r = std::io::BufReader::new(&msg[..]);
        assert!(read_header(&mut r, 10).is_err());
    }
}
