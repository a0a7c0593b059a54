//! FETCH and UID FETCH (RFC 9051 §6.4.5, §7.5.2), with CHANGEDSINCE and
//! MODSEQ (RFC 7162 §3.1.4), VANISHED (RFC 7162 §3.2.6) and BINARY (RFC
//! 3516).
//!
//! Data items that need only the index (FLAGS, UID, INTERNALDATE,
//! RFC822.SIZE, MODSEQ) never open a message file; the others read the
//! message once and take every view from one `facteur_imap_message::Message`.
//! Body data goes out as literals. Non-PEEK body items set `\Seen` (in one
//! store call for the whole set, before the replies, which then carry the
//! new FLAGS). Message files are read in batches (up to 1 MiB, or one
//! bigger message, per blocking call) and replies written out in chunks, so
//! a `FETCH 1:* BODY[]` on a large mailbox holds one batch in memory at a
//! time; a message over 1 MiB asked for whole (BODY[], RFC822) with no
//! other content item is streamed from its file in 64 KiB reads after
//! its CRLF size is counted. A FETCH of only ENVELOPE and header sections
//! reads each file's header block, not the whole message.
//!
//! Cost (issue 14): a FETCH may ask for [`MAX_SECTIONS`] content sections
//! and [`MAX_FIELD_NAMES`] header field names at most (more is `BAD`), and
//! each batch is read and formatted in one blocking call behind the
//! heavy-work gate (`super::heavy`).
//!
//! Messages the store keeps in memory (small ones read before:
//! `facteur_store::Content`) are formatted first on the session's own
//! worker, still behind the gate (`super::heavy_inline`): handing a batch
//! to another thread costs more than formatting it. The batch goes to a
//! blocking call from the first message that needs its file.

use super::content::{Formatted, Keep, without_nul, write_content};
use super::{Flow, Session, WRITE_CHUNK, blocking, heavy, heavy_inline, in_ranges, write_flags};
use facteur_imap_message::Message;
use facteur_imap_proto::{FetchAttr, SectionText, SequenceSet, encode, section_label};
use facteur_store::{FlagOp, Flags, Mailbox, MessageMeta, SEEN, StoreError, UNKNOWN_DATE};
use std::collections::HashMap;
use std::io::{self, Write as _};
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::warn;

fn needs_content(a: &FetchAttr) -> bool {
    !matches!(
        a,
        FetchAttr::Flags
            | FetchAttr::Uid
            | FetchAttr::InternalDate
            | FetchAttr::Rfc822Size
            | FetchAttr::ModSeq
            | FetchAttr::EmailId
            | FetchAttr::ThreadId
            | FetchAttr::SaveDate
    )
}

/// Items answered from the message's header block alone (or from the
/// index): a FETCH of only these reads no body.
fn from_header(a: &FetchAttr) -> bool {
    match a {
        FetchAttr::Envelope | FetchAttr::Rfc822Header => true,
        FetchAttr::BodySection { section, .. } => {
            section.part.is_empty()
                && matches!(
                    section.text,
                    Some(
                        SectionText::Header
                            | SectionText::HeaderFields(_)
                            | SectionText::HeaderFieldsNot(_)
                    )
                )
        }
        a => !needs_content(a),
    }
}

/// Bytes of messages read in one blocking call (a bigger message alone).
const READ_BATCH_BYTES: u64 = 1 << 20;
/// Messages read in one blocking call, at most.
const READ_BATCH_MESSAGES: usize = 64;
/// Messages answered from the index alone between two writes.
const INDEX_BATCH: usize = 2048;

/// The first positions of `rest` to read in one go: at least one, then
/// while under [`READ_BATCH_BYTES`] (by `size`) and
/// [`READ_BATCH_MESSAGES`].
fn read_batch(rest: &[usize], size: impl Fn(usize) -> u64) -> &[usize] {
    let mut bytes = 0;
    let mut n = 0;
    while n < rest.len() && n < READ_BATCH_MESSAGES && (n == 0 || bytes < READ_BATCH_BYTES) {
        bytes += size(rest[n]);
        n += 1;
    }
    &rest[..n]
}

