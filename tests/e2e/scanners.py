"""Private instances of Debian's real content scanners on loopback, for the
scan tests: rspamd's normal worker, clamd, and clamav-milter in front of
clamd. Each has its own directory under /tmp for configuration, databases,
sockets and logs, chosen ports on 127.0.0.1, and runs in the foreground as
a child of the test; none uses the system's services, edits /etc, reads
/var/lib/clamav, runs freshclam or reaches the network.

    rspamd = Rspamd().start()        # rspamd.port: its normal worker
    clamd = Clamd().start()          # clamd.port (TCP), clamd.socket (Unix)
    milter = ClamavMilter(clamd).start()   # milter.port
    ...
    milter.stop(); clamd.stop(); rspamd.stop()

Each class is also a context manager (start on entry, stop on exit).
`stop()` ends the daemon's whole process tree and removes its directory
(unless FACTEUR_KEEP is set); `stop_only()` ends the processes and keeps
the directory, so that `start()` brings the same daemon back on the same
port: what a test of failing open or closed needs.
"""

import http.client
import json
import os
import pwd
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
from pathlib import Path

from dnsserver import DnsServer
from harness import free_port

RSPAMD = shutil.which("rspamd") or "/usr/bin/rspamd"
CLAMD = shutil.which("clamd") or "/usr/sbin/clamd"
CLAMAV_MILTER = shutil.which("clamav-milter") or "/usr/sbin/clamav-milter"
SETPRIV = shutil.which("setpriv")


def _owner(user):
    """(uid, gid) of `user` when the tests run as root (the daemon's workers
    drop to it, as under Debian's service), None otherwise (everything runs
    as whoever runs the tests)."""
    if os.geteuid() != 0:
        return None
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        raise RuntimeError(f"user {user} is missing: is its Debian package installed?") from None
    return pw.pw_uid, pw.pw_gid


def _chown_tree(path, owner):
    if owner is None:
        return
    for root, dirs, files in os.walk(path):
        os.chown(root, *owner)
        for n in dirs + files:
            os.lchown(os.path.join(root, n), *owner)


def _port_is_free(port):
    """Whether nothing listens on 127.0.0.1:`port` (connections of a
    previous run in TIME_WAIT do not count: the daemons set SO_REUSEADDR
    too)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


class _Daemon:
    """What the three have in common: a directory, a foreground process in
    a session of its own (so that its whole tree can be ended, workers
    included), a wait for readiness that fails with the log's tail."""

    name = "daemon"
    ready_timeout = 60.0
    # How long a stop waits for the daemon to end on SIGTERM before SIGKILL.
    stop_grace = 10.0

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix=f"fe2e-{self.name}-", dir="/tmp"))
        os.chmod(self.dir, 0o755)
        self.proc = None
        self.startup_seconds = None
        self._out = None

    # --- what each daemon says --------------------------------------------
    def _prepare(self):
        """Writes configuration and data under self.dir (again after a
        stop(), which removed them)."""
        raise NotImplementedError

    def _command(self):
        raise NotImplementedError

    def _ready(self):
        raise NotImplementedError

    def _logs(self):
        """The files worth showing when the daemon fails."""
        return [self.dir / "stdout.log"]

    # --- life -------------------------------------------------------------
    def start(self):
        """Starts the daemon and waits until it answers; returns self. If it
        exits or does not answer in time, raises with the end of its logs,
        having stopped it and removed its directory as stop() does (a
        fixture that fails in start() leaves nothing behind)."""
        assert not self.running(), f"{self.name} is already running"
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self):
        self.dir.mkdir(mode=0o755, exist_ok=True)
        self._prepare()
        self._out = open(self.dir / "stdout.log", "ab")
        cmd = self._command()
        # The daemon leads a session of its own (stop_only() ends the whole
        # group), out of reach of the signals that end the test run
        # (timeout(1) signals its process group): it gets SIGTERM when the
        # test process dies instead, by util-linux's setpriv.
        if SETPRIV:
            cmd = [SETPRIV, "--pdeathsig", "TERM", "--"] + cmd
        t0 = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._out,
                                     stderr=subprocess.STDOUT, cwd=self.dir, start_new_session=True)
        deadline = t0 + self.ready_timeout
        while not self._ready():
            rc = self.proc.poll()
            if rc is not None:
                raise RuntimeError(f"{self.name} exited ({rc}) before it was ready:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} was not ready after {self.ready_timeout:.0f}s:\n{self.log_tail()}")
            time.sleep(0.05)
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited, yet something answers on its port:\n{self.log_tail()}")
        self.startup_seconds = time.monotonic() - t0

    start_again = start

    def stop_only(self):
        """Ends the daemon and every process it started, keeps its directory
        and port: start() brings it back as it was."""
        p, self.proc = self.proc, None
        if p is not None:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(self.stop_grace)
                except subprocess.TimeoutExpired:
                    pass
            # Workers left behind (or a main process that would not end):
            # the whole session, which is the group the daemon leads.
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            p.wait(10)
        if self._out is not None:
            self._out.close()
            self._out = None

    def stop(self):
        """Ends the daemon and removes its directory, unless FACTEUR_KEEP is
        set. start() would make a fresh one, same path and port."""
        self.stop_only()
        if os.environ.get("FACTEUR_KEEP") is None:
            shutil.rmtree(self.dir, ignore_errors=True)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines=40):
        out = []
        for f in self._logs():
            try:
                text = f.read_text(errors="replace").splitlines()[-lines:]
            except FileNotFoundError:
                continue
            out.append(f"--- {f}\n" + "\n".join(text))
        return "\n".join(out) or f"(no log in {self.dir})"

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


