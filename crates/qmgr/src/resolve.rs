//! Recipient resolution: the queue's envelope recipients become final
//! mailboxes (aliases, `+` details, catch-all), before the first delivery
//! attempt.
//!
//! Offers [`expand`], pure code over a [`Directory`]: the new recipient list
//! and what happened to each original recipient, for the logs. The caller
//! records the list durably (`Spool::rewrite_recipients`) before it moves the
//! message on, so expansion happens once per message (see `queue.rs`).
//!
//! Rules (the directory's [`facteur_directory::resolve`] does the walking,
//! with loop detection and a depth limit):
//! - a local mailbox becomes one queue recipient `user@domain` (with
//!   `+detail` when the detail rule applied, so lmtpd can file by detail);
//! - an external target, or an address in a domain that is not local, stays
//!   queued for remote delivery (this issue: deferred, see `queue.rs`);
//! - an unknown local address is bounced `550 5.1.1`; a loop or too deep a
//!   chain `550 5.4.6`;
//! - recipients already final are kept as they are;
//! - each final recipient keeps the NOTIFY of the address it came from and,
//!   when its address differs, an ORCPT naming that address (RFC 3461 §4.2)
//!   unless one was given already;
//! - the result is de-duplicated (by lower-case address), first one wins;
//! - an SRS address of ours (a bounce to a sender we rewrote, `[srs]`)
//!   becomes the original sender it names, with an ORCPT naming the SRS
//!   address; one that does not reverse (bad hash, too old) is bounced
//!   `550 5.1.1` (smtpd refuses those at RCPT already).
//!
//! A directory failure is temporary: [`expand`] returns the error and the
//! caller retries the whole message later, nothing is half-recorded.

use facteur_directory::{Directory, DirectoryError, ResolveError, Target};
use facteur_mail::Address;
use facteur_mail::dsn::RcptStatus;
use facteur_mail::srs::Srs;
use facteur_spool::{Envelope, Recipient};
use std::collections::HashSet;

/// The result of [`expand`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expansion {
    pub recipients: Vec<Recipient>,
    /// For the logs: (original address, final address or outcome).
    pub events: Vec<(String, String)>,
    /// Whether the recipient list differs from the envelope's.
    pub changed: bool,
    /// Final local addresses that are alias sources themselves (a "keep a
    /// copy" alias): the LMTP server may expand them again.
    pub warnings: Vec<String>,
}

/// Expands every non-final recipient of `env`; `srs`: ours, with today's
/// day number (days since 1970).
pub fn expand(
    dir: &dyn Directory,
    env: &Envelope,
    delimiters: &str,
    srs: Option<(&Srs, i64)>,
) -> Result<Expansion, DirectoryError> {
    // All the lookups of one message in one read of the directory.
    facteur_directory::read_together(dir, || expand_all(dir, env, delimiters, srs))
}

fn expand_all(
    dir: &dyn Directory,
    env: &Envelope,
    delimiters: &str,
    srs: Option<(&Srs, i64)>,
) -> Result<Expansion, DirectoryError> {
    let mut out = Expansion {
        recipients: Vec::new(),
        events: Vec::new(),
        changed: false,
        warnings: Vec::new(),
    };
    let mut seen = HashSet::new();
    let mut push = |out: &mut Expansion, r: Recipient| {
        if seen.insert(r.address.to_lowercase()) {
            out.recipients.push(r);
        } else {
            out.changed = true;
        }
    };
    for r in &env.recipients {
        if r.status.is_final() {
            push(&mut out, r.clone());
            continue;
        }
        if let Some((srs, day)) = srs.filter(|(s, _)| s.is_ours(&r.address)) {
            out.changed = true;
            match srs.reverse(&r.address, day) {
                Ok(orig) => {
                    out.events.push((r.address.clone(), orig.clone()));
                    push(&mut out, moved(r, orig));
                }
                Err(e) => {
                    let reply = format!("550 5.1.1 <{}>: {e}", r.address);
                    out.events.push((r.address.clone(), reply.clone()));
                    push(&mut out, bounced(r, reply));
                }
            }
            continue;
        }
        let addr = match Address::parse(&r.address) {
            Ok(a) => a,
            Err(e) => {
                let reply = format!("550 5.1.3 <{}>: bad address syntax: {e}", r.address);
                out.events.push((r.address.clone(), reply.clone()));
                push(&mut out, bounced(r, reply));
                out.changed = true;
                continue;
            }
        };
        match facteur_directory::resolve_for(dir, &addr, delimiters, facteur_directory::Hop::Queue)
        {
            Ok(targets) => {
                for t in targets {
                    let final_addr = match t {
                        Target::Local { user, detail } => {
                            if !dir.alias_targets(&user.address)?.is_empty() {
                                out.warnings.push(user.address.clone());
                            }
                            with_detail(&user.address, detail.as_deref(), &addr, delimiters)
                        }
                        Target::External(a) => a.to_string(),
                    };
                    out.events.push((r.address.clone(), final_addr.clone()));
                    if final_addr == r.address {
                        push(&mut out, r.clone());
                        continue;
                    }
                    out.changed = true;
                    push(&mut out, moved(r, final_addr));
                }
            }
            Err(ResolveError::NotLocal) => {
                out.events
                    .push((r.address.clone(), "remote (not a local domain)".into()));
                push(&mut out, r.clone());
            }
            Err(ResolveError::UnknownUser) => {
                let reply = format!("550 5.1.1 <{}>: no such user here", r.address);
                out.events.push((r.address.clone(), reply.clone()));
                push(&mut out, bounced(r, reply));
                out.changed = true;
            }
            Err(e @ (ResolveError::Loop | ResolveError::TooDeep(_))) => {
                let reply = format!("550 5.4.6 <{}>: {e}", r.address);
                out.events.push((r.address.clone(), reply.clone()));
                push(&mut out, bounced(r, reply));
                out.changed = true;
            }
            Err(ResolveError::Directory(e)) => return Err(e),
        }
    }
    Ok(out)
}

