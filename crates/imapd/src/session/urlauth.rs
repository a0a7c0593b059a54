//! URLAUTH (RFC 4467) and URLAUTH=BINARY (RFC 5524): GENURLAUTH, URLFETCH
//! and RESETKEY, and the URLAUTH URLs that CATENATE may name.
//!
//! A user gets from GENURLAUTH a URL of one of their messages (or a part)
//! that says who may read it (`anonymous`, `authuser`, `user+name` or
//! `submit+name`) and carries a token: HMAC-SHA256 of the URL up to the
//! access identifier, keyed with a random key of the mailbox
//! (facteur-store's urlauth.rs keeps one per mailbox and UIDVALIDITY).
//! Whoever the URL allows fetches it with URLFETCH, even from another
//! user's mailbox: the token is the authorization, not the ACL. RESETKEY
//! replaces the keys, which voids every URL made with them.
//!
//! Written here rather than taken from a crate: no crate implements
//! URLAUTH's server side (the HMAC is the `hmac` crate's).
//!
//! Rules:
//! - Only the `INTERNAL` mechanism (RFC 4467 §8 requires it; others get NO).
//! - GENURLAUTH makes URLs of the user's own mailboxes only (the URL's
//!   `user@host` must be the logged-in user: `user` alone with the domain
//!   as host, or the whole address); the mailbox must exist.
//! - URLFETCH answers NIL for a URL that authorizes nothing (wrong token,
//!   expired, another access identifier, no such message or part), never
//!   saying which check failed. `submit+` URLs are for a submission server
//!   fetching on a user's behalf (BURL, RFC 4468), which facteur does not
//!   run: they are never honoured.

use super::{Flow, Session, blocking};
use facteur_imap_message::Message;
use facteur_imap_proto::{ImapUrl, UrlAccess, UrlFetchItem, encode, parse_imap_url};
use facteur_store::{StoreError, UserStore};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::io;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};

type HmacSha256 = Hmac<Sha256>;

/// The only URLAUTH mechanism offered.
const INTERNAL: &str = "INTERNAL";

