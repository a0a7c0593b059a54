"""Shared pieces of bench/run: running commands, free ports, waiting, and
the accounting of each side's CPU time and memory.

CPU: each side (facteur; Postfix + Dovecot) runs in its own cgroup-v1
`cpuacct` group, created under /sys/fs/cgroup/cpuacct/. Every daemon is
started by a child that first writes its own pid into the group, so every
process the daemons fork later (Postfix's smtpd/cleanup/lmtp, Dovecot's
login/imap/lmtp processes) is counted too, even after it has exited.
`cpuacct.usage` is the total CPU time of the group in nanoseconds. When no
cgroup can be made (no cgroup v1 cpuacct, no permission), a fallback samples
/proc: for every live process in the side's process trees it adds utime +
stime + cutime + cstime (children's time arrives in cutime/cstime when
their parent reaps them, so exited workers still count as long as a daemon
of the side reaped them).

Memory: the sum of PSS (proportional set size, /proc/PID/smaps_rollup) of
all processes of the side, so pages shared between Dovecot's processes are
counted once, not once per process.
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

CG_ROOT = Path("/sys/fs/cgroup/cpuacct")
TICK = os.sysconf("SC_CLK_TCK")


def log(msg):
    print(f"[bench] {msg}", flush=True)


_GIVEN_PORTS = set()


def free_port():
    """A port free on 127.0.0.1 now, never one handed out before in this
    run (two binds in a row may get the same ephemeral port)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _GIVEN_PORTS:
            _GIVEN_PORTS.add(port)
            return port


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")


def tcp_up(port, banner=True):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            if banner:
                s.settimeout(2)
                return len(s.recv(100)) > 0
        return True
    except OSError:
        return False


def run(cmd, check=True, timeout=600, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({p.returncode}):\n{p.stdout}{p.stderr}")
    return p


def run_daemonizing(cmd, logfile, preexec_fn=None, timeout=60):
    """Runs a command that starts a daemon in the background (dovecot,
    postfix start): its output goes to `logfile`, not to a pipe the daemon
    would inherit and hold open. Returns (exit code, output)."""
    with open(logfile, "ab+") as f:
        start = f.tell()
        rc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=f, stderr=f, timeout=timeout,
                            preexec_fn=preexec_fn).returncode
        f.seek(start)
        return rc, f.read().decode(errors="replace")


def _children_map():
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read()
        except OSError:
            continue
        ppid = int(st[st.rindex(")") + 2 :].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    return kids


def _proc_cpu(pid, user_only=False):
    try:
        with open(f"/proc/{pid}/stat") as f:
            st = f.read()
    except OSError:
        return 0
    fields = st[st.rindex(")") + 2 :].split()
    # fields[11..14] are utime stime cutime cstime (stat fields 14-17)
    if user_only:
        return int(fields[11]) + int(fields[13])
    return sum(int(x) for x in fields[11:15])


def pss_kib(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            m = re.search(r"^Pss:\s+(\d+) kB", f.read(), re.M)
        return int(m.group(1)) if m else 0
    except OSError:
        return 0


# bench/run --peers-batch: the peers run under SCHED_BATCH too, as
# facteur's smtpd, qmgr and lmtpd do by default ([scheduling] batch).
PEERS_BATCH = False


class Accounting:
    """One side's CPU time and memory (see the module comment)."""

    def __init__(self, name):
        self.name = name
        self.cg = CG_ROOT / f"facteur-bench-{os.getpid()}-{name}"
        self.roots = set()  # fallback: pids whose trees belong to the side
        try:
            self.cg.mkdir()
            (self.cg / "cpuacct.usage").read_text()
            self.method = "cgroup"
        except OSError:
            self.method = "proc-tree"

    def preexec(self):
        """For subprocess preexec_fn: joins the side's cgroup (and, with
        bench/run --peers-batch, a peer's process takes SCHED_BATCH, which
        its children inherit)."""
        if self.method == "cgroup":
            with open(self.cg / "cgroup.procs", "w") as f:
                f.write(str(os.getpid()))
        if PEERS_BATCH and self.name != "facteur":
            os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))

    def add_root(self, pid):
        self.roots.add(pid)

    def pids(self):
        if self.method == "cgroup":
            try:
                return [int(x) for x in (self.cg / "cgroup.procs").read_text().split()]
            except OSError:
                return []
        kids = _children_map()
        out, todo = [], list(self.roots)
        while todo:
            p = todo.pop()
            if os.path.exists(f"/proc/{p}"):
                out.append(p)
                todo += kids.get(p, [])
        return out

    def cpu_seconds(self):
        if self.method == "cgroup":
            return int((self.cg / "cpuacct.usage").read_text()) / 1e9
        return sum(_proc_cpu(p) for p in self.pids()) / TICK

    def cpu_user_seconds(self):
        """The user-space part of cpu_seconds() (the rest is the kernel's:
        system calls, file system, network)."""
        if self.method == "cgroup":
            return int((self.cg / "cpuacct.usage_user").read_text()) / 1e9
        return sum(_proc_cpu(p, user_only=True) for p in self.pids()) / TICK

    def pss_kib(self):
        return sum(pss_kib(p) for p in self.pids())

    def kill_leftovers(self):
        """SIGKILLs what is still in the side's group (only processes this
        run started: the group is ours alone), then removes the group."""
        if self.method != "cgroup":
            return
        for _ in range(50):
            pids = self.pids()
            if not pids:
                break
            for p in pids:
                try:
                    os.kill(p, 9)
                except OSError:
                    pass
            time.sleep(0.1)
        try:
            self.cg.rmdir()
        except OSError as e:
            log(f"could not remove {self.cg}: {e}")


