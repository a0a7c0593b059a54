"""DKIM signatures on facteur's own mail, judged by two implementations
nobody here wrote: a real Postfix with OpenDKIM as its milter (Debian's
packages, private instances on loopback, OpenDKIM resolving through
libunbound forwarded to the test's DNS server) receives what facteur-qmgr
sends and writes its verdict in an Authentication-Results field; Python's
dkimpy verifies every signature of the delivered file against the same
DNS.

Covered: keys made by `facteurctl dkim generate` and published from
`facteurctl dkim dns`; mail submitted by a user (SMTP AUTH), dropped by
sendmail, and qmgr's own bounces leave with an Ed25519 and an RSA
signature that both pass; a
changed body fails; a rotation (`dkim rotate --delay 0`) signs with the new
selectors while mail signed with the old ones still verifies; a stranger's
message forwarded by an alias leaves unsigned, with its envelope sender
rewritten (SRS) into an address of ours, and a bounce to that address goes
back to the stranger while a forged one is refused at RCPT; `dns-records`
prints the keys."""

import email
import os
import re
import shutil
import smtplib
import ssl
import subprocess

import pytest

from dnsserver import DnsServer
from harness import BIN, Facteur, crlf, free_port, wait_for
from postfixpeer import POSTFIX, start_postfix, world_dir

dkim = pytest.importorskip("dkim", reason="dkimpy is not installed (tests/deps installs it)")
dns_resolver = pytest.importorskip("dns.resolver", reason="dnspython is not installed (dkimpy needs it)")
pytest.importorskip("nacl", reason="PyNaCl is not installed (dkimpy needs it for Ed25519; tests/deps installs it)")
OPENDKIM = shutil.which("opendkim") or "/usr/sbin/opendkim"
pytestmark = pytest.mark.skipif(
    not (os.path.exists(POSTFIX) and os.path.exists(OPENDKIM)),
    reason="postfix and opendkim are not installed (.ci/run installs them)")

ALICE = "alice@example.test"
JUDGE = "dkim-judge.test"  # OpenDKIM's authserv-id


def start_opendkim(d, dns_port, milter_port):
    """OpenDKIM in verify mode on 127.0.0.1:milter_port; DNS through
    libunbound, forwarded to the test's server (localhost allowed, and
    `test.`, which unbound answers NXDOMAIN itself by default, RFC 6761)."""
    d.mkdir(parents=True, exist_ok=True)
    (d / "unbound.conf").write_text(f"""server:
    do-not-query-localhost: no
    module-config: "iterator"
    local-zone: "test." nodefault
forward-zone:
    name: "."
    forward-addr: 127.0.0.1@{dns_port}
""")
    (d / "opendkim.conf").write_text(f"""Mode v
Socket inet:{milter_port}@127.0.0.1
AuthservID {JUDGE}
AlwaysAddARHeader yes
ResolverConfiguration {d}/unbound.conf
UserID opendkim
Syslog no
LogWhy yes
""")
    log = open(d / "opendkim.log", "ab")
    p = subprocess.Popen([OPENDKIM, "-f", "-x", str(d / "opendkim.conf")], stdout=log, stderr=subprocess.STDOUT)

    def up():
        import socket
        try:
            socket.create_connection(("127.0.0.1", milter_port), timeout=1).close()
            return True
        except OSError:
            return False

    wait_for(up, 30, "opendkim")
    return p


class World:
    """The DNS server, OpenDKIM and Postfix (bob@judge.test)."""

    def __init__(self, tmp):
        self.port = free_port()
        self.dir = tmp
        self.dns = DnsServer({
            "judge.test": {"MX": [(10, "mx.judge.test")]},
            "mx.judge.test": {"A": ["127.0.0.2"]},
        }).start()
        milter = free_port()
        self.opendkim = start_opendkim(tmp / "opendkim", self.dns.port, milter)
        self.postfix_dir = tmp / "postfix"
        self.postfix = start_postfix(
            self.postfix_dir, self.port, None, vmailbox="bob@judge.test judge/bob/\ncarol@judge.test judge/carol/\n",
            domains="judge.test",
            main_extra=f"smtpd_milters = inet:127.0.0.1:{milter}\nmilter_default_action = tempfail\n")

    def stop(self):
        self.postfix("stop")
        self.opendkim.terminate()
        self.opendkim.wait(timeout=10)
        self.dns.stop()

    def publish(self, zone_text):
        """Serves the TXT records of `facteurctl dkim dns` output."""
        for m in re.finditer(r"^(\S+)\.\s+\d+ IN TXT\s+(.*)$", zone_text, re.M):
            self.dns.set(m.group(1), "TXT", ["".join(re.findall(r'"([^"]*)"', m.group(2)))])

    def mail(self, user="bob"):
        d = self.postfix_dir / "vmail" / "judge" / user / "new"
        return sorted(d.iterdir(), key=lambda p: p.stat().st_mtime) if d.exists() else []

    def wait_mail(self, n, f):
        try:
            wait_for(lambda: len(self.mail()) >= n, 30, f"{n} messages at Postfix")
        except Exception as e:
            raise AssertionError(f"{e}\nqmgr log:\n{f.log_text('qmgr')[-3000:]}\npostfix log:\n"
                                 f"{self.postfix_log()[-3000:]}") from None
        return self.mail()[n - 1].read_bytes()

    def postfix_log(self):
        p = self.postfix_dir / "log" / "postfix.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def dnsfunc(self):
        r = dns_resolver.Resolver(configure=False)
        r.nameservers = ["127.0.0.1"]
        r.port = self.dns.port

        def txt(name, timeout=5):
            try:
                ans = r.resolve(name.decode().rstrip("."), "TXT", lifetime=timeout)
            except Exception:
                return None
            return b"".join(b"".join(rd.strings) for rd in ans)

        return txt


