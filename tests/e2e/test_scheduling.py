"""`[scheduling] batch`: the daemons it names run every thread under
SCHED_BATCH (read back from the kernel, thread by thread), the others under
the normal policy, and mail goes through either way."""

import os
import smtplib
import subprocess

from harness import BIN, Facteur, crlf, wait_for

ALICE = "alice@example.test"


def policies(p):
    """The scheduling policy of every thread of process `p` (a thread that
    ends while they are read, an idle blocking thread, is left out)."""
    out = set()
    for t in os.listdir(f"/proc/{p.pid}/task"):
        try:
            out.add(os.sched_getscheduler(int(t)))
        except ProcessLookupError:
            pass
    assert out, f"no thread of {p.pid} read"
    return out


def send_one(f, subject):
    with smtplib.SMTP("127.0.0.1", f.smtp_port, timeout=30) as s:
        s.sendmail("bob@example.test", [ALICE], crlf(f"From: bob@example.test\nSubject: {subject}\n\nhi\n"))
    wait_for(lambda: any(subject.encode() in p.read_bytes() for p in f.all_files(ALICE)), 20, "delivery")


def test_the_mail_path_runs_batch_and_imapd_does_not():
    f = Facteur()
    try:
        f.add_user(ALICE)
        f.start_all()
        f.start("imapd")
        # Once mail has gone through, the runtimes have started their
        # worker and blocking threads: they must have inherited the policy.
        send_one(f, "batch")
        for name in ("smtpd", "qmgr", "lmtpd"):
            assert policies(f.daemons[name]) == {os.SCHED_BATCH}, name
        assert policies(f.daemons["imapd"]) == {os.SCHED_OTHER}
    finally:
        f.cleanup()


def test_an_empty_list_leaves_every_daemon_normal():
    f = Facteur(extra={"scheduling": "batch = []"})
    try:
        f.add_user(ALICE)
        f.start_all()
        send_one(f, "normal")
        for name in ("smtpd", "qmgr", "lmtpd"):
            assert policies(f.daemons[name]) == {os.SCHED_OTHER}, name
    finally:
        f.cleanup()


def test_a_name_that_is_no_daemon_is_refused():
    f = Facteur(extra={"scheduling": 'batch = ["smtpd", "postfix"]'})
    try:
        p = subprocess.run([str(BIN / "facteur-smtpd"), "--config", str(f.config)],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode == 78, (p.returncode, p.stderr)  # EX_CONFIG
        assert "scheduling.batch" in p.stderr and "postfix" in p.stderr, p.stderr
    finally:
        f.cleanup()
