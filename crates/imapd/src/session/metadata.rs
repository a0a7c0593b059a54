//! GETMETADATA and SETMETADATA (METADATA and METADATA-SERVER, RFC 5464):
//! annotations of mailboxes and of the server that clients keep for
//! themselves (Roundcube's folder settings, Thunderbird's, a chat client's
//! push token). Stored in the user's index (facteur_store's metadata.rs);
//! `/shared` entries are the user's own as long as mailboxes are not shared.
//!
//! Limits (RFC 5464 §4.3): a value of at most `MAX_VALUE` octets (`NO
//! [METADATA MAXSIZE n]`), at most `MAX_ENTRIES` entries per user (`NO
//! [METADATA TOOMANY]`); GETMETADATA's MAXSIZE leaves longer values out
//! and says the longest (`OK [METADATA LONGENTRIES n]`).

use super::{Flow, Session, blocking};
use facteur_imap_proto::{MetadataDepth, encode};
use facteur_store::SetMetadata;
use std::io;
use tokio::io::{AsyncRead, AsyncWrite};

/// The longest value stored.
pub(crate) const MAX_VALUE: usize = 64 * 1024;
/// The most entries one user keeps, mailboxes and server together.
pub(crate) const MAX_ENTRIES: usize = 256;

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    /// The mailbox of a METADATA command: None for the server (""), else
    /// its name in the store's terms (None + the NO sent on a bad name).
    fn metadata_target(&mut self, tag: &str, mailbox: &str) -> Option<Option<String>> {
        if mailbox.is_empty() {
            return Some(None);
        }
        self.name_or_no(tag, mailbox).map(Some)
    }

    pub(super) fn get_metadata(
        &mut self,
        tag: &str,
        mailbox: &str,
        max_size: Option<u64>,
        depth: MetadataDepth,
        entries: &[String],
    ) -> io::Result<Flow> {
        let Some(target) = self.metadata_target(tag, mailbox) else {
            return Ok(Flow::Continue);
        };
        let Some(user) = &self.user else {
            return Ok(Flow::Continue);
        };
        let depth = match depth {
            MetadataDepth::Zero => Some(0),
            MetadataDepth::One => Some(1),
            MetadataDepth::Infinity => None,
        };
        let found = match blocking(|| user.store.get_metadata(target.as_deref(), entries, depth)) {
            Ok(f) => f,
            Err(e) => {
                self.store_error(tag, &e);
                return Ok(Flow::Continue);
            }
        };
        let mut longest = 0usize;
        let mut out = Vec::new();
        for (entry, value) in &found {
            if max_size.is_some_and(|m| value.len() as u64 > m) {
                longest = longest.max(value.len());
                continue;
            }
            out.push(if out.is_empty() { b'(' } else { b' ' });
            out.extend_from_slice(entry.as_bytes());
            out.push(b' ');
            write_value(&mut out, value);
        }
        if !out.is_empty() {
            let mut line = b"* METADATA ".to_vec();
            self.mailbox_out(&mut line, target.as_deref().unwrap_or(""));
            line.push(b' ');
            line.extend_from_slice(&out);
            line.extend_from_slice(b")\r\n");
            self.io.write(&line);
        }
        if longest > 0 {
            self.announce_and_ok(
                tag,
                &format!("[METADATA LONGENTRIES {longest}] GETMETADATA completed"),
            )
        } else {
            self.announce_and_ok(tag, "GETMETADATA completed")
        }
    }

    pub(super) fn set_metadata(
        &mut self,
        tag: &str,
        mailbox: &str,
        entries: &[(String, Option<Vec<u8>>)],
    ) -> io::Result<Flow> {
        if entries
            .iter()
            .any(|(_, v)| v.as_ref().is_some_and(|v| v.len() > MAX_VALUE))
        {
            self.no(
                tag,
                &format!("[METADATA MAXSIZE {MAX_VALUE}] Value too long"),
            );
            return Ok(Flow::Continue);
        }
        let Some(target) = self.metadata_target(tag, mailbox) else {
            return Ok(Flow::Continue);
        };
        let Some(user) = &self.user else {
            return Ok(Flow::Continue);
        };
        match blocking(|| {
            user.store
                .set_metadata(target.as_deref(), entries, MAX_ENTRIES)
        }) {
            Ok(SetMetadata::Done) => self.announce_and_ok(tag, "SETMETADATA completed"),
            Ok(SetMetadata::TooMany) => {
                self.no(
                    tag,
                    &format!("[METADATA TOOMANY] At most {MAX_ENTRIES} entries"),
                );
                Ok(Flow::Continue)
            }
            Err(e) => {
                self.store_error(tag, &e);
                Ok(Flow::Continue)
            }
        }
    }
}

/// A value: a string, or a literal8 when it holds NUL (RFC 5464 §5.4).
fn write_value(out: &mut Vec<u8>, v: &[u8]) {
    if v.contains(&0) {
        out.extend_from_slice(format!("~{{{}}}\r\n", v.len()).as_bytes());
        out.extend_from_slice(v);
    } else {
        encode::string(out, v, false);
    }
}
