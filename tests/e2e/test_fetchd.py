"""facteur-fetchd, the mail collector, against remote servers nobody here
wrote (Debian's Dovecot, POP3 and IMAP, private instance on loopback) and
against facteur's own pop3d and imapd:

- POP3, keep + new only: fetched once, not again; another account with
  --delete empties the remote mailbox; without --new-only each run takes
  all; each copy has a Received: field naming the source;
- IMAP over implicit TLS with the certificate checked (the test's CA),
  a folder, new only, then the folder made again (a new UIDVALIDITY):
  fetched again and said so;
- multidrop: recipients from X-Original-To / Delivered-To, else the
  fallback mailbox;
- a certificate the CA file does not vouch for is refused (and accepted
  with --insecure), a wrong password is reported as a refused login;
- Dovecot: POP3 with --delete, IMAP keep + new only;
- the daemon collects by itself, and `kill -9` in the middle of 1,000
  messages loses none: every remote message is local at least once, the
  interrupted batch at most twice, and the remote mailbox ends empty."""

import email
import imaplib
import os
import signal
import smtplib
import socket
import ssl
import subprocess
import threading
import time

import pytest

from dovecotpeer import DOVECOT, dovecot
from harness import Facteur, crlf, wait_for
from postfixpeer import world_dir

ALICE, BOB, CAROL, FAR = ("alice@example.test", "bob@example.test", "carol@example.test",
                          "far@example.test")
PW = "far-secret"


@pytest.fixture
def f():
    f = Facteur(extra={
        "pop3d": "allow_plaintext_auth_on_loopback = true",
        "imapd": "allow_plaintext_auth_on_loopback = true",
        "qmgr": 'scan_interval = "1s"',
    })
    with open(f.config, "a") as c:
        c.write(f'\n[fetchd]\nca_file = "{f.root}/tls/cert.pem"\ncheck_interval = "1s"\ntimeout = "20s"\n')
    for u in (ALICE, BOB, CAROL):
        f.add_user(u)
    f.add_user(FAR, PW)
    for d in ("lmtpd", "qmgr", "smtpd", "pop3d", "imapd"):
        f.start(d)
    yield f
    f.cleanup()


def to_far(f, subjects, extra=""):
    with smtplib.SMTP("127.0.0.1", f.smtp_port, timeout=30) as s:
        for subj in subjects:
            s.sendmail("sender@remote.test", [FAR], crlf(f"From: sender@remote.test\nSubject: {subj}\n{extra}\nbody of {subj}\n"))
    wait_for(lambda: len(f.all_files(FAR)) >= len(subjects), 30, "the messages at far@")


def subjects(f, address):
    return [email.message_from_bytes(p.read_bytes())["Subject"] for p in f.all_files(address)]


def add(f, local, *args, password=PW):
    out = f.ctl("fetch", "add", local, *args, stdin=password + "\n")
    assert out.startswith("account "), out
    return out.split()[1].rstrip(":")


def run(f, ident, check=True):
    return f.ctl("fetch", "run", ident, check=check)


def test_pop3_keep_new_only_then_delete(f):
    to_far(f, ["p1", "p2", "p3"])
    a = add(f, ALICE, "--protocol", "pop3", "--host", "127.0.0.1", "--port", str(f.pop3_port),
            "--tls", "none", "--user", FAR, "--keep", "--new-only")
    assert "3 fetched, 0 deleted" in run(f, a)
    wait_for(lambda: sorted(subjects(f, ALICE)) == ["p1", "p2", "p3"], 30, "three copies at alice")
    raw = f.all_files(ALICE)[0].read_bytes()
    assert b"by mail.example.test (facteur-fetchd) with POP3 id " in raw and b"from 127.0.0.1" in raw, raw[:600]
    assert "0 fetched" in run(f, a)
    assert len(f.all_files(FAR)) == 3
    status = f.ctl("fetch", "status")
    assert "0 fetched" in status and "error=-" in status, status
    # Another account on the same mailbox, deleting: all three, then none left.
    b = add(f, BOB, "--protocol", "pop3", "--host", "127.0.0.1", "--port", str(f.pop3_port),
            "--tls", "none", "--user", FAR, "--delete")
    assert "3 fetched, 3 deleted" in run(f, b)
    wait_for(lambda: len(f.all_files(BOB)) == 3, 30, "three copies at bob")
    wait_for(lambda: len(f.all_files(FAR)) == 0, 10, "far@ emptied")
    # Without --new-only, every run takes everything again (fetchmail -a).
    to_far(f, ["q1", "q2"])
    c = add(f, CAROL, "--protocol", "pop3", "--host", "127.0.0.1", "--port", str(f.pop3_port),
            "--tls", "none", "--user", FAR, "--keep")
    assert "2 fetched" in run(f, c) and "2 fetched" in run(f, c)
    wait_for(lambda: sorted(subjects(f, CAROL)) == ["q1", "q1", "q2", "q2"], 30, "two runs of all at carol")
    listed = f.ctl("fetch", "list")
    assert "pop3://far@example.test@127.0.0.1" in listed and "delete" in listed and PW not in listed


