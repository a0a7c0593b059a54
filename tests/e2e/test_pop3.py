"""facteur-pop3d with real clients: Python's poplib for every command (plain
on loopback, STLS, implicit TLS), sizes equal to the octets RETR sends, TOP,
UIDL stable across a restart, [IN-USE], a client killed in the middle of
RETR, and fetchmail collecting 1,000 messages delivered over LMTP.

Mail is delivered with smtplib.LMTP over lmtpd's Unix socket; lmtpd adds
Return-Path: and Delivered-To: in front of each message."""

import base64
import concurrent.futures
import os
import poplib
import re
import shutil
import signal
import smtplib
import ssl
import subprocess
import sys
import time

import pytest

from harness import Facteur, crlf, wait_for

ALICE, ALICE_PW = "alice@example.test", "alice-pw"
BOB, BOB_PW = "bob@example.test", "bob-pw"

DOTTY = crlf("From: s@remote.test\nSubject: dots\n\n.leading dot\n..two dots\n.\nend\n")


def tls_ctx():
    c = ssl.create_default_context()
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    return c


def make(plaintext_on_loopback):
    extra = {"pop3d": "allow_plaintext_auth_on_loopback = true"} if plaintext_on_loopback else {}
    f = Facteur(extra=extra)
    f.add_user(ALICE, ALICE_PW)
    f.add_user(BOB, BOB_PW)
    f.start("lmtpd")
    f.start("pop3d")
    return f


@pytest.fixture
def pop3():
    """lmtpd and pop3d, clear-text login allowed on loopback."""
    f = make(True)
    yield f
    f.cleanup()


@pytest.fixture
def pop3_strict():
    """lmtpd and pop3d with the default: no password before TLS."""
    f = make(False)
    yield f
    f.cleanup()


def deliver(f, rcpt, messages, clients=1):
    """Delivers `messages` (network form) to `rcpt` over LMTP."""

    def run(part):
        c = smtplib.LMTP(str(f.socket))
        for m in part:
            c.sendmail("s@remote.test", [rcpt], m)
        c.quit()

    parts = [messages[k::clients] for k in range(clients)]
    with concurrent.futures.ThreadPoolExecutor(clients) as ex:
        for r in ex.map(run, parts):
            pass


def login(f, user=ALICE, pw=ALICE_PW):
    p = poplib.POP3("127.0.0.1", f.pop3_port, timeout=30)
    p.user(user)
    p.pass_(pw)
    return p


def plain_log(f):
    """pop3d's log without colours."""
    return re.sub(r"\x1b\[[0-9;]*m", "", f.log_text("pop3d"))


def wire_octets(lines):
    """Octets of a multi-line body as sent: poplib hands back unstuffed
    lines, so each line that starts with '.' had one more on the wire."""
    return sum(len(l) + 2 + (1 if l.startswith(b".") else 0) for l in lines)


def without_trace(lines):
    """The message as delivered: without lmtpd's Return-Path:/Delivered-To:."""
    assert lines[0].startswith(b"Return-Path: ") and lines[1].startswith(b"Delivered-To: "), lines[:2]
    return b"\r\n".join(lines[2:]) + b"\r\n"


