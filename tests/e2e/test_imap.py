"""facteur-imapd with real clients: Python's imaplib (clear text on loopback,
STARTTLS, implicit TLS) for every command of the protocol list in issue 5,
and a bare socket client where the exact bytes on the wire matter (literal
limits, STARTTLS discarding pipelined input, IDLE timing, untagged updates
between sessions, QRESYNC).

Mail arrives over LMTP (smtplib.LMTP on lmtpd's socket; lmtpd adds
Return-Path: and Delivered-To:) or by APPEND (stored byte for byte). POP3
deletions reach open IMAP sessions as expunges (issue 6)."""

import base64
import hashlib
import imaplib
import os
import poplib
import re
import smtplib
import socket
import ssl
import time
import zlib

import pytest

from harness import Facteur, crlf, wait_for

ALICE, ALICE_PW = "alice@example.test", "alice-pw"
BOB, BOB_PW = "bob@example.test", "bob-pw"


def tls_ctx():
    c = ssl.create_default_context()
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    return c


def make(plaintext_on_loopback=True, imapd_extra="", pop3d=False):
    lines = []
    if plaintext_on_loopback:
        lines.append("allow_plaintext_auth_on_loopback = true")
    if imapd_extra:
        lines.append(imapd_extra)
    extra = {"imapd": "\n".join(lines)} if lines else {}
    if pop3d:
        extra["pop3d"] = "allow_plaintext_auth_on_loopback = true"
    f = Facteur(extra=extra)
    try:
        f.add_user(ALICE, ALICE_PW)
        f.add_user(BOB, BOB_PW)
        f.start("lmtpd")
        f.start("imapd")
        if pop3d:
            f.start("pop3d")
    except BaseException:
        f.cleanup()
        raise
    return f


@pytest.fixture
def imap():
    """lmtpd and imapd, clear-text login allowed on loopback."""
    f = make()
    yield f
    f.cleanup()


def deliver(f, rcpt, messages):
    """Delivers `messages` (network form) to `rcpt` in one LMTP session."""
    with smtplib.LMTP(str(f.socket)) as c:
        for m in messages:
            c.sendmail("s@remote.test", [rcpt], m)


def login(f, user=ALICE, pw=ALICE_PW):
    c = imaplib.IMAP4("127.0.0.1", f.imap_port, timeout=30)
    c.login(user, pw)
    return c


def ok(r):
    typ, data = r
    assert typ == "OK", r
    return data


