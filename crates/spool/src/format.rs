//! The queue-file record format (version 1), specified in
//! `docs/queue-file.md`: pure encoding and decoding, no file system.
//!
//! Offers: [`encode_envelope`] (header and envelope records, for a writer
//! that streams the message after them), [`encode_queue_file_bytes`] (a whole
//! file in memory), [`parse_queue_file`] (reads the envelope, then seeks over
//! the message to check the END record, so a 50 MB message is never loaded),
//! [`parse_queue_file_bytes`] for fuzzing, and the same for the mutable-state
//! file (`<id>.state`): [`encode_state`], [`parse_state_bytes`].
//!
//! Guarantees: the parser never panics, never reads past the length it is
//! given, and never allocates for a record more than [`MAX_RECORD`] bytes, and
//! only after checking that the record fits in the file. A file cut short
//! anywhere is [`SpoolError::Incomplete`]; bytes that cannot be a queue file
//! are [`SpoolError::Corrupt`]. Integers are big-endian; nothing depends on
//! the host.
//!
//! Security: `maildrop/` is writable by every local user, so a queue file
//! is untrusted input. The envelope fields that become protocol commands
//! when the message is delivered — the sender, each recipient address and
//! ORCPT, the ENVID — must hold no control character ([`clean_field`]: no
//! CR, LF, NUL, TAB, DEL or C1 control): the reader refuses a file with one
//! as corrupt (qmgr moves it to `corrupt/`), and the writer never writes
//! one. The SMTP/LMTP client checks again when it formats the commands.

use crate::{Envelope, Recipient, Result, SpoolError};
use facteur_mail::dsn::{BodyType, Notify, RcptStatus, Ret};
use std::io::{self, Cursor, Read, Seek, SeekFrom};

/// First 8 bytes of a queue file. The high byte, CR LF and ^Z catch
/// transfers that mangle binary files (the PNG trick).
pub const MAGIC: [u8; 8] = *b"\x89FQF\r\n\x1a\n";
/// First 8 bytes of a state file.
pub const STATE_MAGIC: [u8; 8] = *b"\x89FQS\r\n\x1a\n";
/// The format version this code writes and reads.
pub const VERSION: u16 = 1;
/// Magic + version.
pub const HEADER_LEN: u64 = 10;
/// Largest payload of any record but the message.
pub const MAX_RECORD: u32 = 1 << 20;
/// Largest message (the message record's length is a u32).
pub const MAX_MESSAGE: u64 = u32::MAX as u64;

/// Record types (ASCII letters, so `hexdump -C` is readable).
pub mod rec {
    pub const QUEUE_ID: u8 = b'Q';
    pub const NONCE: u8 = b'K';
    pub const ARRIVAL: u8 = b'A';
    pub const SENDER: u8 = b'S';
    pub const RET: u8 = b'N';
    pub const ENVID: u8 = b'E';
    pub const BODY: u8 = b'B';
    pub const SMTPUTF8: u8 = b'U';
    pub const CLIENT_ADDR: u8 = b'C';
    pub const CLIENT_NAME: u8 = b'W';
    pub const HELO: u8 = b'H';
    pub const PROTOCOL: u8 = b'P';
    pub const AUTH_USER: u8 = b'I';
    pub const LOCAL_USER: u8 = b'L';
    pub const DELIVERY: u8 = b'D';
    pub const RECIPIENT: u8 = b'R';
    pub const MESSAGE: u8 = b'M';
    /// Header fields readers emit above the message (between `M` and `X`).
    pub const PREPEND: u8 = b'F';
    pub const END: u8 = b'X';
    /// State file: one per recipient, in order.
    pub const RCPT_STATE: u8 = b'T';
}

/// The END record (type, zero length).
pub const END_RECORD: [u8; 5] = [rec::END, 0, 0, 0, 0];

/// A parsed queue file: the envelope as written at creation (no state file
/// applied), the instance nonce, where the message bytes are, and the
/// header fields to emit above them (the `F` record; empty without one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedQueueFile {
    pub envelope: Envelope,
    pub nonce: u64,
    pub message_offset: u64,
    pub message_len: u64,
    pub prepend: Vec<u8>,
}

impl ParsedQueueFile {
    /// The size of the message as readers see it: the prepended fields and
    /// the message record.
    pub fn size(&self) -> u64 {
        self.prepend.len() as u64 + self.message_len
    }
}

