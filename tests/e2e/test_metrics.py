"""Every daemon's Prometheus endpoint (`[metrics] listen`), read with a
parser nobody here wrote (`prometheus_client`'s text parser): before any
traffic, the series exist at zero; after a scripted day of traffic (mail
over MX and submission, unknown recipients, logins right and wrong over
SMTP, IMAP and POP3, IMAP and POP3 commands), the counters equal what the
test sent and what was refused."""

import imaplib
import poplib
import smtplib
import socket
import urllib.request

import pytest

from harness import Facteur, crlf, wait_for

parser = pytest.importorskip("prometheus_client.parser",
                             reason="prometheus_client is not installed (tests/deps installs it)")

ALICE, PASSWORD = "alice@example.test", "pw-secret"
DAEMONS = ["smtpd", "qmgr", "lmtpd", "imapd", "pop3d", "managesieved"]


@pytest.fixture(scope="module")
def site():
    f = Facteur(extra={
        "smtpd": "allow_plaintext_auth_on_loopback = true",
        "imapd": "allow_plaintext_auth_on_loopback = true",
        "pop3d": "allow_plaintext_auth_on_loopback = true",
        "qmgr": 'scan_interval = "1s"',
    })
    with open(f.config, "a") as c:
        c.write('\n[metrics]\nlisten = "127.0.0.1:0"\n')
    f.add_user(ALICE, PASSWORD)
    for d in DAEMONS:
        f.start(d)
    yield f
    f.cleanup()


def scrape(f, daemon):
    """{(name, frozenset(labels)): value} of every sample."""
    addr = (f.root / "run" / f"facteur-{daemon}.metrics").read_text().split()[1]
    text = urllib.request.urlopen(f"http://{addr}/metrics", timeout=10).read().decode()
    out = {}
    for fam in parser.text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(samples, name, **labels):
    key = (name, frozenset(labels.items()))
    assert key in samples, f"{name}{labels} missing; have: " + ", ".join(
        sorted(f"{n}{dict(l)}" for n, l in samples if n == name)[:40])
    return samples[key]


def test_series_exist_at_zero_before_any_traffic(site):
    for d in DAEMONS:
        s = scrape(site, d)
        info = [dict(l) for (n, l) in s if n == "facteur_build_info"]
        assert info and info[0]["daemon"] == f"facteur-{d}" and info[0]["revision"], info
    smtpd = scrape(site, "smtpd")
    assert value(smtpd, "facteur_smtp_messages_total", listener="mx") == 0
    assert value(smtpd, "facteur_smtp_rejects_total", listener="mx", stage="rcpt", code="5.1.1") == 0
    assert value(smtpd, "facteur_logins_total", mechanism="PLAIN", result="failure") == 0
    assert value(smtpd, "facteur_tls_sessions_total", version="TLSv1.3") == 0
    assert value(smtpd, "facteur_auth_results_total", method="dmarc", result="pass") == 0
    qmgr = scrape(site, "qmgr")
    assert value(qmgr, "facteur_deliveries_total", **{"class": "local", "result": "delivered"}) == 0
    assert value(qmgr, "facteur_queue_messages", queue="deferred") == 0
    assert value(qmgr, "facteur_dsn_total", kind="bounce") == 0
    lmtpd = scrape(site, "lmtpd")
    assert value(lmtpd, "facteur_lmtp_deliveries_total", result="over_quota") == 0
    assert value(lmtpd, "facteur_sieve_actions_total", action="fileinto") == 0
    imapd = scrape(site, "imapd")
    assert value(imapd, "facteur_commands_total", command="SELECT", result="ok") == 0
    assert value(imapd, "facteur_sessions_active", listener="imap") == 0
    pop3d = scrape(site, "pop3d")
    assert value(pop3d, "facteur_commands_total", command="RETR", result="ok") == 0
    sieve = scrape(site, "managesieved")
    assert value(sieve, "facteur_commands_total", command="PUTSCRIPT", result="ok") == 0


