//! Lookups on an async thread: [`without_waiting`] runs them where they
//! are asked (no hand-off to a blocking thread) as long as none of them has
//! to wait, and says so when one would have.
//!
//! What would wait: the SQLite connection held by another thread, a lock
//! another process holds on the database (SQLite's busy time-out is not
//! used: a busy database fails at once), and the system domains' lookups
//! (their files and the system's user database, which may be remote). A
//! page of the database read from the disk is not counted: the file is
//! small and read at every message.

use std::cell::Cell;

thread_local! {
    static ON: Cell<bool> = const { Cell::new(false) };
    static WAITED: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` on this thread with every lookup in it refused rather than
/// waiting. `None` if one was refused: `f`'s result is then not to be
/// trusted, and the caller runs it again on a blocking thread.
pub fn without_waiting<T>(f: impl FnOnce() -> T) -> Option<T> {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            ON.set(self.0);
        }
    }
    let _reset = Reset(ON.replace(true));
    let waited = WAITED.replace(false);
    let out = f();
    let refused = WAITED.replace(waited);
    (!refused).then_some(out)
}

/// Whether lookups on this thread must not wait.
pub(crate) fn active() -> bool {
    ON.get()
}

/// Records that a lookup would have waited; the error it returns instead.
pub(crate) fn would_wait() -> crate::DirectoryError {
    WAITED.set(true);
    crate::DirectoryError::Backend("the lookup would wait".into())
}
