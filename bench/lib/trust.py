"""Workload 7: workload 1 with the sender's mail authenticated on both
sides, against a DNS server on loopback that serves the sending domain's
records. Run only when named (`--only 7`), after the others: it
reconfigures both sides' SMTP servers.

- The messages: one 5 KB message from `bench@sender.bench`, DKIM-signed
  (RSA-2048, relaxed/relaxed) by dkimpy, an implementation of neither
  side, sent as it is by `smtp-source -F` with HELO `client.sender.bench`.
- The DNS (tests/e2e/dnsserver.py on 127.0.0.60:53, TTL 60 s): SPF of
  sender.bench and of the HELO name (`ip4:127.0.0.1`), the DKIM key,
  DMARC `p=reject`, and a PTR for 127.0.0.1 that resolves back (iprev).
- facteur: facteur-smtpd with its checks on the MX listener (`mynetworks`
  emptied, so 127.0.0.1 is a stranger; `trust.dns_servers` the server
  above): iprev, SPF of HELO and MAIL FROM, DKIM, ARC, DMARC, the policy,
  `Authentication-Results` and `Received-SPF` written.
- Postfix: OpenDKIM (Debian's `opendkim`, verify mode, as a milter; its
  libunbound forwarding to the server above) and postfix-policyd-spf-python
  (Debian's, spawned by Postfix as a policy service at RCPT, SPF of HELO
  and MAIL FROM) — the setup Debian's guides give; it does no DMARC and
  no iprev (that would take OpenDMARC: a note says so). Postfix runs in a
  private mount namespace where /etc/resolv.conf names the server above
  (policyd-spf reads only that file); the system's file is not touched.

After each side's first run, one delivered message is checked: both must
show a DKIM and an SPF pass, or the row carries a note saying the
comparison does not hold.
"""

import base64
import os
import re
import subprocess
import sys
from pathlib import Path

from common import free_port, run, run_daemonizing, set_key, tcp_up, wait_for

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "e2e"))
from dnsserver import DnsServer  # noqa: E402

DNS_HOST = "127.0.0.60"
SENDER = "bench@sender.bench"
HELO = "client.sender.bench"
PACKAGES = {"/usr/sbin/opendkim": "opendkim", "/usr/bin/policyd-spf": "postfix-policyd-spf-python"}


def make_key(d):
    """An RSA-2048 key (PEM) and its public key for DNS (base64 DER)."""
    key = d / "dkim.key"
    run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(key)])
    der = subprocess.run(["openssl", "pkey", "-in", str(key), "-pubout", "-outform", "DER"],
                         capture_output=True, check=True, timeout=60).stdout
    return key.read_bytes(), base64.b64encode(der).decode()