/// URLs in one URLFETCH: each may read a whole message, and the answer is
/// built in memory before it is sent (as one response).
const MAX_URLS: usize = 64;

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    /// GENURLAUTH (RFC 4467 §7.1): one authorized URL per (rump,
    /// mechanism), all in one `* GENURLAUTH` response, or NO for the first
    /// that cannot be made.
    pub(super) fn gen_url_auth(
        &mut self,
        tag: &str,
        items: &[(String, String)],
    ) -> io::Result<Flow> {
        let mut urls = Vec::with_capacity(items.len());
        for (rump, mechanism) in items {
            match self.authorize(rump, mechanism) {
                Ok(url) => urls.push(url),
                Err(why) => {
                    self.no(tag, &why);
                    return Ok(Flow::Continue);
                }
            }
        }
        let mut out = b"* GENURLAUTH".to_vec();
        for u in &urls {
            out.push(b' ');
            encode::astring(&mut out, u, false);
        }
        out.extend_from_slice(b"\r\n");
        self.io.write(&out);
        self.announce_and_ok(tag, "GENURLAUTH completed")
    }

    /// One URL of GENURLAUTH: the rump with its token, or why not.
    fn authorize(&self, rump: &str, mechanism: &str) -> Result<String, String> {
        if !mechanism.eq_ignore_ascii_case(INTERNAL) {
            return Err(format!(
                "Unsupported URLAUTH mechanism {mechanism:?} (only INTERNAL)"
            ));
        }
        let u = parse_imap_url(rump).map_err(|why| format!("Invalid URL: {why}"))?;
        let Some(auth) = &u.urlauth else {
            return Err("The URL has no URLAUTH access identifier".into());
        };
        if auth.token.is_some() {
            return Err("The URL is already authorized".into());
        }
        let user = self.user.as_ref().ok_or("Not logged in")?;
        if !url_owner(&u).is_some_and(|o| o.eq_ignore_ascii_case(&user.address)) {
            return Err("A URL of another user's mailbox cannot be authorized".into());
        }
        let store = Arc::clone(&user.store);
        let key = blocking(|| -> Result<[u8; 32], String> {
            let uidvalidity = self.uidvalidity_of(&store, &u.mailbox)?;
            if u.uidvalidity.is_some_and(|v| v != uidvalidity) {
                return Err("[NONEXISTENT] UIDVALIDITY differs".into());
            }
            store
                .urlauth_key(&u.mailbox, uidvalidity, true)
                .map_err(internal)?
                .ok_or_else(|| internal(StoreError::Index("no URLAUTH key made".into())))
        })?;
        Ok(format!("{rump}:internal:{}", token(&key, &auth.rump)))
    }

    /// The selected mailbox, if it is `mailbox` of `store` (whose owner
    /// may differ from the user's: a shared mailbox).
    fn selected_in(&self, store: &UserStore, mailbox: &str) -> Option<&facteur_store::Mailbox> {
        let norm = facteur_store::normalize_name(mailbox).ok()?;
        let sel = self.sel.as_ref()?;
        (sel.mb.name() == norm && sel.mb.dir().starts_with(store.dir())).then_some(&sel.mb)
    }

    /// The UIDVALIDITY of a mailbox of `store` (the selected one's without
    /// opening it again).
    fn uidvalidity_of(&self, store: &UserStore, mailbox: &str) -> Result<u32, String> {
        if let Some(mb) = self.selected_in(store, mailbox) {
            return Ok(mb.uidvalidity());
        }
        match store.select(mailbox) {
            Ok(mb) => Ok(mb.uidvalidity()),
            Err(StoreError::NoSuchMailbox(_)) => Err("[NONEXISTENT] No such mailbox".into()),
            Err(e) => Err(internal(e)),
        }
    }

    /// URLFETCH (RFC 4467 §7.2; RFC 5524 for the parenthesised form): one
    /// `* URLFETCH` response with every URL and its data (NIL when it
    /// authorizes nothing).
    pub(super) fn url_fetch(&mut self, tag: &str, items: &[UrlFetchItem]) -> io::Result<Flow> {
        if items.len() > MAX_URLS {
            self.no(
                tag,
                &format!("[LIMIT] At most {MAX_URLS} URLs in one URLFETCH"),
            );
            return Ok(Flow::Continue);
        }
        // The response holds what it fetches: at most twice the largest
        // message APPEND takes, or 64 MiB.
        let budget = (2 * self.cfg.max_append_size.0).max(64 << 20);
        let mut out = b"* URLFETCH".to_vec();
        for item in items {
            if out.len() as u64 > budget {
                self.no(
                    tag,
                    "[LIMIT] Too much data for one URLFETCH: fetch fewer URLs at once",
                );
                return Ok(Flow::Continue);
            }
            out.push(b' ');
            encode::astring(&mut out, &item.url, false);
            out.push(b' ');
            let found = parse_imap_url(&item.url)
                .ok()
                .and_then(|u| Some((self.authorized_message(&u)?, u)));
            let Some((raw, u)) = found else {
                out.extend_from_slice(b"NIL");
                continue;
            };
            let msg = Message::parse(&raw);
            if !item.extended {
                data(&mut out, part_bytes(&msg, &raw, &u).as_deref());
                continue;
            }
            let mut first = true;
            let mut sep = |out: &mut Vec<u8>| {
                if !std::mem::take(&mut first) {
                    out.push(b' ');
                }
            };
            // A part (empty: the whole message); None for a section that is
            // not one (HEADER, TEXT, ...), which has no structure or BINARY.
            let part: Option<&[u32]> = match &u.section {
                None => Some(&[]),
                Some(s) if s.text.is_none() => Some(&s.part),
                Some(_) => None,
            };
            let binary = match part {
                Some(p) if item.binary => msg.binary(p).ok(),
                _ => None,
            };
            if item.bodypartstructure {
                sep(&mut out);
                out.extend_from_slice(b"(BODYPARTSTRUCTURE ");
                // beside BINARY, a part is described as BINARY gives it
                let decoded = binary
                    .as_deref()
                    .filter(|_| part.is_some_and(|p| !p.is_empty()));
                let mut structure = Vec::new();
                if part.is_some_and(|p| msg.part_structure(p, &mut structure, self.utf8, decoded)) {
                    out.extend_from_slice(&structure);
                } else {
                    out.extend_from_slice(b"NIL");
                }
                out.push(b')');
            }
            if item.binary {
                sep(&mut out);
                out.extend_from_slice(b"(BINARY ");
                data(&mut out, binary.map(|d| partial(d, u.partial)).as_deref());
                out.push(b')');
            } else if item.body || !item.bodypartstructure {
                sep(&mut out);
                out.extend_from_slice(b"(BODY ");
                data(&mut out, part_bytes(&msg, &raw, &u).as_deref());
                out.push(b')');
            }
        }
        out.extend_from_slice(b"\r\n");
        self.io.write(&out);
        self.announce_and_ok(tag, "URLFETCH completed")
    }

    /// The whole message a URLAUTH URL names, if it authorizes this
    /// session to read it now; None otherwise, whatever the reason.
    pub(super) fn authorized_message(&self, u: &ImapUrl) -> Option<facteur_store::Content> {
        let auth = u.urlauth.as_ref()?;
        if !auth.mechanism.as_deref()?.eq_ignore_ascii_case(INTERNAL) {
            return None;
        }
        let user = self.user.as_ref()?;
        let allowed = match &auth.access {
            UrlAccess::Anonymous | UrlAccess::AuthUser => true,
            UrlAccess::User(name) => name.eq_ignore_ascii_case(&user.address),
            UrlAccess::Submit(_) => false,
        };
        if !allowed
            || u.expire
                .is_some_and(|t| t <= facteur_util::date::now_unix())
        {
            return None;
        }
        let owner = url_owner(u)?;
        let store = if owner.eq_ignore_ascii_case(&user.address) {
            Arc::clone(&user.store)
        } else {
            self.owner_store(&owner).ok()?
        };
        let given = hex(auth.token.as_deref()?)?;
        blocking(|| {
            let read = |mb: &facteur_store::Mailbox| -> Option<facteur_store::Content> {
                if u.uidvalidity.is_some_and(|v| v != mb.uidvalidity()) {
                    return None;
                }
                let key = store
                    .urlauth_key(&u.mailbox, mb.uidvalidity(), false)
                    .ok()??;
                let mut mac = HmacSha256::new_from_slice(&key).ok()?;
                mac.update(auth.rump.as_bytes());
                mac.verify_slice(&given).ok()?;
                if !mb.messages().iter().any(|m| m.uid == u.uid) {
                    return None;
                }
                mb.read_message(u.uid).ok()
            };
            match self.selected_in(&store, &u.mailbox) {
                Some(mb) => read(mb),
                None => read(&store.select(&u.mailbox).ok()?),
            }
        })
    }

    /// RESETKEY (RFC 4467 §7.3): new keys for one mailbox of the user, or
    /// for all.
    pub(super) fn reset_key(
        &mut self,
        tag: &str,
        mailbox: Option<&str>,
        mechanisms: &[String],
    ) -> io::Result<Flow> {
        if let Some(m) = mechanisms
            .iter()
            .find(|m| !m.eq_ignore_ascii_case(INTERNAL))
        {
            self.no(
                tag,
                &format!("Unsupported URLAUTH mechanism {m:?} (only INTERNAL)"),
            );
            return Ok(Flow::Continue);
        }
        let Some(user) = &self.user else {
            return Ok(Flow::Continue);
        };
        let store = Arc::clone(&user.store);
        let name = match mailbox {
            Some(m) => match self.name_or_no(tag, m) {
                Some(n) => Some(n),
                None => return Ok(Flow::Continue),
            },
            None => None,
        };
        let result = blocking(|| match &name {
            Some(n) if !store.exists(n)? => Err(StoreError::NoSuchMailbox(n.clone())),
            _ => store.reset_urlauth_keys(name.as_deref()),
        });
        match result {
            Ok(()) => self.announce_and_ok(tag, "RESETKEY completed"),
            Err(StoreError::NoSuchMailbox(_)) => {
                self.no(tag, "[NONEXISTENT] No such mailbox");
                Ok(Flow::Continue)
            }
            Err(e) => {
                self.no(tag, &internal(e));
                Ok(Flow::Continue)
            }
        }
    }
}

