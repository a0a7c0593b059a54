use super::*;

fn store() -> (tempfile::TempDir, ListStore) {
    let d = tempfile::tempdir().unwrap();
    let s = ListStore::open(&d.path().join("directory.sqlite")).unwrap();
    (d, s)
}

#[test]
fn lists_members_and_roles() {
    let (_d, s) = store();
    let l = s.create("Team@Example.org", "boss@example.org").unwrap();
    assert_eq!(l.address, "team@example.org");
    assert_eq!(l.post, Post::Members);
    assert!(matches!(
        s.create("team@example.org", ""),
        Err(ListError::Exists(_))
    ));
    assert_eq!(
        s.add(
            "team@example.org",
            &["a@x.test".into(), "B@Y.test".into(), "a@x.test".into()]
        )
        .unwrap(),
        2
    );
    let m: Vec<String> = s
        .members("team@example.org")
        .unwrap()
        .into_iter()
        .map(|m| m.address)
        .collect();
    assert_eq!(m, ["a@x.test", "b@y.test"]);
    for (a, role) in [
        ("team@example.org", Role::Post),
        ("TEAM-bounces@example.org", Role::Bounces),
        ("team-owner@example.org", Role::Owner),
        ("team-request@example.org", Role::Request),
    ] {
        assert_eq!(s.role(a).unwrap().map(|(_, r)| r), Some(role), "{a}");
    }
    assert!(s.role("other@example.org").unwrap().is_none());
    assert!(s.role("-bounces@example.org").unwrap().is_none());
    assert_eq!(
        s.remove("team@example.org", &["a@x.test".into()]).unwrap(),
        1
    );
    let mut l = s.get("team@example.org").unwrap().unwrap();
    l.post = Post::Moderated;
    l.subject_tag = "team".into();
    s.update(&l).unwrap();
    assert_eq!(s.get("team@example.org").unwrap().unwrap(), l);
    s.delete("team@example.org").unwrap();
    assert!(s.all().unwrap().is_empty());
}

#[test]
fn bounces_disable_at_the_limit_and_adding_again_enables() {
    let (_d, s) = store();
    s.create("team@example.org", "").unwrap();
    s.add("team@example.org", &["a@x.test".into()]).unwrap();
    for n in 1..5 {
        assert_eq!(
            s.bounced("team@example.org", "A@x.test").unwrap(),
            Some((n, false))
        );
    }
    assert_eq!(
        s.bounced("team@example.org", "a@x.test").unwrap(),
        Some((5, true))
    );
    assert_eq!(
        s.bounced("team@example.org", "a@x.test").unwrap(),
        Some((6, false))
    );
    assert!(s.members("team@example.org").unwrap()[0].disabled);
    assert_eq!(
        s.bounced("team@example.org", "stranger@x.test").unwrap(),
        None
    );
    s.add("team@example.org", &["a@x.test".into()]).unwrap();
    let m = &s.members("team@example.org").unwrap()[0];
    assert!(!m.disabled && m.bounces == 0);
}

/// A members-only list of example.org, for the tests.
fn team_list() -> List {
    List {
        address: "team@example.org".into(),
        owner: "boss@example.org".into(),
        post: Post::Members,
        reply_to_list: false,
        subject_tag: String::new(),
        bounce_limit: 5,
        munge_from: true,
    }
}

#[test]
fn the_posting_policy() {
    let list = team_list();
    let members = vec![
        Member {
            address: "a@x.test".into(),
            bounces: 0,
            disabled: false,
        },
        Member {
            address: "b@y.test".into(),
            bounces: 5,
            disabled: true,
        },
    ];
    let to = Decision::Distribute(vec!["a@x.test".into()]);
    assert_eq!(decide(&list, &members, "A@x.test", "", false), to);
    // A disabled member still posts; the From: address counts too.
    assert_eq!(decide(&list, &members, "b@y.test", "", false), to);
    assert_eq!(
        decide(&list, &members, "bounce+x@lists.test", "a@x.test", false),
        to
    );
    assert_eq!(decide(&list, &members, "boss@example.org", "", false), to);
    assert!(matches!(
        decide(&list, &members, "c@z.test", "c@z.test", false),
        Decision::Hold(_)
    ));
    assert!(matches!(
        decide(&list, &members, "a@x.test", "", true),
        Decision::Drop(_)
    ));
    assert!(matches!(
        decide(&list, &members, "", "", false),
        Decision::Drop(_)
    ));
    let open = List {
        post: Post::Anyone,
        ..list.clone()
    };
    assert_eq!(decide(&open, &members, "c@z.test", "", false), to);
    let moderated = List {
        post: Post::Moderated,
        ..list
    };
    assert!(matches!(
        decide(&moderated, &members, "a@x.test", "", false),
        Decision::Hold(_)
    ));
}