@pytest.fixture(scope="module")
def world():
    with world_dir("fe2e-dkim-") as tmp:
        w = World(tmp)
        yield w
        w.stop()


@pytest.fixture(scope="module")
def f(world):
    # mynetworks is 127.0.0.1 alone here, so another loopback address can
    # play a stranger on the MX listener.
    f = Facteur(extra={"qmgr": f'''dns_servers = ["{world.dns.addr}"]
smtp_port = {world.port}
min_backoff = "1s"
max_backoff = "2s"
scan_interval = "1s"''', "smtpd": 'mynetworks = ["127.0.0.1/32"]'})
    with open(f.config, "a") as c:
        c.write(f'\n[trust]\ndns_servers = ["{world.dns.addr}"]\n')
    f.add_user(ALICE, "alice-pw")
    f.ctl("alias", "add", "fwd@example.test", "bob@judge.test")
    out = f.ctl("dkim", "generate", "example.test")
    assert "ed25519 key, selector" in out and "rsa key, selector" in out, out
    world.publish(f.ctl("dkim", "dns", "example.test"))
    f.start_all()
    yield f
    f.cleanup()


def submit(f, subject, body="Hello from facteur.\n"):
    msg = crlf(f"From: Alice <{ALICE}>\nTo: bob@judge.test\nSubject: {subject}\n\n{body}")
    with smtplib.SMTP("127.0.0.1", f.submission_port, timeout=30) as s:
        s.starttls(context=ssl._create_unverified_context())
        s.login(ALICE, "alice-pw")
        s.sendmail(ALICE, ["bob@judge.test"], msg)


def signatures(raw):
    return [v for k, v in email.message_from_bytes(raw).items() if k.lower() == "dkim-signature"]


def tag(sig, name):
    m = re.search(rf"(?:^|;)\s*{name}=([^;]*)", sig)
    return re.sub(r"\s+", "", m.group(1)) if m else None


def judged(raw):
    """OpenDKIM's verdicts: (result, header.a) per signature."""
    ar = [v for k, v in email.message_from_bytes(raw).items()
          if k.lower() == "authentication-results" and v.strip().startswith(JUDGE)]
    assert ar, raw.decode(errors="replace")[:2000]
    text = " ".join(ar)
    out = []
    for result, rest in re.findall(r"\bdkim=(\w+)(.*?)(?=\bdkim=|\bdkim-atps=|$)", text, re.S):
        a = re.search(r"header\.a=([\w-]+)", rest)
        out.append((result, a.group(1) if a else ""))
    return out


def dkimpy_verdicts(world, raw):
    d = dkim.DKIM(raw)

    def one(i):
        try:
            return d.verify(idx=i, dnsfunc=world.dnsfunc())
        except dkim.ValidationError:  # a body hash mismatch is raised
            return False

    return [one(i) for i in range(len(signatures(raw)))]


def test_submitted_mail_is_signed_twice_and_both_verify(world, f):
    submit(f, "signed")
    raw = world.wait_mail(1, f)
    sigs = signatures(raw)
    algs = sorted(tag(s, "a") for s in sigs)
    assert algs == ["ed25519-sha256", "rsa-sha256"], sigs
    for s in sigs:
        assert tag(s, "d") == "example.test" and tag(s, "c") == "relaxed/relaxed", s
        assert tag(s, "h").lower().split(":").count("from") == 2, s  # oversigned
    # OpenDKIM (through Postfix): both pass.
    verdicts = judged(raw)
    assert [v[0] for v in verdicts] == ["pass", "pass"], verdicts
    assert sorted(v[1] for v in verdicts) == ["ed25519-sha256", "rsa-sha256"], verdicts
    # dkimpy: both pass, and fail once the body changes.
    assert dkimpy_verdicts(world, raw) == [True, True]
    assert dkimpy_verdicts(world, raw.replace(b"Hello from facteur.", b"Hello from someone else.")) == [False, False]