class Raw:
    """A bare IMAP client: sends exactly what it is given; responses come
    back as bytes, one per response with its literals inlined."""

    def __init__(self, port, tls=False, timeout=10):
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        if tls:
            s = tls_ctx().wrap_socket(s)
        self.s = s
        self.buf = b""
        self.n = 0
        self.greeting = self.line()

    def send(self, data):
        self.s.sendall(data.encode() if isinstance(data, str) else data)

    def _fill(self):
        d = self.s.recv(1 << 16)
        if not d:
            raise EOFError(self.buf)
        self.buf += d

    def line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        i = self.buf.index(b"\r\n") + 2
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def read(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def response(self):
        out = self.line()
        while True:
            m = re.search(rb"~?\{(\d+)\}\r\n$", out)
            if not m:
                return out
            out += self.read(int(m.group(1)))
            out += self.line()

    def tag(self):
        self.n += 1
        return f"t{self.n}"

    def cmd(self, text):
        """Sends `tag text`; returns (untagged responses, tagged reply
        without its tag), as bytes without the final CRLFs."""
        tag = self.tag()
        self.send((tag + " ").encode() + (text.encode() if isinstance(text, str) else text) + b"\r\n")
        return self.until(tag)

    def until(self, tag):
        untagged = []
        while True:
            r = self.response()
            if r.startswith(tag.encode() + b" "):
                return untagged, r[len(tag) + 1:-2]
            untagged.append(r[:-2])

    def append(self, mailbox, msg, extra=""):
        """APPEND with a synchronising literal, sent after the "+"."""
        tag = self.tag()
        self.send(f"{tag} APPEND {mailbox}{extra} {{{len(msg)}}}\r\n")
        first = self.line()
        if not first.startswith(b"+"):
            assert first.startswith(tag.encode() + b" "), first
            return [], first[len(tag) + 1:-2]
        self.send(msg + b"\r\n")
        return self.until(tag)

    def login(self, user=ALICE, pw=ALICE_PW):
        _, t = self.cmd(f'LOGIN "{user}" "{pw}"')
        assert t.startswith(b"OK "), t
        return t

    def eof(self, within=5):
        """True if the server closes the connection (after any pending
        output) within `within` seconds."""
        self.s.settimeout(within)
        try:
            while True:
                d = self.s.recv(1 << 16)
                if not d:
                    return True
                self.buf += d
        except socket.timeout:
            return False

    def close(self):
        self.s.close()


def literal(resp, label):
    """The octets of the literal that follows `label` in a response."""
    i = resp.index(label + b" ")
    m = re.match(rb"~?\{(\d+)\}\r\n", resp[i + len(label) + 1:])
    assert m, resp[i:i + 80]
    start = i + len(label) + 1 + m.end()
    return resp[start:start + int(m.group(1))]


def flags_of(resp):
    """The message's flags in a FETCH response; \\Recent (IMAP4rev1's
    per-session mark, RFC 3501 §2.3.2) is not the message's and is left out."""
    m = re.search(rb"FLAGS \(([^)]*)\)", resp)
    assert m, resp
    return set(m.group(1).decode().split()) - {"\\Recent"}


def no_recent(lines):
    """The lines without \\Recent in their flag lists (IMAP4rev1's
    per-session mark, RFC 3501 §2.3.2: which session gets it is not what
    these checks are about)."""
    return [re.sub(rb" ?\\Recent", b"", line).replace(b"( ", b"(") for line in lines]


def code(tagged, name):
    m = re.search(rb"\[" + name.encode() + rb" ([^\]]*)\]", tagged)
    assert m, tagged
    return m.group(1).decode()


# ---------------------------------------------------------------------------
# Connection, TLS, login


def test_logindisabled_before_starttls_then_starttls_and_imaps():
    f = make(plaintext_on_loopback=False)
    try:
        c = imaplib.IMAP4("127.0.0.1", f.imap_port, timeout=30)
        assert "LOGINDISABLED" in c.capabilities and "STARTTLS" in c.capabilities, c.capabilities
        assert "AUTH=PLAIN" not in c.capabilities
        # LOGIN is refused before the password is looked at.
        with pytest.raises(imaplib.IMAP4.error, match="PRIVACYREQUIRED"):
            c.login(ALICE, ALICE_PW)
        ok(c.starttls(ssl_context=tls_ctx()))
        assert "LOGINDISABLED" not in c.capabilities and "STARTTLS" not in c.capabilities, c.capabilities
        assert "AUTH=PLAIN" in c.capabilities and "SASL-IR" in c.capabilities
        ok(c.login(ALICE, ALICE_PW))
        caps = ok(c.capability())[0].decode().split()
        assert "AUTH=PLAIN" not in caps and "STARTTLS" not in caps
        for cap in ("IMAP4rev1", "IMAP4rev2", "IDLE", "UIDPLUS", "MOVE", "CONDSTORE", "QRESYNC", "ESEARCH", "APPENDLIMIT=52428800"):
            assert cap in caps, (cap, caps)
        c.logout()

        # AUTHENTICATE is refused in clear text too.
        r = Raw(f.imap_port)
        assert b"LOGINDISABLED" in r.greeting, r.greeting
        plain = base64.b64encode(f"\0{ALICE}\0{ALICE_PW}".encode()).decode()
        _, t = r.cmd(f"AUTHENTICATE PLAIN {plain}")
        assert t.startswith(b"NO [PRIVACYREQUIRED]"), t
        # STARTTLS throws away what the client pipelined in clear text.
        r.send(f'a STARTTLS\r\nb LOGIN "{ALICE}" "{ALICE_PW}"\r\n')
        assert r.line().startswith(b"a OK"), "STARTTLS accepted"
        assert r.buf == b""
        r.s = tls_ctx().wrap_socket(r.s)
        _, t = r.cmd("NOOP")
        assert t.startswith(b"OK"), t
        # Not logged in: the pipelined LOGIN was dropped.
        _, t = r.cmd("SELECT INBOX")
        assert t.startswith(b"BAD"), t
        _, t = r.cmd("STARTTLS")
        assert t.startswith(b"BAD"), t
        r.close()

        # IMAPS (implicit TLS) on its own port.
        s = imaplib.IMAP4_SSL("127.0.0.1", f.imaps_port, ssl_context=tls_ctx(), timeout=30)
        assert "AUTH=PLAIN" in s.capabilities and "STARTTLS" not in s.capabilities, s.capabilities
        ok(s.login(ALICE, ALICE_PW))
        assert ok(s.select("INBOX")) == [b"0"]
        s.logout()
    finally:
        f.cleanup()


def test_login_failure_and_authenticate_plain(imap):
    f = imap
    c = imaplib.IMAP4("127.0.0.1", f.imap_port, timeout=30)
    assert "AUTH=PLAIN" in c.capabilities and "LOGINDISABLED" not in c.capabilities
    t0 = time.monotonic()
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        c.login(ALICE, "wrong")
    # A failure is answered only after a pause.
    assert time.monotonic() - t0 >= 1.0
    # AUTHENTICATE PLAIN without an initial response (imaplib waits for "+").
    creds = f"\0{ALICE}\0{ALICE_PW}".encode()
    ok(c.authenticate("PLAIN", lambda _: creds))
    assert c.state == "AUTH"
    c.logout()
    # With SASL-IR, an authzid equal to the login, and the demo user.
    r = Raw(f.imap_port)
    ir = base64.b64encode(f"{BOB}\0{BOB}\0{BOB_PW}".encode()).decode()
    _, t = r.cmd(f"AUTHENTICATE PLAIN {ir}")
    assert t.startswith(b"OK [CAPABILITY "), t
    _, t = r.cmd("LOGIN x y")
    assert t.startswith(b"BAD"), t
    r.close()
    c = login(f, "demo@example.test", f.demo_password)
    c.logout()
    # Another mechanism, and a cancelled exchange.
    r = Raw(f.imap_port)
    _, t = r.cmd("AUTHENTICATE CRAM-MD5")
    assert t.startswith(b"NO"), t
    r.send("t2 AUTHENTICATE PLAIN\r\n")
    assert r.line() == b"+ \r\n"
    r.send("*\r\n")
    assert r.line().startswith(b"t2 BAD"), "cancelled"
    _, t = r.cmd("ID NIL")
    assert t.startswith(b"OK"), t
    r.close()


# ---------------------------------------------------------------------------
# Mailboxes


def test_list_create_delete_rename_subscribe_status_namespace(imap):
    f = imap
    deliver(f, ALICE, [crlf("Subject: one\n\nbody\n"), crlf("Subject: two\n\nbody two\n")])
    c = login(f)
    ok(c.create("Projects/facteur"))
    ok(c.create("Important"))  # plain CREATE
    # CREATE with USE (RFC 6154 §3); an unknown use is refused.
    typ, data = c._simple_command("CREATE", "Flagged", "(USE (\\Flagged))")
    assert typ == "OK", data
    typ, data = c._simple_command("CREATE", "Weird", "(USE (\\Bogus))")
    assert typ == "NO" and b"USEATTR" in data[0], (typ, data)
    typ, data = c.create("Important")
    assert typ == "NO" and b"ALREADYEXISTS" in data[0], data
    names = {}
    for l in ok(c.list()):
        m = re.match(rb'\(([^)]*)\) "/" (.*)', l)
        names[m.group(2).decode().strip('"')] = set(m.group(1).decode().split())
    for n in ("INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive", "Projects", "Projects/facteur", "Important", "Flagged"):
        assert n in names, (n, names)
    assert "\\HasChildren" in names["Projects"] and "\\HasNoChildren" in names["Projects/facteur"]
    assert "\\Sent" in names["Sent"] and "\\Flagged" in names["Flagged"]
    assert "Weird" not in names
    # LIST "" "" gives the delimiter; % stops at it.
    assert ok(c.list('""', '""')) == [b'(\\Noselect) "/" ""']
    top = [l.decode() for l in ok(c.list('""', "%"))]
    assert any(l.endswith(" Projects") for l in top) and not any("Projects/facteur" in l for l in top)
    assert [l for l in ok(c.list('"Projects/"', "%"))] == [b'(\\HasNoChildren) "/" Projects/facteur']
    # LIST-EXTENDED: selection SPECIAL-USE, several patterns, RETURN (STATUS ...).
    r = Raw(f.imap_port)
    r.login()
    u, t = r.cmd('LIST (SPECIAL-USE) "" "*"')
    assert t.startswith(b"OK"), t
    special = {l.split(b" ")[-1] for l in u}
    assert special == {b"Sent", b"Drafts", b"Trash", b"Junk", b"Archive", b"Flagged"}, u
    u, t = r.cmd('LIST "" (INBOX "Projects/*") RETURN (STATUS (MESSAGES UNSEEN SIZE))')
    assert t.startswith(b"OK"), t
    assert [l for l in u if l.startswith(b"* LIST")] == [
        b'* LIST (\\HasNoChildren) "/" INBOX',
        b'* LIST (\\HasNoChildren) "/" Projects/facteur',
    ], u
    st = [l for l in u if l.startswith(b"* STATUS")]
    assert st[0].startswith(b"* STATUS INBOX (MESSAGES 2 UNSEEN 2 SIZE "), st
    assert st[1] == b"* STATUS Projects/facteur (MESSAGES 0 UNSEEN 0 SIZE 0)", st
    # SUBSCRIBE / UNSUBSCRIBE, LSUB and LIST (SUBSCRIBED).
    ok(c.subscribe("Projects/facteur"))
    ok(c.subscribe("Important"))
    ok(c.unsubscribe("Important"))
    lsub = [l.split(b" ")[-1] for l in ok(c.lsub())]
    assert b"Projects/facteur" in lsub and b"Important" not in lsub, lsub
    u, t = r.cmd('LIST (SUBSCRIBED) "" "Proj*"')
    assert u == [b'* LIST (\\HasNoChildren \\Subscribed) "/" Projects/facteur'], u
    # STATUS with SIZE and HIGHESTMODSEQ.
    st = ok(c.status("INBOX", "(MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN SIZE HIGHESTMODSEQ)"))[0].decode()
    m = re.match(r"INBOX \(MESSAGES 2 RECENT 2 UIDNEXT 3 UIDVALIDITY (\d+) UNSEEN 2 SIZE (\d+) HIGHESTMODSEQ (\d+)\)", st)
    assert m, st
    stored = sum(len(p.read_bytes().replace(b"\n", b"\r\n")) for p in f.all_files(ALICE))
    assert int(m.group(2)) == stored
    typ, data = c.status("Nope", "(MESSAGES)")
    assert typ == "NO" and b"NONEXISTENT" in data[0], data
    # NAMESPACE: the personal namespace and the other users' (Shared/), "/" as delimiter.
    assert ok(c.namespace()) == [b'(("" "/")) (("Shared/" "/")) NIL']
    # RENAME, children follow; DELETE; INBOX cannot be deleted.
    ok(c.rename("Projects", "Work"))
    after = b" ".join(ok(c.list()))
    assert b"Work/facteur" in after and b"Projects" not in after, after
    typ, data = c.rename("Important", "Work")
    assert typ == "NO" and b"ALREADYEXISTS" in data[0], data
    ok(c.delete("Important"))
    typ, data = c.delete("INBOX")
    assert typ == "NO", data
    typ, data = c.delete("Important")
    assert typ == "NO" and b"NONEXISTENT" in data[0], data
    # The INBOX rule (RFC 9051 §6.3.6): the messages move, INBOX stays, empty.
    ok(c.rename("INBOX", "Old"))
    assert ok(c.status("Old", "(MESSAGES)")) == [b"Old (MESSAGES 2)"]
    assert ok(c.status("INBOX", "(MESSAGES)")) == [b"INBOX (MESSAGES 0)"]
    assert ok(c.select("INBOX")) == [b"0"]
    # New mail still arrives in INBOX.
    deliver(f, ALICE, [crlf("Subject: three\n\nx\n")])
    assert ok(c.status("INBOX", "(MESSAGES)")) == [b"INBOX (MESSAGES 1)"]
    c.logout()
    r.close()


def test_mailbox_names_utf8_mutf7_and_no_escape(imap):
    f = imap
    home = f.maildir(ALICE)
    c = login(f)
    # Without UTF-8 enabled, names travel in modified UTF-7 (RFC 3501 §5.1.3).
    ok(c.create("Entw&APw-rfe"))
    assert (home / ".Entwürfe").is_dir(), sorted(p.name for p in home.iterdir())
    assert b'(\\HasNoChildren) "/" Entw&APw-rfe' in ok(c.list())
    typ, data = c.create("Bad&Jjo")  # not valid mUTF-7
    assert typ == "NO", data
    # IMAP4rev2: UTF-8 names on the wire.
    r = Raw(f.imap_port)
    r.login()
    u, t = r.cmd("ENABLE IMAP4rev2")
    assert u == [b"* ENABLED IMAP4rev2"] and t.startswith(b"OK"), (u, t)
    u, t = r.cmd('LIST "" "Entw*"')
    assert u == ['* LIST (\\HasNoChildren) "/" "Entwürfe"'.encode()], u
    _, t = r.cmd('CREATE "Français"'.encode())
    assert b"OK" in t, t
    assert b"Fran&AOc-ais" in b" ".join(ok(c.list()))
    u, t = r.cmd('SELECT "Français"'.encode())
    assert t.startswith(b"OK"), t
    # rev2: no RECENT, the LIST reply in SELECT; ESEARCH for SEARCH.
    assert not any(b"RECENT" in l for l in u) and b'* LIST () "/" "Fran\xc3\xa7ais"' in u, u
    u, t = r.cmd("SEARCH ALL")
    assert u == [b'* ESEARCH (TAG "t6")'], u
    # Names can never leave the user's directory.
    mail = f.root / "mail"
    before = {str(p) for p in mail.rglob("*") if home not in p.parents and p != home}
    for name in ("../x", "../../x", "/etc/evil", "a/../../b", "..", "~root/x", "INBOX/../../y", "x\\\\..\\\\y", "./.", "a//b"):
        _, t = r.cmd(f'CREATE "{name}"')
        assert t.startswith(b"OK") or t.startswith(b"NO"), (name, t)
        found = [p for p in home.iterdir() if p.name.startswith(".")]
        assert all(p.resolve().parent == home.resolve() for p in found), (name, found)
        _, t = r.cmd(f'SELECT "{name}/../../../{BOB.split("@")[0]}"')
        assert t.startswith(b"NO"), t
    after = {str(p) for p in mail.rglob("*") if home not in p.parents and p != home}
    assert after == before, after - before
    assert not (f.root / "x").exists() and not (mail / "x").exists() and not (mail / "b").exists()
    c.logout()
    r.close()


def test_symlinked_folder_is_not_followed(imap):
    f = imap
    home = f.maildir(ALICE)
    c = login(f)  # creates the user's directory
    outside = f.root / "outside"
    for d in ("cur", "new", "tmp"):
        (outside / d).mkdir(parents=True)
    os.symlink(outside, home / ".Evil")
    typ, _ = c.append("Evil", None, None, crlf("Subject: x\n\nx\n"))
    written = [p for d in ("cur", "new", "tmp") for p in (outside / d).iterdir()]
    assert written == [], written
    assert typ == "NO"
    typ, _ = c.select("Evil")
    assert typ == "NO"
    assert b"Evil" not in b" ".join(ok(c.list()))
    c.logout()


# ---------------------------------------------------------------------------
# APPEND


def test_append_flags_date_appenduid_byte_identical(imap):
    f = imap
    c = login(f)
    msg = crlf("From: a@example.org\nSubject: appended\nDate: Sun, 01 Mar 2026 08:00:00 +0000\n\nline 1\n.line 2\n\nlast\n")
    msg += b"no final newline \xff\xfe"
    date = imaplib.Time2Internaldate(time.mktime((2026, 3, 1, 9, 30, 0, 0, 0, -1)))
    typ, data = c.append("INBOX", "(\\Seen \\Flagged $Work)", date, msg)
    assert typ == "OK", data
    m = re.match(rb"\[APPENDUID (\d+) (\d+)\]", data[0])
    assert m, data
    uidvalidity, uid = int(m.group(1)), int(m.group(2))
    c.select("INBOX")
    st = ok(c.status("INBOX", "(UIDVALIDITY)"))[0]
    assert st == f"INBOX (UIDVALIDITY {uidvalidity})".encode()
    data = ok(c.uid("FETCH", str(uid), "(FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])"))
    head, body = data[0]
    assert body == msg
    assert flags_of(head) == {"\\Seen", "\\Flagged", "$Work"}, head
    assert f"RFC822.SIZE {len(msg)}".encode() in head
    assert time.mktime(imaplib.Internaldate2tuple(head)) == time.mktime((2026, 3, 1, 9, 30, 0, 0, 0, -1)), head
    # Into another mailbox, with a non-synchronising literal (LITERAL+).
    r = Raw(f.imap_port)
    r.login()
    m2 = crlf("Subject: plus\n\nliteral plus\n")
    r.send(f"a APPEND Archive {{{len(m2)}+}}\r\n".encode() + m2 + b"\r\n")
    t = r.until("a")[1]
    assert t.startswith(b"OK [APPENDUID "), t
    _, t = r.cmd("APPEND Nowhere {5}")
    assert t.startswith(b"NO [TRYCREATE]"), t
    _, t = r.cmd("APPEND INBOX (\\Recent) {5}")
    assert t.startswith(b"BAD"), t
    r.close()
    assert ok(c.status("Archive", "(MESSAGES)")) == [b"Archive (MESSAGES 1)"]
    c.logout()


def vm_hwm_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_fetch_of_headers_and_bodies_across_read_batches(imap):
    f = imap
    c = login(f)
    # A header of ~16 KB (more than one read) over a 3 MB body.
    long_header = "".join(f"X-Long-{k}: {'y' * 70}\n" for k in range(200))
    big = crlf(f"From: a@example.org\nSubject: big one\n{long_header}\n") + b"z" * (3 << 20) + b"\r\n"
    small = [crlf(f"Subject: m{i}\n\nbody {i}\n") for i in range(70)]
    msgs = small[:35] + [big] + small[35:]
    for m in msgs:
        ok(c.append("INBOX", None, None, m))
    c.select("INBOX", readonly=True)
    data = ok(c.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])"))
    got = [d[1] for d in data if isinstance(d, tuple)]
    want = [m.split(b"\r\n")[0 if m is not big else 1] + b"\r\n\r\n" for m in msgs]
    assert got == want
    data = ok(c.fetch("36", "(ENVELOPE BODY.PEEK[HEADER])"))
    assert b'"big one"' in data[0][0], data[0][0]
    assert data[0][1] == big[: big.index(b"\r\n\r\n") + 4]
    data = ok(c.fetch("1:*", "(BODY.PEEK[])"))
    got = [d[1] for d in data if isinstance(d, tuple)]
    assert len(got) == len(msgs)
    assert all(g == m for g, m in zip(got, msgs))
    c.logout()