#[test]
fn held_posts() {
    let (_d, s) = store();
    s.create("team@example.org", "").unwrap();
    let msg = b"From: c@z.test\r\nSubject: hello\r\n\r\nbody\r\n";
    let id = s
        .hold("team@example.org", "c@z.test", "not a member", msg)
        .unwrap()
        .unwrap();
    let p = s.pending(None).unwrap();
    assert_eq!(p.len(), 1);
    assert_eq!(
        (p[0].subject.as_str(), p[0].sender.as_str()),
        ("hello", "c@z.test")
    );
    let (_, m) = s.pending_message(&id).unwrap();
    assert_eq!(m, msg);
    s.drop_pending(&id).unwrap();
    assert!(s.pending(Some("team@example.org")).unwrap().is_empty());
    assert!(matches!(s.drop_pending(&id), Err(ListError::NoPending(_))));
}

mod copy {
    use crate::List;
    use crate::message::*;

    fn list() -> List {
        super::team_list()
    }

    const POST: &[u8] = b"DKIM-Signature: v=1; d=x.test;\r\n\tb=abc\r\nFrom: Alice <a@x.test>\r\n\
Subject: plans\r\nList-Id: <other.lists.test>\r\nPrecedence: bulk\r\n\r\nbody\r\n";

    #[test]
    fn the_plain_copy_keeps_what_a_signature_covers() {
        let out = list_copy(&list(), POST);
        let s = String::from_utf8(out).unwrap();
        assert!(
            s.starts_with(
                "List-Id: <team.example.org>\r\nList-Post: <mailto:team@example.org>\r\n"
            ),
            "{s}"
        );
        assert!(s.contains("List-Owner: <mailto:team-owner@example.org>\r\nPrecedence: list\r\n"));
        assert!(s.contains("DKIM-Signature: v=1; d=x.test;\r\n\tb=abc\r\nFrom: Alice <a@x.test>\r\nSubject: plans\r\n\r\nbody\r\n"), "{s}");
        assert!(!s.contains("other.lists.test") && !s.contains("bulk"));
        assert!(carries_list_id(s.as_bytes(), "team.example.org"));
        assert!(!carries_list_id(POST, "team.example.org"));
        assert_eq!(from_address(POST), "a@x.test");
        assert_eq!(subject(POST), "plans");
    }

    #[test]
    fn a_tag_and_reply_to_munge_from() {
        let l = List {
            subject_tag: "team".into(),
            reply_to_list: true,
            ..list()
        };
        let s = String::from_utf8(list_copy(&l, POST)).unwrap();
        assert!(s.contains("Subject: [team] plans\r\n"), "{s}");
        assert!(
            s.contains("From: \"Alice via team\" <team@example.org>\r\n"),
            "{s}"
        );
        assert!(s.contains("Reply-To: <team@example.org>\r\n"));
        assert_eq!(s.matches("Subject:").count(), 1);
        assert_eq!(s.matches("\r\nFrom:").count(), 1);
        // Tagged once only.
        let again = list_copy(&l, s.as_bytes());
        assert_eq!(
            String::from_utf8(again).unwrap().matches("[team]").count(),
            1
        );
        // Without munging, the author stays in From:.
        let l = List {
            munge_from: false,
            ..l
        };
        let s = String::from_utf8(list_copy(&l, POST)).unwrap();
        assert!(s.contains("From: Alice <a@x.test>\r\n"));
        // Munged without reply_to_list: the author in Reply-To:.
        let l = List {
            munge_from: true,
            reply_to_list: false,
            subject_tag: "t".into(),
            ..list()
        };
        let s = String::from_utf8(list_copy(&l, POST)).unwrap();
        assert!(s.contains("Reply-To: Alice <a@x.test>\r\n"), "{s}");
    }

