"""The Debian MTA habits: the system aliases file (`[aliases] file`, which
`facteurctl init --dev` writes with `root: demo@example.test`), as cron
and system tools use it through `sendmail`, and `newaliases`.

- cron-style mail to `root` (no domain) lands in the mailbox the file
  names; so does mail to a Unix user with no entry (`daemon`), to
  `postmaster`, and to `root@localhost`;
- mail to a local name that is neither an entry nor a Unix user bounces
  once to the sender (root, so the same mailbox): no loop;
- `newaliases` reports what it refuses (`|command`, `:include:` when not
  allowed) with the line, tells qmgr, and the next message follows the
  new file; smtpd accepts the host's own postmaster and refuses an
  unknown local name at RCPT."""

import email
import os
import re
import smtplib
import subprocess
import time

import pytest

from harness import BIN, Facteur, wait_for

DEMO = "demo@example.test"
ALICE = "alice@example.test"


@pytest.fixture
def f():
    f = Facteur(extra={"qmgr": 'scan_interval = "1s"'})
    f.add_user(ALICE)
    f.start_all()
    yield f
    f.cleanup()


def sendmail(f, *args, text):
    env = dict(os.environ, FACTEUR_CONFIG=str(f.config))
    return subprocess.run([str(BIN / "sendmail"), *args], input=text.encode(),
                          capture_output=True, env=env, timeout=60)


def newaliases(f):
    # As the package's newaliases link runs it: sendmail named newaliases.
    return subprocess.run(["newaliases", "-C", str(f.config)], executable=str(BIN / "sendmail"),
                          capture_output=True, text=True, timeout=60)


def subjects(f, address):
    out = []
    for p in f.all_files(address):
        out.append(email.message_from_bytes(p.read_bytes())["Subject"])
    return out


def wait_subject(f, address, subject):
    wait_for(lambda: subject in subjects(f, address), 30, f"{subject!r} in {address}")


def test_cron_mail_to_root_and_unix_users_reaches_the_alias(f):
    # cron runs `sendmail -i -FCronDaemon -B8BITMIME -oem root`-like
    # commands with the job's output.
    r = sendmail(f, "-i", "-FCronDaemon", "-oem", "root",
                 text="Subject: Cron <root@host> run-parts /etc/cron.daily\n\nlogrotate: done\n")
    assert r.returncode == 0, r
    wait_subject(f, DEMO, "Cron <root@host> run-parts /etc/cron.daily")
    # A Unix user every Debian system has, with no entry: root's way.
    assert sendmail(f, "daemon", text="Subject: to daemon\n\nx\n").returncode == 0
    wait_subject(f, DEMO, "to daemon")
    # postmaster: root in the file; localhost is a system domain too.
    assert sendmail(f, "postmaster", "root@localhost", text="Subject: to two\n\nx\n").returncode == 0
    wait_subject(f, DEMO, "to two")
    assert subjects(f, DEMO).count("to two") == 1  # one mailbox, one copy
    # The qmgr log names where root's mail went.
    assert "root@mail.example.test" in f.log_text("qmgr")


def test_an_unknown_local_name_bounces_once(f):
    before = len(f.all_files(DEMO))
    r = sendmail(f, "-f", "root", "nosuch-user-xyz", text="Subject: lost\n\nx\n")
    assert r.returncode == 0, r
    # The bounce goes to root (the sender), so to the demo mailbox: one
    # report, and nothing more arrives.
    wait_for(lambda: len(f.all_files(DEMO)) > before, 30, "the bounce")
    raw = f.all_files(DEMO)[-1].read_bytes()
    assert b"multipart/report" in raw and b"nosuch-user-xyz@mail.example.test" in raw
    assert b"5.1.1" in raw
    assert "bounce created" in f.log_text("qmgr")
    time.sleep(3)
    assert len(f.all_files(DEMO)) == before + 1


def test_newaliases_reports_refusals_and_qmgr_follows_the_file(f):
    aliases = f.root / "aliases"
    aliases.write_text(
        "# edited by the administrator\n"
        "postmaster: root\n"
        "root: alice, |/usr/bin/procmail\n"
        "staff: :include:/etc/mail/staff\n"
        "broken: \"unterminated\n"
    )
    r = newaliases(f)
    # An unreadable line is an error (exit 65); refusals are reported.
    assert r.returncode == 65, r
    assert f"{aliases}: 2 aliases" in r.stdout, r.stdout
    assert f"{aliases}:3: `|/usr/bin/procmail` refused" in r.stderr, r.stderr
    # `alice` alone is alice@mail.example.test, no mailbox: said so.
    assert f"{aliases}:3: `alice` is a name of this host" in r.stderr, r.stderr
    assert f"{aliases}:4: `:include:/etc/mail/staff` refused" in r.stderr, r.stderr
    assert f"{aliases}:5:" in r.stderr and "not closed" in r.stderr, r.stderr
    assert "facteur-qmgr read it again" in r.stdout, r.stdout
    log = f.log_text("qmgr")
    assert "reload asked" in log and "procmail` refused" in log, log[-3000:]

    aliases.write_text("postmaster: root\nroot: alice@example.test\n")
    r = newaliases(f)
    assert r.returncode == 0 and "2 aliases" in r.stdout, r
    assert sendmail(f, "root", text="Subject: now to alice\n\nx\n").returncode == 0
    wait_subject(f, ALICE, "now to alice")
    assert "now to alice" not in subjects(f, DEMO)

    # Without a root entry newaliases warns: root's mail would be refused.
    aliases.write_text("postmaster: root\n")
    r = newaliases(f)
    assert r.returncode == 0 and "no entry for root" in r.stderr, r


def test_smtpd_answers_for_the_host_names(f):
    with smtplib.SMTP("127.0.0.1", f.smtp_port, timeout=30) as s:
        s.ehlo("client.remote.test")
        assert s.mail("someone@remote.test")[0] == 250
        assert s.rcpt("postmaster@mail.example.test")[0] == 250
        assert s.rcpt("Root@localhost")[0] == 250
        code, _ = s.rcpt("nosuch-user-xyz@mail.example.test")
        assert code == 550
        assert s.data(b"Subject: hello postmaster\r\n\r\nhi\r\n")[0] == 250
    wait_subject(f, DEMO, "hello postmaster")


def test_the_daily_report_is_mailed_to_postmaster(f):
    # Off while [report] mail_to is empty (the package's timer then does nothing).
    out = f.ctl("report", "--day", "today", "--mail", "--dir", str(f.root))
    assert "not mailed" in out, out
    assert sendmail(f, "root", text="Subject: some traffic\n\nx\n").returncode == 0
    wait_subject(f, DEMO, "some traffic")
    cfg = f.config.read_text()
    f.config.write_text(cfg + '\n[report]\nmail_to = "postmaster"\n')
    out = f.ctl("report", "--day", "today", "--mail", "--dir", str(f.root))
    assert "queued for postmaster@mail.example.test" in out, out
    wait_for(lambda: any(s and s.startswith("facteur daily report: ") for s in subjects(f, DEMO)), 30, "the report")
    report = next(p for p in f.all_files(DEMO) if b"Subject: facteur daily report: " in p.read_bytes())
    msg = email.message_from_bytes(report.read_bytes())
    assert msg["Auto-Submitted"] == "auto-generated"
    body = msg.get_payload()
    # The day's traffic so far: at least the message above, received and
    # delivered.
    counts = {k: int(n) for k, n in re.findall(r"^  (received|delivered)\s+(\d+)", body, re.M)}
    assert counts.get("received", 0) >= 1 and counts.get("delivered", 0) >= 1, body
