"""facteur-smtpd under attack (issue 14): a client that trickles a byte now
and then is closed within the time-out; 500 slow clients from 25 addresses
do not keep a legitimate client out; a BDAT size that does not fit is
refused and nothing after it runs as a command."""

import resource
import socket
import time

import pytest

from harness import Facteur


@pytest.fixture
def smtpd():
    f = Facteur(extra={"smtpd": 'timeout = "3s"'})
    f.add_user("alice@example.test", "alice-pw")
    f.start_all()
    yield f
    f.cleanup()


def connect(f, src="127.0.0.1"):
    s = socket.create_connection(("127.0.0.1", f.smtp_port), timeout=10, source_address=(src, 0))
    assert s.recv(1000).startswith(b"220 "), "greeting"
    return s


def test_a_trickle_is_closed_within_the_timeout(smtpd):
    s = connect(smtpd)
    t0 = time.monotonic()
    got = b""
    # A byte a second: each read would be in time, the line never is.
    for b in b"EHLO trickle.example.test\r\n":
        try:
            s.sendall(bytes([b]))
        except OSError:
            break
        time.sleep(1)
        s.setblocking(False)
        try:
            chunk = s.recv(1000)
        except BlockingIOError:
            chunk = None
        finally:
            s.setblocking(True)
        if chunk is not None:
            got += chunk
            if chunk == b"" or b"421" in got:
                break
    took = time.monotonic() - t0
    assert got.startswith(b"421 4.4.2"), got
    assert took < 6, took


def test_slow_clients_from_25_addresses_leave_room_for_others(smtpd):
    f = smtpd
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2000:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))
    held = []
    refused = 0
    try:
        # Each address opens all it may (20) and says nothing more.
        for a in range(25):
            for _ in range(20):
                s = socket.create_connection(("127.0.0.1", f.smtp_port), timeout=10,
                                             source_address=(f"127.0.1.{a + 1}", 0))
                line = s.recv(1000)
                if line.startswith(b"220 "):
                    held.append(s)
                else:
                    assert line.startswith(b"421"), line
                    refused += 1
                    s.close()
        # Slots were kept back: not all 500 got in.
        assert refused > 0 and len(held) < 500, (len(held), refused)
        # A client from elsewhere is served, whole transaction.
        s = connect(f, "127.0.2.1")
        s.sendall(b"EHLO legit.example.test\r\nMAIL FROM:<x@remote.test>\r\nRCPT TO:<alice@example.test>\r\nQUIT\r\n")
        got = b""
        while b"221" not in got:
            chunk = s.recv(4096)
            assert chunk, got
            got += chunk
        assert b"250 2.1.5" in got, got
        s.close()
    finally:
        for s in held:
            s.close()


def test_a_bdat_size_that_does_not_fit_ends_the_connection(smtpd):
    s = connect(smtpd)
    s.sendall(b"EHLO c\r\nMAIL FROM:<x@remote.test>\r\nRCPT TO:<alice@example.test>\r\n"
              b"BDAT 999999999999999999999999 LAST\r\nRSET\r\nMAIL FROM:<evil@remote.test>\r\n")
    got = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        got += chunk
    lines = got.split(b"\r\n")
    assert lines[-2].startswith(b"552 5.3.4"), got
    # Nothing after the BDAT line was taken for a command: the replies are
    # EHLO's, MAIL's, RCPT's and the refusal, and the connection closed.
    finals = [l[:3] for l in lines if l[3:4] == b" "]
    assert finals == [b"250", b"250", b"250", b"552"], got
