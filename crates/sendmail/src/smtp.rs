//! `sendmail -bs`: a minimal but correct SMTP server on stdin/stdout
//! (RFC 5321), for programs that submit mail by speaking SMTP to a pipe.
//!
//! Offers: [`session`], generic over `Read` + `Write` so tests run it in
//! memory; the caller passes the function that queues a finished
//! transaction. Commands: EHLO/HELO, MAIL (BODY, SMTPUTF8, RET, ENVID), RCPT
//! (NOTIFY, ORCPT), DATA, RSET, NOOP, VRFY (252), QUIT; anything else 502.
//!
//! Uses facteur-smtp-codec for line framing (length limit), command parsing
//! and DATA (ends only at CRLF.CRLF, dot-unstuffing, size limit). A bare LF
//! inside DATA is made a CRLF: the client is a local program, and the
//! message is re-framed into network form here, not relayed as is.
//!
//! Security: runs as the invoking user, with that user's rights only; memory
//! is bounded by the line limit and the message size limit.

use facteur_mail::dsn::{Notify, Ret};
use facteur_smtp_codec::{Command, DataReceiver, LineEvent, LineFramer, Reply, parse_command};
use facteur_spool::Recipient;
use smtp_proto::{
    MAIL_BODY_8BITMIME, MAIL_BODY_BINARYMIME, MAIL_RET_FULL, MAIL_RET_HDRS, MAIL_SMTPUTF8,
    RCPT_NOTIFY_DELAY, RCPT_NOTIFY_FAILURE, RCPT_NOTIFY_NEVER, RCPT_NOTIFY_SUCCESS,
};
use std::io::{self, Read, Write};

/// A finished SMTP transaction, ready to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    pub sender: String,
    pub recipients: Vec<Recipient>,
    pub ret: Option<Ret>,
    pub envid: Option<String>,
    pub eight_bit: bool,
    pub smtputf8: bool,
    /// The message, network form, dot-unstuffed.
    pub data: Vec<u8>,
}

const MAX_LINE: usize = 4096;

fn reply(out: &mut impl Write, r: Reply) -> io::Result<()> {
    out.write_all(&r.to_bytes())?;
    out.flush()
}