/// Content sections one FETCH may ask for (`BODY[...]`, `BINARY[...]`,
/// `BINARY.SIZE[...]`, `RFC822.*`): clients ask for a handful, and each
/// costs a pass over every message fetched.
const MAX_SECTIONS: usize = 64;
/// Field names in all the `HEADER.FIELDS[.NOT]` lists of one FETCH.
const MAX_FIELD_NAMES: usize = 1000;

/// Refuses a FETCH whose cost per message a client has blown up (issue
/// 14: 1,800 header-field sections of a message with 100,000 fields).
pub(super) fn within_limits(attrs: &[FetchAttr]) -> Result<(), String> {
    let sections = attrs.iter().filter(|a| needs_content(a)).count();
    if sections > MAX_SECTIONS {
        return Err(format!(
            "Too many message sections in one FETCH (at most {MAX_SECTIONS})"
        ));
    }
    let names: usize = attrs
        .iter()
        .map(|a| match a {
            FetchAttr::BodySection { section, .. } => match &section.text {
                Some(SectionText::HeaderFields(n) | SectionText::HeaderFieldsNot(n)) => n.len(),
                _ => 0,
            },
            _ => 0,
        })
        .sum();
    if names > MAX_FIELD_NAMES {
        return Err(format!(
            "Too many header field names in one FETCH (at most {MAX_FIELD_NAMES})"
        ));
    }
    Ok(())
}

