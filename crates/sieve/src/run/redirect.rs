//! What a redirect sends, decided the same way by every host that carries
//! one out (lmtpd, `facteurctl sieve test`, the test suite): the envelope
//! sender the site chose, the `X-Sieve-Redirected-From` field that names
//! whose script sent it on, and the loop that field reveals.
//!
//! RFC 5228 §4.2 leaves the envelope sender of a redirected message to the
//! implementation but for one rule: a message with the null reverse-path is
//! redirected with the null reverse-path (its bounce must not come back
//! here to be redirected again). Keeping the original sender (the default)
//! fails SPF at the next hop; a site that does not rewrite senders (SRS)
//! can send from the recipient, the original recipient, the user's own
//! address, its postmaster or a fixed address instead — the choices
//! Pigeonhole calls `sieve_redirect_envelope_from`, under the same names.

use super::Envelope;

/// The envelope sender of redirected messages (`[sieve]
/// redirect_envelope_from`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum RedirectSender {
    /// The message's own envelope sender (RFC 5228's usual choice).
    #[default]
    Sender,
    /// The final recipient (the address this delivery is for).
    Recipient,
    /// The recipient as the sender wrote it, before aliases; the final
    /// recipient when it is not known.
    OrigRecipient,
    /// The user's own address (the mailbox's), the final recipient when the
    /// host does not know it.
    UserEmail,
    /// The site's postmaster.
    Postmaster,
    /// A fixed address, `<>` (empty) included.
    Address(String),
}

impl RedirectSender {
    /// From the setting's text: `sender`, `recipient`, `orig_recipient`,
    /// `user_email`, `postmaster` or `<address>` (`<>` for the null
    /// sender); spaces around are ignored, case too for the keywords.
    pub fn parse(text: &str) -> Result<RedirectSender, String> {
        let t = text.trim();
        if let Some(inner) = t.strip_prefix('<').and_then(|r| r.strip_suffix('>')) {
            let inner = inner.trim();
            if inner.is_empty() {
                return Ok(RedirectSender::Address(String::new()));
            }
            return match super::address::parse_one(inner) {
                Some(a) if a == inner => Ok(RedirectSender::Address(a)),
                _ => Err(format!("not an address: {t}")),
            };
        }
        Ok(match t.to_ascii_lowercase().as_str() {
            "" | "sender" => RedirectSender::Sender,
            "recipient" => RedirectSender::Recipient,
            "orig_recipient" => RedirectSender::OrigRecipient,
            "user_email" => RedirectSender::UserEmail,
            "postmaster" => RedirectSender::Postmaster,
            _ => {
                return Err(format!(
                    "{t:?}: expected sender, recipient, orig_recipient, user_email, postmaster or <address>"
                ));
            }
        })
    }

    /// The envelope sender for a redirect of the message of `env`:
    /// always empty when the message's own sender is.
    pub fn envelope_from(
        &self,
        env: &Envelope,
        user_email: Option<&str>,
        postmaster: &str,
    ) -> String {
        if env.from.is_empty() {
            return String::new();
        }
        match self {
            RedirectSender::Sender => env.from.clone(),
            RedirectSender::Recipient => env.to.clone(),
            RedirectSender::OrigRecipient => env.orig_to.clone().unwrap_or_else(|| env.to.clone()),
            RedirectSender::UserEmail => user_email.unwrap_or(&env.to).to_string(),
            RedirectSender::Postmaster => postmaster.to_string(),
            RedirectSender::Address(a) => a.clone(),
        }
    }
}

/// The address a redirect names in `X-Sieve-Redirected-From`: the user's
/// own when known, else the final recipient.
pub fn redirected_from<'a>(env: &'a Envelope, user_email: Option<&'a str>) -> &'a str {
    user_email.unwrap_or(&env.to)
}

/// The fields a redirect puts before the message (CRLF-terminated):
/// prepended, they leave the author's DKIM signature valid.
pub fn prepended_fields(env: &Envelope, user_email: Option<&str>) -> String {
    let who = redirected_from(env, user_email);
    let who: String = who.chars().filter(|c| !c.is_control()).collect();
    format!("X-Sieve: facteur\r\nX-Sieve-Redirected-From: {who}\r\n")
}

