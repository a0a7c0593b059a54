//! One transaction on a [`Connection`]: `MAIL FROM` (with the parameters
//! the caller chose, and `XQUEUEID` when an LMTP server offers it), one
//! `RCPT TO` per recipient (NOTIFY and ORCPT when the peer offers DSN),
//! then `DATA` with the dot-stuffed message and `.` — or, in the SMTP
//! dialect when the peer offers CHUNKING, `BDAT` chunks ending with
//! `BDAT 0 LAST` (RFC 3030), the bytes as queued. With PIPELINING (RFC
//! 2920) MAIL, the RCPTs and DATA go in one write and the replies are read
//! in order.
//!
//! Replies after the data: SMTP gives one for the whole transaction, LMTP
//! one per accepted recipient, in RCPT order (RFC 2033 §4.2).
//!
//! What is reported for whom (the crate's guarantees): a recipient refused
//! at RCPT gets its refusal; with MAIL refused every recipient gets the
//! MAIL reply; with DATA refused every accepted one gets the DATA reply;
//! a recipient whose address cannot be written safely gets `553 5.1.3`
//! without being sent; all others get the reply after the data, or `None`
//! when the connection broke first.

use crate::connection::Connection;
use crate::source::MessageSource;
use crate::{ClientError, Dialect, Txn, TxnOutcome};
use facteur_smtp_codec::Reply;
use facteur_smtp_codec::client::{DotStuffer, mail_from, rcpt_to};
use tokio::io::{AsyncRead, AsyncWrite};

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    /// Runs one transaction. Never fails as a whole: see [`TxnOutcome`].
    pub async fn send(&mut self, txn: &Txn<'_>, message: MessageSource) -> TxnOutcome {
        let mut replies: Vec<Option<Reply>> = vec![None; txn.rcpts.len()];
        let mut heard = false;
        let error = self
            .send_inner(txn, message, &mut replies, &mut heard)
            .await
            .err();
        TxnOutcome {
            replies,
            unheard: error.is_some() && !heard,
            error,
        }
    }

    async fn send_inner(
        &mut self,
        txn: &Txn<'_>,
        message: MessageSource,
        replies: &mut [Option<Reply>],
        heard: &mut bool,
    ) -> Result<(), ClientError> {
        let lmtp = self.dialect == Dialect::Lmtp;
        let mut params = txn.params.clone();
        params.queue_id = txn.queue_id.filter(|_| lmtp && self.ext.xqueueid);
        let mail = mail_from(txn.sender, &params)
            .ok_or_else(|| ClientError::Protocol("unusable sender address".into()))?;
        let dsn = self.ext.dsn;
        let rcpt_lines: Vec<Option<String>> = txn
            .rcpts
            .iter()
            .map(|r| match dsn {
                true => rcpt_to(&r.address, r.notify.as_deref(), r.orcpt.as_deref()),
                false => rcpt_to(&r.address, None, None),
            })
            .collect();
        let t = self.t.command;
        let chunking = !lmtp && self.ext.chunking;
        let pipelined = self.ext.pipelining;

        // MAIL, RCPT..., (DATA): one write with PIPELINING.
        let mut sent_rcpt = vec![false; rcpt_lines.len()];
        if pipelined {
            let mut batch = mail.clone();
            for (i, l) in rcpt_lines.iter().enumerate() {
                if let Some(l) = l {
                    batch.push_str(l);
                    sent_rcpt[i] = true;
                }
            }
            if !chunking {
                batch.push_str("DATA\r\n");
            }
            self.write(batch.as_bytes(), t).await?;
        } else {
            self.write(mail.as_bytes(), t).await?;
        }
        self.flush(t).await?;
        let mail_reply = self.read_reply(t, "the MAIL reply").await?;
        *heard = true;
        let mail_ok = mail_reply.code / 100 == 2;
        for (i, l) in rcpt_lines.iter().enumerate() {
            if l.is_none() {
                replies[i] = Some(Reply::new(553, (5, 1, 3), "unusable recipient address"));
            }
        }
        let mut accepted = Vec::new();
        for (i, l) in rcpt_lines.iter().enumerate() {
            let Some(l) = l else { continue };
            if !pipelined {
                if !mail_ok {
                    break;
                }
                self.write(l.as_bytes(), t).await?;
                self.flush(t).await?;
                sent_rcpt[i] = true;
            }
            if !sent_rcpt[i] {
                continue;
            }
            let r = self.read_reply(t, "a RCPT reply").await?;
            // With MAIL refused, RCPT replies are "503 need MAIL": the MAIL
            // reply is what counts.
            if mail_ok && r.code / 100 == 2 {
                accepted.push(i);
            } else if mail_ok {
                replies[i] = Some(r);
            }
        }
        if !mail_ok {
            for (i, r) in replies.iter_mut().enumerate() {
                if r.is_none() && rcpt_lines[i].is_some() {
                    *r = Some(mail_reply.clone());
                }
            }
            if pipelined && !chunking {
                let d = self.read_reply(self.t.data_init, "the DATA reply").await?;
                if d.code == 354 {
                    return Err(ClientError::Protocol(
                        "DATA accepted after MAIL was refused".into(),
                    ));
                }
            }
            return self.rset().await;
        }
        if chunking {
            if accepted.is_empty() {
                return self.rset().await;
            }
            let r = self.bdat(message).await?;
            for &i in &accepted {
                replies[i] = Some(r.clone());
            }
            return Ok(());
        }
        if !pipelined {
            if accepted.is_empty() {
                return self.rset().await;
            }
            self.write(b"DATA\r\n", t).await?;
            self.flush(t).await?;
        }
        let d = self.read_reply(self.t.data_init, "the DATA reply").await?;
        if d.code != 354 {
            for &i in &accepted {
                replies[i] = Some(d.clone());
            }
            return self.rset().await;
        }
        if accepted.is_empty() {
            if lmtp {
                // An LMTP server then owes zero replies after the dot,
                // which cannot be told from a lost one: drop the connection.
                return Err(ClientError::Protocol(
                    "DATA accepted with no valid recipient".into(),
                ));
            }
            // RFC 2920 §3.1: DATA was accepted with no valid recipient; end
            // it at once (the peer refuses the empty message).
            self.write(b".\r\n", t).await?;
            self.flush(t).await?;
            let _ = self
                .read_reply(self.t.data_done, "the reply after the final dot")
                .await?;
            return self.rset().await;
        }
        self.data(message).await?;
        if lmtp {
            // One reply per accepted recipient, in order (RFC 2033 §4.2).
            for &i in &accepted {
                let r = self
                    .read_reply(self.t.data_done, "a reply after the final dot")
                    .await?;
                replies[i] = Some(r);
            }
        } else {
            let r = self
                .read_reply(self.t.data_done, "the reply after the final dot")
                .await?;
            for &i in &accepted {
                replies[i] = Some(r.clone());
            }
        }
        Ok(())
    }

    /// Streams the message dot-stuffed, then `.`. A source failure returns
    /// before the dot.
    async fn data(&mut self, mut message: MessageSource) -> Result<(), ClientError> {
        let tb = self.t.data_block;
        let mut stuffer = DotStuffer::default();
        let mut out = Vec::with_capacity(70 * 1024);
        while let Some(chunk) = message.recv().await {
            let chunk = chunk.map_err(|e| ClientError::Source(e.to_string()))?;
            out.clear();
            stuffer.push(&chunk, &mut out);
            self.write(&out, tb).await?;
        }
        out.clear();
        stuffer.finish(&mut out);
        self.write(&out, tb).await?;
        self.flush(tb).await
    }

    /// RFC 3030: the message as `BDAT n` chunks, then `BDAT 0 LAST`; the
    /// final reply (or the first refusal, which ends the transaction).
    async fn bdat(&mut self, mut message: MessageSource) -> Result<Reply, ClientError> {
        let tb = self.t.data_block;
        while let Some(chunk) = message.recv().await {
            let chunk = chunk.map_err(|e| ClientError::Source(e.to_string()))?;
            if chunk.is_empty() {
                continue;
            }
            self.write(format!("BDAT {}\r\n", chunk.len()).as_bytes(), tb)
                .await?;
            self.write(&chunk, tb).await?;
            self.flush(tb).await?;
            let r = self.read_reply(tb, "a BDAT reply").await?;
            if r.code / 100 != 2 {
                // The transaction is over (RFC 3030 §2): this is the answer.
                self.rset().await?;
                return Ok(r);
            }
        }
        self.write(b"BDAT 0 LAST\r\n", tb).await?;
        self.flush(tb).await?;
        self.read_reply(self.t.data_done, "the BDAT LAST reply")
            .await
    }
}
