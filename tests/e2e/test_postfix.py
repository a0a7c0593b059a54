"""Interop: Debian's Postfix, run privately on loopback (never as the
system's MTA), hands mail for example.test to facteur-lmtpd with
`virtual_transport = lmtp:unix:...`. Mail submitted to Postfix with smtplib
lands in the Maildir."""

import os
import shutil
import smtplib
import subprocess

import pytest

from harness import as_stored, crlf, free_port, strip_added_headers, wait_for

POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"

pytestmark = pytest.mark.skipif(not os.path.exists(POSTFIX), reason="postfix is not installed (.ci/run installs it)")


def write_postfix(f, port):
    d = f.root / "postfix"
    for sub in ("etc", "spool", "data", "log"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    os.chmod(d, 0o755)
    (d / "vmailbox").write_text("".join(f"{u} ok\n" for u in ("alice@example.test", "bob@example.test", "demo@example.test")))
    (d / "etc" / "main.cf").write_text(
        f"""compatibility_level = 3.6
queue_directory = {d}/spool
data_directory = {d}/data
maillog_file = {d}/log/postfix.log
maillog_file_prefixes = {d}
mail_owner = postfix
setgid_group = postdrop
myhostname = peer.localhost
mydomain = localhost
myorigin = $myhostname
mydestination = $myhostname, localhost
virtual_mailbox_domains = example.test
virtual_mailbox_maps = texthash:{d}/vmailbox
virtual_transport = lmtp:unix:{f.socket}
alias_maps =
alias_database =
local_recipient_maps =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
lmtp_dns_support_level = disabled
relayhost =
default_transport = error:no outbound mail from this test instance
relay_transport = error:no outbound mail from this test instance
smtpd_tls_security_level = none
smtp_tls_security_level = none
biff = no
"""
    )
    (d / "etc" / "master.cf").write_text(
        f"""127.0.0.1:{port} inet n - n - - smtpd
pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
lmtp unix - - n - - lmtp
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
"""
    )
    return d


def postfix(d, *args):
    return subprocess.run([POSTFIX, "-c", str(d / "etc"), *args], capture_output=True, text=True, timeout=60)


def test_postfix_delivers_through_lmtpd(lmtpd):
    port = free_port()
    d = write_postfix(lmtpd, port)
    r = postfix(d, "set-permissions")
    r = postfix(d, "start")
    log = d / "log" / "postfix.log"
    try:
        assert r.returncode == 0, r.stdout + r.stderr + (log.read_text() if log.exists() else "")

        def smtp_up():
            try:
                smtplib.SMTP("127.0.0.1", port, timeout=2).quit()
                return True
            except OSError:
                return False

        wait_for(smtp_up, 30, "postfix smtpd")
        msgs = {}
        with smtplib.SMTP("127.0.0.1", port) as s:
            for i, rcpt in enumerate(["alice@example.test", "bob@example.test", "demo@example.test"]):
                body = crlf(f"From: sender@remote.test\nTo: {rcpt}\nSubject: via postfix {i}\nMessage-ID: <pf{i}@remote.test>\n\n8-bit caf\xe9 {i}\n")
                s.sendmail("sender@remote.test", [rcpt], body, mail_options=["BODY=8BITMIME"])
                msgs[rcpt] = body
            # One message to two recipients: Postfix sends both in one LMTP
            # transaction and reads the two replies.
            both = crlf("From: sender@remote.test\nSubject: both\n\ntwo recipients\n")
            s.sendmail("sender@remote.test", ["alice@example.test", "bob@example.test"], both)

        def delivered():
            return all(len(lmtpd.new_files(u)) == (2 if u != "demo@example.test" else 1) for u in msgs)

        wait_for(delivered, 60, lambda: "Postfix to deliver through facteur-lmtpd:\n" + (log.read_text() if log.exists() else ""))
        for rcpt, body in msgs.items():
            contents = [f.read_bytes() for f in lmtpd.new_files(rcpt)]
            mine = [c for c in contents if b"via postfix" in c]
            assert len(mine) == 1, rcpt
            stored = strip_added_headers(mine[0])
            # Postfix adds its own Received: (and may add headers); the body
            # and our headers arrive intact.
            assert b"Received: " in stored
            assert stored.endswith(as_stored(body).split(b"\n\n", 1)[1])
        assert "status=sent" in log.read_text()
        assert "Saved as" in log.read_text()
    finally:
        postfix(d, "stop")
