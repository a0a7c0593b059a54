"""mbsync (Debian's isync) against facteur-imapd: a two-way sync of a
5,000-message mailbox with folders between facteur (the "far" side, over
IMAPS with the dev certificate) and a local Maildir (the "near" side).

Afterwards both sides hold the same messages with the same flags; a second
run changes nothing on either side; a flag changed and a message deleted on
either side propagate to the other, and so do new messages.

Every file mbsync reads or writes (its config, its state, the near Maildir)
is under the test's temporary directory: `-c` names the config, so
~/.mbsyncrc is never read."""

import collections
import concurrent.futures
import imaplib
import os
import re
import shutil
import smtplib
import subprocess
import time

import pytest

from harness import Facteur, crlf

ALICE, ALICE_PW = "alice@example.test", "alice-pw"
MBSYNC = shutil.which("mbsync")
N = 5000

pytestmark = pytest.mark.skipif(MBSYNC is None, reason="mbsync (Debian package isync) is not installed")

# Maildir flag letters (as mbsync writes them) and IMAP flags.
LETTERS = {"D": "\\Draft", "F": "\\Flagged", "R": "\\Answered", "S": "\\Seen", "T": "\\Deleted"}


def message(i):
    return crlf(
        f"From: sender{i % 17}@remote.test\nTo: {ALICE}\nSubject: message {i}\n"
        f"Message-ID: <m{i}@remote.test>\nDate: Mon, 05 Jan 2026 10:00:00 +0000\n\nThis is message {i}.\n"
    )


def seed(f):
    """5,000 messages over LMTP (four sessions at once: delivery waits on
    fsync), then spread into folders and flagged, server side. Returns the
    state on the server."""

    def deliver(k):
        with smtplib.LMTP(str(f.socket)) as c:
            for i in range(k, N, 4):
                c.sendmail("s@remote.test", [ALICE], message(i))

    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        list(ex.map(deliver, range(4)))
    c = imaplib.IMAP4_SSL("127.0.0.1", f.imaps_port, ssl_context=tls_ctx(), timeout=60)
    c.login(ALICE, ALICE_PW)
    assert c.create("Lists/rust")[0] == "OK"
    assert c.select("INBOX") == ("OK", [str(N).encode()])
    # Messages 4001..4500 to Lists/rust, 4501..5000 to Archive.
    for box, rng in (("Lists/rust", "4001:4500"), ("Archive", "4501:5000")):
        typ, data = c.uid("MOVE", rng, box)
        assert typ == "OK", data
    assert c.store("1:1000", "+FLAGS.SILENT", "(\\Seen)")[0] == "OK"
    assert c.store("1:100", "+FLAGS.SILENT", "(\\Flagged)")[0] == "OK"
    assert c.store("50:60", "+FLAGS.SILENT", "(\\Answered)")[0] == "OK"
    c.select("Archive")
    assert c.store("1:*", "+FLAGS.SILENT", "(\\Seen)")[0] == "OK"
    c.logout()
    return far_state(f)


def tls_ctx():
    import ssl

    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def far_state(f):
    """{folder: {message-id: flags}} on facteur, over IMAP."""
    c = imaplib.IMAP4_SSL("127.0.0.1", f.imaps_port, ssl_context=tls_ctx(), timeout=60)
    c.login(ALICE, ALICE_PW)
    out = {}
    for box in ("INBOX", "Lists/rust", "Archive"):
        typ, data = c.select(box, readonly=True)
        assert typ == "OK", data
        msgs = {}
        if int(data[0]):
            typ, data = c.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
            assert typ == "OK"
            for item in data:
                if not isinstance(item, tuple):
                    continue
                mid = re.search(rb"<([^>]+)>", item[1]).group(1).decode()
                flags = re.search(rb"FLAGS \(([^)]*)\)", item[0]).group(1).decode().split()
                # \Recent belongs to a session (EXAMINE shows the messages
                # no session took yet), not to the message.
                msgs[mid] = frozenset(f for f in flags if f != "\\Recent")
        out[box] = msgs
    c.logout()
    return out


