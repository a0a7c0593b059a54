//! The policy, rule by rule, on tokio's paused clock: the address's
//! doubling wait and its fading, spacing and refusal of parallel attempts,
//! the network's grace, the victim who logs in from elsewhere, the
//! distributed attack, forgiveness, and bounded tables.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use super::*;
use tokio::time::advance;

const S: Duration = Duration::from_secs(1);

fn policy() -> Policy {
    Policy {
        base: S,
        max_delay: 30 * S,
        forget_after: 15 * 60 * S,
        trust_for: 24 * 3600 * S,
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn wait(a: Admission) -> Duration {
    match a {
        Admission::Wait(d) => d,
        Admission::Refused => panic!("refused"),
    }
}

/// One attempt that runs its course and fails: waits what it is told,
/// then is counted. Returns the wait.
async fn fails(p: &Penalty, from: &str, user: &str) -> Duration {
    let w = wait(p.admit(ip(from), user));
    advance(w).await;
    p.failed(ip(from), Some(user));
    w
}

/// An attempt that runs its course and succeeds. Returns the wait.
async fn succeeds(p: &Penalty, from: &str, user: &str) -> Duration {
    let w = wait(p.admit(ip(from), user));
    advance(w).await;
    p.succeeded(ip(from), user);
    w
}

#[tokio::test(start_paused = true)]
async fn an_address_waits_twice_as_long_after_each_failure_then_is_forgiven() {
    let p = Penalty::new(policy());
    let mut waits = Vec::new();
    for _ in 0..8 {
        waits.push(fails(&p, "192.0.2.1", "alice@x").await.as_secs());
    }
    assert_eq!(waits, [0, 1, 2, 4, 8, 16, 30, 30]);
    // For any user, from that address.
    assert_eq!(wait(p.admit(ip("192.0.2.1"), "bob@x")), 30 * S);
    // Not from another network, for any user.
    assert_eq!(wait(p.admit(ip("198.51.100.1"), "alice@x")), Duration::ZERO);
    // Faded 15 minutes after the last failure.
    advance(15 * 60 * S).await;
    assert_eq!(wait(p.admit(ip("192.0.2.1"), "alice@x")), Duration::ZERO);
    assert_eq!(fails(&p, "192.0.2.1", "alice@x").await, Duration::ZERO);
    assert_eq!(wait(p.admit(ip("192.0.2.1"), "alice@x")), S);
    // IPv4-mapped is the same address.
    assert_eq!(wait(p.admit(ip("::ffff:192.0.2.1"), "alice@x")), 2 * S);
}

#[tokio::test(start_paused = true)]
async fn parallel_attempts_are_spaced_and_the_excess_refused() {
    let p = Penalty::new(policy());
    for _ in 0..3 {
        fails(&p, "192.0.2.1", "alice@x").await;
    }
    // A wait of 4 s: ten attempts at the same moment start 4 s apart, as
    // long as none waits more than 30 s.
    let got: Vec<Admission> = (0..9).map(|_| p.admit(ip("192.0.2.1"), "a@x")).collect();
    let want: Vec<Admission> = (1..=7)
        .map(|i| Admission::Wait(4 * i * S))
        .chain([Admission::Refused; 2])
        .collect();
    assert_eq!(got, want);
    // Refusals count as failures of the address, not of a user.
    p.failed(ip("192.0.2.1"), None);
    assert_eq!(p.entries()[2], 1, "only alice has a user entry");
    // Once the booked starts have passed, the wait is the count's (4
    // failures: 8 s).
    advance(30 * S).await;
    assert_eq!(wait(p.admit(ip("192.0.2.1"), "a@x")), 8 * S);
}

#[tokio::test(start_paused = true)]
async fn a_network_waits_beyond_its_grace() {
    let p = Penalty::new(policy());
    // One failure each from NETWORK_GRACE addresses of one /24.
    for i in 0..NETWORK_GRACE {
        fails(&p, &format!("192.0.2.{}", i + 1), "x@x").await;
    }
    // A fresh address there is not slowed yet...
    assert_eq!(wait(p.admit(ip("192.0.2.200"), "y@x")), Duration::ZERO);
    // ... after one more failure it is, progressively.
    p.failed(ip("192.0.2.100"), Some("x@x"));
    assert_eq!(wait(p.admit(ip("192.0.2.200"), "y@x")), S);
    p.failed(ip("192.0.2.101"), Some("x@x"));
    advance(S).await;
    assert_eq!(wait(p.admit(ip("192.0.2.201"), "y@x")), 2 * S);
    // Another /24 is not.
    assert_eq!(wait(p.admit(ip("192.0.3.1"), "y@x")), Duration::ZERO);
    // IPv6: the /64 is the network.
    for i in 0..=NETWORK_GRACE {
        p.failed(ip(&format!("2001:db8:0:1::{:x}", i + 1)), Some("x@x"));
    }
    assert_eq!(wait(p.admit(ip("2001:db8:0:1::ffff"), "y@x")), S);
    assert_eq!(wait(p.admit(ip("2001:db8:0:2::1"), "y@x")), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn the_real_user_is_not_locked_out_from_elsewhere() {
    let p = Penalty::new(policy());
    // Alice logged in from her office before.
    succeeds(&p, "198.51.100.20", "alice@x").await;
    // An attacker guesses her password, from one address then from a
    // whole /24 (her office's: the same network).
    for _ in 0..20 {
        p.failed(ip("203.0.113.9"), Some("alice@x"));
    }
    for i in 0..50 {
        p.failed(ip(&format!("198.51.100.{}", 100 + i)), Some("alice@x"));
    }
    // A stranger in the attacked /24 waits for the network; the attacker's
    // next address there, at the same moment, would have to wait behind
    // that start: refused.
    assert_eq!(wait(p.admit(ip("198.51.100.21"), "bob@x")), 30 * S);
    assert_eq!(p.admit(ip("198.51.100.100"), "alice@x"), Admission::Refused);
    assert_eq!(wait(p.admit(ip("203.0.113.9"), "alice@x")), 30 * S);
    // Alice from anywhere else: no wait.
    assert_eq!(wait(p.admit(ip("192.0.2.55"), "alice@x")), Duration::ZERO);
    assert_eq!(wait(p.admit(ip("2001:db8::55"), "ALICE@x")), Duration::ZERO);
    // From her office, inside the attacked /24: trusted, no wait.
    assert_eq!(
        wait(p.admit(ip("198.51.100.20"), "alice@x")),
        Duration::ZERO
    );
}

#[tokio::test(start_paused = true)]
async fn a_distributed_attack_slows_strangers_not_the_user_at_home() {
    let p = Penalty::new(policy());
    succeeds(&p, "192.0.2.10", "alice@x").await;
    // One failure from each of USER_GRACE networks: nothing yet.
    for i in 0..USER_GRACE {
        p.failed(ip(&format!("203.0.{i}.1")), Some("alice@x"));
    }
    assert_eq!(wait(p.admit(ip("198.51.100.1"), "alice@x")), Duration::ZERO);
    // More networks: an untrusted address waits, and is spaced.
    p.failed(ip("203.0.100.1"), Some("alice@x"));
    p.failed(ip("203.0.101.1"), Some("alice@x"));
    assert_eq!(wait(p.admit(ip("198.51.100.1"), "alice@x")), 2 * S);
    assert_eq!(wait(p.admit(ip("198.51.100.2"), "alice@x")), 4 * S);
    // Alice at home does not; another user does not.
    assert_eq!(wait(p.admit(ip("192.0.2.10"), "alice@x")), Duration::ZERO);
    assert_eq!(wait(p.admit(ip("198.51.100.3"), "bob@x")), Duration::ZERO);
    // Many failures from one network count once.
    for _ in 0..100 {
        p.failed(ip("203.0.100.1"), Some("carol@x"));
    }
    advance(60 * S).await;
    assert_eq!(wait(p.admit(ip("198.51.100.4"), "carol@x")), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn success_forgives_the_users_own_failures_only() {
    let p = Penalty::new(policy());
    // Typos, then the right password: the next logins do not wait.
    for _ in 0..3 {
        fails(&p, "192.0.2.1", "alice@x").await;
    }
    assert_eq!(succeeds(&p, "192.0.2.1", "Alice@x").await, 4 * S);
    assert_eq!(wait(p.admit(ip("192.0.2.1"), "alice@x")), Duration::ZERO);
    assert_eq!(wait(p.admit(ip("192.0.2.1"), "bob@x")), Duration::ZERO);
    // Guesses at alice, then a login to the attacker's own account: the
    // guesses still count.
    for _ in 0..3 {
        fails(&p, "192.0.2.66", "alice@x").await;
    }
    succeeds(&p, "192.0.2.66", "mallory@x").await;
    assert_eq!(wait(p.admit(ip("192.0.2.66"), "alice@x")), 4 * S);
}

#[tokio::test(start_paused = true)]
async fn tables_stay_bounded() {
    let p = Penalty::with_capacity(policy(), 64);
    // Each from its own /24, for its own user, a moment after the other.
    let from = |i: u32| {
        let [_, _, b, c] = i.to_be_bytes();
        IpAddr::from([10, b, c, 1])
    };
    for i in 0..1000 {
        p.failed(from(i), Some(&format!("u{i}@x")));
        advance(Duration::from_millis(1)).await;
    }
    assert!(p.entries().iter().all(|&n| n <= 64), "{:?}", p.entries());
    // The oldest went first: the last address still waits, the first not.
    assert_eq!(wait(p.admit(from(999), "v@x")), S);
    assert_eq!(wait(p.admit(from(0), "v@x")), Duration::ZERO);
    for i in 0..1000 {
        p.succeeded(from(i), &format!("w{i}@x"));
    }
    assert!(p.entries()[3] <= 64, "{:?}", p.entries());
}
