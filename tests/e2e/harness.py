"""Helpers for facteur's end-to-end tests: build paths, a temporary facteur
installation made with the real `facteurctl init --dev`, and the real daemons
started on free loopback ports.

Every test gets its own root under /tmp (mode 0755 so that Postfix's
unprivileged processes can reach the LMTP socket) and stops what it started.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("FACTEUR_BIN", REPO / "target" / "debug"))


_GIVEN_PORTS = set()


def free_port():
    """A port free on 127.0.0.1 now, never one this process handed out
    before: the kernel may give the same ephemeral port to two binds in a
    row once the first socket is closed (two listeners of one config then
    collide, and `config check` refuses it)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _GIVEN_PORTS:
            _GIVEN_PORTS.add(port)
            return port


def wait_for(pred, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what() if callable(what) else what}")


def set_key(cfg, section, line):
    """Sets `key = value` in [section] of a TOML text: replaces the key if the
    section has it, else adds it right after the section header."""
    key = line.split("=")[0].strip()
    head = f"[{section}]\n"
    start = cfg.index(head) + len(head)
    nxt = cfg.find("\n[", start)
    end = len(cfg) if nxt < 0 else nxt + 1
    body = cfg[start:end]
    new, n = re.subn(rf"(?m)^{re.escape(key)}\s*=.*$", line, body)
    if n == 0:
        new = line + "\n" + body
    return cfg[:start] + new + cfg[end:]


def crlf(text):
    """A message in network form from a readable Python string."""
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")