/// `r` sent on to `address`, with an ORCPT naming the address it came from
/// unless it had one (RFC 3461 §4.2).
fn moved(r: &Recipient, address: String) -> Recipient {
    Recipient {
        address,
        orcpt: r
            .orcpt
            .clone()
            .or_else(|| Some(format!("rfc822;{}", r.address))),
        ..r.clone()
    }
}

fn bounced(r: &Recipient, reply: String) -> Recipient {
    Recipient {
        status: RcptStatus::Bounced,
        last_reply: Some(reply),
        ..r.clone()
    }
}

/// `user@dom` with the detail put back: `user+detail@dom`, using the
/// delimiter the original address used when it ends in that detail, else the
/// first configured delimiter.
fn with_detail(user: &str, detail: Option<&str>, orig: &Address, delimiters: &str) -> String {
    let Some(d) = detail else {
        return user.to_string();
    };
    let (local, domain) = user.rsplit_once('@').unwrap_or((user, ""));
    let used = orig
        .local()
        .strip_suffix(d)
        .and_then(|s| s.chars().last())
        .filter(|c| delimiters.contains(*c));
    let delim = used.or_else(|| delimiters.chars().next()).unwrap_or('+');
    format!("{local}{delim}{d}@{domain}")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
mod tests {
    use super::*;
    use facteur_directory::SqliteDirectory;
    use facteur_mail::dsn::Notify;

    fn dir() -> SqliteDirectory {
        let d = SqliteDirectory::open_in_memory().unwrap();
        d.add_domain("example.test").unwrap();
        for u in ["alice@example.test", "bob@example.test"] {
            d.add_user(u, "{PLAIN}x", 0, 0).unwrap();
        }
        d.add_alias("team@example.test", "alice@example.test")
            .unwrap();
        d.add_alias("team@example.test", "Bob@example.test")
            .unwrap();
        d.add_alias("team@example.test", "friend@remote.test")
            .unwrap();
        d.add_alias("broken@example.test", "gone@example.test")
            .unwrap();
        d.add_alias("loop@example.test", "loop2@example.test")
            .unwrap();
        d.add_alias("loop2@example.test", "loop@example.test")
            .unwrap();
        d
    }

    fn env(rcpts: &[&str]) -> Envelope {
        Envelope {
            sender: "s@remote.test".into(),
            recipients: rcpts.iter().map(|r| Recipient::new(*r)).collect(),
            ..Envelope::default()
        }
    }

    #[test]
    fn srs_addresses_go_back_to_the_original_sender() {
        let d = dir();
        let srs = Srs::new(b"k".to_vec(), "mx.example.test", 21);
        let good = srs.forward("carol@remote.test", 100).unwrap();
        let forged = good.replace("=carol@", "=mallory@");
        let e = env(&[&good, &forged, "alice@example.test"]);
        let x = expand(&d, &e, "+", Some((&srs, 101))).unwrap();
        assert!(x.changed);
        let r = &x.recipients;
        assert_eq!(r[0].address, "carol@remote.test");
        assert_eq!(
            r[0].orcpt.as_deref(),
            Some(format!("rfc822;{good}").as_str())
        );
        assert_eq!(r[1].status, RcptStatus::Bounced);
        assert!(
            r[1].last_reply.as_deref().unwrap().starts_with("550 5.1.1"),
            "{:?}",
            r[1]
        );
        assert_eq!(r[2].address, "alice@example.test");
        // Too old.
        let x = expand(&d, &env(&[&good]), "+", Some((&srs, 200))).unwrap();
        assert_eq!(x.recipients[0].status, RcptStatus::Bounced);
        // SRS off: an address like any other (here: not a local domain).
        let x = expand(&d, &env(&[&good]), "+", None).unwrap();
        assert_eq!(x.recipients[0].address, good);
    }

    fn summary(e: &Expansion) -> Vec<String> {
        e.recipients
            .iter()
            .map(|r| {
                format!(
                    "{} {:?} {}",
                    r.address,
                    r.status,
                    r.orcpt.as_deref().unwrap_or("-")
                )
            })
            .collect()
    }

    #[test]
    fn plain_users_are_unchanged() {
        let e = expand(
            &dir(),
            &env(&["alice@example.test", "x@remote.test"]),
            "+",
            None,
        )
        .unwrap();
        assert!(!e.changed);
        assert_eq!(
            summary(&e),
            vec!["alice@example.test Pending -", "x@remote.test Pending -"]
        );
    }

    #[test]
    fn fan_out_dedup_orcpt_notify() {
        let mut en = env(&[
            "team@example.test",
            "bob@example.test",
            "ALICE+news@example.test",
        ]);
        en.recipients[0].notify = Notify {
            failure: true,
            ..Notify::default()
        };
        let e = expand(&dir(), &en, "+", None).unwrap();
        assert!(e.changed);
        assert_eq!(
            summary(&e),
            vec![
                "alice@example.test Pending rfc822;team@example.test",
                "bob@example.test Pending rfc822;team@example.test",
                "friend@remote.test Pending rfc822;team@example.test",
                "alice+news@example.test Pending rfc822;ALICE+news@example.test",
            ]
        );
        assert!(e.recipients[..3].iter().all(|r| r.notify.failure));
        assert!(!e.recipients[3].notify.failure);
        assert_eq!(e.events.len(), 5);
    }

    #[test]
    fn given_orcpt_is_kept_and_detail_delimiter() {
        let mut en = env(&["team@example.test", "bob-x@example.test"]);
        en.recipients[0].orcpt = Some("rfc822;list@elsewhere.test".into());
        let e = expand(&dir(), &en, "+-", None).unwrap();
        assert_eq!(
            e.recipients[0].orcpt.as_deref(),
            Some("rfc822;list@elsewhere.test")
        );
        assert_eq!(e.recipients[3].address, "bob-x@example.test");
        assert_eq!(e.recipients[3].orcpt, None);
    }

    #[test]
    fn failures_bounce_and_finals_stay() {
        let mut en = env(&[
            "nobody@example.test",
            "broken@example.test",
            "loop@example.test",
            "team@example.test",
        ]);
        en.recipients[3].status = RcptStatus::Delivered;
        let e = expand(&dir(), &en, "+", None).unwrap();
        let s = summary(&e);
        assert!(s[0].starts_with("nobody@example.test Bounced"), "{s:?}");
        assert!(
            e.recipients[0]
                .last_reply
                .as_deref()
                .unwrap()
                .starts_with("550 5.1.1")
        );
        assert!(s[1].starts_with("broken@example.test Bounced"));
        assert!(
            e.recipients[2]
                .last_reply
                .as_deref()
                .unwrap()
                .starts_with("550 5.4.6")
        );
        assert_eq!(s[3], "team@example.test Delivered -");
    }

    #[test]
    fn keep_a_copy_alias_is_flagged() {
        let d = dir();
        d.add_alias("alice@example.test", "alice@example.test")
            .unwrap();
        d.add_alias("alice@example.test", "bob@example.test")
            .unwrap();
        let e = expand(&d, &env(&["alice@example.test"]), "+", None).unwrap();
        assert_eq!(
            summary(&e),
            vec![
                "alice@example.test Pending -",
                "bob@example.test Pending rfc822;alice@example.test"
            ]
        );
        assert_eq!(e.warnings, vec!["alice@example.test"]);
    }
}
