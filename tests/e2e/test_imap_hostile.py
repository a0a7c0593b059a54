"""facteur-imapd against clients that try to wear it down (issue 14):

- a client that never logs in but keeps the connection busy (a cheap
  command now and then, bytes trickled in between) is closed when the
  login phase's time (`imapd.login_timeout`) is up, not kept for ever;
- a user who asks FETCH for hundreds of header sections of a message with
  100,000 header fields gets a clear tagged refusal beyond the limits, and
  while the heaviest FETCHes allowed run in several connections, another
  session's NOOP is still answered within 100 ms;
- an overlong command line is answered with the client's tag."""

import imaplib
import socket
import threading
import time

import pytest

from harness import Facteur
from test_imap import ALICE, ALICE_PW, BOB, BOB_PW, make, ok


@pytest.fixture
def hostile():
    f = make(imapd_extra='login_timeout = "10s"')
    yield f
    f.cleanup()


def test_the_login_phase_has_a_hard_end(hostile):
    s = socket.create_connection(("127.0.0.1", hostile.imap_port), timeout=5)
    assert s.recv(4096).startswith(b"* OK")
    start = time.monotonic()
    closed_after = None
    n = 0
    # A cheap command every second, half of the next one trickled in
    # between: each read and each command line is quick, only the session
    # as a whole is long. Stops by itself after 20 s.
    while time.monotonic() - start < 20:
        try:
            s.sendall(f"n{n} NOOP\r\n".encode())
            time.sleep(0.5)
            s.sendall(b"x")
            time.sleep(0.5)
            s.sendall(b" CAPA")
            data = s.recv(65536)
        except (BrokenPipeError, ConnectionResetError):
            closed_after = time.monotonic() - start
            break
        if not data or b"* BYE" in data:
            closed_after = time.monotonic() - start
            break
        n += 1
    s.close()
    assert closed_after is not None, "still connected after 20 s"
    assert 9 <= closed_after <= 13, closed_after


def test_a_login_ends_the_login_phase(hostile):
    c = imaplib.IMAP4("127.0.0.1", hostile.imap_port, timeout=10)
    c.login(ALICE, ALICE_PW)
    time.sleep(11)
    ok(c.noop())
    c.logout()


def huge_header_message(fields=100_000):
    head = "".join(f"X-F{i}: v{i}\r\n" for i in range(fields))
    return (f"From: a@example.test\r\nSubject: many fields\r\n{head}\r\nbody\r\n").encode()


def test_fetch_of_huge_headers_does_not_hold_up_other_sessions(hostile):
    f = hostile
    a = imaplib.IMAP4("127.0.0.1", f.imap_port, timeout=120)
    a.login(ALICE, ALICE_PW)
    msg = huge_header_message()
    assert len(msg) > 1_200_000
    ok(a.append("INBOX", None, None, msg))
    ok(a.select("INBOX"))

    # Beyond the limits: refused with the tag, at once.
    items = " ".join(f"BODY.PEEK[HEADER.FIELDS (X-F{i})]" for i in range(1800))
    with pytest.raises(imaplib.IMAP4.error, match="BAD.*at most 64"):
        a.fetch("1", f"({items})")
    names = " ".join(f"X-F{i}" for i in range(1001))
    with pytest.raises(imaplib.IMAP4.error, match="BAD.*at most 1000"):
        a.fetch("1", f"(BODY.PEEK[HEADER.FIELDS ({names})])")

    # SEARCH: at most 32 keys that look inside messages.
    keys = " ".join(f"HEADER X-F{i} v{i}" for i in range(33))
    with pytest.raises(imaplib.IMAP4.error, match="BAD.*at most 32"):
        a.search(None, keys)
    keys = " ".join(f"HEADER X-F{i} v{i}" for i in range(32))
    typ, data = a.search(None, keys)
    assert typ == "OK" and data == [b"1"], (typ, data)

    # The heaviest FETCH allowed: 64 sections of 15 names each, in four
    # connections at once, twice each.
    def heavy_items(k):
        return " ".join(
            "BODY.PEEK[HEADER.FIELDS ({})]".format(
                " ".join(f"X-F{(k * 997 + j * 15 + n) % 100_000}" for n in range(15))
            )
            for j in range(64)
        )

    errors = []

    def attacker(k):
        try:
            c = imaplib.IMAP4("127.0.0.1", f.imap_port, timeout=300)
            c.login(ALICE, ALICE_PW)
            ok(c.select("INBOX", readonly=True))
            for r in range(2):
                typ, data = c.fetch("1", f"({heavy_items(k + r)})")
                assert typ == "OK", (typ, data[:1])
                # Every section came back, each with the fields it named.
                assert sum(1 for d in data if isinstance(d, tuple)) == 64
            c.logout()
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    b = imaplib.IMAP4("127.0.0.1", f.imap_port, timeout=30)
    b.login(BOB, BOB_PW)
    ok(b.select("INBOX"))
    threads = [threading.Thread(target=attacker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    waits = []
    deadline = time.monotonic() + 240
    while any(t.is_alive() for t in threads) and time.monotonic() < deadline:
        t0 = time.monotonic()
        ok(b.noop())
        waits.append(time.monotonic() - t0)
        time.sleep(0.05)
    for t in threads:
        t.join(timeout=60)
    b.logout()
    a.logout()
    assert not errors, errors
    assert len(waits) >= 10, waits
    # Every NOOP but one within 100 ms, and that one (a scheduling hiccup
    # of a loaded 2-core machine) within 500 ms.
    worst = sorted(waits)[-2:]
    assert worst[0] < 0.1 and worst[1] < 0.5, sorted(waits)[-5:]


def test_an_overlong_line_gets_the_clients_tag(hostile):
    s = socket.create_connection(("127.0.0.1", hostile.imap_port), timeout=10)
    s.recv(4096)
    s.sendall(b"t1 NOOP " + b"x" * 70_000 + b"\r\nt2 NOOP\r\n")
    buf = b""
    while b"t2 " not in buf:
        d = s.recv(65536)
        assert d, buf
        buf += d
    lines = buf.split(b"\r\n")
    assert any(l.startswith(b"t1 BAD") for l in lines), lines
    assert not any(l.startswith(b"* BAD") for l in lines), lines
    assert any(l.startswith(b"t2 OK") for l in lines), lines
    s.close()


def test_mailboxes_and_subscriptions_are_limited():
    f = Facteur(
        extra={
            "imapd": "allow_plaintext_auth_on_loopback = true",
            "store": "max_mailboxes = 7\nmax_mailbox_depth = 3\nmax_subscriptions = 7",
        }
    )
    try:
        f.add_user(ALICE, ALICE_PW)
        f.start("imapd")
        c = imaplib.IMAP4("127.0.0.1", f.imap_port, timeout=10)
        c.login(ALICE, ALICE_PW)
        # The five special folders count (and, with INBOX, are subscribed):
        # two more mailboxes and one more subscription fit.
        ok(c.create("a"))
        ok(c.create("a/b"))
        typ, data = c.create("c")
        assert typ == "NO" and b"[LIMIT]" in data[0], (typ, data)
        typ, data = c.create("a/b/c/d")
        assert typ == "NO" and b"[LIMIT]" in data[0], (typ, data)
        ok(c.subscribe("a"))
        typ, data = c.subscribe("a/b")
        assert typ == "NO" and b"[LIMIT]" in data[0], (typ, data)
        c.logout()
    finally:
        f.cleanup()