fn sets_seen(a: &FetchAttr) -> bool {
    matches!(
        a,
        FetchAttr::Rfc822
            | FetchAttr::Rfc822Text
            | FetchAttr::BodySection { peek: false, .. }
            | FetchAttr::Binary { peek: false, .. }
    )
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    pub(super) async fn fetch(
        &mut self,
        tag: &str,
        uid: bool,
        set: &SequenceSet,
        mut attrs: Vec<FetchAttr>,
        changed_since: Option<u64>,
        vanished: bool,
    ) -> io::Result<Flow> {
        if let Err(why) = within_limits(&attrs) {
            self.bad(Some(tag), &why);
            return Ok(Flow::Continue);
        }
        if vanished && (!uid || changed_since.is_none() || !self.qresync) {
            self.bad(
                Some(tag),
                "VANISHED needs UID FETCH, CHANGEDSINCE and QRESYNC enabled",
            );
            return Ok(Flow::Continue);
        }
        // CONDSTORE enabling (RFC 7162 §3.1): CHANGEDSINCE or MODSEQ asked.
        if changed_since.is_some() || attrs.contains(&FetchAttr::ModSeq) {
            self.enable_condstore();
        }
        if uid && !attrs.contains(&FetchAttr::Uid) {
            attrs.insert(0, FetchAttr::Uid);
        }
        if (changed_since.is_some() || (self.condstore && attrs.contains(&FetchAttr::Flags)))
            && !attrs.contains(&FetchAttr::ModSeq)
        {
            attrs.push(FetchAttr::ModSeq);
        }
        let mut positions = self.resolve(set, uid);
        let Some(sel) = &mut self.sel else {
            return Ok(Flow::Continue);
        };
        if let Some(cs) = changed_since {
            let msgs = sel.mb.messages();
            positions.retain(|&i| msgs[i].modseq > cs);
            if vanished {
                let largest = sel.mb.uidnext().saturating_sub(1);
                match blocking(|| sel.mb.vanished_since(cs)) {
                    Ok(gone) => {
                        let gone: Vec<u32> = gone
                            .into_iter()
                            .filter(|&u| set.contains(u, largest))
                            .collect();
                        if !gone.is_empty() {
                            self.io.write(
                                format!("* VANISHED (EARLIER) {}\r\n", encode::seq_set(&gone))
                                    .as_bytes(),
                            );
                        }
                    }
                    Err(e) => {
                        self.store_error(tag, &e);
                        return Ok(Flow::Continue);
                    }
                }
            }
        }
        // \Seen first, in one go.
        let mut seen_set: Vec<u32> = Vec::new();
        if !sel.read_only && sel.rights.has('s') && attrs.iter().any(sets_seen) {
            let msgs = sel.mb.messages();
            seen_set = positions
                .iter()
                .map(|&i| &msgs[i])
                .filter(|m| m.flags.system & SEEN == 0)
                .map(|m| m.uid)
                .collect();
            if !seen_set.is_empty() {
                let uids = seen_set.clone();
                match blocking(|| {
                    sel.mb
                        .store_flags(&uids, FlagOp::Add, &Flags::system(SEEN), None)
                }) {
                    Ok(_) => self.ctx.notifier.changed(sel.mb.dir()),
                    Err(e) => {
                        self.store_error(tag, &e);
                        return Ok(Flow::Continue);
                    }
                }
            }
        }
        // Internal dates a scan left unknown: read them now, in one go.
        if attrs.contains(&FetchAttr::InternalDate) {
            let msgs = sel.mb.messages();
            let unknown: Vec<u32> = positions
                .iter()
                .map(|&i| &msgs[i])
                .filter(|m| m.internal_date == UNKNOWN_DATE)
                .map(|m| m.uid)
                .collect();
            if !unknown.is_empty()
                && let Err(e) = blocking(|| sel.mb.resolve_dates(Some(&unknown)))
            {
                self.store_error(tag, &e);
                return Ok(Flow::Continue);
            }
        }
        let content = attrs.iter().any(needs_content);
        let header_only = attrs.iter().all(from_header);
        let whole_only = attrs.iter().filter(|a| needs_content(a)).count() == 1
            && attrs.iter().any(is_whole_message);
        let recent: Vec<(u32, u32)> = self
            .sel
            .as_ref()
            .map(|s| s.recent.clone())
            .unwrap_or_default();
        let mut save_dates = HashMap::new();
        if attrs.contains(&FetchAttr::SaveDate)
            && let Some(sel) = &self.sel
        {
            let msgs = sel.mb.messages();
            let uids: Vec<u32> = positions.iter().map(|&i| msgs[i].uid).collect();
            let all = uids.len() == msgs.len();
            match blocking(|| sel.mb.save_dates((!all).then_some(&uids[..]))) {
                Ok(d) => save_dates = d,
                Err(e) => {
                    self.store_error(tag, &e);
                    return Ok(Flow::Continue);
                }
            }
        }
        let mut batch_ctx = Formatter {
            attrs: &attrs,
            seen: &seen_set,
            recent: &recent,
            save_dates: &save_dates,
            utf8: self.utf8,
            content,
            header_only,
            stream_above: if whole_only { STREAM_ABOVE } else { u64::MAX },
            gone: false,
            unknown_cte: false,
        };
        let mut out: Vec<u8> = Vec::with_capacity(4096);
        let mut next = 0;
        while next < positions.len() {
            let Some(sel) = &self.sel else { break };
            let batch = if content {
                let msgs = sel.mb.messages();
                read_batch(&positions[next..], |i| {
                    let size = msgs[i].size;
                    if header_only {
                        size.min(8192)
                    } else if size > batch_ctx.stream_above {
                        0
                    } else {
                        size
                    }
                })
            } else {
                // Index items only: formatted in slices, so that the
                // responses go out as they are made (a FETCH 1:* FLAGS of
                // 100,000 messages holds one slice's, not all of them).
                &positions[next..positions.len().min(next + INDEX_BATCH)]
            };
            // The files of a batch are read and its responses formatted in
            // one blocking call (each call hands this worker's other
            // sessions to another thread), behind the heavy-work gate when
            // it reads messages: what a client asks for cannot take every
            // core (issue 14).
            let end = if content {
                match heavy_inline(|| batch_ctx.run(&sel.mb, batch, &mut out, Reads::Memory)).await
                {
                    BatchEnd::NotKept(0) => {
                        heavy(|| batch_ctx.run(&sel.mb, batch, &mut out, Reads::Files)).await
                    }
                    end => end,
                }
            } else {
                batch_ctx.run(&sel.mb, batch, &mut out, Reads::Files)
            };
            match end {
                BatchEnd::Done => next += batch.len(),
                // The rest of the batch is read from the files next round.
                BatchEnd::NotKept(done) => next += done,
                BatchEnd::Failed(e) => {
                    self.store_error(tag, &e);
                    return Ok(Flow::Continue);
                }
                BatchEnd::Stream(done) => {
                    next += done;
                    let i = positions[next];
                    next += 1;
                    match self.stream_response(&mut out, &batch_ctx, i).await? {
                        Streamed::Done => {}
                        Streamed::Gone => batch_ctx.gone = true,
                        Streamed::Failed(e) => {
                            self.io.write(&out);
                            self.store_error(tag, &e);
                            return Ok(Flow::Continue);
                        }
                        Streamed::Cut => return Ok(Flow::Close),
                    }
                }
            }
            if out.len() > WRITE_CHUNK {
                self.io.write(&out);
                out.clear();
                self.io.flush().await?;
            }
        }
        let (gone, unknown_cte) = (batch_ctx.gone, batch_ctx.unknown_cte);
        self.io.write(&out);
        if uid && self.announce() == Flow::Close {
            return Ok(Flow::Close);
        }
        if unknown_cte {
            self.no(
                tag,
                "[UNKNOWN-CTE] Cannot decode a part's content-transfer-encoding",
            );
        } else if gone {
            self.no(
                tag,
                "[EXPUNGEISSUED] Some of the requested messages no longer exist",
            );
        } else {
            self.ok(tag, "FETCH completed");
        }
        Ok(Flow::Continue)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    /// Untagged FETCH responses of `attrs` for the messages at `positions`
    /// of the selected mailbox, read as PEEK (NOTIFY's MessageNew, RFC
    /// 5465 §5.2: a notification sets no flag).
    pub(super) fn fetch_untagged(&mut self, attrs: &[FetchAttr], positions: &[usize]) {
        let Some(sel) = &self.sel else { return };
        let save_dates = if attrs.contains(&FetchAttr::SaveDate) {
            let uids: Vec<u32> = positions
                .iter()
                .map(|&i| sel.mb.messages()[i].uid)
                .collect();
            sel.mb.save_dates(Some(&uids)).unwrap_or_default()
        } else {
            HashMap::new()
        };
        let mut f = Formatter {
            attrs,
            seen: &[],
            recent: &sel.recent,
            save_dates: &save_dates,
            utf8: self.utf8,
            content: attrs.iter().any(needs_content),
            header_only: attrs.iter().all(from_header),
            stream_above: u64::MAX,
            gone: false,
            unknown_cte: false,
        };
        let mut out = Vec::new();
        if let BatchEnd::Failed(e) = f.run(&sel.mb, positions, &mut out, Reads::Files) {
            tracing::info!(error = %e, "cannot read a new message for NOTIFY");
        }
        self.io.write(&out);
    }
}

/// Where [`Formatter::run`] may take message content from.
#[derive(Clone, Copy, PartialEq)]
enum Reads {
    /// Only what the store keeps in memory: no file is opened.
    Memory,
    /// The message files (through the store's memory first).
    Files,
}

/// How a batch of messages went.
enum BatchEnd {
    /// Every message of the batch was answered (or found gone).
    Done,
    /// The first `n` were answered; the next one is to be streamed.
    Stream(usize),
    /// The first `n` were answered; the next one's content is not in
    /// memory ([`Reads::Memory`] only).
    NotKept(usize),
    /// A message could not be read; the command fails.
    Failed(StoreError),
}

/// What formatting FETCH responses needs: the items and the session's
/// state at the command's start. Pure work on the store's files, run in
/// one blocking call per batch.
struct Formatter<'c> {
    attrs: &'c [FetchAttr],
    /// UIDs this FETCH marked \Seen (their FLAGS go out).
    seen: &'c [u32],
    /// The session's `\Recent` ranges (see `Selected::recent`).
    recent: &'c [(u32, u32)],
    /// Save dates, when SAVEDATE is asked for.
    save_dates: &'c HashMap<u32, i64>,
    utf8: bool,
    /// Some item needs the message's content.
    content: bool,
    /// Every item is answered from the header block.
    header_only: bool,
    /// Messages bigger than this are streamed from their files.
    stream_above: u64,
    gone: bool,
    unknown_cte: bool,
}

