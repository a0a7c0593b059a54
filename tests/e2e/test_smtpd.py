"""facteur-smtpd with real clients (swaks, Python's smtplib, raw sockets):
plain, STARTTLS and implicit TLS, AUTH PLAIN and LOGIN on submission,
pipelining, BDAT, 8BITMIME and SMTPUTF8, size limits, relay control, SMTP
smuggling probes — and the whole path smtpd -> qmgr -> lmtpd -> Maildir."""

import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import tempfile
import time

import pytest

from harness import BIN, Facteur, crlf, wait_for

SWAKS = "swaks"


def tls_ctx():
    c = ssl.create_default_context()
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    return c


@pytest.fixture
def suite():
    f = Facteur(extra={"qmgr": 'min_backoff = "1s"\nmax_backoff = "2s"\nscan_interval = "2s"', "smtpd": 'max_message_size = "64K"'})
    for u in ("alice@example.test", "bob@example.test"):
        f.add_user(u, "alice-pw" if u.startswith("alice") else "bob-pw")
    f.start_all()
    yield f
    f.cleanup()


def delivered(f, addr, n=1, timeout=30):
    return wait_for(lambda: len(f.all_files(addr)) >= n and f.all_files(addr), timeout, f"{n} message(s) for {addr}")


def swaks(*args):
    return subprocess.run([SWAKS, "--server", "127.0.0.1", *args], capture_output=True, text=True, timeout=60)


def test_mx_plain_end_to_end(suite):
    f = suite
    msg = crlf("From: s@remote.test\nTo: alice@example.test\nSubject: hello over MX\nMessage-ID: <m1@remote.test>\nDate: Mon, 23 Nov 2026 10:00:00 +0000\n\n8-bit caf\xe9\n..dot line\n")
    with smtplib.SMTP("127.0.0.1", f.smtp_port) as s:
        code, banner = s.ehlo("client.test")
        assert code == 250
        for ext in ("pipelining", "size", "8bitmime", "smtputf8", "enhancedstatuscodes", "dsn", "chunking", "starttls"):
            assert ext in s.esmtp_features, ext
        assert "auth" not in s.esmtp_features  # never on MX
        assert s.esmtp_features["size"] == str(64 * 1024)
        s.sendmail("s@remote.test", ["alice@example.test"], msg, mail_options=["BODY=8BITMIME"])
    [p] = delivered(f, "alice@example.test")
    stored = p.read_bytes()
    assert stored.startswith(b"Return-Path: <s@remote.test>\nDelivered-To: alice@example.test\nReceived: from client.test (unknown [127.0.0.1])\n\tby mail.example.test (facteur) with ESMTP id ")
    assert stored.endswith(msg.replace(b"\r\n", b"\n"))
    # The queue id of smtpd is in the logs of smtpd and qmgr.
    qid = stored.split(b" id ")[1].split(b"\n")[0].decode()
    assert qid in f.log_text("smtpd") and qid in f.log_text("qmgr")


def test_swaks_starttls_auth_plain_and_login(suite):
    f = suite
    for mech in ("PLAIN", "LOGIN"):
        r = swaks("--port", str(f.submission_port), "--tls", "--auth", mech, "--auth-user", "alice@example.test", "--auth-password", "alice-pw",
                  "--from", "alice@example.test", "--to", "bob@example.test", "--header", f"Subject: via {mech}")
        assert r.returncode == 0, r.stdout + r.stderr
        assert "250 2.0.0 OK: queued as" in r.stdout
        assert "235 2.7.0" in r.stdout
    files = delivered(f, "bob@example.test", 2)
    text = b"".join(p.read_bytes() for p in files)
    assert b"with ESMTPSA id" in text and b"(using TLSv1.3 with cipher" in text
    # Authenticated users may relay to the world (queued for remote delivery).
    r = swaks("--port", str(f.submission_port), "--tls", "--auth", "PLAIN", "--auth-user", "alice@example.test", "--auth-password", "alice-pw",
              "--from", "alice@example.test", "--to", "friend@elsewhere.test")
    assert r.returncode == 0 and "queued as" in r.stdout, r.stdout


