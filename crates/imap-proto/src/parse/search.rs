//! SEARCH (RFC 9051 §6.4.4, RFC 3501 §6.4.4): ESEARCH return options (RFC
//! 4731 §3.1) including SAVE (RFC 5182), CHARSET, every search key, `$`
//! (RFC 5182) and MODSEQ (RFC 7162 §3.1.5).
//!
//! Needs the lexer. Guarantees: recursion (parentheses, NOT, OR) is bounded
//! by [`super::MAX_SEARCH_DEPTH`], so hostile nesting gets an error, not a
//! stack overflow; consecutive keys are an implicit AND, returned as
//! [`SearchKey::And`] when there are several and as the key itself when
//! there is one (the same for a parenthesised list).

use super::MAX_SEARCH_DEPTH;
use super::lexer::{Parser, Res};
use crate::types::{Command, SearchKey, SearchReturn, SortCriterion, SortKey, ThreadAlgorithm};

/// `SEARCH [SP "RETURN" SP "(" [opt *(SP opt)] ")"] [SP "CHARSET" SP
/// charset] 1*(SP search-key)`.
pub(super) fn search(p: &mut Parser<'_>, uid: bool) -> Res<Command> {
    p.arg("missing search criteria")?;
    let mut ret = None;
    let mut charset = None;
    let m = p.mark();
    if p.word().eq_ignore_ascii_case(b"RETURN") {
        p.sp()?;
        ret = Some(p.paren_list0(search_return)?);
        p.arg("missing search criteria")?;
    } else {
        p.reset(m);
    }
    let m = p.mark();
    if p.word().eq_ignore_ascii_case(b"CHARSET") {
        p.arg("missing charset")?;
        charset = Some(self::charset(p)?);
        p.arg("missing search criteria")?;
    } else {
        p.reset(m);
    }
    let key = key_list(p, 0)?;
    Ok(Command::Search {
        uid,
        ret,
        charset,
        key,
    })
}

/// `SORT [SP "RETURN" SP "(" [opt *(SP opt)] ")"] SP "(" sort-criterion
/// *(SP sort-criterion) ")" SP charset 1*(SP search-key)` (RFC 5256 §4,
/// RFC 5267 §3.2).
pub(super) fn sort(p: &mut Parser<'_>, uid: bool) -> Res<Command> {
    p.arg("missing sort criteria")?;
    let mut ret = None;
    let m = p.mark();
    if p.word().eq_ignore_ascii_case(b"RETURN") {
        p.sp()?;
        ret = Some(p.paren_list0(search_return)?);
        p.arg("missing sort criteria")?;
    } else {
        p.reset(m);
    }
    let criteria = p.paren_list(sort_criterion)?;
    if criteria.len() > MAX_SORT_CRITERIA {
        return Err("too many sort criteria");
    }
    p.arg("missing charset")?;
    let charset = charset(p)?;
    p.arg("missing search criteria")?;
    let key = key_list(p, 0)?;
    Ok(Command::Sort {
        uid,
        ret,
        criteria,
        charset,
        key,
    })
}

/// Most criteria in one SORT (there are nine keys; REVERSE doubles them).
const MAX_SORT_CRITERIA: usize = 18;

fn sort_criterion(p: &mut Parser<'_>) -> Res<SortCriterion> {
    let mut w = p.word();
    let reverse = w.eq_ignore_ascii_case(b"REVERSE");
    if reverse {
        p.sp()?;
        w = p.word();
    }
    let is = |s: &str| w.eq_ignore_ascii_case(s.as_bytes());
    let key = if is("ARRIVAL") {
        SortKey::Arrival
    } else if is("CC") {
        SortKey::Cc
    } else if is("DATE") {
        SortKey::Date
    } else if is("FROM") {
        SortKey::From
    } else if is("SIZE") {
        SortKey::Size
    } else if is("SUBJECT") {
        SortKey::Subject
    } else if is("TO") {
        SortKey::To
    } else if is("DISPLAYFROM") {
        SortKey::DisplayFrom
    } else if is("DISPLAYTO") {
        SortKey::DisplayTo
    } else {
        return Err("unknown sort criterion");
    };
    Ok(SortCriterion { reverse, key })
}