impl Formatter<'_> {
    /// Reads and answers the messages at `batch` (positions in `mb`) into
    /// `out`, stopping before one to stream, or (with [`Reads::Memory`])
    /// before one whose content the store does not keep.
    fn run(&mut self, mb: &Mailbox, batch: &[usize], out: &mut Vec<u8>, reads: Reads) -> BatchEnd {
        let msgs = mb.messages();
        for (n, &i) in batch.iter().enumerate() {
            let m = &msgs[i];
            if self.content && m.size > self.stream_above {
                return BatchEnd::Stream(n);
            }
            let raw = if !self.content {
                None
            } else if reads == Reads::Memory {
                let kept = if self.header_only {
                    mb.kept_header(m.uid)
                } else {
                    mb.kept_message(m.uid)
                };
                match kept {
                    Some(c) => Some(Ok(c)),
                    None => return BatchEnd::NotKept(n),
                }
            } else if self.header_only {
                Some(mb.read_header(m.uid))
            } else {
                Some(mb.read_message(m.uid))
            };
            let raw = match raw {
                None => None,
                Some(Ok(r)) => Some(r),
                Some(Err(e)) if is_gone(&e) => {
                    self.gone = true;
                    continue;
                }
                Some(Err(e)) => return BatchEnd::Failed(e),
            };
            let msg = raw.as_deref().map(Message::parse);
            let formatted = raw.as_ref().and_then(|r| r.derived(Formatted::default));
            let keep = formatted.map(|formatted| Keep {
                formatted,
                limit: usize::try_from(m.size).unwrap_or(usize::MAX),
                whole: !self.header_only,
            });
            let _ = write!(out, "* {} FETCH (", i + 1);
            let mut first = true;
            for a in self.attrs {
                let start = out.len();
                if !first {
                    out.push(b' ');
                }
                let written = match &msg {
                    _ if self.index_item(out, a, m) => true,
                    Some(msg) => {
                        write_content(out, a, msg, keep.as_ref(), self.utf8, &mut self.unknown_cte)
                    }
                    None => false,
                };
                if written {
                    first = false;
                } else {
                    out.truncate(start);
                }
            }
            self.finish(out, m, first);
        }
        BatchEnd::Done
    }

    /// Writes an item answered from the index; `false` if `a` is not one.
    fn index_item(&self, out: &mut Vec<u8>, a: &FetchAttr, m: &MessageMeta) -> bool {
        if *a == FetchAttr::SaveDate {
            // NIL for a message whose save date is not known (RFC 8514).
            match self.save_dates.get(&m.uid) {
                Some(&t) => {
                    out.extend_from_slice(b"SAVEDATE ");
                    out.extend_from_slice(encode::date_time(t, 0).as_bytes());
                }
                None => out.extend_from_slice(b"SAVEDATE NIL"),
            }
            return true;
        }
        write_index_item(out, a, m, in_ranges(self.recent, m.uid))
    }

    /// Ends a response: FLAGS if this FETCH set \Seen and they were not
    /// asked for (RFC 9051 §6.4.5), then the closing parenthesis.
    fn finish(&self, out: &mut Vec<u8>, m: &MessageMeta, first: bool) {
        if !self.attrs.contains(&FetchAttr::Flags) && self.seen.binary_search(&m.uid).is_ok() {
            if !first {
                out.push(b' ');
            }
            out.extend_from_slice(b"FLAGS ");
            write_flags(out, &m.flags, in_ranges(self.recent, m.uid));
        }
        out.extend_from_slice(b")\r\n");
    }
}