def test_submission_rules(suite):
    f = suite
    with smtplib.SMTP("127.0.0.1", f.submission_port) as s:
        s.ehlo("c")
        assert "auth" not in s.esmtp_features  # not in clear text
        code, _ = s.mail("alice@example.test")
        assert code == 530
        s.starttls(context=tls_ctx())
        s.ehlo("c")
        assert "PLAIN" in s.esmtp_features["auth"] and "LOGIN" in s.esmtp_features["auth"]
        with pytest.raises(smtplib.SMTPAuthenticationError):
            s.login("alice@example.test", "wrong")
        s.login("alice@example.test", "alice-pw")
        code, text = s.mail("bob@example.test")  # not hers
        assert code == 553 and b"5.7.1" in text, text
        code, _ = s.mail("alice@example.test")
        assert code == 250
        assert s.rcpt("bob@example.test")[0] == 250
        # Message-ID and Date are added on submission when missing.
        assert s.data(b"Subject: no id\r\n\r\nbody\r\n")[0] == 250
    [p] = delivered(f, "bob@example.test")
    stored = p.read_bytes()
    assert b"\nMessage-ID: <" in stored and b"@mail.example.test>\n" in stored and b"\nDate: " in stored


def test_implicit_tls(suite):
    f = suite
    with smtplib.SMTP_SSL("127.0.0.1", f.submissions_port, context=tls_ctx()) as s:
        s.ehlo("c")
        assert "starttls" not in s.esmtp_features
        s.login("bob@example.test", "bob-pw")
        s.sendmail("bob@example.test", ["alice@example.test"], b"Subject: 465\r\n\r\nx\r\n")
    delivered(f, "alice@example.test")
    r = swaks("--port", str(f.submissions_port), "--tls-on-connect", "--auth", "LOGIN", "--auth-user", "bob@example.test", "--auth-password", "bob-pw",
              "--from", "bob@example.test", "--to", "alice@example.test")
    assert r.returncode == 0, r.stdout
    delivered(f, "alice@example.test", 2)


def raw(port, data, read_timeout=5):
    s = socket.create_connection(("127.0.0.1", port), timeout=read_timeout)
    s.recv(1000)
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    out = b""
    while True:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        out += chunk
    s.close()
    return out


def finals(out):
    return [l[:3] for l in out.split(b"\r\n") if len(l) >= 4 and l[3:4] == b" "]


def test_starttls_discards_pipelined_cleartext(suite):
    f = suite
    s = socket.create_connection(("127.0.0.1", f.smtp_port), timeout=10)
    s.recv(1000)
    s.sendall(b"EHLO c\r\n")
    got = b""
    while not finals(got):  # up to the EHLO reply's last line
        got += s.recv(4096)
    # STARTTLS with a command injected behind it in the same packet.
    s.sendall(b"STARTTLS\r\nRSET\r\n")
    assert s.recv(1000).startswith(b"220 ")
    t = tls_ctx().wrap_socket(s, server_hostname="mail.example.test")
    t.sendall(b"NOOP\r\n")
    r = t.recv(1000)
    # The first reply in TLS answers our NOOP, not the injected RSET.
    assert r == b"250 2.0.0 OK\r\n", r
    t.close()


RELAY_TRICKS = [
    "remote@elsewhere.test",
    "u%remote.test@example.test",
    "@example.test:u@remote.test",
    '"u@remote.test"@example.test',
    "u@[192.0.2.1]",
    "a!b!u",
    "remote.test!u@example.test",
]


def test_no_open_relay():
    # Loopback is taken out of mynetworks, so the client is a stranger.
    f = Facteur(extra={"smtpd": 'mynetworks = ["192.0.2.0/24"]'})
    try:
        f.add_user("alice@example.test")
        f.start_all()
        with smtplib.SMTP("127.0.0.1", f.smtp_port) as s:
            s.ehlo("stranger.test")
            for rcpt in RELAY_TRICKS:
                s.mail("spammer@remote.test")
                code, text = s.rcpt(rcpt)
                assert code >= 500, (rcpt, code, text)
                s.rset()
            s.mail("spammer@remote.test")
            code, text = s.rcpt("remote@elsewhere.test")
            assert (code, text[:5]) == (554, b"5.7.1")
            # Unknown local users are refused at RCPT, never bounced later.
            code, text = s.rcpt("nobody@example.test")
            assert (code, text[:5]) == (550, b"5.1.1")
            assert s.rcpt("alice@example.test")[0] == 250
        r = swaks("--port", str(f.smtp_port), "--from", "x@remote.test", "--to", "victim@elsewhere.test", "--quit-after", "RCPT")
        assert "554 5.7.1" in r.stdout, r.stdout
    finally:
        f.cleanup()


