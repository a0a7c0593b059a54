"""Moving in from Dovecot without a re-download (issue 18), judged by the
real Dovecot (Debian's dovecot-imapd, a private instance on loopback) and
the real mbsync (isync):

1. Dovecot holds a user's mail: folders (nested, one with a non-ASCII name),
   messages with flags, keywords and old internal dates, UID gaps left by
   expunges. mbsync syncs it to a local Maildir, as a client that caches by
   UID would.
2. `facteurctl import dovecot-maildir` takes the Dovecot Maildir.
3. facteur shows every folder with Dovecot's UIDVALIDITY and UIDNEXT, and
   every message with its UID, flags, keywords, INTERNALDATE and size, as a
   client that cached them (imaplib) checks; mbsync, pointed at facteur with
   its state kept, transfers nothing and reports no UIDVALIDITY change.
4. `facteurctl export dovecot-maildir` writes the mail back, and a fresh
   Dovecot on it shows the same UIDs, flags and dates: the way back works.

The number of messages is MIGRATION_MESSAGES (default 1,000 over 20
folders, to keep the suite's time; the full proof of the issue runs it with
10,000)."""

import imaplib
import os
import re
import shutil
import subprocess
import time

import pytest

from dovecotpeer import chown_tree, dovecot, vmail_owner
from harness import Facteur, crlf
from postfixpeer import world_dir
from test_mbsync import transfers

MBSYNC = shutil.which("mbsync")
DOVECOT_IMAP = "/usr/lib/dovecot/imap"
pytestmark = pytest.mark.skipif(
    MBSYNC is None or not os.path.exists(DOVECOT_IMAP),
    reason="mbsync (isync) and Dovecot's imap (dovecot-imapd) are needed")

ALICE, ALICE_PW = "alice@example.test", "alice-pw"
DAVE, DAVE_PW = "dave", "dave-pw"
N = int(os.environ.get("MIGRATION_MESSAGES", "1000"))
# 20 folders: INBOX, nested ones, one in modified UTF-7 ("Été").
FOLDERS = ["INBOX", "Archive", "Sent", "Lists", "Lists/rust", "Lists/debian", "&AMk-t&AOk-"] + [
    f"Projects/p{i}" for i in range(13)]
KEYWORDS = ["$Forwarded", "$label1", "work", "$Junk"]


def message(i):
    return crlf(f"From: sender{i % 11}@remote.test\nTo: dave@example.test\nSubject: message {i}\n"
                f"Message-ID: <d{i}@remote.test>\nDate: Mon, 05 Jan 2026 10:00:00 +0000\n\n"
                f"This is message {i}.\n" + "x" * (i % 300) + "\n")


def flags_for(i):
    f = []
    if i % 2 == 0:
        f.append("\\Seen")
    if i % 5 == 0:
        f.append("\\Flagged")
    if i % 7 == 0:
        f.append("\\Answered")
    if i % 13 == 0:
        f.append("\\Draft")
    f += [k for j, k in enumerate(KEYWORDS) if i % (3 + j) == 0]
    return f


def seed(port):
    """N messages over the folders by APPEND (old dates, flags, keywords),
    then every ninth expunged: UIDs with gaps. Returns how many went."""
    c = imaplib.IMAP4("127.0.0.1", port, timeout=60)
    c.login(DAVE, DAVE_PW)
    for f in FOLDERS[1:]:
        assert c.create(f'"{f}"')[0] == "OK", f
    for i in range(N):
        box = FOLDERS[i % len(FOLDERS)]
        date = imaplib.Time2Internaldate(1_600_000_000 + i * 3600)
        typ, _ = c.append(f'"{box}"', "(" + " ".join(flags_for(i)) + ")", date, message(i))
        assert typ == "OK"
    expunged = 0
    for box in FOLDERS:
        c.select(f'"{box}"')
        typ, data = c.uid("SEARCH", "ALL")
        uids = data[0].split()
        gone = b",".join(uids[::9])
        if gone:
            c.uid("STORE", gone, "+FLAGS.SILENT", "(\\Deleted)")
            c.uid("EXPUNGE", gone)
            expunged += len(uids[::9])
    c.subscribe('"Lists/rust"')
    c.logout()
    return expunged