/// Writes an item answered from the index; `false` if `a` is not one.
fn write_index_item(out: &mut Vec<u8>, a: &FetchAttr, m: &MessageMeta, recent: bool) -> bool {
    match a {
        FetchAttr::Flags => {
            out.extend_from_slice(b"FLAGS ");
            write_flags(out, &m.flags, recent);
        }
        FetchAttr::Uid => {
            let _ = write!(out, "UID {}", m.uid);
        }
        FetchAttr::InternalDate => {
            out.extend_from_slice(b"INTERNALDATE ");
            // Still unknown: the file vanished meanwhile.
            let date = if m.internal_date == UNKNOWN_DATE {
                0
            } else {
                m.internal_date
            };
            out.extend_from_slice(encode::date_time(date, 0).as_bytes());
        }
        FetchAttr::Rfc822Size => {
            let _ = write!(out, "RFC822.SIZE {}", m.size);
        }
        FetchAttr::ModSeq => {
            let _ = write!(out, "MODSEQ ({})", m.modseq);
        }
        FetchAttr::EmailId => {
            let _ = write!(out, "EMAILID ({})", facteur_store::email_id(&m.file_name));
        }
        // No thread ids are kept (RFC 8474 §5.2 allows NIL).
        FetchAttr::ThreadId => out.extend_from_slice(b"THREADID NIL"),
        _ => return false,
    }
    true
}