def message(subject):
    return crlf(f"From: bob@example.test\nTo: {ALICE}\nSubject: {subject}\n\nHello.\n")


def test_a_day_of_traffic_is_counted_exactly(site):
    before = {d: scrape(site, d) for d in DAEMONS}
    # Five messages over MX, two recipients unknown.
    with smtplib.SMTP("127.0.0.1", site.smtp_port, timeout=30) as s:
        for i in range(5):
            s.sendmail("bob@example.test", [ALICE], message(f"mx {i}"))
        for who in ("nobody@example.test", "ghost@example.test"):
            with pytest.raises(smtplib.SMTPRecipientsRefused):
                s.sendmail("bob@example.test", [who], message("lost"))
    # One message over submission, and a wrong password first.
    with smtplib.SMTP("127.0.0.1", site.port("submission"), timeout=30) as s:
        with pytest.raises(smtplib.SMTPAuthenticationError):
            s.login(ALICE, "wrong")
    with smtplib.SMTP("127.0.0.1", site.port("submission"), timeout=30) as s:
        s.login(ALICE, PASSWORD)
        s.sendmail(ALICE, [ALICE], message("submitted"))
    wait_for(lambda: len(site.all_files(ALICE)) >= 6, 30, "six messages delivered")
    # IMAP: a failed login, then a session.
    with imaplib.IMAP4("127.0.0.1", site.imap_port) as m:
        with pytest.raises(imaplib.IMAP4.error):
            m.login(ALICE, "wrong")
    with imaplib.IMAP4("127.0.0.1", site.imap_port) as m:
        m.login(ALICE, PASSWORD)
        m.select("INBOX")
        m.fetch("1:*", "(FLAGS)")
        assert m.select("Nosuchfolder")[0] == "NO"
        m.logout()
    # POP3.
    p = poplib.POP3("127.0.0.1", site.pop3_port, timeout=30)
    p.user(ALICE)
    p.pass_(PASSWORD)
    p.stat()
    p.retr(1)
    p.quit()
    # ManageSieve: CAPABILITY, a command before login (NO), LOGOUT.
    with socket.create_connection(("127.0.0.1", site.sieve_port), timeout=30) as s:
        f = s.makefile("rb")

        def until_done():
            while True:
                line = f.readline()
                assert line, "connection closed"
                if line.startswith((b"OK", b"NO", b"BYE")):
                    return line
        until_done()
        s.sendall(b"CAPABILITY\r\n")
        assert until_done().startswith(b"OK")
        s.sendall(b"LISTSCRIPTS\r\n")
        assert until_done().startswith(b"NO")
        s.sendall(b"LOGOUT\r\n")
        assert until_done().startswith(b"OK")

    def grew(daemon, name, **labels):
        after = scrape(site, daemon)
        return value(after, name, **labels) - value(before[daemon], name, **labels)

    assert grew("smtpd", "facteur_smtp_messages_total", listener="mx") == 5
    assert grew("smtpd", "facteur_smtp_messages_total", listener="submission") == 1
    assert grew("smtpd", "facteur_smtp_message_size_bytes_count", listener="mx") == 5
    assert grew("smtpd", "facteur_smtp_rejects_total", listener="mx", stage="rcpt", code="5.1.1") == 2
    assert grew("smtpd", "facteur_logins_total", mechanism="PLAIN", result="success") == 1
    assert grew("smtpd", "facteur_logins_total", mechanism="PLAIN", result="failure") == 1
    assert grew("qmgr", "facteur_deliveries_total", **{"class": "local", "result": "delivered"}) == 6
    assert grew("qmgr", "facteur_delivery_duration_seconds_count", **{"class": "local"}) >= 1
    assert grew("lmtpd", "facteur_lmtp_deliveries_total", result="delivered") == 6
    assert grew("imapd", "facteur_logins_total", mechanism="password", result="failure") == 1
    assert grew("imapd", "facteur_logins_total", mechanism="password", result="success") == 1
    assert grew("imapd", "facteur_commands_total", command="SELECT", result="ok") == 1
    assert grew("imapd", "facteur_commands_total", command="SELECT", result="no") == 1
    assert grew("imapd", "facteur_commands_total", command="FETCH", result="ok") == 1
    assert grew("imapd", "facteur_command_duration_seconds_count", command="FETCH") == 1
    assert grew("pop3d", "facteur_commands_total", command="STAT", result="ok") == 1
    assert grew("pop3d", "facteur_commands_total", command="RETR", result="ok") == 1
    assert grew("pop3d", "facteur_logins_total", mechanism="password", result="success") == 1
    assert grew("managesieved", "facteur_commands_total", command="CAPABILITY", result="ok") == 1
    assert grew("managesieved", "facteur_commands_total", command="LISTSCRIPTS", result="no") == 1
    assert grew("managesieved", "facteur_commands_total", command="LOGOUT", result="ok") == 1
    after = scrape(site, "qmgr")
    assert value(after, "facteur_queue_messages", queue="active") == 0
    assert value(after, "facteur_queue_oldest_seconds", queue="deferred") == 0
    # Sessions end: nothing stays counted as active.
    wait_for(lambda: value(scrape(site, "imapd"), "facteur_sessions_active", listener="imap") == 0, 10,
             "IMAP sessions to end")


