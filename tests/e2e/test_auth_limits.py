"""Logins under attack, over IMAP and SMTP submission (issue #14, items 1
and 6): a burst of wrong logins from many addresses costs the daemon a
bounded amount of memory (password hashes run a few at a time, whatever
the number of attempts); an attacker's failures slow the attacker down,
not the real user logging in from elsewhere; and SMTP AUTH slows repeated
failures down as IMAP does.

Client addresses: Linux routes all of 127.0.0.0/8 to loopback, so a test
binds its sockets to 127.0.0.x (one /24: the attacker's network) or
127.1.0.x (another network). The users' passwords are argon2id hashes made
by `facteurctl user add`, as in production."""

import base64
import smtplib
import socket
import sqlite3
import threading
import time

import pytest

from harness import Facteur

ALICE, ALICE_PW = "alice@example.test", "alice-pw"
ATTACKERS = [f"127.0.0.{i}" for i in range(10, 20)]
IMAP_FAILED = b"NO [AUTHENTICATIONFAILED]"
MIB = 1024


@pytest.fixture
def fac():
    f = Facteur(extra={
        "imapd": "allow_plaintext_auth_on_loopback = true",
        "smtpd": "allow_plaintext_auth_on_loopback = true",
    })
    try:
        f.add_user(ALICE, ALICE_PW)
        with sqlite3.connect(f.root / "state" / "directory.sqlite") as db:
            (stored,) = db.execute("SELECT password_hash FROM users WHERE address = ?", (ALICE,)).fetchone()
        assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$"), stored
        f.start("lmtpd")
        f.start("imapd")
        f.start("smtpd")
    except BaseException:
        f.cleanup()
        raise
    yield f
    f.cleanup()


def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as s:
        for line in s:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


def imap_login(f, src, user, password):
    """LOGIN from address `src`: (the tagged reply, seconds taken)."""
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", f.imap_port), timeout=120, source_address=(src, 0)) as s:
        r = s.makefile("rb")
        assert r.readline().startswith(b"* OK")
        s.sendall(f'a LOGIN "{user}" "{password}"\r\n'.encode())
        while line := r.readline():
            if line.startswith(b"a "):
                return line[2:].rstrip(), time.monotonic() - t0
    return None, time.monotonic() - t0


def smtp_auth(f, src, user, password, session=None):
    """AUTH PLAIN on submission from address `src` (or on `session`):
    (reply code, seconds taken)."""
    s = session or smtplib.SMTP("127.0.0.1", f.submission_port, timeout=120, source_address=(src, 0))
    try:
        t0 = time.monotonic()
        if session is None:
            s.ehlo("client.test")
            assert "PLAIN" in s.esmtp_features.get("auth", ""), s.esmtp_features
        creds = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        code, _ = s.docmd("AUTH", "PLAIN " + creds)
        return code, time.monotonic() - t0
    finally:
        if session is None:
            s.close()


def in_parallel(calls):
    """Runs each call in its own thread, all at once; their results."""
    results = [None] * len(calls)
    start = threading.Barrier(len(calls))

    def run(i, call):
        start.wait()
        try:
            results[i] = call()
        except Exception as e:  # reported below, not lost in the thread
            results[i] = e

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    return results


def burst(login, n=100):
    """n wrong logins at once from the ten attacker addresses, half for
    alice and half for unknown users."""
    calls = []
    for i in range(n):
        src = ATTACKERS[i % len(ATTACKERS)]
        user = ALICE if i % 2 else f"nobody{i}@example.test"
        calls.append(lambda src=src, user=user, i=i: login(src, user, f"guess-{i}"))
    return in_parallel(calls)


