"""Mailing lists (`facteurctl list`, qmgr at pickup), driven by smtplib
over the MX port:

- a member's post reaches every member once, from the list's -bounces
  address, with List-Id, List-Post and Precedence, the author's From: and
  body unchanged;
- a stranger's post to a members-only list is held: the owner is told,
  `list pending` shows it, no member gets it until `list approve`; a
  rejected one never arrives;
- a post that already carries the list's List-Id is dropped (a loop);
- a member whose copies bounce (an unknown local address) is disabled
  after the list's limit, from the delivery reports sent to -bounces;
- -owner reaches the owner; a subject tag makes From: the list's;
- one-click unsubscription (RFC 8058): each member's copy has its own
  List-Unsubscribe URL and List-Unsubscribe-Post; a GET only asks, a POST
  unsubscribes that member, another member's token is refused."""

import email
import smtplib
import time
import urllib.error
import urllib.request

import pytest

from harness import Facteur, crlf, free_port, wait_for

ALICE, BOB, CAROL = "alice@example.test", "bob@example.test", "carol@example.test"
LIST = "team@example.test"


UNSUB_PORT = free_port()


@pytest.fixture(scope="module")
def f():
    f = Facteur(extra={"qmgr": 'scan_interval = "1s"'})
    with open(f.config, "a") as c:
        c.write(f'\n[lists]\nunsubscribe_url = "https://lists.example.test/unsubscribe"\n'
                f'unsubscribe_listen = "127.0.0.1:{UNSUB_PORT}"\n')
    for u in (ALICE, BOB, CAROL):
        f.add_user(u)
    f.start_all()
    out = f.ctl("list", "create", LIST, "--owner", ALICE)
    assert "created" in out, out
    f.ctl("list", "add", LIST, ALICE, BOB, CAROL)
    yield f
    f.cleanup()


def post(f, sender, subject, extra=""):
    with smtplib.SMTP("127.0.0.1", f.smtp_port, timeout=30) as s:
        s.ehlo("client.remote.test")
        s.sendmail(sender, [LIST], crlf(f"From: {sender}\nTo: {LIST}\nSubject: {subject}\n{extra}\nHello list.\n"))


def messages(f, address):
    return [email.message_from_bytes(p.read_bytes()) for p in f.all_files(address)]


def with_subject(f, address, needle):
    return [m for m in messages(f, address) if needle in (m["Subject"] or "")]


def test_a_members_post_reaches_every_member_once(f):
    post(f, BOB, "first post")
    for who in (ALICE, BOB, CAROL):
        wait_for(lambda: with_subject(f, who, "first post"), 30, f"the post at {who}")
    time.sleep(1.5)
    for who in (ALICE, BOB, CAROL):
        got = with_subject(f, who, "first post")
        assert len(got) == 1, (who, len(got))
        m = got[0]
        assert m["List-Id"] == "<team.example.test>"
        assert m["List-Post"] == f"<mailto:{LIST}>"
        assert m["List-Owner"] == "<mailto:team-owner@example.test>"
        assert m["Precedence"] == "list"
        assert m["Return-Path"] == "<team-bounces@example.test>"
        assert m["From"] == BOB and m["Subject"] == "first post"
        assert m.get_payload().strip() == "Hello list."
    assert "list post distributed" in f.log_text("qmgr")


def test_a_strangers_post_is_held_until_approved(f):
    post(f, "stranger@remote.test", "let me in")
    wait_for(lambda: with_subject(f, ALICE, "held: let me in"), 30, "the owner's notice")
    notice = with_subject(f, ALICE, "held: let me in")[0]
    assert "facteurctl list approve" in notice.get_payload()
    pending = f.ctl("list", "pending", LIST)
    assert "stranger@remote.test" in pending and "not a member" in pending, pending
    held_id = pending.split()[0]
    time.sleep(1.5)
    assert not with_subject(f, BOB, "let me in")
    out = f.ctl("list", "approve", held_id)
    assert "sent to 3 members" in out, out
    for who in (ALICE, BOB, CAROL):
        wait_for(lambda: [m for m in with_subject(f, who, "let me in") if m["List-Id"]], 30, f"the approved post at {who}")
    assert f.ctl("list", "pending", LIST).strip() == ""
    # A rejected post never arrives.
    post(f, "pest@remote.test", "buy now")
    wait_for(lambda: "buy now" in f.ctl("list", "pending"), 30, "the second held post")
    f.ctl("list", "reject", f.ctl("list", "pending").split()[0])
    time.sleep(2)
    assert not with_subject(f, BOB, "buy now")


