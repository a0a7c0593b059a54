"""Remote delivery end to end: facteur-qmgr looks up MX records in a DNS
server the test runs on loopback (dnsserver.py), and delivers over SMTP to
a real Postfix smtpd (private instance, STARTTLS with a certificate from a
test CA) and to a scripted peer (smtppeer.py) for the failures. Every peer
listens on its own loopback address (127.0.0.2 Postfix, 127.0.0.3 and ::1
the scripted peer) on one port, which qmgr's TEST-ONLY `qmgr.smtp_port`
makes it use instead of 25.

Covered: MX delivery with per-recipient results, STARTTLS `verify` (right
name passes, wrong name defers), `encrypt` against a peer without STARTTLS,
SIZE (bounce without sending), null MX and NXDOMAIN (bounce), the next MX
when the first refuses connections, IPv6, a forwarding alias, a peer that
closes mid-DATA or hangs, a relayhost with AUTH over TLS (and a password file
others can read, refused), a delay notice and the final bounce, and every
`facteurctl queue` command on a message stuck behind a 4xx peer, with qmgr
running and stopped."""

import email
import http.server
import os
import signal
import smtplib
import ssl
import subprocess
import threading
import time

import pytest

from dnsserver import DnsServer
from postfixpeer import start_postfix, world_dir
from harness import Facteur, crlf, free_port, wait_for
from smtppeer import ScriptedPeer

from postfixpeer import POSTFIX
pytestmark = pytest.mark.skipif(not os.path.exists(POSTFIX), reason="postfix is not installed (.ci/run installs it)")

