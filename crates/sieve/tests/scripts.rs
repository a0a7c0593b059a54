//! Whole scripts against whole messages: the RFCs' examples and the rules
//! people write (procmail-style sorting, vacation, flags, variables).

use facteur_sieve::{Action, Envelope, Host, Limits, Options, Outcome, Script};

const MSG: &str = "Date: Tue, 1 Apr 1997 09:06:31 -0800 (PST)\r\n\
From: coyote@desert.example.org\r\n\
To: roadrunner@acme.example.com, Ann <ann+sieve@example.com>\r\n\
Cc: group: bob@example.net;\r\n\
Subject: I have a present for you\r\n\
X-Caffeine: C8H10N4O2\r\n\
Message-ID: <1234@desert.example.org>\r\n\
X-Spam-Flag: YES\r\n\
\r\n\
Look, I'm sorry about the whole anvil thing, and I really\r\n\
didn't mean to try and drop it on you from the top of the\r\n\
cliff.  I want to try to make it up to you.  I've got some\r\n\
great birdseed over here at my place--top of the line\r\n\
stuff--and if you come by, I'll have it all wrapped up\r\n\
for you.  I'm really sorry for all the problems I've caused.\r\n";

#[derive(Default)]
struct TestHost {
    mailboxes: Vec<String>,
    answered: bool,
    seen: bool,
}

impl Host for TestHost {
    fn mailbox_exists(&mut self, name: &str) -> bool {
        self.mailboxes.iter().any(|m| m == name)
    }
    fn vacation_sent(&mut self, _s: &str, _h: &str, _p: u64) -> bool {
        self.answered
    }
    fn duplicate_seen(&mut self, _h: &str, _id: &str, _p: u64, _l: bool) -> bool {
        self.seen
    }
    fn now(&mut self) -> i64 {
        1_700_000_000
    }
}

fn env() -> Envelope {
    Envelope {
        from: "coyote@desert.example.org".into(),
        to: "ann+sieve@example.com".into(),
        orig_to: None,
        auth: None,
    }
}

fn run_with(script: &str, msg: &str, host: &mut TestHost) -> Outcome {
    let s =
        Script::compile(script, &Options::default()).unwrap_or_else(|e| panic!("{script}: {e:?}"));
    facteur_sieve::run::run(&s, msg.as_bytes(), env(), host, Limits::default())
        .unwrap_or_else(|e| panic!("{script}: {e}"))
}

fn run(script: &str) -> Outcome {
    run_with(script, MSG, &mut TestHost::default())
}

fn stores(o: &Outcome) -> Vec<String> {
    o.stores().into_iter().map(|(m, _)| m).collect()
}

