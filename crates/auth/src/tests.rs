//! Exchanges driven over a scripted channel, against a real directory
//! (SQLite in memory): every mechanism, right and wrong, and the rule that
//! every wrong credential ends the same way.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use super::*;
use facteur_directory::{Credentials, SqliteDirectory, password};
use facteur_sasl::client::ScramClient;
use facteur_sasl::encode;
use std::collections::VecDeque;

const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
const DELAY: Duration = Duration::from_millis(20);

/// How the scripted client answers one challenge.
type Answering = Box<dyn FnMut(&[u8]) -> Answer + Send>;

/// A client that answers each challenge with a function of it.
struct Script {
    answers: VecDeque<Answering>,
    challenges: Vec<Vec<u8>>,
}

impl Script {
    fn new() -> Self {
        Script {
            answers: VecDeque::new(),
            challenges: Vec::new(),
        }
    }
    fn then(mut self, f: impl FnMut(&[u8]) -> Answer + Send + 'static) -> Self {
        self.answers.push_back(Box::new(f));
        self
    }
    fn line(self, text: &str) -> Self {
        let t = text.to_owned();
        self.then(move |_| Answer::Line(t.clone().into_bytes()))
    }
}

impl Channel for Script {
    async fn challenge(&mut self, data: &[u8]) -> io::Result<Answer> {
        self.challenges.push(data.to_vec());
        Ok(match self.answers.pop_front() {
            Some(mut f) => f(data),
            None => Answer::Closed,
        })
    }
}

/// A directory with alice (a password with SCRAM keys).
fn directory_with_alice() -> SqliteDirectory {
    let dir = SqliteDirectory::open_in_memory().unwrap();
    dir.add_domain("example.test").unwrap();
    dir.add_user_with(
        "alice@example.test",
        &password::credentials("alice-pw").unwrap(),
        0,
        0,
    )
    .unwrap();
    dir
}

fn logins() -> Arc<Logins> {
    let dir = directory_with_alice();
    // A user whose password predates SCRAM keys.
    dir.add_user_with(
        "old@example.test",
        &Credentials::hash_only("{PLAIN}old-pw"),
        0,
        0,
    )
    .unwrap();
    let dir: Arc<dyn Directory> = Arc::new(dir);
    Logins::new(&dir, LoginCache::disabled(), Settings::with_base(DELAY)).unwrap()
}

/// A SCRAM client over the script: first, final, then the empty answer to
/// server-final (checked).
fn scram_script(user: &str, pw: &str) -> Script {
    let c = Arc::new(std::sync::Mutex::new(ScramClient::new(user, pw)));
    let (c1, c2, c3) = (c.clone(), c.clone(), c);
    Script::new()
        .then(move |ch| {
            assert!(ch.is_empty());
            Answer::Line(encode(&c1.lock().unwrap().first()).into_bytes())
        })
        .then(move |ch| Answer::Line(encode(&c2.lock().unwrap().respond(ch).unwrap()).into_bytes()))
        .then(move |ch| {
            c3.lock().unwrap().verify(ch).unwrap();
            Answer::Line(Vec::new())
        })
}

async fn run(l: &Arc<Logins>, m: Mechanism, ir: Option<&[u8]>, s: &mut Script) -> Outcome {
    l.sasl(IP, s, m, ir).await.unwrap()
}

fn success(o: Outcome) -> String {
    match o {
        Outcome::Success(u) => u.address,
        other => panic!("expected success, got {other:?}"),
    }
}

#[tokio::test]
async fn every_mechanism_logs_in() {
    let l = logins();
    let mut s = scram_script("Alice@example.test", "alice-pw");
    let user = success(run(&l, Mechanism::ScramSha256, None, &mut s).await);
    assert_eq!(user, "alice@example.test");
    assert_eq!(s.challenges.len(), 3);
    assert!(s.challenges[2].starts_with(b"v="));

    let mut s = Script::new();
    let ir = b"\0alice@example.test\0alice-pw";
    assert_eq!(
        success(run(&l, Mechanism::Plain, Some(ir), &mut s).await),
        "alice@example.test"
    );
    assert!(s.challenges.is_empty());

    let mut s = Script::new()
        .line(&encode(b"alice@example.test"))
        .line(&encode(b"alice-pw"));
    assert_eq!(
        success(run(&l, Mechanism::Login, None, &mut s).await),
        "alice@example.test"
    );
    assert_eq!(s.challenges, [b"Username:".to_vec(), b"Password:".to_vec()]);

    // The user from before SCRAM keys: PLAIN and the LOGIN command work.
    let mut s = Script::new().line(&encode(b"\0old@example.test\0old-pw"));
    assert_eq!(
        success(run(&l, Mechanism::Plain, None, &mut s).await),
        "old@example.test"
    );
    assert_eq!(
        success(l.password(IP, "old@example.test", "old-pw").await),
        "old@example.test"
    );
}