def test_only_metrics_is_served(site):
    addr = (site.root / "run" / "facteur-smtpd.metrics").read_text().split()[1]
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(f"http://{addr}/", timeout=10)
    assert e.value.code == 404


def test_the_grafana_dashboard_uses_names_the_daemons_export(site):
    import json
    import re
    from harness import REPO
    dash = json.loads((REPO / "packaging" / "grafana" / "facteur.json").read_text())
    used = set()
    for p in dash["panels"]:
        for t in p["targets"]:
            used |= {re.sub(r"_(bucket|sum|count)$", "", n) for n in re.findall(r"facteur_[a-z_]+", t["expr"])}
    exported = set()
    for d in DAEMONS:
        # Families, even those without a series here (no scanner is on).
        addr = (site.root / "run" / f"facteur-{d}.metrics").read_text().split()[1]
        text = urllib.request.urlopen(f"http://{addr}/metrics", timeout=10).read().decode()
        exported |= set(re.findall(r"^# TYPE (\S+)", text, re.M))
    missing = sorted(n for n in used if n not in exported)
    assert not missing, missing


def test_stats_and_report_count_the_same_day(site):
    """`facteurctl stats` and `report` read the daemons' log lines (here
    the development log files): the day of test_a_day_of_traffic_... —
    6 messages received from example.test and delivered to alice's
    mailbox, 2 recipients refused."""
    import json
    import time as _time
    day = _time.strftime("%Y-%m-%d", _time.gmtime())
    hour = _time.strftime("%Y-%m-%d %H:00", _time.gmtime())
    stats = lambda *a: json.loads(site.ctl("stats", "--dir", str(site.root), "--format", "json", *a))
    rows = {r["key"]: r for r in stats("--by", "sender-domain")}
    assert rows["example.test"]["received"] == 6 and rows["example.test"]["delivered"] == 6, rows
    rows = {r["key"]: r for r in stats("--by", "mailbox")}
    assert rows[ALICE]["delivered"] == 6, rows
    rows = {r["key"]: r for r in stats("--by", "day")}
    assert rows[day]["received"] == 6 and rows[day]["rejected"] == 2, rows
    rows = stats("--by", "hour")
    assert sum(r["received"] for r in rows) == 6 and hour in {r["key"] for r in rows}
    rows = {r["key"]: r for r in stats("deliverability")}
    assert rows["example.test"]["delivered"] == 6 and rows["example.test"]["bounced"] == 0, rows
    csv = site.ctl("stats", "--dir", str(site.root), "--by", "total", "--format", "csv")
    assert csv.splitlines()[1].startswith("total,6,"), csv
    report = site.ctl("report", "--dir", str(site.root), "--day", day)
    assert "received          6" in report and "delivered         6" in report, report
    assert "rejected          2" in report and "550 5.1.1" in report, report
    assert "example.test" in report
