"""Mailman 3 behind facteur (Debian's mailman3, a private instance on
loopback): the list domain is handed to Mailman's LMTP runner
(`[qmgr.destinations."lists.test"] lmtp`), Mailman sends its copies back
through facteur's SMTP listener, and a member's post reaches every member
with Mailman's List-Id. A post to a list Mailman does not have is refused
by Mailman's LMTP runner and bounced by facteur."""

import email
import os
import shutil
import smtplib
import socket
import subprocess

import pytest

from harness import Facteur, crlf, free_port, wait_for
from postfixpeer import world_dir

MAILMAN = shutil.which("mailman") or "/usr/bin/mailman"
pytestmark = pytest.mark.skipif(not os.path.exists(MAILMAN),
                                reason="mailman3 is not installed (tests/deps installs it)")

ALICE, BOB = "alice@example.test", "bob@example.test"
LIST = "team@lists.test"

CFG = """[mailman]
site_owner: postmaster@example.test
layout: private

[paths.private]
var_dir: {d}/var
queue_dir: $var_dir/queue
bin_dir: /usr/lib/mailman3/bin
list_data_dir: $var_dir/lists
log_dir: $var_dir/logs
lock_dir: $var_dir/locks
data_dir: $var_dir/data
cache_dir: $var_dir/cache
etc_dir: {d}
ext_dir: $var_dir/ext
messages_dir: $var_dir/messages
archive_dir: $var_dir/archives
template_dir: $var_dir/templates
pid_file: $var_dir/master.pid
lock_file: $lock_dir/master.lck

[database]
class: mailman.database.sqlite.SQLiteDatabase
url: sqlite:///$DATA_DIR/mailman.db

[webservice]
hostname: 127.0.0.1
port: {rest}

[mta]
incoming: mailman.mta.null.NullMTA
outgoing: mailman.mta.deliver.deliver
lmtp_host: 127.0.0.1
lmtp_port: {lmtp}
smtp_host: 127.0.0.1
smtp_port: {smtp}

[runner.rest]
start: no

[archiver.mhonarc]
enable: no
[archiver.mail_archive]
enable: no
[archiver.prototype]
enable: no
"""


def mailman(d, *args, check=True):
    # Output to a file, not a pipe: `start` leaves its master runner
    # behind with our descriptors, and a pipe would never reach its end.
    out = d / f"cmd-{args[0]}.log"
    with open(out, "w") as o:
        rc = subprocess.run([MAILMAN, "-C", str(d / "mailman.cfg"), "--run-as-root", *args],
                            stdout=o, stderr=subprocess.STDOUT, timeout=120).returncode
    text = out.read_text(errors="replace")
    assert not check or rc == 0, text
    return text


def listening(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def site():
    lmtp = free_port()
    f = Facteur(extra={"qmgr": 'scan_interval = "1s"\nmin_backoff = "1s"\nmax_backoff = "2s"'})
    with open(f.config, "a") as c:
        c.write(f'\n[qmgr.destinations."lists.test"]\nlmtp = "inet:127.0.0.1:{lmtp}"\n')
    for u in (ALICE, BOB):
        f.add_user(u)
    f.start_all()
    with world_dir("fmailman-") as d:
        (d / "mailman.cfg").write_text(CFG.format(d=d, rest=free_port(), lmtp=lmtp, smtp=f.smtp_port))
        assert "Created mailing list" in mailman(d, "create", LIST)
        (d / "members").write_text(f"{ALICE}\n{BOB}\n")
        mailman(d, "addmembers", "-W", str(d / "members"), LIST)
        mailman(d, "start", "--force")
        try:
            wait_for(lambda: listening(lmtp), 90, "Mailman's LMTP runner")
            yield f, d
        finally:
            mailman(d, "stop", check=False)
            f.cleanup()


def with_subject(f, address, subject):
    return [email.message_from_bytes(p.read_bytes()) for p in f.all_files(address)
            if subject in (email.message_from_bytes(p.read_bytes())["Subject"] or "")]


def test_a_post_through_mailman_reaches_the_members(site):
    f, d = site
    with smtplib.SMTP("127.0.0.1", f.smtp_port, timeout=30) as s:
        s.sendmail(ALICE, [LIST], crlf(f"From: {ALICE}\nTo: {LIST}\nSubject: hello mailman\n"
                                       "Message-ID: <mm1@example.test>\n\nA post through Mailman 3.\n"))
    for who in (ALICE, BOB):
        wait_for(lambda: with_subject(f, who, "hello mailman"), 120,
                 lambda: f"the post at {who}; mailman log: " + log_tail(d))
    m = with_subject(f, BOB, "hello mailman")[0]
    assert m["List-Id"] and "team.lists.test" in m["List-Id"], m["List-Id"]
    assert "lists.test" in (m["Return-Path"] or ""), m["Return-Path"]
    assert "inet:127.0.0.1:" in f.log_text("qmgr")


def test_a_list_mailman_does_not_have_is_bounced(site):
    f, d = site
    before = len(f.all_files(ALICE))
    with smtplib.SMTP("127.0.0.1", f.smtp_port, timeout=30) as s:
        s.sendmail(ALICE, ["nosuchlist@lists.test"], crlf(f"From: {ALICE}\nSubject: lost\n\nx\n"))
    wait_for(lambda: len(f.all_files(ALICE)) > before, 60, "the bounce at alice")
    raw = f.all_files(ALICE)[-1].read_bytes()
    assert b"multipart/report" in raw and b"nosuchlist@lists.test" in raw


def log_tail(d):
    p = d / "var" / "logs" / "mailman.log"
    return p.read_text(errors="replace")[-2000:] if p.exists() else "(no log)"
