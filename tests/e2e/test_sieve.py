"""Sieve at delivery, through the whole path: scripts stored with
`facteurctl sieve`, mail sent with smtplib to facteur-smtpd, queued by
facteur-qmgr, filtered and stored by facteur-lmtpd, read back with imaplib.
Each procmail-style rule people write (a sender into a folder, a noisy
subject to nowhere, a subject to its own folder), flags, a redirect and a
vacation reply that go out through the queue, reject (a bounce to the
sender), and a broken script that keeps the message."""

import email
import imaplib
import smtplib

import pytest

from harness import Facteur, wait_for

ALICE, BOB, CAROL = "alice@example.test", "bob@example.test", "carol@example.test"
PW = "pw-secret"

SCRIPT = r"""require ["fileinto", "imap4flags", "mailbox", "vacation", "copy", "reject", "variables"];
# procmail: :0 * ^From:.*journal@news.example -> News
if address :is "from" "journal@news.example" { fileinto :create "News"; stop; }
# procmail: :0 * ^Subject:.*noise -> /dev/null
if header :contains "subject" "noise" { discard; stop; }
# a subject to its own folder, named from the subject
if header :matches "subject" "[*] *" { fileinto :create "Lists.${1}"; stop; }
if header :is "subject" "please forward" { redirect :copy "carol@example.test"; }
if header :contains "subject" "spam offer" { reject "Not interested, thanks."; stop; }
if header :contains "subject" "important" { addflag "\\Flagged"; }
vacation :days 7 :subject "Bob is away" "Back on Monday."; 
"""


@pytest.fixture
def suite():
    f = Facteur(extra={"qmgr": 'min_backoff = "1s"\nmax_backoff = "2s"\nscan_interval = "1s"',
                       "imapd": "allow_plaintext_auth_on_loopback = true"})
    try:
        for u in (ALICE, BOB, CAROL):
            f.add_user(u, PW)
        f.ctl("sieve", "put", BOB, "main", "-", "--activate", stdin=SCRIPT)
        f.start_all()
        f.start("imapd")
    except BaseException:
        f.cleanup()
        raise
    yield f
    f.cleanup()


def send(f, sender, rcpt, subject, extra=""):
    msg = f"From: {sender}\r\nTo: {rcpt}\r\nSubject: {subject}\r\n{extra}Message-ID: <{abs(hash(subject + sender))}@t>\r\n\r\nhello\r\n"
    with smtplib.SMTP("127.0.0.1", f.smtp_port, timeout=30) as c:
        c.sendmail(sender, [rcpt], msg)


def mailbox(f, user, folder="INBOX"):
    """[(flags, message)] of a folder, read with imaplib."""
    c = imaplib.IMAP4("127.0.0.1", f.imap_port, timeout=30)
    try:
        c.login(user, PW)
        typ, _ = c.select(f'"{folder}"', readonly=True)
        if typ != "OK":
            return []
        typ, data = c.fetch("1:*", "(FLAGS BODY.PEEK[])")
        if typ != "OK" or data == [None]:
            return []
        out = []
        for item in data:
            if isinstance(item, tuple):
                out.append((item[0].decode(), email.message_from_bytes(item[1])))
        return out
    finally:
        c.logout()


def subjects(f, user, folder="INBOX"):
    return sorted(m["Subject"] for _, m in mailbox(f, user, folder))


def test_script_is_stored_and_listed(suite):
    out = suite.ctl("sieve", "list", BOB)
    assert "main (active)" in out
    assert suite.ctl("sieve", "get", BOB, "main") == SCRIPT
    bad = suite.ctl("sieve", "put", BOB, "bad", "-", stdin="if true {", check=False)
    assert "line 1" in bad
    assert "bad" not in suite.ctl("sieve", "list", BOB)


def test_rules_through_the_whole_path(suite):
    f = suite
    send(f, "journal@news.example", BOB, "Daily digest")
    send(f, "robot@noise.example", BOB, "noise again")
    send(f, "l@lists.example", BOB, "[sieve-users] a question")
    send(f, ALICE, BOB, "please forward")
    send(f, ALICE, BOB, "something important")
    wait_for(lambda: len(subjects(f, BOB)) == 2, 60, lambda: f"bob's INBOX: {subjects(f, BOB)}\n{f.log_text('lmtpd')[-3000:]}")
    assert subjects(f, BOB, "News") == ["Daily digest"]
    assert subjects(f, BOB, "Lists.sieve-users") == ["[sieve-users] a question"]
    assert subjects(f, BOB) == ["please forward", "something important"]
    flags = {m["Subject"]: fl for fl, m in mailbox(f, BOB)}
    assert "\\Flagged" in flags["something important"]
    assert "\\Flagged" not in flags["please forward"]
    # the redirect went through the queue to carol
    wait_for(lambda: subjects(f, CAROL) == ["please forward"], 60, lambda: f"carol: {subjects(f, CAROL)}")
    # one vacation reply to alice, although she wrote twice
    wait_for(lambda: "Bob is away" in subjects(f, ALICE), 60, lambda: f"alice: {subjects(f, ALICE)}")
    replies = [m for _, m in mailbox(f, ALICE) if m["Subject"] == "Bob is away"]
    assert len(replies) == 1
    assert replies[0]["Auto-Submitted"].startswith("auto-replied")
    assert "Back on Monday." in replies[0].get_payload()
    # the digest and the list message hit `stop` before vacation: no reply
    assert "sieve: message queued" in f.log_text("lmtpd")
    assert f.log_text("lmtpd").count("sieve: message queued") == 2, "the redirect and one reply"