@pytest.mark.parametrize("daemon", ["imapd", "smtpd"])
def test_a_burst_of_wrong_logins_costs_bounded_memory(fac, daemon):
    f = fac
    pid = f.daemons[daemon].pid
    resting = status_kib(pid, "VmRSS")
    if daemon == "imapd":
        results = burst(lambda src, u, p: imap_login(f, src, u, p))
        replies = [r[0] if isinstance(r, tuple) else r for r in results]
        # A failure, or (the hash queue of an address full) a temporary one.
        assert all(isinstance(r, bytes) and r.startswith((IMAP_FAILED, b"NO [UNAVAILABLE]")) for r in replies), replies
        assert sum(r.startswith(IMAP_FAILED) for r in replies) >= 50, replies
    else:
        results = burst(lambda src, u, p: smtp_auth(f, src, u, p))
        replies = [r[0] if isinstance(r, tuple) else r for r in results]
        assert set(replies) <= {535, 454} and replies.count(535) >= 50, replies
    peak = status_kib(pid, "VmHWM")
    took = max(r[1] for r in results)
    print(f"{daemon}: resting {resting / MIB:.1f} MiB, peak {peak / MIB:.1f} MiB "
          f"(+{(peak - resting) / MIB:.1f}), the burst took {took:.1f} s")
    assert peak - resting < 64 * MIB, (resting, peak)
    # Every attempt was answered, and the daemon still serves.
    if daemon == "imapd":
        assert imap_login(f, "127.1.0.2", ALICE, ALICE_PW)[0].startswith(b"OK"), f.log_text("imapd")
    else:
        assert smtp_auth(f, "127.1.0.2", ALICE, ALICE_PW)[0] == 235, f.log_text("smtpd")


def test_the_real_user_logs_in_from_elsewhere_after_an_imap_burst(fac):
    f = fac
    # Alice read her mail from 127.0.0.3 this morning: inside the network
    # the attack comes from.
    assert imap_login(f, "127.0.0.3", ALICE, ALICE_PW)[0].startswith(b"OK")
    # An attacker guesses her password: 20 at once from one address, 30
    # more from nine others of the /24.
    guesses = [lambda: imap_login(f, ATTACKERS[0], ALICE, "guess")] * 20
    guesses += [lambda src=src: imap_login(f, src, ALICE, "guess") for src in ATTACKERS[1:] * 4][:30]
    replies = in_parallel(guesses)
    # Guesses the hash queue had room for fail; the others are told to
    # retry later (no hash spent, no penalty: a burst is no guess).
    assert all(r[0].startswith((IMAP_FAILED, b"NO [UNAVAILABLE]")) for r in replies), replies
    assert any(r[0].startswith(IMAP_FAILED) for r in replies), replies
    # Alice from another network, and from her usual address: at once.
    for src in ("127.1.0.5", "127.0.0.3"):
        reply, took = imap_login(f, src, ALICE, ALICE_PW)
        assert reply.startswith(b"OK"), (src, reply)
        assert took < 2, (src, took)
    # The attacker's address is slowed down: no answer within 2 s.
    with socket.create_connection(("127.0.0.1", f.imap_port), timeout=2, source_address=(ATTACKERS[0], 0)) as s:
        r = s.makefile("rb")
        assert r.readline().startswith(b"* OK")
        s.sendall(f'a LOGIN "{ALICE}" "guess"\r\n'.encode())
        with pytest.raises(TimeoutError):
            r.readline()


def test_the_real_user_logs_in_from_elsewhere_after_an_smtp_burst(fac):
    f = fac
    replies = in_parallel([lambda: smtp_auth(f, ATTACKERS[1], ALICE, "guess")] * 20)
    assert {r[0] for r in replies} <= {535, 454} and 535 in {r[0] for r in replies}, replies
    code, took = smtp_auth(f, "127.1.0.6", ALICE, ALICE_PW)
    assert code == 235 and took < 2, (code, took)


def test_smtp_auth_slows_repeated_failures_down(fac):
    f = fac
    s = smtplib.SMTP("127.0.0.1", f.submission_port, timeout=120, source_address=("127.0.0.40", 0))
    s.ehlo("client.test")
    first = smtp_auth(f, None, ALICE, "wrong-1", session=s)
    second = smtp_auth(f, None, ALICE, "wrong-2", session=s)
    s.close()
    assert first[0] == second[0] == 535, (first, second)
    # The pause of every failure (1.5 s), then a wait before the next
    # attempt is even checked (1.5 s after one failure, doubling).
    assert 1.4 <= first[1] < 2.5, first
    assert second[1] >= 2.8, second
