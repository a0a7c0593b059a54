//! Receiving one message into a queue file, with the headers smtpd adds.
//!
//! The message streams into a [`QueueWriter`] (a temporary file in the
//! spool): memory stays bounded whatever the size. Only the header section
//! is held back, up to [`HEAD_LIMIT`], to learn whether `Message-ID:` and
//! `Date:` are present; on submission the missing ones are added (RFC 6409
//! §8.2, §8.3). Every message gets a `Received:` header first (RFC 5321
//! §4.4) naming the protocol (RFC 3848) and the TLS version and cipher.
//!
//! Nothing is visible to the queue manager before [`Incoming::commit`]:
//! the spool writes END, fsyncs, renames and fsyncs the directory. As the
//! SMTP core's sink, a write that fails fails the transaction (a 4xx).

use facteur_smtp_server::{Content, Sink};
use facteur_spool::QueueWriter;
use std::io::{self, Read, Write};

/// The header section is inspected up to this size; past it, the message is
/// taken as having no header end (headers are written as they are).
pub const HEAD_LIMIT: usize = 64 * 1024;

/// What goes into the `Received:` header.
#[derive(Debug, Clone)]
pub struct Trace {
    pub helo: String,
    pub client_name: Option<String>,
    pub client_ip: String,
    pub hostname: String,
    pub protocol: String,
    pub queue_id: String,
    pub tls: Option<String>,
    pub single_rcpt: Option<String>,
    pub date: String,
}

impl Trace {
    /// The header, folded, CRLF-terminated.
    pub fn received(&self) -> String {
        let clean = |s: &str| {
            s.chars()
                .filter(|c| !c.is_control() && *c != '(' && *c != ')')
                .collect::<String>()
        };
        let mut h = format!(
            "Received: from {} ({} [{}])\r\n\tby {} (facteur) with {} id {}",
            clean(&self.helo),
            self.client_name
                .as_deref()
                .map(clean)
                .unwrap_or_else(|| "unknown".into()),
            self.client_ip,
            self.hostname,
            self.protocol,
            self.queue_id
        );
        if let Some(t) = &self.tls {
            h.push_str(&format!("\r\n\t(using {})", clean(t)));
        }
        if let Some(r) = &self.single_rcpt {
            h.push_str(&format!("\r\n\tfor <{r}>"));
        }
        h.push_str(&format!(";\r\n\t{}\r\n", self.date));
        h
    }
}

/// A message being received.
pub struct Incoming {
    writer: QueueWriter,
    prefix: Vec<u8>,
    head: Vec<u8>,
    head_done: bool,
    add_missing: Option<(String, String)>,
    /// Our authserv-id, when forged fields are to be removed.
    strip: Option<String>,
}

impl Incoming {
    /// `add_missing` = (Message-ID value, Date value) to add when absent
    /// (submission only).
    pub fn new(
        writer: QueueWriter,
        trace: &Trace,
        add_missing: Option<(String, String)>,
    ) -> Incoming {
        Incoming {
            writer,
            prefix: trace.received().into_bytes(),
            head: Vec::new(),
            head_done: false,
            add_missing,
            strip: None,
        }
    }

    /// Removes, from the header section, `Authentication-Results` fields
    /// claiming `authserv_id` and the spam mark (when `Some`). Only the
    /// first [`HEAD_LIMIT`] bytes are looked at: the end-of-data check
    /// refuses a message with one past them.
    pub fn strip_forged(mut self, authserv_id: Option<String>) -> Incoming {
        self.strip = authserv_id;
        self
    }

    pub fn queue_id(&self) -> &str {
        self.writer.queue_id()
    }

