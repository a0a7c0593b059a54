//! Tests of `Mailbox::sync_like`: a handle taking another handle's sync.

use super::tests::{deliver, setup, uids};
use super::*;
use crate::Flags;

#[test]
fn a_handle_takes_what_another_handles_sync_found_without_reading_the_disk() {
    let (_d, s, us) = setup();
    deliver(&s, "Subject: 1\n\none\n");
    let mut a = us.select("INBOX").unwrap();
    let mut b = us.select("INBOX").unwrap();
    b.park();
    // Nothing new: the same state, nothing to tell.
    let same = b.sync_like(a.synced()).unwrap();
    assert!(same.added.is_empty() && same.expunged.is_empty());

    deliver(&s, "Subject: 2\n\ntwo\n");
    let found = a.sync().unwrap();
    assert_eq!(found.added, vec![2]);
    // A third message that `a`'s sync did not see: `b` takes that sync's
    // state, not the disk's (the caller vouches the sync was recent enough).
    deliver(&s, "Subject: 3\n\nthree\n");
    let taken = b.sync_like(a.synced()).unwrap();
    assert_eq!(taken.added, vec![2]);
    assert_eq!(uids(&b), vec![1, 2]);
    assert_eq!(
        (b.uidnext(), b.highest_modseq()),
        (a.uidnext(), a.highest_modseq())
    );
    // Its own sync then finds the rest.
    assert_eq!(b.sync().unwrap().added, vec![3]);

    // An older state than the handle's own is refused.
    assert!(b.sync_like(a.synced()).is_none());
    // So is a state the view cache no longer holds, or another row.
    let mut c = us.select("INBOX").unwrap();
    let gone = Synced((c.id, c.uidvalidity, c.uidnext + 5, c.highest_modseq + 5));
    assert!(c.sync_like(gone).is_none());
    let other = Synced((c.id + 1, c.uidvalidity, c.uidnext, c.highest_modseq));
    assert!(c.sync_like(other).is_none());

    // A handle's own APPEND is told at its first sync, shared or not.
    let mut e = us.select("INBOX").unwrap();
    let before = e.synced();
    e.append(
        &mut &b"Subject: 4\r\n\r\nfour\r\n"[..],
        &Flags::default(),
        None,
    )
    .unwrap();
    let own = e.sync_like(before);
    // `before` is older than the handle's state after its APPEND.
    assert!(own.is_none());
    assert_eq!(e.sync().unwrap().added, vec![4]);
    let mut f = us.select("INBOX").unwrap();
    f.append(
        &mut &b"Subject: 5\r\n\r\nfive\r\n"[..],
        &Flags::default(),
        None,
    )
    .unwrap();
    // A shared sync that found the state the APPEND left.
    let told = f.sync_like(f.synced()).unwrap();
    assert_eq!(told.added, vec![5]);
}