def imap_as(f, user, password, port=None):
    m = imaplib.IMAP4("127.0.0.1", port or f.imap_port)
    m.login(user, password)
    return m


def test_imap_tls_verified_folder_and_uidvalidity_change(f):
    m = imap_as(f, FAR, PW)
    m.create("Archive")
    for s in ("a1", "a2"):
        m.append("Archive", None, None, crlf(f"From: x@remote.test\nSubject: {s}\n\nold mail\n"))
    a = add(f, ALICE, "--protocol", "imap", "--host", "localhost", "--port", str(f.imaps_port),
            "--tls", "implicit", "--user", FAR, "--keep", "--new-only", "--folder", "Archive")
    assert "2 fetched, 0 deleted" in run(f, a)
    assert "0 fetched" in run(f, a)
    wait_for(lambda: sorted(subjects(f, ALICE)) == ["a1", "a2"], 30, "the two at alice")
    assert b"with IMAP id " in f.all_files(ALICE)[0].read_bytes()
    # The folder made again: a new UIDVALIDITY, its messages count as new.
    m.delete("Archive")
    m.create("Archive")
    m.append("Archive", None, None, crlf("From: x@remote.test\nSubject: a3\n\nnew folder\n"))
    m.logout()
    out = run(f, a)
    assert "1 fetched" in out and "UIDVALIDITY changed in 1 folders" in out, out
    wait_for(lambda: "a3" in subjects(f, ALICE), 30, "a3 at alice")


def test_multidrop(f):
    with smtplib.SMTP("127.0.0.1", f.smtp_port, timeout=30) as s:
        for subj, head in (("for bob", f"X-Original-To: {BOB}"), ("for carol", f"Delivered-To: {CAROL}"),
                           ("for nobody", "X-Original-To: someone@elsewhere.test")):
            s.sendmail("sender@remote.test", [FAR], crlf(f"From: sender@remote.test\n{head}\nSubject: {subj}\n\nx\n"))
    wait_for(lambda: len(f.all_files(FAR)) == 3, 30, "three at far@")
    a = add(f, ALICE, "--protocol", "imap", "--host", "127.0.0.1", "--port", str(f.imap_port),
            "--tls", "none", "--user", FAR, "--multidrop", "--delete")
    assert "3 fetched, 3 deleted" in run(f, a)
    wait_for(lambda: subjects(f, BOB) == ["for bob"] and subjects(f, CAROL) == ["for carol"]
             and subjects(f, ALICE) == ["for nobody"], 30, "each where its header says")


def other_tls_server(tmp):
    """A POP3-ish TLS server with a certificate of its own (not the CA
    file's): greets, refuses USER."""
    key, cert = tmp / "other.key", tmp / "other.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                    "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost"], check=True, capture_output=True)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(8)
    ls.settimeout(30)

    def serve():
        for _ in range(4):
            try:
                c, _ = ls.accept()
                with ctx.wrap_socket(c, server_side=True) as t:
                    t.sendall(b"+OK other server\r\n")
                    t.recv(1000)
                    t.sendall(b"-ERR no such user\r\n")
            except (OSError, ssl.SSLError):
                continue
    threading.Thread(target=serve, daemon=True).start()
    return ls.getsockname()[1]


