"""SASL with a real client: Python's scramp (RFC 5802/7677) logs in with
SCRAM-SHA-256 over IMAP (imaplib's `authenticate`, implicit TLS) and POP3
(poplib with raw AUTH lines, implicit TLS), and so does mbsync through
Cyrus SASL's SCRAM plugin (a second, independent implementation); a wrong
password is refused
with SCRAM exactly as with PLAIN (same reply text, a pause, one log line of
the same shape); a user whose password predates the SCRAM keys (the state
the directory migration leaves users in) still logs in with PLAIN, fails
SCRAM like a wrong password, and gets keys when the password is set again.

The helpers (`ScramResponder`, `pop3_auth`) speak SASL without knowing the
protocol, so an SMTP test can reuse them: smtplib's `SMTP.auth(mechanism,
authobject)` takes `responder.smtp` as its authobject."""

import base64
import glob
import imaplib
import os
import poplib
import re
import shutil
import sqlite3
import ssl
import subprocess
import time

import pytest
import scramp

from harness import Facteur

ALICE, ALICE_PW = "alice@example.test", "alice-pw"
OLD, OLD_PW = "old@example.test", "old-pw"
SCRAM = "SCRAM-SHA-256"


def tls_ctx():
    c = ssl.create_default_context()
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    return c


class ScramResponder:
    """A scramp client driven by the server's challenges: call it with each
    decoded challenge (bytes; None or b"" for the first, empty one), send
    back what it returns. After the server-final message it checks the
    server's signature (scramp raises if the server did not know the keys)
    and answers with the empty response RFC 4422 asks for."""

    def __init__(self, user, password):
        self.client = scramp.ScramClient([SCRAM], user, password)
        self.stage = 0
        self.verified = False

    def __call__(self, challenge=None):
        challenge = challenge or b""
        self.stage += 1
        if self.stage == 1:
            assert challenge == b"", challenge
            return self.client.get_client_first().encode()
        if self.stage == 2:
            self.client.set_server_first(challenge.decode())
            return self.client.get_client_final().encode()
        if self.stage == 3:
            self.client.set_server_final(challenge.decode())
            self.verified = True
            return b""
        raise AssertionError(f"unexpected challenge {challenge!r}")

    def initial(self):
        """The client-first message as a base64 initial response."""
        return base64.b64encode(self(None)).decode()

    def smtp(self, challenge=None):
        """The authobject smtplib's SMTP.auth wants (text, not bytes)."""
        return self(challenge).decode()


def plain(user, password):
    return f"\0{user}\0{password}".encode()


def plain_responder(user, password):
    return lambda _challenge=None: plain(user, password)


def pop3_auth(p, mechanism, respond, initial=False):
    """Runs AUTH on a poplib connection with raw lines (RFC 5034): each `+`
    challenge is decoded and answered with respond(challenge); with
    `initial`, the first response goes on the AUTH line. Returns the final
    status line as text."""
    if initial:
        p._putcmd(f"AUTH {mechanism} {base64.b64encode(respond(None)).decode() or '='}")
    else:
        p._putcmd(f"AUTH {mechanism}")
    while True:
        line, _ = p._getline()
        if not (line == b"+" or line.startswith(b"+ ")):
            return line.decode()
        challenge = base64.b64decode(line[1:].strip())
        p._putcmd(base64.b64encode(respond(challenge)).decode())


def imap_tls(f):
    return imaplib.IMAP4_SSL("127.0.0.1", f.imaps_port, ssl_context=tls_ctx(), timeout=30)


def pop3_tls(f):
    return poplib.POP3_SSL("127.0.0.1", f.pop3s_port, context=tls_ctx(), timeout=30)


def remove_scram_keys(f, user):
    """Leaves `user` as the schema migration leaves users whose password
    was set before SCRAM keys were stored: a hash, no keys."""
    with sqlite3.connect(f.root / "state" / "directory.sqlite") as db:
        n = db.execute("UPDATE users SET scram = NULL WHERE address = ?", (user,)).rowcount
    assert n == 1


def log(f, name):
    return re.sub(r"\x1b\[[0-9;]*m", "", f.log_text(name))


@pytest.fixture
def fac():
    """lmtpd, imapd and pop3d with the default policy (no password before
    TLS); alice set with `facteurctl user add` (hash and SCRAM keys)."""
    f = Facteur()
    try:
        f.add_user(ALICE, ALICE_PW)
        f.add_user(OLD, OLD_PW)
        f.start("lmtpd")
        f.start("imapd")
        f.start("pop3d")
    except BaseException:
        f.cleanup()
        raise
    yield f
    f.cleanup()


def imap_failure(f, mechanism, respond):
    """The text of the NO an AUTHENTICATE gets, and how long it took."""
    c = imap_tls(f)
    t0 = time.monotonic()
    with pytest.raises(imaplib.IMAP4.error) as e:
        c.authenticate(mechanism, respond)
    took = time.monotonic() - t0
    c.logout()
    return str(e.value), took