/// The mutable delivery state kept in `<id>.state`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryState {
    /// The nonce of the queue file this state belongs to.
    pub nonce: u64,
    pub attempts: u32,
    pub next_attempt: i64,
    pub delay_notified: bool,
    /// Per recipient, in the queue file's order.
    pub recipients: Vec<(RcptStatus, Option<String>)>,
}

impl DeliveryState {
    /// Copies this state into `env`, if it fits its recipient list.
    pub fn apply(&self, env: &mut Envelope) -> bool {
        if self.recipients.len() != env.recipients.len() {
            return false;
        }
        env.attempts = self.attempts;
        env.next_attempt = self.next_attempt;
        env.delay_notified = self.delay_notified;
        for (r, (status, reply)) in env.recipients.iter_mut().zip(&self.recipients) {
            r.status = *status;
            r.last_reply = reply.clone();
        }
        true
    }
}

/// Whether `s` may be stored as a sender, recipient, ORCPT or ENVID: no
/// control character (CR, LF, NUL and every other C0 control, DEL, C1).
pub fn clean_field(s: &str) -> bool {
    !s.chars().any(char::is_control)
}

/// The envelope fields that [`clean_field`] guards, with their names.
fn guarded(env: &Envelope) -> impl Iterator<Item = (&'static str, &str)> {
    let one = [("sender", env.sender.as_str())]
        .into_iter()
        .chain(env.envid.as_deref().map(|e| ("ENVID", e)));
    let rcpts = env.recipients.iter().flat_map(|r| {
        [("recipient", r.address.as_str())]
            .into_iter()
            .chain(r.orcpt.as_deref().map(|o| ("ORCPT", o)))
    });
    one.chain(rcpts)
}

// ---------------------------------------------------------------- encoding

fn invalid(msg: String) -> SpoolError {
    SpoolError::Io(io::Error::new(io::ErrorKind::InvalidInput, msg))
}

