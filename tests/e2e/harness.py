"""Helpers for facteur's end-to-end tests: build paths, a temporary facteur
installation made with the real `facteurctl init --dev`, and the real daemons
started on loopback with every listener on port 0: each daemon publishes the
ports it was given (run/facteur-<daemon>.listen) and the harness reads them.

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
    """A port free on 127.0.0.1 now, for peers that must be told their port
    before they start (Postfix's master); never one this process handed out
    before (the kernel may give the same ephemeral port to two binds in a
    row once the first socket is closed). facteur's own daemons bind port 0
    instead."""
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
    section has it, else adds it right after the section header (and the
    section at the end when there is none)."""
    key = line.split("=")[0].strip()
    head = f"[{section}]\n"
    if head not in cfg:
        return cfg.rstrip("\n") + f"\n\n{head}{line}\n"
    start = cfg.index(head) + len(head)
    nxt = cfg.find("\n[", start)
    end = len(cfg) if nxt < 0 else nxt + 1
    body = cfg[start:end]
    new, n = re.subn(rf"(?m)^{re.escape(key)}\s*=.*$", line, body)
    if n == 0:
        new = line + "\n" + body
    return cfg[:start] + new + cfg[end:]


# Listener name (as published) -> (config section, key).
LISTENERS = {
    "lmtp": ("lmtpd", "listen"),
    "mx": ("smtpd", "mx"),
    "submission": ("smtpd", "submission"),
    "submissions": ("smtpd", "submissions"),
    "pop3": ("pop3d", "listen"),
    "pop3s": ("pop3d", "listen_tls"),
    "imap": ("imapd", "listen"),
    "imaps": ("imapd", "listen_tls"),
    "sieve": ("managesieved", "listen"),
}
DAEMON_OF = {"lmtp": "lmtpd", "mx": "smtpd", "submission": "smtpd", "submissions": "smtpd",
             "pop3": "pop3d", "pop3s": "pop3d", "imap": "imapd", "imaps": "imapd",
             "sieve": "managesieved"}


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
        # Every listener on port 0: each daemon binds a port the system
        # chooses and publishes it in run/facteur-<daemon>.listen, which
        # the *_port properties below read (no port is guessed here).
        cfg = (self.root / "facteur.toml").read_text()
        for section, key in LISTENERS.values():
            cfg = set_key(cfg, section, f'{key} = ["127.0.0.1:0"]')
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

    # --- ports ------------------------------------------------------------
    def published(self, daemon):
        """{listener name: port} from run/facteur-<daemon>.listen (empty
        until the daemon has bound its listeners)."""
        try:
            text = (self.root / "run" / f"facteur-{daemon}.listen").read_text()
        except FileNotFoundError:
            return {}
        return {name: int(addr.rsplit(":", 1)[1]) for name, addr in (l.split() for l in text.splitlines())}

    def port(self, name):
        """The port listener `name` (mx, imaps, lmtp, ...) listens on."""
        port = self.published(DAEMON_OF[name]).get(name)
        assert port, f"facteur-{DAEMON_OF[name]} has not published its {name} listener"
        return port

    def _pin(self, daemon):
        """Writes the ports `daemon` was given into the configuration, so
        that a restart binds the same ones."""
        cfg = self.config.read_text()
        for name, port in self.published(daemon).items():
            section, key = LISTENERS[name]
            cfg = set_key(cfg, section, f'{key} = ["127.0.0.1:{port}"]')
        # Atomically: another daemon may be reading the file right now.
        tmp = self.config.with_suffix(".tmp")
        tmp.write_text(cfg)
        os.replace(tmp, self.config)

    def _unpublish(self, daemon):
        """Forgets what a previous run of `daemon` published."""
        (self.root / "run" / f"facteur-{daemon}.listen").unlink(missing_ok=True)

    lmtp_port = property(lambda self: self.port("lmtp"))
    smtp_port = property(lambda self: self.port("mx"))
    submission_port = property(lambda self: self.port("submission"))
    submissions_port = property(lambda self: self.port("submissions"))
    pop3_port = property(lambda self: self.port("pop3"))
    pop3s_port = property(lambda self: self.port("pop3s"))
    imap_port = property(lambda self: self.port("imap"))
    imaps_port = property(lambda self: self.port("imaps"))
    sieve_port = property(lambda self: self.port("sieve"))

    # --- daemons ----------------------------------------------------------
    def start_lmtpd(self):
        self._unpublish("lmtpd")
        p = subprocess.Popen(
            [str(BIN / "facteur-lmtpd"), "--config", str(self.config)],
            stdout=self.log,
            stderr=self.log,
        )
        self.procs.append(p)
        self.lmtpd = p
        wait_for(lambda: p.poll() is not None or self.published("lmtpd"), 20, "facteur-lmtpd to listen")
        assert p.poll() is None, self.log_text("lmtpd")
        self._pin("lmtpd")
        wait_for(lambda: self.socket.exists() and self._tcp_up(), 20, "facteur-lmtpd to listen")
        return p

    def start(self, name):
        """Starts facteur-<name> and waits until it is ready."""
        if name == "lmtpd":
            p = self.start_lmtpd()
            self.daemons[name] = p
            return p
        log = self.logs.setdefault(name, open(self.root / f"{name}.log", "ab"))
        self._unpublish(name)
        p = subprocess.Popen([str(BIN / f"facteur-{name}"), "--config", str(self.config)], stdout=log, stderr=log)
        self.procs.append(p)
        self.daemons[name] = p
        if name in ("smtpd", "imapd", "pop3d", "managesieved"):
            wait_for(lambda: p.poll() is not None or self.published(name), 20, f"facteur-{name} to listen")
            assert p.poll() is None, self.log_text(name)
            self._pin(name)
        if name == "smtpd":
            wait_for(lambda: p.poll() is not None or self._tcp_up(self.smtp_port), 20, "facteur-smtpd to listen")
        elif name == "imapd":
            wait_for(lambda: p.poll() is not None or (self._tcp_up(self.imap_port) and self._tcp_up(self.imaps_port, tls=True)), 20, "facteur-imapd to listen")
        elif name == "managesieved":
            wait_for(lambda: p.poll() is not None or self._tcp_up(self.sieve_port), 20, "facteur-managesieved to listen")
        elif name == "pop3d":
            wait_for(lambda: p.poll() is not None or (self._tcp_up(self.pop3_port) and self._tcp_up(self.pop3s_port, tls=True)), 20, "facteur-pop3d to listen")
        elif name == "qmgr":
            wait_for(lambda: p.poll() is not None or (self.root / "run" / "qmgr.sock").exists(), 20, "facteur-qmgr to start")
        assert p.poll() is None, self.log_text(name)
        return p

    def restart(self, name, edit=None):
        """Stops facteur-<name> (SIGTERM), applies `edit` (text -> text) to
        the configuration if given, and starts it again."""
        p = self.daemons[name]
        p.terminate()
        p.wait(15)
        if edit:
            self.config.write_text(edit(self.config.read_text()))
        return self.start(name)

    def start_all(self):
        for n in ("lmtpd", "qmgr", "smtpd"):
            self.start(n)

    def _tcp_up(self, port=None, tls=False):
        """Whether something listens on `port` (TLS: merely accepts; the
        server speaks first only after the handshake)."""
        port = port or self.published("lmtpd").get("lmtp")
        if not port:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
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
