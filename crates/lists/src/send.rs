//! The copies of a post queued for the members: one message for all of
//! them, or, with one-click unsubscription (`[lists] unsubscribe_url`),
//! one per member, each carrying its own `List-Unsubscribe:` URL and
//! `List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058; both are
//! in what facteur's DKIM signature covers).

use crate::{List, ListError, ListStore, message, unsubscribe_url};
use facteur_mail::dsn::BodyType;
use facteur_spool::{Envelope, QueueName, Recipient, Spool};
use std::io::Write;

/// The envelope protocol of list copies and notices (ours to sign).
pub const PROTOCOL: &str = "qmgr-list";

fn queue(
    spool: &Spool,
    q: QueueName,
    list: &List,
    copy: &[u8],
    to: &[String],
    smtputf8: bool,
) -> Result<String, ListError> {
    let env = Envelope {
        sender: list.role_address("bounces"),
        recipients: to.iter().map(|a| Recipient::new(a.clone())).collect(),
        body: if copy.is_ascii() {
            BodyType::SevenBit
        } else {
            BodyType::EightBitMime
        },
        smtputf8,
        protocol: Some(PROTOCOL.into()),
        arrival: facteur_util::date::now_unix(),
        ..Envelope::default()
    };
    let spool_err = |e: &dyn std::fmt::Display| ListError::Spool(e.to_string());
    let mut w = spool.create(q, &env).map_err(|e| spool_err(&e))?;
    if let Err(e) = w.write_all(copy) {
        w.abort();
        return Err(spool_err(&e));
    }
    w.commit().map_err(|e| spool_err(&e))
}

/// Queues the copies of `post` for `to` in `q` (incoming/ for qmgr,
/// maildrop/ for `facteurctl list approve`), from the list's `-bounces`
/// address, each committed (fsynced); their queue ids. `unsubscribe` is
/// `[lists] unsubscribe_url` ("" = one copy for all, no one-click).
pub fn queue_copies(
    store: &ListStore,
    (spool, q): (&Spool, QueueName),
    list: &List,
    post: &[u8],
    to: &[String],
    smtputf8: bool,
    unsubscribe: &str,
) -> Result<Vec<String>, ListError> {
    let copy = message::list_copy(list, post);
    if unsubscribe.trim().is_empty() {
        return Ok(vec![queue(spool, q, list, &copy, to, smtputf8)?]);
    }
    let nl: &[u8] = if copy.starts_with(b"List-Id: ") && copy.windows(2).any(|w| w == b"\r\n") {
        b"\r\n"
    } else {
        b"\n"
    };
    let mut ids = Vec::with_capacity(to.len());
    for member in to {
        let url = unsubscribe_url(
            unsubscribe,
            &list.address,
            member,
            &store.token(&list.address, member)?,
        );
        let mut personal = Vec::with_capacity(copy.len() + url.len() + 96);
        personal.extend_from_slice(format!("List-Unsubscribe: <{url}>").as_bytes());
        personal.extend_from_slice(nl);
        personal.extend_from_slice(b"List-Unsubscribe-Post: List-Unsubscribe=One-Click");
        personal.extend_from_slice(nl);
        personal.extend_from_slice(&copy);
        ids.push(queue(
            spool,
            q,
            list,
            &personal,
            std::slice::from_ref(member),
            smtputf8,
        )?);
    }
    Ok(ids)
}