/// Whether `e` says the message is gone (expunged meanwhile).
fn is_gone(e: &StoreError) -> bool {
    match e {
        StoreError::NoSuchMessage(_) => true,
        StoreError::Io(e) => e.kind() == io::ErrorKind::NotFound,
        _ => false,
    }
}

/// BODY[], BODY.PEEK[] or RFC822: the whole message, as it is.
fn is_whole_message(a: &FetchAttr) -> bool {
    match a {
        FetchAttr::Rfc822 => true,
        FetchAttr::BodySection {
            section, partial, ..
        } => section.part.is_empty() && section.text.is_none() && partial.is_none(),
        _ => false,
    }
}

/// A message bigger than this (CRLF bytes) asked for whole, with no other
/// item that needs its content, is streamed from its file: a FETCH of a
/// 50 MB message holds 64 KiB of it at a time, not all of it.
const STREAM_ABOVE: u64 = 1 << 20;

/// How a streamed message went.
enum Streamed {
    Done,
    /// Expunged meanwhile; nothing was written.
    Gone,
    /// Could not be opened; nothing was written.
    Failed(StoreError),
    /// Failed after its literal began: the connection must end.
    Cut,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    /// The response for the message at position `i`, whose one content
    /// item (the whole message) is streamed from its file; what `out`
    /// holds goes out first. Nothing of it is written if it failed before
    /// its literal began.
    async fn stream_response(
        &mut self,
        out: &mut Vec<u8>,
        f: &Formatter<'_>,
        i: usize,
    ) -> io::Result<Streamed> {
        let Some(sel) = &self.sel else {
            return Ok(Streamed::Gone);
        };
        let m = sel.mb.messages()[i].clone();
        let response_start = out.len();
        let _ = write!(out, "* {} FETCH (", i + 1);
        let mut first = true;
        for a in f.attrs {
            if !first {
                out.push(b' ');
            }
            if is_whole_message(a) {
                match self.stream_message(out, a, m.uid).await? {
                    Streamed::Done => {}
                    Streamed::Cut => return Ok(Streamed::Cut),
                    other => {
                        out.truncate(response_start);
                        return Ok(other);
                    }
                }
            } else if !f.index_item(out, a, &m) {
                out.pop_if(|b| *b == b' ');
                continue;
            }
            first = false;
        }
        f.finish(out, &m, first);
        Ok(Streamed::Done)
    }

