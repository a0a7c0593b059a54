"""The whole path: swaks/smtplib/sendmail -> smtpd or maildrop -> qmgr ->
lmtpd -> Maildir. Volume with exactly-once delivery, kill -9 of each daemon
in the middle of a run, a bounce (RFC 3464 DSN) for an alias with an unknown
target, and sendmail with the queue manager stopped."""

import concurrent.futures
import email
import os
import re
import smtplib
import subprocess
import threading
import time

import pytest

from harness import BIN, Facteur, crlf, wait_for

USERS = ["alice@example.test", "bob@example.test", "carol@example.test", "demo@example.test"]


@pytest.fixture
def suite():
    f = Facteur(extra={"qmgr": 'min_backoff = "1s"\nmax_backoff = "2s"\nscan_interval = "1s"', "smtpd": "max_messages_per_ip_per_minute = 100000\nmax_connections_per_ip = 100"})
    for u in USERS[:3]:
        f.add_user(u)
    f.start_all()
    yield f
    f.cleanup()


def seqs_delivered(f):
    """seq -> list of files holding it, over all users' INBOX."""
    out = {}
    for u in USERS:
        for p in f.all_files(u):
            m = re.search(rb"X-Seq: (\d+)", p.read_bytes())
            assert m, p
            out.setdefault(int(m.group(1)), []).append(p)
    return out


