"""facteur-lmtpd driven by Python's smtplib.LMTP, over the Unix socket and
over TCP: per-recipient replies, 8-bit and UTF-8 mail, a 20 MB message, and
1,000 messages from 20 concurrent clients."""

import concurrent.futures
import smtplib
import socket

import pytest

from harness import as_stored, crlf, strip_added_headers


def connect(f, how):
    if how == "unix":
        c = smtplib.LMTP(str(f.socket))
    else:
        c = smtplib.LMTP("127.0.0.1", f.lmtp_port)
    code, _ = c.ehlo_or_helo_if_needed() or (250, b"")
    return c


def send(c, sender, rcpts, msg):
    """MAIL, RCPT each, DATA; returns (rcpt replies, per-recipient DATA
    replies). smtplib's LMTP reads only the first reply after DATA, so the
    rest are read with getreply() — one per accepted recipient (RFC 2033)."""
    code, _ = c.mail(sender)
    assert code == 250
    rr = [c.rcpt(r) for r in rcpts]
    accepted = sum(1 for code, _ in rr if code == 250)
    replies = [c.data(msg)]
    for _ in range(accepted - 1):
        replies.append(c.getreply())
    return rr, replies


@pytest.mark.parametrize("how", ["unix", "tcp"])
def test_per_recipient_replies_with_one_unknown(lmtpd, how):
    c = connect(lmtpd, how)
    assert b"PIPELINING" in c.ehlo_resp or "pipelining" in c.esmtp_features
    for ext in ("pipelining", "enhancedstatuscodes", "8bitmime", "smtputf8", "size", "chunking"):
        assert ext in c.esmtp_features, ext
    msg = crlf(f"From: s@remote.test\nTo: several\nSubject: per-recipient {how}\n\nhello\n")
    rr, replies = send(c, "s@remote.test", ["alice@example.test", "nobody@example.test", "bob@example.test"], msg)
    assert rr[0][0] == 250
    assert rr[1][0] == 550 and rr[1][1].startswith(b"5.1.1"), rr[1]
    assert rr[2][0] == 250
    assert [r[0] for r in replies] == [250, 250], replies
    c.quit()
    for u in ("alice@example.test", "bob@example.test"):
        files = lmtpd.new_files(u)
        assert len(files) == 1, (u, files)
        stored = files[0].read_bytes()
        assert stored.startswith(b"Return-Path: <s@remote.test>\nDelivered-To: " + u.encode() + b"\n")
        assert strip_added_headers(stored) == as_stored(msg)
    assert lmtpd.new_files("nobody@example.test") == []


def test_8bit_and_utf8(lmtpd):
    c = connect(lmtpd, "tcp")
    body8 = "Subject: caf\xe9 8bit\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\nJ'ai mang\xe9 une cr\xeape \U0001F95E\n"
    msg8 = crlf(body8)
    c.mail("s@remote.test", ["BODY=8BITMIME"])
    assert c.rcpt("alice@example.test")[0] == 250
    assert c.data(msg8)[0] == 250
    # An SMTPUTF8 envelope: UTF-8 local part in the sender.
    msgu = crlf("From: J\xf3zef <j\xf3zef@b\xfccher.test>\nSubject: \u00fcnicode\n\n\u4f60\u597d\n")
    c.mail("j\xf3zef@b\xfccher.test", ["SMTPUTF8", "BODY=8BITMIME"])
    assert c.rcpt("bob@example.test")[0] == 250
    assert c.data(msgu)[0] == 250
    c.quit()
    [f8] = lmtpd.new_files("alice@example.test")
    assert strip_added_headers(f8.read_bytes()) == as_stored(msg8)
    [fu] = lmtpd.new_files("bob@example.test")
    stored = fu.read_bytes()
    assert stored.startswith("Return-Path: <j\xf3zef@b\xfccher.test>".encode())
    assert strip_added_headers(stored) == as_stored(msgu)


def test_20mb_message(lmtpd):
    line = b"0123456789abcdefghijklmnopqrstuvwxyz" * 2 + b"\r\n"
    n = (20 * 1024 * 1024) // len(line)
    msg = b"Subject: big\r\n\r\n" + line * n + b".leading dot\r\n"
    c = connect(lmtpd, "unix")
    rr, replies = send(c, "s@remote.test", ["carol@example.test"], msg)
    assert replies[0][0] == 250, replies
    c.quit()
    [f] = lmtpd.new_files("carol@example.test")
    assert strip_added_headers(f.read_bytes()) == as_stored(msg)