/// `THREAD SP algorithm SP charset 1*(SP search-key)` (RFC 5256 §4).
pub(super) fn thread(p: &mut Parser<'_>, uid: bool) -> Res<Command> {
    p.arg("missing thread algorithm")?;
    let w = p.word();
    let algorithm = if w.eq_ignore_ascii_case(b"ORDEREDSUBJECT") {
        ThreadAlgorithm::OrderedSubject
    } else if w.eq_ignore_ascii_case(b"REFERENCES") {
        ThreadAlgorithm::References
    } else {
        return Err("unknown thread algorithm");
    };
    p.arg("missing charset")?;
    let charset = charset(p)?;
    p.arg("missing search criteria")?;
    let key = key_list(p, 0)?;
    Ok(Command::Thread {
        uid,
        algorithm,
        charset,
        key,
    })
}

/// charset = atom / quoted
fn charset(p: &mut Parser<'_>) -> Res<String> {
    if p.peek() == Some(b'"') {
        p.string()
    } else {
        p.atom()
    }
}

fn search_return(p: &mut Parser<'_>) -> Res<SearchReturn> {
    let w = p.word();
    let is = |s: &str| w.eq_ignore_ascii_case(s.as_bytes());
    Ok(if is("MIN") {
        SearchReturn::Min
    } else if is("MAX") {
        SearchReturn::Max
    } else if is("ALL") {
        SearchReturn::All
    } else if is("COUNT") {
        SearchReturn::Count
    } else if is("SAVE") {
        SearchReturn::Save
    } else if is("UPDATE") {
        SearchReturn::Update
    } else if is("PARTIAL") {
        p.sp()?;
        partial_range(p)?
    } else {
        return Err("unknown SEARCH return option");
    })
}

/// `partial-range = nz-number ":" nz-number / "-" nz-number ":" "-"
/// nz-number` (RFC 9394 §3; RFC 5267 has the first form), either order.
fn partial_range(p: &mut Parser<'_>) -> Res<SearchReturn> {
    let bound = |p: &mut Parser<'_>| -> Res<i64> {
        let neg = p.eat(b'-');
        let n = i64::from(p.nz_number().map_err(|_| "malformed PARTIAL range")?);
        Ok(if neg { -n } else { n })
    };
    let a = bound(p)?;
    p.expect(b':', "malformed PARTIAL range")?;
    let b = bound(p)?;
    if (a < 0) != (b < 0) {
        return Err("malformed PARTIAL range");
    }
    let (first, last) = if a.abs() <= b.abs() { (a, b) } else { (b, a) };
    Ok(SearchReturn::Partial(first, last))
}

/// One or more keys separated by SP, up to the end of the input or a `)`.
fn key_list(p: &mut Parser<'_>, depth: usize) -> Res<SearchKey> {
    let mut keys = vec![key(p, depth)?];
    while p.eat(b' ') {
        keys.push(key(p, depth)?);
    }
    Ok(and(keys))
}

fn and(mut keys: Vec<SearchKey>) -> SearchKey {
    match keys.pop() {
        Some(k) if keys.is_empty() => k,
        Some(k) => {
            keys.push(k);
            SearchKey::And(keys)
        }
        None => SearchKey::And(keys),
    }
}

