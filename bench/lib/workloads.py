"""The workloads of bench/run. Each runs the same work against every side
that can do it, alternating sides run by run (A B A B), and fills Rows:
per run a figure, the CPU seconds the side's processes spent during it,
and the units of work done (messages, sessions) for CPU per unit.

Figures: throughput rows are "higher is better", time and memory rows
"lower is better"; Row.ratio() is always facteur's advantage (>1: facteur
better), computed run by run, then the median taken.
"""

import json
import os
import poplib
import shutil
import smtplib
import statistics
import subprocess
import time
from pathlib import Path

import queuefile
import seed
from common import SyncCount, count_files, log, run
from sides import DOMAIN

PASSWORD = "bench-Pw-7q2"
SENDER = "bench@bench.test"


class Row:
    def __init__(self, workload, unit, higher_better=True, cpu_unit="msg"):
        self.workload, self.unit, self.higher_better, self.cpu_unit = workload, unit, higher_better, cpu_unit
        self.vals = {}  # side name -> [(figure, cpu_s, units)]
        self.notes = []
        self.skipped = {}  # side name -> reason

    def add(self, side, figure, cpu, units):
        self.vals.setdefault(side, []).append((figure, cpu, units))

    def median(self, side, i=0):
        v = [r[i] for r in self.vals.get(side, []) if r[i] is not None]
        return statistics.median(v) if v else None

    def cpu_per_unit_ms(self, side):
        v = [r[1] / r[2] * 1000 for r in self.vals.get(side, []) if r[2] and r[1] is not None]
        return statistics.median(v) if v else None

    def ratio(self, a="facteur", b="postfix+dovecot"):
        pairs = list(zip(self.vals.get(a, []), self.vals.get(b, [])))
        rs = []
        for (fa, _, _), (fb, _, _) in pairs:
            if fa and fb:
                rs.append(fa / fb if self.higher_better else fb / fa)
        return statistics.median(rs) if rs else None


def alternate(sides, reps, row, one_run):
    """Runs one_run(side, rep) -> (figure, cpu_s, units) A B A B."""
    for rep in range(reps):
        for s in sides:
            if s.name in row.skipped:
                continue
            try:
                fig, cpu, units = one_run(s, rep)
                row.add(s.name, fig, cpu, units)
            except Exception as e:  # a failed run is reported, the rest goes on
                row.skipped[s.name] = f"failed: {str(e).strip()[:300]}"
                log(f"{row.workload} on {s.name} failed: {e}")


def timed(side, fn):
    c0, t0 = side.acct.cpu_seconds(), time.monotonic()
    out = fn()
    t1, c1 = time.monotonic(), side.acct.cpu_seconds()
    return t1 - t0, c1 - c0, out


def settled_cpu(side, limit=10.0):
    """The side's CPU seconds once it has stopped spending any (0.2 s
    without a tick, at most `limit` s): work a server does after its reply
    (facteur commits a first SELECT's index rows then) is counted too."""
    last, end = side.acct.cpu_seconds(), time.monotonic() + limit
    while time.monotonic() < end:
        time.sleep(0.2)
        now = side.acct.cpu_seconds()
        if now == last:
            break
        last = now
    return last


# --- 1 and 2: SMTP and LMTP deliveries into Maildir --------------------------

DELIVERY_USERS = [f"d{i}" for i in range(10)]


def empty_and_count(side, users):
    """Empties the users' mailboxes; returns a function that counts the
    messages delivered into them since (Maildir files in new/ and cur/,
    or what the side counts in its own format: Cyrus)."""
    if hasattr(side, "empty_and_count"):
        return side.empty_and_count(users)
    mds = [side.maildir(u) for u in users]
    seed.clear(mds)
    dirs = [m / sub for m in mds for sub in ("new", "cur")]
    return lambda: count_files(dirs)