def test_over_size_limit_is_refused():
    from harness import Facteur

    f = Facteur(extra_lmtpd='max_message_size = "64K"')
    try:
        f.add_user("alice@example.test")
        f.start_lmtpd()
        c = connect(f, "tcp")
        assert c.esmtp_features["size"] == str(64 * 1024)
        # Declared too big at MAIL:
        code, text = c.mail("s@remote.test", ["SIZE=1000000"])
        assert code == 552 and text.startswith(b"5.3.4")
        c.rset()
        # Sent too big without a declaration: refused at the end of data.
        msg = b"Subject: x\r\n\r\n" + b"y" * 100_000 + b"\r\n"
        rr, replies = send(c, "s@remote.test", ["alice@example.test"], msg)
        assert replies[0][0] == 552, replies
        # The connection is still usable.
        rr, replies = send(c, "s@remote.test", ["alice@example.test"], b"Subject: small\r\n\r\nok\r\n")
        assert replies[0][0] == 250
        c.quit()
        assert len(f.new_files("alice@example.test")) == 1
    finally:
        f.cleanup()


def test_thousand_messages_from_twenty_clients(lmtpd):
    users = ["alice@example.test", "bob@example.test", "carol@example.test", "demo@example.test"]

    def message(i):
        return crlf(f"From: load@remote.test\nTo: {users[i % 4]}\nSubject: load {i}\nX-Seq: {i}\n\n" + f"body of message {i}\n" * (1 + i % 50))

    def client(k):
        how = "unix" if k % 2 else "tcp"
        c = connect(lmtpd, how)
        for i in range(k, 1000, 20):
            rr, replies = send(c, "load@remote.test", [users[i % 4]], message(i))
            assert rr[0][0] == 250 and replies[0][0] == 250, (i, rr, replies)
        c.quit()

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        for fut in [pool.submit(client, k) for k in range(20)]:
            fut.result()

    seen = {}
    for u in users:
        for f in lmtpd.new_files(u):
            content = strip_added_headers(f.read_bytes())
            seq = int(content.split(b"X-Seq: ")[1].split(b"\n")[0])
            assert seq not in seen, f"message {seq} stored twice"
            assert content == as_stored(message(seq)), seq
            assert users[seq % 4] == u
            seen[seq] = f
    assert len(seen) == 1000
    assert sum(len(lmtpd.new_files(u)) for u in users) == 1000


def raw_session(f, lines, read_until=None, timeout=10):
    """Sends raw bytes and returns everything the server said."""
    s = socket.create_connection(("127.0.0.1", f.lmtp_port), timeout=timeout)
    s.recv(1000)
    s.sendall(lines)
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


def test_pipelined_session_and_bdat(lmtpd):
    body = b"Subject: chunks\r\n\r\nfirst part, "
    body2 = b"second part\r\n"
    out = raw_session(
        lmtpd,
        b"LHLO client.test\r\nMAIL FROM:<s@remote.test>\r\nRCPT TO:<alice@example.test>\r\nRCPT TO:<bob+tag@example.test>\r\n"
        + b"BDAT %d\r\n" % len(body) + body + b"BDAT %d LAST\r\n" % len(body2) + body2 + b"QUIT\r\n",
    )
    codes = [l[:3] for l in out.split(b"\r\n") if l and l[3:4] == b" "]
    # LHLO, MAIL, RCPT, RCPT, BDAT, then one per recipient for BDAT LAST, QUIT
    assert codes == [b"250", b"250", b"250", b"250", b"250", b"250", b"250", b"221"], out
    [fa] = lmtpd.new_files("alice@example.test")
    assert strip_added_headers(fa.read_bytes()) == as_stored(body + body2)
    [fb] = lmtpd.new_files("bob@example.test")
    assert b"Delivered-To: bob+tag@example.test\n" in fb.read_bytes()