fn put(out: &mut Vec<u8>, t: u8, payload: &[u8]) -> Result<()> {
    if payload.len() > MAX_RECORD as usize {
        return Err(invalid(format!(
            "record {:?} of {} bytes exceeds {MAX_RECORD}",
            t as char,
            payload.len()
        )));
    }
    out.push(t);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

fn put_opt(out: &mut Vec<u8>, t: u8, v: &Option<String>) -> Result<()> {
    match v {
        Some(s) => put(out, t, s.as_bytes()),
        None => Ok(()),
    }
}

/// A length-prefixed string inside a payload.
fn put_str(p: &mut Vec<u8>, s: &str) {
    p.extend_from_slice(&(s.len() as u32).to_be_bytes());
    p.extend_from_slice(s.as_bytes());
}

fn status_code(s: RcptStatus) -> u8 {
    match s {
        RcptStatus::Pending => 0,
        RcptStatus::Delivered => 1,
        RcptStatus::Bounced => 2,
        RcptStatus::Deferred => 3,
    }
}

fn status_from(b: u8) -> Result<RcptStatus> {
    Ok(match b {
        0 => RcptStatus::Pending,
        1 => RcptStatus::Delivered,
        2 => RcptStatus::Bounced,
        3 => RcptStatus::Deferred,
        _ => return Err(corrupt(format!("unknown recipient status {b}"))),
    })
}

fn notify_bits(n: Notify) -> u8 {
    (n.success as u8) | (n.failure as u8) << 1 | (n.delay as u8) << 2 | (n.never as u8) << 3
}

fn delivery_payload(env: &Envelope) -> Vec<u8> {
    let mut p = Vec::with_capacity(13);
    p.extend_from_slice(&env.attempts.to_be_bytes());
    p.extend_from_slice(&env.next_attempt.to_be_bytes());
    p.push(env.delay_notified as u8);
    p
}

fn header(magic: &[u8; 8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(magic);
    out.extend_from_slice(&VERSION.to_be_bytes());
    out
}

/// The header and every envelope record of a queue file, without the
/// message and END records.
pub fn encode_envelope(env: &Envelope, nonce: u64) -> Result<Vec<u8>> {
    if !crate::valid_queue_id(&env.queue_id) {
        return Err(invalid(format!("bad queue id {:?}", env.queue_id)));
    }
    if let Some((what, v)) = guarded(env).find(|(_, v)| !clean_field(v)) {
        return Err(invalid(format!("{what} {v:?} has a control character")));
    }
    let mut out = header(&MAGIC);
    put(&mut out, rec::QUEUE_ID, env.queue_id.as_bytes())?;
    put(&mut out, rec::NONCE, &nonce.to_be_bytes())?;
    put(&mut out, rec::ARRIVAL, &env.arrival.to_be_bytes())?;
    put(&mut out, rec::SENDER, env.sender.as_bytes())?;
    if let Some(ret) = env.ret {
        put(&mut out, rec::RET, &[if ret == Ret::Full { 1 } else { 2 }])?;
    }
    put_opt(&mut out, rec::ENVID, &env.envid)?;
    let body = match env.body {
        BodyType::SevenBit => 0,
        BodyType::EightBitMime => 1,
        BodyType::BinaryMime => 2,
    };
    put(&mut out, rec::BODY, &[body])?;
    if env.smtputf8 {
        put(&mut out, rec::SMTPUTF8, &[])?;
    }
    put_opt(&mut out, rec::CLIENT_ADDR, &env.client_addr)?;
    put_opt(&mut out, rec::CLIENT_NAME, &env.client_name)?;
    put_opt(&mut out, rec::HELO, &env.helo)?;
    put_opt(&mut out, rec::PROTOCOL, &env.protocol)?;
    put_opt(&mut out, rec::AUTH_USER, &env.auth_user)?;
    put_opt(&mut out, rec::LOCAL_USER, &env.local_user)?;
    put(&mut out, rec::DELIVERY, &delivery_payload(env))?;
    for r in &env.recipients {
        let mut p = Vec::with_capacity(16 + r.address.len());
        p.push(status_code(r.status));
        p.push(notify_bits(r.notify));
        p.push((r.orcpt.is_some() as u8) | (r.last_reply.is_some() as u8) << 1);
        put_str(&mut p, &r.address);
        if let Some(o) = &r.orcpt {
            put_str(&mut p, o);
        }
        if let Some(l) = &r.last_reply {
            put_str(&mut p, l);
        }
        put(&mut out, rec::RECIPIENT, &p)?;
    }
    Ok(out)
}

/// The head of the message record for a message of `len` bytes.
pub fn message_record_head(len: u32) -> [u8; 5] {
    let l = len.to_be_bytes();
    [rec::MESSAGE, l[0], l[1], l[2], l[3]]
}

/// The `F` record holding header fields to emit above the message:
/// nothing when `fields` is empty. `fields` must be whole header fields,
/// each ending with CRLF (what smtpd's end-of-data checks added).
pub fn prepend_record(fields: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    if !fields.is_empty() {
        if !fields.ends_with(b"\r\n") {
            return Err(invalid("prepended fields must end with CRLF".into()));
        }
        put(&mut out, rec::PREPEND, fields)?;
    }
    Ok(out)
}

/// A whole queue file in memory (tests, fuzzing, small messages).
pub fn encode_queue_file_bytes(env: &Envelope, nonce: u64, message: &[u8]) -> Result<Vec<u8>> {
    encode_queue_file_with_prepend(env, nonce, message, &[])
}

/// A whole queue file in memory with header fields in an `F` record.
pub fn encode_queue_file_with_prepend(
    env: &Envelope,
    nonce: u64,
    message: &[u8],
    prepend: &[u8],
) -> Result<Vec<u8>> {
    let len = u32::try_from(message.len())
        .map_err(|_| invalid(format!("message of {} bytes is too large", message.len())))?;
    let mut out = encode_envelope(env, nonce)?;
    out.extend_from_slice(&message_record_head(len));
    out.extend_from_slice(message);
    out.extend_from_slice(&prepend_record(prepend)?);
    out.extend_from_slice(&END_RECORD);
    Ok(out)
}

/// A state file for `env`'s mutable fields, bound to the queue file `nonce`.
pub fn encode_state(env: &Envelope, nonce: u64) -> Result<Vec<u8>> {
    let mut out = header(&STATE_MAGIC);
    put(&mut out, rec::NONCE, &nonce.to_be_bytes())?;
    put(&mut out, rec::DELIVERY, &delivery_payload(env))?;
    for r in &env.recipients {
        let mut p = Vec::with_capacity(8);
        p.push(status_code(r.status));
        p.push(r.last_reply.is_some() as u8);
        if let Some(l) = &r.last_reply {
            put_str(&mut p, l);
        }
        put(&mut out, rec::RCPT_STATE, &p)?;
    }
    out.extend_from_slice(&END_RECORD);
    Ok(out)
}

// ---------------------------------------------------------------- decoding

fn corrupt(msg: String) -> SpoolError {
    SpoolError::Corrupt(msg)
}

fn incomplete(msg: String) -> SpoolError {
    SpoolError::Incomplete(msg)
}

/// Reads records from a stream of known length, never past it.
struct Records<'a, R> {
    r: &'a mut R,
    pos: u64,
    len: u64,
}

impl<R: Read + Seek> Records<'_, R> {
    fn read_exact(&mut self, buf: &mut [u8]) -> Result<()> {
        match self.r.read_exact(buf) {
            Ok(()) => {
                self.pos += buf.len() as u64;
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(incomplete(format!(
                "file ends before offset {}",
                self.pos + buf.len() as u64
            ))),
            Err(e) => Err(SpoolError::Io(e)),
        }
    }

    fn header(&mut self, magic: &[u8; 8]) -> Result<()> {
        let have = self.len.min(HEADER_LEN) as usize;
        let mut h = [0u8; HEADER_LEN as usize];
        self.read_exact(&mut h[..have])?;
        let m = have.min(8);
        if h[..m] != magic[..m] {
            return Err(corrupt("bad magic (not a facteur queue file)".into()));
        }
        if have < HEADER_LEN as usize {
            return Err(incomplete("file ends inside the header".into()));
        }
        let v = u16::from_be_bytes([h[8], h[9]]);
        if v != VERSION {
            return Err(corrupt(format!("unsupported format version {v}")));
        }
        Ok(())
    }

    /// The next record's type and length, checked to fit in the file.
    fn head(&mut self) -> Result<(u8, u64)> {
        if self.pos == self.len {
            return Err(incomplete("no END record".into()));
        }
        if self.len - self.pos < 5 {
            return Err(incomplete(format!(
                "record header cut at offset {}",
                self.pos
            )));
        }
        let at = self.pos;
        let mut h = [0u8; 5];
        self.read_exact(&mut h)?;
        let n = u32::from_be_bytes([h[1], h[2], h[3], h[4]]) as u64;
        if n > self.len - self.pos {
            return Err(incomplete(format!(
                "record {:?} at offset {at} needs {n} bytes, the file has {}",
                h[0] as char,
                self.len - self.pos
            )));
        }
        Ok((h[0], n))
    }

    fn payload(&mut self, t: u8, n: u64) -> Result<Vec<u8>> {
        if n > MAX_RECORD as u64 {
            return Err(corrupt(format!(
                "record {:?} of {n} bytes is too long",
                t as char
            )));
        }
        let mut v = vec![0u8; n as usize];
        self.read_exact(&mut v)?;
        Ok(v)
    }

    fn skip(&mut self, n: u64) -> Result<()> {
        self.pos += n;
        self.r.seek(SeekFrom::Start(self.pos))?;
        Ok(())
    }

    /// After END: nothing may follow.
    fn at_eof(&self) -> Result<()> {
        if self.pos != self.len {
            return Err(corrupt(format!(
                "{} bytes after the END record",
                self.len - self.pos
            )));
        }
        Ok(())
    }
}

/// Reads fields inside one record's payload.
struct Fields<'a> {
    b: &'a [u8],
    what: char,
}

