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


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what() if callable(what) else what}")


def crlf(text):
    """A message in network form from a readable Python string."""
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")


class Facteur:
    """A facteur installation under a fresh directory, set up by the real
    `facteurctl init --dev` and adapted to free ports."""

    def __init__(self, extra_lmtpd=""):
        self.root = Path(tempfile.mkdtemp(prefix="fe2e-", dir="/tmp"))
        os.chmod(self.root, 0o755)
        self.procs = []
        out = self.ctl("init", "--dev", str(self.root))
        m = re.search(r"password:\s+(\S+)", out)
        assert m, out
        self.demo_password = m.group(1)
        self.lmtp_port = free_port()
        cfg = (self.root / "facteur.toml").read_text()
        cfg = re.sub(r'listen = \["127\.0\.0\.1:\d+"\]', f'listen = ["127.0.0.1:{self.lmtp_port}"]', cfg)
        cfg = cfg.replace('socket_mode = "0660"', 'socket_mode = "0666"')
        if extra_lmtpd:
            cfg = cfg.replace("[lmtpd]\n", "[lmtpd]\n" + extra_lmtpd.strip() + "\n")
        (self.root / "facteur.toml").write_text(cfg)
        self.config = self.root / "facteur.toml"
        self.socket = self.root / "run" / "lmtp.sock"
        self.log = open(self.root / "lmtpd.log", "ab")

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

    def _tcp_up(self):
        try:
            with socket.create_connection(("127.0.0.1", self.lmtp_port), timeout=1) as s:
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
        self.log.close()

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

    def log_text(self):
        self.log.flush()
        return (self.root / "lmtpd.log").read_text(errors="replace")


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