def deliver_once(side, count, size, lmtp, msg_file=None, sender=SENDER, helo=None, syncs=None):
    """One timed delivery run: smtp-source (10 processes, one per user of
    DELIVERY_USERS) into the side, until every message is a file in the
    users' Maildirs. Returns (messages/s, CPU s, messages). `syncs`: a
    list to which the run's fsyncs per message are appended (when perf can
    count them)."""
    delivered = empty_and_count(side, DELIVERY_USERS)
    port = side.lmtp_port if lmtp else side.smtp_port
    per = count // len(DELIVERY_USERS)
    procs = []

    def go():
        for u in DELIVERY_USERS:
            body = ["-F", str(msg_file)] if msg_file else ["-l", str(size)]
            cmd = ["smtp-source"] + (["-L"] if lmtp else []) + (["-M", helo] if helo else []) + [
                "-s", "1", "-m", str(per)] + body + ["-f", sender,
                                                     "-t", f"{u}@{DOMAIN}", f"127.0.0.1:{port}"]
            procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
        deadline = time.monotonic() + 60 + count / 20
        while delivered() < per * len(DELIVERY_USERS):
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {delivered()} of {per * len(DELIVERY_USERS)} messages delivered in time")
            if any(p.poll() not in (None, 0) for p in procs):
                bad = next(p for p in procs if p.poll() not in (None, 0))
                raise RuntimeError(f"smtp-source failed: {bad.stderr.read()[:300]}")
            time.sleep(0.02)

    with SyncCount() as sc:
        secs, cpu, _ = timed(side, go)
    for p in procs:
        p.wait(30)
    n = per * len(DELIVERY_USERS)
    if syncs is not None and sc.total is not None:
        syncs.append(sc.total / n)
    return n / secs, cpu, n


def deliveries(sides, count, size, reps, lmtp, msg_file=None, sender=SENDER, helo=None, name=None, after_first=None):
    """Workloads 1 and 2 (and 7: `msg_file` sent as it is, from `sender`
    with `helo`; `after_first(side)` is called after each side's first
    run, to check what it delivered)."""
    name = name or ("2. LMTP -> Maildir (smtp-source -L)" if lmtp else "1. SMTP -> queue -> LMTP -> Maildir")
    row = Row(f"{name}, {count} msgs x {size // 1000} KB, 10 sessions", "msg/s")
    syncs = {}

    def one(side, rep):
        r = deliver_once(side, count, size, lmtp, msg_file, sender, helo, syncs.setdefault(side.name, []))
        if after_first and rep == 0:
            after_first(side, row)
        return r

    alternate(sides, reps, row, one)
    for side, v in syncs.items():
        if v:
            row.notes.append(f"{side}: {statistics.median(v):.2f} fsync/fdatasync/syncfs calls per message "
                             f"(all processes, perf stat; median of {len(v)} runs)")
    return [row]


# --- 9. Sieve at delivery ----------------------------------------------------

# Twenty rules of the kinds people write, none of which matches the bench's
# messages (smtp-source's: From <bench@...>, no Subject): every message is
# tested against all twenty and kept in INBOX, the same files as in
# workload 2, so the difference is the filtering alone.
SIEVE_20 = "require [\"fileinto\", \"imap4flags\", \"variables\", \"envelope\", \"relational\", \"comparator-i;ascii-numeric\"];\r\n" + "".join(
    "if " + t.replace("{i}", str(i)) + " { " + a + " }\r\n" for t, a in [
        ('address :is "from" "journal{i}@news.example"', 'fileinto "News"; stop;'),
        ('header :contains "subject" "[list-{i}]"', 'fileinto "Lists"; stop;'),
        ('header :contains "list-id" "<team{i}.lists.example>"', 'fileinto "Team"; stop;'),
        ('address :domain :is "from" "spam{i}.example"', 'discard; stop;'),
        ('header :matches "subject" "*invoice {i}*"', 'addflag "$Invoice";'),
    ] for i in range(4))