def signed_message(d, key_pem, size=5000):
    import dkim  # dkimpy (tests/deps installs it)
    body = "".join(f"line {i:05d} of the bench message, some text to fill it.\n" for i in range(size // 60))
    msg = (f"From: Bench <{SENDER}>\nTo: d0@example.test\nSubject: authenticated bench message\n"
           f"Date: Sat, 05 Dec 2026 10:00:00 +0000\nMessage-ID: <bench-signed@sender.bench>\n"
           f"MIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\n\n{body}")
    crlf = msg.replace("\n", "\r\n").encode()
    sig = dkim.sign(crlf, b"s1", b"sender.bench", key_pem,
                    include_headers=[b"From", b"To", b"Subject", b"Date", b"Message-ID"],
                    canonicalize=(b"relaxed", b"relaxed"))
    path = d / "message.eml"
    # smtp-source -F adds CRLF after each line: the file has LF ends.
    path.write_bytes((sig + crlf).replace(b"\r\n", b"\n"))
    return path


POLICYD_CONF = """debugLevel = 0
TestOnly = 1
HELO_reject = Fail
Mail_From_reject = Fail
PermError_reject = False
TempError_Defer = False
# Not empty (policyd-spf 3.0.4 fails on an empty list): an address that
# never connects, so 127.0.0.1 is checked like any client.
skip_addresses = 192.0.2.255/32
"""

# OpenDKIM's libunbound forwards to the test's DNS server. Not with a
# ResolverConfiguration file as in tests/e2e/test_dkim.py: under this load
# (10 sessions at once) its libunbound failed to parse the file now and
# then ("syntax error" at line 2 of a file it had read fine) and the milter
# answered 4.7.1; `Nameservers` needs no file, and the sending domain is
# not under `.test`, which unbound answers NXDOMAIN itself.
OPENDKIM_CONF = """Mode v
Socket inet:{port}@127.0.0.1
AuthservID peers.localhost
AlwaysAddARHeader yes
Nameservers {dns}
UserID opendkim
Syslog no
"""


class Trust:
    """The DNS server, the message, and both sides reconfigured."""

    def __init__(self, tmp):
        self.dir = Path(tmp) / "trust"
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o755)
        key_pem, pub = make_key(self.dir)
        self.message = signed_message(self.dir, key_pem)
        self.dns = DnsServer({
            "sender.bench": {"TXT": ["v=spf1 ip4:127.0.0.1 -all"]},
            HELO: {"A": ["127.0.0.1"], "TXT": ["v=spf1 ip4:127.0.0.1 -all"]},
            "s1._domainkey.sender.bench": {"TXT": [f"v=DKIM1; k=rsa; p={pub}"]},
            "_dmarc.sender.bench": {"TXT": ["v=DMARC1; p=reject"]},
            "1.0.0.127.in-addr.arpa": {"PTR": [HELO]},
        }, host=DNS_HOST, port=53).start()
        self.opendkim = None

    def facteur(self, fac):
        """facteur-smtpd again, with its checks on for 127.0.0.1."""
        fac.stop_daemon("smtpd")
        p = fac.root / "facteur.toml"
        cfg = set_key(p.read_text(), "smtpd", "mynetworks", "[]")
        cfg += f'\n[trust]\ndns_servers = ["{DNS_HOST}:53"]\n'
        # Mail authentication only, as on the Postfix side (no postscreen,
        # no greylisting there): the screen's pregreet wait would count.
        cfg += '\n[screen]\nlisteners = []\n'
        p.write_text(cfg)
        fac.ctl("config", "check")
        fac.start_daemon("smtpd")

    def peer(self, peer):
        """Postfix again, with OpenDKIM and policyd-spf, in a namespace
        whose /etc/resolv.conf names the test's DNS server."""
        run_daemonizing(["postfix", "-c", str(peer.pf / "etc"), "stop"], peer.dir / "start.log")
        wait_for(lambda: not tcp_up(peer.smtp_port, banner=False), 30, "postfix to stop")
        milter = free_port()
        (self.dir / "opendkim.conf").write_text(OPENDKIM_CONF.format(port=milter, dns=DNS_HOST))
        (self.dir / "policyd-spf.conf").write_text(POLICYD_CONF)
        (self.dir / "resolv.conf").write_text(f"nameserver {DNS_HOST}\n")
        log_f = open(self.dir / "opendkim.log", "ab")
        self.opendkim = subprocess.Popen(["opendkim", "-f", "-x", str(self.dir / "opendkim.conf")],
                                         stdout=log_f, stderr=subprocess.STDOUT, preexec_fn=peer.acct.preexec)
        peer.acct.add_root(self.opendkim.pid)
        wait_for(lambda: tcp_up(milter, banner=False), 30, "opendkim")
        main = peer.pf / "etc" / "main.cf"
        main.write_text(main.read_text() + f"""
# workload 7: SPF (policyd-spf) and DKIM (OpenDKIM) checks
smtpd_recipient_restrictions = check_policy_service unix:private/policyd-spf, permit_mynetworks, reject_unauth_destination
policyd-spf_time_limit = 3600
smtpd_milters = inet:127.0.0.1:{milter}
non_smtpd_milters =
milter_default_action = tempfail
""")
        master = peer.pf / "etc" / "master.cf"
        master.write_text(master.read_text() + "policyd-spf unix - n n - 0 spawn user=nobody "
                          f"argv=/usr/bin/policyd-spf {self.dir}/policyd-spf.conf\n")
        inner = (f"mount --bind {self.dir}/resolv.conf /etc/resolv.conf && "
                 f"exec postfix -c {peer.pf}/etc start")
        rc, out = run_daemonizing(["unshare", "--mount", "--propagation", "private", "sh", "-c", inner],
                                  peer.dir / "start.log", peer.acct.preexec)
        if rc != 0:
            raise RuntimeError(f"postfix did not start again: {out}")
        wait_for(lambda: tcp_up(peer.smtp_port), 30, "postfix smtpd")
        peer._add_pidfile_root(peer.pf / "spool" / "pid" / "master.pid")

    def stop(self):
        if self.opendkim and self.opendkim.poll() is None:
            self.opendkim.terminate()
            try:
                self.opendkim.wait(10)
            except subprocess.TimeoutExpired:
                self.opendkim.kill()
        self.dns.stop()


def check_delivered(side, row):
    """After a side's first run: one delivered message must show the checks
    passed; otherwise the row says the comparison does not hold."""
    files = sorted((side.maildir("d0") / "new").glob("*")) + sorted((side.maildir("d0") / "cur").glob("*"))
    if not files:
        row.notes.append(f"{side.name}: no message to check")
        return
    head = files[0].read_bytes().split(b"\n\n", 1)[0].decode(errors="replace")
    dkim_ok = re.search(r"\bdkim=pass\b", head) is not None
    spf_ok = re.search(r"\bspf=pass\b", head) is not None or re.search(r"^Received-SPF: Pass", head, re.M | re.I)
    if not (dkim_ok and spf_ok):
        row.notes.append(f"{side.name}: the checks did not pass (dkim {dkim_ok}, spf {bool(spf_ok)}): "
                         "the comparison does not hold; headers: " + head[:600].replace("\n", " | "))


def workload(sides, fac, peer, tmp, count, reps, deliveries):
    t = Trust(tmp)
    try:
        t.facteur(fac)
        t.peer(peer)
        rows = deliveries(sides, count, 5000, reps, lmtp=False, msg_file=t.message, sender=SENDER, helo=HELO,
                          name="7. SMTP -> Maildir, SPF + DKIM checked (Postfix: + OpenDKIM + policyd-spf)",
                          after_first=check_delivered)
        for r in rows:
            r.notes.append("facteur also checks iprev, ARC and DMARC and writes Authentication-Results; "
                           "Postfix + OpenDKIM + policyd-spf do SPF and DKIM only (DMARC would take OpenDMARC)")
        return rows
    finally:
        t.stop()