def test_append_20mb_streams_to_disk(imap):
    f = imap
    pid = f.daemons["imapd"].pid
    c = login(f)
    ok(c.select("INBOX"))
    line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789\r\n"
    msg = b"Subject: big\r\n\r\n" + line * (20 * 1024 * 1024 // len(line))
    assert len(msg) > 20_000_000
    before = vm_hwm_kib(pid)
    typ, data = c.append("INBOX", None, None, msg)
    assert typ == "OK", data
    grown = vm_hwm_kib(pid) - before
    # The literal (20 MB) never sits in memory whole.
    assert grown < 8 * 1024, f"imapd's peak RSS grew by {grown} KiB during a 20 MB APPEND"
    data = ok(c.fetch("1", "(RFC822.SIZE)"))
    assert data == [f"1 (RFC822.SIZE {len(msg)})".encode()]
    before = vm_hwm_kib(pid)
    data = ok(c.fetch("1", "(BODY.PEEK[])"))
    assert hashlib.sha256(data[0][1]).digest() == hashlib.sha256(msg).digest()
    # Sent from the file in chunks, not read whole first.
    grown = vm_hwm_kib(pid) - before
    assert grown < 8 * 1024, f"imapd's peak RSS grew by {grown} KiB during a 20 MB FETCH"
    data = ok(c.fetch("1", "(UID RFC822 FLAGS)"))
    assert hashlib.sha256(data[0][1]).digest() == hashlib.sha256(msg).digest()
    assert flags_of(data[1]) == {"\\Seen"}, data[1]
    c.logout()


def test_append_limits_refused_before_the_literal(imap):
    f = imap
    pid = f.daemons["imapd"].pid
    r = Raw(f.imap_port)
    r.login()
    before = vm_hwm_kib(pid)
    # Over APPENDLIMIT: NO [TOOBIG], and no "+" asking for the octets.
    _, t = r.cmd("APPEND INBOX {52428801}")
    assert t.startswith(b"NO [TOOBIG]"), t
    t0 = time.monotonic()
    _, t = r.cmd("APPEND INBOX {4294967295}")
    assert t.startswith(b"NO [TOOBIG]"), t
    assert time.monotonic() - t0 < 1
    _, t = r.cmd("NOOP")
    assert t.startswith(b"OK"), t
    # A literal in any other command is bounded by max_command_size (1 MiB).
    _, t = r.cmd("LOGIN {2000000}")
    assert t.startswith(b"BAD"), t
    _, t = r.cmd('STATUS {4294967295}')
    assert t.startswith(b"BAD"), t
    _, t = r.cmd("NOOP")
    assert t.startswith(b"OK"), t
    assert vm_hwm_kib(pid) - before < 4 * 1024
    # A non-synchronising one that large cannot be skipped: the server hangs up.
    r.send("t8 APPEND INBOX {4294967295+}\r\nxxxx")
    assert r.eof(), "connection closed"
    rest = r.buf
    assert b"TOOBIG" in rest or b"BYE" in rest, rest
    r.close()
    assert vm_hwm_kib(pid) - before < 4 * 1024


# ---------------------------------------------------------------------------
# FETCH

ATTACHMENT = bytes(range(256)) * 4
ATT_B64 = base64.encodebytes(ATTACHMENT).replace(b"\n", b"\r\n")

MULTI = crlf(
    "From: Alice Example <alice@example.org>\n"
    "To: Bob <bob@example.test>\n"
    "Cc: carol@example.org\n"
    "Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?= with attachment\n"
    "Date: Tue, 03 Feb 2026 10:20:30 +0100\n"
    "Message-ID: <multi@example.org>\n"
    "MIME-Version: 1.0\n"
    'Content-Type: multipart/mixed; boundary="outer"\n'
    "\n"
    "This is a multi-part message in MIME format.\n"
    "--outer\n"
    'Content-Type: multipart/alternative; boundary="inner"\n'
    "\n"
    "--inner\n"
    "Content-Type: text/plain; charset=utf-8\n"
    "Content-Transfer-Encoding: 8bit\n"
    "\n"
    "Hello Bob, plain text. Viele Grüße.\n"
    "--inner\n"
    "Content-Type: text/html; charset=utf-8\n"
    "\n"
    "<p>Hello Bob, <b>html</b>.</p>\n"
    "--inner--\n"
    "\n"
    "--outer\n"
    'Content-Type: application/octet-stream; name="data.bin"\n'
    'Content-Disposition: attachment; filename="data.bin"\n'
    "Content-Transfer-Encoding: base64\n"
    "\n"
) + ATT_B64 + b"--outer--\r\n"


def test_fetch_every_item(imap):
    f = imap
    c = login(f)
    ok(c.append("INBOX", None, None, MULTI))
    ok(c.append("INBOX", None, None, crlf("Subject: plain\n\nsecond\n")))
    r = Raw(f.imap_port)
    r.login()
    u, t = r.cmd("SELECT INBOX")
    assert t.startswith(b"OK [READ-WRITE]"), t
    assert b"* 2 EXISTS" in u and b"* OK [UNSEEN 1] First unseen" in u, u
    # Index-only items.
    u, t = r.cmd("FETCH 1:2 (FLAGS UID INTERNALDATE RFC822.SIZE)")
    assert t.startswith(b"OK"), t
    assert re.fullmatch(
        rb'\* 1 FETCH \(FLAGS \((\\Recent)?\) UID 1 INTERNALDATE "\d\d-[A-Z][a-z]{2}-\d{4} \d\d:\d\d:\d\d [+-]\d{4}" RFC822.SIZE ' + str(len(MULTI)).encode() + rb"\)",
        u[0],
    ), u
    # RFC822.SIZE equals the BODY[] length; PEEK leaves \Seen alone.
    u, _ = r.cmd("FETCH 1 (RFC822.SIZE BODY.PEEK[])")
    assert literal(u[0], b"BODY[]") == MULTI
    assert b"FLAGS" not in u[0]
    u, _ = r.cmd("FETCH 1 (FLAGS)")
    assert no_recent(u) == [b"* 1 FETCH (FLAGS ())"], u
    # ENVELOPE.
    u, _ = r.cmd("FETCH 1 ENVELOPE")
    env = u[0]
    assert env.startswith(b'* 1 FETCH (ENVELOPE ("Tue, 03 Feb 2026 10:20:30 +0100" "=?UTF-8?Q?Gr=C3=BC=C3=9Fe?= with attachment" (("Alice Example" NIL "alice" "example.org"))'), env
    assert b'((NIL NIL "carol" "example.org")) NIL NIL "<multi@example.org>"))' in env, env
    assert b'(("Bob" NIL "bob" "example.test"))' in env
    # BODYSTRUCTURE: multipart/mixed of (multipart/alternative, attachment).
    u, _ = r.cmd("FETCH 1 BODYSTRUCTURE")
    bs = u[0].upper()
    assert bs.startswith(b'* 1 FETCH (BODYSTRUCTURE ((("TEXT" "PLAIN" ("CHARSET" "UTF-8") NIL NIL "8BIT" '), bs
    assert b'("TEXT" "HTML" ("CHARSET" "UTF-8") NIL NIL "7BIT" ' in bs, bs
    assert b'"ALTERNATIVE" ("BOUNDARY" "INNER")' in bs, bs
    assert b'("APPLICATION" "OCTET-STREAM" ("NAME" "DATA.BIN") NIL NIL "BASE64" ' + str(len(ATT_B64) - 2).encode() in bs, bs
    assert b'("ATTACHMENT" ("FILENAME" "DATA.BIN"))' in bs, bs
    assert b'"MIXED" ("BOUNDARY" "OUTER")' in bs, bs
    assert bs.index(b"ALTERNATIVE") < bs.index(b"OCTET-STREAM") < bs.index(b"MIXED")
    # BODY: the same without extension data.
    u, _ = r.cmd("FETCH 1 BODY")
    body = u[0].upper()
    assert body.startswith(b"* 1 FETCH (BODY (((") and b"ATTACHMENT" not in body and b'"MIXED"' in body, body
    # Sections.
    u, _ = r.cmd("FETCH 1 (BODY.PEEK[1.1] BODY.PEEK[1.2] BODY.PEEK[2.MIME] BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)] BODY.PEEK[HEADER.FIELDS.NOT (SUBJECT MIME-VERSION CONTENT-TYPE)] BODY.PEEK[]<0.10> BODY.PEEK[TEXT]<5.7>)")
    resp = u[0]
    assert literal(resp, b"BODY[1.1]") == "Hello Bob, plain text. Viele Grüße.".encode()
    assert literal(resp, b"BODY[1.2]") == b"<p>Hello Bob, <b>html</b>.</p>"
    assert literal(resp, b"BODY[2.MIME]").startswith(b"Content-Type: application/octet-stream")
    assert literal(resp, b"BODY[2.MIME]").endswith(b"base64\r\n\r\n")
    assert literal(resp, b"BODY[HEADER.FIELDS (SUBJECT FROM)]") == crlf(
        "From: Alice Example <alice@example.org>\nSubject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?= with attachment\n\n"
    )
    assert literal(resp, b"BODY[HEADER.FIELDS.NOT (SUBJECT MIME-VERSION CONTENT-TYPE)]") == crlf(
        "From: Alice Example <alice@example.org>\nTo: Bob <bob@example.test>\nCc: carol@example.org\n"
        "Date: Tue, 03 Feb 2026 10:20:30 +0100\nMessage-ID: <multi@example.org>\n\n"
    )
    assert literal(resp, b"BODY[]<0>") == MULTI[:10]
    text = MULTI[MULTI.index(b"\r\n\r\n") + 4:]
    assert literal(resp, b"BODY[TEXT]<5>") == text[5:12]
    # BINARY decodes the base64 part; BINARY.SIZE is the decoded size.
    u, _ = r.cmd("FETCH 1 (BINARY.PEEK[2] BINARY.SIZE[2] BINARY.SIZE[1.1])")
    assert literal(u[0], b"BINARY[2]") == ATTACHMENT
    assert b"BINARY.SIZE[2] 1024" in u[0], u[0]
    assert b"BINARY.SIZE[1.1] %d" % len("Hello Bob, plain text. Viele Grüße.".encode()) in u[0], u[0]
    u, _ = r.cmd("FETCH 1 (FLAGS)")
    assert no_recent(u) == [b"* 1 FETCH (FLAGS ())"], u
    # Non-PEEK sets \Seen and reports it.
    u, t = r.cmd("FETCH 1 BODY[1.2]")
    assert t.startswith(b"OK"), t
    assert flags_of(u[0]) == {"\\Seen"}, u
    u, _ = r.cmd("UID FETCH 2 (RFC822.HEADER)")
    assert literal(u[0], b"RFC822.HEADER") == b"Subject: plain\r\n\r\n"
    assert b"UID 2" in u[0]
    # imaplib sees the same.
    c.select("INBOX", readonly=True)
    data = ok(c.fetch("2", "(BODY[TEXT])"))
    assert data[0][1] == b"second\r\n"
    assert no_recent(ok(c.fetch("2", "(FLAGS)"))) == [b"2 (FLAGS ())"], "EXAMINE: no \\Seen set by a fetch"
    _, t = r.cmd("FETCH 1 (BODY[0.5])")
    assert t.startswith(b"BAD"), t
    c.logout()
    r.close()


# ---------------------------------------------------------------------------
# SEARCH


def search_corpus():
    big = "x" * 70 + "\n"
    return [
        ("(\\Seen)", "01-Jan-2026 10:00:00 +0000",
         crlf("From: alice@example.org\nTo: bob@example.test\nSubject: Invoice 2026\nDate: Thu, 01 Jan 2026 10:00:00 +0000\n\npay the invoice\n")),
        ("(\\Flagged)", "15-Feb-2026 10:00:00 +0000",
         crlf("From: bob@example.org\nTo: alice@example.test\nSubject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?= aus Berlin\nX-Custom: yes-please\n"
              "Date: Sun, 15 Feb 2026 10:00:00 +0000\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
              "Viele Grüße aus der Straße\n")),
        ("(\\Answered $Label1)", "20-Mar-2026 10:00:00 +0000",
         crlf("From: carol@example.org\nTo: alice@example.test\nSubject: Large one\nDate: Fri, 20 Mar 2026 10:00:00 +0000\n\n" + big * 80)),
        ("()", "01-Apr-2026 10:00:00 +0000",
         crlf("From: Alice <alice@example.org>\nTo: bob@example.test\nSubject: Re: Invoice 2026\nDate: Wed, 01 Apr 2026 10:00:00 +0000\n\nwith a banana\n")),
    ]


def test_search_every_kind_of_key(imap):
    f = imap
    c = login(f)
    for flags, date, m in search_corpus():
        ok(c.append("INBOX", flags, '"' + date + '"', m))
    ok(c.select("INBOX"))

    def s(*crit, charset=None):
        return ok(c.search(charset, *crit))[0].decode()

    for crit, want in [
        (("ALL",), "1 2 3 4"),
        (("SEEN",), "1"), (("UNSEEN",), "2 3 4"), (("FLAGGED",), "2"), (("UNFLAGGED",), "1 3 4"),
        (("ANSWERED",), "3"), (("UNANSWERED",), "1 2 4"), (("DELETED",), ""), (("UNDELETED",), "1 2 3 4"),
        (("DRAFT",), ""), (("KEYWORD", "$Label1"), "3"), (("UNKEYWORD", "$Label1"), "1 2 4"),
        (("BEFORE", "15-Feb-2026"), "1"), (("ON", "15-Feb-2026"), "2"), (("SINCE", "20-Mar-2026"), "3 4"),
        (("SENTBEFORE", "15-Feb-2026"), "1"), (("SENTON", "20-Mar-2026"), "3"), (("SENTSINCE", "20-Mar-2026"), "3 4"),
        (("LARGER", "4000"), "3"), (("SMALLER", "1000"), "1 2 4"),
        (("FROM", "alice"), "1 4"), (("TO", "bob@example.test"), "1 4"), (("SUBJECT", "invoice"), "1 4"),
        (("BODY", "banana"), "4"), (("TEXT", "banana"), "4"), (("TEXT", "carol"), "3"), (("BODY", "carol"), ""),
        (("HEADER", "X-Custom", "yes-please"), "2"), (("HEADER", "X-Custom", '""'), "2"),
        (("OR", "FROM", "bob", "SEEN"), "1 2"), (("OR", "SEEN", "ANSWERED"), "1 3"),
        (("NOT", "FROM", "alice"), "2 3"), (("NOT", "SEEN", "FROM", "alice"), "4"),
        (("2,4",), "2 4"), (("2:*",), "2 3 4"), (("UID", "2:3"), "2 3"), (("UID", "3:*"), "3 4"),
        (("FROM", "nobody"), ""),
    ]:
        assert s(*crit) == want, (crit, s(*crit), want)
    assert ok(c.uid("SEARCH", "UID", "2:*", "UNSEEN"))[0] == b"2 3 4"
    # CHARSET UTF-8 with non-ASCII terms, sent as literals.
    c.literal = "Grüße".encode()
    assert s("SUBJECT", charset="UTF-8") == "2"
    c.literal = "Straße".encode()
    assert s("BODY", charset="UTF-8") == "2"
    typ, data = c.search("KOI8-R", "ALL")
    assert typ == "NO" and b"BADCHARSET" in data[0], data
    # ESEARCH (RFC 4731).
    r = Raw(f.imap_port)
    r.login()
    r.cmd("SELECT INBOX")
    u, t = r.cmd("UID SEARCH RETURN (MIN MAX COUNT ALL) FROM alice")
    assert u == [b'* ESEARCH (TAG "t3") UID MIN 1 MAX 4 COUNT 2 ALL 1,4'], u
    u, _ = r.cmd("SEARCH RETURN () 1:3")
    assert u == [b'* ESEARCH (TAG "t4") ALL 1:3'], u
    u, _ = r.cmd("SEARCH RETURN (COUNT) FROM nobody")
    assert u == [b'* ESEARCH (TAG "t5") COUNT 0'], u
    # SEARCHRES (RFC 5182): SAVE, then $.
    u, t = r.cmd("SEARCH RETURN (SAVE) SUBJECT invoice")
    assert u == [] and t.startswith(b"OK"), (u, t)
    u, _ = r.cmd("FETCH $ (UID)")
    assert u == [b"* 1 FETCH (UID 1)", b"* 4 FETCH (UID 4)"], u
    u, _ = r.cmd("SEARCH $ UNSEEN")
    assert u == [b"* SEARCH 4"], u
    u, _ = r.cmd("UID STORE $ +FLAGS.SILENT (\\Deleted)")
    u, _ = r.cmd("SEARCH DELETED")
    assert u == [b"* SEARCH 1 4"], u
    r.close()
    c.logout()


# ---------------------------------------------------------------------------
# STORE, COPY, MOVE, EXPUNGE, CLOSE, UNSELECT


def test_delivered_mail_internaldate_read_when_asked(imap):
    """Delivered files carry their size in their names, so the first SELECT
    does not stat them: INTERNALDATE (the file's mtime) is read when a FETCH
    or a SEARCH by date first needs it, and kept."""
    f = imap
    deliver(f, ALICE, [crlf(f"Subject: d{k}\n\nbody {k}\n") for k in range(3)])
    new = f.root / "mail" / "example.test" / "alice" / "new"
    wait_for(lambda: len(os.listdir(new)) == 3, 10, "three deliveries")
    # Deliveries 1, 2, 3 dated 1 Feb, 1 Mar, 1 Apr 2025 (noon UTC).
    for name, ts in zip(sorted(os.listdir(new)), (1738411200, 1740830400, 1743508800)):
        os.utime(new / name, (ts, ts))
    c = login(f)
    ok(c.select("INBOX"))
    assert ok(c.search(None, "BEFORE", "15-Feb-2025"))[0] == b"1"
    assert ok(c.search(None, "SINCE", "15-Feb-2025"))[0] == b"2 3"
    data = ok(c.fetch("1:3", "(INTERNALDATE)"))
    dates = [imaplib.Internaldate2tuple(d) for d in data]
    assert [time.strftime("%Y-%m-%d", t) for t in dates] == ["2025-02-01", "2025-03-01", "2025-04-01"], data
    c.logout()
    # A new session (the dates now come from the index or the shared view).
    c = login(f)
    ok(c.select("INBOX"))
    assert ok(c.search(None, "ON", "1-Mar-2025"))[0] == b"2"
    c.logout()


def test_store_copy_move_expunge_close_unselect(imap):
    f = imap
    deliver(f, ALICE, [crlf(f"Subject: m{i}\n\nbody {i}\n") for i in range(1, 7)])
    r = Raw(f.imap_port)
    r.login()
    # EXAMINE: read-only, STORE/EXPUNGE refused.
    u, t = r.cmd("EXAMINE INBOX")
    assert t.startswith(b"OK [READ-ONLY]") and b"* 6 EXISTS" in u, (u, t)
    _, t = r.cmd("STORE 1 +FLAGS (\\Seen)")
    assert t.startswith(b"NO [READ-ONLY]"), t
    _, t = r.cmd("EXPUNGE")
    assert t.startswith(b"NO"), t
    u, t = r.cmd("SELECT INBOX")
    assert u[0] == b"* OK [CLOSED] Previous mailbox closed" and t.startswith(b"OK [READ-WRITE]"), (u, t)
    # + - and replace, with and without .SILENT.
    u, _ = r.cmd("STORE 1 +FLAGS (\\Flagged \\Seen)")
    assert len(u) == 1 and u[0].startswith(b"* 1 FETCH (") and flags_of(u[0]) == {"\\Flagged", "\\Seen"}, u
    u, _ = r.cmd("STORE 1 -FLAGS (\\Seen)")
    assert flags_of(u[0]) == {"\\Flagged"}, u
    u, _ = r.cmd("STORE 1 FLAGS (\\Draft $Todo)")
    # A new keyword: the mailbox's FLAGS (and PERMANENTFLAGS) first.
    assert u[0].startswith(b"* FLAGS (") and b" $Todo" in u[0] and b"PERMANENTFLAGS" in u[1], u
    assert flags_of(u[-1]) == {"\\Draft", "$Todo"}, u
    u, t = r.cmd("STORE 1:2 +FLAGS.SILENT (\\Answered)")
    assert u == [] and t.startswith(b"OK"), (u, t)
    u, _ = r.cmd("FETCH 1:2 FLAGS")
    assert flags_of(u[0]) == {"\\Draft", "$Todo", "\\Answered"} and flags_of(u[1]) == {"\\Answered"}, u
    u, _ = r.cmd("UID STORE 2 -FLAGS (\\Answered)")
    assert no_recent(u) == [b"* 2 FETCH (UID 2 FLAGS ())"], u
    _, t = r.cmd("STORE 1 +FLAGS (\\Recent)")
    assert t.startswith(b"BAD"), t
    # UNCHANGEDSINCE (CONDSTORE): 2 changed after 1, so it fails for 2.
    u, _ = r.cmd("FETCH 1 (MODSEQ)")
    # The first CONDSTORE-enabling command announces HIGHESTMODSEQ first.
    assert u[0].startswith(b"* OK [HIGHESTMODSEQ "), u
    m1 = int(re.search(rb"MODSEQ \((\d+)\)", u[1]).group(1))
    r.cmd("STORE 2 +FLAGS ($Later)")
    u, t = r.cmd(f"STORE 1,2 (UNCHANGEDSINCE {m1}) +FLAGS ($Checked)")
    assert t.startswith(b"OK [MODIFIED 2]"), t
    assert u[0].startswith(b"* FLAGS (") and b" $Checked " in u[0], u  # a new keyword
    u = u[2:]
    assert len(u) == 1 and u[0].startswith(b"* 1 FETCH (") and "$Checked" in flags_of(u[0]) and b"MODSEQ (" in u[0], u
    u, _ = r.cmd("FETCH 2 (FLAGS)")
    assert "$Checked" not in flags_of(u[0]), u
    # COPY with COPYUID; into a missing mailbox: TRYCREATE.
    _, t = r.cmd("COPY 1:2 Archive")
    assert re.match(rb"OK \[COPYUID \d+ 1:2 1:2\]", t), t
    _, t = r.cmd("COPY 1 Nowhere")
    assert t.startswith(b"NO [TRYCREATE]"), t
    _, t = r.cmd("UID COPY 6 Archive")
    assert re.match(rb"OK \[COPYUID \d+ 6 3\]", t), t
    # MOVE: COPYUID in an untagged OK, then EXPUNGE.
    u, t = r.cmd("MOVE 3 Archive")
    assert re.fullmatch(rb"\* OK \[COPYUID \d+ 3 4\].*", u[0]) and u[1:] == [b"* 3 EXPUNGE"] and t.startswith(b"OK"), (u, t)
    u, t = r.cmd("UID MOVE 5 Archive")
    assert re.fullmatch(rb"\* OK \[COPYUID \d+ 5 5\].*", u[0]) and u[1:] == [b"* 4 EXPUNGE"], (u, t)
    u, _ = r.cmd("STATUS Archive (MESSAGES)")
    assert u == [b"* STATUS Archive (MESSAGES 5)"], u
    # The copies keep their flags.
    u, _ = r.cmd("FETCH 1:* (UID)")
    assert u == [b"* 1 FETCH (UID 1)", b"* 2 FETCH (UID 2)", b"* 3 FETCH (UID 4)", b"* 4 FETCH (UID 6)"], u
    # EXPUNGE: highest first.
    r.cmd("STORE 1,3 +FLAGS.SILENT (\\Deleted)")
    u, t = r.cmd("EXPUNGE")
    assert u == [b"* 3 EXPUNGE", b"* 1 EXPUNGE"] and t.startswith(b"OK"), (u, t)
    # UID EXPUNGE: only the named \Deleted messages go.
    r.cmd("STORE 1:2 +FLAGS.SILENT (\\Deleted)")
    u, _ = r.cmd("UID EXPUNGE 6")
    assert u == [b"* 2 EXPUNGE"], u
    u, _ = r.cmd("UID SEARCH ALL")
    assert u == [b"* SEARCH 2"], u
    # UNSELECT keeps \Deleted messages; CLOSE expunges them silently.
    u, t = r.cmd("UNSELECT")
    assert u == [] and t.startswith(b"OK"), (u, t)
    _, t = r.cmd("FETCH 1 FLAGS")
    assert t.startswith(b"BAD"), t
    r.cmd("SELECT INBOX")
    u, t = r.cmd("CLOSE")
    assert u == [] and t.startswith(b"OK"), (u, t)
    u, _ = r.cmd("STATUS INBOX (MESSAGES)")
    assert u == [b"* STATUS INBOX (MESSAGES 0)"], u
    # imaplib agrees on the mailbox it copied to.
    c = login(f)
    assert ok(c.select("Archive")) == [b"5"]
    data = ok(c.fetch("1:*", "(FLAGS)"))
    assert "$Checked" in flags_of(data[0]) and "\\Draft" in flags_of(data[0])
    typ, data = c._simple_command("MOVE", "1", "Trash")
    assert typ == "OK" and b"COPYUID" in b" ".join(c.untagged_responses.get("OK", [])), c.untagged_responses
    assert c.untagged_responses.get("EXPUNGE") == [b"1"], c.untagged_responses
    c.logout()
    r.close()


# ---------------------------------------------------------------------------
# IDLE and concurrent sessions


def test_idle_gets_an_lmtp_delivery_within_a_second(imap):
    f = imap
    deliver(f, ALICE, [crlf("Subject: before\n\nx\n")])
    r = Raw(f.imap_port)
    r.login()
    r.cmd("SELECT INBOX")
    r.send("i IDLE\r\n")
    assert r.line() == b"+ idling\r\n"
    for n in (2, 3):
        deliver(f, ALICE, [crlf(f"Subject: during {n}\n\nx\n")])
        t0 = time.monotonic()
        r.s.settimeout(1.0)
        line = r.line()
        assert line == b"* %d EXISTS\r\n" % n, line
        assert time.monotonic() - t0 < 1.0
        # IMAP4rev1: the new message is recent in this session.
        assert r.line() == b"* %d RECENT\r\n" % n
    r.s.settimeout(10)
    r.send("DONE\r\n")
    u, t = r.until("i")
    assert t.startswith(b"OK"), t
    r.close()


def test_many_idle_sessions_of_one_mailbox_are_each_told_every_change(imap):
    """Sessions woken by one change share one sync of the mailbox
    (crates/imapd/src/notify.rs): each is still told every change, in its
    own numbering, and a new message is recent in exactly one of them."""
    f = imap
    deliver(f, ALICE, [crlf("Subject: first\n\nx\n")])
    # Message 1 is recent in this session only, gone before the others.
    c = login(f)
    c.select("INBOX")
    c.logout()
    sessions = []
    for _ in range(30):
        r = Raw(f.imap_port)
        r.login()
        r.cmd("SELECT INBOX")
        r.send("i IDLE\r\n")
        assert r.line() == b"+ idling\r\n"
        sessions.append(r)

    def told(r, last):
        lines = []
        while True:
            line = r.line()
            lines.append(line)
            if line.startswith(last):
                return lines

    # A delivery by lmtpd (inotify): every session is told of message 2,
    # and one of them (IMAP4rev1) has it as recent.
    deliver(f, ALICE, [crlf("Subject: second\n\nx\n")])
    recent = []
    for r in sessions:
        lines = told(r, b"* 2 EXISTS")
        line = r.line()
        assert line in (b"* 0 RECENT\r\n", b"* 1 RECENT\r\n"), (lines, line)
        recent.append(line)
    assert recent.count(b"* 1 RECENT\r\n") == 1, recent
    # Another session's flag change and expunge (this process).
    c = login(f)
    c.select("INBOX")
    ok(c.store("2", "+FLAGS.SILENT", "(\\Flagged)"))
    for r in sessions:
        lines = told(r, b"* 2 FETCH")
        assert b"\\Flagged" in lines[-1], lines
    ok(c.store("1", "+FLAGS.SILENT", "(\\Deleted)"))
    for r in sessions:
        told(r, b"* 1 FETCH")
    ok(c.expunge())
    for r in sessions:
        told(r, b"* 1 EXPUNGE")
    c.logout()
    for r in sessions:
        r.send("DONE\r\n")
        u, t = r.until("i")
        assert t.startswith(b"OK"), t
        r.cmd("FETCH 1:* (UID FLAGS)")
        r.close()


def test_a_folder_another_tool_filled_is_numbered_at_its_first_select(imap):
    """A Maildir folder written by another tool (no index row yet): the
    first SELECT numbers its messages in delivery order (answered before
    the index rows are committed: crates/store/src/mailbox/fill.rs), the
    next sessions see the same UIDVALIDITY and UIDs, and so does one after
    a SIGKILL of imapd."""
    f = imap
    folder = f.maildir(ALICE, ".Migrated")
    for sub in ("cur", "new", "tmp"):
        (folder / sub).mkdir(parents=True)
    n = 5000
    # Written in an order unlike the delivery order (the dates the names
    # start with); every third one seen, half without W= (read for it).
    for k in range(n):
        i = (k * 7919) % n
        body = f"Subject: old {i}\n\nmessage {i}\n"
        crlf_size = len(body) + body.count("\n")
        sizes = f",S={len(body)}" + (f",W={crlf_size}" if i % 2 else "")
        flags = "S" if i % 3 == 0 else ""
        (folder / "cur" / f"{1_600_000_000 + i}.M{i}P1.oldhost{sizes}:2,{flags}").write_text(body)

    def numbering(c):
        typ, data = c.uid("FETCH", "1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert typ == "OK", data
        got = {}
        for item in data:
            if not isinstance(item, tuple):
                continue
            uid = int(re.search(rb"UID (\d+)", item[0]).group(1))
            seen = b"\\Seen" in re.search(rb"FLAGS \(([^)]*)\)", item[0]).group(1)
            got[uid] = (item[1].strip().decode(), seen)
        return got

    want = {i + 1: (f"Subject: old {i}", i % 3 == 0) for i in range(n)}
    c = login(f)
    typ, data = c.select("Migrated")
    assert (typ, int(data[0])) == ("OK", n)
    # IMAP4rev1: every message is recent for the first session.
    assert c.response("RECENT")[1] == [str(n).encode()]
    uidvalidity = c.response("UIDVALIDITY")[1]
    assert numbering(c) == want
    # Another session waits for the commit if need be; nothing is recent
    # for it.
    c2 = login(f)
    typ, data = c2.select("Migrated")
    assert (typ, int(data[0])) == ("OK", n)
    assert c2.response("UIDVALIDITY")[1] == uidvalidity
    assert c2.response("RECENT")[1] == [b"0"]
    c2.logout()
    c.logout()
    # The numbering is on disk: a killed imapd finds it again.
    f.kill9(f.daemons["imapd"])
    f.start("imapd")
    c3 = login(f)
    typ, data = c3.select("Migrated")
    assert (typ, int(data[0])) == ("OK", n)
    assert c3.response("UIDVALIDITY")[1] == uidvalidity
    assert numbering(c3) == want
    c3.logout()


def test_two_sessions_see_each_others_flags_and_expunges(imap):
    f = imap
    deliver(f, ALICE, [crlf(f"Subject: m{i}\n\nbody {i}\n") for i in range(1, 5)])
    a, b = Raw(f.imap_port), Raw(f.imap_port)
    for s in (a, b):
        s.login()
        s.cmd("SELECT INBOX")
    a.cmd("STORE 2 +FLAGS (\\Flagged)")
    u, t = b.cmd("NOOP")
    assert u == [b"* 2 FETCH (UID 2 FLAGS (\\Flagged))"], u
    # Expunges reach the other session at NOOP (not during FETCH).
    a.cmd("STORE 1,3 +FLAGS (\\Deleted)")
    a.cmd("EXPUNGE")
    u, _ = b.cmd("FETCH 3 (UID)")
    assert u[-1] == b"* 3 FETCH (UID 3)" and not any(b"EXPUNGE" in l for l in u), u
    u, _ = b.cmd("NOOP")
    exp = [l for l in u if l.endswith(b"EXPUNGE")]
    assert exp == [b"* 3 EXPUNGE", b"* 1 EXPUNGE"], u
    u, _ = b.cmd("FETCH 1:* (UID FLAGS)")
    assert no_recent(u) == [b"* 1 FETCH (UID 2 FLAGS (\\Flagged))", b"* 2 FETCH (UID 4 FLAGS ())"], u
    # An APPEND by one session: EXISTS in the other, in IDLE too.
    b.send("i IDLE\r\n")
    assert b.line() == b"+ idling\r\n"
    u, t = a.append("INBOX", b"Subject: x\r\n\r\nx\r\n")
    assert t.startswith(b"OK [APPENDUID"), t
    # The appending session, INBOX selected, hears of it once.
    assert u[0] == b"* 3 EXISTS" and len(u) == 2 and re.fullmatch(rb"\* \d+ RECENT", u[1]), u
    u, _ = a.cmd("NOOP")
    assert u == [], u
    b.s.settimeout(2)
    assert b.line() == b"* 3 EXISTS\r\n"
    a.cmd("STORE 1 -FLAGS (\\Flagged)")
    # IMAP4rev1: a RECENT count may come first (the new message is recent
    # in whichever session saw it first).
    line = b.line()
    if line.endswith(b" RECENT\r\n"):
        line = b.line()
    assert line == b"* 1 FETCH (UID 2 FLAGS ())\r\n", line
    b.send("DONE\r\n")
    assert b.until("i")[1].startswith(b"OK")
    a.close()
    b.close()


def test_condstore_and_qresync(imap):
    f = imap
    deliver(f, ALICE, [crlf(f"Subject: m{i}\n\nbody {i}\n") for i in range(1, 5)])
    r = Raw(f.imap_port)
    r.login()
    u, _ = r.cmd("ENABLE CONDSTORE QRESYNC")
    assert u == [b"* ENABLED CONDSTORE QRESYNC"], u
    u, _ = r.cmd("SELECT INBOX")
    uidvalidity = int(code(b" ".join(u), "UIDVALIDITY"))
    modseq = int(code(b" ".join(u), "HIGHESTMODSEQ"))
    u, _ = r.cmd("FETCH 1 (FLAGS)")
    assert re.fullmatch(rb"\* 1 FETCH \(FLAGS \((\\Recent)?\) MODSEQ \(\d+\)\)", u[0]), u
    r.cmd("UNSELECT")
    # Meanwhile another session changes a flag and expunges a message.
    o = Raw(f.imap_port)
    o.login()
    o.cmd("SELECT INBOX")
    o.cmd("STORE 1 +FLAGS (\\Seen)")
    o.cmd("STORE 3 +FLAGS (\\Deleted)")
    o.cmd("EXPUNGE")
    u, _ = o.cmd("STATUS INBOX (HIGHESTMODSEQ)")
    assert int(re.search(rb"HIGHESTMODSEQ (\d+)", u[0]).group(1)) > modseq, u
    u, t = r.cmd(f"SELECT INBOX (QRESYNC ({uidvalidity} {modseq}))")
    assert t.startswith(b"OK"), t
    assert b"* VANISHED (EARLIER) 3" in u, u
    fetches = [l for l in u if b" FETCH " in l]
    assert len(fetches) == 1 and re.fullmatch(rb"\* 1 FETCH \(UID 1 FLAGS \(\\Seen\) MODSEQ \(\d+\)\)", fetches[0]), u
    # The same with known UIDs that exclude 3: no VANISHED.
    u, _ = r.cmd(f"SELECT INBOX (QRESYNC ({uidvalidity} {modseq} 1:2))")
    assert not any(b"VANISHED" in l for l in u), u
    # A wrong UIDVALIDITY: a plain SELECT.
    u, _ = r.cmd(f"SELECT INBOX (QRESYNC ({uidvalidity + 1} {modseq}))")
    assert not any(b"VANISHED" in l or b" FETCH " in l for l in u), u
    u, _ = r.cmd(f"UID FETCH 1:* (FLAGS) (CHANGEDSINCE {modseq} VANISHED)")
    assert u[0] == b"* VANISHED (EARLIER) 3" and len(u) == 2 and b"UID 1 " in u[1], u
    # Under QRESYNC, another session's expunge comes as VANISHED.
    o.cmd("STORE 2 +FLAGS (\\Deleted)")
    o.cmd("EXPUNGE")
    u, _ = r.cmd("NOOP")
    assert b"* VANISHED 2" in u and not any(l.endswith(b"EXPUNGE") for l in u), u
    _, t = o.cmd(f"SELECT INBOX (QRESYNC ({uidvalidity} {modseq}))")
    assert t.startswith(b"BAD"), "QRESYNC parameters need ENABLE QRESYNC"
    r.close()
    o.close()


def test_pop3_deletion_seen_by_an_open_imap_session():
    f = make(pop3d=True)
    try:
        deliver(f, ALICE, [crlf(f"Subject: m{i}\n\nbody {i}\n") for i in range(1, 5)])
        r = Raw(f.imap_port)
        r.login()
        u, _ = r.cmd("SELECT INBOX")
        assert b"* 4 EXISTS" in u

        def pop_dele(n):
            p = poplib.POP3("127.0.0.1", f.pop3_port, timeout=30)
            p.user(ALICE)
            p.pass_(ALICE_PW)
            assert p.dele(n).startswith(b"+OK")
            assert p.quit().startswith(b"+OK")

        pop_dele(2)
        u, t = r.cmd("NOOP")
        assert [l for l in u if not l.endswith(b" RECENT")] == [b"* 2 EXPUNGE", b"* 3 EXISTS"], u
        # And in IDLE, pushed without a command.
        r.send("i IDLE\r\n")
        assert r.line() == b"+ idling\r\n"
        pop_dele(1)
        t0 = time.monotonic()
        r.s.settimeout(2)
        assert r.line() == b"* 1 EXPUNGE\r\n"
        assert time.monotonic() - t0 < 1.0
        r.send("DONE\r\n")
        u, t = r.until("i")
        assert t.startswith(b"OK"), t
        u, _ = r.cmd("FETCH 1:* (UID)")
        assert u == [b"* 1 FETCH (UID 3)", b"* 2 FETCH (UID 4)"], u
        r.close()
    finally:
        f.cleanup()


# ---------------------------------------------------------------------------
# Bad input


def test_bad_input_and_too_many_errors():
    f = make(imapd_extra="max_errors = 8")
    try:
        r = Raw(f.imap_port)
        _, t = r.cmd("XYZZY")
        assert t.startswith(b"BAD"), t
        _, t = r.cmd("SELECT INBOX")
        assert t.startswith(b"BAD"), t  # not logged in
        r.login()
        _, t = r.cmd("FETCH 1 FLAGS")
        assert t.startswith(b"BAD"), t  # nothing selected
        _, t = r.cmd(b'SELECT "IN\x00BOX"')
        assert t.startswith(b"BAD"), t
        # A line over the limit: BAD, and the session goes on.
        r.send("t6 NOOP " + "x" * 100_000 + "\r\n")
        line = r.line()
        assert re.match(rb"(t6|\*) BAD", line), line
        r.n = 6
        _, t = r.cmd("NOOP")
        assert t.startswith(b"OK"), t
        # 4 errors so far; a fifth, a sixth...: BYE at the eighth.
        for i in range(8, 10):
            _, t = r.cmd("XYZZY")
            assert t.startswith(b"BAD"), t
        r.send("t10 XYZZY\r\n")
        assert r.line().startswith(b"t10 BAD")
        assert r.line().startswith(b"* BYE")
        assert r.eof()
        r.close()
        # The server is fine.
        c = login(f)
        ok(c.noop())
        c.logout()
    finally:
        f.cleanup()


def test_sighup_applies_imapd_settings_to_new_sessions(imap):
    # systemctl reload: [imapd] settings apply to sessions that start after
    # it, the open ones keep theirs; listeners need a restart, and the log
    # says so.
    import signal

    from harness import set_key

    f = imap
    p = f.daemons["imapd"]
    before = login(f)
    assert b"APPENDLIMIT=52428800" in b" ".join(ok(before.capability()))
    good = f.config.read_text()
    f.config.write_text(set_key(good, "imapd", 'max_append_size = "1M"'))
    p.send_signal(signal.SIGHUP)
    wait_for(lambda: "facteur-imapd: configuration reloaded" in f.log_text("imapd"), 10, "the reload")
    assert b"APPENDLIMIT=52428800" in b" ".join(ok(before.capability()))
    after = login(f)
    assert b"APPENDLIMIT=1048576" in b" ".join(ok(after.capability()))
    before.logout()
    after.logout()
    f.config.write_text(set_key(good, "imapd", 'listen = ["127.0.0.1:1"]'))
    p.send_signal(signal.SIGHUP)
    wait_for(lambda: "imapd.listen, listen_tls" in f.log_text("imapd"), 10, "the restart notice")
    assert p.poll() is None
    f.config.write_text(good)


def test_compress_deflate_with_zlib(imap):
    """COMPRESS=DEFLATE (RFC 4978) against Python's zlib (raw deflate,
    wbits=-15): after the uncompressed OK, commands go deflated and every
    reply comes back deflated and sync-flushed, a big FETCH included."""
    f = imap
    body = "".join(f"line {i} of a long message\n" for i in range(4000))
    deliver(f, ALICE, [crlf(f"Subject: big\n\n{body}")])
    s = socket.create_connection(("127.0.0.1", f.imap_port), timeout=30)
    r = s.makefile("rb")
    assert r.readline().startswith(b"* OK")
    s.sendall(f'a LOGIN "{ALICE}" "{ALICE_PW}"\r\n'.encode())
    while not (l := r.readline()).startswith(b"a "):
        pass
    assert l.startswith(b"a OK") and b"COMPRESS=DEFLATE" in l, l
    s.sendall(b"b COMPRESS DEFLATE\r\n")
    assert r.readline() == b"b OK DEFLATE active\r\n"
    z_out = zlib.compressobj(wbits=-15)
    z_in = zlib.decompressobj(wbits=-15)
    got = bytearray()

    def send(line):
        s.sendall(z_out.compress(line) + z_out.flush(zlib.Z_SYNC_FLUSH))

    def until(tag):
        # (The server sends nothing after its OK until a command comes:
        # the line reader above holds no compressed bytes.)
        nonlocal got
        while not re.search(rb"(^|\r\n)" + tag + rb" [A-Z]+ [^\r]*\r\n", bytes(got)):
            chunk = s.recv(65536)
            assert chunk, bytes(got[-300:])
            got += z_in.decompress(chunk)
        text = bytes(got)
        got = bytearray()
        return text

    send(b"c SELECT INBOX\r\n")
    t = until(b"c")
    assert b"* 1 EXISTS" in t and b"c OK [READ-WRITE]" in t, t
    send(b"d FETCH 1 BODY.PEEK[TEXT]\r\nd2 NOOP\r\n")
    t = until(b"d2")
    assert crlf(body) in t and b"d OK FETCH" in t, t[-300:]
    send(b"e COMPRESS DEFLATE\r\n")
    assert b"e NO [COMPRESSIONACTIVE]" in until(b"e")
    send(b"z LOGOUT\r\n")
    assert b"z OK" in until(b"z")
    s.close()


def raw_session(f):
    """A logged-in raw connection: (socket, line reader)."""
    s = socket.create_connection(("127.0.0.1", f.imap_port), timeout=30)
    r = s.makefile("rb")
    assert r.readline().startswith(b"* OK")
    s.sendall(f'a LOGIN "{ALICE}" "{ALICE_PW}"\r\n'.encode())
    while not (l := r.readline()).startswith(b"a "):
        pass
    assert l.startswith(b"a OK"), l
    return s, r


def test_notify_tells_of_an_lmtp_delivery_between_commands(imap):
    """NOTIFY (RFC 5465): a delivery by lmtpd (another process) into INBOX
    and a folder created by another session reach a client that sends
    nothing, as STATUS and LIST lines."""
    f = imap
    s, r = raw_session(f)
    s.sendall(b"n NOTIFY SET STATUS (INBOXES (MessageNew MessageExpunge)) "
              b"(PERSONAL (MailboxName))\r\n")
    assert r.readline().startswith(b"* STATUS INBOX (MESSAGES 0 UIDNEXT 1 ")
    assert r.readline() == b"n OK NOTIFY completed\r\n"
    deliver(f, ALICE, [crlf("Subject: hi\n\nhello\n")])
    s.settimeout(10)
    assert r.readline().startswith(b"* STATUS INBOX (MESSAGES 1 UIDNEXT 2 ")
    other = login(f)
    ok(other.create("Projects"))
    assert r.readline() == b'* LIST () "/" Projects\r\n'
    other.logout()
    s.close()


def test_metadata_values_and_their_limit(imap):
    """METADATA (RFC 5464): a value set in a literal comes back whole, the
    server's entries apart from INBOX's; a value over 64 KiB is refused
    with MAXSIZE and changes nothing."""
    f = imap
    s, r = raw_session(f)
    value = b"x" * 65536
    s.sendall(b"b SETMETADATA INBOX (/private/vendor/big {65536+}\r\n" + value + b")\r\n")
    assert r.readline() == b"b OK SETMETADATA completed\r\n"
    s.sendall(b'c SETMETADATA "" (/shared/comment "the server")\r\n')
    assert r.readline() == b"c OK SETMETADATA completed\r\n"
    s.sendall(b"d SETMETADATA INBOX (/private/vendor/big {65537+}\r\n" + value + b"y)\r\n")
    assert r.readline() == b"d NO [METADATA MAXSIZE 65536] Value too long\r\n"
    s.sendall(b"e GETMETADATA (DEPTH infinity) INBOX /private\r\n")
    assert r.readline() == b"* METADATA INBOX (/private/vendor/big {65536}\r\n"
    assert r.read(65536) == value
    assert r.readline() == b")\r\n"
    assert r.readline() == b"e OK GETMETADATA completed\r\n"
    s.sendall(b'f GETMETADATA "" /shared/comment\r\n')
    assert r.readline() == b'* METADATA "" (/shared/comment "the server")\r\n'
    assert r.readline() == b"f OK GETMETADATA completed\r\n"
    s.close()


def test_setquota_by_a_quota_administrator_applies_at_once():
    """SETQUOTA (RFC 9208) by a user `[imapd] quota_admins` names: another
    user's root is reached by address, the directory is written (facteurctl
    sees it), and the user's session already open is held to the new limit
    at its next APPEND. Others get NOPERM and no QUOTASET."""
    f = make(imapd_extra=f'quota_admins = ["{ALICE}"]')
    try:
        bob = login(f, BOB, BOB_PW)
        assert b"QUOTASET" not in bob.capability()[1][0]
        typ, data = bob.setquota('""', "(STORAGE 100)")
        assert typ == "NO" and b"[NOPERM]" in data[0], data
        admin = login(f)
        assert b"QUOTASET" in admin.capability()[1][0]
        typ, data = admin.getquota(f'"{BOB}"')
        assert (typ, data) == ("OK", [f'"{BOB}" ()'.encode()]), data
        typ, data = admin.setquota(f'"{BOB}"', "(STORAGE 1 MESSAGE 2)")
        assert (typ, data) == ("OK", [f'"{BOB}" (STORAGE 0 1 MESSAGE 0 2)'.encode()]), data
        assert f"{BOB}\tquota=1024\tmessages=2" in f.ctl("user", "list")
        typ, data = bob.append("INBOX", None, None, crlf("Subject: big\n\n" + "x" * 3000 + "\n"))
        assert typ == "NO" and b"[OVERQUOTA]" in data[0], data
        typ, data = admin.setquota(f'"{BOB}"', "()")
        assert typ == "OK", data
        typ, data = bob.append("INBOX", None, None, crlf("Subject: big\n\n" + "x" * 3000 + "\n"))
        assert typ == "OK", data
        typ, data = admin.setquota(f'"{BOB}"', "(FOO 1)")
        assert typ == "NO", data
        typ, data = admin.getquota('"nobody@example.test"')
        assert typ == "NO" and b"[NONEXISTENT]" in data[0], data
    finally:
        f.cleanup()