impl<'a> Fields<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.b.len() < n {
            return Err(corrupt(format!("record {:?} is too short", self.what)));
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(a))
    }
    fn i64(&mut self) -> Result<i64> {
        Ok(self.u64()? as i64)
    }
    fn bool(&mut self) -> Result<bool> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(corrupt(format!("record {:?}: bad boolean {b}", self.what))),
        }
    }
    fn utf8(&self, b: &[u8]) -> Result<String> {
        String::from_utf8(b.to_vec())
            .map_err(|_| corrupt(format!("record {:?}: invalid UTF-8", self.what)))
    }
    /// A u32-length-prefixed string.
    fn str(&mut self) -> Result<String> {
        let n = self.u32()? as usize;
        let b = self.take(n)?;
        self.utf8(b)
    }
    /// The rest of the payload as a string.
    fn rest_str(&mut self) -> Result<String> {
        let b = self.take(self.b.len())?;
        self.utf8(b)
    }
    fn done(&self) -> Result<()> {
        if !self.b.is_empty() {
            return Err(corrupt(format!(
                "record {:?} has trailing bytes",
                self.what
            )));
        }
        Ok(())
    }
}

fn set_once<T>(slot: &mut Option<T>, v: T, t: u8) -> Result<()> {
    if slot.is_some() {
        return Err(corrupt(format!("record {:?} appears twice", t as char)));
    }
    *slot = Some(v);
    Ok(())
}

