//! Mailing lists at pickup ([`facteur_lists`]): before aliases are
//! expanded, each pending recipient that is a list's address is acted on
//! and recorded as done, with what was done as its reply:
//! - the post address: the posting policy decides; a post goes on as a new
//!   message (the list copy, from `LIST-bounces`, to the enabled members),
//!   is held for the owner (who is told), or is dropped (a loop, a report);
//! - `-bounces`: the failed recipients of a delivery report are counted
//!   against the members (disabled at the list's limit);
//! - `-owner`, `-request`: sent on to the owner (a recipient like an alias's).
//!
//! Order and crashes: the new message (or the held post, or the counts) is
//! durable before the caller records the recipient as done; a crash in
//! between does it again at the next pickup (a post distributed twice at
//! worst, never lost).

use crate::Context;
use facteur_lists::{Decision, ListStore, Role, decide, message};
use facteur_mail::dsn::RcptStatus;
use facteur_spool::{Envelope, QueueName, Recipient};
use std::io::Read;
use tracing::{info, warn};

/// Acts on the list recipients of `env` (message `id` in `q`); whether a
/// recipient changed. An error postpones the message (nothing recorded).
pub fn take(
    ctx: &Context,
    lists: &ListStore,
    q: QueueName,
    id: &str,
    env: &mut Envelope,
) -> Result<bool, String> {
    let mut changed = false;
    let mut message: Option<Vec<u8>> = None;
    for i in 0..env.recipients.len() {
        let r = &env.recipients[i];
        if r.status.is_final() {
            continue;
        }
        let Some((list, role)) = lists.role(&r.address).map_err(|e| e.to_string())? else {
            continue;
        };
        if message.is_none() {
            let mut m = Vec::new();
            ctx.spool
                .open_message(q, id)
                .and_then(|mut rd| rd.read_to_end(&mut m).map_err(Into::into))
                .map_err(|e| format!("reading the message: {e}"))?;
            message = Some(m);
        }
        let msg = message.as_deref().unwrap_or_default();
        let reply = match role {
            Role::Owner | Role::Request if list.owner.is_empty() => {
                bounce(&mut env.recipients[i], "550 5.1.1 this list has no owner");
                changed = true;
                continue;
            }
            Role::Owner | Role::Request => {
                let r = &mut env.recipients[i];
                info!(queue_id = %id, rcpt = %r.address, to = %list.owner, "list owner");
                if r.orcpt.is_none() {
                    r.orcpt = Some(format!("rfc822;{}", r.address));
                }
                r.address = list.owner.clone();
                changed = true;
                continue;
            }
            Role::Bounces => {
                let failed = message::failed_recipients(msg);
                let mut counted = 0;
                for a in &failed {
                    if let Some((n, disabled)) =
                        lists.bounced(&list.address, a).map_err(|e| e.to_string())?
                    {
                        counted += 1;
                        info!(queue_id = %id, list = %list.address, member = %a, bounces = n, "list member bounced");
                        if disabled {
                            warn!(queue_id = %id, list = %list.address, member = %a, bounces = n, "list member disabled after its bounces");
                        }
                    }
                }
                format!(
                    "250 2.0.0 {counted} member bounces counted by {}",
                    list.address
                )
            }
            Role::Post => {
                let members = lists.members(&list.address).map_err(|e| e.to_string())?;
                let from = message::from_address(msg);
                let looped = message::carries_list_id(msg, &list.list_id());
                match decide(&list, &members, &env.sender, &from, looped) {
                    Decision::Distribute(to) if to.is_empty() => {
                        info!(queue_id = %id, list = %list.address, "list post: no enabled member");
                        "250 2.0.0 no enabled member".into()
                    }
                    Decision::Distribute(to) => {
                        let new = facteur_lists::queue_copies(
                            lists,
                            (&ctx.spool, QueueName::Incoming),
                            &list,
                            msg,
                            &to,
                            env.smtputf8,
                            &ctx.lists_unsubscribe,
                        )
                        .map_err(|e| format!("queueing the list copies: {e}"))?;
                        let first = new.first().cloned().unwrap_or_default();
                        info!(queue_id = %id, list = %list.address, list_id = %first, copies = new.len(), members = to.len(), "list post distributed");
                        format!("250 2.0.0 sent to {} members as {first}", to.len())
                    }
                    Decision::Hold(why) => {
                        match lists
                            .hold(&list.address, &env.sender, &why, msg)
                            .map_err(|e| e.to_string())?
                        {
                            Some(held) => {
                                info!(queue_id = %id, list = %list.address, held = %held, reason = %why, "list post held for the owner");
                                tell_owner(ctx, &list, &held, &env.sender, &why, msg);
                                format!("250 2.0.0 held for the list owner ({why})")
                            }
                            None => {
                                bounce(
                                    &mut env.recipients[i],
                                    "550 5.2.2 too many posts held for this list",
                                );
                                changed = true;
                                continue;
                            }
                        }
                    }
                    Decision::Drop(why) => {
                        info!(queue_id = %id, list = %list.address, reason = %why, "list post dropped");
                        format!("250 2.0.0 dropped: {why}")
                    }
                }
            }
        };
        let r = &mut env.recipients[i];
        r.status = RcptStatus::Delivered;
        r.last_reply = Some(reply);
        changed = true;
    }
    Ok(changed)
}

fn bounce(r: &mut Recipient, reply: &str) {
    r.status = RcptStatus::Bounced;
    r.last_reply = Some(format!("{reply} <{}>", r.address));
}

/// Tells the owner a post waits (from the null sender, never answered).
fn tell_owner(
    ctx: &Context,
    list: &facteur_lists::List,
    held: &str,
    sender: &str,
    why: &str,
    msg: &[u8],
) {
    use std::io::Write;
    if list.owner.is_empty() {
        return;
    }
    let text = format!(
        "From: {list_owner}\r\nTo: {owner}\r\nSubject: post to {addr} held: {subject}\r\n\
         Auto-Submitted: auto-generated\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\
         A post to {addr} from <{sender}> is held ({why}).\r\n\r\n\
         Send it to the members:  facteurctl list approve {held}\r\n\
         Refuse it:               facteurctl list reject {held}\r\n\
         All held posts:          facteurctl list pending {addr}\r\n",
        list_owner = list.role_address("owner"),
        owner = list.owner,
        addr = list.address,
        subject = message::subject(msg).replace(['\r', '\n'], " "),
    );
    let env = Envelope {
        sender: String::new(),
        recipients: vec![Recipient::new(list.owner.clone())],
        protocol: Some(facteur_lists::PROTOCOL.into()),
        body: facteur_mail::dsn::BodyType::EightBitMime,
        arrival: facteur_util::date::now_unix(),
        ..Envelope::default()
    };
    let done = ctx
        .spool
        .create(QueueName::Incoming, &env)
        .and_then(|mut w| {
            w.write_all(text.as_bytes())?;
            w.commit()
        });
    if let Err(e) = done {
        warn!(list = %list.address, held, error = %e, "cannot tell the owner of a held post");
    }
}