SMUGGLING = [b"\n.\n", b"\r.\r", b"\n.\r\n", b"\r\n.\n"]


@pytest.mark.parametrize("probe", SMUGGLING)
def test_smuggling_probes_never_make_two_messages(suite, probe):
    f = suite
    out = raw(
        f.smtp_port,
        b"EHLO c\r\nMAIL FROM:<s@remote.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n"
        b"Subject: smuggle\r\n\r\nfirst" + probe + b"MAIL FROM:<evil@remote.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\nSubject: evil\r\n\r\nsecond\r\n.\r\nQUIT\r\n",
    )
    assert out.count(b"354 ") == 1, out
    # The one message is refused for its bare line ending; nothing reaches anyone.
    assert b"550 5.6.0" in out, out
    assert b"queued as" not in out
    with smtplib.SMTP("127.0.0.1", f.smtp_port) as s:
        s.sendmail("s@remote.test", ["alice@example.test"], b"Subject: marker\r\n\r\nm\r\n")
    [p] = delivered(f, "alice@example.test")
    assert b"marker" in p.read_bytes()
    assert f.all_files("bob@example.test") == []


def test_pipelining_bdat_and_utf8(suite):
    f = suite
    body1 = b"Subject: chunked\r\n\r\nhello "
    body2 = b"world\r\n"
    out = raw(
        f.smtp_port,
        b"EHLO c\r\nMAIL FROM:<s@remote.test> BODY=8BITMIME\r\nRCPT TO:<alice@example.test>\r\nRCPT TO:<bob@example.test>\r\n"
        + b"BDAT %d\r\n" % len(body1) + body1 + b"BDAT %d LAST\r\n" % len(body2) + body2
        + "MAIL FROM:<j\xf3zef@b\xfccher.test> SMTPUTF8\r\nRCPT TO:<alice@example.test>\r\nDATA\r\nSubject: \u00fcnicode\r\n\r\n\u4f60\u597d\r\n.\r\nQUIT\r\n".encode(),
    )
    assert finals(out) == [b"250", b"250", b"250", b"250", b"250", b"250", b"250", b"250", b"354", b"250", b"221"], out
    files = delivered(f, "alice@example.test", 2)
    text = b"".join(p.read_bytes() for p in files)
    assert b"hello world\n" in text
    assert "\u4f60\u597d".encode() in text and "j\xf3zef@b\xfccher.test".encode() in text
    assert b"with UTF8SMTP id" in text
    delivered(f, "bob@example.test")


def test_size_limit_exact_and_over(suite):
    f = suite
    limit = 64 * 1024
    head = b"Subject: size\r\n\r\n"
    at = head + b"a" * (limit - len(head) - 2) + b"\r\n"
    assert len(at) == limit
    with smtplib.SMTP("127.0.0.1", f.smtp_port) as s:
        # smtplib declares SIZE: exactly at the limit passes...
        s.sendmail("s@remote.test", ["alice@example.test"], at)
        # ...one octet more is refused at MAIL.
        with pytest.raises(smtplib.SMTPSenderRefused) as e:
            s.sendmail("s@remote.test", ["alice@example.test"], at + b"b")
        assert e.value.smtp_code == 552
    # Undeclared and too big: refused at the end of data, connection usable.
    out = raw(f.smtp_port, b"EHLO c\r\nMAIL FROM:<s@remote.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n" + at + b"b\r\n.\r\nNOOP\r\nQUIT\r\n")
    assert finals(out) == [b"250", b"250", b"250", b"354", b"552", b"250", b"221"], out
    [p] = delivered(f, "alice@example.test")
    assert p.read_bytes().endswith(at.replace(b"\r\n", b"\n"))