# --- rspamd --------------------------------------------------------------

# A short public suffix list instead of the 9,600 names of
# /usr/share/rspamd/effective_tld_names.dat: rspamd 3.4 compiles that list
# with Hyperscan at every start, ten seconds of CPU here; the names the
# tests' messages use are enough.
RSPAMD_TLDS = """com
org
net
fr
de
uk
co.uk
example
test
invalid
localhost
"""

RSPAMD_OPTIONS = """# Private rspamd of facteur's tests (tests/e2e/scanners.py).
# Regular expressions run with PCRE: no Hyperscan database to compile.
disable_hyperscan = true;
url_tld = "{conf}/tld.dat";
tempdir = "{d}/tmp";
# GTUBE's siblings: YJS... gives "add header", ZJS... "rewrite subject",
# AJS... "no action" (XJS..., GTUBE itself, always gives "reject").
enable_test_patterns = true;
# The only resolver rspamd asks: a loopback server that answers at once
# (NXDOMAIN by default), so that checks needing DNS fail fast instead of
# waiting for a time-out, and nothing leaves the machine.
dns {{
  nameserver = ["{dns}"];
  timeout = 1s;
  retransmits = 1;
}}
"""

RSPAMD_LOCAL_CONF = """# Private rspamd of facteur's tests (tests/e2e/scanners.py).
# rspamd 3.4 always starts its Hyperscan helper, which compiles every rule's
# expressions (five seconds of CPU) even with disable_hyperscan; given a
# cache directory that does not exist, it compiles nothing (it could not
# save it), the workers find no database, and the rules run with PCRE, as
# disable_hyperscan asks.
worker "hs_helper" {{
  cache_dir = "{d}/no-hyperscan-cache";
}}
"""