#[test]
fn base_language() {
    assert_eq!(stores(&run("keep;")), ["INBOX"]);
    assert_eq!(stores(&run("")), ["INBOX"]);
    let o = run("discard;");
    assert!(stores(&o).is_empty() && o.discarded);
    let o = run(r#"require "fileinto";
        if header :contains "from" "coyote" { fileinto "Trash"; }
        elsif header :is "subject" "x" { keep; } else { discard; }"#);
    assert_eq!(stores(&o), ["Trash"]);
    let o = run(r#"require ["fileinto"];
        if anyof (not exists ["From","Date"], header :contains "subject" "present") {
            fileinto "Presents"; stop; }
        fileinto "Never";"#);
    assert_eq!(stores(&o), ["Presents"]);
    let o = run(r#"if size :over 1K { discard; } if size :under 1M { keep; }"#);
    assert_eq!(stores(&o), ["INBOX"]);
    let o =
        run(r#"if address :domain :is ["to", "cc"] "example.net" { redirect "bob@example.net"; }"#);
    assert!(
        matches!(&o.actions[..], [Action::Redirect { address, copy: false, .. }] if address == "bob@example.net")
    );
    assert!(stores(&o).is_empty());
    let o = run(r#"require ["envelope", "subaddress", "fileinto"];
        if envelope :detail "to" "sieve" { fileinto "Lists/sieve"; }"#);
    assert_eq!(stores(&o), ["Lists/sieve"]);
    let o = run(
        r#"require ["copy", "fileinto"]; fileinto :copy "Archive"; redirect :copy "x@example.com";"#,
    );
    assert_eq!(stores(&o), ["Archive", "INBOX"]);
    let o = run(r#"require "fileinto"; fileinto "A"; fileinto "A"; keep; fileinto "INBOX";"#);
    assert_eq!(stores(&o), ["A", "INBOX"]);
}

#[test]
fn comparators_and_relational() {
    let o = run(
        r#"require ["relational", "comparator-i;ascii-numeric", "fileinto"];
        if header :value "gt" :comparator "i;ascii-numeric" "x-n" "5" { fileinto "no"; }
        if address :count "eq" :comparator "i;ascii-numeric" ["to", "cc"] "3" { fileinto "three"; }"#,
    );
    assert_eq!(stores(&o), ["three"]);
    let o = run(
        r#"if header :is :comparator "i;octet" "subject" "i have a present for you" { discard; }"#,
    );
    assert_eq!(stores(&o), ["INBOX"]);
    let o = run(r#"if header :matches "subject" "I * a ?resent*" { discard; }"#);
    assert!(stores(&o).is_empty());
}

#[test]
fn variables_and_matches() {
    let o = run(r#"require ["variables", "fileinto"];
        if header :matches "From" "*@*.example.org" { set :upperfirst "who" "${1}"; fileinto "from-${who}-${2}"; }"#);
    assert_eq!(stores(&o), ["from-Coyote-desert"]);
    let o = run(r#"require ["variables", "fileinto", "regex"];
        if header :regex "subject" "^I (\\w+) a (\\w+)" { fileinto "${2}.${1}"; }"#);
    assert_eq!(stores(&o), ["present.have"]);
    let o = run(r#"require ["variables", "fileinto"];
        set "a" "x"; set :length "n" "${a}${a}${unknown}"; fileinto "n${n}";
        if string :is "${a}" "x" { fileinto "yes"; }"#);
    assert_eq!(stores(&o), ["n2", "yes"]);
}

#[test]
fn flags() {
    let o = run(r#"require ["imap4flags", "fileinto"];
        setflag "\\Seen"; addflag ["\\Flagged", "$Label1 \\Seen"]; removeflag "\\flagged";
        if hasflag :is "$label1" { fileinto :flags "\\Answered" "A"; }
        keep;"#);
    let s = o.stores();
    assert_eq!(s[0], ("A".to_string(), vec!["\\Answered".to_string()]));
    assert_eq!(
        s[1],
        (
            "INBOX".to_string(),
            vec!["\\Seen".to_string(), "$Label1".to_string()]
        )
    );
}

#[test]
fn body_date_spam() {
    let o =
        run(r#"require ["body", "fileinto"]; if body :contains "birdseed" { fileinto "Birds"; }"#);
    assert_eq!(stores(&o), ["Birds"]);
    let o = run(r#"require ["body"]; if body :raw :contains "anvil thing" { discard; }"#);
    assert!(o.discarded);
    let o = run(r#"require ["date", "relational", "fileinto"];
        if date :zone "+0000" :value "ge" "date" "hour" "17" { fileinto "late"; }
        if date :originalzone "date" "zone" "-0800" { fileinto "pst"; }
        if currentdate :zone "+0000" "year" "2023" { fileinto "now"; }"#);
    assert_eq!(stores(&o), ["late", "pst", "now"]);
    let o =
        run(r#"require "fileinto"; if header :is "X-Spam-Flag" "YES" { fileinto "Junk"; stop; }"#);
    assert_eq!(stores(&o), ["Junk"]);
}

#[test]
fn reject_and_conflicts() {
    let o = run(r#"require "reject"; reject "go away";"#);
    assert!(
        matches!(&o.actions[..], [Action::Reject { reason, extended: false }] if reason == "go away")
    );
    assert!(stores(&o).is_empty());
    let s = Script::compile(
        r#"require ["reject", "fileinto"]; fileinto "x"; reject "no";"#,
        &Options::default(),
    )
    .expect("compiles");
    let e = facteur_sieve::run::run(
        &s,
        MSG.as_bytes(),
        env(),
        &mut TestHost::default(),
        Limits::default(),
    );
    assert!(e.is_err());
    let s = Script::compile(
        "redirect \"a@x.example\"; redirect \"b@x.example\";",
        &Options::default(),
    )
    .expect("compiles");
    let limits = Limits {
        max_redirects: 1,
        ..Limits::default()
    };
    assert!(
        facteur_sieve::run::run(&s, MSG.as_bytes(), env(), &mut TestHost::default(), limits)
            .is_err()
    );
}

#[test]
fn vacation() {
    let script = r#"require "vacation"; vacation :days 7 :subject "Away" "I am away.";"#;
    let o = run(script);
    let Some(Action::Vacation(v)) = o.actions.first() else {
        panic!("no vacation")
    };
    assert_eq!(v.skip, None, "ann+sieve@ is in To");
    assert_eq!(v.to, "coyote@desert.example.org");
    assert_eq!(v.period, 7 * 86_400);
    let text = String::from_utf8_lossy(&v.message);
    assert!(text.contains("Subject: Away\r\n"));
    assert!(text.contains("In-Reply-To: <1234@desert.example.org>\r\n"));
    assert!(text.contains("Auto-Submitted: auto-replied"));
    assert!(text.ends_with("\r\n\r\nI am away.\r\n"));
    assert_eq!(stores(&o), ["INBOX"], "vacation keeps the message");
    // answered already
    let o = run_with(
        script,
        MSG,
        &mut TestHost {
            answered: true,
            ..TestHost::default()
        },
    );
    let Some(Action::Vacation(v)) = o.actions.first() else {
        panic!("no vacation")
    };
    assert!(v.skip.is_some());
    // list mail
    let list = MSG.replacen("X-Caffeine", "List-Id: <l.example>\r\nX-Caffeine", 1);
    let o = run_with(script, &list, &mut TestHost::default());
    let Some(Action::Vacation(v)) = o.actions.first() else {
        panic!("no vacation")
    };
    assert!(v.skip.as_deref().is_some_and(|s| s.contains("list")));
    // not addressed to the user
    let other = MSG.replace("ann+sieve@example.com", "zed@example.com");
    let o = run_with(script, &other, &mut TestHost::default());
    let Some(Action::Vacation(v)) = o.actions.first() else {
        panic!("no vacation")
    };
    assert!(v.skip.is_some());
}

#[test]
fn editheader_mailbox_duplicate() {
    let o = run(r#"require ["editheader", "fileinto"];
        addheader "X-Filtered" "yes"; deleteheader "x-caffeine"; deleteheader "received"; fileinto "F";"#);
    let edited = String::from_utf8(o.edited_message.clone().expect("edited")).expect("utf8");
    assert!(edited.starts_with("X-Filtered: yes\r\nDate:"));
    assert!(!edited.contains("X-Caffeine"));
    let Action::FileInto { message, .. } = &o.actions[0] else {
        panic!()
    };
    assert!(
        o.message_for(*message, MSG.as_bytes())
            .starts_with(b"X-Filtered")
    );
    let script = r#"require ["mailbox", "fileinto"]; if mailboxexists "Work" { fileinto "Work"; } else { fileinto :create "New"; }"#;
    assert_eq!(stores(&run(script)), ["New"]);
    let mut host = TestHost {
        mailboxes: vec!["Work".into()],
        ..TestHost::default()
    };
    assert_eq!(stores(&run_with(script, MSG, &mut host)), ["Work"]);
    let script = r#"require "duplicate"; if duplicate { discard; }"#;
    let o = run_with(
        script,
        MSG,
        &mut TestHost {
            seen: true,
            ..TestHost::default()
        },
    );
    assert!(o.discarded);
    let o = run(script);
    assert_eq!(o.duplicates[0].id, "<1234@desert.example.org>");
}

#[test]
fn compile_errors() {
    for (src, line) in [
        ("fileinto \"x\";", 1),
        ("require \"fileinto\";\nfileinto;", 2),
        ("require \"nonsense\";", 1),
        ("keep;\nrequire \"fileinto\";", 2),
        ("if true { keep; }\nelse { keep; }\nelse { keep; }", 3),
        ("elsif true { keep; }", 1),
        ("if header :is :contains \"a\" \"b\" { }", 1),
        ("if header :comparator \"i;nope\" \"a\" \"b\" { }", 1),
        (
            "if header :contains :comparator \"i;ascii-numeric\" \"a\" \"b\" {}",
            1,
        ),
        ("require \"regex\"; if header :regex \"a\" \"(\" {}", 1),
        ("redirect \"not an address\";", 1),
        ("if true false {}", 1),
        ("if size 100 {}", 1),
        ("require \"variables\"; set \"bad-name\" \"x\";", 1),
        ("require \"date\"; if date \"date\" \"century\" \"x\" {}", 1),
        ("require \"editheader\"; addheader \"bad:name\" \"x\";", 1),
        (
            "require \"encoded-character\"; if header \"a\" \"${unicode:D800}\" {}",
            1,
        ),
    ] {
        let e = Script::compile(src, &Options::default()).expect_err(src);
        assert_eq!(e[0].line, line, "{src}: {e:?}");
    }
}

#[test]
fn hostile_scripts_are_bounded() {
    let s = Script::compile(
        r#"require ["variables"]; set "a" "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
        set "a" "${a}${a}${a}${a}${a}${a}${a}${a}"; set "a" "${a}${a}${a}${a}${a}${a}${a}${a}";
        set "a" "${a}${a}${a}${a}${a}${a}${a}${a}"; set "a" "${a}${a}${a}${a}${a}${a}${a}${a}";
        if string :matches "${a}" "*x*x*x*x*x*y" { discard; }"#,
        &Options::default(),
    )
    .expect("compiles");
    let r = facteur_sieve::run::run(
        &s,
        MSG.as_bytes(),
        env(),
        &mut TestHost::default(),
        Limits::default(),
    );
    let o = r.expect("runs");
    assert!(!o.discarded);
    let s = Script::compile(&"keep;".repeat(100), &Options::default()).expect("compiles");
    assert!(
        facteur_sieve::run::run(
            &s,
            MSG.as_bytes(),
            env(),
            &mut TestHost::default(),
            Limits {
                max_steps: 50,
                ..Limits::default()
            }
        )
        .is_err()
    );
}

#[test]
fn include_checks_cost_the_graph_not_its_paths() {
    // ten levels, each including the next one twenty times: 20^10 paths
    let mut loads = 0;
    let mut load = |_: bool, name: &str| -> Result<Option<Script>, String> {
        loads += 1;
        let level: u32 = name
            .trim_start_matches('l')
            .parse()
            .map_err(|_| "name".to_string())?;
        let text = if level >= 9 {
            "keep;".to_string()
        } else {
            let inc = format!("include \"l{}\";", level + 1);
            format!("require \"include\"; {}", inc.repeat(20))
        };
        Script::compile(&text, &Options::default())
            .map(Some)
            .map_err(|e| format!("{e:?}"))
    };
    let top = Script::compile("require \"include\"; include \"l0\";", &Options::default())
        .expect("compiles");
    let errors = facteur_sieve::check_includes(&top, &mut load, 10, 255);
    assert!(errors.is_empty(), "{errors:?}");
    assert!(loads <= 10, "{loads} loads");
}
