//! The header fields the results become: `Authentication-Results` (RFC
//! 8601) under our authserv-id, and `Received-SPF` (RFC 7208 §9.1).
//!
//! Every value that came from the network (HELO names, addresses, DKIM
//! selectors and domains) is written as a token, an address or a quoted
//! string, with control characters removed, so no peer can end a field or
//! add one; comments lose their parentheses and backslashes. Lines are
//! folded before 78 columns where they can be; no line comes near the 998
//! octets of RFC 5322 §2.1.1 (values are cut at [`MAX_VALUE`]).
//!
//! Layout (one result per line, as most receivers write it):
//!
//! ```text
//! Authentication-Results: mx.example.net;
//!     iprev=pass policy.iprev=192.0.2.1 (mail.example.org);
//!     spf=pass smtp.mailfrom=alice@example.org;
//!     dkim=pass header.d=example.org header.s=sel header.a=rsa-sha256 header.b=AbCdEfGh;
//!     arc=none;
//!     dmarc=pass (p=reject) header.from=example.org
//! ```

use crate::outcome::{Iprev, MessageResults, Outcome, Spf, SpfIdentity};

/// Longest value written; longer ones (never valid DNS names or
/// addresses) are cut.
pub const MAX_VALUE: usize = 256;

/// What goes into one `Authentication-Results` field.
#[derive(Debug, Clone, Copy, Default)]
pub struct Report<'a> {
    pub iprev: Option<&'a Iprev>,
    pub spf_helo: Option<&'a Spf>,
    pub spf_mail: Option<&'a Spf>,
    pub message: Option<&'a MessageResults>,
}

/// Without controls, cut at [`MAX_VALUE`] characters.
fn clean(v: &str) -> String {
    v.chars()
        .filter(|c| !c.is_control())
        .take(MAX_VALUE)
        .collect()
}

/// RFC 2045 token characters (UTF-8 allowed, RFC 6532).
fn is_token(v: &str) -> bool {
    !v.is_empty()
        && v.bytes()
            .all(|b| b > b' ' && b != 0x7f && !b"()<>@,;:\\\"/[]?=".contains(&b))
}

/// A `value` (RFC 2045): the token as it is, or a quoted string.
pub fn value(v: &str) -> String {
    let v = clean(v);
    if is_token(&v) {
        return v;
    }
    let mut q = String::with_capacity(v.len() + 2);
    q.push('"');
    for c in v.chars() {
        if c == '"' || c == '\\' {
            q.push('\\');
        }
        q.push(c);
    }
    q.push('"');
    q
}

/// A `pvalue` (RFC 8601 §2.2): an address `local@domain` with a token
/// local part as it is, anything else as a [`value`].
fn pvalue(v: &str) -> String {
    let c = clean(v);
    match c.rsplit_once('@') {
        Some((l, d)) if (l.is_empty() || is_token(l)) && is_token(d) => c,
        _ => value(&c),
    }
}

/// A comment's text: no parentheses, backslashes or controls.
fn comment(v: &str) -> String {
    clean(v)
        .chars()
        .filter(|c| !matches!(c, '(' | ')' | '\\'))
        .collect()
}

/// Builds a folded field: words joined by a space, or by CRLF TAB when
/// the line would pass 76 columns.
struct Folder {
    out: String,
    col: usize,
}

impl Folder {
    fn new(name: &str) -> Folder {
        Folder {
            out: format!("{name}:"),
            col: name.len() + 1,
        }
    }
    fn word(&mut self, w: &str) {
        if self.col + 1 + w.len() > 76 && self.col > 1 {
            self.out.push_str("\r\n\t");
            self.col = 1;
        } else {
            self.out.push(' ');
            self.col += 1;
        }
        self.out.push_str(w);
        self.col += w.len();
    }
    /// Ends a result with `;` and starts the next on a new line.
    fn next_line(&mut self) {
        self.out.push_str(";\r\n\t");
        self.col = 1;
    }
    fn words(&mut self, words: &[String]) {
        for (i, w) in words.iter().enumerate() {
            if i == 0 {
                // The first word of a line follows the tab directly.
                self.out.push_str(w);
                self.col += w.len();
            } else {
                self.word(w);
            }
        }
    }
}

fn reason(out: &mut Vec<String>, r: &Option<String>) {
    if let Some(r) = r {
        out.push(format!("reason={}", value(r)));
    }
}

fn spf_words(s: &Spf) -> Vec<String> {
    let mut w = vec![format!("spf={}", s.outcome)];
    reason(&mut w, &s.reason);
    match (s.identity, s.sender.is_empty()) {
        (SpfIdentity::MailFrom, false) => w.push(format!("smtp.mailfrom={}", pvalue(&s.sender))),
        (SpfIdentity::MailFrom, true) => w.push(format!(
            "smtp.mailfrom={}",
            pvalue(&format!("postmaster@{}", s.helo))
        )),
        (SpfIdentity::Helo, _) => w.push(format!("smtp.helo={}", pvalue(&s.helo))),
    }
    w
}