ALICE = "alice@example.test"


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(d):
    """A test CA and a certificate for mx.remote.test signed by it."""
    d.mkdir(parents=True, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=facteur test CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    openssl("req", *ec, "-keyout", "mx.key", "-out", "mx.csr", "-subj", "/CN=mx.remote.test", cwd=d)
    (d / "ext.cnf").write_text("subjectAltName=DNS:mx.remote.test\nbasicConstraints=CA:FALSE\n"
                               "keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", "mx.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "mx.pem",
            "-days", "2", "-extfile", "ext.cnf", cwd=d)
    # The MTA-STS policy hosts (HTTPS).
    openssl("req", *ec, "-keyout", "sts.key", "-out", "sts.csr", "-subj", "/CN=mta-sts.sts.test", cwd=d)
    (d / "sts.cnf").write_text("subjectAltName=DNS:mta-sts.sts.test,DNS:mta-sts.stsbad.test\nbasicConstraints=CA:FALSE\n"
                               "keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", "sts.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "sts.pem",
            "-days", "2", "-extfile", "sts.cnf", cwd=d)


POLICIES = {
    # sts.test's MX is Postfix, which the policy lists: delivered, TLS verified.
    "mta-sts.sts.test": "version: STSv1\r\nmode: enforce\r\nmx: mx.remote.test\r\nmax_age: 86400\r\n",
    # stsbad.test's MX is the scripted peer, which the policy does not list.
    "mta-sts.stsbad.test": "version: STSv1\r\nmode: enforce\r\nmx: *.remote.test\r\nmax_age: 86400\r\n",
}


def start_policy_server(certs):
    """HTTPS on 127.0.0.4, serving /.well-known/mta-sts.txt by Host."""

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = POLICIES.get(self.headers.get("Host", ""), "")
            if self.path != "/.well-known/mta-sts.txt" or not body:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.4", 0), H)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certs / "sts.pem", certs / "sts.key")
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


class Net:
    """The world outside: DNS, Postfix, the scripted peer, the test CA."""

    def __init__(self, tmp):
        self.port = free_port()
        self.dir = tmp
        self.certs = tmp / "certs"
        make_ca(self.certs)
        self.dns = DnsServer({
            "remote.test": {"MX": [(10, "mx.remote.test")]},
            "mx.remote.test": {"A": ["127.0.0.2"]},
            "wrongname.test": {"MX": [(10, "mx.wrongname.test")]},
            "mx.wrongname.test": {"A": ["127.0.0.2"]},
            "mx.scripted.test": {"A": ["127.0.0.3"]},
            "scripted.test": {"MX": [(10, "mx.scripted.test")]},
            "tempfail.test": {"MX": [(10, "mx.scripted.test")]},
            "close.test": {"MX": [(10, "mx.scripted.test")]},
            "hang.test": {"MX": [(10, "mx.scripted.test")]},
            # STARTTLS offered, then a broken handshake.
            "badtls.test": {"MX": [(10, "mx.badtls.test")]},
            "mx.badtls.test": {"A": ["127.0.0.5"]},
            "encbad.test": {"MX": [(10, "mx.badtls.test")]},
            # The preferred MX refuses connections; the next one works.
            "multi.test": {"MX": [(5, "dead.multi.test"), (10, "mx.scripted.test")]},
            "dead.multi.test": {"A": ["127.0.0.9"]},
            # No MX: the implicit MX, over IPv6.
            "v6.test": {"AAAA": ["::1"]},
            # RFC 7505 null MX.
            "nomail.test": {"MX": [(0, ".")]},
            # MTA-STS (RFC 8461).
            "sts.test": {"MX": [(10, "mx.remote.test")]},
            "_mta-sts.sts.test": {"TXT": ["v=STSv1; id=20260101T000000;"]},
            "mta-sts.sts.test": {"A": ["127.0.0.4"]},
            "stsbad.test": {"MX": [(10, "mx.scripted.test")]},
            "_mta-sts.stsbad.test": {"TXT": ["v=STSv1; id=1;"]},
            "mta-sts.stsbad.test": {"A": ["127.0.0.4"]},
        }).start()
        self.policy_server = start_policy_server(self.certs)
        self.https_port = self.policy_server.server_address[1]
        self.peer = ScriptedPeer(["127.0.0.3", "::1", "127.0.0.5"], self.port).start()
        self.postfix_dir = tmp / "postfix"
        self.postfix = start_postfix(self.postfix_dir, self.port, self.certs)

    def stop(self):
        self.policy_server.shutdown()
        self.postfix("stop")
        self.peer.stop()
        self.dns.stop()

    def postfix_mail(self, user):
        d = self.postfix_dir / "vmail" / "remote" / user / "new"
        return sorted(d.iterdir()) if d.exists() else []

    def postfix_log(self):
        p = self.postfix_dir / "log" / "postfix.log"
        return p.read_text(errors="replace") if p.exists() else ""


@pytest.fixture(scope="module")
def net():
    with world_dir("fe2e-remote-") as tmp:
        n = Net(tmp)
        yield n
        n.stop()


def sender_facteur(net, qmgr="", tail=""):
    """A facteur that delivers remote mail through the test's DNS and port."""
    f = Facteur(extra={"qmgr": f'''dns_servers = ["{net.dns.addr}"]
smtp_port = {net.port}
tls_ca_file = "{net.certs}/ca.pem"
min_backoff = "1s"
max_backoff = "2s"
scan_interval = "1s"
smtp_command_timeout = "3s"
smtp_data_done_timeout = "3s"
smtp_connect_timeout = "3s"
{qmgr}''', "smtpd": "max_messages_per_ip_per_minute = 100000"})
    if tail:
        with open(f.config, "a") as c:
            c.write(tail)
    f.add_user(ALICE)
    f.start_all()
    return f


@pytest.fixture
def facteur_cleanup():
    made = []
    yield made
    for f in made:
        f.cleanup()


def send(f, rcpts, subject, body="hello\n", sender=ALICE, port=None):
    msg = crlf(f"From: {sender}\nTo: {', '.join(rcpts)}\nSubject: {subject}\nMessage-ID: <{subject.replace(' ', '.')}@example.test>\n\n{body}")
    with smtplib.SMTP("127.0.0.1", port or f.smtp_port, timeout=30) as s:
        s.sendmail(sender, rcpts, msg)


def dsns(f, user=ALICE):
    return [email.message_from_bytes(p.read_bytes()) for p in f.all_files(user)]


def dsn_texts(f, user=ALICE):
    return [m.as_string() for m in dsns(f, user)]


def queue_ids(f, q):
    d = f.root / "spool" / q
    return sorted(p.name for p in d.iterdir() if p.is_file()) if d.exists() else []


def queued(f):
    """Ids of the messages still queued (deferred/ or active/)."""
    return queue_ids(f, "deferred") + queue_ids(f, "active")


def test_mx_delivery_to_postfix_with_verify_tls(net, facteur_cleanup):
    f = sender_facteur(net, tail='\n[qmgr.destinations."remote.test"]\ntls_policy = "verify"\n')
    facteur_cleanup.append(f)
    f.ctl("alias", "add", "fwd@example.test", "carol@remote.test")
    # Three recipients, one unknown to Postfix: two delivered, one bounced.
    send(f, ["bob@remote.test", "carol@remote.test", "nobody@remote.test"], "first message")
    wait_for(lambda: net.postfix_mail("bob"), 20, lambda: f.log_text("qmgr")[-3000:])
    # A second message once the first is through: same destination, the
    # cached connection (RSET, then the transaction).
    send(f, ["bob@remote.test"], "second message")
    # A forwarding alias: mail to fwd@example.test goes on to carol@remote.test.
    send(f, ["fwd@example.test"], "forwarded", sender="someone@elsewhere.test")
    # Too big for Postfix's SIZE 100000: bounced without being sent.
    send(f, ["bob@remote.test"], "too big", body="x" * 76 + "\n" * 1 + ("y" * 998 + "\n") * 120)
    # Null MX and a domain that does not exist: immediate bounces.
    send(f, ["x@nomail.test"], "null mx")
    send(f, ["x@gone.test"], "nxdomain")

    wait_for(lambda: len(net.postfix_mail("bob")) >= 2 and len(net.postfix_mail("carol")) >= 2, 30,
             lambda: "Postfix deliveries\n" + f.log_text("qmgr")[-3000:] + net.postfix_log()[-2000:])
    bob = [p.read_bytes() for p in net.postfix_mail("bob")]
    carol = [p.read_bytes() for p in net.postfix_mail("carol")]
    assert any(b"Subject: first message" in m for m in bob) and any(b"Subject: second message" in m for m in bob)
    assert any(b"Subject: first message" in m for m in carol)
    fwd = [m for m in carol if b"Subject: forwarded" in m]
    assert len(fwd) == 1 and b"Return-Path: <someone@elsewhere.test>" in fwd[0]
    assert not any(b"too big" in m for m in bob)

    wait_for(lambda: len(dsns(f)) >= 4, 30, lambda: "4 bounces to alice\n" + f.log_text("qmgr")[-4000:])
    texts = dsn_texts(f)
    unknown = [t for t in texts if "nobody@remote.test" in t]
    assert unknown and "Status: 5.1.1" in unknown[0] and "Final-Recipient: rfc822; bob@" not in unknown[0]
    assert any("x@nomail.test" in t and "Status: 5.1.10" in t for t in texts)
    assert any("x@gone.test" in t and "Status: 5.1.2" in t for t in texts)
    assert any("Status: 5.3.4" in t and "exceeds the limit of 100000" in t for t in texts)
    log = f.log_text("qmgr")
    assert "tls=true" in log and "mx.remote.test[127.0.0.2]" in log
    assert "reusing a cached connection" in log
    assert "queue_id=" in log
    # Postfix saw TLS, and our ESMTP parameters.
    assert "TLS connection established from" in net.postfix_log()
    wait_for(lambda: not any(queue_ids(f, q) for q in ("incoming", "active", "deferred")), 20, "an empty queue")


def test_scripted_peer_failures(net, facteur_cleanup):
    f = sender_facteur(net)
    facteur_cleanup.append(f)
    n0 = len(net.peer.messages)
    # One of three refused for now, one refused for good, one taken.
    send(f, ["ok@scripted.test", "temp@scripted.test", "perm@scripted.test"], "three")
    # The first MX refuses connections: the second one takes it.
    send(f, ["ok@multi.test"], "next mx")
    # No MX, only AAAA ::1: the implicit MX over IPv6.
    send(f, ["ok@v6.test"], "over ipv6")
    # The peer closes mid-DATA; the peer hangs after the dot: both deferred.
    send(f, ["a@close.test"], "closer")
    send(f, ["a@hang.test"], "hanger")

    def got():
        subjects = [m[2] for m in net.peer.messages[n0:]]
        return sum(any(s in d for d in subjects) for s in (b"Subject: three", b"Subject: next mx", b"Subject: over ipv6")) == 3

    wait_for(got, 30, lambda: "scripted deliveries\n" + f.log_text("qmgr")[-3000:])
    three = [m for m in net.peer.messages[n0:] if b"Subject: three" in m[2]][0]
    assert three[1] == ["ok@scripted.test"]
    assert "BODY=8BITMIME" not in three[0]
    v6 = [m for m in net.peer.messages[n0:] if b"Subject: over ipv6" in m[2]][0]
    assert v6[3] == "::1"
    # (The bounce for perm@ is sent when the message leaves the queue, once
    # temp@ is final too; meanwhile `queue show` has each outcome.)

    def deferred_with(addr, text):
        for i in queued(f):
            out = f.ctl("queue", "show", i, check=False)
            if addr in out and text in out:
                return True
        return False

    wait_for(lambda: deferred_with("temp@scripted.test", "451 4.2.0"), 20, lambda: f.ctl("queue", "list"))
    wait_for(lambda: deferred_with("a@close.test", "deferred: 4.4.2"), 20, lambda: f.ctl("queue", "list"))
    wait_for(lambda: deferred_with("a@hang.test", "timeout waiting for the reply after the final dot"), 30,
             lambda: f.ctl("queue", "list"))
    show = [f.ctl("queue", "show", i, check=False) for i in queued(f)]
    three_show = [s for s in show if "temp@scripted.test" in s][0]
    assert "<ok@scripted.test> delivered: 250 2.0.0" in three_show
    assert "<perm@scripted.test> bounced: 550 5.1.1" in three_show
    # Pipelining: MAIL, the RCPTs and DATA arrived in order.
    cmds = [c.split(":")[0] for c in net.peer.commands]
    assert "MAIL FROM" in cmds and "DATA" in cmds


def test_tls_policies_wrong_name_and_no_starttls(net, facteur_cleanup):
    f = sender_facteur(net, tail='\n[qmgr.destinations."wrongname.test"]\ntls_policy = "verify"\n'
                                  '\n[qmgr.destinations."scripted.test"]\ntls_policy = "encrypt"\n')
    facteur_cleanup.append(f)
    n0 = len(net.peer.messages)
    send(f, ["bob@wrongname.test"], "wrong name")
    send(f, ["ok@scripted.test"], "needs tls")

    def reasons():
        return "\n".join(f.ctl("queue", "show", i, check=False) for i in queued(f))

    wait_for(lambda: "4.7.5" in reasons() and "4.7.4 TLS is required (policy encrypt)" in reasons(), 30,
             lambda: reasons() + f.log_text("qmgr")[-3000:])
    assert "certificate" in reasons().lower() or "NotValidForName" in reasons()
    assert not any(b"needs tls" in m[2] for m in net.peer.messages[n0:])


def test_opportunistic_tls_that_breaks_falls_back_to_clear_text(net, facteur_cleanup):
    f = sender_facteur(net, tail='\n[qmgr.destinations."encbad.test"]\ntls_policy = "encrypt"\n')
    facteur_cleanup.append(f)
    n0 = len(net.peer.messages)
    send(f, ["ok@badtls.test"], "tls may fail")
    send(f, ["ok@encbad.test"], "tls must not fail")

    def delivered(subject):
        return any(subject in m[2] for m in net.peer.messages[n0:])
    wait_for(lambda: delivered(b"tls may fail"), 30,
             lambda: "\n".join(l for l in f.log_text("qmgr").splitlines() if "badtls" in l)[-3000:])
    assert "STARTTLS" in net.peer.commands
    assert "trying again without TLS" in f.log_text("qmgr")
    # Under encrypt the same failure defers: never sent in clear.
    wait_for(lambda: len(queued(f)) == 1 and "4." in f.ctl("queue", "show", queued(f)[0], check=False), 30,
             lambda: f.log_text("qmgr")[-3000:])
    assert not delivered(b"tls must not fail")


def test_queue_commands_on_a_stuck_message(net, facteur_cleanup):
    f = sender_facteur(net)
    facteur_cleanup.append(f)
    send(f, ["someone@tempfail.test"], "stuck")
    send(f, ["other@tempfail.test"], "stuck too", sender="spammer@elsewhere.test")
    tried = lambda: len(queued(f)) == 2 and all("attempts:     0" not in f.ctl("queue", "show", i, check=False) for i in queued(f))
    wait_for(tried, 20, lambda: f.ctl("queue", "list"))
    ids = {}
    for i in queued(f):
        ids["spam" if "spammer" in f.ctl("queue", "show", i, check=False) else "stuck"] = i
    i = ids["stuck"]
    # Read between two attempts (min_backoff 1 s): while one is under way,
    # the last reply reads "[attempt in progress] 451 ...".
    listing = lambda: f.ctl("queue", "list")
    shown = lambda l: i in l and "someone@tempfail.test (deferred: 451 4.2.0" in l and "alice@example.test" in l
    wait_for(lambda: shown(listing()), 20, listing)
    show = f.ctl("queue", "show", i)
    assert "sender:       <alice@example.test>" in show and "Subject: stuck" in show

    assert "held" in f.ctl("queue", "hold", i)
    assert queue_ids(f, "hold") == [i]
    time.sleep(2.5)  # qmgr's scans leave it alone
    assert queue_ids(f, "hold") == [i]
    assert "released" in f.ctl("queue", "release", i)
    wait_for(lambda: i in queued(f), 20, "the released message to be tried and deferred again")
    def attempts():
        lines = [l for l in f.ctl("queue", "show", i, check=False).splitlines() if l.startswith("attempts:")]
        return int(lines[0].split()[1]) if lines else -1

    a0 = attempts()
    f.ctl("queue", "flush", i)
    wait_for(lambda: attempts() > a0 and i in queued(f), 20, "a flushed attempt")
    assert "requeued" in f.ctl("queue", "requeue", i)
    wait_for(lambda: i in queued(f), 20, "the requeued message to be deferred again")
    out = f.ctl("queue", "delete", "--from", "spammer@elsewhere.test")
    assert ids["spam"] in out and "deleted" in out
    assert ids["spam"] not in f.ctl("queue", "list")

    # With qmgr stopped, the commands act on the spool directly.
    f.daemons["qmgr"].terminate()
    f.daemons["qmgr"].wait(15)
    out = f.ctl("queue", "hold", i)
    assert "not running" in out and "held" in out
    assert queue_ids(f, "hold") == [i]
    out = f.ctl("queue", "delete", i)
    assert "deleted (was in hold/)" in out
    assert "Mail queue is empty" in f.ctl("queue", "list")
    log = f.log_text("qmgr")
    assert f"queue_id={i}" in log and "queue command" in log


def test_delay_notice_then_final_bounce(net, facteur_cleanup):
    f = sender_facteur(net, qmgr='delay_warning = "2s"\nmax_lifetime = "7s"')
    facteur_cleanup.append(f)
    send(f, ["late@tempfail.test"], "slow one")
    wait_for(lambda: any("Delayed Mail" in t for t in dsn_texts(f)), 20, lambda: f.log_text("qmgr")[-3000:])
    delayed = [t for t in dsn_texts(f) if "Delayed Mail" in t][0]
    assert "Action: delayed" in delayed and "Will-Retry-Until:" in delayed and "Status: 4.2.0" in delayed
    wait_for(lambda: any("Undelivered Mail" in t for t in dsn_texts(f)), 30, lambda: f.log_text("qmgr")[-3000:])
    final = [t for t in dsn_texts(f) if "Undelivered Mail" in t][0]
    assert "Action: failed" in final and "late@tempfail.test" in final
    assert len([t for t in dsn_texts(f) if "Delayed Mail" in t]) == 1


def test_relayhost_with_auth(net, facteur_cleanup):
    # The relay: another facteur, its submission port (STARTTLS + AUTH).
    relay = Facteur(extra={"smtpd": "enforce_sender_ownership = false"})
    facteur_cleanup.append(relay)
    relay.ctl("domain", "add", "relay.test")
    relay.add_user("dave@relay.test")
    relay.start_all()
    pwfile = relay.root.parent / f"{relay.root.name}-relay-pw"
    pwfile.write_text(f"[127.0.0.1]:{relay.submission_port} demo@example.test {relay.demo_password}\n")
    os.chmod(pwfile, 0o644)
    f = sender_facteur(net, qmgr=f'relayhost = "[127.0.0.1]:{relay.submission_port}"\nrelay_password_file = "{pwfile}"')
    facteur_cleanup.append(f)
    try:
        # A password file others can read is refused, and said so.
        wait_for(lambda: "refusing to use it" in f.log_text("qmgr"), 10, "the refusal in the log")
        send(f, ["dave@relay.test"], "via relay")
        wait_for(lambda: any("4.7.0 relayhost credentials unusable" in f.ctl("queue", "show", i, check=False)
                             for i in queued(f)), 20, lambda: f.ctl("queue", "list") + f.log_text("qmgr")[-2000:])
        # Fixed: mode 0600, SIGHUP (systemctl reload), queue flushed:
        # delivered through the relay, authenticated over TLS.
        os.chmod(pwfile, 0o600)
        f.daemons["qmgr"].send_signal(signal.SIGHUP)
        wait_for(lambda: "relayhost credentials read again" in f.log_text("qmgr"), 10, "the reload in the log")
        f.ctl("queue", "flush")
        wait_for(lambda: len(relay.all_files("dave@relay.test")) == 1, 30,
                 lambda: f.log_text("qmgr")[-3000:] + relay.log_text("smtpd")[-2000:])
        assert b"Subject: via relay" in relay.all_files("dave@relay.test")[0].read_bytes()
        assert "tls=true" in f.log_text("qmgr")
    finally:
        pwfile.unlink(missing_ok=True)


def test_mta_sts_enforce(net, facteur_cleanup):
    f = sender_facteur(net, qmgr=f"mta_sts = true\nmta_sts_https_port = {net.https_port}")
    facteur_cleanup.append(f)
    n0 = len(net.peer.messages)
    send(f, ["bob@sts.test"], "sts ok")
    send(f, ["x@stsbad.test"], "sts refused")
    wait_for(lambda: net.postfix_mail("stsbob"), 30, lambda: f.log_text("qmgr")[-3000:])
    assert b"Subject: sts ok" in net.postfix_mail("stsbob")[0].read_bytes()

    def reasons():
        return "\n".join(f.ctl("queue", "show", i, check=False) for i in queued(f))

    wait_for(lambda: "4.7.5 MTA-STS policy of stsbad.test (enforce) lists none of its MX hosts" in reasons(), 20,
             lambda: reasons() + f.log_text("qmgr")[-3000:])
    assert not any(b"sts refused" in m[2] for m in net.peer.messages[n0:])
    log = f.log_text("qmgr")
    assert "MTA-STS policy fetched" in log and "domain=sts.test" in log and "tls=true" in log