def test_a_looping_post_is_dropped(f):
    post(f, BOB, "looped", extra="List-Id: Team <team.example.test>\n")
    wait_for(lambda: "list post dropped" in f.log_text("qmgr"), 30, "the drop")
    time.sleep(1.5)
    assert not with_subject(f, CAROL, "looped")


def test_a_bouncing_member_is_disabled(f):
    f.ctl("list", "add", LIST, "ghost@example.test")
    for i in range(5):
        post(f, BOB, f"bounce round {i}")
        wait_for(lambda: f"bounces={i + 1}" in f.ctl("list", "members", LIST), 30,
                 lambda: f"bounce {i + 1} counted: " + f.ctl("list", "members", LIST))
    members = f.ctl("list", "members", LIST)
    assert "ghost@example.test\tdisabled\tbounces=5" in members, members
    assert "bob@example.test\tenabled\tbounces=0" in members, members
    assert "list member disabled" in f.log_text("qmgr")
    # The next post goes to the three others only.
    post(f, BOB, "after ghost")
    wait_for(lambda: with_subject(f, CAROL, "after ghost"), 30, "the next post")
    last = [l for l in f.log_text("qmgr").splitlines() if "list post distributed" in l][-1]
    assert "members=3" in last, last


def test_owner_address_and_subject_tag(f):
    with smtplib.SMTP("127.0.0.1", f.smtp_port, timeout=30) as s:
        s.sendmail("someone@remote.test", ["team-owner@example.test"],
                   crlf("From: someone@remote.test\nSubject: for the owner\n\nhi\n"))
    wait_for(lambda: with_subject(f, ALICE, "for the owner"), 30, "-owner mail at the owner")
    f.ctl("list", "set", LIST, "--subject-tag", "team", "--reply-to", "list")
    post(f, CAROL, "tagged")
    wait_for(lambda: with_subject(f, BOB, "[team] tagged"), 30, "the tagged post")
    m = with_subject(f, BOB, "[team] tagged")[0]
    assert m["From"] == '"carol via team" <team@example.test>', m["From"]
    assert m["Reply-To"] == f"<{LIST}>"
    f.ctl("list", "set", LIST, "--subject-tag", "", "--reply-to", "sender")
    # An unknown -suffix is not the list's.
    with smtplib.SMTP("127.0.0.1", f.smtp_port, timeout=30) as s:
        s.ehlo("client.remote.test")
        assert s.mail("x@remote.test")[0] == 250
        assert s.rcpt("team-other@example.test")[0] == 550
        assert s.rcpt("team-request@example.test")[0] == 250


def test_one_click_unsubscription(f):
    post(f, BOB, "unsubscribe me")
    wait_for(lambda: with_subject(f, CAROL, "unsubscribe me") and with_subject(f, ALICE, "unsubscribe me"), 30,
             "the post at carol and alice")
    m = with_subject(f, CAROL, "unsubscribe me")[0]
    assert m["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = m["List-Unsubscribe"].strip("<>")
    assert url.startswith("https://lists.example.test/unsubscribe/team@example.test/carol@example.test/"), url
    alices = with_subject(f, ALICE, "unsubscribe me")[0]["List-Unsubscribe"].strip("<>")
    assert alices != url  # each member's own
    local = url.replace("https://lists.example.test", f"http://127.0.0.1:{UNSUB_PORT}")
    page = urllib.request.urlopen(local, timeout=10).read().decode()
    assert 'method="post"' in page and "carol@example.test" in f.ctl("list", "members", LIST)
    # Alice's token on Carol's address: refused.
    forged = local.rsplit("/", 1)[0] + "/" + alices.rsplit("/", 1)[1]
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(urllib.request.Request(forged, data=b"List-Unsubscribe=One-Click"), timeout=10)
    assert e.value.code == 403
    # What a mail provider does: POST with the RFC 8058 body.
    r = urllib.request.urlopen(urllib.request.Request(local, data=b"List-Unsubscribe=One-Click", headers={
        "Content-Type": "application/x-www-form-urlencoded"}), timeout=10)
    assert r.status == 200 and "unsubscribed" in r.read().decode()
    assert "carol@example.test" not in f.ctl("list", "members", LIST)
    post(f, BOB, "after carol left")
    wait_for(lambda: with_subject(f, ALICE, "after carol left"), 30, "the next post at alice")
    time.sleep(1.5)
    assert not with_subject(f, CAROL, "after carol left")