def set_key(cfg, section, key, value):
    """Sets `key = value` in [section] of a TOML text (adds the section or
    the key when missing)."""
    line = f"{key} = {value}"
    head = f"[{section}]\n"
    if head not in cfg:
        return cfg.rstrip("\n") + f"\n\n{head}{line}\n"
    start = cfg.index(head) + len(head)
    nxt = cfg.find("\n[", start)
    end = len(cfg) if nxt < 0 else nxt + 1
    body, n = re.subn(rf"(?m)^{re.escape(key)}\s*=.*$", lambda _: line, cfg[start:end])
    if n == 0:
        body = line + "\n" + body
    return cfg[:start] + body + cfg[end:]


def count_files(dirs):
    n = 0
    for d in dirs:
        try:
            n += sum(1 for e in os.scandir(d) if e.is_file())
        except FileNotFoundError:
            pass
    return n


SYNC_CALLS = ("fsync", "fdatasync", "syncfs")
_perf_ok = None


class SyncCount:
    """Counts the fsync(2), fdatasync(2) and syncfs(2) calls made on the
    whole machine while it is open (`with SyncCount() as c: ...; c.total`),
    with `perf stat` on the syscall tracepoints; `total` stays None when
    perf cannot (not installed, no tracefs). Only one side runs at a time,
    and the other side's idle daemons do not sync, so the count is the
    running side's."""

    def __init__(self):
        self.total, self.proc, self.out = None, None, None

    def __enter__(self):
        global _perf_ok
        events = ",".join(f"syscalls:sys_enter_{c}" for c in SYNC_CALLS)
        if _perf_ok is None:
            _perf_ok = shutil.which("perf") is not None and subprocess.run(
                ["perf", "stat", "-a", "-e", events, "true"], capture_output=True).returncode == 0
        if _perf_ok:
            self.out = tempfile.NamedTemporaryFile(prefix="bench-perf-", suffix=".txt", delete=False).name
            self.proc = subprocess.Popen(["perf", "stat", "-a", "-x,", "-o", self.out, "-e", events],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.3)  # perf's start-up, so that the first calls count
        return self

    def __exit__(self, *exc):
        if self.proc is not None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(30)
            counts = [ln.split(",")[0] for ln in Path(self.out).read_text().splitlines() if "syscalls:" in ln]
            os.unlink(self.out)
            self.total = sum(int(c) for c in counts if c.isdigit())
        return False