    /// Appends message bytes (network form, unstuffed).
    pub fn push(&mut self, bytes: &[u8]) -> io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        if self.head_done {
            return self.writer.write_all(bytes);
        }
        self.head.extend_from_slice(bytes);
        if header_end(&self.head).is_some() || self.head.len() > HEAD_LIMIT {
            self.flush_head()?;
        }
        Ok(())
    }

    fn flush_head(&mut self) -> io::Result<()> {
        self.head_done = true;
        let mut out = std::mem::take(&mut self.prefix);
        if let Some((mid, date)) = self.add_missing.take() {
            let end = header_end(&self.head).unwrap_or(self.head.len());
            let section = &self.head[..end];
            if !has_field(section, "message-id") {
                out.extend_from_slice(format!("Message-ID: {mid}\r\n").as_bytes());
            }
            if !has_field(section, "date") {
                out.extend_from_slice(format!("Date: {date}\r\n").as_bytes());
            }
        }
        let head = std::mem::take(&mut self.head);
        let stripped = self
            .strip
            .as_deref()
            .and_then(|id| facteur_trust::header::strip_forged(&head, id));
        if stripped.is_some() {
            tracing::info!(queue_id = %self.writer.queue_id(), "forged header fields removed");
        }
        out.extend_from_slice(stripped.as_deref().unwrap_or(&head));
        self.writer.write_all(&out)
    }

    /// Makes the queue file durable and visible; returns the queue id. Call
    /// from a blocking context (it fsyncs).
    pub fn commit(mut self) -> io::Result<String> {
        if !self.head_done {
            self.flush_head()?;
        }
        self.writer.commit().map_err(|e| match e {
            facteur_spool::SpoolError::Io(e) => e,
            e => io::Error::other(e.to_string()),
        })
    }
}

impl Content for Incoming {
    /// The message as it will be queued: our trace header, then what the
    /// client sent.
    fn reader(&mut self) -> io::Result<Box<dyn Read + Send + '_>> {
        if !self.head_done {
            self.flush_head()?;
        }
        Ok(Box::new(self.writer.message_reader()?))
    }

    fn content_len(&mut self) -> io::Result<u64> {
        if !self.head_done {
            self.flush_head()?;
        }
        Ok(self.writer.message_size())
    }
}

impl Sink for Incoming {
    fn push(&mut self, bytes: &[u8]) -> io::Result<()> {
        Incoming::push(self, bytes)
    }

    fn prepend(&mut self, fields: &[u8]) -> io::Result<()> {
        self.writer.prepend(fields)
    }

    fn edit(&mut self, edits: &[facteur_smtp_server::edit::Edit]) -> io::Result<()> {
        if !self.head_done {
            self.flush_head()?;
        }
        tracing::info!(queue_id = %self.writer.queue_id(), edits = edits.len(), "message changed by the checks");
        self.writer
            .rewrite_message(|r, w| facteur_smtp_server::edit::apply(r, w, edits))
    }

    fn abort(self) {
        self.writer.abort();
    }
}

/// Offset just past the header section's terminating empty line, if seen
/// (`\r\n\r\n`, or a message that starts with an empty line).
fn header_end(head: &[u8]) -> Option<usize> {
    if head.starts_with(b"\r\n") {
        return Some(0);
    }
    memchr_find(head, b"\r\n\r\n").map(|p| p + 2)
}

fn memchr_find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Whether a header section holds a field with this (lower-case) name.
fn has_field(section: &[u8], name: &str) -> bool {
    section.split(|&b| b == b'\n').any(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match line.iter().position(|&b| b == b':') {
            Some(p) if !line.starts_with(b" ") && !line.starts_with(b"\t") => {
                line[..p].trim_ascii().eq_ignore_ascii_case(name.as_bytes())
            }
            _ => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_fields_and_header_end() {
        let m = b"From: a\r\nMessage-Id: <x@y>\r\n\tcontinued\r\nSubject: date: no\r\n\r\nDate: in body\r\n";
        let end = header_end(m).unwrap();
        assert!(has_field(&m[..end], "message-id"));
        assert!(!has_field(&m[..end], "date"));
        assert_eq!(header_end(b"\r\nbody"), Some(0));
        assert_eq!(header_end(b"Subject: x\r\n"), None);
    }

    #[test]
    fn received_header_shape() {
        let t = Trace {
            helo: "client.test".into(),
            client_name: None,
            client_ip: "127.0.0.1".into(),
            hostname: "mx.example.test".into(),
            protocol: "ESMTPSA".into(),
            queue_id: "ABC".into(),
            tls: Some("TLSv1.3 with cipher TLS13_AES_256_GCM_SHA384".into()),
            single_rcpt: Some("a@example.test".into()),
            date: "Mon, 23 Nov 2026 18:47:54 +0000".into(),
        };
        let h = t.received();
        assert!(h.starts_with("Received: from client.test (unknown [127.0.0.1])\r\n\tby mx.example.test (facteur) with ESMTPSA id ABC\r\n\t(using TLSv1.3"));
        assert!(h.ends_with("for <a@example.test>;\r\n\tMon, 23 Nov 2026 18:47:54 +0000\r\n"));
    }
}