def test_poplib_every_command(pop3):
    f = pop3
    msgs = [crlf("Subject: one\n\nbody one\nline 2\nline 3\n"), DOTTY, crlf("Subject: three\n\nthree\n")]
    deliver(f, ALICE, msgs)
    p = poplib.POP3("127.0.0.1", f.pop3_port, timeout=30)
    assert p.getwelcome().startswith(b"+OK mail.example.test POP3")
    caps = p.capa()
    for c in ("TOP", "USER", "SASL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "UIDL", "STLS", "IMPLEMENTATION"):
        assert c in caps, (c, caps)
    assert caps["SASL"] == ["SCRAM-SHA-256", "PLAIN", "LOGIN"]
    assert p.user(ALICE).startswith(b"+OK")
    assert p.pass_(ALICE_PW).startswith(b"+OK Logged in, 3 messages")
    count, total = p.stat()
    assert count == 3
    resp, listing, _ = p.list()
    sizes = {int(n): int(s) for n, s in (l.split() for l in listing)}
    assert sorted(sizes) == [1, 2, 3] and sum(sizes.values()) == total
    assert p.list(2) == b"+OK 2 %d" % sizes[2]
    # RETR sends exactly the announced octets, dot-stuffing included.
    for n in (1, 2, 3):
        resp, lines, octets = p.retr(n)
        assert resp == b"+OK %d octets" % sizes[n]
        assert wire_octets(lines) == sizes[n]
        assert without_trace(lines) == msgs[n - 1]
    assert wire_octets(p.retr(2)[1]) > p.retr(2)[2]  # stuffing was counted
    # TOP with 0 and 1 lines, and more lines than there are.
    resp, lines, _ = p.top(1, 0)
    assert lines[-1] == b"" and lines[-2] == b"Subject: one", lines
    resp, lines, _ = p.top(1, 1)
    assert lines[-2:] == [b"", b"body one"], lines
    assert p.top(2, 1000)[1] == p.retr(2)[1]
    # UIDL: UIDVALIDITY.UID, one per message.
    resp, uidls, _ = p.uidl()
    ids = [l.split()[1] for l in uidls]
    assert len(set(ids)) == 3 and all(b"." in i for i in ids)
    assert p.uidl(3).split()[2] == ids[2]
    assert p.noop().startswith(b"+OK")
    with pytest.raises(poplib.error_proto, match="No such message"):
        p.list(9)
    with pytest.raises(poplib.error_proto, match="No such message"):
        p.retr(9)
    # DELE, RSET, DELE again, QUIT: UPDATE deletes exactly the marked one.
    assert p.dele(1).startswith(b"+OK")
    with pytest.raises(poplib.error_proto, match="already deleted"):
        p.retr(1)
    assert p.stat() == (2, total - sizes[1])
    assert p.rset().startswith(b"+OK Maildrop has 3 messages")
    p.dele(1)
    p.dele(3)
    assert p.quit() == b"+OK Bye, 1 messages left"
    files = f.all_files(ALICE)
    assert len(files) == 1 and b"Subject: dots" in files[0].read_bytes()
    # A new session sees one message, numbered 1, with the same UIDL.
    p = login(f)
    assert p.stat()[0] == 1
    assert p.uidl(1).split()[2] == ids[1]
    p.quit()
    log = plain_log(f)
    assert "logged in user=alice@example.test messages=3" in log, log
    assert "logged out user=alice@example.test deleted=2 left=1" in log, log


def test_sasl_plain_and_wrong_password(pop3):
    f = pop3
    deliver(f, ALICE, [DOTTY])
    p = poplib.POP3("127.0.0.1", f.pop3_port, timeout=30)
    bad = base64.b64encode(b"\0alice@example.test\0wrong").decode()
    t0 = time.monotonic()
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
        p._shortcmd("AUTH PLAIN " + bad)
    assert time.monotonic() - t0 >= 1.0  # failed logins are slowed down
    good = base64.b64encode(b"\0alice@example.test\0alice-pw").decode()
    assert p._shortcmd("AUTH PLAIN " + good).startswith(b"+OK Logged in, 1 messages")
    p.quit()


def test_remembered_login_follows_password_changes(pop3):
    """pop3d remembers a successful login (directory.login_cache_seconds,
    on by default): a password change or a deleted user still takes effect
    at the very next login."""
    f = pop3

    def login(pw):
        p = poplib.POP3("127.0.0.1", f.pop3_port, timeout=30)
        try:
            p.user(ALICE)
            p.pass_(pw)
            return True
        except poplib.error_proto:
            return False
        finally:
            try:
                p.quit()
            except (poplib.error_proto, OSError):
                pass

    assert login("alice-pw") and login("alice-pw")  # the second one is remembered
    f.ctl("user", "passwd", ALICE, stdin="alice-new-pw\n")
    assert not login("alice-pw"), "the old password still works after passwd"
    assert login("alice-new-pw")
    f.ctl("user", "del", ALICE)
    assert not login("alice-new-pw"), "a deleted user still logs in"


def test_no_password_before_tls_then_stls_and_implicit_tls(pop3_strict):
    f = pop3_strict
    deliver(f, ALICE, [DOTTY])
    p = poplib.POP3("127.0.0.1", f.pop3_port, timeout=30)
    caps = p.capa()
    assert "STLS" in caps and "USER" not in caps and "SASL" not in caps, caps
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\] Plaintext authentication disallowed"):
        p.user(ALICE)
    assert p.stls(context=tls_ctx()).startswith(b"+OK")
    caps = p.capa()
    assert "USER" in caps and "STLS" not in caps, caps
    p.user(ALICE)
    assert p.pass_(ALICE_PW).startswith(b"+OK Logged in, 1 messages")
    resp, lines, _ = p.retr(1)
    assert without_trace(lines) == DOTTY
    p.quit()
    # POP3S: implicit TLS on its own port.
    s = poplib.POP3_SSL("127.0.0.1", f.pop3s_port, context=tls_ctx(), timeout=30)
    assert "STLS" not in s.capa()
    s.user(ALICE)
    s.pass_(ALICE_PW)
    count, total = s.stat()
    resp, lines, _ = s.retr(1)
    assert count == 1 and wire_octets(lines) == total
    s.quit()


