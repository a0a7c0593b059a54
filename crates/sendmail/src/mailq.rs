//! `sendmail -bp` / `mailq`: lists every queue directory: id, queue, size,
//! arrival, sender, and each recipient with its status and last reply.
//!
//! The listing itself is the spool's ([`facteur_spool::control::list_queue`]),
//! shared with `facteurctl queue list`, so both print the same and
//! facteurctl needs nothing of this crate. Needs read access to the queue
//! directories (root or the facteur user).

pub use facteur_spool::control::list_queue;
