//! Connections kept open between messages, so the next delivery to the
//! same place skips the connect, greeting, EHLO/LHLO (and TLS and AUTH).
//!
//! A [`Pool`] holds idle connections per key (the LMTP target, or an SMTP
//! destination), at most `max_per_key` of each, each for at most `idle`:
//! when that time is up the connection is closed with QUIT, whether or not
//! anyone asked for it since (a server must not be left holding a
//! connection until its own time-out). [`Pool::take`] gives the most
//! recently returned one, unchecked: the caller sends RSET
//! ([`Connection::rset`]) before using it, and takes another (or connects)
//! when that fails.
//!
//! In-memory only: losing the pool (a restart) loses nothing but speed.

use crate::connection::Connection;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};

struct Idle<S> {
    token: u64,
    conn: Connection<S>,
}

type Slots<S> = Arc<Mutex<HashMap<String, Vec<Idle<S>>>>>;

/// Idle connections per key.
pub struct Pool<S> {
    slots: Slots<S>,
    max_per_key: usize,
    idle: Duration,
    tokens: AtomicU64,
}

impl<S> std::fmt::Debug for Pool<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("max_per_key", &self.max_per_key)
            .field("idle", &self.idle)
            .finish_non_exhaustive()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Pool<S> {
    /// A pool keeping at most `max_per_key` connections per key, each for
    /// at most `idle` (zero: none is kept).
    pub fn new(max_per_key: usize, idle: Duration) -> Pool<S> {
        Pool {
            slots: Arc::new(Mutex::new(HashMap::new())),
            max_per_key,
            idle,
            tokens: AtomicU64::new(0),
        }
    }

    /// The most recently returned connection for `key`, if one waits.
    pub fn take(&self, key: &str) -> Option<Connection<S>> {
        take_where(&self.slots, key, |_| true)
    }

    /// Keeps `conn` for `key` after a clean transaction; closes it (QUIT,
    /// in the background) when the pool keeps none or is full for `key`.
    /// Must run inside a tokio runtime.
    pub fn put(&self, key: &str, conn: Connection<S>) {
        let token = self.tokens.fetch_add(1, Ordering::Relaxed);
        let refused = {
            let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
            let v = slots.entry(key.to_string()).or_default();
            if self.idle.is_zero() || v.len() >= self.max_per_key {
                Some(conn)
            } else {
                v.push(Idle { token, conn });
                None
            }
        };
        if let Some(c) = refused {
            tokio::spawn(c.quit());
            return;
        }
        let slots = Arc::clone(&self.slots);
        let key = key.to_string();
        let idle = self.idle;
        tokio::spawn(async move {
            tokio::time::sleep(idle).await;
            if let Some(c) = take_where(&slots, &key, |i| i.token == token) {
                c.quit().await;
            }
        });
    }
}

/// Removes and returns the last idle connection of `key` that `which`
/// picks.
fn take_where<S>(
    slots: &Slots<S>,
    key: &str,
    which: impl Fn(&Idle<S>) -> bool,
) -> Option<Connection<S>> {
    let mut slots = slots.lock().unwrap_or_else(PoisonError::into_inner);
    let v = slots.get_mut(key)?;
    let i = v.iter().rposition(which)?;
    let conn = v.remove(i).conn;
    if v.is_empty() {
        slots.remove(key);
    }
    Some(conn)
}
