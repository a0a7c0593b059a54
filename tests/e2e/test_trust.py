"""Mail authentication on incoming mail, end to end: facteur-smtpd's MX
listener checks iprev, SPF, DKIM and DMARC against a DNS server the test
runs on loopback (dnsserver.py, `[trust] dns_servers`), and qmgr and lmtpd
deliver what it accepts. Messages are signed by dkimpy (an implementation
nobody here wrote) and sent with smtplib from loopback addresses outside
`mynetworks` (127.0.0.1/32 only here): 127.0.0.10 is the permitted sender
of every test domain's SPF record, 127.0.0.20 and 127.0.0.30 are strangers.
Loopback addresses never have a verified PTR name (the resolver answers
127/8 itself, "localhost", RFC 6761 §6.3), so iprev fails for them and
Received says "unknown": the verified name in Received is covered by
smtpd's unit tests, whose clients have other addresses.

Covered: a good signature (dkim=pass, dmarc=pass through DKIM alone, the
SPF fail it excuses), a changed body (dkim=fail), DMARC p=reject (550
5.7.1), p=quarantine (filed into Junk), a DMARC record that cannot be
fetched (451 4.7.5), SPF pass/fail/softfail in Received-SPF and SPF -all
without DKIM (Junk), a forged Authentication-Results with our authserv-id
and a forged spam mark removed (another server's results kept), the
client's address in Received, and no checks for authenticated submission
or mynetworks."""

import base64
import email
import email.policy
import re
import smtplib
import subprocess
import time

import pytest

from dnsserver import DnsServer
from harness import Facteur, crlf, wait_for

dkim = pytest.importorskip("dkim", reason="dkimpy is not installed (tests/deps installs it)")

AUTHSERV = "mx.example.test"
ALICE = "alice@example.test"
GOOD_IP, STRANGER_IP, NOPTR_IP = "127.0.0.10", "127.0.0.20", "127.0.0.30"
HEADS = [b"from", b"to", b"subject", b"date", b"message-id"]


def rsa_key():
    """An RSA-2048 key: (PKCS#1 PEM for dkimpy, p= of its DNS record)."""
    pem = subprocess.run(["openssl", "genrsa", "2048"], capture_output=True, check=True, timeout=60).stdout
    der = subprocess.run(["openssl", "rsa", "-pubout", "-outform", "DER"], input=pem, capture_output=True,
                         check=True, timeout=60).stdout
    pkcs1 = subprocess.run(["openssl", "rsa", "-traditional"], input=pem, capture_output=True, check=True,
                           timeout=60).stdout
    return pkcs1, base64.b64encode(der).decode()


def zone(p):
    spf = f"v=spf1 ip4:{GOOD_IP} -all"
    z = {
        # Every test domain: SPF permits GOOD_IP only.
        "good.test": {"TXT": [spf]},
        "s._domainkey.good.test": {"TXT": [f"v=DKIM1; k=rsa; p={p}"]},
        "_dmarc.good.test": {"TXT": ["v=DMARC1; p=reject"]},
        "reject.test": {"TXT": [spf]},
        "_dmarc.reject.test": {"TXT": ["v=DMARC1; p=reject"]},
        "quarantine.test": {"TXT": [spf]},
        "_dmarc.quarantine.test": {"TXT": ["v=DMARC1; p=quarantine"]},
        # No DMARC: SPF alone.
        "nodmarc.test": {"TXT": [spf]},
        "soft.test": {"TXT": [f"v=spf1 ip4:{GOOD_IP} ~all"]},
        # DMARC's DNS is down.
        "broken.test": {"TXT": [f"v=spf1 ip4:{GOOD_IP} ?all"]},
        "_dmarc.broken.test": {"SERVFAIL": True},
        "helo.test": {"A": [STRANGER_IP]},
    }
    return z


@pytest.fixture(scope="module")
def site():
    key, p = rsa_key()
    dns = DnsServer(zone(p)).start()
    f = Facteur(extra={"smtpd": '''mynetworks = ["127.0.0.1/32"]
allow_plaintext_auth_on_loopback = true
max_messages_per_ip_per_minute = 100000''', "qmgr": 'scan_interval = "1s"'})
    with open(f.config, "a") as c:
        c.write(f'''
[trust]
authserv_id = "{AUTHSERV}"
dns_servers = ["{dns.addr}"]
dns_timeout = "2s"

[trust.incoming]
check_timeout = "5s"
''')
    f.add_user(ALICE)
    f.start_all()
    f.key = key
    f.dns = dns
    yield f
    f.cleanup()
    dns.stop()


