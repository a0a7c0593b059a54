//! `facteurctl list`: mailing lists (facteur-lists), in the directory's
//! database. What qmgr does with their mail is in facteur-qmgr's
//! `lists.rs`; `approve` sends a held post on itself, through maildrop/.

use crate::cli::ListAction;
use anyhow::{Context as _, bail};
use facteur_config::Config;
use facteur_lists::{ListStore, Post, queue_copies};

fn yes_no(flag: &str, v: &str) -> anyhow::Result<bool> {
    match v {
        "yes" | "true" | "on" => Ok(true),
        "no" | "false" | "off" => Ok(false),
        _ => bail!("{flag} {v:?}: yes or no"),
    }
}

pub fn run(cfg: &Config, action: ListAction) -> anyhow::Result<u8> {
    let store = ListStore::open(&cfg.directory.path).context("opening the lists")?;
    match action {
        ListAction::Create { list, owner } => {
            let dir = crate::admin::open_directory(cfg)?;
            let a = facteur_mail::Address::parse(list.trim())
                .map_err(|e| anyhow::anyhow!("{list:?}: {e}"))?;
            if !dir.is_local_domain(a.domain())? {
                bail!(
                    "{} is not a local domain (facteurctl domain add {})",
                    a.domain(),
                    a.domain()
                );
            }
            if dir.get_user(&a.key())?.is_some() || !dir.alias_targets(&a.key())?.is_empty() {
                bail!("{} is already a user or an alias", a.key());
            }
            let l = store.create(&list, owner.as_deref().unwrap_or(""))?;
            println!(
                "list {} created (posts from members; bounces to {})",
                l.address,
                l.role_address("bounces")
            );
        }
        ListAction::Delete { list } => {
            store.delete(&list)?;
            println!("list {list} deleted");
        }
        ListAction::Add { list, members } => {
            let n = store.add(&list, &members)?;
            println!("{n} members added to {list}");
        }
        ListAction::Remove { list, members } => {
            let n = store.remove(&list, &members)?;
            println!("{n} members removed from {list}");
        }
        ListAction::Members { list } => {
            for m in store.members(&list)? {
                let state = if m.disabled { "disabled" } else { "enabled" };
                println!("{}\t{state}\tbounces={}", m.address, m.bounces);
            }
        }
        ListAction::Set {
            list,
            post,
            reply_to,
            subject_tag,
            owner,
            bounce_limit,
            munge_from,
        } => {
            let mut l = store
                .get(&list)?
                .ok_or_else(|| anyhow::anyhow!("no such list: {list}"))?;
            if let Some(p) = post {
                l.post = Post::parse(&p)?;
            }
            if let Some(r) = reply_to {
                l.reply_to_list = match r.as_str() {
                    "list" => true,
                    "sender" => false,
                    _ => bail!("--reply-to {r:?}: list or sender"),
                };
            }
            if let Some(t) = subject_tag {
                if t.chars().any(|c| c.is_control() || c == '[' || c == ']') || t.len() > 40 {
                    bail!("--subject-tag {t:?}: at most 40 characters, no brackets");
                }
                l.subject_tag = t;
            }
            if let Some(o) = owner {
                l.owner = o;
            }
            if let Some(b) = bounce_limit {
                l.bounce_limit = b.max(1);
            }
            if let Some(m) = munge_from {
                l.munge_from = yes_no("--munge-from", &m)?;
            }
            store.update(&l)?;
            show(&l);
        }
        ListAction::Show { list } => {
            let lists = match list {
                Some(l) => vec![
                    store
                        .get(&l)?
                        .ok_or_else(|| anyhow::anyhow!("no such list: {l}"))?,
                ],
                None => store.all()?,
            };
            for l in lists {
                show(&l);
            }
        }
        ListAction::Pending { list } => {
            for p in store.pending(list.as_deref())? {
                println!(
                    "{}\t{}\t{}\tfrom=<{}>\t{}\t({})",
                    p.id,
                    facteur_util::date::short(p.received),
                    p.list,
                    p.sender,
                    p.subject,
                    p.reason
                );
            }
        }
        ListAction::Approve { id } => {
            let (p, msg) = store.pending_message(&id)?;
            let l = store
                .get(&p.list)?
                .ok_or_else(|| anyhow::anyhow!("no such list: {}", p.list))?;
            let to: Vec<String> = store
                .members(&l.address)?
                .into_iter()
                .filter(|m| !m.disabled)
                .map(|m| m.address)
                .collect();
            let spool = facteur_spool::Spool::open(&cfg.paths.spool_dir)?;
            let smtputf8 = !msg.is_ascii();
            let ids = queue_copies(
                &store,
                (&spool, facteur_spool::QueueName::Maildrop),
                &l,
                &msg,
                &to,
                smtputf8,
                &cfg.lists.unsubscribe_url,
            )?;
            let qid = ids.first().cloned().unwrap_or_default();
            store.drop_pending(&id)?;
            facteur_spool::wake_qmgr(&cfg.qmgr_socket());
            println!(
                "{id}: sent to {} members of {} as {qid}",
                to.len(),
                l.address
            );
        }
        ListAction::Reject { id } => {
            store.drop_pending(&id)?;
            println!("{id}: thrown away");
        }
    }
    Ok(0)
}

fn show(l: &facteur_lists::List) {
    println!(
        "{}\towner={}\tpost={}\treply-to={}\tsubject-tag={:?}\tbounce-limit={}\tmunge-from={}",
        l.address,
        if l.owner.is_empty() { "-" } else { &l.owner },
        l.post.as_str(),
        if l.reply_to_list { "list" } else { "sender" },
        l.subject_tag,
        l.bounce_limit,
        if l.munge_from { "yes" } else { "no" },
    );
}