def test_sendmail_mail_is_signed(world, f):
    n = len(world.mail())
    msg = "From: root@example.test\nTo: bob@judge.test\nSubject: from cron\n\nlogwatch says hi\n"
    env = dict(os.environ, FACTEUR_CONFIG=str(f.config))
    r = subprocess.run([str(BIN / "sendmail"), "-t", "-f", "root@example.test"], input=msg.encode(),
                       capture_output=True, env=env, timeout=60)
    assert r.returncode == 0, r
    raw = world.wait_mail(n + 1, f)
    assert len(signatures(raw)) == 2
    assert dkimpy_verdicts(world, raw) == [True, True]
    assert [v[0] for v in judged(raw)] == ["pass", "pass"]


def test_our_bounces_are_signed(world, f):
    n = len(world.mail("carol"))
    msg = "From: carol@judge.test\nTo: nobody@judge.test\nSubject: to nobody\n\nhi\n"
    env = dict(os.environ, FACTEUR_CONFIG=str(f.config))
    r = subprocess.run([str(BIN / "sendmail"), "-f", "carol@judge.test", "nobody@judge.test"], input=msg.encode(),
                       capture_output=True, env=env, timeout=60)
    assert r.returncode == 0, r
    # Postfix refuses nobody@judge.test; qmgr's bounce goes to carol, signed
    # for the domain of its From (MAILER-DAEMON@mail.example.test: the keys
    # of example.test, the parent domain).
    wait_for(lambda: len(world.mail("carol")) > n, 30, "the bounce at carol@judge.test")
    raw = world.mail("carol")[n].read_bytes()
    assert b"multipart/report" in raw and b"nobody@judge.test" in raw, raw[:1500]
    sigs = signatures(raw)
    assert len(sigs) == 2 and all(tag(s, "d") == "example.test" for s in sigs), sigs
    assert dkimpy_verdicts(world, raw) == [True, True]
    assert [v[0] for v in judged(raw)] == ["pass", "pass"]


def test_a_strangers_forwarded_mail_is_not_signed_and_its_sender_rewritten(world, f):
    n = len(world.mail())
    msg = crlf("From: carol@judge.test\nTo: fwd@example.test\nSubject: forwarded\n\nhi\n")
    with smtplib.SMTP("127.0.0.1", f.smtp_port, timeout=30, local_hostname="relay.stranger.test",
                      source_address=("127.0.0.9", 0)) as s:
        s.sendmail("carol@judge.test", ["fwd@example.test"], msg)
    raw = world.wait_mail(n + 1, f)
    assert b"Subject: forwarded" in raw
    assert signatures(raw) == []
    # SRS: the envelope sender Postfix saw is ours, naming carol.
    rp = email.message_from_bytes(raw)["Return-Path"]
    m = re.fullmatch(r"<(SRS0=\w{6}=\w\w=judge\.test=carol@mail\.example\.test)>", rp.strip())
    assert m, rp
    srs = m.group(1)

    # A bounce to it (null sender, from a stranger) goes back to carol.
    n = len(world.mail("carol"))
    bounce = crlf(f"From: MAILER-DAEMON@judge.test\nTo: {srs}\nSubject: Undelivered Mail\n\nbounced\n")
    with smtplib.SMTP("127.0.0.1", f.smtp_port, timeout=30, local_hostname="relay.stranger.test",
                      source_address=("127.0.0.9", 0)) as s:
        s.sendmail("", [srs], bounce)
    wait_for(lambda: len(world.mail("carol")) > n, 30, "the bounce at carol@judge.test")
    got = world.mail("carol")[n].read_bytes()
    assert b"Subject: Undelivered Mail" in got and b"X-Original-To: carol@judge.test" in got, got[:800]
    # A forged or damaged SRS address is refused at RCPT.
    forged = srs.replace("=carol@", "=mallory@")
    with smtplib.SMTP("127.0.0.1", f.smtp_port, timeout=30, local_hostname="relay.stranger.test",
                      source_address=("127.0.0.9", 0)) as s:
        s.ehlo("stranger.test")
        s.mail("")
        code, text = s.rcpt(forged)
        assert code == 550 and b"bad hash" in text, (code, text)