def near_dir(near, box):
    return near / ("INBOX" if box == "INBOX" else box)


def near_state(near):
    """{folder: {message-id: flags}} in the near Maildir, from the files."""
    out = {}
    for box in ("INBOX", "Lists/rust", "Archive"):
        msgs = {}
        for sub in ("cur", "new"):
            d = near_dir(near, box) / sub
            if not d.exists():
                continue
            for p in d.iterdir():
                head = p.read_bytes().split(b"\n\n", 1)[0]
                mid = re.search(rb"(?im)^Message-ID:\s*<([^>]+)>", head).group(1).decode()
                letters = p.name.split(":2,")[1] if ":2," in p.name else ""
                flags = frozenset(LETTERS[ch] for ch in letters if ch in LETTERS)
                assert mid not in msgs, f"{mid} twice in {box}"
                msgs[mid] = flags
        out[box] = msgs
    return out


def near_file(near, box, mid):
    for sub in ("cur", "new"):
        for p in (near_dir(near, box) / sub).iterdir():
            if f"<{mid}>".encode() in p.read_bytes().split(b"\n\n", 1)[0]:
                return p
    raise AssertionError(f"{mid} not in near {box}")


def write_config(tmp, f, user=ALICE, password=ALICE_PW):
    near = tmp / "near"
    near.mkdir()
    cfg = tmp / "mbsyncrc"
    cfg.write_text(
        f"""# The near side is a scratch directory: no fsync per message.
FSync no

IMAPAccount facteur
Host 127.0.0.1
Port {f.imaps_port}
User {user}
Pass {password}
SSLType IMAPS
CertificateFile {f.root / "tls" / "cert.pem"}
SystemCertificates no
AuthMechs PLAIN LOGIN
Timeout 60
PipelineDepth 50

IMAPStore far
Account facteur

MaildirStore near
Path {near}/
Inbox {near}/INBOX
SubFolders Verbatim

Channel facteur
Far :far:
Near :near:
Patterns *
Create Both
Expunge Both
Remove None
Sync All
SyncState *
"""
    )
    return cfg, near