def test_reject_bounces_to_the_sender(suite):
    f = suite
    send(f, ALICE, BOB, "spam offer")
    wait_for(lambda: any("Not interested" in m.as_string() for _, m in mailbox(f, ALICE)), 60,
             lambda: f"alice: {subjects(f, ALICE)}\n{f.log_text('qmgr')[-2000:]}")
    assert "spam offer" not in subjects(f, BOB)


def test_broken_script_keeps_the_message(suite):
    f = suite
    # written behind facteurctl's back, as an editor might leave it
    (f.maildir(BOB) / "sieve" / "main.sieve").write_text("if header :is {")
    send(f, ALICE, BOB, "still delivered")
    wait_for(lambda: "still delivered" in subjects(f, BOB), 60, lambda: f"bob: {subjects(f, BOB)}")
    assert "sieve failed: message kept in INBOX" in f.log_text("lmtpd")


def test_console_filters_for_a_user_and_a_domain(suite):
    f = suite
    # the domain: robots' mail deleted for everybody
    out = f.ctl("filter", "add", "--domain", "example.test", "--if", "from", "contains", "robot@noise.example", "--delete")
    assert "filter 1 added" in out
    # carol: shops into a folder unless it is an order, big mail copied
    f.ctl("filter", "add", CAROL, "--if", "from", "contains", "shop", "--if", "subject", "not-starts", "Order", "--move", "Shops")
    f.ctl("filter", "add", CAROL, "--any", "--if", "size", "over", "100000", "--if", "subject", "is", "copy me", "--copy-to", ALICE)
    listing = f.ctl("filter", "list", CAROL)
    assert "1. if all of: from contains \"shop\", subject not-starts \"Order\" -> move to folder \"Shops\"" in listing, listing
    assert "2. if any of:" in listing
    assert "filters (active)" in f.ctl("sieve", "list", CAROL)
    send(f, "robot@noise.example", CAROL, "beep")
    send(f, "news@shop.example", CAROL, "Sale!")
    send(f, "news@shop.example", CAROL, "Order 1234 shipped")
    send(f, ALICE, CAROL, "copy me")
    wait_for(lambda: subjects(f, CAROL, "Shops") == ["Sale!"], 60, lambda: f"carol Shops: {subjects(f, CAROL, 'Shops')}")
    wait_for(lambda: sorted(subjects(f, CAROL)) == ["Order 1234 shipped", "copy me"], 60, lambda: f"carol: {subjects(f, CAROL)}")
    wait_for(lambda: "copy me" in subjects(f, ALICE), 60, lambda: f"alice: {subjects(f, ALICE)}")
    out = f.ctl("filter", "del", CAROL, "1")
    assert "deleted filter 1" in out
    assert "1. if any of:" in f.ctl("filter", "list", CAROL)
    bad = f.ctl("filter", "add", CAROL, "--if", "size", "is", "12", "--delete", check=False)
    assert "size takes over or under" in bad


def test_editheader_protected_fields(suite):
    # The site keeps X-Spam-Status from users' scripts ([sieve]
    # editheader_protected); other fields stay theirs to edit.
    f = suite
    f.restart("lmtpd", edit=lambda t: t + '\n[sieve]\neditheader_protected = ["X-Spam-Status"]\n')
    script = ('require "editheader";\ndeleteheader "X-Spam-Status";\naddheader "X-Spam-Status" "No";\n'
              'deleteheader "X-Mailer";\naddheader "X-Tag" "added";\n')
    f.ctl("sieve", "put", CAROL, "edit", "-", "--activate", stdin=script)
    send(f, ALICE, CAROL, "edited", extra="X-Spam-Status: Yes, score=9\r\nX-Mailer: old\r\n")
    wait_for(lambda: "edited" in subjects(f, CAROL), 60, lambda: f"carol: {subjects(f, CAROL)}")
    m = [m for _, m in mailbox(f, CAROL) if m["Subject"] == "edited"][0]
    assert m.get_all("X-Spam-Status") == ["Yes, score=9"], m.get_all("X-Spam-Status")
    assert m["X-Tag"] == "added" and m["X-Mailer"] is None


def test_vacation_site_settings(suite):
    # [sieve] vacation_subject_template and vacation_send_from_recipient:
    # the reply's subject from the site's template, its envelope sender the
    # recipient instead of <>.
    f = suite
    f.restart("lmtpd", edit=lambda t: t + '\n[sieve]\nvacation_subject_template = "Absent: %$"\n'
                                        'vacation_send_from_recipient = true\n')
    f.ctl("sieve", "put", CAROL, "away", "-", "--activate", stdin='require "vacation";\nvacation "I am away.";\n')
    send(f, ALICE, CAROL, "are you there")
    wait_for(lambda: "Absent: are you there" in subjects(f, ALICE), 60, lambda: f"alice: {subjects(f, ALICE)}")
    reply = [m for _, m in mailbox(f, ALICE) if m["Subject"] == "Absent: are you there"][0]
    assert reply["Return-Path"] == f"<{CAROL}>", reply["Return-Path"]