def test_uidl_stable_across_restart_and_in_use(pop3):
    f = pop3
    deliver(f, ALICE, [crlf(f"Subject: m{i}\n\nbody {i}\n") for i in range(5)])
    p = login(f)
    before = p.uidl()[1]
    sizes = p.list()[1]
    # A second session on the same mailbox: [IN-USE]; another user is fine.
    q = poplib.POP3("127.0.0.1", f.pop3_port, timeout=30)
    q.user(ALICE)
    with pytest.raises(poplib.error_proto, match=r"\[IN-USE\]"):
        q.pass_(ALICE_PW)
    q.user(BOB)
    assert q.pass_(BOB_PW).startswith(b"+OK")
    q.quit()
    p.quit()
    # Restart pop3d: same UIDLs and sizes.
    d = f.daemons["pop3d"]
    d.terminate()
    d.wait(15)
    f.start("pop3d")
    p = login(f)
    assert p.uidl()[1] == before
    assert p.list()[1] == sizes
    # A new message keeps the old UIDLs and gets a new one.
    p.quit()
    deliver(f, ALICE, [crlf("Subject: new\n\nnew\n")])
    p = login(f)
    after = p.uidl()[1]
    assert after[:5] == before and len(after) == 6
    p.quit()


CLIENT = r"""
import poplib, sys, time
p = poplib.POP3("127.0.0.1", int(sys.argv[1]), timeout=30)
p.user(sys.argv[2]); p.pass_(sys.argv[3])
assert p.stat()[0] == 2
p.dele(2)
p.dele(1)
p.rset()
p.dele(2)
p._putcmd("RETR 1")
status = p.file.readline()
p.file.read(65536)  # a part of the message, then the client dies
print(status[:3].decode(), flush=True)
time.sleep(60)
"""


def test_client_killed_in_the_middle_of_retr_deletes_nothing(pop3):
    f = pop3
    big = crlf("Subject: big\n\n" + "a line of a large message, long enough\n" * 200_000)  # ~8 MB
    deliver(f, ALICE, [big, crlf("Subject: small\n\nsmall\n")])
    c = subprocess.Popen([sys.executable, "-c", CLIENT, str(f.pop3_port), ALICE, ALICE_PW], stdout=subprocess.PIPE, text=True)
    try:
        assert c.stdout.readline().strip() == "+OK"
    finally:
        c.send_signal(signal.SIGKILL)
        c.wait(10)
    # The session ends without UPDATE and releases the lock.
    def relogin():
        try:
            return login(f)
        except poplib.error_proto as e:
            assert b"IN-USE" in e.args[0], e
            return None
    p = wait_for(relogin, 20, "the lock to be released")
    assert p.stat()[0] == 2
    p.quit()
    assert len(f.all_files(ALICE)) == 2
    wait_for(lambda: "session ended without QUIT: nothing deleted user=alice@example.test marked=1" in plain_log(f), 10, "the log line")