def test_smuggling_and_bare_line_endings(lmtpd):
    # A bare "\n.\n" must not end the data: the MAIL FROM after it is part of
    # the message, which is then refused for its bare LF; only one reply.
    out = raw_session(
        lmtpd,
        b"LHLO c\r\nMAIL FROM:<s@remote.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n"
        b"Subject: smuggle\r\n\r\nhi\n.\nMAIL FROM:<evil@remote.test>\nRCPT TO:<bob@example.test>\nDATA\nevil\n.\n"
        b"\r\n.\r\nQUIT\r\n",
    )
    assert b"550 5.6.0" in out, out
    assert out.count(b"354") == 1, out
    assert lmtpd.new_files("alice@example.test") == []
    assert lmtpd.new_files("bob@example.test") == []


def test_bad_input(lmtpd):
    out = raw_session(
        lmtpd,
        b"MAIL FROM:<a@b.test>\r\n"  # before LHLO
        + b"HELO x\r\n"
        + b"X" * 100_000 + b"\r\n"  # overlong line
        + b"LHLO c\r\nRCPT TO:<alice@example.test>\r\n"  # RCPT before MAIL
        + b"DATA\r\n"  # DATA before MAIL
        + b"MAIL FROM:<a@b.test>\r\nDATA\r\n"  # DATA without recipients
        + b"RCPT TO:<not an address>\r\n"
        + b"\xff\xfe garbage\r\nNOOP\r\nQUIT\r\n",
    )
    lines = [l for l in out.split(b"\r\n") if l]
    codes = [l[:3] for l in lines if l[3:4] == b" "]
    assert codes == [b"503", b"500", b"500", b"250", b"503", b"503", b"250", b"503", b"501", b"500", b"250", b"221"], out
    assert b"Line too long" in out


def test_too_many_errors_closes(lmtpd):
    out = raw_session(lmtpd, b"BOGUS\r\n" * 50)
    assert out.rstrip().endswith(b"Too many errors, closing connection"), out[-200:]
    assert out.count(b"\r\n") == 21


def test_aliases_detail_catchall_and_external(lmtpd):
    f = lmtpd
    f.ctl("alias", "add", "team@example.test", "alice@example.test", "bob@example.test")
    f.ctl("alias", "add", "fwd@example.test", "someone@elsewhere.test")
    c = connect(f, "tcp")
    c.mail("s@remote.test")
    assert c.rcpt("team@example.test")[0] == 250
    code, text = c.rcpt("fwd@example.test")
    assert code == 550 and b"external" in text, text
    assert c.rcpt("carol+lists@example.test")[0] == 250
    assert c.rcpt("random@example.test")[0] == 550
    assert c.data(b"Subject: fan\r\n\r\nx\r\n")[0] == 250
    assert c.getreply()[0] == 250
    f.ctl("alias", "add", "@example.test", "demo@example.test")
    c.mail("s@remote.test")
    assert c.rcpt("random@example.test")[0] == 250
    assert c.data(b"Subject: catchall\r\n\r\nx\r\n")[0] == 250
    c.quit()
    assert len(f.new_files("alice@example.test")) == 1
    assert len(f.new_files("bob@example.test")) == 1
    [carol] = f.new_files("carol@example.test")
    assert b"Delivered-To: carol+lists@example.test\n" in carol.read_bytes()
    [demo] = f.new_files("demo@example.test")
    assert b"Subject: catchall" in demo.read_bytes()
    log = f.log_text()
    assert "carol+lists@example.test" in log and "delivered" in log


def test_over_quota(lmtpd):
    f = lmtpd
    f.ctl("user", "quota", "alice@example.test", "--bytes", "2000")
    c = connect(f, "tcp")
    rr, replies = send(c, "s@remote.test", ["alice@example.test"], b"Subject: fits\r\n\r\n" + b"a" * 500 + b"\r\n")
    assert replies[0][0] == 250
    rr, replies = send(c, "s@remote.test", ["alice@example.test", "bob@example.test"], b"Subject: too much\r\n\r\n" + b"b" * 3000 + b"\r\n")
    assert replies[0][0] == 552 and replies[0][1].startswith(b"5.2.2"), replies
    assert replies[1][0] == 250
    c.quit()
    assert len(f.new_files("alice@example.test")) == 1
    out = f.ctl("user", "quota", "alice@example.test")
    assert "of 2000 bytes" in out, out