/// The `Authentication-Results` field (without its CRLF).
pub fn authentication_results(authserv_id: &str, r: &Report<'_>) -> String {
    let mut lines: Vec<Vec<String>> = Vec::new();
    if let Some(i) = r.iprev {
        let mut w = vec![format!("iprev={}", i.outcome)];
        reason(&mut w, &i.reason);
        w.push(format!("policy.iprev={}", i.ip));
        if let Some(n) = &i.name {
            w.push(format!("({})", comment(n)));
        }
        lines.push(w);
    }
    // The MAIL FROM identity first: it is the one DMARC uses.
    for s in [r.spf_mail, r.spf_helo].into_iter().flatten() {
        lines.push(spf_words(s));
    }
    if let Some(m) = r.message {
        if m.dkim.is_empty() {
            lines.push(vec!["dkim=none".into()]);
        }
        for d in &m.dkim {
            let mut w = vec![format!("dkim={}", d.outcome)];
            reason(&mut w, &d.reason);
            if !d.domain.is_empty() {
                w.push(format!("header.d={}", pvalue(&d.domain)));
                w.push(format!("header.s={}", pvalue(&d.selector)));
                if !d.identity.is_empty() {
                    w.push(format!("header.i={}", pvalue(&d.identity)));
                }
                w.push(format!("header.a={}", d.algorithm));
                w.push(format!("header.b={}", pvalue(&d.b)));
            }
            lines.push(w);
        }
        if m.dkim_skipped > 0 {
            lines.push(vec![
                "dkim=neutral".into(),
                format!(
                    "reason={}",
                    value(&format!("{} more signatures not verified", m.dkim_skipped))
                ),
            ]);
        }
        let a = &m.arc;
        let mut w = vec![format!("arc={}", a.outcome)];
        reason(&mut w, &a.reason);
        if a.outcome != Outcome::None {
            let sealer = a.sealer.as_deref().map(comment).unwrap_or_default();
            w.push(format!("(i={} d={sealer})", a.instances));
        }
        lines.push(w);
        let d = &m.dmarc;
        let mut w = vec![format!("dmarc={}", d.outcome)];
        reason(&mut w, &d.reason);
        if d.record {
            w.push(format!("(p={})", d.policy.as_str()));
        }
        if !d.from_domain.is_empty() {
            w.push(format!("header.from={}", pvalue(&d.from_domain)));
        }
        lines.push(w);
    }
    let mut f = Folder::new(crate::header::AUTH_RESULTS);
    f.word(&value(authserv_id));
    if lines.is_empty() {
        f.out.push_str("; none");
        return f.out;
    }
    for w in &lines {
        f.next_line();
        f.words(w);
    }
    f.out
}

/// The `Received-SPF` field (RFC 7208 §9.1, without its CRLF) for `s`;
/// `receiver` is our host name.
pub fn received_spf(s: &Spf, receiver: &str) -> String {
    let ip = s.ip.to_string();
    let who = match (s.identity, s.sender.is_empty()) {
        (SpfIdentity::MailFrom, false) => s.sender.clone(),
        _ => format!("postmaster@{}", s.helo),
    };
    let explanation = match s.outcome {
        Outcome::Pass => format!("domain of {who} designates {ip} as permitted sender"),
        Outcome::Fail => format!("domain of {who} does not designate {ip} as permitted sender"),
        Outcome::SoftFail => {
            format!("domain of {who} does not designate {ip} as permitted sender (softfail)")
        }
        Outcome::Neutral => format!("{ip} is neither permitted nor denied by domain of {who}"),
        Outcome::None => format!("domain of {who} does not publish SPF"),
        Outcome::TempError => format!("temporary error checking SPF of {who}"),
        Outcome::PermError => format!("cannot use the SPF record of {who}"),
    };
    let mut f = Folder::new("Received-SPF");
    f.word(s.outcome.as_str());
    // The comment folds between its words (CFWS allows it).
    let text = format!("({}: {})", comment(receiver), comment(&explanation));
    for w in text.split(' ').filter(|w| !w.is_empty()) {
        f.word(w);
    }
    let identity = match s.identity {
        SpfIdentity::Helo => "helo",
        SpfIdentity::MailFrom => "mailfrom",
    };
    // key=value pairs: dot-atoms as they are, anything else quoted.
    let kv = |k: &str, v: &str| {
        let c = clean(v);
        let atom = !c.is_empty()
            && c.split('.').all(|p| {
                !p.is_empty()
                    && p.bytes().all(|b| {
                        b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b) || b > 127
                    })
            });
        if atom {
            format!("{k}={c};")
        } else {
            format!("{k}={};", value_quoted(&c))
        }
    };
    f.word(&kv("client-ip", &ip));
    f.word(&kv("envelope-from", &who));
    f.word(&kv("helo", &s.helo));
    f.word(&kv("receiver", receiver));
    f.word(&kv("identity", identity));
    f.out
}