def sieve_deliveries(sides, count, size, reps, tmpfs=False):
    """Workload 9: for each side and repetition, workload 2 without the
    users' scripts and then with them (the 20-rule SIEVE_20, active for
    each of DELIVERY_USERS), back to back, so the difference of the pair is
    the filtering's cost under the same conditions. The row's figure is the
    rate with the scripts; its note the median of the pairs' CPU per
    message differences, and of their user-space part (the interpreter's
    work; the kernel's part of a delivery, fsyncs and renames, varies
    from run to run by more than a script costs)."""
    name = "9. LMTP -> Maildir, a 20-rule Sieve script per user (smtp-source -L)"
    row = Row(f"{name}, {count} msgs x {size // 1000} KB, 10 sessions", "msg/s")
    for s in sides:
        s.install_sieve(DELIVERY_USERS, SIEVE_20)
    diffs, user_diffs = {}, {}

    def one(side, rep):
        # without-then-with on even repetitions, with-then-without on odd
        # ones: whatever favours the second run of a pair cancels out
        def run(on):
            side.sieve_active(DELIVERY_USERS, on)
            u0 = side.acct.cpu_user_seconds()
            r = deliver_once(side, count, size, True)
            return r, (side.acct.cpu_user_seconds() - u0) / r[2]

        if rep % 2 == 0:
            (base, ub), (r, ur) = run(False), run(True)
        else:
            (r, ur), (base, ub) = run(True), run(False)
        diffs.setdefault(side.name, []).append((r[1] / r[2] - base[1] / base[2]) * 1e6)
        user_diffs.setdefault(side.name, []).append((ur - ub) * 1e6)
        return r

    alternate(sides, reps, row, one)
    parts = [f"{side} {statistics.median(d):+.0f} µs (user space {statistics.median(user_diffs[side]):+.0f} µs; "
             f"pairs {min(d):+.0f} to {max(d):+.0f})" for side, d in diffs.items() if d]
    if parts:
        row.notes.append(f"CPU per message with the scripts minus without, {reps} paired runs (median): "
                         + ", ".join(parts))
        if not tmpfs:
            row.notes.append("on a disk file system the kernel's part of a delivery varies from run to run by more "
                             "than a script costs (see the pairs' range): `--tmpfs` measures the difference apart")
    return [row]


# --- 3. IMAP -----------------------------------------------------------------

def imap_load(args, timeout=900, stdin=None):
    p = run([str(IMAP_LOAD)] + [str(a) for a in args], timeout=timeout, input=stdin)
    return json.loads(p.stdout.strip().splitlines()[-1])


IMAP_LOAD = Path("imap-load")  # set by bench/run


def imap_common(side, prefix, users):
    return ["--port", side.imap_port, "--password", PASSWORD, "--user-prefix", prefix,
            "--user-suffix", f"@{DOMAIN}", "--users", users]


def imap_mix(sides, sessions, cycles, users, seeded, reps):
    row = Row(f"3a. IMAP mix, {sessions} concurrent sessions x {cycles} visits", "visits/s", cpu_unit="visit")

    def one(side, rep):
        args = ["mix"] + imap_common(side, "m", users) + ["--sessions", sessions, "--cycles", cycles, "--seeded", seeded]
        secs, cpu, j = timed(side, lambda: imap_load(args))
        if j["errors"]:
            row.notes.append(f"{side.name}: {j['errors']} failed visits ({j['first_error']})")
        if not j["visits"]:
            raise RuntimeError(f"no visit succeeded: {j['first_error']}")
        return j["visits_per_s"], cpu, j["visits"]

    alternate(sides, reps, row, one)
    return [row]


