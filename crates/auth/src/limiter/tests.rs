//! The limiter's promises, one test each: the slot bound, round-robin
//! between clients, the per-client cap, the total cap with its push-out,
//! and abandoned work. Tasks run on one thread, so the order in which they
//! record their turn is the order permits were granted.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use super::*;
use std::sync::Mutex as StdMutex;
use tokio::task::JoinHandle;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn limiter(slots: usize, per_client: usize, total: usize) -> Arc<Limiter> {
    Limiter::new(Sizes {
        slots,
        per_client,
        total,
    })
}

/// Lets spawned tasks run until `cond` holds.
async fn until(cond: impl Fn() -> bool) {
    for _ in 0..1000 {
        if cond() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("condition never held");
}

type Log = Arc<StdMutex<Vec<String>>>;

/// A task that waits for a permit of `addr`, writes `name` (or `name:busy`)
/// into `log` and gives the permit back at once.
fn worker(l: &Arc<Limiter>, log: &Log, addr: &str, name: &str) -> JoinHandle<()> {
    let (l, log, addr, name) = (Arc::clone(l), Arc::clone(log), ip(addr), name.to_owned());
    tokio::spawn(async move {
        let r = l.acquire(addr).await;
        let entry = if r.is_ok() {
            name
        } else {
            format!("{name}:busy")
        };
        log.lock().unwrap().push(entry);
    })
}

/// Queues workers one by one (each in the queue before the next starts).
async fn queue(l: &Arc<Limiter>, log: &Log, who: &[(&str, &str)]) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::new();
    for (addr, name) in who {
        let before = l.waiting();
        tasks.push(worker(l, log, addr, name));
        until(|| l.waiting() == before + 1).await;
    }
    tasks
}

async fn join(tasks: Vec<JoinHandle<()>>) {
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test]
async fn at_most_slots_permits() {
    let l = limiter(2, 8, 64);
    let a = l.acquire(ip("192.0.2.1")).await.unwrap();
    let _b = l.acquire(ip("192.0.2.1")).await.unwrap();
    assert_eq!(l.free(), 0);
    let log = Log::default();
    let t = queue(&l, &log, &[("192.0.2.2", "c")]).await;
    assert!(log.lock().unwrap().is_empty(), "no third permit");
    drop(a);
    join(t).await;
    assert_eq!(*log.lock().unwrap(), ["c"]);
    assert_eq!(l.free(), 1);
}

#[tokio::test]
async fn clients_are_served_in_turn() {
    let l = limiter(1, 8, 64);
    let held = l.acquire(ip("192.0.2.1")).await.unwrap();
    let log = Log::default();
    // One client queues five, then two others one each; then the first
    // client one more.
    let a = "192.0.2.1";
    let mut t = queue(
        &l,
        &log,
        &[(a, "a1"), (a, "a2"), (a, "a3"), (a, "a4"), (a, "a5")],
    )
    .await;
    t.extend(
        queue(
            &l,
            &log,
            &[("192.0.2.2", "b1"), ("198.51.100.7", "c1"), (a, "a6")],
        )
        .await,
    );
    drop(held);
    join(t).await;
    assert_eq!(
        *log.lock().unwrap(),
        ["a1", "b1", "c1", "a2", "a3", "a4", "a5", "a6"]
    );
}

#[tokio::test]
async fn an_ipv6_64_is_one_client() {
    let l = limiter(1, 2, 64);
    let held = l.acquire(ip("192.0.2.1")).await.unwrap();
    let log = Log::default();
    // Two addresses of one /64 share its queue of two...
    let t = queue(
        &l,
        &log,
        &[("2001:db8:1:2::1", "x1"), ("2001:db8:1:2::ffff", "x2")],
    )
    .await;
    assert_eq!(l.acquire(ip("2001:db8:1:2::3")).await.unwrap_err(), Busy);
    // ... and another /64 has its own.
    let t2 = queue(&l, &log, &[("2001:db8:1:3::1", "y1")]).await;
    drop(held);
    join(t).await;
    join(t2).await;
    assert_eq!(*log.lock().unwrap(), ["x1", "y1", "x2"]);
}

#[tokio::test]
async fn a_client_cannot_queue_more_than_its_share() {
    let l = limiter(1, 3, 64);
    let held = l.acquire(ip("192.0.2.1")).await.unwrap();
    let log = Log::default();
    let a = "192.0.2.1";
    let t = queue(&l, &log, &[(a, "a1"), (a, "a2"), (a, "a3")]).await;
    // The fourth is refused at once, without waiting.
    assert_eq!(l.acquire(ip(a)).await.unwrap_err(), Busy);
    assert_eq!(l.waiting(), 3);
    // Another client still gets in line.
    let t2 = queue(&l, &log, &[("192.0.2.9", "b1")]).await;
    drop(held);
    join(t).await;
    join(t2).await;
    assert_eq!(*log.lock().unwrap(), ["a1", "b1", "a2", "a3"]);
}

#[tokio::test]
async fn the_total_is_shared_out_fairly() {
    let l = limiter(1, 4, 4);
    let held = l.acquire(ip("192.0.2.1")).await.unwrap();
    let log = Log::default();
    let a = "192.0.2.1";
    let mut t = queue(&l, &log, &[(a, "a1"), (a, "a2"), (a, "a3"), (a, "a4")]).await;
    assert_eq!(l.waiting(), 4);
    // Full: each newcomer takes the place of the newest of the longest
    // queue, while that one is longer than the newcomer's by two.
    for (addr, name) in [
        ("192.0.2.2", "b1"),
        ("192.0.2.3", "c1"),
        ("192.0.2.4", "d1"),
    ] {
        let before = log.lock().unwrap().len();
        t.push(worker(&l, &log, addr, name));
        until(|| log.lock().unwrap().len() == before + 1).await;
        assert_eq!(l.waiting(), 4);
    }
    assert_eq!(*log.lock().unwrap(), ["a4:busy", "a3:busy", "a2:busy"]);
    // Now every queue holds one: a newcomer is refused.
    assert_eq!(l.acquire(ip("192.0.2.5")).await.unwrap_err(), Busy);
    // So is the first client, above its share of the total.
    assert_eq!(l.acquire(ip(a)).await.unwrap_err(), Busy);
    drop(held);
    join(t).await;
    assert_eq!(
        log.lock().unwrap()[3..],
        ["a1", "b1", "c1", "d1"].map(String::from)
    );
    assert_eq!((l.free(), l.waiting()), (1, 0));
}

#[tokio::test]
async fn abandoned_work_leaves_the_queue_and_gives_back_its_permit() {
    let l = limiter(1, 4, 64);
    let held = l.acquire(ip("192.0.2.1")).await.unwrap();
    let log = Log::default();
    // Abandoned while waiting: out of the queue at once.
    let t = queue(&l, &log, &[("192.0.2.2", "gone")]).await;
    for t in t {
        t.abort();
        assert!(t.await.unwrap_err().is_cancelled());
    }
    assert_eq!(l.waiting(), 0);
    // Abandoned after its permit was granted, before it ran: the permit
    // comes back.
    let t = queue(&l, &log, &[("192.0.2.3", "late")]).await;
    drop(held);
    assert_eq!((l.free(), l.waiting()), (0, 0), "granted to the waiter");
    for t in t {
        t.abort();
        let _ = t.await;
    }
    assert_eq!(l.free(), 1);
    assert!(log.lock().unwrap().is_empty());
    let _p = l.acquire(ip("192.0.2.4")).await.unwrap();
}
