//! Mailbox commands: SELECT/EXAMINE with CONDSTORE and QRESYNC parameters
//! (RFC 9051 §6.3.2-3, RFC 7162 §3.1.8, §3.2.5), CREATE with USE (RFC 6154
//! §3), DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE, LIST with the extended
//! syntax (RFC 5258 §3, RFC 5819, RFC 6154 §5), LSUB (RFC 3501), STATUS
//! (RFC 9051 §6.3.11, RFC 8438, RFC 7889, RFC 7162), the ACL commands (RFC
//! 4314 §3); APPEND is in `append.rs`, the URLAUTH commands in `urlauth.rs`.
//!
//! Needs the lexer; guarantees what it does (no panic, linear time).

use super::lexer::{Parser, Res};
use crate::types::{Command, ListReturn, ListSelect, QresyncParams, StatusItem};

/// Parses the commands of this group; Ok(None) if `name` is not one.
pub(super) fn parse(p: &mut Parser<'_>, name: &[u8]) -> Res<Option<Command>> {
    let is = |s: &str| name.eq_ignore_ascii_case(s.as_bytes());
    let cmd = if is("SELECT") || is("EXAMINE") {
        select(p, is("EXAMINE"))?
    } else if is("CREATE") {
        create(p)?
    } else if is("DELETE") {
        p.arg("missing mailbox name")?;
        Command::Delete(p.mailbox()?)
    } else if is("RENAME") {
        p.arg("missing mailbox name")?;
        let from = p.mailbox()?;
        p.arg("missing new mailbox name")?;
        let to = p.mailbox()?;
        Command::Rename { from, to }
    } else if is("SUBSCRIBE") {
        p.arg("missing mailbox name")?;
        Command::Subscribe(p.mailbox()?)
    } else if is("UNSUBSCRIBE") {
        p.arg("missing mailbox name")?;
        Command::Unsubscribe(p.mailbox()?)
    } else if is("LIST") {
        list(p)?
    } else if is("LSUB") {
        p.arg("missing reference name")?;
        let reference = p.mailbox()?;
        p.arg("missing mailbox pattern")?;
        let pattern = p.list_mailbox()?;
        Command::Lsub { reference, pattern }
    } else if is("STATUS") {
        p.arg("missing mailbox name")?;
        let mailbox = p.mailbox()?;
        p.arg("missing status items")?;
        let items = p.paren_list(status_item)?;
        Command::Status { mailbox, items }
    } else if is("APPEND") {
        super::append::append(p)?
    } else if is("SETACL") {
        let (mailbox, identifier) = mailbox_and_identifier(p)?;
        p.arg("missing rights")?;
        let rights = p.astring()?;
        Command::SetAcl {
            mailbox,
            identifier,
            rights,
        }
    } else if is("DELETEACL") {
        let (mailbox, identifier) = mailbox_and_identifier(p)?;
        Command::DeleteAcl {
            mailbox,
            identifier,
        }
    } else if is("LISTRIGHTS") {
        let (mailbox, identifier) = mailbox_and_identifier(p)?;
        Command::ListRights {
            mailbox,
            identifier,
        }
    } else if is("GETACL") {
        p.arg("missing mailbox name")?;
        Command::GetAcl(p.mailbox()?)
    } else if is("MYRIGHTS") {
        p.arg("missing mailbox name")?;
        Command::MyRights(p.mailbox()?)
    } else {
        return Ok(None);
    };
    Ok(Some(cmd))
}

/// `mailbox SP identifier` (RFC 4314 §7: an identifier is an astring).
fn mailbox_and_identifier(p: &mut Parser<'_>) -> Res<(String, String)> {
    p.arg("missing mailbox name")?;
    let mailbox = p.mailbox()?;
    p.arg("missing identifier")?;
    let identifier = p.astring()?;
    if identifier.is_empty() {
        return Err("empty identifier");
    }
    Ok((mailbox, identifier))
}