/// Always a quoted string.
fn value_quoted(v: &str) -> String {
    let mut q = String::from("\"");
    for c in clean(v).chars() {
        if c == '"' || c == '\\' {
            q.push('\\');
        }
        q.push(c);
    }
    q.push('"');
    q
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::{Arc, Dkim, Dmarc, DmarcPolicy};

    fn spf(identity: SpfIdentity, outcome: Outcome, sender: &str) -> Spf {
        Spf {
            outcome,
            identity,
            ip: "192.0.2.1".parse().unwrap(),
            helo: "mail.example.org".into(),
            sender: sender.into(),
            domain: "example.org".into(),
            reason: None,
        }
    }

    #[test]
    fn a_full_report() {
        let iprev = Iprev {
            outcome: Outcome::Pass,
            ip: "192.0.2.1".parse().unwrap(),
            name: Some("mail.example.org".into()),
            reason: None,
        };
        let m = MessageResults {
            dkim: vec![Dkim {
                outcome: Outcome::Fail,
                domain: "example.org".into(),
                selector: "sel".into(),
                identity: "@example.org".into(),
                algorithm: "rsa-sha256",
                b: "AbCdEfGh".into(),
                reason: Some("body hash did not verify".into()),
            }],
            dkim_skipped: 2,
            arc: Arc {
                outcome: Outcome::None,
                instances: 0,
                sealer: None,
                reason: None,
            },
            dmarc: Dmarc {
                outcome: Outcome::Fail,
                from_domain: "example.org".into(),
                policy: DmarcPolicy::Reject,
                record: true,
                reason: None,
            },
        };
        let mail = spf(SpfIdentity::MailFrom, Outcome::Pass, "alice@example.org");
        let helo = spf(SpfIdentity::Helo, Outcome::None, "");
        let r = Report {
            iprev: Some(&iprev),
            spf_helo: Some(&helo),
            spf_mail: Some(&mail),
            message: Some(&m),
        };
        assert_eq!(
            authentication_results("mx.example.net", &r),
            "Authentication-Results: mx.example.net;\r\n\
\tiprev=pass policy.iprev=192.0.2.1 (mail.example.org);\r\n\
\tspf=pass smtp.mailfrom=alice@example.org;\r\n\
\tspf=none smtp.helo=mail.example.org;\r\n\
\tdkim=fail reason=\"body hash did not verify\" header.d=example.org\r\n\
\theader.s=sel header.i=@example.org header.a=rsa-sha256 header.b=AbCdEfGh;\r\n\
\tdkim=neutral reason=\"2 more signatures not verified\";\r\n\
\tarc=none;\r\n\
\tdmarc=fail (p=reject) header.from=example.org"
        );
        assert_eq!(
            authentication_results("mx.example.net", &Report::default()),
            "Authentication-Results: mx.example.net; none"
        );
    }

    #[test]
    fn hostile_values_stay_inside_their_field() {
        let mut s = spf(
            SpfIdentity::MailFrom,
            Outcome::Fail,
            "\"x;\r\nBcc: evil\"@example.org",
        );
        s.helo = "h(elo)\r\n\r\nX: y".into();
        let r = Report {
            spf_mail: Some(&s),
            ..Report::default()
        };
        let a = authentication_results("mx.test", &r);
        assert!(!a.contains("\r\nBcc") && !a.contains("\r\n\r\n"), "{a}");
        assert!(
            a.contains(r#"smtp.mailfrom="\"x;Bcc: evil\"@example.org""#),
            "{a}"
        );
        let rs = received_spf(&s, "mx.test");
        assert!(!rs.contains("\r\nX:") && !rs.contains("\r\n\r\n"), "{rs}");
        assert!(rs.contains("helo=\"h(elo)X: y\";"), "{rs}");
        for line in rs.split("\r\n").chain(a.split("\r\n")) {
            assert!(line.len() < 998);
        }
    }

    #[test]
    fn received_spf_as_rfc_7208_shows_it() {
        let s = spf(SpfIdentity::MailFrom, Outcome::Pass, "alice@example.org");
        assert_eq!(
            received_spf(&s, "mx.example.net"),
            "Received-SPF: pass (mx.example.net: domain of alice@example.org designates\r\n\
\t192.0.2.1 as permitted sender) client-ip=192.0.2.1;\r\n\
\tenvelope-from=\"alice@example.org\"; helo=mail.example.org;\r\n\
\treceiver=mx.example.net; identity=mailfrom;"
        );
        let n = spf(SpfIdentity::MailFrom, Outcome::SoftFail, "");
        assert!(received_spf(&n, "mx").contains("envelope-from=\"postmaster@mail.example.org\";"));
    }

    #[test]
    fn values_and_pvalues() {
        assert_eq!(value("example.org"), "example.org");
        assert_eq!(value("a b"), "\"a b\"");
        assert_eq!(value("a\"b\\"), "\"a\\\"b\\\\\"");
        assert_eq!(pvalue("user@example.org"), "user@example.org");
        assert_eq!(pvalue("@example.org"), "@example.org");
        assert_eq!(pvalue("us er@example.org"), "\"us er@example.org\"");
        assert_eq!(value(&"x".repeat(1000)).len(), MAX_VALUE);
    }
}
