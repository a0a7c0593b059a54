//! Runs the built `sendmail` binary against a temporary configuration and
//! checks what it left in `maildrop/` through facteur-spool: the way cron
//! and scripts use it, with no daemon running.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns: failing is the point

use facteur_spool::{QueueName, Spool};
use facteur_testkit::{Root, SpoolExt};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// A root with a configuration for `test.example` and no daemon.
fn setup() -> Root {
    Root::new("test.example", "")
}

fn sendmail(config: Option<&Path>, args: &[&str], stdin: &str) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sendmail"));
    if let Some(c) = config {
        cmd.env("FACTEUR_CONFIG", c);
    } else {
        cmd.env_remove("FACTEUR_CONFIG");
    }
    let mut child = cmd
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The command may exit (bad flag) before reading: ignore EPIPE.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    child.wait_with_output().unwrap()
}

fn maildrop(s: &Root) -> (Spool, Vec<String>) {
    let spool = s.spool();
    let ids = spool.ids(QueueName::Maildrop);
    (spool, ids)
}

#[test]
fn cron_style_submission_lands_in_maildrop() {
    let s = setup();
    let config = s.config_path();
    let c = config.to_str().unwrap();
    let out = sendmail(
        None,
        &["-C", c, "-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root"],
        "Subject: Cron <root@host> run-parts\nContent-Type: text/plain\n\nline one\n.\nline three\n",
    );
    assert!(out.status.success(), "{out:?}");
    let (spool, ids) = maildrop(&s);
    assert_eq!(ids.len(), 1);
    let env = spool.envelope(QueueName::Maildrop, &ids[0]);
    assert_eq!(env.recipients[0].address, "root@test.example");
    assert!(env.sender.ends_with("@test.example"));
    assert_eq!(env.protocol.as_deref(), Some("sendmail"));
    let m = spool.message_text(QueueName::Maildrop, &ids[0]);
    assert!(m.contains("\r\nFrom: CronDaemon <"), "{m}");
    assert!(
        m.contains(&format!("\r\nMessage-ID: <{}@test.example>\r\n", ids[0])),
        "{m}"
    );
    assert!(
        m.ends_with("\r\n\r\nline one\r\n.\r\nline three\r\n"),
        "{m}"
    );
}

#[test]
fn dash_t_with_env_config_and_mailq() {
    let s = setup();
    let out = sendmail(
        Some(&s.config_path()),
        &["-t", "-oi", "-f", "sender@example.org", "-v"],
        "To: a@example.net\nBcc: b@example.net\nSubject: x\n\nbody\n",
    );
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("queued as"));
    let (spool, ids) = maildrop(&s);
    let env = spool.envelope(QueueName::Maildrop, &ids[0]);
    let rcpts: Vec<_> = env.recipients.iter().map(|r| r.address.as_str()).collect();
    assert_eq!(rcpts, ["a@example.net", "b@example.net"]);
    assert_eq!(env.sender, "sender@example.org");

    let out = sendmail(Some(&s.config_path()), &["-bp"], "");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&ids[0]) && text.contains("sender@example.org"),
        "{text}"
    );
    assert!(text.contains("b@example.net (pending)"), "{text}");
}

#[test]
fn smtp_mode_over_pipes() {
    let s = setup();
    let out = sendmail(
        Some(&s.config_path()),
        &["-bs"],
        "EHLO me\r\nMAIL FROM:<>\r\nRCPT TO:<x@example.net>\r\nDATA\r\nSubject: s\r\n\r\n..hi\r\n.\r\nQUIT\r\n",
    );
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("220 test.example"), "{text}");
    assert!(text.contains("250 2.0.0 Ok: queued as"), "{text}");
    let (spool, ids) = maildrop(&s);
    let m = spool.message_text(QueueName::Maildrop, &ids[0]);
    assert!(m.ends_with("\r\n\r\n.hi\r\n"), "{m}");
}

#[test]
fn exit_codes() {
    let s = setup();
    let config = s.config_path();
    let c = config.to_str().unwrap();
    let code = |args: &[&str]| sendmail(None, args, "x\n").status.code();
    assert_eq!(code(&["-C", c]), Some(64), "no recipients");
    assert_eq!(code(&["-C", c, "-Z"]), Some(64), "bad flag");
    assert_eq!(code(&["-C", c, "bad@@"]), Some(67));
    assert_eq!(
        code(&["-C", "/nonexistent/facteur.toml", "a@b.example"]),
        Some(78)
    );
    let bad = s.path().join("bad.toml");
    std::fs::write(&bad, "nosuchkey = 1\n").unwrap();
    assert_eq!(
        code(&["-C", bad.to_str().unwrap(), "a@b.example"]),
        Some(78)
    );
    assert_eq!(code(&["-C", c, "-bi"]), Some(0));
    assert!(maildrop(&s).1.is_empty());
}

#[cfg(unix)]
#[test]
fn called_as_mailq_and_newaliases() {
    let s = setup();
    let bin = s.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    for name in ["mailq", "newaliases"] {
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_sendmail"), bin.join(name)).unwrap();
    }
    let out = Command::new(bin.join("mailq"))
        .env("FACTEUR_CONFIG", s.config_path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Mail queue is empty\n"
    );
    // No aliases file yet (the test root's [aliases] file): said, exit 0.
    let out = Command::new(bin.join("newaliases"))
        .env("FACTEUR_CONFIG", s.config_path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("does not exist: no aliases"), "{said}");
    assert!(said.contains("facteur-qmgr is not running"), "{said}");
}