/// `SELECT mailbox [SP "(" select-param *(SP select-param) ")"]`.
fn select(p: &mut Parser<'_>, read_only: bool) -> Res<Command> {
    p.arg("missing mailbox name")?;
    let mailbox = p.mailbox()?;
    let mut condstore = false;
    let mut qresync = None;
    if !p.at_end() {
        p.arg("missing SELECT parameters")?;
        p.paren_list(|p| {
            let w = p.word();
            if w.eq_ignore_ascii_case(b"CONDSTORE") {
                condstore = true;
            } else if w.eq_ignore_ascii_case(b"QRESYNC") {
                p.sp()?;
                qresync = Some(qresync_params(p)?);
            } else {
                return Err("unknown SELECT parameter");
            }
            Ok(())
        })?;
    }
    Ok(Command::Select {
        mailbox,
        read_only,
        condstore,
        qresync,
    })
}

/// `"(" uidvalidity SP mod-sequence-value [SP known-uids]
/// [SP seq-match-data] ")"` (RFC 7162 §7).
fn qresync_params(p: &mut Parser<'_>) -> Res<QresyncParams> {
    p.expect(b'(', "expected QRESYNC parameters")?;
    let uidvalidity = p.nz_number()?;
    p.sp()?;
    let modseq = p.modseq()?;
    if modseq == 0 {
        return Err("QRESYNC mod-sequence must not be 0");
    }
    let mut known_uids = None;
    let mut seq_match = None;
    if p.eat(b' ') && p.peek() != Some(b'(') {
        known_uids = Some(p.seq_set()?);
        if !p.eat(b' ') {
            p.expect(b')', "expected ')'")?;
            return Ok(QresyncParams {
                uidvalidity,
                modseq,
                known_uids,
                seq_match,
            });
        }
    }
    if p.eat(b'(') {
        let seqs = p.seq_set()?;
        p.sp()?;
        let uids = p.seq_set()?;
        p.expect(b')', "expected ')'")?;
        seq_match = Some((seqs, uids));
    }
    p.expect(b')', "expected ')'")?;
    Ok(QresyncParams {
        uidvalidity,
        modseq,
        known_uids,
        seq_match,
    })
}

/// `CREATE mailbox [SP "(" "USE" SP "(" [use-attr *(SP use-attr)] ")" ")"]`.
fn create(p: &mut Parser<'_>) -> Res<Command> {
    p.arg("missing mailbox name")?;
    let mailbox = p.mailbox()?;
    let mut special_use = Vec::new();
    if !p.at_end() {
        p.arg("missing CREATE parameters")?;
        p.paren_list(|p| {
            if !p.word().eq_ignore_ascii_case(b"USE") {
                return Err("unknown CREATE parameter");
            }
            p.sp()?;
            for a in p.flag_list()? {
                if !a.starts_with('\\') {
                    return Err("invalid special-use attribute");
                }
                special_use.push(a);
            }
            Ok(())
        })?;
    }
    Ok(Command::Create {
        mailbox,
        special_use,
    })
}

/// `LIST [SP list-select-opts] SP mailbox SP mbox-or-pat
/// [SP list-return-opts]` (RFC 5258 §6).
fn list(p: &mut Parser<'_>) -> Res<Command> {
    p.arg("missing reference name")?;
    let mut select = ListSelect::default();
    if p.peek() == Some(b'(') {
        p.paren_list0(|p| {
            let w = p.word();
            let is = |s: &str| w.eq_ignore_ascii_case(s.as_bytes());
            if is("SUBSCRIBED") {
                select.subscribed = true;
            } else if is("REMOTE") {
                select.remote = true;
            } else if is("RECURSIVEMATCH") {
                select.recursive_match = true;
            } else if is("SPECIAL-USE") {
                select.special_use = true;
            } else {
                return Err("unknown LIST selection option");
            }
            Ok(())
        })?;
        // RFC 5258 §3: RECURSIVEMATCH alone (or with only REMOTE) is BAD.
        if select.recursive_match && !select.subscribed && !select.special_use {
            return Err("RECURSIVEMATCH needs another selection option");
        }
        p.arg("missing reference name")?;
    }
    let reference = p.mailbox()?;
    p.arg("missing mailbox pattern")?;
    let patterns = if p.peek() == Some(b'(') {
        p.paren_list(|p| p.list_mailbox())?
    } else {
        vec![p.list_mailbox()?]
    };
    let mut ret = ListReturn::default();
    if !p.at_end() {
        p.sp()?;
        if !p.word().eq_ignore_ascii_case(b"RETURN") {
            return Err("expected RETURN");
        }
        p.sp()?;
        p.paren_list0(|p| {
            let w = p.word();
            let is = |s: &str| w.eq_ignore_ascii_case(s.as_bytes());
            if is("SUBSCRIBED") {
                ret.subscribed = true;
            } else if is("CHILDREN") {
                ret.children = true;
            } else if is("SPECIAL-USE") {
                ret.special_use = true;
            } else if is("STATUS") {
                p.sp()?;
                ret.status = Some(p.paren_list(status_item)?);
            } else if is("MYRIGHTS") {
                ret.myrights = true;
            } else {
                return Err("unknown LIST return option");
            }
            Ok(())
        })?;
    }
    Ok(Command::List {
        reference,
        patterns,
        select,
        ret,
    })
}