def mbsync(cfg, tmp, *args):
    env = dict(os.environ, HOME=str(tmp))  # never the real ~/.mbsyncrc or state
    p = subprocess.run(
        [MBSYNC, *args, "-c", str(cfg), "-a"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout + p.stderr


def transfers(out):
    """The IMAP commands of an `mbsync -Dn` run (">>> 5 UID FETCH ...")
    that move messages or flags: fetching bodies, APPEND, STORE, COPY,
    MOVE, EXPUNGE."""
    cmds = re.findall(r"(?m)^>>> \d+ (.*)$", out)
    assert any(c.startswith("SELECT") for c in cmds), out[-2000:]
    return [c for c in cmds if re.match(r"(UID )?(APPEND|STORE|COPY|MOVE|EXPUNGE)", c) or "BODY" in c]


def test_mbsync_two_way_sync_of_5000_messages(tmp_path):
    f = Facteur(extra={"imapd": "allow_plaintext_auth_on_loopback = false"})
    try:
        f.add_user(ALICE, ALICE_PW)
        f.start("lmtpd")
        f.start("imapd")
        seeded = seed(f)
        assert {b: len(m) for b, m in seeded.items()} == {"INBOX": 4000, "Lists/rust": 500, "Archive": 500}
        kinds = collections.Counter(" ".join(sorted(fl)) for fl in seeded["INBOX"].values())
        assert kinds == {"": 3000, "\\Seen": 900, "\\Flagged \\Seen": 89, "\\Answered \\Flagged \\Seen": 11}, kinds
        cfg, near = write_config(tmp_path, f)

        # First run: everything comes down.
        t0 = time.monotonic()
        out = mbsync(cfg, tmp_path)
        first = time.monotonic() - t0
        far, nr = far_state(f), near_state(near)
        assert far == seeded, "the first sync changed the server"
        assert nr == far, "near and far differ after the first sync"
        # Near copies are the messages as delivered (LF line ends on disk;
        # lmtpd's trace lines in front, mbsync's X-TUID: header added).
        rust = sorted(seeded["Lists/rust"])
        n = int(re.match(r"m(\d+)@", rust[0]).group(1))
        body = near_file(near, "Lists/rust", rust[0]).read_bytes()
        body = re.sub(rb"(?m)^X-TUID: .*\n", b"", body)
        assert body == b"Return-Path: <s@remote.test>\nDelivered-To: alice@example.test\n" + message(n).replace(b"\r\n", b"\n")

        # Second run: nothing to do on either side.
        files_before = sorted(p.name for b in far for s in ("cur", "new") for p in (near_dir(near, b) / s).iterdir())
        c = imaplib.IMAP4_SSL("127.0.0.1", f.imaps_port, ssl_context=tls_ctx(), timeout=60)
        c.login(ALICE, ALICE_PW)
        status_before = [c.status(b, "(MESSAGES UIDNEXT HIGHESTMODSEQ)")[1][0] for b in far]
        out = mbsync(cfg, tmp_path, "-Dn")
        status_after = [c.status(b, "(MESSAGES UIDNEXT HIGHESTMODSEQ)")[1][0] for b in far]
        files_after = sorted(p.name for b in far for s in ("cur", "new") for p in (near_dir(near, b) / s).iterdir())
        assert status_after == status_before, (status_before, status_after)
        assert files_after == files_before
        assert transfers(out) == []

        # Changes on both sides.
        c.select("INBOX")
        typ, data = c.uid("SEARCH", "HEADER", "Message-ID", "<m10@remote.test>")
        uid10 = data[0].decode()
        assert uid10
        c.uid("STORE", uid10, "+FLAGS", "(\\Answered)")  # far flag change
        typ, data = c.uid("SEARCH", "HEADER", "Message-ID", "<m20@remote.test>")
        c.uid("STORE", data[0].decode(), "+FLAGS", "(\\Deleted)")  # far deletion
        c.expunge()
        c.logout()
        with smtplib.LMTP(str(f.socket)) as l:  # far arrival
            l.sendmail("s@remote.test", [ALICE], message(9001))
        p = near_file(near, "INBOX", "m30@remote.test")  # near flag change
        base, letters = p.name.split(":2,")
        os.rename(p, p.parent / f"{base}:2,{''.join(sorted(letters + 'F'))}")
        near_file(near, "Lists/rust", rust[1]).unlink()  # near deletion
        new = near_dir(near, "Archive") / "new" / "1767600000.M1P1.near"  # near arrival
        new.write_bytes(message(9002).replace(b"\r\n", b"\n"))

        moved = transfers(mbsync(cfg, tmp_path, "-Dn"))
        assert any("APPEND" in c for c in moved) and any("STORE" in c for c in moved), moved
        far, nr = far_state(f), near_state(near)
        assert nr == far, "near and far differ after the changes"
        assert far["INBOX"]["m10@remote.test"] == seeded["INBOX"]["m10@remote.test"] | {"\\Answered"}
        assert far["INBOX"]["m30@remote.test"] == seeded["INBOX"]["m30@remote.test"] | {"\\Flagged"}
        assert "m20@remote.test" not in far["INBOX"] and "m20@remote.test" not in nr["INBOX"]
        assert rust[1] not in far["Lists/rust"] and rust[0] in far["Lists/rust"]
        assert "m9001@remote.test" in nr["INBOX"] and "m9002@remote.test" in far["Archive"]
        assert {b: len(m) for b, m in far.items()} == {"INBOX": 4000, "Lists/rust": 499, "Archive": 501}

        # And a third run is a no-op again.
        out = mbsync(cfg, tmp_path, "-Dn")
        assert transfers(out) == []
        assert near_state(near) == nr and far_state(f) == far
        print(f"first mbsync run: {first:.1f} s for {N} messages")
    finally:
        f.cleanup()