def test_bad_certificate_and_wrong_password(f):
    port = other_tls_server(f.root)
    a = add(f, ALICE, "--protocol", "pop3", "--host", "localhost", "--port", str(port), "--user", "u")
    out = run(f, a, check=False)
    assert "failed" in out and "certificate" in out.lower(), out
    b = add(f, ALICE, "--protocol", "pop3", "--host", "localhost", "--port", str(port), "--user", "u", "--insecure")
    out = run(f, b, check=False)
    assert "login refused" in out and "no such user" in out, out
    c = add(f, ALICE, "--protocol", "pop3", "--host", "127.0.0.1", "--port", str(f.pop3_port),
            "--tls", "none", "--user", FAR, password="wrong")
    out = run(f, c, check=False)
    assert "login refused" in out, out
    status = [l for l in f.ctl("fetch", "status").splitlines() if l.startswith(f"{c}\t")][0]
    assert "login refused" in status and "failures=1" in status, status


@pytest.fixture
def dove():
    if not os.path.exists(DOVECOT) or not os.path.exists("/usr/lib/dovecot/pop3"):
        pytest.skip("dovecot-imapd and dovecot-pop3d are not installed (tests/deps installs them)")
    # Under /tmp, not pytest's tmp_path: Dovecot's unprivileged processes
    # must reach it.
    with world_dir("ffetch-") as w, dovecot(w / "dovecot", w / "mail", {"remote": PW}, pop3=True) as ports:
        yield ports


def fill_dovecot(port, n, prefix):
    m = imaplib.IMAP4("127.0.0.1", port)
    m.login("remote", PW)
    for i in range(n):
        m.append("INBOX", None, None, crlf(f"From: x@far.test\nSubject: {prefix}{i}\nMessage-ID: <{prefix}{i}@far.test>\n\nbody {i}\n"))
    m.logout()


def dovecot_count(port):
    m = imaplib.IMAP4("127.0.0.1", port)
    m.login("remote", PW)
    n = int(m.select("INBOX")[1][0])
    m.logout()
    return n


def test_dovecot_pop3_delete_and_imap_keep(f, dove):
    imap_port, pop3_port = dove
    fill_dovecot(imap_port, 4, "d")
    a = add(f, ALICE, "--protocol", "imap", "--host", "127.0.0.1", "--port", str(imap_port),
            "--tls", "none", "--user", "remote", "--keep", "--new-only")
    assert "4 fetched, 0 deleted" in run(f, a)
    assert "0 fetched" in run(f, a)
    assert dovecot_count(imap_port) == 4
    b = add(f, BOB, "--protocol", "pop3", "--host", "127.0.0.1", "--port", str(pop3_port),
            "--tls", "none", "--user", "remote", "--delete")
    assert "4 fetched, 4 deleted" in run(f, b)
    assert dovecot_count(imap_port) == 0
    wait_for(lambda: sorted(subjects(f, ALICE)) == sorted(subjects(f, BOB)) == ["d0", "d1", "d2", "d3"], 30,
             "four at alice and bob")


def test_the_daemon_survives_kill_9_in_the_middle(f, dove):
    imap_port, pop3_port = dove
    n = 1000
    fill_dovecot(imap_port, n, "k")
    add(f, ALICE, "--protocol", "pop3", "--host", "127.0.0.1", "--port", str(pop3_port),
        "--tls", "none", "--user", "remote", "--delete", "--new-only", "--max", "200")
    p = f.start("fetchd")
    wait_for(lambda: len(f.all_files(ALICE)) >= 150, 120, "a first part fetched")
    f.kill9(p)
    killed_at = len(f.all_files(ALICE))
    f.start("fetchd")
    wait_for(lambda: dovecot_count(imap_port) == 0, 300, "the remote mailbox emptied")
    wait_for(lambda: len(f.all_files(ALICE)) >= n, 120, "every message local")
    time.sleep(2)
    got = subjects(f, ALICE)
    counts = {s: got.count(s) for s in set(got)}
    assert set(counts) == {f"k{i}" for i in range(n)}, "missing: " + str(sorted({f"k{i}" for i in range(n)} - set(counts))[:10])
    twice = [s for s, c in counts.items() if c > 1]
    assert all(c <= 2 for c in counts.values()), counts
    assert len(twice) <= 200, (len(twice), killed_at)
    print(f"\nkill -9 after {killed_at} local copies: {n} messages, {len(twice)} fetched twice")