def test_rotation_signs_with_the_new_selectors_and_the_old_still_verify(world, f):
    n = len(world.mail())
    submit(f, "before rotation")
    before = world.wait_mail(n + 1, f)
    old = sorted(tag(s, "s") for s in signatures(before))
    out = f.ctl("dkim", "rotate", "example.test", "--delay", "0", "--retire-after", "1h")
    assert "stay published until" in out, out
    zone = f.ctl("dkim", "dns", "example.test")
    assert len(re.findall(r" IN TXT ", zone)) == 4, zone
    world.publish(zone)
    listing = f.ctl("dkim", "list", "example.test")
    assert len(re.findall(r" signing ", listing)) == 2 and len(re.findall(r" published ", listing)) == 2, listing
    submit(f, "after rotation")
    after = world.wait_mail(n + 2, f)
    new = sorted(tag(s, "s") for s in signatures(after))
    assert len(new) == 2 and not set(new) & set(old), (old, new)
    assert dkimpy_verdicts(world, after) == [True, True]
    assert [v[0] for v in judged(after)] == ["pass", "pass"]
    # The message signed before the rotation still verifies today.
    assert dkimpy_verdicts(world, before) == [True, True]
    # dns-records prints every published key.
    records = f.ctl("dns-records", "example.test", "--ipv4", "192.0.2.1")
    for sel in old + new:
        assert re.search(rf"^{sel}\._domainkey\.example\.test\.\s+3600 IN TXT ", records, re.M), records


def test_dns_records_check_compares_with_what_is_published(world, f):
    world.dns.set("example.test", "MX", [(10, "mail.example.test")])
    world.dns.set("example.test", "TXT", ["v=spf1 a:mail.example.test -all"])
    p = subprocess.run([str(BIN / "facteurctl"), "--config", str(f.config), "dns-records", "example.test",
                        "--ipv4", "127.0.0.1", "--check", "--nameserver", world.dns.addr],
                       capture_output=True, text=True, timeout=60)
    out = p.stdout
    assert p.returncode == 1, (p.returncode, out, p.stderr)
    line = lambda prefix, ty: next(l for l in out.splitlines() if l.startswith(prefix) and f" IN {ty} " in l)
    assert line("example.test.", "MX").endswith("; ok"), out
    assert line("example.test.", "TXT").endswith('; DIFFERENT: published "v=spf1 a:mail.example.test -all"'), out
    assert line("_dmarc.example.test.", "TXT").endswith("; MISSING"), out
    assert line("_imaps._tcp.example.test.", "SRV").endswith("; MISSING"), out
    dkim_lines = [l for l in out.splitlines() if "._domainkey.example.test." in l]
    assert dkim_lines and all(l.endswith("; ok") for l in dkim_lines), out


def test_dkim_commands_refuse_what_they_cannot_do(f):
    out = f.ctl("dkim", "generate", "example.test", check=False)
    assert "already has an ed25519 key" in out and "dkim rotate" in out, out
    out = f.ctl("dkim", "rotate", "nokeys.test", check=False)
    assert "has no keys" in out, out
    out = f.ctl("dkim", "generate", "example.test", "--selector", "x", check=False)
    assert "--algorithm" in out, out
    out = f.ctl("dkim", "generate", "../etc", check=False)
    assert "not a domain name" in out, out
    out = f.ctl("dkim", "dns", "nokeys.test", check=False)
    assert "has no DKIM keys" in out, out


def test_a_list_copy_leaves_signed_with_its_list_fields(world, f):
    # A member's post to a list of ours, copied to a member on another
    # server: signed for the author's domain (ours), List-* fields included
    # in what the signatures cover, both verified by OpenDKIM and dkimpy.
    f.ctl("list", "create", "team@example.test", "--owner", ALICE)
    f.ctl("list", "add", "team@example.test", ALICE, "bob@judge.test")
    n = len(world.mail())
    msg = crlf(f"From: Alice <{ALICE}>\nTo: team@example.test\nSubject: to the list\n\nHello team.\n")
    with smtplib.SMTP("127.0.0.1", f.submission_port, timeout=30) as s:
        s.starttls(context=ssl._create_unverified_context())
        s.login(ALICE, "alice-pw")
        s.sendmail(ALICE, ["team@example.test"], msg)
    raw = world.wait_mail(n + 1, f)
    m = email.message_from_bytes(raw)
    assert m["List-Id"] == "<team.example.test>" and m["Subject"] == "to the list", raw[:1500]
    assert m["Return-Path"] == "<team-bounces@example.test>", m["Return-Path"]
    sigs = signatures(raw)
    assert len(sigs) == 2 and all("list-id" in tag(s, "h").lower() for s in sigs), sigs
    assert dkimpy_verdicts(world, raw) == [True, True]
    assert [v[0] for v in judged(raw)] == ["pass", "pass"]