def imap_big(sides, count, reps):
    sel = Row(f"3b. SELECT of a {count}-message mailbox (warm)", "ms", higher_better=False, cpu_unit="select")
    fet = Row(f"3b. FETCH 1:* (FLAGS) of {count} messages (warm)", "ms", higher_better=False, cpu_unit="fetch")
    cold = Row(f"3b. first SELECT of {count} messages (index build)", "ms", higher_better=False, cpu_unit="select")
    # What a client waits for before it has every message's flags: the
    # first SELECT and the FETCH after it (facteur's view is shown before
    # its index rows are committed; the FETCH is served meanwhile).
    cold_all = Row(f"3b. first SELECT + FETCH 1:* (FLAGS) of {count} messages", "ms", higher_better=False,
                   cpu_unit="visit")
    # SEARCH TEXT of a phrase one message has (its Subject: "big message
    # N: ..."): facteur answers from its full-text index (built by the
    # first search: the "first" row), Dovecot without an FTS plugin (as
    # Debian installs it) reads every message each time.
    needle = f"message {count // 2}:"
    srch = Row(f"3b. SEARCH TEXT of a phrase in 1 of {count} messages (warm)", "ms", higher_better=False,
               cpu_unit="visit")
    srch_cold = Row(f"3b. first SEARCH TEXT in {count} messages (facteur: index build)", "ms", higher_better=False,
                    cpu_unit="visit")
    plain = lambda s: ["big", "--port", s.imap_port, "--password", PASSWORD,  # noqa: E731
                       "--user", f"big@{DOMAIN}", "--timeout", 900]
    base = lambda s: plain(s) + ["--search", needle]  # noqa: E731
    for s in sides:
        if getattr(s, "indexed_when_seeded", False):
            cold.skipped[s.name] = ("its mailbox cannot be seeded without its index: the files enter through "
                                    "its reconstruct, which builds the index before any client comes")
        c0 = s.acct.cpu_seconds()
        j = imap_load(plain(s) + ["--warmup", 1, "--repeat", 0])
        cpu = settled_cpu(s) - c0
        if s.name in cold.skipped:
            cold_all.skipped[s.name] = cold.skipped[s.name]
            continue
        if j["exists"] != count:
            cold.notes.append(f"{s.name}: SELECT said {j['exists']} EXISTS, {count} seeded")
        cold.add(s.name, j["first_select_ms"], cpu, 1)
        cold_all.add(s.name, j["first_select_ms"] + j["first_fetch_ms"], cpu, 1)

    def one(side, rep):
        c0 = side.acct.cpu_seconds()
        j = imap_load(plain(side) + ["--warmup", 0, "--repeat", 1])
        if j["fetched"] != count:
            fet.notes.append(f"{side.name}: FETCH returned {j['fetched']} of {count}")
        cpu = side.acct.cpu_seconds() - c0
        fet.add(side.name, j["fetch_ms"], cpu / 2, 1)
        return j["select_ms"], cpu / 2, 1

    # The searches in visits of their own, after: a search in the same
    # visits would change what the SELECTs above measure (Dovecot's caches).
    def one_search(side, rep):
        c0 = side.acct.cpu_seconds()
        j = imap_load(base(side) + ["--warmup", 0, "--repeat", 1])
        if j["found"] != 1:
            srch.notes.append(f"{side.name}: SEARCH TEXT found {j['found']} messages, 1 expected")
        return j["search_ms"], side.acct.cpu_seconds() - c0, 1

    alternate(sides, reps, sel, one)
    for s in sides:
        # The first search, in a visit of its own (its CPU: the visit's).
        secs, cpu, j = timed(s, lambda: imap_load(base(s) + ["--warmup", 1, "--repeat", 0]))
        srch_cold.add(s.name, j["first_search_ms"], cpu, 1)
    alternate(sides, reps, srch, one_search)
    for r in (fet,):
        r.skipped.update(sel.skipped)
    return [cold, cold_all, sel, fet, srch_cold, srch]