#[tokio::test]
async fn every_wrong_credential_fails_the_same_way() {
    let l = logins();
    let mut outcomes = Vec::new();
    let start = std::time::Instant::now();
    // Wrong password, unknown user, and the user without SCRAM keys, with
    // SCRAM: the exchange runs to its end, then fails.
    for (user, pw) in [
        ("alice@example.test", "wrong"),
        ("nobody@example.test", "alice-pw"),
        ("old@example.test", "old-pw"),
        ("not an address", "x"),
    ] {
        let c = Arc::new(std::sync::Mutex::new(ScramClient::new(user, pw)));
        let (c1, c2) = (c.clone(), c);
        let mut s = Script::new()
            .then(move |_| Answer::Line(encode(&c1.lock().unwrap().first()).into_bytes()))
            .then(move |ch| {
                Answer::Line(encode(&c2.lock().unwrap().respond(ch).unwrap()).into_bytes())
            });
        outcomes.push(run(&l, Mechanism::ScramSha256, None, &mut s).await);
        assert_eq!(s.challenges.len(), 2, "{user}");
    }
    let mut s = Script::new();
    outcomes.push(
        run(
            &l,
            Mechanism::Plain,
            Some(b"\0alice@example.test\0wrong"),
            &mut s,
        )
        .await,
    );
    outcomes.push(l.password(IP, "alice@example.test", "wrong").await);
    for o in outcomes {
        assert!(matches!(o, Outcome::Failed), "{o:?}");
    }
    // Each paid at least the base pause (and later ones more: counted).
    assert!(start.elapsed() >= DELAY * 6);
    match l.penalty.admit(IP, "alice@example.test") {
        Admission::Wait(d) => assert!(d > DELAY, "{d:?}"),
        Admission::Refused => {}
    }
}

#[tokio::test]
async fn salts_do_not_tell_unknown_users_apart() {
    let l = logins();
    let server_first = |user: &'static str| {
        let l = l.clone();
        async move {
            let c = ScramClient::new(user, "x");
            let mut s = Script::new()
                .line(&encode(&c.first()))
                .then(|_| Answer::Closed);
            assert!(matches!(
                run(&l, Mechanism::ScramSha256, None, &mut s).await,
                Outcome::Closed
            ));
            let first = String::from_utf8(s.challenges[1].clone()).unwrap();
            first.split_once(",s=").unwrap().1.to_owned()
        }
    };
    // Stable per name, like a real user's.
    assert_eq!(
        server_first("nobody@example.test").await,
        server_first("nobody@example.test").await
    );
    assert_eq!(
        server_first("old@example.test").await,
        server_first("old@example.test").await
    );
    assert_ne!(
        server_first("nobody@example.test").await,
        server_first("other@example.test").await
    );
    assert!(
        server_first("nobody@example.test")
            .await
            .ends_with(",i=10000")
    );
    assert!(
        server_first("alice@example.test")
            .await
            .ends_with(",i=10000")
    );
}

#[tokio::test]
async fn protocol_errors_are_refusals() {
    let l = logins();
    let refused = |o: Outcome| match o {
        Outcome::Refused(f) => f,
        other => panic!("expected a refusal, got {other:?}"),
    };
    let cases: Vec<(Mechanism, Script, Failure)> = vec![
        (
            Mechanism::Plain,
            Script::new().line("*"),
            Failure::Cancelled,
        ),
        (Mechanism::Plain, Script::new().line("!!"), Failure::Base64),
        (
            Mechanism::Plain,
            Script::new().then(|_| Answer::TooLong),
            Failure::TooLong,
        ),
        (
            Mechanism::Plain,
            Script::new().line(&encode(b"bob@example.test\0alice@example.test\0alice-pw")),
            Failure::AuthzidMismatch,
        ),
        (
            Mechanism::ScramSha256,
            Script::new().line(&encode(b"p=tls-unique,,n=alice@example.test,r=x")),
            Failure::ChannelBinding,
        ),
        (
            Mechanism::Login,
            Script::new().line("*"),
            Failure::Cancelled,
        ),
    ];
    for (m, mut s, want) in cases {
        assert_eq!(refused(run(&l, m, None, &mut s).await), want);
    }
    // A cancel instead of the empty answer to server-final.
    let c = Arc::new(std::sync::Mutex::new(ScramClient::new(
        "alice@example.test",
        "alice-pw",
    )));
    let (c1, c2) = (c.clone(), c);
    let mut s = Script::new()
        .then(move |_| Answer::Line(encode(&c1.lock().unwrap().first()).into_bytes()))
        .then(move |ch| Answer::Line(encode(&c2.lock().unwrap().respond(ch).unwrap()).into_bytes()))
        .line("*");
    assert_eq!(
        refused(run(&l, Mechanism::ScramSha256, None, &mut s).await),
        Failure::Cancelled
    );
    // None of that was a failed login.
    assert_eq!(
        l.penalty.admit(IP, "alice@example.test"),
        Admission::Wait(Duration::ZERO)
    );
    // The client hanging up.
    let mut s = Script::new();
    assert!(matches!(
        run(&l, Mechanism::Login, None, &mut s).await,
        Outcome::Closed
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_beyond_the_hash_queue_is_told_to_retry_not_locked_out() {
    // One slot, one waiting per client: 12 logins at once from one
    // address (an office behind NAT after a restart) leave most without
    // room. They get a temporary failure, and the address is not
    // penalised: the next login goes straight through.
    let dir: Arc<dyn Directory> = Arc::new(directory_with_alice());
    let mut settings = Settings::with_base(DELAY);
    settings.sizes = Sizes {
        slots: 1,
        per_client: 1,
        total: 4,
    };
    let l = Logins::new(&dir, LoginCache::disabled(), settings).unwrap();
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let l = Arc::clone(&l);
            tokio::spawn(async move { l.password(IP, "alice@example.test", "alice-pw").await })
        })
        .collect();
    let (mut ok, mut later) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Outcome::Success(_) => ok += 1,
            Outcome::Unavailable => later += 1,
            other => panic!("{other:?}"),
        }
    }
    assert!(
        ok >= 1 && later >= 1,
        "{ok} logged in, {later} told to retry"
    );
    assert_eq!(
        l.penalty().admit(IP, "alice@example.test"),
        penalty::Admission::Wait(Duration::ZERO)
    );
    assert!(matches!(
        l.password(IP, "alice@example.test", "alice-pw").await,
        Outcome::Success(_)
    ));
}
