//! rspamd's protocol (the normal worker's `POST /checkv2`): the message as
//! the body, the envelope in headers (`From`, one `Rcpt` per recipient,
//! `IP`, `Helo`, `Hostname`, `Queue-Id`, `User` for a logged-in sender),
//! and a JSON reply whose `action` says what to do: `no action`,
//! `greylist`, `add header`, `rewrite subject`, `soft reject`, `reject`;
//! `milter.add_headers` / `milter.remove_headers` and `subject` carry the
//! changes rspamd asks for. [`parse_reply`] is pure; [`check`] is the
//! client.

use crate::ScanError;
use crate::conn;
use crate::http;
use facteur_config::scan::ScanAddr;
use serde_json::Value;
use std::io::Read;
use std::net::IpAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What rspamd is told besides the message.
#[derive(Debug, Clone, Default)]
pub struct Meta {
    /// The envelope sender ("" for the null sender).
    pub from: String,
    pub rcpts: Vec<String>,
    pub ip: Option<IpAddr>,
    pub helo: String,
    /// The client's verified name.
    pub hostname: Option<String>,
    pub queue_id: String,
    /// The login, on submission.
    pub user: Option<String>,
}

impl Meta {
    fn headers(&self) -> Vec<(&'static str, String)> {
        let mut h = vec![("From", self.from.clone())];
        h.extend(self.rcpts.iter().map(|r| ("Rcpt", r.clone())));
        if let Some(ip) = self.ip {
            h.push(("IP", ip.to_string()));
        }
        if !self.helo.is_empty() {
            h.push(("Helo", self.helo.clone()));
        }
        if let Some(n) = &self.hostname {
            h.push(("Hostname", n.clone()));
        }
        h.push(("Queue-Id", self.queue_id.clone()));
        if let Some(u) = &self.user {
            h.push(("User", u.clone()));
        }
        h
    }
}

/// rspamd's action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    NoAction,
    Greylist,
    AddHeader,
    RewriteSubject,
    SoftReject,
    Reject,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::NoAction => "no action",
            Action::Greylist => "greylist",
            Action::AddHeader => "add header",
            Action::RewriteSubject => "rewrite subject",
            Action::SoftReject => "soft reject",
            Action::Reject => "reject",
        }
    }
}

/// What rspamd said.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub action: Action,
    pub score: f64,
    pub required: f64,
    /// The reply text rspamd asks for (`messages.smtp_message`).
    pub smtp_message: Option<String>,
    /// The new Subject (`rewrite subject`).
    pub subject: Option<String>,
    /// `milter.add_headers`: (name, value), in rspamd's order.
    pub add_headers: Vec<(String, String)>,
    /// `milter.remove_headers`: (name, which: 0 = all, else the nth).
    pub remove_headers: Vec<(String, usize)>,
    /// The symbols that fired, by name, highest score first (at most 50).
    pub symbols: Vec<(String, f64)>,
}

/// Parses the JSON of a `/checkv2` reply.
pub fn parse_reply(body: &[u8]) -> Result<Verdict, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let action = match v.get("action").and_then(Value::as_str) {
        Some("no action") => Action::NoAction,
        Some("greylist") => Action::Greylist,
        Some("add header") | Some("add_header") => Action::AddHeader,
        Some("rewrite subject") | Some("rewrite_subject") => Action::RewriteSubject,
        Some("soft reject") | Some("soft_reject") => Action::SoftReject,
        Some("reject") => Action::Reject,
        other => return Err(format!("unknown action {other:?}")),
    };
    let num = |k: &str| v.get(k).and_then(Value::as_f64).unwrap_or(0.0);
    let text = |x: Option<&Value>| x.and_then(Value::as_str).map(str::to_string);
    let milter = v.get("milter");
    let mut add_headers = Vec::new();
    if let Some(Value::Object(m)) = milter.and_then(|m| m.get("add_headers")) {
        let mut ordered = Vec::new();
        for (name, val) in m {
            // A value, {value, order}, or a list of either.
            let items: Vec<&Value> = match val {
                Value::Array(a) => a.iter().collect(),
                x => vec![x],
            };
            for it in items {
                let (value, order) = match it {
                    Value::String(s) => (s.clone(), i64::MAX),
                    Value::Object(o) => (
                        o.get("value")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string(),
                        o.get("order").and_then(Value::as_i64).unwrap_or(i64::MAX),
                    ),
                    _ => continue,
                };
                ordered.push((order, name.clone(), value));
            }
        }
        ordered.sort_by_key(|(o, _, _)| *o);
        add_headers = ordered.into_iter().map(|(_, n, v)| (n, v)).collect();
    }
    let mut remove_headers = Vec::new();
    if let Some(Value::Object(m)) = milter.and_then(|m| m.get("remove_headers")) {
        for (name, val) in m {
            let nth = val.as_u64().unwrap_or(0);
            remove_headers.push((name.clone(), usize::try_from(nth).unwrap_or(0)));
        }
    }
    let mut symbols: Vec<(String, f64)> = match v.get("symbols") {
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, s)| {
                (
                    k.clone(),
                    s.get("score").and_then(Value::as_f64).unwrap_or(0.0),
                )
            })
            .collect(),
        _ => Vec::new(),
    };
    symbols.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    symbols.truncate(50);
    Ok(Verdict {
        action,
        score: num("score"),
        required: num("required_score"),
        smtp_message: text(v.get("messages").and_then(|m| m.get("smtp_message"))),
        subject: text(v.get("subject")),
        add_headers,
        remove_headers,
        symbols,
    })
}