/// Makes every bare LF a CRLF.
fn crlf(data: Vec<u8>) -> Vec<u8> {
    let bare = |i: usize| data[i] == b'\n' && (i == 0 || data[i - 1] != b'\r');
    if !(0..data.len()).any(bare) {
        return data;
    }
    let mut out = Vec::with_capacity(data.len() + 64);
    for (i, &b) in data.iter().enumerate() {
        if bare(i) {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

/// Runs one SMTP session. `normalize` checks an address and completes it
/// (`user` -> `user@hostname`); `submit` queues a transaction and returns
/// the queue id, or a reason for a 451.
pub fn session<R: Read, W: Write>(
    mut input: R,
    mut output: W,
    hostname: &str,
    max_size: u64,
    normalize: &dyn Fn(&str) -> Result<String, String>,
    submit: &mut dyn FnMut(Transaction) -> Result<String, String>,
) -> io::Result<()> {
    reply(
        &mut output,
        Reply::plain(220, format!("{hostname} ESMTP facteur sendmail")),
    )?;
    let mut framer = LineFramer::new(MAX_LINE);
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    let mut chunk = vec![0u8; 8192];
    let mut greeted = false;
    let mut tx: Option<Transaction> = None;
    let mut data: Option<(DataReceiver, Vec<u8>)> = None;
    let mut eof = false;
    loop {
        // DATA mode: feed everything buffered to the receiver.
        if let Some((rx, msg)) = data.as_mut() {
            let used = rx.feed(&buf, msg);
            buf.drain(..used);
            if rx.is_done() {
                let outcome = rx.outcome();
                let (_, msg) = data.take().expect("in data mode");
                let mut t = tx.take().expect("DATA needs a transaction");
                let r = if outcome.too_big {
                    Reply::new(552, (5, 3, 4), "Message too big")
                } else {
                    t.data = crlf(msg);
                    match submit(t) {
                        Ok(id) => Reply::new(250, (2, 0, 0), format!("Ok: queued as {id}")),
                        Err(e) => Reply::new(451, (4, 3, 0), format!("Not queued: {e}")),
                    }
                };
                reply(&mut output, r)?;
                continue;
            }
        } else {
            let (used, ev) = framer.next(&buf);
            let line = match ev {
                Some(LineEvent::Line(l)) => Some(l.to_vec()),
                Some(LineEvent::TooLong) => {
                    reply(&mut output, Reply::new(500, (5, 5, 2), "Line too long"))?;
                    None
                }
                None => None,
            };
            buf.drain(..used);
            if let Some(line) = line {
                if !command(
                    &line,
                    &mut output,
                    hostname,
                    max_size,
                    normalize,
                    &mut greeted,
                    &mut tx,
                    &mut data,
                )? {
                    return Ok(());
                }
                continue;
            }
            if used > 0 {
                continue;
            }
        }
        if eof {
            return Ok(());
        }
        let n = input.read(&mut chunk)?;
        if n == 0 {
            eof = true;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Handles one command line; false ends the session (QUIT).
#[allow(clippy::too_many_arguments)]
fn command(
    line: &[u8],
    out: &mut impl Write,
    hostname: &str,
    max_size: u64,
    normalize: &dyn Fn(&str) -> Result<String, String>,
    greeted: &mut bool,
    tx: &mut Option<Transaction>,
    data: &mut Option<(DataReceiver, Vec<u8>)>,
) -> io::Result<bool> {
    let cmd = match parse_command(line) {
        Ok(c) => c,
        Err(r) => {
            reply(out, r)?;
            return Ok(true);
        }
    };
    let r = match cmd {
        Command::Ehlo { .. } => {
            *greeted = true;
            *tx = None;
            Reply::multi(
                250,
                vec![
                    hostname.to_string(),
                    "PIPELINING".into(),
                    format!("SIZE {max_size}"),
                    "8BITMIME".into(),
                    "SMTPUTF8".into(),
                    "DSN".into(),
                    "ENHANCEDSTATUSCODES".into(),
                ],
            )
        }
        Command::Helo { .. } => {
            *greeted = true;
            *tx = None;
            Reply::plain(250, hostname.to_string())
        }
        Command::Mail { from } => {
            if !*greeted {
                Reply::new(503, (5, 5, 1), "Send EHLO or HELO first")
            } else if tx.is_some() {
                Reply::new(503, (5, 5, 1), "Nested MAIL command")
            } else if max_size > 0 && from.size as u64 > max_size {
                Reply::new(552, (5, 3, 4), "Message too big")
            } else {
                let sender = if from.address.is_empty() {
                    Ok(String::new())
                } else {
                    normalize(&from.address)
                };
                match sender {
                    Err(e) => Reply::new(501, (5, 1, 7), format!("Bad sender address: {e}")),
                    Ok(sender) => {
                        let f = from.flags;
                        *tx = Some(Transaction {
                            sender,
                            recipients: Vec::new(),
                            ret: if f & MAIL_RET_FULL != 0 {
                                Some(Ret::Full)
                            } else if f & MAIL_RET_HDRS != 0 {
                                Some(Ret::Hdrs)
                            } else {
                                None
                            },
                            envid: from.env_id,
                            eight_bit: f & (MAIL_BODY_8BITMIME | MAIL_BODY_BINARYMIME) != 0,
                            smtputf8: f & MAIL_SMTPUTF8 != 0,
                            data: Vec::new(),
                        });
                        Reply::new(250, (2, 1, 0), "Ok")
                    }
                }
            }
        }
        Command::Rcpt { to } => match tx.as_mut() {
            None => Reply::new(503, (5, 5, 1), "Need MAIL command"),
            Some(t) => match normalize(&to.address) {
                Err(e) => Reply::new(501, (5, 1, 3), format!("Bad recipient address: {e}")),
                Ok(address) => {
                    let f = to.flags;
                    t.recipients.push(Recipient {
                        address,
                        orcpt: to.orcpt.map(|o| format!("rfc822;{o}")),
                        notify: Notify {
                            success: f & RCPT_NOTIFY_SUCCESS != 0,
                            failure: f & RCPT_NOTIFY_FAILURE != 0,
                            delay: f & RCPT_NOTIFY_DELAY != 0,
                            never: f & RCPT_NOTIFY_NEVER != 0,
                        },
                        ..Recipient::default()
                    });
                    Reply::new(250, (2, 1, 5), "Ok")
                }
            },
        },
        Command::Data => match tx.as_ref() {
            None => Reply::new(503, (5, 5, 1), "Need MAIL command"),
            Some(t) if t.recipients.is_empty() => Reply::new(554, (5, 5, 1), "No valid recipients"),
            Some(_) => {
                *data = Some((DataReceiver::new(max_size), Vec::new()));
                Reply::plain(354, "End data with <CR><LF>.<CR><LF>")
            }
        },
        Command::Rset => {
            *tx = None;
            Reply::new(250, (2, 0, 0), "Ok")
        }
        Command::Noop { .. } => Reply::new(250, (2, 0, 0), "Ok"),
        Command::Vrfy { .. } => Reply::new(252, (2, 5, 2), "Cannot VRFY, send some mail"),
        Command::Quit => {
            reply(out, Reply::new(221, (2, 0, 0), "Bye"))?;
            return Ok(false);
        }
        _ => Reply::new(502, (5, 5, 1), "Command not implemented"),
    };
    reply(out, r)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(a: &str) -> Result<String, String> {
        crate::normalize_address(a, "host.example")
    }

    /// Runs a session over `input`; returns the server's output and the
    /// queued transactions.
    fn run(input: &str) -> (String, Vec<Transaction>) {
        let mut out = Vec::new();
        let mut got = Vec::new();
        let mut submit = |t: Transaction| {
            got.push(t);
            Ok(format!("ID{}", got.len()))
        };
        session(
            input.as_bytes(),
            &mut out,
            "host.example",
            1000,
            &norm,
            &mut submit,
        )
        .unwrap();
        (String::from_utf8(out).unwrap(), got)
    }

    fn codes(out: &str) -> Vec<&str> {
        out.lines()
            .filter(|l| l.as_bytes().get(3) == Some(&b' '))
            .map(|l| &l[..3])
            .collect()
    }

    #[test]
    fn transcript_one_message() {
        let (out, got) = run(
            "EHLO client\r\nMAIL FROM:<me@a.example> BODY=8BITMIME\r\nRCPT TO:<you@b.example> NOTIFY=FAILURE\r\n\
RCPT TO:<root@host.example>\r\nDATA\r\nSubject: hi\r\n\r\n..dotted\r\nline\r\n.\r\nQUIT\r\n",
        );
        assert_eq!(
            codes(&out),
            ["220", "250", "250", "250", "250", "354", "250", "221"],
            "{out}"
        );
        assert!(out.contains("250 2.0.0 Ok: queued as ID1"));
        assert!(out.contains("250-8BITMIME\r\n"));
        assert_eq!(got.len(), 1);
        let t = &got[0];
        assert_eq!(t.sender, "me@a.example");
        assert_eq!(t.recipients[0].address, "you@b.example");
        assert!(t.recipients[0].notify.failure);
        assert_eq!(t.recipients[1].address, "root@host.example");
        assert!(t.eight_bit);
        assert_eq!(t.data, b"Subject: hi\r\n\r\n.dotted\r\nline\r\n");
    }

    #[test]
    fn transcript_errors_and_reset() {
        let (out, got) = run(
            "MAIL FROM:<a@b.example>\r\nHELO c\r\nRCPT TO:<x@y.example>\r\nDATA\r\nMAIL FROM:<>\r\n\
MAIL FROM:<>\r\nDATA\r\nRCPT TO:<bad@@x>\r\nRSET\r\nRCPT TO:<x@y.example>\r\nNOOP\r\nVRFY root\r\n\
STARTTLS\r\nBOGUS\r\nQUIT\r\n",
        );
        assert_eq!(
            codes(&out),
            [
                "220", "503", "250", "503", "503", "250", "503", "554", "501", "250", "503", "250",
                "252", "502", "500", "221"
            ],
            "{out}"
        );
        assert!(got.is_empty());
    }

    #[test]
    fn two_messages_pipelined_and_null_sender() {
        let (out, got) = run(
            "HELO c\r\nMAIL FROM:<>\r\nRCPT TO:<a@x.example>\r\nDATA\r\nA\r\n.\r\n\
MAIL FROM:<b@x.example>\r\nRCPT TO:<c@x.example>\r\nDATA\r\nbare\nlf\r\n.\r\n",
        );
        assert_eq!(
            codes(&out),
            [
                "220", "250", "250", "250", "354", "250", "250", "250", "354", "250"
            ]
        );
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].sender, "");
        assert_eq!(got[0].data, b"A\r\n");
        assert_eq!(got[1].data, b"bare\r\nlf\r\n");
    }

    #[test]
    fn too_big_and_eof_in_data() {
        let big = "x".repeat(2000);
        let (out, got) = run(&format!(
            "HELO c\r\nMAIL FROM:<>\r\nRCPT TO:<a@x.example>\r\nDATA\r\n{big}\r\n.\r\nMAIL FROM:<> SIZE=5000\r\n\
MAIL FROM:<>\r\nRCPT TO:<a@x.example>\r\nDATA\r\nunfinished"
        ));
        assert_eq!(
            codes(&out),
            [
                "220", "250", "250", "250", "354", "552", "552", "250", "250", "354"
            ],
            "{out}"
        );
        assert!(got.is_empty());
    }

    #[test]
    fn lf_fixing() {
        assert_eq!(crlf(b"a\r\nb".to_vec()), b"a\r\nb");
        assert_eq!(crlf(b"\na\nb\r\n".to_vec()), b"\r\na\r\nb\r\n");
    }
}