/// One STATUS data item name.
pub(super) fn status_item(p: &mut Parser<'_>) -> Res<StatusItem> {
    let w = p.word();
    let is = |s: &str| w.eq_ignore_ascii_case(s.as_bytes());
    Ok(if is("MESSAGES") {
        StatusItem::Messages
    } else if is("RECENT") {
        StatusItem::Recent
    } else if is("UIDNEXT") {
        StatusItem::UidNext
    } else if is("UIDVALIDITY") {
        StatusItem::UidValidity
    } else if is("UNSEEN") {
        StatusItem::Unseen
    } else if is("DELETED") {
        StatusItem::Deleted
    } else if is("SIZE") {
        StatusItem::Size
    } else if is("HIGHESTMODSEQ") {
        StatusItem::HighestModSeq
    } else if is("APPENDLIMIT") {
        StatusItem::AppendLimit
    } else if is("MAILBOXID") {
        StatusItem::MailboxId
    } else {
        return Err("unknown status item");
    })
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{parses, refused};
    use crate::types::{SeqBound::*, SequenceSet::*, *};

    fn s(x: &str) -> String {
        x.to_owned()
    }

    fn select(
        m: &str,
        read_only: bool,
        condstore: bool,
        qresync: Option<QresyncParams>,
    ) -> Command {
        Command::Select {
            mailbox: s(m),
            read_only,
            condstore,
            qresync,
        }
    }

    #[test]
    fn select_examine() {
        let cases = [
            ("A142 SELECT INBOX", select("INBOX", false, false, None)),
            (
                "A932 EXAMINE blurdybloop",
                select("blurdybloop", true, false, None),
            ),
            (
                "a select \"Sent Items\"",
                select("Sent Items", false, false, None),
            ),
            (
                "a SELECT Entw\u{fc}rfe",
                select("Entw\u{fc}rfe", false, false, None),
            ),
            (
                "a SELECT Entw&APw-rfe",
                select("Entw&APw-rfe", false, false, None),
            ),
            // RFC 7162 §3.1.8, §3.2.5.
            (
                "a103 SELECT INBOX (CONDSTORE)",
                select("INBOX", false, true, None),
            ),
            (
                "A02 SELECT INBOX (QRESYNC (67890007 20050715194045000))",
                select(
                    "INBOX",
                    false,
                    false,
                    Some(QresyncParams {
                        uidvalidity: 67890007,
                        modseq: 20050715194045000,
                        known_uids: None,
                        seq_match: None,
                    }),
                ),
            ),
            (
                "A03 SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541))",
                select(
                    "INBOX",
                    false,
                    false,
                    Some(QresyncParams {
                        uidvalidity: 67890007,
                        modseq: 20050715194045000,
                        known_uids: Some(Ranges(vec![
                            (Num(41), Num(41)),
                            (Num(43), Num(211)),
                            (Num(214), Num(541)),
                        ])),
                        seq_match: None,
                    }),
                ),
            ),
            (
                "B04 EXAMINE INBOX (CONDSTORE QRESYNC (67890007 90060115194045000 1:29997 (5000,7500,9000,9990:9999 15000,22500,27000,29970,29973,29975:29977)))",
                select(
                    "INBOX",
                    true,
                    true,
                    Some(QresyncParams {
                        uidvalidity: 67890007,
                        modseq: 90060115194045000,
                        known_uids: Some(Ranges(vec![(Num(1), Num(29997))])),
                        seq_match: Some((
                            Ranges(vec![
                                (Num(5000), Num(5000)),
                                (Num(7500), Num(7500)),
                                (Num(9000), Num(9000)),
                                (Num(9990), Num(9999)),
                            ]),
                            Ranges(vec![
                                (Num(15000), Num(15000)),
                                (Num(22500), Num(22500)),
                                (Num(27000), Num(27000)),
                                (Num(29970), Num(29970)),
                                (Num(29973), Num(29973)),
                                (Num(29975), Num(29977)),
                            ]),
                        )),
                    }),
                ),
            ),
            (
                "a SELECT x (QRESYNC (1 2 (3 4)))",
                select(
                    "x",
                    false,
                    false,
                    Some(QresyncParams {
                        uidvalidity: 1,
                        modseq: 2,
                        known_uids: None,
                        seq_match: Some((
                            Ranges(vec![(Num(3), Num(3))]),
                            Ranges(vec![(Num(4), Num(4))]),
                        )),
                    }),
                ),
            ),
        ];
        parses(&cases);
    }

    #[test]
    fn mailbox_commands() {
        let list = |r: &str, p: &[&str], select: ListSelect, ret: ListReturn| Command::List {
            reference: s(r),
            patterns: p.iter().map(|x| s(x)).collect(),
            select,
            ret,
        };
        let d = ListSelect::default;
        let n = ListReturn::default;
        let cases = [
            (
                "A003 CREATE owatagusiam/",
                Command::Create {
                    mailbox: s("owatagusiam/"),
                    special_use: vec![],
                },
            ),
            // RFC 6154 §5.2.
            (
                "t1 CREATE \"Everything\" (USE (\\All))",
                Command::Create {
                    mailbox: s("Everything"),
                    special_use: vec![s("\\All")],
                },
            ),
            (
                "t1 CREATE x (use (\\Sent \\Archive))",
                Command::Create {
                    mailbox: s("x"),
                    special_use: vec![s("\\Sent"), s("\\Archive")],
                },
            ),
            ("A683 DELETE blurdybloop", Command::Delete(s("blurdybloop"))),
            (
                "A684 RENAME blurdybloop sarasoop",
                Command::Rename {
                    from: s("blurdybloop"),
                    to: s("sarasoop"),
                },
            ),
            (
                "A002 SUBSCRIBE #news.comp.mail.mime",
                Command::Subscribe(s("#news.comp.mail.mime")),
            ),
            (
                "A002 UNSUBSCRIBE #news.comp.mail.mime",
                Command::Unsubscribe(s("#news.comp.mail.mime")),
            ),
            ("A101 LIST \"\" \"\"", list("", &[""], d(), n())),
            (
                "A102 LIST #news.comp.mail.misc \"\"",
                list("#news.comp.mail.misc", &[""], d(), n()),
            ),
            ("A202 LIST ~/Mail/ %", list("~/Mail/", &["%"], d(), n())),
            ("a LIST ~ {1}\r\n%", list("~", &["%"], d(), n())),
            ("a LIST \"\" *", list("", &["*"], d(), n())),
            ("a LIST \"\" INBOX.*]%", list("", &["INBOX.*]%"], d(), n())),
            // RFC 5258 §5.
            (
                "A02 LIST (SUBSCRIBED) \"\" \"*\"",
                list(
                    "",
                    &["*"],
                    ListSelect {
                        subscribed: true,
                        ..d()
                    },
                    n(),
                ),
            ),
            (
                "A03 LIST () \"\" \"%\" RETURN (CHILDREN)",
                list(
                    "",
                    &["%"],
                    d(),
                    ListReturn {
                        children: true,
                        ..n()
                    },
                ),
            ),
            (
                "A04 LIST (REMOTE) \"\" \"%\" RETURN (CHILDREN)",
                list(
                    "",
                    &["%"],
                    ListSelect {
                        remote: true,
                        ..d()
                    },
                    ListReturn {
                        children: true,
                        ..n()
                    },
                ),
            ),
            (
                "A05 LIST (REMOTE SUBSCRIBED) \"/\" \"*\"",
                list(
                    "/",
                    &["*"],
                    ListSelect {
                        remote: true,
                        subscribed: true,
                        ..d()
                    },
                    n(),
                ),
            ),
            (
                "A06 LIST (SUBSCRIBED RECURSIVEMATCH) \"\" \"%\" RETURN (CHILDREN)",
                list(
                    "",
                    &["%"],
                    ListSelect {
                        subscribed: true,
                        recursive_match: true,
                        ..d()
                    },
                    ListReturn {
                        children: true,
                        ..n()
                    },
                ),
            ),
            (
                "BBB LIST \"\" (\"INBOX\" \"Drafts\" \"Sent/%\")",
                list("", &["INBOX", "Drafts", "Sent/%"], d(), n()),
            ),
            ("a LIST \"\" % RETURN ()", list("", &["%"], d(), n())),
            // RFC 6154 §5.1.
            (
                "t1 LIST (SPECIAL-USE) \"\" \"*\"",
                list(
                    "",
                    &["*"],
                    ListSelect {
                        special_use: true,
                        ..d()
                    },
                    n(),
                ),
            ),
            (
                "t3 LIST \"\" \"%\" RETURN (SPECIAL-USE)",
                list(
                    "",
                    &["%"],
                    d(),
                    ListReturn {
                        special_use: true,
                        ..n()
                    },
                ),
            ),
            // RFC 5819 §2.
            (
                "A01 LIST \"\" % RETURN (STATUS (MESSAGES UNSEEN))",
                list(
                    "",
                    &["%"],
                    d(),
                    ListReturn {
                        status: Some(vec![StatusItem::Messages, StatusItem::Unseen]),
                        ..n()
                    },
                ),
            ),
            (
                "a LIST (SUBSCRIBED REMOTE RECURSIVEMATCH SPECIAL-USE) \"\" (\"a\" \"b\") RETURN (SUBSCRIBED CHILDREN SPECIAL-USE STATUS (MESSAGES UNSEEN))",
                list(
                    "",
                    &["a", "b"],
                    ListSelect {
                        subscribed: true,
                        remote: true,
                        recursive_match: true,
                        special_use: true,
                    },
                    ListReturn {
                        subscribed: true,
                        children: true,
                        special_use: true,
                        status: Some(vec![StatusItem::Messages, StatusItem::Unseen]),
                        myrights: false,
                    },
                ),
            ),
            // RFC 8440 §3.
            (
                "T1 LIST \"\" \"%\" RETURN (MYRIGHTS)",
                list(
                    "",
                    &["%"],
                    ListSelect::default(),
                    ListReturn {
                        myrights: true,
                        ..n()
                    },
                ),
            ),
            // RFC 4314 §3 (its examples).
            (
                "A035 SETACL INBOX/Drafts John lrQswicda",
                Command::SetAcl {
                    mailbox: s("INBOX/Drafts"),
                    identifier: s("John"),
                    rights: s("lrQswicda"),
                },
            ),
            (
                "A002 SETACL INBOX/Drafts Chris +cda",
                Command::SetAcl {
                    mailbox: s("INBOX/Drafts"),
                    identifier: s("Chris"),
                    rights: s("+cda"),
                },
            ),
            (
                "a setacl x \"bob@example.test\" \"\"",
                Command::SetAcl {
                    mailbox: s("x"),
                    identifier: s("bob@example.test"),
                    rights: s(""),
                },
            ),
            (
                "B002 DeleteAcl INBOX Fred",
                Command::DeleteAcl {
                    mailbox: s("INBOX"),
                    identifier: s("Fred"),
                },
            ),
            ("A002 getAcl INBOX", Command::GetAcl(s("INBOX"))),
            (
                "a001 LISTRIGHTS ~/Mail/saved smith",
                Command::ListRights {
                    mailbox: s("~/Mail/saved"),
                    identifier: s("smith"),
                },
            ),
            ("A003 MYRIGHTS INBOX", Command::MyRights(s("INBOX"))),
            (
                "A002 LSUB \"#news.\" \"comp.mail.*\"",
                Command::Lsub {
                    reference: s("#news."),
                    pattern: s("comp.mail.*"),
                },
            ),
            (
                "A042 STATUS blurdybloop (UIDNEXT MESSAGES)",
                Command::Status {
                    mailbox: s("blurdybloop"),
                    items: vec![StatusItem::UidNext, StatusItem::Messages],
                },
            ),
            (
                "a status x (messages recent uidnext uidvalidity unseen deleted size highestmodseq appendlimit)",
                Command::Status {
                    mailbox: s("x"),
                    items: vec![
                        StatusItem::Messages,
                        StatusItem::Recent,
                        StatusItem::UidNext,
                        StatusItem::UidValidity,
                        StatusItem::Unseen,
                        StatusItem::Deleted,
                        StatusItem::Size,
                        StatusItem::HighestModSeq,
                        StatusItem::AppendLimit,
                    ],
                },
            ),
        ];
        parses(&cases);
    }

    #[test]
    fn errors() {
        refused(&[
            (&b"a SELECT"[..], "missing mailbox name"),
            (b"a SELECT ", "missing mailbox name"),
            (b"a SELECT INBOX ()", "unknown SELECT parameter"),
            (b"a SELECT INBOX (FOO)", "unknown SELECT parameter"),
            (
                b"a SELECT INBOX (QRESYNC (0 1))",
                "zero is not a valid number here",
            ),
            (
                b"a SELECT INBOX (QRESYNC (1 0))",
                "QRESYNC mod-sequence must not be 0",
            ),
            (
                b"a SELECT INBOX (QRESYNC (1 9223372036854775808))",
                "mod-sequence too large",
            ),
            (
                b"a SELECT INBOX (QRESYNC (1 2 3:4 (5)))",
                "expected a space",
            ),
            (
                b"a SELECT INBOX (QRESYNC (1 2 0))",
                "0 is not a valid message number",
            ),
            (b"a CREATE", "missing mailbox name"),
            (b"a CREATE x (USE (Sent))", "invalid special-use attribute"),
            (b"a CREATE x (FOO (\\Sent))", "unknown CREATE parameter"),
            (b"a RENAME x", "missing new mailbox name"),
            (b"a LIST", "missing reference name"),
            (b"a LIST \"\"", "missing mailbox pattern"),
            (b"a LIST () \"\" ()", "expected a string"),
            (b"a LIST (FOO) \"\" %", "unknown LIST selection option"),
            (
                b"a LIST (RECURSIVEMATCH) \"\" %",
                "RECURSIVEMATCH needs another selection option",
            ),
            (
                b"a LIST (REMOTE RECURSIVEMATCH) \"\" %",
                "RECURSIVEMATCH needs another selection option",
            ),
            (b"a LIST \"\" % RETURN (FOO)", "unknown LIST return option"),
            (b"a LIST \"\" % FOO ()", "expected RETURN"),
            (b"a LSUB \"\"", "missing mailbox pattern"),
            (b"a STATUS x", "missing status items"),
            (b"a SETACL x", "missing identifier"),
            (b"a SETACL x bob", "missing rights"),
            (b"a SETACL x \"\" lr", "empty identifier"),
            (b"a DELETEACL x", "missing identifier"),
            (b"a LISTRIGHTS", "missing mailbox name"),
            (b"a GETACL", "missing mailbox name"),
            (b"a MYRIGHTS", "missing mailbox name"),
            (b"a STATUS x ()", "unknown status item"),
            (b"a STATUS x (MESSAGES FOO)", "unknown status item"),
            (b"a STATUS x MESSAGES", "expected '('"),
            (b"a APPEND INBOX", "missing message literal"),
            (b"a APPEND INBOX (\\Seen)", "missing message literal"),
            (b"a APPEND INBOX (\\Seen) x", "expected message literal"),
            (
                b"a APPEND INBOX {5}\r\nhello",
                "unexpected characters after APPEND literal",
            ),
            (b"a APPEND INBOX {5", "malformed literal"),
            (
                b"a APPEND INBOX \"30-Feb-2024 00:00:00 +0000\" {5}",
                "invalid date-time",
            ),
            (
                b"a APPEND INBOX \"01-Foo-2024 00:00:00 +0000\" {5}",
                "invalid date-time",
            ),
            (
                b"a APPEND INBOX \"01-Jan-2024 24:00:00 +0000\" {5}",
                "invalid date-time",
            ),
            (
                b"a APPEND INBOX \"01-Jan-2024 00:00:00 0000\" {5}",
                "invalid date-time",
            ),
            (
                b"a APPEND INBOX \"01-Jan-2024 00:00:00 +00000\" {5}",
                "invalid date-time",
            ),
            (
                b"a APPEND INBOX \"01-Jan-2024 00:00\" {5}",
                "invalid date-time",
            ),
            (b"a APPEND {5}\r\nINBOX", "missing message literal"),
            (b"a APPEND {5}", "literal data missing"),
        ]);
    }
}