FETCHMAILRC = """set no bouncemail
set no syslog
set idfile "{home}/fetchids"
poll 127.0.0.1 with proto POP3 port {port} and options uidl
    auth password
    user "{user}" there with password "{pw}" is root here
    {tls}
    mda "/bin/sh -c 'cat > $(mktemp {out}/msg.XXXXXXXX)'"
"""


@pytest.mark.skipif(shutil.which("fetchmail") is None, reason="fetchmail is not installed (Debian package fetchmail)")
def test_fetchmail_thousand_messages_keep_then_flush(pop3_strict, tmp_path):
    f = pop3_strict
    n = 1000
    msgs = [crlf(f"From: load@remote.test\nTo: {ALICE}\nSubject: load {i}\nMessage-ID: <load-{i}@remote.test>\n\n" + (".dot\n" if i % 7 == 0 else "") + f"body of message {i}\n" * (1 + i % 20)) for i in range(n)]
    t0 = time.monotonic()
    deliver(f, ALICE, msgs, clients=8)
    home = tmp_path / "fm"
    home.mkdir(mode=0o700)
    out = tmp_path / "out"
    out.mkdir()

    def fetch(port, tls, *args):
        rc = home / "fetchmailrc"
        rc.write_text(FETCHMAILRC.format(home=home, port=port, user=ALICE, pw=ALICE_PW, tls=tls, out=out))
        os.chmod(rc, 0o600)
        env = dict(os.environ, HOME=str(home), FETCHMAILHOME=str(home))
        r = subprocess.run(["fetchmail", "-f", str(rc), "--nosyslog", *args], capture_output=True, text=True, timeout=600, env=env)
        # 0: mail retrieved; 1: no mail.
        assert r.returncode in (0, 1), r.stdout + r.stderr + f.log_text("pop3d")[-3000:]
        return r

    # 1. Over STLS (required by sslproto), keeping the messages.
    r = fetch(f.pop3_port, "sslproto 'TLS1.2+' no sslcertck", "--keep", "-v")
    assert "POP3> STLS" in r.stdout + r.stderr, r.stdout[-2000:]
    assert "POP3> PASS" in r.stdout + r.stderr  # (fetchmail masks the password)
    got = sorted(out.iterdir())
    assert len(got) == n
    assert len(f.all_files(ALICE)) == n
    # 2. Over implicit TLS, without --keep and with --flush: nothing is
    # fetched twice (UIDL), and every message is deleted.
    fetch(f.pop3s_port, "ssl sslproto 'TLS1.2+' no sslcertck", "--flush")
    got = sorted(out.iterdir())
    assert len(got) == n, "a message was received twice"
    ids = set()
    for p in got:
        data = p.read_bytes()
        mid = [l for l in data.split(b"\n") if l.lower().startswith(b"message-id:")]
        assert len(mid) == 1, data[:300]
        ids.add(mid[0].split(b":", 1)[1].strip())
    assert ids == {f"<load-{i}@remote.test>".encode() for i in range(n)}
    wait_for(lambda: f.all_files(ALICE) == [], 10, "the mailbox to be empty")
    p = poplib.POP3_SSL("127.0.0.1", f.pop3s_port, context=tls_ctx(), timeout=30)
    p.user(ALICE)
    p.pass_(ALICE_PW)
    assert p.stat() == (0, 0)
    p.quit()
    print(f"fetchmail: {n} messages delivered, fetched twice over TLS in {time.monotonic() - t0:.1f} s")