/// One `search-key`.
fn key(p: &mut Parser<'_>, depth: usize) -> Res<SearchKey> {
    if depth >= MAX_SEARCH_DEPTH {
        return Err("search key nesting too deep");
    }
    match p.peek() {
        None => return Err("missing search key"),
        Some(b'(') => {
            p.eat(b'(');
            let k = key_list(p, depth + 1)?;
            p.expect(b')', "expected ')'")?;
            return Ok(k);
        }
        Some(b'0'..=b'9' | b'*' | b'$') => return Ok(SearchKey::Seq(p.seq_set()?)),
        Some(_) => {}
    }
    let w = p.word().to_ascii_uppercase();
    let text = |p: &mut Parser<'_>| -> Res<String> {
        p.arg("missing search string")?;
        p.astring()
    };
    let date = |p: &mut Parser<'_>| {
        p.arg("missing date")?;
        p.date()
    };
    Ok(match w.as_slice() {
        b"ALL" => SearchKey::All,
        b"ANSWERED" => SearchKey::Answered,
        b"BCC" => SearchKey::Bcc(text(p)?),
        b"BEFORE" => SearchKey::Before(date(p)?),
        b"BODY" => SearchKey::Body(text(p)?),
        b"CC" => SearchKey::Cc(text(p)?),
        b"DELETED" => SearchKey::Deleted,
        b"DRAFT" => SearchKey::Draft,
        b"FLAGGED" => SearchKey::Flagged,
        b"FROM" => SearchKey::From(text(p)?),
        b"HEADER" => {
            p.arg("missing header field name")?;
            let name = p.astring()?;
            SearchKey::Header(name, text(p)?)
        }
        b"KEYWORD" => {
            p.arg("missing keyword")?;
            SearchKey::Keyword(p.atom()?)
        }
        b"EMAILID" => {
            p.arg("missing object id")?;
            SearchKey::EmailId(p.atom()?)
        }
        b"THREADID" => {
            p.arg("missing object id")?;
            SearchKey::ThreadId(p.atom()?)
        }
        b"LARGER" => {
            p.arg("missing size")?;
            SearchKey::Larger(p.number64()?)
        }
        b"NEW" => SearchKey::New,
        b"NOT" => {
            p.arg("missing search key")?;
            SearchKey::Not(Box::new(key(p, depth + 1)?))
        }
        b"OLD" => SearchKey::Old,
        b"ON" => SearchKey::On(date(p)?),
        b"OR" => {
            p.arg("missing search key")?;
            let a = key(p, depth + 1)?;
            p.arg("missing search key")?;
            let b = key(p, depth + 1)?;
            SearchKey::Or(Box::new(a), Box::new(b))
        }
        b"RECENT" => SearchKey::Recent,
        b"SAVEDATESUPPORTED" => SearchKey::SaveDateSupported,
        b"SAVEDBEFORE" => SearchKey::SavedBefore(date(p)?),
        b"SAVEDON" => SearchKey::SavedOn(date(p)?),
        b"SAVEDSINCE" => SearchKey::SavedSince(date(p)?),
        b"SEEN" => SearchKey::Seen,
        b"SENTBEFORE" => SearchKey::SentBefore(date(p)?),
        b"SENTON" => SearchKey::SentOn(date(p)?),
        b"SENTSINCE" => SearchKey::SentSince(date(p)?),
        b"SINCE" => SearchKey::Since(date(p)?),
        b"SMALLER" => {
            p.arg("missing size")?;
            SearchKey::Smaller(p.number64()?)
        }
        b"SUBJECT" => SearchKey::Subject(text(p)?),
        b"TEXT" => SearchKey::Text(text(p)?),
        b"TO" => SearchKey::To(text(p)?),
        b"UID" => {
            p.arg("missing sequence set")?;
            SearchKey::Uid(p.seq_set()?)
        }
        b"UNANSWERED" => SearchKey::Unanswered,
        b"UNDELETED" => SearchKey::Undeleted,
        b"UNDRAFT" => SearchKey::Undraft,
        b"UNFLAGGED" => SearchKey::Unflagged,
        b"UNKEYWORD" => {
            p.arg("missing keyword")?;
            SearchKey::Unkeyword(p.atom()?)
        }
        b"UNSEEN" => SearchKey::Unseen,
        b"MODSEQ" => SearchKey::ModSeq(modseq(p)?),
        b"" => return Err("invalid search key"),
        _ => return Err("unknown search key"),
    })
}