def test_imap_scram_login_and_wrong_password_like_plain(fac):
    f = fac
    c = imap_tls(f)
    assert f"AUTH={SCRAM}" in c.capabilities and "AUTH=PLAIN" in c.capabilities, c.capabilities
    r = ScramResponder(ALICE, ALICE_PW)
    typ, data = c.authenticate(SCRAM, r)
    assert typ == "OK" and r.verified, data
    assert c.select("INBOX")[0] == "OK"
    c.logout()

    scram_no, scram_took = imap_failure(f, SCRAM, ScramResponder(ALICE, "wr0ng-Secret"))
    plain_no, plain_took = imap_failure(f, "PLAIN", plain_responder(ALICE, "wr0ng-Secret"))
    assert "[AUTHENTICATIONFAILED] Authentication failed" in scram_no, scram_no
    assert scram_no == plain_no
    # Both answered after the pause (1.5 s, more once failures pile up).
    assert scram_took >= 1.4 and plain_took >= 1.4, (scram_took, plain_took)
    # Clear-text IMAP from loopback without the exception: nothing offered.
    c = imaplib.IMAP4("127.0.0.1", f.imap_port, timeout=30)
    assert "LOGINDISABLED" in c.capabilities and f"AUTH={SCRAM}" not in c.capabilities
    c.logout()
    lines = [l for l in log(f, "imapd").splitlines() if "authentication failed" in l]
    assert len(lines) == 2, lines
    assert all(ALICE in l for l in lines), lines
    assert any(f"mechanism={SCRAM}" in l for l in lines) and any("mechanism=PLAIN" in l for l in lines), lines
    assert "wr0ng-Secret" not in log(f, "imapd") and ALICE_PW not in log(f, "imapd")


def test_pop3_scram_login_and_wrong_password_like_plain(fac):
    f = fac
    p = pop3_tls(f)
    caps = p.capa()
    assert caps.get("SASL") == [SCRAM, "PLAIN", "LOGIN"], caps
    r = ScramResponder(ALICE, ALICE_PW)
    final = pop3_auth(p, SCRAM, r)
    assert final.startswith("+OK Logged in") and r.verified, final
    assert p.stat() == (0, 0)
    p.quit()
    # With the RFC 5034 initial response.
    p = pop3_tls(f)
    r = ScramResponder(ALICE, ALICE_PW)
    assert pop3_auth(p, SCRAM, r, initial=True).startswith("+OK Logged in")
    p.quit()
    # Bare AUTH lists the mechanisms.
    p = pop3_tls(f)
    p._putcmd("AUTH")
    assert p._getresp().startswith(b"+OK")
    names = []
    while (l := p._getline()[0]) != b".":
        names.append(l.decode())
    assert names == [SCRAM, "PLAIN", "LOGIN"], names

    t0 = time.monotonic()
    scram_err = pop3_auth(p, SCRAM, ScramResponder(ALICE, "wr0ng-Secret"))
    t1 = time.monotonic()
    plain_err = pop3_auth(p, "PLAIN", plain_responder(ALICE, "wr0ng-Secret"), initial=True)
    t2 = time.monotonic()
    assert scram_err == "-ERR [AUTH] Authentication failed", scram_err
    assert plain_err == scram_err
    assert t1 - t0 >= 1.4 and t2 - t1 >= 1.4, (t1 - t0, t2 - t1)
    p.quit()
    lines = [l for l in log(f, "pop3d").splitlines() if "authentication failed" in l]
    assert len(lines) == 2 and all(ALICE in l for l in lines), lines


def test_password_from_before_scram_keys(fac):
    f = fac
    remove_scram_keys(f, OLD)
    # PLAIN works over IMAP and POP3 ...
    c = imap_tls(f)
    assert c.authenticate("PLAIN", plain_responder(OLD, OLD_PW))[0] == "OK"
    c.logout()
    p = pop3_tls(f)
    assert pop3_auth(p, "PLAIN", plain_responder(OLD, OLD_PW), initial=True).startswith("+OK Logged in")
    p.quit()
    # ... SCRAM fails exactly as a wrong password does (and as an unknown
    # user does) ...
    no_keys, _ = imap_failure(f, SCRAM, ScramResponder(OLD, OLD_PW))
    unknown, _ = imap_failure(f, SCRAM, ScramResponder("nobody@example.test", "x"))
    wrong, _ = imap_failure(f, "PLAIN", plain_responder(OLD, "wrong"))
    assert no_keys == unknown == wrong, (no_keys, unknown, wrong)
    p = pop3_tls(f)
    assert pop3_auth(p, SCRAM, ScramResponder(OLD, OLD_PW)) == "-ERR [AUTH] Authentication failed"
    p.quit()
    # ... until the password is set again.
    f.ctl("user", "passwd", OLD, stdin="new-pw\n")
    c = imap_tls(f)
    r = ScramResponder(OLD, "new-pw")
    assert c.authenticate(SCRAM, r)[0] == "OK" and r.verified
    c.logout()


