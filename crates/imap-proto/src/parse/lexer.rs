//! The lexical layer of the command parser: a cursor over one complete
//! command with the primitives of RFC 9051 §9 (formal syntax) that every
//! command shares: SP, atoms, numbers, quoted strings, literals, astring /
//! nstring / list-mailbox, flags, sequence sets, dates.
//!
//! Needs: the whole command in one slice (lines joined by CRLF, literal data
//! inline). Guarantees: no panics (all indexing is checked or guarded by a
//! bound test on the same line), no recursion, every primitive runs in time
//! linear in the bytes it consumes, and allocations are bounded by the input
//! (a literal's announced length is only ever compared with what is there,
//! never used to reserve memory). Errors are short static messages for the
//! peer; the caller adds the tag.

use crate::types::{Date, SeqBound, SequenceSet};

/// Result of a parsing step: the error is a short message for `tag BAD`.
pub(crate) type Res<T> = Result<T, &'static str>;

/// Largest value of a mod-sequence (RFC 7162 §7: "positive unsigned 63-bit
/// integer"); larger values are refused so they always fit a signed 64-bit
/// database column.
pub(crate) const MAX_MODSEQ: u64 = i64::MAX as u64;

/// RFC 9051 `ATOM-CHAR`: any CHAR except atom-specials.
pub(crate) fn atom_char(b: u8) -> bool {
    b > 0x20 && b < 0x7f && !matches!(b, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b']')
}

/// RFC 9051 `ASTRING-CHAR`: ATOM-CHAR or `]`.
pub(crate) fn astring_char(b: u8) -> bool {
    atom_char(b) || b == b']'
}

/// Characters of an unquoted mailbox name or pattern. Beyond the grammar's
/// 7-bit ASTRING-CHAR we accept 8-bit bytes (validated as UTF-8 afterwards),
/// as Dovecot does: clients with UTF8=ACCEPT sometimes send `Entwürfe` bare.
fn mailbox_char(b: u8) -> bool {
    astring_char(b) || b >= 0x80
}

/// `list-char`: ATOM-CHAR, list-wildcards, resp-specials (and 8-bit, as
/// for mailbox names).
fn list_char(b: u8) -> bool {
    mailbox_char(b) || b == b'%' || b == b'*'
}

const MONTHS: [&[u8]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

fn days_in_month(year: i32, month: u8) -> u8 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn utf8(bytes: &[u8]) -> Res<String> {
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(s.to_owned()),
        Err(_) => Err("invalid UTF-8"),
    }
}

/// A literal announcement as parsed: `[~]{n[+]}`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Announce {
    pub len: u64,
    pub sync: bool,
    pub binary: bool,
}