/// After MODSEQ: `[SP entry-name SP entry-type-req] SP mod-sequence-valzer`
/// (RFC 7162 §3.1.5); the entry is checked and dropped.
fn modseq(p: &mut Parser<'_>) -> Res<u64> {
    p.arg("missing mod-sequence")?;
    if p.peek() == Some(b'"') {
        let entry = p.string()?;
        if !entry.starts_with("/flags/") || entry.len() == "/flags/".len() {
            return Err("invalid MODSEQ entry name");
        }
        p.sp()?;
        let t = p.word();
        if !["priv", "shared", "all"]
            .iter()
            .any(|x| t.eq_ignore_ascii_case(x.as_bytes()))
        {
            return Err("invalid MODSEQ entry type");
        }
        p.arg("missing mod-sequence")?;
    }
    p.modseq()
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{ok, ok_bytes, refused};
    use crate::types::{SearchKey::*, SeqBound::*, SequenceSet::*, *};

    fn s(x: &str) -> String {
        x.to_owned()
    }

    fn date(year: i32, month: u8, day: u8) -> Date {
        Date { year, month, day }
    }

    fn search(
        uid: bool,
        ret: Option<Vec<SearchReturn>>,
        charset: Option<&str>,
        key: SearchKey,
    ) -> Command {
        Command::Search {
            uid,
            ret,
            charset: charset.map(s),
            key,
        }
    }

    /// The key of `a SEARCH <keys>`.
    fn key(keys: &str) -> SearchKey {
        match ok(&format!("a SEARCH {keys}")) {
            Command::Search { key, .. } => key,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn sort_and_thread() {
        use crate::types::{SortCriterion, SortKey, ThreadAlgorithm};
        let crit = |reverse, key| SortCriterion { reverse, key };
        assert_eq!(
            ok("a UID SORT RETURN (MIN ALL) (REVERSE ARRIVAL cc displayTO) UTF-8 SEEN"),
            Command::Sort {
                uid: true,
                ret: Some(vec![SearchReturn::Min, SearchReturn::All]),
                criteria: vec![
                    crit(true, SortKey::Arrival),
                    crit(false, SortKey::Cc),
                    crit(false, SortKey::DisplayTo),
                ],
                charset: s("UTF-8"),
                key: Seen,
            }
        );
        assert_eq!(
            ok("a SORT (SIZE) \"us-ascii\" 1:5 UNSEEN"),
            Command::Sort {
                uid: false,
                ret: None,
                criteria: vec![crit(false, SortKey::Size)],
                charset: s("us-ascii"),
                key: And(vec![Seq(Ranges(vec![(Num(1), Num(5))])), Unseen]),
            }
        );
        assert_eq!(
            ok("a THREAD ORDEREDSUBJECT UTF-8 ALL"),
            Command::Thread {
                uid: false,
                algorithm: ThreadAlgorithm::OrderedSubject,
                charset: s("UTF-8"),
                key: All,
            }
        );
        for bad in [
            &b"a SORT () UTF-8 ALL"[..],
            b"a SORT (REVERSE) UTF-8 ALL",
            b"a SORT (NAME) UTF-8 ALL",
            b"a SORT (DATE) UTF-8",
            b"a SORT (DATE)",
            b"a SORT DATE UTF-8 ALL",
            b"a SORT (DATE DATE DATE DATE DATE DATE DATE DATE DATE DATE DATE DATE DATE DATE DATE DATE DATE DATE DATE) UTF-8 ALL",
            b"a THREAD UTF-8 ALL",
            b"a THREAD REFS UTF-8 ALL",
            b"a THREAD REFERENCES UTF-8",
        ] {
            super::super::testutil::err(bad);
        }
    }

    #[test]
    fn every_key() {
        let d = date(2024, 2, 1);
        let cases = [
            ("ALL", All),
            ("ANSWERED", Answered),
            ("BCC x", Bcc(s("x"))),
            ("BEFORE 1-Feb-2024", Before(d)),
            ("BODY \"a b\"", Body(s("a b"))),
            ("CC {3}\r\nc d", Cc(s("c d"))),
            ("DELETED", Deleted),
            ("DRAFT", Draft),
            ("FLAGGED", Flagged),
            ("FROM Smith", From(s("Smith"))),
            (
                "HEADER Message-ID \"<a@b>\"",
                Header(s("Message-ID"), s("<a@b>")),
            ),
            ("HEADER X-Spam \"\"", Header(s("X-Spam"), s(""))),
            ("KEYWORD $Forwarded", Keyword(s("$Forwarded"))),
            ("EMAILID M0a1b", EmailId(s("M0a1b"))),
            ("THREADID T1", ThreadId(s("T1"))),
            ("LARGER 1024", Larger(1024)),
            ("NEW", New),
            ("NOT SEEN", Not(Box::new(Seen))),
            ("OLD", Old),
            ("ON \"01-Feb-2024\"", On(d)),
            ("OR SEEN FLAGGED", Or(Box::new(Seen), Box::new(Flagged))),
            ("RECENT", Recent),
            ("SAVEDATESUPPORTED", SaveDateSupported),
            ("SAVEDBEFORE 01-feb-2024", SavedBefore(d)),
            ("savedon 1-Feb-2024", SavedOn(d)),
            ("SAVEDSINCE 1-Feb-2024", SavedSince(d)),
            ("SEEN", Seen),
            ("SENTBEFORE 01-feb-2024", SentBefore(d)),
            ("SENTON 1-FEB-2024", SentOn(d)),
            ("SENTSINCE 1-Feb-2024", SentSince(d)),
            ("SINCE 29-Feb-2024", Since(date(2024, 2, 29))),
            ("SMALLER 9223372036854775807", Smaller(i64::MAX as u64)),
            ("SUBJECT \"caf\u{e9}\"", Subject(s("caf\u{e9}"))),
            ("TEXT x", Text(s("x"))),
            ("TO x", To(s("x"))),
            ("UID 1:*", Uid(Ranges(vec![(Num(1), Star)]))),
            ("UID $", Uid(Saved)),
            ("UNANSWERED", Unanswered),
            ("UNDELETED", Undeleted),
            ("UNDRAFT", Undraft),
            ("UNFLAGGED", Unflagged),
            ("UNKEYWORD $Junk", Unkeyword(s("$Junk"))),
            ("UNSEEN", Unseen),
            ("2,4:*", Seq(Ranges(vec![(Num(2), Num(2)), (Num(4), Star)]))),
            ("*", Seq(Ranges(vec![(Star, Star)]))),
            ("$", Seq(Saved)),
            ("MODSEQ 0", ModSeq(0)),
            (
                "MODSEQ \"/flags/\\\\draft\" all 620162338",
                ModSeq(620162338),
            ),
            ("modseq \"/flags/$Junk\" PRIV 5", ModSeq(5)),
            ("(SEEN)", Seen),
            ("(SEEN FLAGGED)", And(vec![Seen, Flagged])),
            ("SEEN FLAGGED", And(vec![Seen, Flagged])),
            ("((((ALL))))", All),
            (
                "NOT (OR 1 2 3)",
                Not(Box::new(And(vec![
                    Or(
                        Box::new(Seq(Ranges(vec![(Num(1), Num(1))]))),
                        Box::new(Seq(Ranges(vec![(Num(2), Num(2))]))),
                    ),
                    Seq(Ranges(vec![(Num(3), Num(3))])),
                ]))),
            ),
        ];
        for (keys, want) in cases {
            assert_eq!(key(keys), want, "{keys}");
        }
    }

    #[test]
    fn rfc_examples() {
        use SearchReturn as R;
        let smith = || {
            And(vec![
                Flagged,
                Since(date(1994, 2, 1)),
                Not(Box::new(From(s("Smith")))),
            ])
        };
        let cases: &[(&[u8], Command)] = &[
            // RFC 9051 §6.4.4.
            (b"A282 SEARCH RETURN (MIN COUNT) FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\"",
                search(false, Some(vec![R::Min, R::Count]), None, smith())),
            (b"A283 SEARCH RETURN () FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\"", search(false, Some(vec![]), None, smith())),
            (b"A284 SEARCH TEXT \"string not in mailbox\"", search(false, None, None, Text(s("string not in mailbox")))),
            (b"A285 SEARCH CHARSET UTF-8 TEXT {12}\r\n\xd0\xbe\xd1\x82\xd0\xbf\xd1\x83\xd1\x81\xd0\xba",
                search(false, None, Some("UTF-8"), Text(s("отпуск")))),
            (b"A286 SEARCH CHARSET WHATEVER TEXT \"string not in mailbox\"",
                search(false, None, Some("WHATEVER"), Text(s("string not in mailbox")))),
            (b"a SEARCH CHARSET \"us-ascii\" ALL", search(false, None, Some("us-ascii"), All)),
            // RFC 5182 §3.
            (b"A300 SEARCH RETURN (SAVE) SINCE 19-Mar-2007 NOT SEEN",
                search(false, Some(vec![R::Save]), None, And(vec![Since(date(2007, 3, 19)), Not(Box::new(Seen))]))),
            (b"A301 SEARCH $ SMALLER 4096", search(false, None, None, And(vec![Seq(Saved), Smaller(4096)]))),
            (b"A302 SEARCH CHARSET UTF-8 (OR $ 1,3000:3021) TEXT {8+}\r\n\xd0\xbc\xd0\xb0\xd1\x82\xd1\x8c",
                search(false, None, Some("UTF-8"), And(vec![
                    Or(Box::new(Seq(Saved)), Box::new(Seq(Ranges(vec![(Num(1), Num(1)), (Num(3000), Num(3021))])))),
                    Text(s("мать")),
                ]))),
            // RFC 4731 §4.
            (b"A284 SEARCH RETURN (MIN) UNSEEN", search(false, Some(vec![R::Min]), None, Unseen)),
            (b"A285 UID SEARCH RETURN (MIN MAX) 1:5000",
                search(true, Some(vec![R::Min, R::Max]), None, Seq(Ranges(vec![(Num(1), Num(5000))])))),
            (b"A286 SEARCH RETURN (COUNT) DELETED", search(false, Some(vec![R::Count]), None, Deleted)),
            (b"a SEARCH RETURN (ALL) ALL", search(false, Some(vec![R::All]), None, All)),
            // RFC 5267 §4.1, §4.4; RFC 9394 §3.
            (b"a SEARCH RETURN (UPDATE ALL) SEEN", search(false, Some(vec![R::Update, R::All]), None, Seen)),
            (b"a SEARCH RETURN (PARTIAL 1:1) ALL", search(false, Some(vec![R::Partial(1, 1)]), None, All)),
            (b"a SEARCH RETURN (PARTIAL 4:2) ALL", search(false, Some(vec![R::Partial(2, 4)]), None, All)),
            (b"a UID SEARCH RETURN (COUNT PARTIAL -1:-100) ALL",
                search(true, Some(vec![R::Count, R::Partial(-1, -100)]), None, All)),
            (b"a SEARCH RETURN (PARTIAL -7:-3) ALL", search(false, Some(vec![R::Partial(-3, -7)]), None, All)),
            // RFC 7162 §3.1.5.
            (b"a UID SEARCH MODSEQ \"/flags/\\\\draft\" all 620162338",
                search(true, None, None, ModSeq(620162338))),
            (b"t SEARCH OR NOT MODSEQ 720162338 LARGER 50000",
                search(false, None, None, Or(Box::new(Not(Box::new(ModSeq(720162338)))), Box::new(Larger(50000))))),
        ];
        for (input, want) in cases {
            assert_eq!(&ok_bytes(input), want, "{}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn errors() {
        let deep = format!("a SEARCH {}ALL{}", "(".repeat(64), ")".repeat(64));
        let shallow = format!("a SEARCH {}ALL{}", "(".repeat(63), ")".repeat(63));
        assert_eq!(key(&shallow["a SEARCH ".len()..]), All);
        let nots = format!("a SEARCH {}ALL", "NOT ".repeat(64));
        refused(&[
            (&b"a SEARCH"[..], "missing search criteria"),
            (b"a SEARCH ", "missing search criteria"),
            (b"a SEARCH FOO", "unknown search key"),
            (b"a SEARCH SEEN ", "missing search key"),
            (b"a SEARCH SEEN  UNSEEN", "invalid search key"),
            (b"a SEARCH ()", "invalid search key"),
            (b"a SEARCH (SEEN", "expected ')'"),
            (b"a SEARCH SEEN)", "unexpected characters at end of command"),
            (b"a SEARCH RETURN (FOO) ALL", "unknown SEARCH return option"),
            (b"a SEARCH RETURN (MIN)", "missing search criteria"),
            (
                b"a SEARCH RETURN (PARTIAL 1) ALL",
                "malformed PARTIAL range",
            ),
            (
                b"a SEARCH RETURN (PARTIAL 1:*) ALL",
                "malformed PARTIAL range",
            ),
            (
                b"a SEARCH RETURN (PARTIAL *:1) ALL",
                "malformed PARTIAL range",
            ),
            (
                b"a SEARCH RETURN (PARTIAL 0:3) ALL",
                "malformed PARTIAL range",
            ),
            (
                b"a SEARCH RETURN (PARTIAL -1:3) ALL",
                "malformed PARTIAL range",
            ),
            (
                b"a SEARCH RETURN (PARTIAL 1:4294967296) ALL",
                "malformed PARTIAL range",
            ),
            (b"a SEARCH RETURN (PARTIAL) ALL", "expected a space"),
            (b"a SEARCH CHARSET", "missing charset"),
            (b"a SEARCH CHARSET UTF-8", "missing search criteria"),
            (
                b"a SEARCH CHARSET UTF-8 RETURN (MIN) ALL",
                "unknown search key",
            ),
            (b"a SEARCH SINCE 30-Feb-2024", "invalid date"),
            (b"a SEARCH SINCE 29-Feb-2023", "invalid date"),
            (b"a SEARCH SINCE 1-Feb-24", "invalid date"),
            (b"a SEARCH SINCE 001-Feb-2024", "invalid date"),
            (b"a SEARCH SINCE \"1-Feb-2024", "invalid date"),
            (b"a SEARCH SINCE", "missing date"),
            (b"a SEARCH FROM", "missing search string"),
            (b"a SEARCH HEADER X", "missing search string"),
            (b"a SEARCH LARGER x", "expected a number"),
            (b"a SEARCH LARGER 9223372036854775808", "number too large"),
            (b"a SEARCH OR SEEN", "missing search key"),
            (b"a SEARCH NOT", "missing search key"),
            (b"a SEARCH UID", "missing sequence set"),
            (b"a SEARCH 0", "0 is not a valid message number"),
            (b"a SEARCH MODSEQ", "missing mod-sequence"),
            (
                b"a SEARCH MODSEQ \"/x/y\" all 1",
                "invalid MODSEQ entry name",
            ),
            (
                b"a SEARCH MODSEQ \"/flags/x\" mine 1",
                "invalid MODSEQ entry type",
            ),
            (b"a SEARCH MODSEQ \"/flags/x\" all", "missing mod-sequence"),
            (b"a SEARCH KEYWORD \\Seen", "expected an atom"),
            (deep.as_bytes(), "search key nesting too deep"),
            (nots.as_bytes(), "search key nesting too deep"),
        ]);
    }
}
