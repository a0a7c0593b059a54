//! Who submitted a message that a local user wrote: the rule of the
//! spool's header made code. `maildrop/` is writable by every local user
//! (the sendmail command runs as the user), so what a maildrop file claims
//! about its origin is not believed: the owner of the file says which
//! local user submitted it.
//!
//! [`apply_owner`] rewrites the origin records of such a file: the
//! `local_user` record becomes the owner's name (from the password
//! database, else the uid as a number), `protocol` becomes `sendmail` (the
//! only way into maildrop/), and `auth_user`, `client_addr`, `client_name`
//! and `helo` — records only smtpd may write, about an SMTP client — are
//! dropped. `queue.rs` applies it when it picks a file up from maildrop/,
//! after moving the file into incoming/ (mode 0700: from then on nobody but
//! us can swap it between the owner check and the read), and to any file
//! in incoming/ owned by another user than ours or root (a maildrop file
//! that reached it through `hold` + `release`, or a crash between the move
//! and the rewrite).
//!
//! Security: a forged `auth_user` or `local_user` must never reach a later
//! check that trusts it (sender ownership, signing): the corrected envelope
//! is written to the queue file before the message leaves incoming/.

use facteur_spool::Envelope;

/// The name of the local user with `uid`, from the password database, or
/// the number when there is none.
pub fn user_name(uid: u32) -> String {
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(u)) => u.name,
        _ => uid.to_string(),
    }
}

/// Whether a file outside maildrop/ owned by `owner` was written by a
/// local user: neither we (`own`, the spool's owner) nor root wrote it.
pub fn untrusted_owner(owner: u32, own: u32) -> bool {
    owner != own && owner != 0
}

/// Replaces the origin records of `env` by what its owner `user` says.
/// Returns whether anything changed.
pub fn apply_owner(env: &mut Envelope, user: String) -> bool {
    let before = (
        env.local_user.take(),
        env.protocol.take(),
        env.auth_user.take(),
        env.client_addr.take(),
        env.client_name.take(),
        env.helo.take(),
    );
    env.local_user = Some(user);
    env.protocol = Some("sendmail".into());
    before
        != (
            env.local_user.clone(),
            env.protocol.clone(),
            None,
            None,
            None,
            None,
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_overrides_the_claims() {
        let mut env = Envelope {
            local_user: Some("root".into()),
            protocol: Some("ESMTPSA".into()),
            auth_user: Some("admin@example.test".into()),
            client_addr: Some("192.0.2.1".into()),
            client_name: Some("trusted.example".into()),
            helo: Some("trusted.example".into()),
            ..Envelope::default()
        };
        assert!(apply_owner(&mut env, "mallory".into()));
        assert_eq!(env.local_user.as_deref(), Some("mallory"));
        assert_eq!(env.protocol.as_deref(), Some("sendmail"));
        assert_eq!(
            (env.auth_user, env.client_addr, env.client_name, env.helo),
            (None, None, None, None)
        );
        // What the sendmail command writes is already right: no rewrite.
        let mut env = Envelope {
            local_user: Some("alice".into()),
            protocol: Some("sendmail".into()),
            ..Envelope::default()
        };
        assert!(!apply_owner(&mut env, "alice".into()));
    }

    #[test]
    fn who_may_write_outside_maildrop() {
        assert!(!untrusted_owner(0, 110));
        assert!(!untrusted_owner(110, 110));
        assert!(untrusted_owner(1000, 110));
        // An unknown uid is named by its number.
        assert_eq!(user_name(4_000_000_000), "4000000000");
    }
}
