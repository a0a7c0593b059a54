//! Selected-state commands that change messages: STORE (RFC 9051 §6.4.6,
//! UNCHANGEDSINCE RFC 7162 §3.1.3), COPY (§6.4.7, COPYUID RFC 4315), MOVE
//! (RFC 6851), EXPUNGE and UID EXPUNGE (§6.4.3, RFC 4315), CLOSE and
//! UNSELECT (§6.4.1–2).
//!
//! Expunges this session makes are announced from the positions the
//! messages had in the client's view just before (EXPUNGE highest first,
//! or VANISHED under QRESYNC); other changes come from the next sync.
//! Every change wakes other sessions idling on the mailbox.

use super::{Flow, Session, blocking, parse_flags, uses_star, write_flags};
use facteur_imap_proto::{SequenceSet, Store, StoreOp, encode};
use facteur_store::{FlagOp, StoreError};
use std::io;
use tokio::io::{AsyncRead, AsyncWrite};

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn store(&mut self, tag: &str, args: &Store) -> io::Result<Flow> {
        let (uid, set, unchanged_since) = (args.uid, &args.set, args.unchanged_since);
        let flags = match parse_flags(&args.flags) {
            Ok(f) => f,
            Err(e) => {
                self.bad(Some(tag), &e);
                return Ok(Flow::Continue);
            }
        };
        if unchanged_since.is_some() {
            self.enable_condstore();
        }
        let positions = self.resolve(set, uid);
        let condstore = self.condstore;
        let Some(sel) = &mut self.sel else {
            return Ok(Flow::Continue);
        };
        if sel.read_only {
            self.no(tag, "[READ-ONLY] Mailbox is read-only");
            return Ok(Flow::Continue);
        }
        let op = match args.op {
            StoreOp::Add => FlagOp::Add,
            StoreOp::Remove => FlagOp::Remove,
            StoreOp::Replace => FlagOp::Replace,
        };
        // In a shared mailbox, the flags the rights allow change and the
        // others stay; only a STORE that can change none fails (RFC 4314
        // §4).
        let mask = super::shared::flag_mask(sel.rights);
        let none_allowed = if op == FlagOp::Replace {
            mask.system == 0 && !mask.keywords
        } else {
            mask.filter(&flags) == Default::default() && flags != Default::default()
        };
        if none_allowed {
            self.no(tag, "[NOPERM] No right to change these flags here");
            return Ok(Flow::Continue);
        }
        let uids: Vec<u32> = positions
            .iter()
            .map(|&i| sel.mb.messages()[i].uid)
            .collect();
        let result = match blocking(|| {
            sel.mb
                .store_flags_masked(&uids, op, &flags, unchanged_since, mask)
        }) {
            Ok(r) => r,
            Err(e) => {
                self.store_error(tag, &e);
                return Ok(Flow::Continue);
            }
        };
        if !result.updated.is_empty() {
            self.ctx.notifier.changed(sel.mb.dir());
        }
        let msgs = sel.mb.messages();
        let mut out = Vec::new();
        let touched = result
            .updated
            .iter()
            .filter_map(|u| msgs.binary_search_by_key(u, |m| m.uid).ok())
            .map(|i| &msgs[i].flags);
        let permanent = sel.permanent();
        sel.keywords.announce(permanent, touched, &mut out);
        let mut failed = result.failed.clone();
        failed.sort_unstable();
        let mut updated = result.updated.clone();
        updated.sort_unstable();
        for uid_ in &uids {
            let Ok(i) = msgs.binary_search_by_key(uid_, |m| m.uid) else {
                continue;
            };
            if failed.binary_search(uid_).is_ok() {
                continue;
            }
            let changed = updated.binary_search(uid_).is_ok();
            // .SILENT still reports the new MODSEQ under CONDSTORE
            // (RFC 7162 §3.1.3).
            if args.silent && !(changed && condstore) {
                continue;
            }
            let m = &msgs[i];
            out.extend_from_slice(format!("* {} FETCH (", i + 1).as_bytes());
            let mut parts_written = false;
            if uid {
                out.extend_from_slice(format!("UID {}", m.uid).as_bytes());
                parts_written = true;
            }
            if !args.silent {
                if parts_written {
                    out.push(b' ');
                }
                out.extend_from_slice(b"FLAGS ");
                write_flags(&mut out, &m.flags, sel.is_recent(m.uid));
                parts_written = true;
            }
            if condstore {
                if parts_written {
                    out.push(b' ');
                }
                out.extend_from_slice(format!("MODSEQ ({})", m.modseq).as_bytes());
            }
            out.extend_from_slice(b")\r\n");
        }
        self.io.write(&out);
        self.contexts_touched(&updated);
        if uid && self.announce() == Flow::Close {
            return Ok(Flow::Close);
        }
        if failed.is_empty() {
            self.ok(tag, "STORE completed");
        } else {
            let nums: Vec<u32> = if uid {
                failed
            } else {
                let msgs = self
                    .sel
                    .as_ref()
                    .map(|s| s.mb.messages())
                    .unwrap_or_default();
                failed
                    .iter()
                    .filter_map(|u| msgs.binary_search_by_key(u, |m| m.uid).ok())
                    .map(|i| i as u32 + 1)
                    .collect()
            };
            self.ok(
                tag,
                &format!(
                    "[MODIFIED {}] Conditional STORE failed for some messages",
                    encode::seq_set(&nums)
                ),
            );
        }
        Ok(Flow::Continue)
    }

    pub(super) fn copy(
        &mut self,
        tag: &str,
        uid: bool,
        set: &SequenceSet,
        dest: &str,
        remove: bool,
    ) -> io::Result<Flow> {
        let what = if remove { "MOVE" } else { "COPY" };
        let positions = self.resolve(set, uid);
        let Some(dest_name) = self.mailbox_in(dest) else {
            self.no(tag, "[CANNOT] Invalid mailbox name encoding");
            return Ok(Flow::Continue);
        };
        let Some(sel) = &self.sel else {
            return Ok(Flow::Continue);
        };
        if remove && sel.read_only {
            self.no(tag, "[READ-ONLY] Mailbox is read-only");
            return Ok(Flow::Continue);
        }
        // MOVE takes the messages away: `t` and `e` on the source.
        if remove && !(sel.rights.has('t') && sel.rights.has('e')) {
            self.no(tag, "[NOPERM] Needs the rights \"te\" on this mailbox");
            return Ok(Flow::Continue);
        }
        if positions.is_empty() {
            if !uid && !uses_star(set) && !sel.mb.messages().is_empty() {
                self.bad(Some(tag), "Invalid sequence number");
            } else {
                self.ok(tag, &format!("{what} completed (no messages)"));
            }
            return Ok(Flow::Continue);
        }
        let (mut target, mask) = match self
            .target(&dest_name, "i")
            .and_then(|t| Ok((blocking(|| t.store.select(&t.name))?, t.rights)))
        {
            Ok((mb, rights)) => (mb, super::shared::flag_mask(rights)),
            Err(StoreError::NoSuchMailbox(_)) => {
                self.no(tag, "[TRYCREATE] No such mailbox");
                return Ok(Flow::Continue);
            }
            Err(e) => {
                self.store_error(tag, &e);
                return Ok(Flow::Continue);
            }
        };
        let Some(sel) = &mut self.sel else {
            return Ok(Flow::Continue);
        };
        let uids: Vec<u32> = positions
            .iter()
            .map(|&i| sel.mb.messages()[i].uid)
            .collect();
        // Positions before the move, for the EXPUNGE announcements.
        let before: Vec<(u32, usize)> = positions
            .iter()
            .map(|&i| (sel.mb.messages()[i].uid, i + 1))
            .collect();
        // MOVE into the selected mailbox itself gives the messages new UIDs
        // (as COPY and EXPUNGE would, RFC 6851 §3.3; what Dovecot does and
        // imaptest expects).
        let result = if !sel.mb.same_user(&target) || !mask.is_all() {
            // Into another user's mailbox, or with limited flags: each
            // message appended again; a MOVE then expunges the originals
            // (a crash in between leaves both copies, never none).
            blocking(|| {
                let pairs = sel.mb.copy_appending(&uids, &mut target, mask)?;
                if remove && !pairs.is_empty() {
                    let moved: Vec<u32> = pairs.iter().map(|p| p.0).collect();
                    let deleted = facteur_store::Flags::system(facteur_store::DELETED);
                    sel.mb.store_flags(&moved, FlagOp::Add, &deleted, None)?;
                    sel.mb.expunge(Some(&moved))?;
                }
                Ok(pairs)
            })
        } else if remove {
            blocking(|| sel.mb.move_to(&uids, &mut target))
        } else {
            blocking(|| sel.mb.copy_to(&uids, &mut target))
        };
        let pairs = match result {
            Ok(p) => p,
            Err(e) => {
                self.store_error(tag, &e);
                return Ok(Flow::Continue);
            }
        };
        self.ctx.notifier.changed(target.dir());
        let code = if pairs.is_empty() {
            String::new()
        } else {
            let src: Vec<u32> = pairs.iter().map(|p| p.0).collect();
            let dst: Vec<u32> = pairs.iter().map(|p| p.1).collect();
            // COPYUID lists the sets in corresponding order; ours are
            // ascending on both sides (UIDs are given in source order).
            format!(
                "[COPYUID {} {} {}] ",
                target.uidvalidity(),
                encode::seq_set(&src),
                encode::seq_set(&dst)
            )
        };
        if remove {
            let moved: Vec<u32> = pairs.iter().map(|p| p.0).collect();
            self.ctx.notifier.changed(sel.mb.dir());
            if !code.is_empty() {
                self.io.write(format!("* OK {code}Moved\r\n").as_bytes());
            }
            self.announce_expunged(&before, &moved);
            if self.announce() == Flow::Close {
                return Ok(Flow::Close);
            }
            self.ok(tag, "MOVE completed");
        } else {
            if self.announce() == Flow::Close {
                return Ok(Flow::Close);
            }
            self.ok(tag, &format!("{code}COPY completed"));
        }
        Ok(Flow::Continue)
    }

    /// Announces the messages `gone` (UIDs) given their positions `before`.
    fn announce_expunged(&mut self, before: &[(u32, usize)], gone: &[u32]) {
        if gone.is_empty() {
            return;
        }
        let mut sorted = gone.to_vec();
        sorted.sort_unstable();
        let pairs: Vec<(u32, usize)> = before
            .iter()
            .filter(|(u, _)| sorted.binary_search(u).is_ok())
            .copied()
            .collect();
        self.contexts_expunged(&pairs);
        if self.qresync {
            self.io
                .write(format!("* VANISHED {}\r\n", encode::seq_set(gone)).as_bytes());
            return;
        }
        self.io
            .write(&super::expunge_lines(pairs.iter().map(|p| p.1).collect()));
    }

    pub(super) fn expunge(&mut self, tag: &str, set: Option<SequenceSet>) -> io::Result<Flow> {
        let Some(sel) = &mut self.sel else {
            return Ok(Flow::Continue);
        };
        if sel.read_only {
            self.no(tag, "[READ-ONLY] Mailbox is read-only");
            return Ok(Flow::Continue);
        }
        if !sel.rights.has('e') {
            self.no(tag, "[NOPERM] Needs the right \"e\" on this mailbox");
            return Ok(Flow::Continue);
        }
        let before: Vec<(u32, usize)> = sel
            .mb
            .messages()
            .iter()
            .enumerate()
            .map(|(i, m)| (m.uid, i + 1))
            .collect();
        let only: Option<Vec<u32>> = set.map(|s| {
            let largest = sel.mb.messages().last().map_or(0, |m| m.uid);
            match s {
                SequenceSet::Saved => self.saved.clone(),
                s => sel
                    .mb
                    .messages()
                    .iter()
                    .map(|m| m.uid)
                    .filter(|&u| s.contains(u, largest))
                    .collect(),
            }
        });
        let gone = match blocking(|| sel.mb.expunge(only.as_deref())) {
            Ok(g) => g,
            Err(e) => {
                self.store_error(tag, &e);
                return Ok(Flow::Continue);
            }
        };
        if !gone.is_empty() {
            self.ctx.notifier.changed(sel.mb.dir());
        }
        self.announce_expunged(&before, &gone);
        self.announce_and_ok(tag, "EXPUNGE completed")
    }

    /// CLOSE (expunging silently when read-write) or UNSELECT.
    pub(super) fn close(&mut self, tag: &str, expunge: bool) -> io::Result<Flow> {
        // Without the `e` right, CLOSE just closes (RFC 4314 §4).
        if let Some(mut sel) = self.sel.take()
            && expunge
            && !sel.read_only
            && sel.rights.has('e')
        {
            match blocking(|| sel.mb.expunge(None)) {
                Ok(gone) if !gone.is_empty() => self.ctx.notifier.changed(sel.mb.dir()),
                Ok(_) => {}
                Err(e) => {
                    self.store_error(tag, &e);
                    return Ok(Flow::Continue);
                }
            }
        }
        self.ok(
            tag,
            if expunge {
                "CLOSE completed"
            } else {
                "UNSELECT completed"
            },
        );
        Ok(Flow::Continue)
    }
}