/// Cursor over one command.
pub(crate) struct Parser<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Parser<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Parser { buf, pos: 0 }
    }

    pub fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    pub fn peek_at(&self, ahead: usize) -> Option<u8> {
        self.buf.get(self.pos.saturating_add(ahead)).copied()
    }

    /// The cursor position, to come back to with [`Self::reset`].
    pub fn mark(&self) -> usize {
        self.pos
    }

    pub fn reset(&mut self, mark: usize) {
        self.pos = mark;
    }

    pub fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// Consumes `b` if it is next.
    pub fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    pub fn expect(&mut self, b: u8, msg: &'static str) -> Res<()> {
        if self.eat(b) { Ok(()) } else { Err(msg) }
    }

    /// One SP.
    pub fn sp(&mut self) -> Res<()> {
        if self.eat(b' ') {
            Ok(())
        } else if self.at_end() {
            Err("missing argument")
        } else {
            Err("expected a space")
        }
    }

    /// One SP before a required argument, with a message naming what is
    /// missing when the command ends (or only a SP follows).
    pub fn arg(&mut self, missing: &'static str) -> Res<()> {
        if self.at_end() {
            return Err(missing);
        }
        self.sp()?;
        if self.at_end() { Err(missing) } else { Ok(()) }
    }

    /// Succeeds at end of input only.
    pub fn end(&self) -> Res<()> {
        if self.at_end() {
            Ok(())
        } else {
            Err("unexpected characters at end of command")
        }
    }

    /// The longest run of bytes satisfying `f` (possibly empty).
    pub fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a [u8] {
        let start = self.pos;
        while let Some(b) = self.peek() {
            if !f(b) {
                break;
            }
            self.pos += 1;
        }
        // Invariant: start <= pos <= buf.len().
        &self.buf[start..self.pos]
    }

    /// A command or option word: a run of ATOM-CHARs (case as sent; compare
    /// with `eq_ignore_ascii_case`). Empty if none.
    pub fn word(&mut self) -> &'a [u8] {
        self.take_while(atom_char)
    }

    /// A run of letters, digits, `.` and `-`: fetch item and section names,
    /// which stop at `[`.
    pub fn name(&mut self) -> &'a [u8] {
        self.take_while(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
    }

    /// `atom`: one or more ATOM-CHARs.
    pub fn atom(&mut self) -> Res<String> {
        let w = self.word();
        if w.is_empty() {
            return Err(if self.at_end() {
                "missing argument"
            } else {
                "expected an atom"
            });
        }
        utf8(w)
    }

    /// Digits as a u64, refusing overflow. At least one digit.
    pub fn number_u64(&mut self) -> Res<u64> {
        let digits = self.take_while(|b| b.is_ascii_digit());
        if digits.is_empty() {
            return Err("expected a number");
        }
        let mut n: u64 = 0;
        for &d in digits {
            n = n
                .checked_mul(10)
                .and_then(|n| n.checked_add(u64::from(d - b'0')))
                .ok_or("number too large")?;
        }
        Ok(n)
    }

    /// `number` (u32).
    pub fn number(&mut self) -> Res<u32> {
        u32::try_from(self.number_u64()?).map_err(|_| "number too large")
    }

    /// `nz-number` (u32, not 0).
    pub fn nz_number(&mut self) -> Res<u32> {
        match self.number()? {
            0 => Err("zero is not a valid number here"),
            n => Ok(n),
        }
    }

    /// `mod-sequence-valzer` (RFC 7162): 0 ..= 2^63-1.
    pub fn modseq(&mut self) -> Res<u64> {
        let n = self.number_u64()?;
        if n > MAX_MODSEQ {
            Err("mod-sequence too large")
        } else {
            Ok(n)
        }
    }

    /// `number64`: sizes (RFC 9051), 0 ..= 2^63-1.
    pub fn number64(&mut self) -> Res<u64> {
        let n = self.number_u64()?;
        if n > MAX_MODSEQ {
            Err("number too large")
        } else {
            Ok(n)
        }
    }

    /// `[~]{n[+]}` at the cursor, without what follows. Callers check the
    /// first byte is `{` or `~`.
    pub fn announce(&mut self) -> Res<Announce> {
        let binary = self.eat(b'~');
        self.expect(b'{', "malformed literal")?;
        let digits = self.take_while(|b| b.is_ascii_digit());
        if digits.is_empty() || digits.len() > 20 {
            return Err("malformed literal");
        }
        let mut len: u64 = 0;
        for &d in digits {
            len = len
                .checked_mul(10)
                .and_then(|n| n.checked_add(u64::from(d - b'0')))
                .ok_or("literal too large")?;
        }
        let sync = !self.eat(b'+');
        self.expect(b'}', "malformed literal")?;
        Ok(Announce { len, sync, binary })
    }

    /// A literal with its data inline: `{n}` CRLF n octets. `~{n}` is
    /// refused (literal8 is only for APPEND's message and METADATA values).
    fn literal(&mut self) -> Res<&'a [u8]> {
        if self.peek() == Some(b'~') {
            return Err("literal8 not allowed here");
        }
        let data = self.literal_data()?;
        if memchr::memchr(0, data).is_some() {
            return Err("NUL in literal");
        }
        Ok(data)
    }

    /// The octets of a literal or literal8 at the cursor.
    fn literal_data(&mut self) -> Res<&'a [u8]> {
        let a = self.announce()?;
        if !(self.eat(b'\r') && self.eat(b'\n')) {
            return Err(if self.at_end() {
                "literal data missing"
            } else {
                "expected CRLF after literal"
            });
        }
        let rest = self.buf.len() - self.pos;
        let n = match usize::try_from(a.len) {
            Ok(n) if n <= rest => n,
            _ => return Err("literal data missing"),
        };
        let data = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(data)
    }

    /// A METADATA value (RFC 5464 §5.4: `nstring / literal8`): NIL, or its
    /// octets (any of them in a literal8).
    pub fn value(&mut self) -> Res<Option<Vec<u8>>> {
        match self.peek() {
            Some(b'~') => Ok(Some(self.literal_data()?.to_vec())),
            Some(b'{') => Ok(Some(self.literal()?.to_vec())),
            Some(b'"') => Ok(Some(self.quoted_bytes()?)),
            _ => match self.nstring()? {
                None => Ok(None),
                Some(s) => Ok(Some(s.into_bytes())),
            },
        }
    }

    /// A quoted string; the cursor is on the opening `"`.
    fn quoted(&mut self) -> Res<String> {
        String::from_utf8(self.quoted_bytes()?).map_err(|_| "invalid UTF-8")
    }

    /// The octets of a quoted string.
    fn quoted_bytes(&mut self) -> Res<Vec<u8>> {
        self.expect(b'"', "expected a string")?;
        let mut out = Vec::new();
        loop {
            let Some(b) = self.peek() else {
                return Err("unterminated quoted string");
            };
            self.pos += 1;
            match b {
                b'"' => break,
                b'\\' => match self.peek() {
                    Some(c @ (b'"' | b'\\')) => {
                        self.pos += 1;
                        out.push(c);
                    }
                    None => return Err("unterminated quoted string"),
                    Some(_) => return Err("invalid escape in quoted string"),
                },
                0 => return Err("NUL in quoted string"),
                b'\r' => return Err("CR in quoted string"),
                b'\n' => return Err("LF in quoted string"),
                _ => out.push(b),
            }
        }
        Ok(out)
    }

    /// `string`: quoted or literal.
    pub fn string(&mut self) -> Res<String> {
        match self.peek() {
            Some(b'"') => self.quoted(),
            Some(b'{') => utf8(self.literal()?),
            Some(b'~') if self.peek_at(1) == Some(b'{') => utf8(self.literal()?),
            None => Err("missing argument"),
            Some(_) => Err("expected a string"),
        }
    }

    /// A string, or else a run of atom-like characters accepted by `f`.
    fn string_or(&mut self, f: impl Fn(u8) -> bool) -> Res<String> {
        match self.peek() {
            Some(b'"' | b'{') => self.string(),
            Some(b'~') if self.peek_at(1) == Some(b'{') => self.string(),
            None => Err("missing argument"),
            Some(_) => {
                let w = self.take_while(f);
                if w.is_empty() {
                    Err("expected a string")
                } else {
                    utf8(w)
                }
            }
        }
    }

    /// `astring`, strictly 7-bit when unquoted (user names, passwords, field
    /// names, header values in SEARCH).
    pub fn astring(&mut self) -> Res<String> {
        self.string_or(astring_char)
    }

    /// A mailbox name (`mailbox` = astring), 8-bit allowed unquoted. Not
    /// case-folded, not decoded (see the types module).
    pub fn mailbox(&mut self) -> Res<String> {
        self.string_or(mailbox_char).map_err(|e| {
            if e == "missing argument" {
                "missing mailbox name"
            } else {
                e
            }
        })
    }

    /// `list-mailbox`: a pattern with `%` and `*`.
    pub fn list_mailbox(&mut self) -> Res<String> {
        self.string_or(list_char).map_err(|e| {
            if e == "missing argument" {
                "missing mailbox pattern"
            } else {
                e
            }
        })
    }

    /// `nstring`: NIL or a string.
    pub fn nstring(&mut self) -> Res<Option<String>> {
        if matches!(self.peek(), Some(b'N' | b'n')) {
            let w = self.word();
            if w.eq_ignore_ascii_case(b"NIL") {
                return Ok(None);
            }
            return Err("expected a string or NIL");
        }
        self.string().map(Some)
    }

    /// `flag`: `\Seen` style (backslash kept) or a keyword atom. `\*` is not
    /// a flag in commands.
    pub fn flag(&mut self) -> Res<String> {
        let backslash = self.eat(b'\\');
        let w = self.word();
        if w.is_empty() {
            return Err("invalid flag");
        }
        let mut s = String::with_capacity(w.len() + 1);
        if backslash {
            s.push('\\');
        }
        // ATOM-CHARs are ASCII.
        s.extend(w.iter().map(|&b| char::from(b)));
        Ok(s)
    }

    /// `flag-list`: `(` [flag *(SP flag)] `)`.
    pub fn flag_list(&mut self) -> Res<Vec<String>> {
        self.expect(b'(', "expected a flag list")?;
        let mut flags = Vec::new();
        if self.eat(b')') {
            return Ok(flags);
        }
        loop {
            flags.push(self.flag()?);
            if self.eat(b')') {
                return Ok(flags);
            }
            self.sp().map_err(|_| "unterminated flag list")?;
        }
    }

    fn seq_bound(&mut self) -> Res<SeqBound> {
        if self.eat(b'*') {
            return Ok(SeqBound::Star);
        }
        match self.peek() {
            Some(b) if b.is_ascii_digit() => {}
            // RFC 5182 lets `$` stand only for a whole set here: our
            // SequenceSet cannot mix it with numbers.
            Some(b'$') => return Err("$ cannot be combined with other numbers"),
            _ => return Err("invalid sequence set"),
        }
        match self.number_u64()? {
            0 => Err("0 is not a valid message number"),
            n => u32::try_from(n)
                .map(SeqBound::Num)
                .map_err(|_| "message number too large"),
        }
    }

    /// `sequence-set` or `$`.
    pub fn seq_set(&mut self) -> Res<SequenceSet> {
        if self.at_end() {
            return Err("missing sequence set");
        }
        if self.eat(b'$') {
            return Ok(SequenceSet::Saved);
        }
        let mut ranges = Vec::new();
        loop {
            let a = self.seq_bound()?;
            let b = if self.eat(b':') { self.seq_bound()? } else { a };
            ranges.push((a, b));
            if !self.eat(b',') {
                return Ok(SequenceSet::Ranges(ranges));
            }
        }
    }

    fn date_text(&mut self) -> Res<Date> {
        let day = self.take_while(|b| b.is_ascii_digit());
        self.date_rest(day)
    }

    /// Month and year after a day's digits: `-Mon-yyyy`.
    fn date_rest(&mut self, day: &[u8]) -> Res<Date> {
        const BAD: &str = "invalid date";
        if day.is_empty() || day.len() > 2 {
            return Err(BAD);
        }
        let day = day.iter().fold(0u8, |n, d| n * 10 + (d - b'0'));
        self.expect(b'-', BAD)?;
        let mon = self.take_while(|b| b.is_ascii_alphabetic());
        let month = MONTHS
            .iter()
            .position(|m| m.eq_ignore_ascii_case(mon))
            .ok_or(BAD)?;
        // Invariant: position < 12.
        let month = month as u8 + 1;
        self.expect(b'-', BAD)?;
        let year = self.take_while(|b| b.is_ascii_digit());
        if year.len() != 4 {
            return Err(BAD);
        }
        let year = year.iter().fold(0i32, |n, d| n * 10 + i32::from(d - b'0'));
        if day == 0 || day > days_in_month(year, month) {
            return Err(BAD);
        }
        Ok(Date { year, month, day })
    }

    /// `date`: `1-Feb-2024` or `"01-Feb-2024"`.
    pub fn date(&mut self) -> Res<Date> {
        if self.eat(b'"') {
            let d = self.date_text()?;
            self.expect(b'"', "invalid date")?;
            Ok(d)
        } else {
            self.date_text()
        }
    }

    /// `date-time`: `"dd-Mon-yyyy hh:mm:ss +zzzz"` (day may be space-padded
    /// or, leniently, one digit) as unix seconds.
    pub fn date_time(&mut self) -> Res<i64> {
        const BAD: &str = "invalid date-time";
        self.expect(b'"', BAD)?;
        self.eat(b' ');
        let day = self.take_while(|b| b.is_ascii_digit());
        let date = self.date_rest(day).map_err(|_| BAD)?;
        self.expect(b' ', BAD)?;
        let two = |p: &mut Self, max: u8| -> Res<i64> {
            let (Some(a @ b'0'..=b'9'), Some(b @ b'0'..=b'9')) = (p.peek(), p.peek_at(1)) else {
                return Err(BAD);
            };
            p.pos += 2;
            let v = (a - b'0') * 10 + (b - b'0');
            if v > max { Err(BAD) } else { Ok(i64::from(v)) }
        };
        let h = two(self, 23)?;
        self.expect(b':', BAD)?;
        let m = two(self, 59)?;
        self.expect(b':', BAD)?;
        let s = two(self, 60)?;
        self.expect(b' ', BAD)?;
        let sign = match self.peek() {
            Some(b'+') => 1,
            Some(b'-') => -1,
            _ => return Err(BAD),
        };
        self.pos += 1;
        let zh = two(self, 99)?;
        let zm = two(self, 59)?;
        self.expect(b'"', BAD)?;
        let days = crate::encode::days_from_civil(
            i64::from(date.year),
            u32::from(date.month),
            u32::from(date.day),
        );
        Ok(days * 86_400 + h * 3600 + m * 60 + s - sign * (zh * 3600 + zm * 60))
    }

    /// A parenthesised, space-separated, non-empty list of items.
    pub fn paren_list<T>(&mut self, mut item: impl FnMut(&mut Self) -> Res<T>) -> Res<Vec<T>> {
        self.expect(b'(', "expected '('")?;
        let mut v = Vec::new();
        loop {
            v.push(item(self)?);
            if self.eat(b')') {
                return Ok(v);
            }
            self.sp().map_err(|_| "expected ')'")?;
        }
    }

    /// Like [`Self::paren_list`] but `()` is allowed.
    pub fn paren_list0<T>(&mut self, item: impl FnMut(&mut Self) -> Res<T>) -> Res<Vec<T>> {
        if self.peek() == Some(b'(') && self.peek_at(1) == Some(b')') {
            self.pos += 2;
            return Ok(Vec::new());
        }
        self.paren_list(item)
    }
}