class Facteur:
    """A facteur installation under a fresh directory, set up by the real
    `facteurctl init --dev` and adapted to free ports."""

    def __init__(self, extra_lmtpd="", extra=None):
        self.root = Path(tempfile.mkdtemp(prefix="fe2e-", dir="/tmp"))
        os.chmod(self.root, 0o755)
        self.procs = []
        out = self.ctl("init", "--dev", str(self.root))
        m = re.search(r"password:\s+(\S+)", out)
        assert m, out
        self.demo_password = m.group(1)
        self.lmtp_port = free_port()
        self.smtp_port, self.submission_port, self.submissions_port = free_port(), free_port(), free_port()
        cfg = (self.root / "facteur.toml").read_text()
        self.pop3_port, self.pop3s_port = free_port(), free_port()
        cfg = re.sub(r'listen = \["127\.0\.0\.1:\d+"\]', f'listen = ["127.0.0.1:{self.lmtp_port}"]', cfg)
        cfg = set_key(cfg, "pop3d", f'listen = ["127.0.0.1:{self.pop3_port}"]')
        cfg = re.sub(r'\nlisten_tls = \["127\.0\.0\.1:\d+"\]', f'\nlisten_tls = ["127.0.0.1:{self.pop3s_port}"]', cfg)
        cfg = re.sub(r'\nmx = \["127\.0\.0\.1:\d+"\]', f'\nmx = ["127.0.0.1:{self.smtp_port}"]', cfg)
        cfg = re.sub(r'\nsubmission = \["127\.0\.0\.1:\d+"\]', f'\nsubmission = ["127.0.0.1:{self.submission_port}"]', cfg)
        cfg = re.sub(r'\nsubmissions = \["127\.0\.0\.1:\d+"\]', f'\nsubmissions = ["127.0.0.1:{self.submissions_port}"]', cfg)
        # The patterns above also hit [imapd]: give it its own ports.
        self.imap_port, self.imaps_port = free_port(), free_port()
        cfg = set_key(cfg, "pop3d", f'listen_tls = ["127.0.0.1:{self.pop3s_port}"]')
        cfg = set_key(cfg, "imapd", f'listen = ["127.0.0.1:{self.imap_port}"]')
        cfg = set_key(cfg, "imapd", f'listen_tls = ["127.0.0.1:{self.imaps_port}"]')
        cfg = cfg.replace('socket_mode = "0660"', 'socket_mode = "0666"')
        # Remote delivery never asks the system's resolver in tests: a
        # closed loopback port answers nothing (tests that deliver remotely
        # point this at their own DNS server).
        cfg = set_key(cfg, "qmgr", 'dns_servers = ["127.0.0.1:9"]')
        extra = dict(extra or {})
        if extra_lmtpd:
            extra["lmtpd"] = extra_lmtpd
        for section, lines in extra.items():
            for line in lines.strip().splitlines():
                cfg = set_key(cfg, section, line)
        (self.root / "facteur.toml").write_text(cfg)
        self.config = self.root / "facteur.toml"
        self.socket = self.root / "run" / "lmtp.sock"
        self.log = open(self.root / "lmtpd.log", "ab")
        self.logs = {"lmtpd": self.log}
        self.daemons = {}

    # --- administration -------------------------------------------------
    def ctl(self, *args, stdin=None, check=True):
        cmd = [str(BIN / "facteurctl")]
        if args and args[0] != "init":
            cmd += ["--config", str(self.root / "facteur.toml")]
        cmd += list(args)
        p = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=60)
        if check and p.returncode != 0:
            raise AssertionError(f"{cmd} failed ({p.returncode}): {p.stdout}{p.stderr}")
        return p.stdout + p.stderr

    def add_user(self, address, password="pw-secret", *opts):
        return self.ctl("user", "add", address, *opts, stdin=password + "\n")

    # --- daemons ----------------------------------------------------------
    def start_lmtpd(self):
        p = subprocess.Popen(
            [str(BIN / "facteur-lmtpd"), "--config", str(self.config)],
            stdout=self.log,
            stderr=self.log,
        )
        self.procs.append(p)
        self.lmtpd = p
        wait_for(lambda: self.socket.exists() and self._tcp_up(), 20, "facteur-lmtpd to listen")
        return p

    def start(self, name):
        """Starts facteur-<name> and waits until it is ready."""
        if name == "lmtpd":
            p = self.start_lmtpd()
            self.daemons[name] = p
            return p
        log = self.logs.setdefault(name, open(self.root / f"{name}.log", "ab"))
        p = subprocess.Popen([str(BIN / f"facteur-{name}"), "--config", str(self.config)], stdout=log, stderr=log)
        self.procs.append(p)
        self.daemons[name] = p
        if name == "smtpd":
            wait_for(lambda: p.poll() is not None or self._tcp_up(self.smtp_port), 20, "facteur-smtpd to listen")
        elif name == "imapd":
            wait_for(lambda: p.poll() is not None or (self._tcp_up(self.imap_port) and self._tcp_up(self.imaps_port, tls=True)), 20, "facteur-imapd to listen")
        elif name == "pop3d":
            wait_for(lambda: p.poll() is not None or (self._tcp_up(self.pop3_port) and self._tcp_up(self.pop3s_port, tls=True)), 20, "facteur-pop3d to listen")
        elif name == "qmgr":
            wait_for(lambda: p.poll() is not None or (self.root / "run" / "qmgr.sock").exists(), 20, "facteur-qmgr to start")
        assert p.poll() is None, self.log_text(name)
        return p

    def start_all(self):
        for n in ("lmtpd", "qmgr", "smtpd"):
            self.start(n)

    def _tcp_up(self, port=None, tls=False):
        """Whether something listens on `port` (TLS: merely accepts; the
        server speaks first only after the handshake)."""
        try:
            with socket.create_connection(("127.0.0.1", port or self.lmtp_port), timeout=1) as s:
                if not tls:
                    s.recv(100)
            return True
        except OSError:
            return False

    def kill9(self, p):
        p.send_signal(signal.SIGKILL)
        p.wait(10)

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)
        for l in self.logs.values():
            l.close()

    def cleanup(self):
        self.stop()
        if os.environ.get("FACTEUR_KEEP") is None:
            shutil.rmtree(self.root, ignore_errors=True)

    # --- the mail store -----------------------------------------------------
    def maildir(self, address, folder=""):
        local, domain = address.split("@")
        d = self.root / "mail" / domain.lower() / local.lower()
        return d / folder if folder else d

    def new_files(self, address):
        d = self.maildir(address) / "new"
        return sorted(d.iterdir()) if d.exists() else []

    def log_text(self, name="lmtpd"):
        if name in self.logs:
            self.logs[name].flush()
        p = self.root / f"{name}.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def all_files(self, address):
        """Message files of a mailbox's INBOX, new/ and cur/."""
        md = self.maildir(address)
        out = []
        for sub in ("new", "cur"):
            d = md / sub
            if d.exists():
                out += sorted(d.iterdir())
        return out


def strip_added_headers(stored):
    """Removes the Return-Path: and Delivered-To: lines lmtpd adds, and checks
    that they are there."""
    lines = stored.split(b"\n", 2)
    assert lines[0].startswith(b"Return-Path: <"), stored[:200]
    assert lines[1].startswith(b"Delivered-To: "), stored[:200]
    return lines[2]


def as_stored(network_form):
    """What the Maildir file holds for a message sent in network form: LF
    line endings (the store converts CRLF, reversibly)."""
    return network_form.replace(b"\r\n", b"\n")