def state(port, user, pw):
    """What a caching client knows: per folder, UIDVALIDITY, UIDNEXT and
    {uid: (flags, INTERNALDATE, RFC822.SIZE)}."""
    c = imaplib.IMAP4("127.0.0.1", port, timeout=60)
    c.login(user, pw)
    out = {}
    for box in FOLDERS:
        typ, data = c.status(f'"{box}"', "(UIDVALIDITY UIDNEXT MESSAGES)")
        assert typ == "OK", (box, data)
        st = dict(re.findall(rb"(UIDVALIDITY|UIDNEXT|MESSAGES) (\d+)", data[0]))
        c.select(f'"{box}"', readonly=True)
        msgs = {}
        if int(st[b"MESSAGES"]):
            typ, data = c.uid("FETCH", "1:*", "(FLAGS INTERNALDATE RFC822.SIZE)")
            for line in data:
                line = line if isinstance(line, bytes) else line[0]
                m = re.search(rb"UID (\d+)", line)
                fl = re.search(rb"FLAGS \(([^)]*)\)", line).group(1).split()
                date = re.search(rb'INTERNALDATE "([^"]+)"', line).group(1)
                size = re.search(rb"RFC822\.SIZE (\d+)", line).group(1)
                msgs[int(m.group(1))] = (tuple(sorted(f for f in fl if f != b"\\Recent")), date, int(size))
        out[box] = (int(st[b"UIDVALIDITY"]), int(st[b"UIDNEXT"]), msgs)
    typ, data = c.lsub('""', "*")
    subscribed = sorted(re.search(rb'"([^"]*)"$|(\S+)$', l).group(0).strip(b'"') for l in data if l)
    c.logout()
    return out, subscribed


def mbsync_config(tmp, near, port, user, pw):
    cfg = tmp / "mbsyncrc"
    cfg.write_text(f"""IMAPAccount far
Host 127.0.0.1
Port {port}
User {user}
Pass {pw}
SSLType None
AuthMechs PLAIN LOGIN
Timeout 60
PipelineDepth 50

IMAPStore far
Account far

MaildirStore near
Path {near}/
Inbox {near}/INBOX
SubFolders Verbatim

Channel mig
Far :far:
Near :near:
Patterns *
Create Both
Expunge Both
Remove None
Sync All
SyncState *
""")
    return cfg


def mbsync(cfg, tmp, *args):
    env = dict(os.environ, HOME=str(tmp))
    p = subprocess.run([MBSYNC, *args, "-c", str(cfg), "-a"], capture_output=True, text=True,
                       timeout=600, env=env, cwd=tmp)
    assert p.returncode == 0, (p.stdout + p.stderr)[-4000:]
    return p.stdout + p.stderr


def test_dovecot_mail_moves_in_and_back_without_a_redownload(tmp_path):
    with world_dir("fdov-") as w:
        mail = w / "mail"
        with dovecot(w / "dovecot", mail, {DAVE: DAVE_PW}) as port:
            t0 = time.monotonic()
            expunged = seed(port)
            seeded = time.monotonic() - t0
            before, subs_before = state(port, DAVE, DAVE_PW)
            near = tmp_path / "near"
            near.mkdir()
            out = mbsync(mbsync_config(tmp_path, near, port, DAVE, DAVE_PW), tmp_path)
        assert sum(len(b[2]) for b in before.values()) == N - expunged > 0
        assert b"Lists/rust" in subs_before

        f = Facteur(extra={"imapd": "allow_plaintext_auth_on_loopback = true"})
        try:
            f.add_user(ALICE, ALICE_PW)
            t0 = time.monotonic()
            out = f.ctl("import", "dovecot-maildir", str(mail / DAVE), ALICE)
            took = time.monotonic() - t0
            assert f"{ALICE}: {sum(len(b[2]) for b in before.values())} messages imported" in out, out
            # Run again (an interrupted import is finished this way): nothing added.
            again = f.ctl("import", "dovecot-maildir", str(mail / DAVE), ALICE)
            assert f"{ALICE}: 0 messages imported" in again, again
            f.start("imapd")
            after, subs_after = state(f.imap_port, ALICE, ALICE_PW)
            assert after == before
            assert b"Lists/rust" in subs_after

            # mbsync, with the state of its sync with Dovecot, against facteur.
            cfg = mbsync_config(tmp_path, near, f.imap_port, ALICE, ALICE_PW)
            out = mbsync(cfg, tmp_path, "-Dn")
            assert not re.search(r"(?i)uidvalidity.{0,40}chang|chang.{0,40}uidvalidity", out), out[-3000:]
            assert transfers(out) == [], transfers(out)[:20]

            # And back: export, then a fresh Dovecot on the result.
            back = w / "back"
            back.mkdir()
            out = f.ctl("export", "dovecot-maildir", ALICE, str(back / DAVE))
            chown_tree(back, vmail_owner())
            with dovecot(w / "dovecot2", back, {DAVE: DAVE_PW}) as port2:
                returned, _ = state(port2, DAVE, DAVE_PW)
            assert returned == before
        finally:
            f.cleanup()
        print(f"{N} messages: seeded in {seeded:.1f} s, imported in {took:.1f} s")