fn parse_recipient(f: &mut Fields<'_>) -> Result<Recipient> {
    let status = status_from(f.u8()?)?;
    let n = f.u8()?;
    if n & !0x0f != 0 {
        return Err(corrupt(format!("unknown NOTIFY bits {n:#x}")));
    }
    let notify = Notify {
        success: n & 1 != 0,
        failure: n & 2 != 0,
        delay: n & 4 != 0,
        never: n & 8 != 0,
    };
    let has = f.u8()?;
    if has & !3 != 0 {
        return Err(corrupt(format!("unknown recipient flags {has:#x}")));
    }
    let address = f.str()?;
    if !clean_field(&address) {
        return Err(corrupt(format!(
            "recipient {address:?} has a control character"
        )));
    }
    let orcpt = if has & 1 != 0 { Some(f.str()?) } else { None };
    if let Some(o) = orcpt.as_deref().filter(|o| !clean_field(o)) {
        return Err(corrupt(format!("ORCPT {o:?} has a control character")));
    }
    let last_reply = if has & 2 != 0 { Some(f.str()?) } else { None };
    Ok(Recipient {
        address,
        orcpt,
        notify,
        status,
        last_reply,
    })
}

/// Parses a queue file of `len` bytes from `r` (positioned at its start).
/// Reads the envelope records, seeks over the message, checks END and EOF.
pub fn parse_queue_file<R: Read + Seek>(r: &mut R, len: u64) -> Result<ParsedQueueFile> {
    let mut rd = Records { r, pos: 0, len };
    rd.header(&MAGIC)?;
    let mut queue_id = None;
    let mut nonce = None;
    let mut arrival = None;
    let mut sender = None;
    let mut ret = None;
    let mut envid = None;
    let mut body = None;
    let mut smtputf8 = None;
    let mut client_addr = None;
    let mut client_name = None;
    let mut helo = None;
    let mut protocol = None;
    let mut auth_user = None;
    let mut local_user = None;
    let mut delivery = None;
    let mut recipients = Vec::new();
    let (message_offset, message_len) = loop {
        let (t, n) = rd.head()?;
        if t == rec::MESSAGE {
            let off = rd.pos;
            rd.skip(n)?;
            break (off, n);
        }
        if t == rec::END {
            return Err(corrupt("END record before the message".into()));
        }
        let p = rd.payload(t, n)?;
        let mut f = Fields {
            b: &p,
            what: t as char,
        };
        match t {
            rec::QUEUE_ID => {
                let id = f.rest_str()?;
                if !crate::valid_queue_id(&id) {
                    return Err(corrupt(format!("bad queue id {id:?}")));
                }
                set_once(&mut queue_id, id, t)?
            }
            rec::NONCE => set_once(&mut nonce, f.u64()?, t)?,
            rec::ARRIVAL => set_once(&mut arrival, f.i64()?, t)?,
            rec::SENDER => set_once(&mut sender, f.rest_str()?, t)?,
            rec::RET => {
                let v = match f.u8()? {
                    1 => Ret::Full,
                    2 => Ret::Hdrs,
                    b => return Err(corrupt(format!("unknown RET {b}"))),
                };
                set_once(&mut ret, v, t)?
            }
            rec::ENVID => set_once(&mut envid, f.rest_str()?, t)?,
            rec::BODY => {
                let v = match f.u8()? {
                    0 => BodyType::SevenBit,
                    1 => BodyType::EightBitMime,
                    2 => BodyType::BinaryMime,
                    b => return Err(corrupt(format!("unknown body type {b}"))),
                };
                set_once(&mut body, v, t)?
            }
            rec::SMTPUTF8 => set_once(&mut smtputf8, true, t)?,
            rec::CLIENT_ADDR => set_once(&mut client_addr, f.rest_str()?, t)?,
            rec::CLIENT_NAME => set_once(&mut client_name, f.rest_str()?, t)?,
            rec::HELO => set_once(&mut helo, f.rest_str()?, t)?,
            rec::PROTOCOL => set_once(&mut protocol, f.rest_str()?, t)?,
            rec::AUTH_USER => set_once(&mut auth_user, f.rest_str()?, t)?,
            rec::LOCAL_USER => set_once(&mut local_user, f.rest_str()?, t)?,
            rec::DELIVERY => {
                let v = (f.u32()?, f.i64()?, f.bool()?);
                set_once(&mut delivery, v, t)?
            }
            rec::RECIPIENT => recipients.push(parse_recipient(&mut f)?),
            // Types 0x80..=0xFF are optional extensions: skipped.
            t if t >= 0x80 => continue,
            t => return Err(corrupt(format!("unknown record type {t:#04x}"))),
        }
        f.done()?;
    };
    // After the message: at most one F record, then END.
    let mut prepend = None;
    let (t, n) = loop {
        let (t, n) = rd.head()?;
        if t != rec::PREPEND || prepend.is_some() {
            break (t, n);
        }
        let p = rd.payload(t, n)?;
        if !p.ends_with(b"\r\n") {
            return Err(corrupt("record 'F' does not end with CRLF".into()));
        }
        prepend = Some(p);
    };
    if t != rec::END || n != 0 {
        return Err(corrupt(format!(
            "record {:?} after the message, expected END",
            t as char
        )));
    }
    rd.at_eof()?;
    let missing = |what: &str| corrupt(format!("missing {what} record"));
    let checked = |what: &str, v: String| match clean_field(&v) {
        true => Ok(v),
        false => Err(corrupt(format!("{what} {v:?} has a control character"))),
    };
    let (attempts, next_attempt, delay_notified) = delivery.ok_or_else(|| missing("delivery"))?;
    let envelope = Envelope {
        queue_id: queue_id.ok_or_else(|| missing("queue id"))?,
        sender: checked("sender", sender.ok_or_else(|| missing("sender"))?)?,
        recipients,
        ret,
        envid: envid.map(|e| checked("ENVID", e)).transpose()?,
        body: body.ok_or_else(|| missing("body type"))?,
        smtputf8: smtputf8.unwrap_or(false),
        client_addr,
        client_name,
        helo,
        protocol,
        auth_user,
        local_user,
        arrival: arrival.ok_or_else(|| missing("arrival"))?,
        attempts,
        next_attempt,
        delay_notified,
    };
    Ok(ParsedQueueFile {
        envelope,
        nonce: nonce.ok_or_else(|| missing("nonce"))?,
        message_offset,
        message_len,
        prepend: prepend.unwrap_or_default(),
    })
}