/// A store failure: logged, and answered without its details.
fn internal(e: StoreError) -> String {
    tracing::warn!(error = %e, "URLAUTH: store error");
    "[SERVERBUG] Internal error, try again later".to_string()
}

/// Fetched octets: always a literal (as FETCH sends bodies), `~{n}`
/// (literal8, RFC 3516) when they hold a NUL; NIL for none.
fn data(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => out.extend_from_slice(b"NIL"),
        Some(b) => {
            if b.contains(&0) {
                out.push(b'~');
            }
            encode::literal(out, b);
        }
    }
}

/// The address of the user a URL names: `user@host` read as a local part
/// and its domain, or a whole address in the user part.
fn url_owner(u: &ImapUrl) -> Option<String> {
    let user = u.user.as_deref()?;
    if user.contains('@') {
        Some(user.to_string())
    } else {
        Some(format!("{user}@{}", u.host.as_deref()?))
    }
}

/// The token of a rump: HMAC-SHA256 with the mailbox's key, in hex.
fn token(key: &[u8; 32], rump: &str) -> String {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(rump.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Hex digits (either case) as bytes; None when odd or not hex.
fn hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.as_bytes()
        .chunks(2)
        .map(|p| {
            let d = |b: u8| char::from(b).to_digit(16);
            u8::try_from(d(p[0])? * 16 + d(p[1])?).ok()
        })
        .collect()
}

/// What a URL names in a message: the whole, or its section; then its
/// PARTIAL range.
pub(super) fn part_bytes(msg: &Message<'_>, raw: &[u8], u: &ImapUrl) -> Option<Vec<u8>> {
    let bytes = match &u.section {
        None => raw.to_vec(),
        Some(s) => msg.section(s)?,
    };
    Some(partial(bytes, u.partial))
}

/// `PARTIAL=offset[.length]` of some octets (RFC 5092 §5).
fn partial(bytes: Vec<u8>, range: Option<(u64, Option<u64>)>) -> Vec<u8> {
    let Some((offset, len)) = range else {
        return bytes;
    };
    let start = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(bytes.len());
    let end = match len {
        Some(l) => start.saturating_add(usize::try_from(l).unwrap_or(usize::MAX)),
        None => bytes.len(),
    }
    .min(bytes.len());
    bytes[start..end].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_tokens_and_ranges() {
        let u = parse_imap_url("imap://ann@example.test/INBOX/;uid=1;urlauth=anonymous").unwrap();
        assert_eq!(url_owner(&u).as_deref(), Some("ann@example.test"));
        let u = parse_imap_url(
            "imap://ann%40example.test@mail.example.test/INBOX/;uid=1;urlauth=anonymous",
        )
        .unwrap();
        assert_eq!(url_owner(&u).as_deref(), Some("ann@example.test"));
        let t = token(&[7; 32], "imap://a@b/INBOX/;uid=1;urlauth=anonymous");
        assert_eq!(t.len(), 64);
        assert_eq!(hex(&t.to_uppercase()).unwrap(), hex(&t).unwrap());
        assert_ne!(
            t,
            token(&[8; 32], "imap://a@b/INBOX/;uid=1;urlauth=anonymous")
        );
        assert_eq!(hex("abc"), None);
        assert_eq!(hex("zz"), None);
        assert_eq!(partial(b"hello".to_vec(), Some((1, Some(3)))), b"ell");
        assert_eq!(partial(b"hello".to_vec(), Some((9, None))), b"");
        assert_eq!(partial(b"hello".to_vec(), None), b"hello");
    }
}
