//! IDLE (RFC 2177, RFC 9051 §6.3.13): the client waits, the server pushes
//! EXISTS / EXPUNGE / FETCH as soon as the mailbox changes, until `DONE`.
//!
//! Wake-ups come from the notifier (this process's sessions, and inotify
//! for lmtpd, pop3d and other processes): no polling loop, but one sync
//! when the store wants its recent unscanned changes verified. As a safety net
//! for a lost notification (inotify watch limit reached), the view is also
//! re-synced every two minutes, when a `* OK Still here` keeps NAT mappings
//! alive. The session ends after the configured idle timeout as any other
//! idle session does. While waiting, the session keeps no directory of the
//! mailbox open (one descriptor per IDLE connection, its socket).

use super::{Flow, Session};
use facteur_daemon::lineio::Input;
use std::io;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};

/// How often an idling client hears from us without changes.
const KEEPALIVE: Duration = Duration::from_secs(120);

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    pub(super) async fn idle(&mut self, tag: &str) -> io::Result<Flow> {
        let mut sub = self
            .sel
            .as_ref()
            .map(|s| self.ctx.notifier.subscribe(s.mb.dir()));
        // Changes that happened before IDLE are reported at once.
        if self.announce() == Flow::Close {
            return Ok(Flow::Close);
        }
        self.io.write(b"+ idling\r\n");
        let started = Instant::now();
        let limit = self.cfg.timeout.duration();
        loop {
            // While it waits, the session holds its socket and no mailbox
            // directory: the next sync opens them again (the store's
            // `Mailbox::park`).
            if let Some(s) = self.sel.as_mut() {
                s.mb.park();
            }
            // Flushed here, so the select below only ever reads: a read is
            // cancel-safe, a half-written flush would not be.
            self.io.flush().await?;
            let changed = async {
                match &mut sub {
                    Some(s) => s.changed().await,
                    None => std::future::pending().await,
                }
            };
            // The store trusted recent changes without a scan: sync when
            // it wants them verified (store's sync.rs, invariant 5). One
            // timer for that and the keep-alive (each timer is in every
            // idling session's task).
            let verify = self.sel.as_ref().and_then(|s| s.mb.verification_in());
            let (now, clock) = (tokio::time::Instant::now(), Instant::now());
            let keepalive = now + KEEPALIVE;
            // When to wake, and when the verification is due (a sync that
            // began after that is one).
            let (wake, due) = match verify {
                // Zero: the sync just done could not verify (an error);
                // try again later rather than at once.
                Some(d) if d.is_zero() => (now + KEEPALIVE / 8, clock + KEEPALIVE / 8),
                Some(d) => (now + d + Duration::from_millis(20), clock + d),
                None => (keepalive, clock + KEEPALIVE),
            };
            let wake = wake.min(keepalive);
            // Woken by a change of the selected mailbox or by a due
            // verification (not by NOTIFY's events, nor to say we are
            // still here): the sync may be shared (`Subscription::sync`).
            let mut woken = None;
            let input = tokio::select! {
                i = self.io.next_line(true) => Some(i?),
                _ = changed => {
                    woken = Some(None);
                    None
                }
                _ = super::events::notify_wait(&mut self.notify) => None,
                _ = tokio::time::sleep_until(wake) => {
                    if wake >= keepalive {
                        self.io.write(b"* OK Still here\r\n");
                    } else {
                        woken = Some(Some(due));
                    }
                    None
                }
            };
            match input {
                None => {
                    let by = sub.as_ref().zip(woken);
                    if self.announce_woken(by) == Flow::Close {
                        return Ok(Flow::Close);
                    }
                    if started.elapsed() > limit {
                        self.io.write(b"* BYE Autologout: idle for too long\r\n");
                        return Ok(Flow::Close);
                    }
                }
                Some(Input::Line(l)) => {
                    let text = String::from_utf8_lossy(&l);
                    if text.trim_end().eq_ignore_ascii_case("DONE") {
                        drop(sub);
                        return self.announce_and_ok(tag, "IDLE terminated");
                    }
                    self.bad(Some(tag), "Expected DONE");
                    return Ok(Flow::Continue);
                }
                Some(Input::TooLong) => {
                    self.bad(Some(tag), "Expected DONE");
                    return Ok(Flow::Continue);
                }
                Some(Input::Stop) => {
                    self.io
                        .write(b"* BYE [UNAVAILABLE] Server shutting down\r\n");
                    return Ok(Flow::Close);
                }
                Some(Input::Eof) => return Ok(Flow::Close),
                Some(Input::Timeout) => {
                    self.io.write(b"* BYE Autologout: idle for too long\r\n");
                    return Ok(Flow::Close);
                }
            }
        }
    }
}