/// [`parse_queue_file`] on bytes in memory (the fuzz target's entry point).
pub fn parse_queue_file_bytes(data: &[u8]) -> Result<ParsedQueueFile> {
    parse_queue_file(&mut Cursor::new(data), data.len() as u64)
}

/// Parses a state file.
pub fn parse_state_bytes(data: &[u8]) -> Result<DeliveryState> {
    let mut cur = Cursor::new(data);
    let mut rd = Records {
        r: &mut cur,
        pos: 0,
        len: data.len() as u64,
    };
    rd.header(&STATE_MAGIC)?;
    let mut nonce = None;
    let mut delivery = None;
    let mut recipients = Vec::new();
    loop {
        let (t, n) = rd.head()?;
        if t == rec::END && n == 0 {
            rd.at_eof()?;
            break;
        }
        let p = rd.payload(t, n)?;
        let mut f = Fields {
            b: &p,
            what: t as char,
        };
        match t {
            rec::NONCE => set_once(&mut nonce, f.u64()?, t)?,
            rec::DELIVERY => {
                let v = (f.u32()?, f.i64()?, f.bool()?);
                set_once(&mut delivery, v, t)?
            }
            rec::RCPT_STATE => {
                let status = status_from(f.u8()?)?;
                let reply = if f.bool()? { Some(f.str()?) } else { None };
                recipients.push((status, reply));
            }
            t if t >= 0x80 => continue,
            t => return Err(corrupt(format!("unknown state record type {t:#04x}"))),
        }
        f.done()?;
    }
    let (attempts, next_attempt, delay_notified) =
        delivery.ok_or_else(|| corrupt("state file without delivery record".into()))?;
    Ok(DeliveryState {
        nonce: nonce.ok_or_else(|| corrupt("state file without nonce".into()))?,
        attempts,
        next_attempt,
        delay_notified,
        recipients,
    })
}

#[cfg(test)]
mod tests;