class Rspamd(_Daemon):
    """rspamd's normal worker on 127.0.0.1:`port`, with Debian's
    /etc/rspamd/rspamd.conf and rules but every writable path (--var
    LOCAL_CONFDIR, DBDIR, RUNDIR, LOGDIR) and local.d / override.d in its
    own directory. The controller, proxy and fuzzy workers are off: nothing
    else listens. No Redis, so the modules that need it (Bayes, greylisting,
    ratelimit, neural, replies...) stay off; fuzzy_check is off too (at
    start it looks up rspamd.com's servers with the system's resolver).

    DNS goes to `dns` ("host:port", e.g. a test's DnsServer) or, by
    default, to a private DnsServer, `.dns_server`, with no names: every
    question gets NXDOMAIN at once (`.dns_server.set()` adds records).
    When the tests run as root, the workers run as `_rspamd` (-u, -g) and
    the main process stays root, as under Debian's service.

    A small clean message with a current Date, from 127.0.0.1, scores
    about 0 ("no action"; -0.1 on Debian 12's rspamd 3.4): rspamd skips
    its checks of the client's address for loopback. From another address
    with every name unknown, the checks that want a PTR or an A record
    (RDNS_NONE, HFILTER_*, AUTH_NA) bring it to about 7, "add header":
    give such a test the DNS records it needs. GTUBE gives "reject", with
    "is_skipped": true and no rule run (so no "milter" key); GTUBE_ADD_HEADER
    and GTUBE_REWRITE_SUBJECT give those actions, the latter with
    "subject": "*** SPAM *** <the original subject>"."""

    name = "rspamd"
    GTUBE = b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
    GTUBE_ADD_HEADER = b"YJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
    GTUBE_REWRITE_SUBJECT = b"ZJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"

    def __init__(self, port=None, dns=None):
        self.port = port or free_port()
        self.dns = dns
        self.dns_server = None
        super().__init__()

    def _prepare(self):
        if not _port_is_free(self.port):
            raise RuntimeError(f"rspamd: 127.0.0.1:{self.port} is taken")
        if self.dns is None and self.dns_server is None:
            self.dns_server = DnsServer({}).start()
        dns = self.dns or self.dns_server.addr
        d = self.dir
        conf = d / "conf"
        for sub in ("conf/local.d", "conf/override.d", "db", "run", "log", "tmp"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        (conf / "tld.dat").write_text(RSPAMD_TLDS)
        (conf / "rspamd.conf.local").write_text(RSPAMD_LOCAL_CONF.format(d=d))
        (conf / "local.d" / "options.inc").write_text(RSPAMD_OPTIONS.format(d=d, conf=conf, dns=dns))
        (conf / "local.d" / "fuzzy_check.conf").write_text("enabled = false;\n")
        # override.d: these replace the keys rspamd.conf sets in the
        # worker sections (its bind_socket = "localhost:11333" and so on).
        (conf / "override.d" / "worker-normal.inc").write_text(
            f'bind_socket = "127.0.0.1:{self.port}";\ncount = 1;\n')
        for w in ("controller", "proxy", "fuzzy"):
            (conf / "override.d" / f"worker-{w}.inc").write_text("enabled = false;\n")
        owner = _owner("_rspamd")
        for sub in ("db", "run", "log", "tmp"):
            _chown_tree(d / sub, owner)

    def _command(self):
        d = self.dir
        cmd = [RSPAMD, "-f", "-c", "/etc/rspamd/rspamd.conf"]
        for var, path in (("LOCAL_CONFDIR", d / "conf"), ("DBDIR", d / "db"),
                          ("RUNDIR", d / "run"), ("LOGDIR", d / "log")):
            cmd += ["--var", f"{var}={path}"]
        if os.geteuid() == 0:
            cmd += ["-u", "_rspamd", "-g", "_rspamd"]
        return cmd

    def _ready(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                s.sendall(b"GET /ping HTTP/1.0\r\n\r\n")
                data = b""
                while chunk := s.recv(4096):
                    data += chunk
        except OSError:
            return False
        return data.partition(b"\r\n\r\n")[2].strip() == b"pong"

    def _logs(self):
        return [self.dir / "stdout.log", self.dir / "log" / "rspamd.log"]

    def check(self, message, headers=None):
        """rspamd's answer to `message` (bytes) on /checkv2, as a dict;
        `headers`: the protocol's request headers (IP, From, Rcpt, Helo,
        User...)."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            c.request("POST", "/checkv2", body=message, headers=dict(headers or {}))
            r = c.getresponse()
            body = r.read()
        finally:
            c.close()
        assert r.status == 200, (r.status, body[:500])
        return json.loads(body)

    def stop(self):
        super().stop()
        if self.dns_server is not None:
            self.dns_server.stop()
            self.dns_server = None


# --- clamd ---------------------------------------------------------------

CLAMD_CONF = """# Private clamd of facteur's tests (tests/e2e/scanners.py).
Foreground yes
LogFile {d}/clamd.log
LogTime yes
PidFile {d}/clamd.pid
TemporaryDirectory {d}/tmp
DatabaseDirectory {d}/db
LocalSocket {d}/clamd.sock
LocalSocketMode 666
FixStaleSocket yes
TCPSocket {port}
TCPAddr 127.0.0.1
StreamMaxLength 10M
MaxThreads 4
SelfCheck 0
ConcurrentDatabaseReload no
Bytecode no
ScanMail yes
"""


class Clamd(_Daemon):
    """clamd on 127.0.0.1:`tcp_port` and on the Unix socket `.socket`, with
    a database of one signature the test writes (no /var/lib/clamav, no
    freshclam): TEST_VIRUS anywhere in a message (plain, or in an
    attachment in base64) is found, and clamd names it TEST_VIRUS_NAME
    ("stream: NAME FOUND"). The EICAR file is not detected: its signature
    lives in ClamAV's official databases, which these tests do without.
    Streams are limited to 10M (StreamMaxLength): beyond, clamd answers
    "INSTREAM size limit exceeded. ERROR". The Unix socket is mode 0666.
    Runs as whoever runs the tests (root in CI), not as `clamav`: a daemon
    that changes its user loses the parent-death signal that ends it with a
    killed test run."""

    name = "clamd"
    TEST_VIRUS = b"FACTEUR-TEST-VIRUS-7d1c0b5e-not-a-real-virus"
    # A signature outside ClamAV's signed databases is reported with
    # ".UNOFFICIAL" appended.
    TEST_VIRUS_NAME = "Facteur.Test.Virus.UNOFFICIAL"

    def __init__(self, tcp_port=None):
        self.tcp_port = self.port = tcp_port or free_port()
        super().__init__()
        self.socket = self.dir / "clamd.sock"

    def _prepare(self):
        if not _port_is_free(self.tcp_port):
            raise RuntimeError(f"clamd: 127.0.0.1:{self.tcp_port} is taken")
        d = self.dir
        for sub in ("db", "tmp"):
            (d / sub).mkdir(exist_ok=True)
        # An extended (.ndb) body signature: name, any file type, any
        # offset, the bytes in hexadecimal.
        (d / "db" / "facteur-test.ndb").write_text(f"Facteur.Test.Virus:0:*:{self.TEST_VIRUS.hex()}\n")
        (d / "clamd.conf").write_text(CLAMD_CONF.format(d=d, port=self.tcp_port))

    def _command(self):
        return [CLAMD, "-c", str(self.dir / "clamd.conf")]

    def _ready(self):
        return self.command(b"PING", timeout=2) == b"PONG" and self.socket.exists()

    def _logs(self):
        return [self.dir / "stdout.log", self.dir / "clamd.log"]

    def command(self, cmd, timeout=10):
        """clamd's answer (without the NUL) to a z-command such as PING or
        VERSION over TCP; None if it cannot be reached."""
        try:
            with socket.create_connection(("127.0.0.1", self.tcp_port), timeout=timeout) as s:
                s.sendall(b"z" + cmd + b"\0")
                return _read_nul(s)
        except OSError:
            return None

    def instream(self, data, chunk=65536, timeout=30):
        """clamd's answer to INSTREAM of `data`, e.g. b"stream: OK"."""
        with socket.create_connection(("127.0.0.1", self.tcp_port), timeout=timeout) as s:
            s.sendall(b"zINSTREAM\0")
            for i in range(0, len(data), chunk):
                s.sendall(struct.pack("!I", len(data[i:i + chunk])) + data[i:i + chunk])
            s.sendall(struct.pack("!I", 0))
            return _read_nul(s)


def _read_nul(s):
    data = b""
    while not data.endswith(b"\0"):
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.rstrip(b"\0")


# --- clamav-milter ---------------------------------------------------------

CLAMAV_MILTER_CONF = """# Private clamav-milter of facteur's tests (tests/e2e/scanners.py).
MilterSocket inet:{port}@127.0.0.1
ClamdSocket tcp:127.0.0.1:{clamd_port}
Foreground yes
PidFile {d}/clamav-milter.pid
TemporaryDirectory {d}/tmp
OnClean Accept
OnInfected Reject
OnFail Defer
AddHeader Replace
ReportHostname {hostname}
MaxFileSize 10M
ReadTimeout 30
LogFile {d}/clamav-milter.log
LogTime yes
LogInfected Basic
LogClean Basic
"""


class ClamavMilter(_Daemon):
    """clamav-milter on 127.0.0.1:`port` (inet:PORT@127.0.0.1), scanning with
    `clamd` (a Clamd) over TCP. For each message it scans it adds,
    replacing any already there (AddHeader Replace), "X-Virus-Scanned:
    clamav-milter 1.4.6 at HOSTNAME" and "X-Virus-Status: Clean" or
    "Infected (NAME)"; a message with a virus is then rejected (OnInfected
    Reject: a bare SMFIR_REJECT, no reply text). When clamd cannot be
    reached it answers tempfail (OnFail Defer), and it probes a clamd it
    found down only once a minute: after clamd.stop_only() and
    clamd.start(), restart the milter too for it to scan again at once.
    Runs as whoever runs the tests, as Clamd does."""

    name = "clamav-milter"
    HOSTNAME = "scanner.test"
    # libmilter notices SIGTERM only every five seconds; it keeps nothing
    # worth a clean exit.
    stop_grace = 0.5

    def __init__(self, clamd, port=None):
        self.clamd = clamd
        self.port = port or free_port()
        super().__init__()

    def _prepare(self):
        if not _port_is_free(self.port):
            raise RuntimeError(f"clamav-milter: 127.0.0.1:{self.port} is taken")
        (self.dir / "tmp").mkdir(exist_ok=True)
        (self.dir / "clamav-milter.conf").write_text(CLAMAV_MILTER_CONF.format(
            d=self.dir, port=self.port, clamd_port=self.clamd.tcp_port, hostname=self.HOSTNAME))

    def _command(self):
        return [CLAMAV_MILTER, "-c", str(self.dir / "clamav-milter.conf")]

    def _ready(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def _logs(self):
        return [self.dir / "stdout.log", self.dir / "clamav-milter.log"]