    /// Writes item `a` of message `uid` as a literal streamed from the
    /// file, after what `out` holds: the size is counted from the file
    /// first (a literal announces it), then the file goes out in chunks.
    async fn stream_message(
        &mut self,
        out: &mut Vec<u8>,
        a: &FetchAttr,
        uid: u32,
    ) -> io::Result<Streamed> {
        let Some(sel) = &self.sel else {
            return Ok(Streamed::Gone);
        };
        let opened =
            blocking(|| Ok::<_, StoreError>((sel.mb.crlf_size(uid)?, sel.mb.open_message(uid)?)));
        let (size, mut reader) = match opened {
            Ok(x) => x,
            Err(e) if is_gone(&e) => return Ok(Streamed::Gone),
            Err(e) => return Ok(Streamed::Failed(e)),
        };
        if *a == FetchAttr::Rfc822 {
            out.extend_from_slice(b"RFC822");
        } else {
            out.extend_from_slice(section_label(a).as_bytes());
        }
        let _ = write!(out, " {{{size}}}\r\n");
        self.io.write(out);
        out.clear();
        let mut buf = vec![0u8; 64 * 1024];
        let mut sent = 0u64;
        loop {
            let n = match blocking(|| reader.read(&mut buf)) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    warn!(uid, error = %e, "cannot read a message while sending it; closing the connection");
                    return Ok(Streamed::Cut);
                }
            };
            if n == 0 || sent + n as u64 > size {
                break;
            }
            sent += n as u64;
            without_nul(&mut buf[..n]);
            self.io.write(&buf[..n]);
            if self.io.out().len() > WRITE_CHUNK {
                self.io.flush().await?;
            }
        }
        if sent != size {
            // Maildir files never change: another tool rewrote this one.
            warn!(
                uid,
                announced = size,
                sent,
                "message changed while being sent; closing the connection"
            );
            return Ok(Streamed::Cut);
        }
        Ok(Streamed::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_batches_bound_bytes_and_messages() {
        let pos: Vec<usize> = (0..200).collect();
        // Small messages: 64 at a time.
        assert_eq!(read_batch(&pos, |_| 1000).len(), READ_BATCH_MESSAGES);
        // A big one is read alone; the batch before it stops after it.
        assert_eq!(read_batch(&pos, |_| 5 << 20).len(), 1);
        let size = |i: usize| if i == 3 { 5 << 20 } else { 1000 };
        assert_eq!(read_batch(&pos, size), &pos[..4]);
        assert_eq!(read_batch(&pos[4..], size).len(), READ_BATCH_MESSAGES);
        assert_eq!(read_batch(&pos[..0], size).len(), 0);
    }

    #[test]
    fn header_items_need_no_body() {
        let p = |s: &str| match facteur_imap_proto::parse_command(
            format!("a FETCH 1 ({s})").as_bytes(),
        ) {
            Ok(facteur_imap_proto::Tagged {
                command: facteur_imap_proto::Command::Fetch { attrs, .. },
                ..
            }) => attrs.iter().all(from_header),
            other => panic!("{s}: {other:?}"),
        };
        assert!(p("UID FLAGS ENVELOPE BODY.PEEK[HEADER.FIELDS (SUBJECT)]"));
        assert!(p(
            "RFC822.HEADER BODY[HEADER] BODY.PEEK[HEADER.FIELDS.NOT (X)]<0.10>"
        ));
        assert!(!p("ENVELOPE BODYSTRUCTURE"));
        assert!(!p("BODY.PEEK[1.HEADER]"));
        assert!(!p("BODY.PEEK[TEXT]"));
        assert!(!p("BODY[]"));
    }
}