def message(frm, subject, body="Hello from a test.\r\n", extra=""):
    return crlf(f"From: {frm}\nTo: {ALICE}\nSubject: {subject}\nDate: Mon, 23 Nov 2026 18:47:54 +0000\n"
                f"Message-ID: <{subject.replace(' ', '.')}@test>\n{extra}\n{body}")


def sign(f, domain, msg):
    return dkim.sign(msg, b"s", domain.encode(), f.key, include_headers=HEADS) + msg


def send(f, msg, sender, source=STRANGER_IP, helo="helo.test", port=None):
    """Sends over the MX listener from `source`; the reply to the data
    ((code, text) of a refusal, or None when accepted)."""
    with smtplib.SMTP("127.0.0.1", port or f.smtp_port, local_hostname=helo, source_address=(source, 0),
                      timeout=30) as s:
        try:
            s.sendmail(sender, [ALICE], msg)
        except smtplib.SMTPDataError as e:
            return e.smtp_code, e.smtp_error.decode()
    return None


def delivered(f, subject, folder=""):
    """The message with `subject` in alice's INBOX (or `folder`), parsed,
    once it is there."""
    def find():
        d = f.maildir(ALICE, folder)
        for sub in ("new", "cur"):
            if (d / sub).exists():
                for p in (d / sub).iterdir():
                    m = email.message_from_bytes(p.read_bytes(), policy=email.policy.compat32)
                    if m["Subject"] == subject:
                        return m
        return None
    return wait_for(find, 20, lambda: f"{subject!r} in {folder or 'INBOX'}: " + f.log_text("smtpd")[-3000:])


def ours(m):
    """Our Authentication-Results, unfolded (one expected)."""
    ars = [" ".join(v.split()) for v in m.get_all("Authentication-Results", [])
           if v.strip().lower().startswith(AUTHSERV)]
    assert len(ars) == 1, m.get_all("Authentication-Results")
    return ars[0]


def not_in(f, subject, folder):
    d = f.maildir(ALICE, folder)
    return not any(subject.encode() in p.read_bytes() for sub in ("new", "cur") if (d / sub).exists()
                   for p in (d / sub).iterdir())


def test_good_signature_passes_dkim_and_dmarc_despite_spf_fail(site):
    msg = sign(site, "good.test", message("Alice <alice@good.test>", "good signature"))
    # From a stranger: SPF fails, the aligned signature makes DMARC pass.
    assert send(site, msg, "alice@good.test") is None
    m = delivered(site, "good signature")
    ar = ours(m)
    assert "dkim=pass" in ar and "header.d=good.test" in ar and "header.s=s" in ar, ar
    assert "dmarc=pass" in ar and "header.from=good.test" in ar, ar
    assert "spf=fail" in ar and "smtp.mailfrom=alice@good.test" in ar, ar
    assert "iprev=fail" in ar and f"policy.iprev={STRANGER_IP}" in ar, ar
    assert m["Received-SPF"].split()[0] == "fail", m["Received-SPF"]
    # Our Received, with no verified name for a loopback client.
    assert f"(unknown [{STRANGER_IP}])" in " ".join(m.get_all("Received")[0].split()), m["Received"]
    # DKIM passed: no quarantine for the SPF fail.
    assert "X-Spam" not in m
    assert not_in(site, "good signature", ".Junk")


def test_changed_body_fails_dkim(site):
    msg = sign(site, "good.test", message("alice@good.test", "changed body"))
    msg = msg.replace(b"Hello from a test.", b"Hello from a thief.")
    # From the permitted address: SPF passes, so DMARC passes through it.
    assert send(site, msg, "alice@good.test", source=GOOD_IP) is None
    m = delivered(site, "changed body")
    ar = ours(m)
    assert "dkim=fail" in ar and "header.d=good.test" in ar, ar
    assert "spf=pass" in ar and "dmarc=pass" in ar, ar
    assert m["Received-SPF"].split()[0] == "pass", m["Received-SPF"]