/// Asks rspamd at `addr` about a message of `size` bytes read from
/// `message`, within `timeout` for the whole exchange.
pub async fn check(
    addr: &ScanAddr,
    timeout: Duration,
    meta: &Meta,
    message: &mut (dyn Read + Send),
    size: u64,
) -> Result<Verdict, ScanError> {
    let exchange = async {
        let mut s = conn::connect(addr, timeout).await?;
        s.write_all(&http::request_head("/checkv2", &meta.headers(), size))
            .await?;
        let mut buf = vec![0u8; 64 * 1024];
        let mut sent = 0u64;
        loop {
            let n = message.read(&mut buf)?;
            if n == 0 {
                break;
            }
            sent += n as u64;
            s.write_all(&buf[..n]).await?;
        }
        if sent != size {
            return Err(ScanError::Protocol(format!(
                "the message was {sent} bytes, not {size}"
            )));
        }
        s.flush().await?;
        let mut raw = Vec::new();
        (&mut s)
            .take(http::MAX_REPLY as u64 + 1)
            .read_to_end(&mut raw)
            .await?;
        if raw.len() > http::MAX_REPLY {
            return Err(ScanError::Protocol("reply too large".into()));
        }
        let reply = http::parse_reply(&raw).map_err(ScanError::Protocol)?;
        if reply.status != 200 {
            let body =
                String::from_utf8_lossy(&reply.body[..reply.body.len().min(200)]).into_owned();
            return Err(ScanError::Protocol(format!(
                "HTTP {}: {body}",
                reply.status
            )));
        }
        parse_reply(&reply.body).map_err(ScanError::Protocol)
    };
    crate::within(timeout, exchange).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_of_each_shape() {
        let v = parse_reply(
            br#"{"is_skipped":false,"score":16.5,"required_score":15,"action":"reject",
            "symbols":{"GTUBE":{"name":"GTUBE","score":0},"R_SPF_FAIL":{"score":1.5}},
            "messages":{"smtp_message":"Gtube pattern"}}"#,
        )
        .unwrap();
        assert_eq!(v.action, Action::Reject);
        assert_eq!((v.score, v.required), (16.5, 15.0));
        assert_eq!(v.smtp_message.as_deref(), Some("Gtube pattern"));
        assert_eq!(v.symbols[0].0, "R_SPF_FAIL");
        let v = parse_reply(
            br#"{"score":7,"required_score":15,"action":"rewrite subject",
            "subject":"*** SPAM *** hello",
            "milter":{"add_headers":{"X-Spamd-Bar":{"value":"+++++++","order":1},
                                     "X-Spam-Level":"*******",
                                     "X-Two":[{"value":"a","order":0},"b"]},
                      "remove_headers":{"X-Spam":0,"X-Old":2}}}"#,
        )
        .unwrap();
        assert_eq!(v.action, Action::RewriteSubject);
        assert_eq!(v.subject.as_deref(), Some("*** SPAM *** hello"));
        assert_eq!(v.add_headers[0], ("X-Two".into(), "a".into()));
        assert_eq!(v.add_headers[1], ("X-Spamd-Bar".into(), "+++++++".into()));
        assert_eq!(v.add_headers.len(), 4);
        assert!(v.remove_headers.contains(&("X-Old".into(), 2)));
        assert!(v.remove_headers.contains(&("X-Spam".into(), 0)));
        for bad in [
            &b"{}"[..],
            b"not json",
            br#"{"action":"explode"}"#,
            br#"[1,2]"#,
        ] {
            assert!(parse_reply(bad).is_err());
        }
    }

    #[test]
    fn the_envelope_in_headers() {
        let m = Meta {
            from: "a@b.example".into(),
            rcpts: vec!["x@y.example".into(), "z@y.example".into()],
            ip: Some("192.0.2.1".parse().unwrap()),
            helo: "mail.b.example".into(),
            hostname: None,
            queue_id: "Q1".into(),
            user: Some("alice@y.example".into()),
        };
        let h = m.headers();
        assert_eq!(h.iter().filter(|(n, _)| *n == "Rcpt").count(), 2);
        assert!(h.contains(&("User", "alice@y.example".into())));
        assert!(!h.iter().any(|(n, _)| *n == "Hostname"));
    }
}
