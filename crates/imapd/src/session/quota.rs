//! QUOTA (RFC 9208): GETQUOTAROOT, GETQUOTA, and SETQUOTA for the quota
//! administrators `[imapd] quota_admins` names (QUOTASET).
//!
//! Every user has one quota root, `""` to themselves: their whole mail
//! (STORAGE in KiB, MESSAGE in messages). A quota administrator also
//! reaches every other user's root by its address (`GETQUOTA
//! "bob@example.org"`, `SETQUOTA "bob@example.org" (STORAGE 1048576)`);
//! SETQUOTA writes the directory, as `facteurctl user quota` does, and the
//! new limits apply at once to the user's open sessions and deliveries
//! (the store's handles share them). Resources SETQUOTA leaves out become
//! unlimited (RFC 9208 §4.2); others than STORAGE and MESSAGE are refused.

use super::{Flow, Session, blocking};
use facteur_store::{Quota, StoreError};
use std::io;
use tokio::io::{AsyncRead, AsyncWrite};

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    /// Whether the logged-in user is a quota administrator.
    pub(super) fn quota_admin(&self) -> bool {
        self.user.as_ref().is_some_and(|u| {
            self.cfg
                .quota_admins
                .iter()
                .any(|a| a.eq_ignore_ascii_case(&u.address))
        })
    }

    /// The user a quota root names: "" the logged-in user; an address, for
    /// an administrator, that user. None: no such root (for this user).
    fn quota_target(&self, root: &str) -> Option<String> {
        let user = self.user.as_ref()?;
        if root.is_empty() {
            return Some(user.address.clone());
        }
        let root = root.to_ascii_lowercase();
        (self.quota_admin() && root.contains('@')).then_some(root)
    }

    /// `* QUOTA root (...)`: the resources that have a limit, with their
    /// use (none: an empty list, RFC 9208 §7.1 — the root exists for
    /// every user, so a webmail shows "unlimited", not an empty bar).
    fn write_quota(&mut self, root: &str, address: &str) -> Result<bool, StoreError> {
        let Some(me) = &self.user else {
            return Ok(false);
        };
        let store = if address == me.address {
            std::sync::Arc::clone(&me.store)
        } else {
            match self.owner_store(address) {
                Ok(s) => s,
                // No such user: no such root.
                Err(StoreError::NoSuchMailbox(_)) => return Ok(false),
                Err(e) => return Err(e),
            }
        };
        let q = store.quota();
        let mut res = Vec::new();
        if q.bytes > 0 || q.messages > 0 {
            let (bytes, count) = blocking(|| store.quota_usage())?;
            if q.bytes > 0 {
                // STORAGE is in units of 1024 octets (RFC 9208 §5.1).
                res.push(format!(
                    "STORAGE {} {}",
                    bytes.div_ceil(1024),
                    q.bytes / 1024
                ));
            }
            if q.messages > 0 {
                res.push(format!("MESSAGE {count} {}", q.messages));
            }
        }
        let mut out = b"* QUOTA ".to_vec();
        facteur_imap_proto::encode::string(&mut out, root.as_bytes(), false);
        out.extend_from_slice(format!(" ({})\r\n", res.join(" ")).as_bytes());
        self.io.write(&out);
        Ok(true)
    }

    pub(super) fn get_quota(&mut self, tag: &str, root: &str) -> io::Result<Flow> {
        let Some(address) = self.quota_target(root) else {
            self.no(tag, "[NONEXISTENT] No such quota root");
            return Ok(Flow::Continue);
        };
        match self.write_quota(root, &address) {
            Ok(true) => self.announce_and_ok(tag, "GETQUOTA completed"),
            Ok(false) => {
                self.no(tag, "[NONEXISTENT] No such quota root");
                Ok(Flow::Continue)
            }
            Err(e) => {
                self.store_error(tag, &e);
                Ok(Flow::Continue)
            }
        }
    }

    pub(super) fn get_quota_root(&mut self, tag: &str, name: &str) -> io::Result<Flow> {
        let Some(address) = self.user.as_ref().map(|u| u.address.clone()) else {
            return Ok(Flow::Continue);
        };
        let mut out = b"* QUOTAROOT ".to_vec();
        self.mailbox_out(&mut out, name);
        // Another user's mailbox counts against their quota, which is no
        // root of this user's: no root is named (RFC 9208 §5.2 allows none).
        let own = self.mailbox_in(name).is_none_or(|n| {
            matches!(
                super::shared::place(&address, &n),
                super::shared::Place::Own(_)
            )
        });
        if !own {
            out.extend_from_slice(b"\r\n");
            self.io.write(&out);
            return self.announce_and_ok(tag, "GETQUOTAROOT completed");
        }
        out.extend_from_slice(b" \"\"\r\n");
        self.io.write(&out);
        if let Err(e) = self.write_quota("", &address) {
            self.store_error(tag, &e);
            return Ok(Flow::Continue);
        }
        self.announce_and_ok(tag, "GETQUOTAROOT completed")
    }

    /// SETQUOTA (administrators only).
    pub(super) fn set_quota(
        &mut self,
        tag: &str,
        root: &str,
        limits: &[(String, u64)],
    ) -> io::Result<Flow> {
        if !self.quota_admin() {
            self.no(tag, "[NOPERM] Quotas are set by the administrator");
            return Ok(Flow::Continue);
        }
        let Some(address) = self.quota_target(root) else {
            self.no(tag, "[NONEXISTENT] No such quota root");
            return Ok(Flow::Continue);
        };
        let mut q = Quota::default();
        for (name, n) in limits {
            if name.eq_ignore_ascii_case("STORAGE") {
                let Some(bytes) = n.checked_mul(1024) else {
                    self.no(tag, "[LIMIT] STORAGE limit too large");
                    return Ok(Flow::Continue);
                };
                q.bytes = bytes;
            } else if name.eq_ignore_ascii_case("MESSAGE") {
                q.messages = *n;
            } else {
                self.no(tag, &format!("Unsupported quota resource {name}"));
                return Ok(Flow::Continue);
            }
        }
        let dir = self.ctx.logins.directory();
        match blocking(|| dir.get_user(&address)) {
            Ok(Some(_)) => {}
            Ok(None) => {
                self.no(tag, "[NONEXISTENT] No such quota root");
                return Ok(Flow::Continue);
            }
            Err(e) => {
                tracing::warn!(error = %e, "directory lookup for SETQUOTA failed");
                self.no(tag, "[UNAVAILABLE] Directory unavailable");
                return Ok(Flow::Continue);
            }
        }
        if let Err(e) = blocking(|| dir.set_quota(&address, q.bytes, q.messages)) {
            tracing::warn!(error = %e, "SETQUOTA: cannot write the directory");
            self.no(tag, "[UNAVAILABLE] Directory unavailable");
            return Ok(Flow::Continue);
        }
        tracing::info!(user = %address, bytes = q.bytes, messages = q.messages, "quota set");
        // The user's handles (this process's) take the new limits now.
        if let Err(e) = blocking(|| self.ctx.user_store(&address, q)) {
            self.store_error(tag, &e);
            return Ok(Flow::Continue);
        }
        match self.write_quota(root, &address) {
            Ok(_) => self.announce_and_ok(tag, "SETQUOTA completed"),
            Err(e) => {
                self.store_error(tag, &e);
                Ok(Flow::Continue)
            }
        }
    }
}