def imap_idle(sides, n, users, settle, seeded):
    row = Row(f"3c. memory per IDLE connection, {n} connections on INBOXes of {seeded} messages", "KiB/conn", higher_better=False, cpu_unit="conn")
    for s in sides:
        try:
            before = s.acct.pss_kib()
            c0 = s.acct.cpu_seconds()
            conns = min(n, getattr(s, "idle_limit", n))
            if conns < n:
                row.notes.append(f"{s.name}: {conns} connections, not {n} ({s.idle_limit_why})")
            p = subprocess.Popen([str(IMAP_LOAD), "idle"] + [str(a) for a in imap_common(s, "m", users)]
                                 + ["--connections", str(conns), "--ramp", "100", "--timeout", "120"],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                j = json.loads(p.stdout.readline() or "{}")
                if not j.get("idling"):
                    raise RuntimeError(f"no connection reached IDLE: {j.get('first_error') or p.stderr.read()[:300]}")
                time.sleep(settle[s.name])
                after = s.acct.pss_kib()
                cpu = s.acct.cpu_seconds() - c0
            finally:
                p.stdin.close()
                p.wait(120)
            if j["errors"]:
                row.notes.append(f"{s.name}: {j['errors']} of {conns} connections failed ({j['first_error']})")
            row.add(s.name, (after - before) / j["idling"], cpu, j["idling"])
            row.notes.append(f"{s.name}: PSS {before / 1024:.0f} MiB before, {after / 1024:.0f} MiB with {j['idling']} idling")
        except Exception as e:
            row.skipped[s.name] = f"failed: {e}"
            log(f"IDLE on {s.name} failed: {e}")
        time.sleep(2)
    return [row]


# --- 4. POP3 -----------------------------------------------------------------

def pop3(sides, count, reps, tmp):
    lib = Row(f"4a. POP3 RETR of {count} messages (~{count * 31 // 1000} MB), poplib", "s", higher_better=False)
    fm = Row(f"4b. POP3 fetchmail --keep of {count} messages", "s", higher_better=False)

    def poplib_session(side, retr=True):
        p = poplib.POP3("127.0.0.1", side.pop3_port, timeout=120)
        p.user(f"pop@{DOMAIN}")
        p.pass_(PASSWORD)
        n, _ = p.stat()
        got = 0
        if retr:
            for i in range(1, n + 1):
                got += sum(len(x) for x in p.retr(i)[1])
        p.quit()
        return n, got

    for s in sides:  # warm-up: first login indexes the mailbox
        poplib_session(s, retr=False)

    def one_lib(side, rep):
        secs, cpu, (n, got) = timed(side, lambda: poplib_session(side))
        if n != count:
            lib.notes.append(f"{side.name}: STAT said {n}, {count} seeded")
        return secs, cpu, n

    home = Path(tmp) / "fetchmail"
    home.mkdir(exist_ok=True)

    def one_fm(side, rep):
        rc = home / f"rc-{side.name}"
        out = home / f"out-{side.name}"
        rc.write_text(
            "set no bouncemail\n"
            f"poll 127.0.0.1 with proto POP3 service {side.pop3_port} auth password\n"
            f'  user "pop@{DOMAIN}" there with password "{PASSWORD}" is "root" here\n'
            f"  options keep fetchall no rewrite sslproto '' bsmtp {out}\n")
        os.chmod(rc, 0o600)
        if out.exists():
            out.unlink()
        env = dict(os.environ, FETCHMAILHOME=str(home), HOME=str(home))
        secs, cpu, p = timed(side, lambda: run(["fetchmail", "-f", str(rc), "-N", "--nosyslog", "-s"],
                                                 check=False, env=env, timeout=300))
        if p.returncode != 0:
            raise RuntimeError(f"fetchmail exit {p.returncode}: {(p.stdout + p.stderr)[-300:]}")
        got = out.stat().st_size if out.exists() else 0
        if got < count * 1000:
            raise RuntimeError(f"fetchmail wrote only {got} bytes")
        return secs, cpu, count

    alternate(sides, reps, lib, one_lib)
    alternate(sides, reps, fm, one_fm)
    return [lib, fm]


# --- 5. mbsync ---------------------------------------------------------------

def mbsync(sides, count, reps, tmp):
    full = Row(f"5a. mbsync full pull of {count} messages", "s", higher_better=False)
    resync = Row("5b. mbsync no-change resync", "s", higher_better=False)
    base = Path(tmp) / "mbsync"
    base.mkdir(exist_ok=True)

    def rc_for(side):
        near = base / f"near-{side.name}"
        rc = base / f"rc-{side.name}"
        rc.write_text(
            # the local side does not fsync: the servers are measured, not this disk
            "FSync no\n\n"
            f"IMAPAccount far\nHost 127.0.0.1\nPort {side.imap_port}\nUser sync@{DOMAIN}\nPass {PASSWORD}\n"
            "SSLType None\nAuthMechs LOGIN\n\n"
            "IMAPStore far\nAccount far\n\n"
            f"MaildirStore near\nPath {near}/\nInbox {near}/INBOX\n\n"
            "Channel ch\nFar :far:\nNear :near:\nPatterns INBOX\nCreate Near\nSync Pull\nSyncState *\n")
        return rc, near

    def sync(side, rc):
        p = run(["mbsync", "-c", str(rc), "-a", "-q"], check=False, timeout=600)
        if p.returncode != 0:
            raise RuntimeError(f"mbsync exit {p.returncode}: {(p.stdout + p.stderr)[-300:]}")

    def one(side, rep):
        rc, near = rc_for(side)
        shutil.rmtree(near, ignore_errors=True)
        near.mkdir()
        # mbsync waits for the clock to leave the second in which a local
        # Maildir last changed (so as not to miss a delivery in it): start
        # each sync in a later second, or the figures measure that wait.
        time.sleep(1.1)
        secs, cpu, _ = timed(side, lambda: sync(side, rc))
        pulled = count_files([near / "INBOX" / "cur", near / "INBOX" / "new"])
        if pulled != count:
            full.notes.append(f"{side.name}: pulled {pulled} of {count}")
        time.sleep(1.1)
        secs2, cpu2, _ = timed(side, lambda: sync(side, rc))
        resync.add(side.name, secs2, cpu2, count)
        return secs, cpu, count

    for s in sides:  # warm-up: the server indexes the mailbox once
        rc, near = rc_for(s)
        shutil.rmtree(near, ignore_errors=True)
        near.mkdir()
        try:
            sync(s, rc)
        except RuntimeError as e:
            full.skipped[s.name] = resync.skipped[s.name] = f"failed: {e}"
    alternate(sides, reps, full, one)
    resync.skipped.update(full.skipped)
    return [full, resync]


# --- 6. a backlog drained (facteur only) --------------------------------------

PROBE_USER = "probe"


def backlog(fac, peer, count, fresh, size):
    """Issue 14: a queue of `count` deferred messages (an outage's backlog)
    flushed with `facteurctl queue flush` and drained by facteur-qmgr into
    facteur-lmtpd, against the queue manager's normal rate: `fresh` new
    messages of the same size found in incoming/. Both queues are written
    with qmgr stopped (lib/queuefile.py), so only the queue manager and the
    delivery are timed. Also: how long the flush took to answer, and how
    long a new message sent over SMTP in the middle of the drain took to
    reach its mailbox."""
    normal = Row(f"6a. qmgr normal rate: {fresh} new messages in incoming/, {size // 1000} KB", "msg/s")
    drain = Row(f"6b. qmgr drain of {count} deferred messages after `queue flush`, {size // 1000} KB", "msg/s")
    answer = Row(f"6c. `facteurctl queue flush` of {count} deferred messages answered", "ms",
                 higher_better=False, cpu_unit="flush")
    probe = Row("6d. a new message (SMTP) delivered in the middle of the drain", "ms",
                higher_better=False, cpu_unit="msg")
    rows = [normal, drain, answer, probe]
    normal.skipped[peer.name] = ("facteur only: a Postfix backlog can only be made by sending every message "
                                 "through it during an outage (minutes at its rate), its queue files cannot be "
                                 "written directly")
    for r in rows[1:]:
        r.skipped[peer.name] = "facteur only (see 6a)"
    spool = fac.root / "spool"
    mds = [fac.maildir(u) for u in DELIVERY_USERS]
    dirs = [m / sub for m in mds for sub in ("new", "cur")]
    probe_dirs = [fac.maildir(PROBE_USER) / sub for sub in ("new", "cur")]
    msg = seed.message("backlog", 0, size).replace(b"\n", b"\r\n")
    rcpts = [f"{u}@{DOMAIN}" for u in DELIVERY_USERS]

    def until_delivered(n, dirs, timeout):
        deadline = time.monotonic() + timeout
        while count_files(dirs) < n:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {count_files(dirs)} of {n} messages delivered in {timeout:.0f} s")
            time.sleep(0.05)

    def corrupt_note(row):
        bad = count_files([spool / "corrupt"])
        if bad:
            row.notes.append(f"facteur: {bad} files in corrupt/ (lib/queuefile.py out of step with the format?)")

    try:
        # 6a: the normal rate of the same path, without a backlog.
        seed.clear(mds)
        fac.stop_daemon("qmgr")
        queuefile.fill(spool, "incoming", "FRESH", fresh, SENDER, rcpts, msg, int(time.time()))

        def fresh_run():
            fac.start_daemon("qmgr")
            until_delivered(fresh, dirs, 120 + fresh / 20)
        secs, cpu, _ = timed(fac, fresh_run)
        normal.add(fac.name, fresh / secs, cpu, fresh)
        corrupt_note(normal)

        # 6b-6d: the backlog.
        seed.clear(mds)
        seed.make_maildir(fac.maildir(PROBE_USER), fac.owner)
        seed.clear([fac.maildir(PROBE_USER)])
        fac.stop_daemon("qmgr")
        t = time.monotonic()
        now = int(time.time())
        queuefile.fill(spool, "deferred", "BKLG", count, SENDER, rcpts, msg, now - 1800, attempts=1,
                       next_attempt=now + 86400, status=queuefile.DEFERRED,
                       last_reply="451 4.3.0 mailbox temporarily unavailable (bench)")
        log(f"workload 6: {count} deferred messages written in {time.monotonic() - t:.1f} s")
        fac.start_daemon("qmgr")
        c0, t0 = fac.acct.cpu_seconds(), time.monotonic()
        out = fac.ctl("queue", "flush").stdout.strip()
        t1 = time.monotonic()
        answer.add(fac.name, (t1 - t0) * 1000, fac.acct.cpu_seconds() - c0, 1)
        answer.notes.append(f"facteur answered: {out[:160]}")
        until_delivered(count // 4, dirs, 120 + count / 20)
        at = count_files(dirs)
        p0, pc = time.monotonic(), fac.acct.cpu_seconds()
        with smtplib.SMTP("127.0.0.1", fac.smtp_port, timeout=30) as s:
            s.sendmail(SENDER, [f"{PROBE_USER}@{DOMAIN}"], b"Subject: probe\r\n\r\nduring the drain\r\n")
        until_delivered(1, probe_dirs, 60)
        probe.add(fac.name, (time.monotonic() - p0) * 1000, fac.acct.cpu_seconds() - pc, 1)
        probe.notes.append(f"facteur: sent when {at} of the {count} were delivered")
        until_delivered(count, dirs, 120 + count / 20)
        t2, c2 = time.monotonic(), fac.acct.cpu_seconds()
        drain.add(fac.name, count / (t2 - t0), c2 - c0, count)
        drain.notes.append(f"facteur: drained in {t2 - t0:.1f} s, from the flush request to the last delivery")
        corrupt_note(drain)
    except Exception as e:  # reported, the rest of the run goes on
        for r in rows:
            if not r.vals.get(fac.name):
                r.skipped[fac.name] = f"failed: {str(e).strip()[:300]}"
        log(f"workload 6 failed: {e}")
    finally:
        if fac.procs.get("qmgr") is None or fac.procs["qmgr"].poll() is not None:
            fac.start_daemon("qmgr")
        seed.clear(mds)
    return rows


# --- 8: Dovecot's imaptest, its default stress mix ----------------------------

IMAPTEST_USERS = [f"it{i}" for i in range(1, 11)]


def imaptest_binary(repo):
    """imaptest, built from ../shared/imaptest into target/imaptest the first
    time (as tests/e2e/test_imaptest.py does); None if it cannot be."""
    binary = repo / "target" / "imaptest" / "bin" / "imaptest"
    build = repo.parent / "shared" / "imaptest" / "build"
    if not binary.exists() and build.exists():
        log("building imaptest from ../shared/imaptest")
        run([str(build), str(binary.parent.parent)], check=False, timeout=1800)
    return binary if binary.exists() else None


def imaptest_mbox(path, n=300):
    """Messages for imaptest's APPENDs: plain texts of varied length and
    multiparts with a base64 part."""
    words = "alpha beta gamma delta mail server queue index folder message subject keyword flag".split()
    with open(path, "w") as out:
        for i in range(n):
            out.write(f"From sender{i % 13}@example.org Tue Nov 14 22:13:20 2023\n")
            out.write(f"From: Sender {i % 13} <sender{i % 13}@example.org>\nTo: user@{DOMAIN}\n")
            out.write(f"Subject: {words[i % 13]} {words[(i * 7) % 13]} {i}\nMessage-ID: <it{i}@example.org>\n")
            if i % 5 == 0:
                out.write(f'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="b{i}"\n\n'
                          f"--b{i}\nContent-Type: text/plain\n\nhello {i}\n--b{i}\n"
                          "Content-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n"
                          f"aGVsbG8gd29ybGQ=\n--b{i}--\n\n")
            else:
                out.write("\n")
                for line in range(1 + (i * 31) % 40):
                    out.write(" ".join(words[(i + line + k) % 13] for k in range(10)) + "\n")
                out.write("\n")


def imaptest_stress(sides, binary, mbox, clients, secs, reps):
    """imaptest's default mix (LOGIN, LIST, STATUS, SELECT, FETCH, STORE,
    EXPUNGE, APPEND, LOGOUT at random, its state checks on) for `secs`:
    commands per second and the server's CPU per command. A side whose
    replies imaptest finds wrong (`Error:` lines) has them counted in a
    note: its figure is then not comparable."""
    row = Row(f"8. imaptest default stress mix, {clients} clients, {secs} s", "commands/s", cpu_unit="command")
    env = dict(os.environ, LD_LIBRARY_PATH="/usr/lib/dovecot")

    def one(side, rep):
        args = [str(binary), "host=127.0.0.1", f"port={side.imap_port}", f"user=it%d@{DOMAIN}",
                f"pass={PASSWORD}", f"users={len(IMAPTEST_USERS)}", f"clients={clients}",
                f"mbox={mbox}", f"secs={secs}"]
        took, cpu, p = timed(side, lambda: subprocess.run(args, capture_output=True, text=True,
                                                          timeout=secs + 300, env=env))
        out = p.stdout + p.stderr
        # the last row of numbers after "Totals:" (error lines may follow)
        rows = [l.split() for l in out.split("Totals:", 1)[-1].splitlines()]
        rows = [r for r in rows if r and all(x.isdigit() for x in r)]
        counts = [int(x) for x in rows[-1]] if rows else []
        if not counts or "Totals:" not in out:
            raise RuntimeError(f"no totals from imaptest: {out[-500:]}")
        errors = [l for l in out.splitlines() if l.startswith("Error:") and "Raw backtrace" not in l]
        if errors:
            row.notes.append(f"{side.name}: {len(errors)} imaptest errors, e.g. {errors[0][:200]}")
        total = sum(counts)
        return total / took, cpu, total

    alternate(sides, reps, row, one)
    return [row]
