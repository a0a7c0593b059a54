"""Content scanners at the end of the data, end to end, with the real ones
from Debian's packages started by the test on loopback (scanners.py):
rspamd's normal worker, clamd with a signature database the test writes,
and clamav-milter in front of clamd, speaking to facteur-smtpd through
its milter client. Mail is sent with smtplib and delivered by the real
qmgr and lmtpd.

Covered: GTUBE refused (554), rspamd's "add header" filed into Junk with
the spam mark, "rewrite subject" applied, a clean message marked
X-Spam-Status: No; clamd finding the test signature in submitted mail
(554 "Virus found: NAME"); clamav-milter refusing a virus on the MX
listener and adding its X-Virus-* fields to a clean message; each scanner
stopped: rspamd and the milter fail open (X-Facteur-Unscanned), clamd
fails closed (451); clamd's notice mode (the recipient gets a notice, the
virus is kept nowhere)."""

import email
import email.policy
import smtplib

import pytest

from harness import Facteur, crlf, wait_for
from scanners import Clamd, ClamavMilter, Rspamd

ALICE = "alice@example.test"
PASSWORD = "pw-secret"


@pytest.fixture(scope="module")
def site():
    rspamd = Rspamd().start()
    clamd = Clamd().start()
    milter = ClamavMilter(clamd).start()
    f = Facteur(extra={"smtpd": '''mynetworks = ["127.0.0.1/32"]
allow_plaintext_auth_on_loopback = true
max_messages_per_ip_per_minute = 100000''', "qmgr": 'scan_interval = "1s"'})
    with open(f.config, "a") as c:
        c.write(f'''
[screen]
listeners = []

[scan.rspamd]
enabled = true
address = "127.0.0.1:{rspamd.port}"
timeout = "10s"

[scan.clamav]
enabled = true
address = "{clamd.socket}"
listeners = ["submission"]
timeout = "10s"

[[scan.milter]]
name = "clamav"
address = "inet:127.0.0.1:{milter.port}"
listeners = ["mx"]
timeout = "10s"
''')
    f.add_user(ALICE, PASSWORD)
    f.start_all()
    f.rspamd, f.clamd, f.milter = rspamd, clamd, milter
    yield f
    f.cleanup()
    for d in (milter, clamd, rspamd):
        d.stop()


def message(subject, body="Hello, this is a test message.\n"):
    return crlf(f"From: bob@example.test\nTo: {ALICE}\nSubject: {subject}\n"
                f"Date: Sat, 05 Dec 2026 20:00:00 +0000\n"
                f"Message-ID: <{subject.replace(' ', '.')}@example.test>\n\n{body}")


def send_mx(f, subject, body="Hello, this is a test message.\n"):
    """Over the MX listener; None when accepted, else (code, text)."""
    with smtplib.SMTP("127.0.0.1", f.smtp_port, timeout=60) as s:
        try:
            s.sendmail("bob@example.test", [ALICE], message(subject, body))
        except smtplib.SMTPDataError as e:
            return e.smtp_code, e.smtp_error.decode()
    return None


def send_submission(f, subject, body="Hello.\n"):
    with smtplib.SMTP("127.0.0.1", f.port("submission"), timeout=60) as s:
        s.login(ALICE, PASSWORD)
        try:
            s.sendmail(ALICE, [ALICE], crlf(f"From: {ALICE}\nTo: {ALICE}\nSubject: {subject}\n\n{body}"))
        except smtplib.SMTPDataError as e:
            return e.smtp_code, e.smtp_error.decode()
    return None


def delivered(f, subject, folder=""):
    def find():
        d = f.maildir(ALICE, folder)
        for sub in ("new", "cur"):
            if (d / sub).exists():
                for p in (d / sub).iterdir():
                    m = email.message_from_bytes(p.read_bytes(), policy=email.policy.compat32)
                    if subject in (m["Subject"] or ""):
                        return m
        return None
    return wait_for(find, 30, lambda: f"{subject!r} in {folder or 'INBOX'}: " + f.log_text("smtpd")[-3000:])


def test_gtube_is_refused(site):
    r = send_mx(site, "gtube", Rspamd.GTUBE.decode() + "\n")
    assert r and r[0] == 554 and "5.7.1" in r[1], r


def test_a_clean_message_is_marked_no_and_scanned_by_the_milter(site):
    assert send_mx(site, "clean one") is None
    m = delivered(site, "clean one")
    assert m["X-Spam-Status"].startswith("No, score="), m["X-Spam-Status"]
    assert m["X-Spam"] is None
    # clamav-milter's fields, through our milter client.
    assert m["X-Virus-Status"] == "Clean", m.items()
    assert ClamavMilter.HOSTNAME in (m["X-Virus-Scanned"] or ""), m.items()


def test_add_header_is_filed_into_junk(site):
    assert send_mx(site, "spammy", Rspamd.GTUBE_ADD_HEADER.decode() + "\n") is None
    m = delivered(site, "spammy", ".Junk")
    assert m["X-Spam"] == "Yes"
    assert m["X-Spam-Status"].startswith("Yes,"), m["X-Spam-Status"]


def test_rewrite_subject(site):
    assert send_mx(site, "rewritten", Rspamd.GTUBE_REWRITE_SUBJECT.decode() + "\n") is None
    m = delivered(site, "rewritten", ".Junk")
    assert m["Subject"] != "rewritten" and "rewritten" in m["Subject"], m["Subject"]
    assert len(m.get_all("Subject")) == 1


def test_clamd_finds_the_test_virus_in_submitted_mail(site):
    r = send_submission(site, "infected", "see " + Clamd.TEST_VIRUS.decode() + "\n")
    assert r and r[0] == 554 and f"Virus found: {Clamd.TEST_VIRUS_NAME}" in r[1], r
    assert send_submission(site, "healthy") is None
    delivered(site, "healthy")


def test_clamav_milter_refuses_a_virus_on_the_mx_listener(site):
    r = send_mx(site, "milter virus", "x " + Clamd.TEST_VIRUS.decode() + "\n")
    assert r and r[0] // 100 == 5, r
    assert "milter" in site.log_text("smtpd")


def test_rspamd_and_the_milter_down_fail_open(site):
    site.rspamd.stop_only()
    site.milter.stop_only()
    try:
        assert send_mx(site, "unscanned") is None
        m = delivered(site, "unscanned")
        fields = m.get_all("X-Facteur-Unscanned") or []
        assert any(v.startswith("rspamd;") for v in fields), fields
        assert any(v.startswith("milter clamav;") for v in fields), fields
    finally:
        site.rspamd.start()
        site.milter.start()
    assert send_mx(site, "scanned again") is None
    assert delivered(site, "scanned again")["X-Spam-Status"].startswith("No")


def test_clamd_down_fails_closed(site):
    site.clamd.stop_only()
    try:
        r = send_submission(site, "cannot scan")
        assert r and r[0] == 451 and "4.7.1" in r[1], r
    finally:
        site.clamd.start()
    assert send_submission(site, "can scan") is None


def test_notice_mode_delivers_a_notice_and_keeps_no_virus(site):
    site.restart("smtpd", lambda cfg: cfg.replace('listeners = ["submission"]\n',
                                                  'listeners = ["submission"]\naction = "notice"\n'))
    assert send_submission(site, "carrier", "x " + Clamd.TEST_VIRUS.decode() + "\n") is None
    m = delivered(site, "contained a virus")
    body = m.get_payload()
    assert Clamd.TEST_VIRUS_NAME in body and ALICE in body, body
    for p in site.all_files(ALICE) + site.all_files(ALICE):
        assert Clamd.TEST_VIRUS not in p.read_bytes()
