"""facteurctl and start-up behaviour: config check, init --dev, users and
domains, `up` restarting a daemon that dies."""

import os
import signal
import smtplib
import stat
import subprocess
import time

from harness import BIN, wait_for


def run(*args, stdin=None):
    return subprocess.run([str(BIN / args[0]), *args[1:]], input=stdin, capture_output=True, text=True, timeout=60)


def test_config_check_and_refusals(facteur):
    cfg = facteur.config
    r = run("facteurctl", "--config", str(cfg), "config", "check")
    assert r.returncode == 0 and "ok" in r.stdout, r
    bad = facteur.root / "bad.toml"
    cases = {
        "[lmtpd]\nmax_conections = 5\n": ["bad.toml", "max_conections", "line 2"],
        "[lmtpd]\nmax_connections = \"many\"\n": ["lmtpd.max_connections"],
        "[lmtpd]\nlisten = [\"localhost\"]\n": ["lmtpd.listen[0]"],
        "[store]\nmail_root = \"relative/mail\"\n": ["store.mail_root", "absolute"],
    }
    for text, expect in cases.items():
        bad.write_text(text)
        r = run("facteurctl", "--config", str(bad), "config", "check")
        assert r.returncode == 78, (text, r)
        for e in expect:
            assert e in r.stderr, (text, e, r.stderr)
        # The daemon refuses to start with the same message.
        r = run("facteur-lmtpd", "--config", str(bad))
        assert r.returncode == 78, (text, r)
        for e in expect:
            assert e in r.stderr, (text, e, r.stderr)
    r = run("facteurctl", "--config", str(facteur.root / "missing.toml"), "config", "check")
    assert r.returncode == 78 and "missing.toml" in r.stderr and "cannot read" in r.stderr


def test_init_dev(facteur):
    root = facteur.root
    pw = (root / "demo-password").read_text().strip()
    assert pw == facteur.demo_password and len(pw) >= 16
    assert stat.S_IMODE(os.stat(root / "demo-password").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(root / "tls" / "key.pem").st_mode) == 0o600
    assert (root / "tls" / "cert.pem").read_text().startswith("-----BEGIN CERTIFICATE-----")
    cfg = (root / "facteur.toml").read_text()
    assert "127.0.0.1" in cfg and "0.0.0.0" not in cfg
    assert (root / "mail" / "example.test" / "demo" / "new").is_dir()
    assert (root / "mail" / "example.test" / "demo" / ".Sent" / "cur").is_dir()
    out = facteur.ctl("user", "list")
    assert "demo@example.test" in out
    # A second init refuses to overwrite.
    r = run("facteurctl", "init", "--dev", str(root))
    assert r.returncode != 0 and "already exists" in r.stderr


def test_users_domains_aliases(facteur):
    f = facteur
    f.ctl("domain", "add", "second.test")
    assert "second.test" in f.ctl("domain", "list")
    f.add_user("Zoe@Second.test", "s3cret", "--quota", "10M", "--quota-messages", "100")
    out = f.ctl("user", "list", "second.test")
    assert "zoe@second.test" in out and str(10 * 1024 * 1024) in out
    # Duplicate user, unknown domain, empty password: refused.
    r = f.ctl("user", "add", "zoe@second.test", stdin="x\n", check=False)
    assert "exists" in r.lower()
    r = f.ctl("user", "add", "x@nowhere.test", stdin="x\n", check=False)
    assert "nowhere.test" in r
    r = f.ctl("user", "add", "y@second.test", stdin="\n", check=False)
    assert "empty password" in r
    # A domain with users cannot be deleted.
    r = f.ctl("domain", "del", "second.test", check=False)
    assert "second.test" in r and "deleted" not in r
    f.ctl("alias", "add", "all@second.test", "zoe@second.test", "demo@example.test")
    out = f.ctl("alias", "list")
    assert "all@second.test" in out and "zoe@second.test" in out and "demo@example.test" in out
    # Deleting a user keeps the mail unless --purge.
    md = f.maildir("zoe@second.test")
    assert md.is_dir()
    f.ctl("user", "del", "zoe@second.test")
    assert md.is_dir()
    f.add_user("zoe@second.test", "again")
    f.ctl("user", "del", "zoe@second.test", "--purge")
    assert not md.exists()