    #[test]
    fn lf_messages_and_hostile_headers() {
        let out = list_copy(
            &list(),
            b"Subject: x\nFrom: \"Ev\\\"il\r\n\" <e@v.test>\n\nb\n",
        );
        assert!(String::from_utf8_lossy(&out).contains("List-Id: <team.example.org>\n"));
        let _ = list_copy(&list(), b"");
        let _ = list_copy(&list(), b"no colon\r\n\tcontinued");
        let _ = from_address(b"From: =?x?q?broken");
    }

    #[test]
    fn failed_recipients_of_a_report() {
        let dsn = b"Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n--b\r\n\
Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.x.test\r\n\r\n\
Original-Recipient: rfc822;A@x.test\r\nFinal-Recipient: rfc822; a@x.test\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n\
Final-Recipient: rfc822; c@x.test\r\nAction: delayed\r\nStatus: 4.0.0\r\n\r\n\
Final-Recipient: rfc822;<d@y.test>\r\nAction: failed\r\n\r\n--b--\r\n";
        assert_eq!(failed_recipients(dsn), ["a@x.test", "d@y.test"]);
        assert!(failed_recipients(b"Subject: out of office\r\n\r\nI am away\r\n").is_empty());
    }
}

#[test]
fn another_connections_new_list_is_seen_at_once() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("directory.sqlite");
    let reader = ListStore::open(&path).unwrap();
    let writer = ListStore::open(&path).unwrap();
    assert!(reader.role("team@example.org").unwrap().is_none());
    writer.create("team@example.org", "").unwrap();
    assert_eq!(
        reader
            .role("team-bounces@example.org")
            .unwrap()
            .map(|(_, r)| r),
        Some(Role::Bounces)
    );
    writer.delete("team@example.org").unwrap();
    assert!(reader.role("team@example.org").unwrap().is_none());
    // Its own changes too.
    reader.create("own@example.org", "").unwrap();
    assert!(reader.role("own@example.org").unwrap().is_some());
}

#[test]
fn role_addresses_are_answered_now_unless_that_would_wait() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("directory.sqlite");
    let s = ListStore::open(&path).unwrap();
    s.create("team@example.org", "").unwrap();
    for (a, want) in [
        ("team@example.org", true),
        ("Team-Owner@Example.org", true),
        ("team-request@example.org", true),
        ("teamx@example.org", false),
        ("-bounces@example.org", false),
        ("not an address", false),
    ] {
        assert_eq!(
            s.is_role_address_now(a).map(|r| r.unwrap()),
            Some(want),
            "{a}"
        );
        assert_eq!(s.role(a).unwrap().is_some(), want, "{a}");
    }
    // Another thread holds the connection: no answer rather than a wait.
    let held = s.lock();
    std::thread::scope(|t| {
        let r = t.spawn(|| s.is_role_address_now("team@example.org"));
        assert!(r.join().unwrap().is_none());
    });
    drop(held);
    // Another connection locks the database: no answer, at once (the busy
    // time-out is 10 s).
    let other = Connection::open(&path).unwrap();
    other.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let t0 = std::time::Instant::now();
    assert!(s.is_role_address_now("team@example.org").is_none());
    assert!(t0.elapsed() < Duration::from_secs(5));
    // The time-out is back: a lookup that may wait outlasts the lock.
    std::thread::scope(|t| {
        t.spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            other.execute_batch("ROLLBACK").unwrap();
        });
        assert!(s.role("team-bounces@example.org").unwrap().is_some());
    });
    assert_eq!(
        s.is_role_address_now("team@example.org")
            .map(|r| r.unwrap()),
        Some(true)
    );
}