/// Whether the message's header (`header`: its bytes up to the empty line,
/// or the whole message) already carries an `X-Sieve-Redirected-From` with
/// the final recipient or the user's address: a script here sent it on
/// before, and sending it again would loop.
pub fn loops(header: &[u8], env: &Envelope, user_email: Option<&str>) -> bool {
    let mine = |v: &str| {
        let v = v.trim();
        (!env.to.is_empty() && v.eq_ignore_ascii_case(&env.to))
            || user_email.is_some_and(|u| !u.is_empty() && v.eq_ignore_ascii_case(u))
    };
    facteur_imap_message::fields::header_fields(header)
        .filter(|(name, _)| name.eq_ignore_ascii_case(b"x-sieve-redirected-from"))
        .any(|(_, value)| mine(&facteur_imap_message::fields::decode(value)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(from: &str) -> Envelope {
        Envelope {
            from: from.into(),
            to: "timo@example.net".into(),
            orig_to: Some("tss@example.net".into()),
            auth: None,
        }
    }

    #[test]
    fn settings_are_read() {
        assert_eq!(
            RedirectSender::parse(" recipient "),
            Ok(RedirectSender::Recipient)
        );
        assert_eq!(
            RedirectSender::parse("orig_recipient "),
            Ok(RedirectSender::OrigRecipient)
        );
        assert_eq!(
            RedirectSender::parse("User_Email"),
            Ok(RedirectSender::UserEmail)
        );
        assert_eq!(RedirectSender::parse(""), Ok(RedirectSender::Sender));
        assert_eq!(
            RedirectSender::parse("<backscatter@example.net> "),
            Ok(RedirectSender::Address("backscatter@example.net".into()))
        );
        assert_eq!(
            RedirectSender::parse("<>"),
            Ok(RedirectSender::Address(String::new()))
        );
        assert!(RedirectSender::parse("somebody").is_err());
        assert!(RedirectSender::parse("<not an address>").is_err());
    }

    #[test]
    fn the_envelope_sender_follows_the_setting_but_never_leaves_the_null_path() {
        let e = env("sirius@example.org");
        let pm = "postmaster@example.com";
        assert_eq!(
            RedirectSender::Sender.envelope_from(&e, None, pm),
            "sirius@example.org"
        );
        assert_eq!(
            RedirectSender::Recipient.envelope_from(&e, None, pm),
            "timo@example.net"
        );
        assert_eq!(
            RedirectSender::OrigRecipient.envelope_from(&e, None, pm),
            "tss@example.net"
        );
        assert_eq!(
            RedirectSender::UserEmail.envelope_from(&e, None, pm),
            "timo@example.net"
        );
        assert_eq!(
            RedirectSender::UserEmail.envelope_from(&e, Some("t.s@example.net"), pm),
            "t.s@example.net"
        );
        assert_eq!(RedirectSender::Postmaster.envelope_from(&e, None, pm), pm);
        assert_eq!(
            RedirectSender::Address(String::new()).envelope_from(&e, None, pm),
            ""
        );
        let null = env("");
        for s in [
            RedirectSender::Recipient,
            RedirectSender::Address("b@example.net".into()),
        ] {
            assert_eq!(s.envelope_from(&null, None, pm), "");
        }
    }

    #[test]
    fn a_loop_is_seen_in_any_of_the_fields() {
        let e = env("sirius@example.org");
        let m = b"X-Sieve-Redirected-From: stephan@example.net\r\nFrom: a@b\r\nX-Sieve-Redirected-From:\r\n t.sirainen@example.net\r\n\r\nX-Sieve-Redirected-From: timo@example.net\r\n";
        assert!(loops(m, &e, Some("t.sirainen@example.net")));
        // the body does not count
        assert!(!loops(m, &e, None));
        assert!(loops(
            b"X-Sieve-Redirected-From: TIMO@example.net\n\nx",
            &e,
            None
        ));
        assert!(!loops(b"From: timo@example.net\r\n\r\n", &e, None));
    }

    #[test]
    fn the_fields_name_the_user() {
        let e = env("sirius@example.org");
        assert_eq!(
            prepended_fields(&e, None),
            "X-Sieve: facteur\r\nX-Sieve-Redirected-From: timo@example.net\r\n"
        );
        assert!(prepended_fields(&e, Some("u@x\r\nBcc: y")).ends_with("u@xBcc: y\r\n"));
    }
}