MBSYNC = shutil.which("mbsync")
CYRUS_SCRAM = glob.glob("/usr/lib/*/sasl2/libscram.so*")


@pytest.mark.skipif(not (MBSYNC and CYRUS_SCRAM), reason="needs mbsync (isync) and libsasl2-modules")
def test_mbsync_logs_in_with_cyrus_sasl_scram(fac, tmp_path):
    f = fac
    near = tmp_path / "near"
    near.mkdir()
    cfg = tmp_path / "mbsyncrc"
    cfg.write_text(
        f"""IMAPAccount facteur
Host 127.0.0.1
Port {f.imaps_port}
User {ALICE}
Pass {ALICE_PW}
SSLType IMAPS
CertificateFile {f.root / "tls" / "cert.pem"}
SystemCertificates no
AuthMechs {SCRAM}

IMAPStore far
Account facteur

MaildirStore near
Path {near}/
Inbox {near}/INBOX

Channel facteur
Far :far:
Near :near:
Patterns INBOX
Create Near
Sync Pull
SyncState *
"""
    )
    p = subprocess.run(
        [MBSYNC, "-D", "-c", str(cfg), "-a"],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, HOME=str(tmp_path)),
        cwd=tmp_path,
    )
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-3000:]
    # Cyrus sends the login as authzid too (n,a=alice@...,n=alice@...).
    assert re.search(rf"(?m)^(F: )?>>> \d+ AUTHENTICATE {SCRAM}", out), out[-3000:]
    assert (near / "INBOX" / "cur").is_dir()


def smtp_failure(f, mechanism, respond):
    """The error an AUTH gets on submissions (implicit TLS), and how long
    it took."""
    import smtplib
    s = smtplib.SMTP_SSL("127.0.0.1", f.submissions_port, context=tls_ctx(), timeout=30)
    s.ehlo("mua.test")
    t0 = time.monotonic()
    with pytest.raises(smtplib.SMTPAuthenticationError) as e:
        s.auth(mechanism, respond, initial_response_ok=False)
    took = time.monotonic() - t0
    s.quit()
    return (e.value.smtp_code, e.value.smtp_error), took


def test_smtp_scram_submission_and_wrong_password_like_plain(fac):
    # SMTP AUTH goes through the same driver: SCRAM-SHA-256 from scramp
    # (smtplib's auth with an authobject), then a message submitted; a
    # wrong SCRAM password gets the reply, pause and log line of PLAIN's.
    import smtplib
    f = fac
    f.start("qmgr")
    f.start("smtpd")
    s = smtplib.SMTP_SSL("127.0.0.1", f.submissions_port, context=tls_ctx(), timeout=30)
    s.ehlo("mua.test")
    assert s.esmtp_features["auth"].split() == [SCRAM, "PLAIN", "LOGIN"], s.esmtp_features
    r = ScramResponder(ALICE, ALICE_PW)
    code, _ = s.auth(SCRAM, r.smtp, initial_response_ok=False)
    assert code == 235 and r.verified
    s.sendmail(ALICE, [ALICE], b"Subject: scram\r\n\r\nsent after SCRAM\r\n")
    s.quit()
    # With the initial response on the AUTH line (RFC 4954).
    s = smtplib.SMTP_SSL("127.0.0.1", f.submissions_port, context=tls_ctx(), timeout=30)
    s.ehlo("mua.test")
    r = ScramResponder(ALICE, ALICE_PW)
    assert s.auth(SCRAM, r.smtp, initial_response_ok=True)[0] == 235 and r.verified
    s.quit()

    scram_err, scram_took = smtp_failure(f, SCRAM, ScramResponder(ALICE, "wr0ng-Secret").smtp)
    plain_err, plain_took = smtp_failure(f, "PLAIN", lambda _c=None: plain(ALICE, "wr0ng-Secret").decode())
    assert scram_err == (535, b"5.7.8 Authentication credentials invalid"), scram_err
    assert plain_err == scram_err
    assert scram_took >= 1.4 and plain_took >= 1.4, (scram_took, plain_took)
    lines = [l for l in log(f, "smtpd").splitlines() if "authentication failed" in l]
    assert len(lines) == 2 and all(ALICE in l for l in lines), lines
    assert any(f"mechanism={SCRAM}" in l for l in lines), lines
    assert "wr0ng-Secret" not in log(f, "smtpd")
    delivered = lambda: [p for p in f.all_files(ALICE) if b"sent after SCRAM" in p.read_bytes()]
    from harness import wait_for
    wait_for(delivered, 30, "the message sent after SCRAM")