def test_users_moved_in_with_their_password_hashes(facteur):
    """`user add --hash` and `user import` of a Dovecot passwd-file: each
    user logs in over IMAP with the password they had (hashes made by
    openssl and Python's crypt-compatible forms, not by facteur)."""
    import imaplib
    f = facteur
    f.ctl("config", "check")
    sha512 = subprocess.run(["openssl", "passwd", "-6", "old-secret"], capture_output=True, text=True,
                            check=True).stdout.strip()
    f.ctl("user", "add", "moved@example.test", "--hash", "{SHA512-CRYPT}" + sha512)
    passwd = f.root / "users.passwd"
    sha256 = subprocess.run(["openssl", "passwd", "-5", "pw-two"], capture_output=True, text=True,
                            check=True).stdout.strip()
    passwd.write_text(
        "# from Dovecot\n"
        f"one@example.test:{{SHA512-CRYPT}}{sha512}::::::userdb_quota_rule=*:storage=1G\n"
        f"two:{{SHA256-CRYPT}}{sha256}:1000:1000::/home/two::\n"
        "\n"
        f"moved@example.test:{{PLAIN}}other::::::\n")
    out = f.ctl("user", "import", str(passwd), "--domain", "example.test")
    assert "2 users added, 1 left alone" in out, out
    assert str(1024 ** 3) in f.ctl("user", "list", "example.test")
    r = f.ctl("user", "add", "bad@example.test", "--hash", "{MD5}nonsense", check=False)
    assert "no scheme" in r, r
    from harness import set_key
    f.config.write_text(set_key(f.config.read_text(), "imapd", "allow_plaintext_auth_on_loopback = true"))
    f.start("imapd")
    for user, pw in (("moved@example.test", "old-secret"), ("one@example.test", "old-secret"),
                     ("two@example.test", "pw-two")):
        with imaplib.IMAP4("127.0.0.1", f.imap_port) as m:
            m.login(user, pw)
            assert m.select("INBOX")[0] == "OK"


def test_up_runs_and_restarts_lmtpd(facteur):
    f = facteur
    up = subprocess.Popen([str(BIN / "facteurctl"), "up", "--config", str(f.config)], stdout=f.log, stderr=f.log)
    try:
        wait_for(lambda: f._tcp_up(), 20, "lmtpd under facteurctl up")
        pid = int(subprocess.run(["pgrep", "-f", f"facteur-lmtpd --config {f.config}"], capture_output=True, text=True).stdout.split()[0])
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.5)
        wait_for(lambda: f._tcp_up(), 20, "lmtpd restarted")
        c = smtplib.LMTP("127.0.0.1", f.lmtp_port)
        c.ehlo()
        c.mail("s@remote.test")
        assert c.rcpt("demo@example.test")[0] == 250
        assert c.data(b"Subject: up\r\n\r\nhi\r\n")[0] == 250
        c.quit()
        assert "restart" in f.log_text()
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(30)
    assert up.returncode == 0
    # Everything stopped with it.
    r = subprocess.run(["pgrep", "-f", f"facteur-lmtpd --config {f.config}"], capture_output=True)
    assert r.returncode == 1


def test_up_stops_when_a_daemon_cannot_bind(facteur):
    # An address already in use: `up` stops with smtpd's error instead of
    # restarting it every few seconds for ever.
    import socket
    from harness import set_key
    f = facteur
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        f.config.write_text(set_key(f.config.read_text(), "smtpd", f'mx = ["127.0.0.1:{port}"]'))
        started = time.monotonic()
        r = subprocess.run([str(BIN / "facteurctl"), "up", "--config", str(f.config)],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode != 0, r
        assert f"cannot listen on 127.0.0.1:{port}" in r.stderr, r.stderr
        assert "facteur-smtpd could not start" in r.stderr, r.stderr
        assert "restarting" not in r.stderr, r.stderr
        assert time.monotonic() - started < 60
        # What had started before it is stopped again.
        assert subprocess.run(["pgrep", "-f", f"facteur-lmtpd --config {f.config}"]).returncode == 1
    finally:
        taken.close()


def test_init_port_base_moves_every_port(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for d, base in ((a, "2000"), (b, "3100")):
        r = run("facteurctl", "init", "--dev", str(d), "--port-base", base)
        assert r.returncode == 0, r
    ta, tb = (a / "facteur.toml").read_text(), (b / "facteur.toml").read_text()
    for port in (2525, 2587, 2465, 2143, 2993, 2110, 2995, 2024, 24190):
        assert f"127.0.0.1:{port}\"" in ta, port
        assert f"127.0.0.1:{port + 1100}\"" in tb, port + 1100
    r = run("facteurctl", "--config", str(b / "facteur.toml"), "config", "check")
    assert r.returncode == 0, r
    r = run("facteurctl", "init", "--dev", str(tmp_path / "c"), "--port-base", "65000")
    assert r.returncode != 0 and "65535" in r.stderr, r