def test_sighup_reloads_the_certificate(suite):
    f = suite

    def served_cert():
        with socket.create_connection(("127.0.0.1", f.submissions_port), timeout=10) as raw_sock:
            with tls_ctx().wrap_socket(raw_sock, server_hostname="mail.example.test") as t:
                return t.getpeercert(binary_form=True)

    tls = f.root / "tls"
    assert served_cert() == ssl.PEM_cert_to_DER_cert((tls / "cert.pem").read_text())
    # A new certificate, made by another init --dev, put in place.
    other = tempfile.mkdtemp(prefix="fe2e-cert-", dir="/tmp")
    try:
        subprocess.run([str(BIN / "facteurctl"), "init", "--dev", other], check=True, capture_output=True)
        shutil.copy(f"{other}/tls/cert.pem", tls / "cert.pem")
        shutil.copy(f"{other}/tls/key.pem", tls / "key.pem")
    finally:
        shutil.rmtree(other, ignore_errors=True)
    new = ssl.PEM_cert_to_DER_cert((tls / "cert.pem").read_text())
    assert served_cert() != new  # not before the reload
    f.daemons["smtpd"].send_signal(signal.SIGHUP)
    wait_for(lambda: served_cert() == new, 10, "the new certificate to be served")
    # A broken certificate on reload keeps the good one.
    (tls / "cert.pem").write_text("garbage")
    f.daemons["smtpd"].send_signal(signal.SIGHUP)
    time.sleep(0.5)
    assert served_cert() == new
    assert "TLS reload failed" in f.log_text("smtpd")


def test_connection_limits_per_address_and_timeouts():
    f = Facteur(extra={"smtpd": 'max_connections_per_ip = 2\ntimeout = "2s"'})
    try:
        f.start_all()
        # The harness's readiness probe holds a slot until smtpd has seen it
        # close; retry until both connections are served, within a bound.
        deadline = time.time() + 10
        while True:
            a = socket.create_connection(("127.0.0.1", f.smtp_port), timeout=10)
            b = socket.create_connection(("127.0.0.1", f.smtp_port), timeout=10)
            ga, gb = a.recv(100), b.recv(100)
            if ga.startswith(b"220 ") and gb.startswith(b"220 "):
                break
            a.close()
            b.close()
            assert time.time() < deadline, (ga, gb)
            time.sleep(0.2)
        c = socket.create_connection(("127.0.0.1", f.smtp_port), timeout=10)
        assert c.recv(100).startswith(b"421 4.7.0"), "third connection from one address"
        c.close()
        # An idle client is dropped after the timeout with a 421.
        assert a.recv(100).startswith(b"421 4.4.2")
        a.close()
        b.close()
        # Slots are given back: a new connection is served.
        d = socket.create_connection(("127.0.0.1", f.smtp_port), timeout=10)
        assert d.recv(100).startswith(b"220 ")
        d.close()
    finally:
        f.cleanup()


def test_sighup_reloads_the_configuration(suite):
    # systemctl reload: limits apply to new sessions; a bad file keeps the
    # running configuration; a listener change is named as needing a restart.
    from harness import set_key
    f = suite
    p = f.daemons["smtpd"]
    with smtplib.SMTP("127.0.0.1", f.smtp_port) as s:
        s.ehlo("c")
        assert s.esmtp_features["size"] == str(64 * 1024)
        cfg = f.config.read_text()
        f.config.write_text(set_key(cfg, "smtpd", 'max_message_size = "128K"'))
        p.send_signal(signal.SIGHUP)
        wait_for(lambda: "facteur-smtpd: configuration reloaded" in f.log_text("smtpd"), 10, "the reload")
        # The session that was open keeps its limits.
        s.ehlo("c")
        assert s.esmtp_features["size"] == str(64 * 1024)
    with smtplib.SMTP("127.0.0.1", f.smtp_port) as s:
        s.ehlo("c")
        assert s.esmtp_features["size"] == str(128 * 1024)
    # A file that does not load: the daemon says why and goes on as it was.
    good = f.config.read_text()
    f.config.write_text(set_key(good, "smtpd", "max_mesage_size = 1"))
    p.send_signal(signal.SIGHUP)
    wait_for(lambda: "configuration not reloaded" in f.log_text("smtpd"), 10, "the refusal")
    assert "max_mesage_size" in f.log_text("smtpd")
    assert p.poll() is None
    with smtplib.SMTP("127.0.0.1", f.smtp_port) as s:
        s.ehlo("c")
        assert s.esmtp_features["size"] == str(128 * 1024)
    # A listener change needs a restart, and the log says so.
    f.config.write_text(set_key(good, "smtpd", 'mx = ["127.0.0.1:1"]'))
    p.send_signal(signal.SIGHUP)
    wait_for(lambda: f.log_text("smtpd").count("key=\"smtpd.mx\"") >= 2, 10, "the restart notice")
    f.config.write_text(good)
