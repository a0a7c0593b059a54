"""Shared mailboxes (IMAP ACL, RFC 4314; the Shared/ namespace) with real
clients: a team mailbox set up with `facteurctl acl`, used by two members
with Python's imaplib (its ACL commands too), and synced by a member's
mbsync (Debian's isync), which finds it by LIST like any other folder."""

import imaplib
import re
import smtplib

import pytest

from harness import Facteur
from test_mbsync import MBSYNC, mbsync, write_config

ALICE, ALICE_PW = "alice@example.test", "alice-pw"
BOB, BOB_PW = "bob@example.test", "bob-pw"
CAROL, CAROL_PW = "carol@example.test", "carol-pw"
TEAM = "team@example.test"


@pytest.fixture
def f():
    f = Facteur(extra={"imapd": "allow_plaintext_auth_on_loopback = true"})
    try:
        for user, pw in ((ALICE, ALICE_PW), (BOB, BOB_PW), (CAROL, CAROL_PW), (TEAM, "team-pw")):
            f.add_user(user, pw)
        f.start("lmtpd")
        f.start("imapd")
    except BaseException:
        f.cleanup()
        raise
    yield f
    f.cleanup()


def login(f, user, pw):
    c = imaplib.IMAP4("127.0.0.1", f.imap_port, timeout=30)
    c.login(user, pw)
    return c


def ok(r):
    typ, data = r
    assert typ == "OK", (typ, data)
    return data


def no(r, code):
    typ, data = r
    assert typ == "NO" and code in data[0], (typ, data)


def names(c, pattern="*"):
    return [re.search(rb'"/" (.*)$', line).group(1).decode().strip('"') for line in ok(c.list('""', pattern)) if line]


def team_mail(f, n):
    with smtplib.LMTP(str(f.socket)) as s:
        for i in range(n):
            s.sendmail("client@remote.test", [TEAM], f"Subject: order {i}\r\nMessage-ID: <order-{i}@remote.test>\r\n\r\nOrder {i}.\r\n")


def test_a_team_mailbox_for_two_members(f):
    team_mail(f, 3)
    # The administrator shares the team's INBOX: Alice works in it, Bob reads.
    out = f.ctl("acl", "set", TEAM, "INBOX", "alice", "write")
    assert 'alice@example.test has "lrswipkxtecd"' in out, out
    f.ctl("acl", "set", TEAM, "inbox", BOB, "read")
    listed = f.ctl("acl", "list", TEAM)
    assert "INBOX\talice@example.test\tlrswipkxtecd" in listed, listed
    assert "INBOX\tbob@example.test\tlrs" in listed, listed
    assert f.ctl("acl", "shared", BOB).strip() == "Shared/team/INBOX\tlrs"
    # Refused: another domain, an unknown user, the owner, a bad right.
    for args, why in (
        (("eve@other.test", "lr"), "shared only with users of example.test"),
        (("nobody", "lr"), "no such user: nobody@example.test"),
        ((TEAM, "lr"), "owns the mailbox"),
        (("bob", "lrQ"), "'Q' is not a right"),
        (("bob", "-bq"), "'b' is not a right"),
    ):
        out = f.ctl("acl", "set", TEAM, "INBOX", *args, check=False)
        assert why in out, out
    assert "no mailbox" in f.ctl("acl", "set", TEAM, "Nope", "bob", "lr", check=False)
    # "-" takes rights away, "+" adds them.
    assert 'has "lr"' in f.ctl("acl", "set", TEAM, "INBOX", BOB, "-s")
    assert 'has "lrs"' in f.ctl("acl", "set", TEAM, "INBOX", BOB, "+s")
    assert f.ctl("acl", "list", TEAM).count("\t") == listed.count("\t")

    a = login(f, ALICE, ALICE_PW)
    assert "Shared/team/INBOX" in names(a)
    assert ok(a.myrights("Shared/team/INBOX")) == [b"Shared/team/INBOX lrswipkxtecd"]
    assert int(ok(a.select("Shared/team/INBOX"))[0]) == 3
    ok(a.store("1", "+FLAGS", "(\\Seen $Done)"))
    ok(a.append("Shared/team/INBOX", "(\\Flagged)", None, b"Subject: note\r\n\r\nCalled the client back.\r\n"))

    b = login(f, BOB, BOB_PW)
    typ, data = b.select("Shared/team/INBOX")
    assert typ == "OK" and int(data[0]) == 4
    # Bob sees Alice's flags (they are the mailbox's), may mark \Seen only.
    flags = ok(b.fetch("1", "(FLAGS)"))[0]
    assert b"\\Seen" in flags and b"$Done" in flags, flags
    no(b.store("2", "+FLAGS", "(\\Flagged)"), b"NOPERM")
    ok(b.store("2", "+FLAGS", "(\\Seen)"))
    no(b.append("Shared/team/INBOX", None, None, b"Subject: x\r\n\r\nx\r\n"), b"NOPERM")
    no(b.expunge(), b"NOPERM")
    no(b.getacl("Shared/team/INBOX"), b"NOPERM")
    # A copy into Bob's own INBOX is Bob's.
    ok(b.copy("4", "INBOX"))
    assert ok(b.status("INBOX", "(MESSAGES)")) == [b"INBOX (MESSAGES 1)"]
    # Carol was given nothing: for her the mailbox does not exist.
    c = login(f, CAROL, CAROL_PW)
    assert not [n for n in names(c) if n.startswith("Shared")]
    no(c.select("Shared/team/INBOX"), b"NONEXISTENT")

    # Alice shares one of her own folders with Carol from her client.
    ok(a.create("Projects"))
    ok(a.setacl("Projects", "carol", "lri"))
    acl = ok(a.getacl("Projects"))[0]
    assert acl == b"Projects alice@example.test lrswipkxteacd carol@example.test lri", acl
    # imaplib has no LISTRIGHTS method: sent through its command machinery.
    imaplib.Commands.setdefault("LISTRIGHTS", ("AUTH", "SELECTED"))
    typ, dat = a._simple_command("LISTRIGHTS", "Projects", "carol")
    rights = ok(a._untagged_response(typ, dat, "LISTRIGHTS"))
    assert rights == [b'Projects carol "" l r s w i p k x t e a c d'], rights
    assert ok(c.myrights("Shared/alice/Projects")) == [b"Shared/alice/Projects lri"]
    ok(c.append("Shared/alice/Projects", "(\\Seen)", None, b"Subject: plan\r\n\r\nThe plan.\r\n"))
    assert int(ok(a.select("Projects"))[0]) == 1
    # Without `s`, Carol's \Seen did not stick.
    assert b"\\Seen" not in ok(a.fetch("1", "(FLAGS)"))[0]
    ok(a.deleteacl("Projects", "carol"))
    no(c.select("Shared/alice/Projects"), b"NONEXISTENT")
    for x in (a, b, c):
        x.logout()


@pytest.mark.skipif(MBSYNC is None, reason="mbsync (Debian package isync) is not installed")
def test_mbsync_syncs_a_shared_mailbox(f, tmp_path):
    team_mail(f, 5)
    f.ctl("acl", "set", TEAM, "INBOX", BOB, "lrs")
    cfg, near = write_config(tmp_path, f, BOB, BOB_PW)
    out = mbsync(cfg, tmp_path)
    box = near / "Shared" / "team" / "INBOX"
    got = sorted(p.name for sub in ("cur", "new") for p in (box / sub).iterdir())
    assert len(got) == 5, (got, out)