def test_dmarc_reject_without_valid_signature_is_refused(site):
    msg = message("ceo@reject.test", "dmarc reject")
    code, text = send(site, msg, "ceo@reject.test")
    assert code == 550 and text.startswith("5.7.1"), (code, text)
    assert "reject.test" in text
    # A broken signature changes nothing.
    bad = sign(site, "good.test", message("ceo@reject.test", "dmarc reject 2")).replace(b"Hello", b"Hullo")
    code, text = send(site, bad, "ceo@reject.test")
    assert code == 550 and text.startswith("5.7.1"), (code, text)
    time.sleep(1)
    assert not_in(site, "dmarc reject", "") and not_in(site, "dmarc reject", ".Junk")


def test_dmarc_quarantine_goes_into_junk(site):
    assert send(site, message("news@quarantine.test", "dmarc quarantine"), "news@quarantine.test") is None
    m = delivered(site, "dmarc quarantine", ".Junk")
    assert m["X-Spam"] == "Yes"
    ar = ours(m)
    assert "dmarc=fail" in ar and "(p=quarantine)" in ar and "spf=fail" in ar, ar
    assert not_in(site, "dmarc quarantine", "")


def test_dmarc_dns_failure_defers(site):
    code, text = send(site, message("a@broken.test", "dmarc temperror"), "a@broken.test")
    assert code == 451 and text.startswith("4.7.5"), (code, text)


def test_spf_results_in_received_spf(site):
    # pass, softfail: delivered into INBOX; fail without DKIM: Junk.
    assert send(site, message("a@nodmarc.test", "spf pass"), "a@nodmarc.test", source=GOOD_IP) is None
    assert send(site, message("a@soft.test", "spf softfail"), "a@soft.test") is None
    assert send(site, message("a@nodmarc.test", "spf fail"), "a@nodmarc.test", source=NOPTR_IP) is None
    m = delivered(site, "spf pass")
    assert m["Received-SPF"].startswith("pass"), m["Received-SPF"]
    assert "client-ip=127.0.0.10" in " ".join(m["Received-SPF"].split())
    m = delivered(site, "spf softfail")
    assert m["Received-SPF"].startswith("softfail"), m["Received-SPF"]
    assert "spf=softfail" in ours(m) and "X-Spam" not in m
    m = delivered(site, "spf fail", ".Junk")
    assert m["Received-SPF"].startswith("fail"), m["Received-SPF"]
    ar = ours(m)
    assert "spf=fail" in ar and "dmarc=none" in ar, ar


def test_forged_results_and_spam_mark_are_removed(site):
    forged = (f"Authentication-Results: {AUTHSERV.upper()}.; dkim=pass header.d=reject.test;\n"
              " dmarc=pass header.from=good.test\n"
              "Authentication-Results: other.test; spf=pass smtp.mailfrom=x@other.test\n"
              "X-Spam: Yes\n")
    msg = sign(site, "good.test", message("alice@good.test", "forged results", extra=forged))
    assert send(site, msg, "alice@good.test", source=GOOD_IP) is None
    m = delivered(site, "forged results")
    ar = ours(m)
    assert "dkim=pass" in ar and "header.d=good.test" in ar and "header.d=reject.test" not in ar, ar
    assert any(v.strip().startswith("other.test") for v in m.get_all("Authentication-Results"))
    assert "X-Spam" not in m
    log = site.log_text("smtpd")
    assert "forged header fields removed" in log
    # One line per checked message, with its queue id (one grep follows it).
    assert re.search(r"message checked queue_id=[0-9A-Z]+ spf=pass dkim=good.test:pass .*dmarc=pass", log), log[-2000:]


def test_submission_and_mynetworks_are_not_checked(site):
    site.add_user("sub@example.test", "sub-pw")
    # Authenticated submission from a stranger's address, From: a domain
    # whose DMARC says reject: not judged.
    with smtplib.SMTP("127.0.0.1", site.submission_port, source_address=(STRANGER_IP, 0), timeout=30) as s:
        s.ehlo("helo.test")
        s.login("sub@example.test", "sub-pw")
        s.sendmail("sub@example.test", [ALICE], message("ceo@reject.test", "by submission"))
    # mynetworks (127.0.0.1) on the MX listener: not judged either.
    assert send(site, message("ceo@reject.test", "from mynetworks"), "ceo@reject.test", source="127.0.0.1") is None
    for subject in ("by submission", "from mynetworks"):
        m = delivered(site, subject)
        assert not any(v.strip().lower().startswith(AUTHSERV) for v in m.get_all("Authentication-Results", []))
        assert "Received-SPF" not in m and "X-Spam" not in m
