"""A second real milter through facteur-smtpd's milter client: Debian's
OpenDKIM in verify mode (started as test_dkim.py starts it for Postfix),
judging a message dkimpy signed, with the key served by the test's DNS
server: OpenDKIM's Authentication-Results (inserted at the top,
smfi_insheader at 0) says dkim=pass, and dkim=fail for a changed body.
The milter then stopped: its on_failure = "tempfail" refuses MAIL with
451."""

import email
import email.policy
import os
import shutil
import smtplib
import tempfile
from pathlib import Path

import pytest

from dnsserver import DnsServer
from harness import Facteur, crlf, free_port, wait_for
from test_dkim import JUDGE, OPENDKIM, start_opendkim
from test_trust import rsa_key

dkim = pytest.importorskip("dkim", reason="dkimpy is not installed (tests/deps installs it)")
ALICE = "alice@example.test"
HEADS = [b"from", b"to", b"subject", b"date", b"message-id"]


@pytest.fixture(scope="module")
def site():
    if not os.path.exists(OPENDKIM):
        pytest.skip("opendkim is not installed (tests/deps installs it)")
    # OpenDKIM drops to its own user: its directory must be readable.
    tmp = Path(tempfile.mkdtemp(prefix="fe2e-opendkim-"))
    os.chmod(tmp, 0o755)
    key, p = rsa_key()
    dns = DnsServer({"s._domainkey.signer.test": {"TXT": [f"v=DKIM1; k=rsa; p={p}"]}}).start()
    port = free_port()
    od = start_opendkim(tmp, int(dns.addr.split(":")[1]), port)
    f = Facteur(extra={"qmgr": 'scan_interval = "1s"'})
    with open(f.config, "a") as c:
        c.write(f'''
[screen]
listeners = []

[[scan.milter]]
name = "opendkim"
address = "inet:127.0.0.1:{port}"
timeout = "10s"
on_failure = "tempfail"
''')
    f.add_user(ALICE)
    f.start_all()
    f.key, f.od = key, od
    yield f
    f.cleanup()
    if od.poll() is None:
        od.terminate()
        od.wait(10)
    dns.stop()
    shutil.rmtree(tmp, ignore_errors=True)


def signed(f, subject, tamper=False):
    msg = crlf(f"From: news@signer.test\nTo: {ALICE}\nSubject: {subject}\n"
               f"Date: Sat, 05 Dec 2026 20:00:00 +0000\nMessage-ID: <{subject}@signer.test>\n\nSigned body.\n")
    sig = dkim.sign(msg, b"s", b"signer.test", f.key, include_headers=HEADS)
    if tamper:
        msg = msg.replace(b"Signed body.", b"Changed body.")
    return sig + msg


def delivered(f, subject):
    def find():
        for p in f.all_files(ALICE):
            raw = p.read_bytes()
            if f"Subject: {subject}".encode() in raw:
                return raw
        return None
    return wait_for(find, 30, lambda: f"{subject!r}: " + f.log_text("smtpd")[-3000:])


def judged(raw):
    """OpenDKIM's Authentication-Results, unfolded."""
    m = email.message_from_bytes(raw, policy=email.policy.compat32)
    return [" ".join(v.split()) for v in m.get_all("Authentication-Results", []) if v.strip().startswith(JUDGE)]


def test_opendkim_judges_through_our_milter_client(site):
    with smtplib.SMTP("127.0.0.1", site.smtp_port, timeout=30) as s:
        s.sendmail("news@signer.test", [ALICE], signed(site, "good"))
        s.sendmail("news@signer.test", [ALICE], signed(site, "bad", tamper=True))
    good, bad = judged(delivered(site, "good")), judged(delivered(site, "bad"))
    assert len(good) == 1 and "dkim=pass" in good[0], good
    assert len(bad) == 1 and "dkim=fail" in bad[0], bad
    # The field is inside the header section, not glued to the body.
    raw = delivered(site, "good").replace(b"\r\n", b"\n")
    assert raw.index(b"Authentication-Results: " + JUDGE.encode()) < raw.index(b"\n\n")


def test_a_stopped_milter_with_tempfail_defers(site):
    site.od.terminate()
    site.od.wait(10)
    with smtplib.SMTP("127.0.0.1", site.smtp_port, timeout=30) as s:
        with pytest.raises(smtplib.SMTPSenderRefused) as e:
            s.sendmail("news@signer.test", [ALICE], signed(site, "later"))
    assert e.value.smtp_code == 451
