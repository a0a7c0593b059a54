"""facteur-managesieved with real clients: sieve-connect (Debian's package,
over STARTTLS with PLAIN) and Python's sievelib (the library Roundcube-like
tools use): upload, list, activate, download, check and delete scripts; a
script that does not compile is refused; the active script then filters
delivery in facteur-lmtpd. Bad input: a giant literal, commands before
login, garbage."""

import os
import socket
import subprocess

import pytest
from sievelib.managesieve import Client

from harness import Facteur, wait_for

ALICE, PW = "alice@example.test", "pw-secret"

RULES = 'require ["fileinto", "mailbox"];\r\nif header :contains "subject" "report" { fileinto :create "Reports"; }\r\n'


@pytest.fixture
def ms():
    f = Facteur(extra={"managesieved": "allow_plaintext_auth_on_loopback = true",
                       "sieve": 'max_script_size = "64K"'})
    try:
        f.add_user(ALICE, PW)
        f.start("lmtpd")
        f.start("managesieved")
    except BaseException:
        f.cleanup()
        raise
    yield f
    f.cleanup()


def sieve_connect(f, *args, stdin=None):
    """Runs sieve-connect with the password on a pipe, over STARTTLS."""
    r_fd, w_fd = os.pipe()
    os.write(w_fd, PW.encode() + b"\n")
    os.close(w_fd)
    try:
        return subprocess.run(
            ["sieve-connect", "--server", "127.0.0.1", "--port", str(f.sieve_port), "--user", ALICE,
             "--passwordfd", str(r_fd), "--notlsverify", "--authmech", "PLAIN", *args],
            input=stdin, capture_output=True, text=True, timeout=60, pass_fds=(r_fd,))
    finally:
        os.close(r_fd)


def test_sieve_connect_over_starttls(ms, tmp_path):
    f = ms
    script = tmp_path / "rules.sieve"
    script.write_text(RULES)
    r = sieve_connect(f, "--upload", "--localsieve", str(script), "--remotesieve", "rules")
    assert r.returncode == 0, r.stdout + r.stderr
    r = sieve_connect(f, "--activate", "--remotesieve", "rules")
    assert r.returncode == 0, r.stdout + r.stderr
    r = sieve_connect(f, "--list")
    assert r.returncode == 0 and "rules" in r.stdout and "ACTIVE" in r.stdout.upper(), r.stdout + r.stderr
    back = tmp_path / "back.sieve"
    r = sieve_connect(f, "--download", "--remotesieve", "rules", "--localsieve", str(back))
    assert r.returncode == 0, r.stdout + r.stderr
    assert back.read_bytes() == script.read_bytes()
    # the script filters delivery now
    import smtplib
    with smtplib.LMTP(str(f.socket)) as c:
        c.sendmail("robot@example.net", [ALICE], b"Subject: daily report\r\n\r\nnumbers\r\n")
    wait_for(lambda: any((f.maildir(ALICE) / ".Reports" / d).exists() and any((f.maildir(ALICE) / ".Reports" / d).iterdir())
                         for d in ("new", "cur")), 20, "the report filed by the uploaded script")


def test_sievelib_session(ms):
    f = ms
    c = Client("127.0.0.1", f.sieve_port)
    assert c.connect(ALICE, PW, starttls=False, authmech="PLAIN")
    assert c.putscript("first", RULES)
    assert c.putscript("second", "keep;\r\n")
    assert c.setactive("second")
    active, others = c.listscripts()
    assert active == "second" and others == ["first"], (active, others)
    # sievelib joins the lines its own way; the stored bytes are exact
    assert c.getscript("first").replace("\r\n", "\n").strip() == RULES.replace("\r\n", "\n").strip()
    assert (f.maildir(ALICE) / "sieve" / "first.sieve").read_bytes() == RULES.encode()
    assert c.checkscript("discard;\r\n")
    assert not c.checkscript("fileinto \"x\";\r\n")  # fileinto without require
    assert not c.putscript("broken", "if true {\r\n")
    assert c.errmsg and b"line" in c.errmsg, c.errmsg
    assert not c.deletescript("second"), "the active script cannot be deleted"
    assert c.renamescript("first", "renamed")
    assert c.deletescript("renamed")
    assert c.havespace("x", 1000)
    assert not c.havespace("x", 10_000_000)
    c.logout()


def test_bad_input(ms):
    f = ms
    with socket.create_connection(("127.0.0.1", f.sieve_port), timeout=20) as s:
        r = s.makefile("rb")

        def final():
            while True:
                line = r.readline()
                assert line, "the server closed"
                if line.startswith((b"OK", b"NO", b"BYE")):
                    return line

        assert final().startswith(b"OK")
        s.sendall(b"LISTSCRIPTS\r\n")
        assert final().startswith(b"NO")
        # a literal far over max_script_size is refused and skipped; the
        # session goes on
        big = 200_000
        s.sendall(b'PUTSCRIPT "big" {%d+}\r\n' % big + b"#" * big + b"\r\n")
        assert final().startswith(b"NO (QUOTA/MAXSIZE)")
        s.sendall(b"\x01\x02 garbage\r\nCAPABILITY\r\n")
        assert final().startswith(b"NO")
        assert final().startswith(b"OK")
        s.sendall(b"LOGOUT\r\n")
        assert final().startswith(b"OK")