def test_thousand_messages_with_swaks_ten_parallel(suite):
    f = suite

    def body(i):
        return "\n".join(f"line {j} of message {i}" for j in range(1 + i % 30))

    def send(i):
        r = subprocess.run(
            ["swaks", "--server", "127.0.0.1", "--port", str(f.smtp_port), "--from", "load@remote.test", "--to", USERS[i % 4],
             "--header", f"X-Seq: {i}", "--header", f"Subject: load {i}", "--body", body(i), "--silent", "2"],
            capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        return i

    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        done = list(pool.map(send, range(1000)))
    assert len(done) == 1000
    wait_for(lambda: len(seqs_delivered(f)) >= 1000, 180, lambda: f"1000 deliveries (have {len(seqs_delivered(f))})")
    got = seqs_delivered(f)
    assert sorted(got) == list(range(1000))
    for i, files in got.items():
        assert len(files) == 1, f"message {i} delivered {len(files)} times"
        stored = files[0].read_bytes()
        assert f"Delivered-To: {USERS[i % 4]}\n".encode() in stored
        # The body arrives intact (swaks ends it with blank lines of its own).
        assert stored.split(b"\n\n", 1)[1].rstrip(b"\n") == body(i).encode(), i
    # The queue is empty afterwards.
    for q in ("incoming", "active", "deferred", "maildrop"):
        d = f.root / "spool" / q
        wait_for(lambda: not any(p.is_file() for p in d.iterdir()), 30, f"{q} to be empty")


def test_kill9_each_daemon_during_a_run(suite):
    f = suite
    acked = {}
    lock = threading.Lock()
    total = 1000

    def msg(i):
        return crlf(f"From: load@remote.test\nSubject: crash {i}\nX-Seq: {i}\n\n" + f"body {i}\n" * (1 + i % 40))

    def client(k):
        c = None
        for i in range(k, total, 10):
            for _ in range(50):
                try:
                    if c is None:
                        c = smtplib.SMTP("127.0.0.1", f.smtp_port, timeout=30)
                    c.sendmail("load@remote.test", [USERS[i % 3]], msg(i))
                    with lock:
                        acked[i] = True
                    break
                except (smtplib.SMTPServerDisconnected, ConnectionError, OSError, smtplib.SMTPException) as e:
                    # Not acknowledged: the message may or may not be queued.
                    # Never resend a message that might be queued (that would
                    # be our own duplicate); move on to the next one.
                    c = None
                    time.sleep(0.2)
                    break
        if c:
            try:
                c.quit()
            except Exception:
                pass

    def killer():
        for name, at in (("smtpd", 150), ("qmgr", 400), ("lmtpd", 650)):
            wait_for(lambda: len(acked) >= at, 120, f"{at} acknowledged messages")
            p = f.daemons[name]
            f.kill9(p)
            time.sleep(0.3)
            f.start(name)

    kt = threading.Thread(target=killer)
    kt.start()
    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        for fut in [pool.submit(client, k) for k in range(10)]:
            fut.result()
    kt.join()
    assert len(acked) >= 900, len(acked)

    wait_for(lambda: set(acked) <= set(seqs_delivered(f)), 180, lambda: f"acknowledged messages to arrive; missing {sorted(set(acked) - set(seqs_delivered(f)))[:20]}")
    # Let retries settle, then check exactly-once.
    time.sleep(3)
    got = seqs_delivered(f)
    qlog = f.log_text("qmgr")
    for i, files in got.items():
        stored = files[0].read_bytes()
        assert stored.endswith(msg(i).replace(b"\r\n", b"\n")), i
        if len(files) > 1:
            # Only in the logged window between lmtpd's 250 and qmgr's bookkeeping.
            qid = re.search(rb" id (\w+)", stored).group(1).decode()
            assert qid in qlog and "duplicate" in qlog, f"message {i} ({qid}) delivered {len(files)} times without a logged duplicate window"
    missing = set(acked) - set(got)
    assert not missing, sorted(missing)


def sendmail(f, *args, stdin):
    env = dict(os.environ, FACTEUR_CONFIG=str(f.config))
    return subprocess.run([str(BIN / "sendmail"), *args], input=stdin, capture_output=True, env=env, timeout=60)


def test_alias_with_unknown_target_bounces_with_a_dsn(suite):
    f = suite
    f.ctl("alias", "add", "lost@example.test", "ghost@example.test")
    r = sendmail(f, "-f", "alice@example.test", "-i", "lost@example.test",
                 stdin=b"From: alice@example.test\nTo: lost@example.test\nSubject: into the void\nMessage-ID: <void@example.test>\n\nhello?\n")
    assert r.returncode == 0, r
    [p] = wait_for(lambda: f.all_files("alice@example.test"), 60, "the bounce")
    raw = p.read_bytes()
    assert raw.startswith(b"Return-Path: <>\n")
    m = email.message_from_bytes(raw)
    assert m.get_content_type() == "multipart/report"
    assert m.get_param("report-type") == "delivery-status"
    parts = [x.get_content_type() for x in m.walk()]
    assert "message/delivery-status" in parts
    assert "message/rfc822" in parts or "text/rfc822-headers" in parts
    status = next(x for x in m.walk() if x.get_content_type() == "message/delivery-status")
    text = status.as_string()
    assert "Action: failed" in text and re.search(r"Status: 5\.\d\.\d", text), text
    assert "ghost@example.test" in text or "lost@example.test" in text
    assert b"into the void" in raw
    assert f.all_files("bob@example.test") == []


def test_sendmail_t_with_qmgr_stopped(suite):
    f = suite
    q = f.daemons["qmgr"]
    q.terminate()
    q.wait(20)
    r = sendmail(f, "-t", "-i", stdin=b"To: Bob <bob@example.test>\nCc: carol@example.test\nBcc: alice@example.test\nSubject: cron says hi\n\nDaily report.\n")
    assert r.returncode == 0, r
    maildrop = f.root / "spool" / "maildrop"
    assert [p for p in maildrop.iterdir() if p.is_file()], "nothing in maildrop"
    time.sleep(1)
    assert f.all_files("bob@example.test") == []
    f.start("qmgr")
    for u in ("bob@example.test", "carol@example.test", "alice@example.test"):
        [p] = wait_for(lambda: f.all_files(u), 60, f"delivery to {u}")
        stored = p.read_bytes()
        assert b"Daily report." in stored
        assert b"Bcc:" not in stored
    # Delivered and removed: mailq says so.
    wait_for(lambda: sendmail(f, "-bp", stdin=b"").stdout == b"Mail queue is empty\n", 30, "an empty queue")


def test_one_grep_follows_a_message(suite):
    """smtpd's queue id is in smtpd's, qmgr's and lmtpd's log lines about
    the message (qmgr passes it to lmtpd as XQUEUEID); a message from
    sendmail is logged with the user who ran it (the file's owner)."""
    f = suite
    with smtplib.SMTP("127.0.0.1", f.smtp_port, timeout=30) as c:
        c.ehlo("client.test")
        c.mail("far@remote.test")
        c.rcpt("bob@example.test")
        code, text = c.data(b"Subject: follow me\r\n\r\nhi\r\n")
    assert code == 250, text
    qid = re.search(rb"queued as ([0-9A-Za-z]+)", text).group(1).decode()
    wait_for(lambda: f.all_files("bob@example.test"), 60, "the delivery")
    for daemon in ("smtpd", "qmgr", "lmtpd"):
        wait_for(lambda: re.search(rf'queue_id="?{qid}\b', f.log_text(daemon)), 10,
                 lambda: f"queue_id={qid} in {daemon}'s log:\n{f.log_text(daemon)}")
    r = sendmail(f, "-i", "carol@example.test", stdin=b"Subject: from cron\n\nhi\n")
    assert r.returncode == 0, r
    wait_for(lambda: f.all_files("carol@example.test"), 60, "the delivery")
    import pwd
    me = pwd.getpwuid(os.geteuid()).pw_name
    picked = [l for l in f.log_text("qmgr").splitlines() if "picked up" in l and re.search(r'queue="?maildrop', l)]
    assert picked and re.search(rf'user="?{me}\b', picked[-1]), picked


def test_a_pooled_lmtp_connection_closed_by_a_restart_loses_no_attempt(suite):
    """The qmgr reuses its LMTP connection without a RSET first. After
    lmtpd restarts, the pooled connection is dead: the next message must
    go through on a new connection at its first attempt (the dead one
    fails before any reply, so nothing was sent), not be deferred."""
    f = suite

    def send(i):
        with smtplib.SMTP("127.0.0.1", f.smtp_port, timeout=30) as c:
            c.ehlo("client.test")
            c.mail("far@remote.test")
            c.rcpt("bob@example.test")
            code, text = c.data(crlf(f"Subject: pooled {i}\nX-Seq: {i}\n\nhi\n"))
        assert code == 250, text
        return re.search(rb"queued as ([0-9A-Za-z]+)", text).group(1).decode()

    send(0)
    wait_for(lambda: len(seqs_delivered(f)) == 1, 60, "the first delivery")
    # The qmgr's connection is back in its pool; lmtpd goes away and comes back.
    f.restart("lmtpd")
    qid = send(1)
    wait_for(lambda: len(seqs_delivered(f)) == 2, 60, "the second delivery")
    lines = [l for l in f.log_text("qmgr").splitlines() if re.search(rf'queue_id="?{qid}\b', l)]
    assert any('status="delivered"' in l or "status=delivered" in l for l in lines), lines
    assert not any("deferred" in l or "LMTP connection failed" in l for l in lines), lines
    assert len(seqs_delivered(f)[1]) == 1
