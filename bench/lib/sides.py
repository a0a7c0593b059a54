"""The two sides bench/run compares, each set up privately under the run's
temporary directory on free loopback ports, and each run inside its own
Accounting (CPU and memory, see common.py):

- FacteurSide: a root made by the real `facteurctl init --dev`, ports moved
  to free ones, limits meant for one client address raised (the load comes
  from loopback), plain-text login allowed on loopback; the release
  daemons started one by one (facteur-imapd only when it is built).
- PeerSide: Postfix 3.7 (smtpd -> queue -> lmtp client) handing mail to
  Dovecot 2.3 (LMTP, IMAP, POP3) over Dovecot's LMTP unix socket, as in
  ../shared/peer-configs/ (Dovecot in its high-performance login mode).
  Nothing of /etc/postfix or /etc/dovecot is read or changed.

Both sides get the same users with the same password hash (argon2id
strings made by facteurctl, given to Dovecot as {ARGON2ID}), so a login
costs the same work on both.
"""

import imaplib
import os
import pwd
import re
import shutil
import sqlite3
import subprocess
from pathlib import Path

import seed as S
from common import Accounting, free_port, log, run, run_daemonizing, set_key, tcp_up, wait_for

DOMAIN = "example.test"


class FacteurSide:
    name = "facteur"

    def __init__(self, tmp, bin_dir):
        self.bin = Path(bin_dir)
        self.root = Path(tmp) / "facteur"
        self.acct = Accounting("facteur")
        self.procs = {}
        self.logs = []
        self.has_imap = (self.bin / "facteur-imapd").exists()
        self.smtp_port, self.lmtp_port, self.pop3_port = free_port(), free_port(), free_port()
        self.imap_port = free_port() if self.has_imap else None
        self.owner = None

    def ctl(self, *args, stdin=None):
        cmd = [str(self.bin / "facteurctl")]
        if args[0] != "init":
            cmd += ["--config", str(self.root / "facteur.toml")]
        return run(cmd + list(args), input=stdin)

    def setup(self, users, password, scheme="sha512-crypt", login_cache_seconds=None):
        """Creates the users; returns {user: stored hash} for the peer.
        `scheme`: argon2id (facteurctl's own hashes, facteur's default),
        sha512-crypt or plain (one hash made by `doveadm pw`, stored for
        every user in facteur's directory as an imported Dovecot hash)."""
        self.ctl("init", "--dev", str(self.root))
        os.chmod(self.root, 0o755)
        cfg = (self.root / "facteur.toml").read_text()
        free = lambda: f'["127.0.0.1:{free_port()}"]'  # noqa: E731
        cfg = set_key(cfg, "lmtpd", "listen", f'["127.0.0.1:{self.lmtp_port}"]')
        cfg = set_key(cfg, "lmtpd", "max_connections", "1000")
        cfg = set_key(cfg, "smtpd", "mx", f'["127.0.0.1:{self.smtp_port}"]')
        cfg = set_key(cfg, "smtpd", "submission", free())
        cfg = set_key(cfg, "smtpd", "submissions", free())
        cfg = set_key(cfg, "smtpd", "max_connections", "2000")
        cfg = set_key(cfg, "smtpd", "max_connections_per_ip", "2000")
        cfg = set_key(cfg, "smtpd", "max_messages_per_ip_per_minute", "4000000000")
        cfg = set_key(cfg, "pop3d", "listen", f'["127.0.0.1:{self.pop3_port}"]')
        cfg = set_key(cfg, "pop3d", "listen_tls", free())
        cfg = set_key(cfg, "pop3d", "allow_plaintext_auth_on_loopback", "true")
        cfg = set_key(cfg, "pop3d", "max_connections_per_ip", "500")
        if self.has_imap:
            cfg = set_key(cfg, "imapd", "listen", f'["127.0.0.1:{self.imap_port}"]')
            cfg = set_key(cfg, "imapd", "listen_tls", free())
            cfg = set_key(cfg, "imapd", "allow_plaintext_auth_on_loopback", "true")
            cfg = set_key(cfg, "imapd", "max_connections", "30000")
            cfg = set_key(cfg, "imapd", "max_connections_per_ip", "30000")
            # Every bench client comes from 127.0.0.1: a site behind one
            # address, whose logins at once the hash queue must all take
            # (README, "Failed logins"; imaptest's 50 clients log in together).
            cfg = set_key(cfg, "auth", "max_queued_per_address", "64")
        if login_cache_seconds is not None:
            cfg = set_key(cfg, "directory", "login_cache_seconds", str(login_cache_seconds))
        cfg = cfg.replace('socket_mode = "0660"', 'socket_mode = "0666"')
        (self.root / "facteur.toml").write_text(cfg)
        self.ctl("config", "check")
        for u in users:
            self.ctl("user", "add", f"{u}@{DOMAIN}", stdin=password + "\n")
        db = sqlite3.connect(self.root / "state" / "directory.sqlite")
        if scheme != "argon2id":
            h = run(["doveadm", "pw", "-s", scheme.upper(), "-p", password]).stdout.strip()
            with db:
                db.execute("UPDATE users SET password_hash = ?", (h,))
        hashes = dict(db.execute("SELECT address, password_hash FROM users").fetchall())
        db.close()
        return {u: hashes[f"{u}@{DOMAIN}"] for u in users}

    def maildir(self, user):
        return self.root / "mail" / DOMAIN / user

    def install_sieve(self, users, script):
        """The script, active, for each user (workload 9)."""
        for u in users:
            self.ctl("sieve", "put", f"{u}@{DOMAIN}", "main", "-", "--activate", stdin=script)

    def sieve_active(self, users, on):
        """The users' script active, or none."""
        for u in users:
            if on:
                self.ctl("sieve", "activate", f"{u}@{DOMAIN}", "main")
            else:
                self.ctl("sieve", "deactivate", f"{u}@{DOMAIN}")

    def _start(self, name, ready):
        logf = open(self.root / f"{name}.log", "ab")
        self.logs.append(logf)
        p = subprocess.Popen(
            [str(self.bin / f"facteur-{name}"), "--config", str(self.root / "facteur.toml")],
            stdout=logf, stderr=logf, preexec_fn=self.acct.preexec,
        )
        self.acct.add_root(p.pid)
        self.procs[name] = p
        wait_for(lambda: p.poll() is not None or ready(), 30, f"facteur-{name} to start")
        if p.poll() is not None:
            raise RuntimeError(f"facteur-{name} exited: see {self.root}/{name}.log")

    def _ready(self, name):
        run_dir = self.root / "run"
        return {
            "lmtpd": lambda: (run_dir / "lmtp.sock").exists() and tcp_up(self.lmtp_port),
            "qmgr": lambda: (run_dir / "qmgr.sock").exists() and (run_dir / "qmgr-control.sock").exists(),
            "smtpd": lambda: tcp_up(self.smtp_port),
            "pop3d": lambda: tcp_up(self.pop3_port),
            "imapd": lambda: tcp_up(self.imap_port),
        }[name]

    def start(self):
        for name in ("lmtpd", "qmgr", "smtpd", "pop3d") + (("imapd",) if self.has_imap else ()):
            self._start(name, self._ready(name))

    def start_daemon(self, name):
        """Starts one daemon again (workload 6 restarts facteur-qmgr)."""
        self._start(name, self._ready(name))

    def stop_daemon(self, name):
        """Stops one daemon (SIGTERM: facteur-qmgr waits for its deliveries)."""
        p = self.procs.get(name)
        if p is not None and p.poll() is None:
            p.terminate()
            p.wait(90)

    def stop(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.terminate()
        for name, p in self.procs.items():
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                log(f"facteur-{name} ignored SIGTERM for 20 s; killing it")
                p.kill()
                p.wait(5)
        for f in self.logs:
            f.close()
        self.acct.kill_leftovers()


DOVECOT_CONF = """# Private Dovecot for bench/run (see ../shared/peer-configs/dovecot.conf).
protocols = imap pop3 lmtp
listen = 127.0.0.1
base_dir = {d}/run
state_dir = {d}/state
instance_name = facteur-bench-dovecot
log_path = {d}/log/dovecot.log
info_log_path = {d}/log/dovecot-info.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_username_format = %Ln
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%n {d}/users
}}
userdb {{
  driver = passwd-file
  args = username_format=%n {d}/users
  default_fields = uid=vmail gid=vmail home={mail}/%n
}}
mail_location = maildir:~
mail_fsync = optimized
first_valid_uid = 100
namespace inbox {{
  inbox = yes
  separator = /
}}
default_process_limit = 1000
default_client_limit = 30000
# Idle IMAP connections move to the imap-hibernate process (Dovecot's way
# of keeping thousands of IDLE clients cheap); without it each one keeps an
# imap process.
imap_hibernate_timeout = {hibernate}s
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap}
  }}
  inet_listener imaps {{
    port = 0
  }}
  service_count = 0
  process_min_avail = 2
  vsz_limit = 1G
}}
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {pop3}
  }}
  inet_listener pop3s {{
    port = 0
  }}
  service_count = 0
  process_min_avail = 2
}}
service lmtp {{
  unix_listener lmtp {{
    mode = 0666
  }}
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {lmtp}
  }}
}}
# idle_kill: an imap process left idle once its client hibernated exits
# after 10 s instead of 60, so the IDLE memory figure is Dovecot's steady
# state, not its pool of spare processes.
service imap {{
  service_count = 100
  process_limit = 1000
  idle_kill = 10s
  unix_listener imap-master {{
    mode = 0666
  }}
}}
service imap-hibernate {{
  client_limit = 30000
  unix_listener imap-hibernate {{
    mode = 0666
  }}
}}
service pop3 {{
  service_count = 100
}}
service auth {{
  client_limit = 30000
}}
protocol imap {{
  mail_max_userip_connections = 30000
}}
protocol pop3 {{
  mail_max_userip_connections = 1000
}}
protocol lmtp {{
  postmaster_address = postmaster@example.test
{lmtp_sieve}
}}
"""

POSTFIX_MAIN = """# Private Postfix for bench/run (see ../shared/peer-configs/main.cf).
compatibility_level = 3.6
queue_directory = {d}/spool
data_directory = {d}/data
maillog_file = {d}/log/postfix.log
maillog_file_prefixes = {d}
mail_owner = postfix
setgid_group = postdrop
myhostname = peers.localhost
mydomain = localhost
myorigin = $myhostname
mydestination = $myhostname, localhost
virtual_mailbox_domains = example.test
virtual_mailbox_maps = texthash:{d}/vmailbox
virtual_transport = lmtp:unix:{lmtp_socket}
alias_maps =
alias_database =
local_recipient_maps =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
lmtp_dns_support_level = disabled
relayhost =
default_transport = error:no outbound mail from this test instance
relay_transport = error:no outbound mail from this test instance
smtpd_tls_security_level = none
smtp_tls_security_level = none
message_size_limit = 52428800
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
smtpd_client_message_rate_limit = 0
default_process_limit = 100
lmtp_destination_concurrency_limit = 20
lmtp_destination_recipient_limit = 50
biff = no
"""

POSTFIX_MASTER_SERVICES = """pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
proxywrite unix - - n - 1 proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
lmtp unix - - n - - lmtp
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
"""


def vmail_owner():
    """The uid/gid Dovecot delivers as: the system user `vmail`, created
    (as Debian's facteur package does) on a machine that has none yet."""
    try:
        pw = pwd.getpwnam("vmail")
    except KeyError:
        run(["useradd", "--system", "--user-group", "--no-create-home",
             "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", "vmail"])
        pw = pwd.getpwnam("vmail")
    return (pw.pw_uid, pw.pw_gid)


class PeerSide:
    name = "postfix+dovecot"

    def __init__(self, tmp, hibernate_secs=3, imap_idle_kill_secs=10):
        self.dir = Path(tmp) / "peer"
        self.dov = self.dir / "dovecot"
        self.pf = self.dir / "postfix"
        self.mail = self.dir / "mail"
        self.acct = Accounting("peer")
        self.smtp_port, self.lmtp_port, self.pop3_port, self.imap_port = (free_port() for _ in range(4))
        self.has_imap = True
        self.hibernate_secs = hibernate_secs
        self.sieve = False  # Pigeonhole in LMTP (workload 9)
        # after the last client reached IDLE: hibernation, then idle_kill, then a margin
        self.idle_settle_secs = hibernate_secs + imap_idle_kill_secs + 3
        self.owner = vmail_owner()

    def setup(self, hashes):
        for d in (self.dov / "run", self.dov / "state", self.dov / "log", self.mail,
                  self.pf / "etc", self.pf / "spool", self.pf / "data", self.pf / "log"):
            d.mkdir(parents=True, exist_ok=True)
        for d in (self.dir, self.dov, self.pf):
            os.chmod(d, 0o755)
        os.chown(self.mail, *self.owner)
        (self.dov / "users").write_text("".join(f"{u}:{{ARGON2ID}}{h}::::::\n" if h.startswith("$argon2id$")
                                                else f"{u}:{h}::::::\n" for u, h in hashes.items()))
        (self.dov / "dovecot.conf").write_text(DOVECOT_CONF.format(
            d=self.dov, mail=self.mail, imap=self.imap_port, pop3=self.pop3_port, lmtp=self.lmtp_port,
            hibernate=self.hibernate_secs,
            # Pigeonhole at delivery, for workload 9 only: the user's
            # ~/.dovecot.sieve (home = the Maildir here)
            lmtp_sieve="  mail_plugins = $mail_plugins sieve\n}\nplugin {\n  sieve = file:~/sieve;active=~/.dovecot.sieve"
            if self.sieve else ""))
        (self.pf / "vmailbox").write_text("".join(f"{u}@{DOMAIN} {u}/\n" for u in hashes))
        (self.pf / "etc" / "main.cf").write_text(POSTFIX_MAIN.format(d=self.pf, lmtp_socket=self.dov / "run" / "lmtp"))
        (self.pf / "etc" / "master.cf").write_text(
            f"127.0.0.1:{self.smtp_port} inet n - n - - smtpd\n" + POSTFIX_MASTER_SERVICES)
        run(["postfix", "-c", str(self.pf / "etc"), "set-permissions"], check=False)

    def maildir(self, user):
        return self.mail / user

    def install_sieve(self, users, script):
        """The script as each user's active ~/.dovecot.sieve (workload 9)."""
        for u in users:
            d = self.maildir(u)
            d.mkdir(parents=True, exist_ok=True)
            os.chown(d, *self.owner)
            f = d / ".dovecot.sieve"
            f.write_text(script)
            os.chown(f, *self.owner)

    def sieve_active(self, users, on):
        """The users' ~/.dovecot.sieve in place, or moved aside."""
        for u in users:
            f, aside = self.maildir(u) / ".dovecot.sieve", self.maildir(u) / "sieve.off"
            if on and aside.exists():
                os.replace(aside, f)
            elif not on and f.exists():
                os.replace(f, aside)

    def start(self):
        conf = str(self.dov / "dovecot.conf")
        rc, out = run_daemonizing(["dovecot", "-c", conf], self.dir / "start.log", self.acct.preexec)
        if rc != 0:
            raise RuntimeError(f"dovecot did not start: {out}")
        wait_for(lambda: tcp_up(self.imap_port) and (self.dov / "run" / "lmtp").exists(), 30, "dovecot")
        self._add_pidfile_root(self.dov / "run" / "master.pid")
        rc, out = run_daemonizing(["postfix", "-c", str(self.pf / "etc"), "start"], self.dir / "start.log",
                                  self.acct.preexec)
        if rc != 0:
            logtext = (self.pf / "log" / "postfix.log").read_text() if (self.pf / "log" / "postfix.log").exists() else ""
            raise RuntimeError(f"postfix did not start: {out}{logtext[-2000:]}")
        wait_for(lambda: tcp_up(self.smtp_port), 30, "postfix smtpd")
        self._add_pidfile_root(self.pf / "spool" / "pid" / "master.pid")

    def _add_pidfile_root(self, path):
        try:
            self.acct.add_root(int(re.findall(r"\d+", path.read_text())[0]))
        except (OSError, IndexError):
            pass

    def stop(self):
        run_daemonizing(["postfix", "-c", str(self.pf / "etc"), "stop"], self.dir / "start.log")
        run_daemonizing(["dovecot", "-c", str(self.dov / "dovecot.conf"), "stop"], self.dir / "start.log")
        wait_for_quiet = lambda: not [p for p in self.acct.pids() if p != os.getpid()]  # noqa: E731
        try:
            wait_for(wait_for_quiet, 15, "the peers to exit")
        except RuntimeError:
            pass
        self.acct.kill_leftovers()


# --- Exim 4 (workload 1's other MTA) -----------------------------------------

EXIM_CONF = """# Private Exim for bench/run: SMTP in, its queue, LMTP out to the same
# Dovecot as Postfix's (so that only the MTA differs). Exim's defaults
# otherwise (Debian's exim4-config adds nothing that this workload meets).
primary_hostname = exim.localhost
exim_path = {exim}
spool_directory = {d}/spool
log_file_path = {d}/log/%slog
pid_file_path = {d}/exim.pid
keep_environment =
local_interfaces = 127.0.0.1
daemon_smtp_ports = {port}
domainlist local_domains = example.test
acl_smtp_rcpt = acl_check_rcpt
host_lookup =
rfc1413_hosts =
smtp_accept_max = 200
smtp_accept_queue_per_connection = 0
message_size_limit = 50M
tls_advertise_hosts =

begin acl

acl_check_rcpt:
  accept domains = +local_domains
  deny message = relay not permitted

begin routers

dovecot:
  driver = accept
  domains = +local_domains
  transport = dovecot_lmtp

begin transports

dovecot_lmtp:
  driver = lmtp
  socket = {lmtp_socket}
  user = Debian-exim

begin retry

* * F,1h,1m
"""


def exim_binary(cache):
    """Exim from Debian's packages, unpacked under `cache` (never installed:
    it and facteur's package both provide mail-transport-agent, as Postfix
    does), with what it needs from the system: libidn12 and the user
    Debian-exim it drops to (created as exim4-base's postinst would). The
    path of its binary, or the reason it is not there."""
    exim = Path(cache) / "root" / "usr" / "sbin" / "exim4"
    if not exim.exists():
        Path(cache).mkdir(parents=True, exist_ok=True)
        p = subprocess.run(["apt-get", "download", "exim4-daemon-light", "exim4-base"], cwd=cache,
                           capture_output=True, text=True, timeout=300)
        if p.returncode != 0:
            return None, f"apt-get download exim4-daemon-light failed: {p.stderr.strip()[-300:]}"
        for deb in Path(cache).glob("*.deb"):
            run(["dpkg-deb", "-x", str(deb), str(Path(cache) / "root")])
    if "libidn.so.12" not in subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout:
        subprocess.run(["apt-get", "install", "-y", "-q", "libidn12"], capture_output=True,
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"), timeout=600)
    try:
        pwd.getpwnam("Debian-exim")
    except KeyError:
        run(["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
             "--shell", "/usr/sbin/nologin", "Debian-exim"])
    p = subprocess.run([str(exim), "-bV", "-C", "/dev/null"], capture_output=True, text=True)
    if p.returncode != 0:
        return None, f"exim does not run: {(p.stdout + p.stderr).strip()[-300:]}"
    return exim, None


class SummedAccounting:
    """The accounting of two groups taken together (Exim and the Dovecot
    it delivers to: only the running side is busy during a run)."""

    def __init__(self, *parts):
        self.parts = parts
        self.method = parts[0].method

    def cpu_seconds(self):
        return sum(p.cpu_seconds() for p in self.parts)

    def cpu_user_seconds(self):
        return sum(p.cpu_user_seconds() for p in self.parts)

    def pids(self):
        return [x for p in self.parts for x in p.pids()]

    def pss_kib(self):
        return sum(p.pss_kib() for p in self.parts)

    def kill_leftovers(self):
        self.parts[0].kill_leftovers()


class EximSide:
    """Exim 4 (SMTP, its queue, its LMTP transport) handing mail to the
    Dovecot of `peer` (PeerSide) over the same LMTP socket as Postfix: for
    workload 1 only. Its CPU is Exim's plus Dovecot's."""

    name = "exim+dovecot"

    def __init__(self, tmp, peer, exim):
        self.dir = Path(tmp) / "exim"
        self.peer = peer
        self.exim = exim
        self.own = Accounting("exim")
        self.acct = SummedAccounting(self.own, peer.acct)
        self.smtp_port = free_port()
        self.has_imap = False

    def setup(self):
        pw = pwd.getpwnam("Debian-exim")
        for d in (self.dir / "spool", self.dir / "log"):
            d.mkdir(parents=True, exist_ok=True)
            os.chown(d, pw.pw_uid, pw.pw_gid)
        os.chmod(self.dir, 0o755)
        (self.dir / "exim.conf").write_text(EXIM_CONF.format(
            d=self.dir, exim=self.exim, port=self.smtp_port, lmtp_socket=self.peer.dov / "run" / "lmtp"))

    def maildir(self, user):
        return self.peer.maildir(user)

    def start(self):
        rc, out = run_daemonizing([str(self.exim), "-C", str(self.dir / "exim.conf"), "-bd", "-q5m"],
                                  self.dir / "start.log", self.own.preexec)
        if rc != 0:
            raise RuntimeError(f"exim did not start: {out}")
        wait_for(lambda: tcp_up(self.smtp_port), 30, "exim")
        try:
            self.own.add_root(int((self.dir / "exim.pid").read_text().split()[0]))
        except (OSError, IndexError, ValueError):
            pass

    def stop(self):
        try:
            os.kill(int((self.dir / "exim.pid").read_text().split()[0]), 15)
        except (OSError, IndexError, ValueError):
            pass
        try:
            wait_for(lambda: not [p for p in self.own.pids() if p != os.getpid()], 15, "exim to exit")
        except RuntimeError:
            pass
        self.own.kill_leftovers()


# --- Cyrus IMAP (workloads 2 to 5: the other store) ---------------------------

CYRUS_PACKAGES = ["cyrus-common", "cyrus-imapd", "cyrus-pop3d"]

CYRUS_IMAPD_CONF = """# Private Cyrus for bench/run: Debian's imapd.conf with the paths moved
# under the run's directory, users as user@domain (virtdomains), and
# passwords in a private sasldb.
configdirectory: {d}/conf
defaultpartition: default
partition-default: {d}/spool
proc_path: {d}/proc
mboxname_lockpath: {d}/lock
lmtpsocket: {d}/run/lmtp
idlesocket: {d}/run/idle
notifysocket: {d}/run/notify
admins: cyrus
allowplaintext: yes
sasl_pwcheck_method: auxprop
sasl_auxprop_plugin: sasldb
sasl_sasldb_path: {d}/sasldb2
sasl_mech_list: PLAIN LOGIN
unixhierarchysep: yes
virtdomains: userid
lmtp_downcase_rcpt: yes
hashimapspool: true
umask: 077
# Debian's 1 would refuse a second POP3 login of a user within a minute.
popminpoll: 0
# Dovecot and facteur deliver a message sent twice twice: so does this one.
duplicatesuppression: no
# Between delivery runs bench/run deletes and recreates the mailboxes:
# let that remove the files at once.
delete_mode: immediate
syslog_prefix: facteur-bench-cyrus
"""

CYRUS_CONF = """# Private Cyrus master configuration for bench/run (Debian's services,
# on loopback ports; -U 30 as Debian ships them).
START {{
  recover cmd="{b}/ctl_cyrusdb -C {conf} -r"
}}
SERVICES {{
  imap cmd="{b}/imapd -C {conf} -U 30" listen="127.0.0.1:{imap}" prefork=0 maxchild={imap_max}
  pop3 cmd="{b}/pop3d -C {conf} -U 30" listen="127.0.0.1:{pop3}" prefork=0 maxchild=200
  lmtp cmd="{b}/lmtpd -C {conf} -a" listen="127.0.0.1:{lmtp}" prefork=0 maxchild=100
}}
EVENTS {{
  checkpoint cmd="{b}/ctl_cyrusdb -C {conf} -c" period=30
}}
"""


def unpacked(cache, packages, marker, extra):
    """Debian's `packages`, fetched with apt-get download into `cache` and
    unpacked there with dpkg-deb (once: `marker` is a file they hold), and
    the libraries they declare (plus `extra` packages) installed when
    missing, never a package that is not a library, with no service
    started. The unpacked tree, or (None, the reason)."""
    root = Path(cache) / "root"
    if not (root / marker).exists():
        Path(cache).mkdir(parents=True, exist_ok=True)
        p = subprocess.run(["apt-get", "download"] + packages, cwd=cache, capture_output=True, text=True,
                           timeout=300)
        if p.returncode != 0:
            return None, f"apt-get download {' '.join(packages)} failed: {p.stderr.strip()[-300:]}"
        for deb in Path(cache).glob("*.deb"):
            run(["dpkg-deb", "-x", str(deb), str(root)])
    wanted = set(extra)
    for deb in Path(cache).glob("*.deb"):
        deps = subprocess.run(["dpkg-deb", "-f", str(deb), "Depends"], capture_output=True, text=True).stdout
        for alt in deps.split(","):
            name = alt.split("|")[0].split("(")[0].strip()
            if name.startswith("lib") and not name.startswith("<"):
                wanted.add(name.split(":")[0])
    missing = [n for n in sorted(wanted) if "install ok installed" not in subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", n], capture_output=True, text=True).stdout]
    if missing:
        log(f"installing what {packages[0]} needs: {' '.join(missing)}")
        guard = Path("/usr/sbin/policy-rc.d")
        made_guard = not guard.exists()
        if made_guard:  # e.g. sasl2-bin's saslauthd must not start
            guard.write_text("#!/bin/sh\n# bench/run: no service starts during this install\nexit 101\n")
            guard.chmod(0o755)
        try:
            subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends"] + missing,
                           capture_output=True, env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"), timeout=900)
        finally:
            if made_guard:
                guard.unlink()
    return root, None


def cyrus_root(cache):
    """Cyrus IMAP from Debian's packages, unpacked under `cache` (not
    installed: cyrus-common depends on a mail-transport-agent, which would
    replace facteur's or Postfix's package), with what it needs from the
    system: the libraries its packages depend on, saslpasswd2 (sasl2-bin),
    and the user `cyrus` its master drops to (created as cyrus-common's
    postinst would). The unpacked tree, or the reason it is not there."""
    root, why = unpacked(cache, CYRUS_PACKAGES, "usr/lib/cyrus/bin/master",
                         [] if Path("/usr/sbin/saslpasswd2").exists() else ["sasl2-bin"])
    if root is None:
        return None, why
    try:
        pwd.getpwnam("cyrus")
    except KeyError:
        run(["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
             "--shell", "/usr/sbin/nologin", "cyrus"])
    env = cyrus_env(root)
    p = subprocess.run(["ldd", str(root / "usr" / "lib" / "cyrus" / "bin" / "imapd")], capture_output=True,
                       text=True, env=env)
    if "not found" in p.stdout or p.returncode != 0:
        return None, "Cyrus's libraries are missing: " + " ".join(
            line.split()[0] for line in p.stdout.splitlines() if "not found" in line)
    return root, None


def cyrus_env(root):
    """Cyrus's shared libraries (libcyrus*.so) live in its unpacked tree."""
    libs = next((p.parent for p in (Path(root) / "usr" / "lib").glob("*/libcyrus.so.0")), Path(root) / "usr" / "lib")
    return dict(os.environ, LD_LIBRARY_PATH=str(libs))


def cyrus_version(root):
    changelog = Path(root) / "usr" / "lib" / "cyrus" / "cyrus-hardwired-config.txt"
    try:
        return next(line.split()[1] for line in changelog.read_text().splitlines()
                    if line.startswith("PACKAGE_VERSION"))
    except (OSError, StopIteration, IndexError):
        return "?"


class CyrusSide:
    """Cyrus IMAP 3 (its master, lmtpd, imapd, pop3d) from Debian's packages,
    with a private configuration: the other store of workloads 2 to 5. Its
    mailboxes are Cyrus's own format (one file per message, named `N.`,
    and a binary cyrus.index per folder), not Maildir: the seeded
    messages are written as Cyrus's files and indexed with its
    `reconstruct`, and deliveries are counted as those files."""

    name = "cyrus"
    # 3b's first SELECT: seeded files enter through reconstruct, which
    # builds the index, so there is no first SELECT without one to time.
    indexed_when_seeded = True
    # 3c: an imapd process per connection (as Dovecot without hibernation):
    # its memory per connection does not change with their number.
    idle_limit = 1000
    idle_limit_why = "Cyrus runs a process per connection, so its memory per connection is that of one process"

    def __init__(self, tmp, root, imap_max=1200):
        self.dir = Path(tmp) / "cyrus"
        self.root = Path(root)
        self.bin = self.root / "usr" / "lib" / "cyrus" / "bin"
        self.env = cyrus_env(root)
        self.conf = self.dir / "imapd.conf"
        self.acct = Accounting("cyrus")
        self.imap_port, self.pop3_port, self.lmtp_port = (free_port() for _ in range(3))
        self.has_imap = True
        self.imap_max = imap_max
        pw = pwd.getpwnam("cyrus")
        self.owner = (pw.pw_uid, pw.pw_gid)
        self.admin_password = os.urandom(12).hex()
        self.idle_settle_secs = 3
        self.proc = None
        self.paths = {}

    def setup(self, users, password):
        for sub in ("conf", "spool", "proc", "lock", "run", "log"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        self.conf.write_text(CYRUS_IMAPD_CONF.format(d=self.dir))
        (self.dir / "cyrus.conf").write_text(CYRUS_CONF.format(
            b=self.bin, conf=self.conf, imap=self.imap_port, pop3=self.pop3_port, lmtp=self.lmtp_port,
            imap_max=self.imap_max))
        db = str(self.dir / "sasldb2")
        for u, pw, realm in [(u, password, DOMAIN) for u in users] + [("cyrus", self.admin_password, None)]:
            run(["saslpasswd2", "-p", "-f", db, "-c"] + (["-u", realm] if realm else []) + [u], input=pw)
        os.chmod(self.dir, 0o755)
        for dirpath, dirnames, filenames in os.walk(self.dir):
            for n in [dirpath] + [os.path.join(dirpath, f) for f in filenames]:
                os.chown(n, *self.owner)
        self.users, self.password = list(users), password

    def start(self):
        log_f = open(self.dir / "log" / "master.log", "ab")
        self.proc = subprocess.Popen(
            [str(self.bin / "master"), "-C", str(self.conf), "-M", str(self.dir / "cyrus.conf"),
             "-p", str(self.dir / "run" / "master.pid"), "-D"],
            stdin=subprocess.DEVNULL, stdout=log_f, stderr=log_f, env=self.env, cwd=self.dir,
            preexec_fn=self.acct.preexec, start_new_session=True)
        log_f.close()
        self.acct.add_root(self.proc.pid)
        wait_for(lambda: self.proc.poll() is None and tcp_up(self.imap_port) and tcp_up(self.lmtp_port), 30,
                 "cyrus")
        self.create(self.users)

    def admin(self):
        a = imaplib.IMAP4("127.0.0.1", self.imap_port, timeout=60)
        a.login("cyrus", self.admin_password)
        return a

    @staticmethod
    def mailbox(user):
        return f"user/{user}@{DOMAIN}"

    def create(self, users):
        a = self.admin()
        try:
            for u in users:
                typ, data = a.create(self.mailbox(u))
                if typ != "OK":
                    raise RuntimeError(f"cyrus: CREATE {self.mailbox(u)}: {data}")
                self.paths.pop(u, None)
        finally:
            a.logout()

    def path(self, user):
        """The folder's directory (Cyrus 3 names it after the mailbox's
        unique id)."""
        if user not in self.paths:
            p = run([str(self.bin / "mbpath"), "-C", str(self.conf), self.mailbox(user)], env=self.env)
            self.paths[user] = Path(p.stdout.strip().splitlines()[-1])
        return self.paths[user]

    @staticmethod
    def count(path):
        try:
            return sum(1 for e in os.scandir(path) if e.name.endswith(".") and e.name[:-1].isdigit())
        except FileNotFoundError:
            return 0

    def empty_and_count(self, users):
        """Empties the users' INBOXes (deleted and created again) and returns
        a function counting the messages delivered into them since."""
        a = self.admin()
        try:
            for u in users:
                # an administrator deletes a user's mailbox after granting
                # itself the right to (as cyradm's documentation shows)
                for typ, data in (a.setacl(self.mailbox(u), "cyrus", "lrswipkxtecda"), a.delete(self.mailbox(u))):
                    if typ != "OK":
                        raise RuntimeError(f"cyrus: emptying {self.mailbox(u)}: {data}")
        finally:
            a.logout()
        self.create(users)
        paths = [self.path(u) for u in users]
        return lambda: sum(self.count(p) for p in paths)

    def seed(self, user, seed_name, count, size, seen_every=3):
        """The same messages as seed.seed() writes for the other sides, as
        Cyrus's message files (CRLF, as Cyrus stores them; mtime =
        INTERNALDATE), indexed by reconstruct; then the same \\Seen flags,
        set by the user (Cyrus keeps the owner's \\Seen in the index)."""
        d = self.path(user)
        for i in range(count):
            p = d / f"{i + 1}."
            with open(p, "wb") as f:
                f.write(S.message(seed_name, i, size).replace(b"\n", b"\r\n"))
            os.chown(p, *self.owner)
            os.utime(p, (S.BASE_TIME + i, S.BASE_TIME + i))
        run(["runuser", "-u", "cyrus", "--", str(self.bin / "reconstruct"), "-C", str(self.conf),
             self.mailbox(user)], env=self.env, timeout=1800)
        seen = [str(i + 1) for i in range(count) if i % seen_every != 0]
        c = imaplib.IMAP4("127.0.0.1", self.imap_port, timeout=300)
        try:
            c.login(f"{user}@{DOMAIN}", self.password)
            c.select("INBOX")
            for k in range(0, len(seen), 2000):
                typ, data = c.uid("STORE", ",".join(seen[k:k + 2000]), "+FLAGS.SILENT", "(\\Seen)")
                if typ != "OK":
                    raise RuntimeError(f"cyrus: STORE \\Seen in {user}'s INBOX: {data}")
            typ, data = c.select("INBOX")
            if typ != "OK" or int(data[0]) != count:
                raise RuntimeError(f"cyrus: {user}'s INBOX has {data} messages after reconstruct, {count} seeded")
        finally:
            c.logout()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        try:
            wait_for(lambda: not [p for p in self.acct.pids() if p != os.getpid()], 15, "cyrus to exit")
        except RuntimeError:
            pass
        self.acct.kill_leftovers()


# --- Peers whose paths are compiled in: a private mount namespace ------------

class Namespaced:
    """A peer whose programs look for their files at paths compiled into
    them (Courier, OpenSMTPD): it runs under `unshare --mount`, where a
    shell script mounts the run's (or the unpacked) directories on those
    paths, then starts it. Mount points missing on the machine are created
    empty first and removed at the end."""

    def make_mount_points(self, paths):
        self.made = []
        for d in paths:
            missing = []
            p = Path(d)
            while not p.exists():
                missing.append(p)
                p = p.parent
            for m in reversed(missing):
                m.mkdir()
                self.made.append(m)

    def start_namespaced(self, script, log_name, acct, up, what):
        """Runs `script` (lines of sh) in a new mount namespace, in the
        side's group `acct`; waits until `up()` or the process ends."""
        d = self.dir
        (d / "start.sh").write_text("\n".join(["set -e"] + script) + "\n")
        with open(d / "log" / log_name, "ab") as log_f:
            self.proc = subprocess.Popen(
                ["unshare", "--mount", "--propagation", "private", "sh", str(d / "start.sh")],
                stdin=subprocess.DEVNULL, stdout=log_f, stderr=log_f, cwd=d, preexec_fn=acct.preexec,
                start_new_session=True)
        acct.add_root(self.proc.pid)
        wait_for(lambda: self.proc.poll() is None and up(), 30, what)

    def stop_namespaced(self, acct, what):
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, 15)
                self.proc.wait(20)
            except (OSError, subprocess.TimeoutExpired):
                pass
        try:
            wait_for(lambda: not [p for p in acct.pids() if p != os.getpid()], 15, f"{what} to exit")
        except RuntimeError:
            pass
        acct.kill_leftovers()
        for m in reversed(self.made):
            try:
                m.rmdir()
            except OSError:
                pass


# --- Courier-IMAP (workloads 3, 4, 5 and 8: the Maildir store of old) --------

COURIER_PACKAGES = ["courier-imap", "courier-pop", "courier-base", "courier-authlib", "courier-authdaemon",
                    "courier-authlib-userdb"]
# Paths compiled into Courier's programs: in its private mount namespace,
# each has the unpacked (or the run's) directory mounted on it.
COURIER_MOUNTS = ["/etc/courier", "/run/courier", "/usr/lib/courier", "/usr/lib/courier-authlib"]


def courier_root(cache):
    """Courier-IMAP and its POP3 server from Debian's packages, unpacked under
    `cache` (not installed: they depend on a mail-transport-agent), with
    the libraries they declare. The unpacked tree, or the reason it is
    not there."""
    root, why = unpacked(cache, COURIER_PACKAGES, "usr/bin/imapd", [])
    if root is None:
        return None, why
    env = dict(os.environ, LD_LIBRARY_PATH=str(root / "usr" / "lib"))
    p = subprocess.run(["ldd", str(root / "usr" / "bin" / "imapd"),
                        str(root / "usr" / "lib" / "courier" / "courier-authlib" / "authdaemond")],
                       capture_output=True, text=True, env=env)
    if "not found" in p.stdout or p.returncode != 0:
        return None, "Courier's libraries are missing: " + " ".join(
            line.split()[0] for line in p.stdout.splitlines() if "not found" in line)
    return root, None


def courier_version(root):
    for deb in Path(root).parent.glob("courier-imap_*.deb"):
        return deb.name.split("_")[1]
    return "?"


class CourierSide(Namespaced):
    """Courier-IMAP 5 (couriertcpd, imaplogin, imapd) and courierpop3d, their
    logins checked by Courier's authdaemond against a userdb holding the
    run's hashes, all from Debian's packages unpacked, run in a private
    mount namespace (COURIER_MOUNTS: Courier's programs find their
    configuration, modules and the authdaemon socket at compiled-in
    paths). It reads Maildir, so its mailboxes are seeded with the very
    files of the other two. No LMTP server: not in workload 2."""

    name = "courier"
    # 3c: an imapd process per connection
    idle_limit = 1000
    idle_limit_why = "Courier runs a process per connection, so its memory per connection is that of one process"

    def __init__(self, tmp, root):
        self.dir = Path(tmp) / "courier"
        self.root = Path(root)
        self.acct = Accounting("courier")
        self.imap_port, self.pop3_port = free_port(), free_port()
        self.has_imap = True
        self.owner = vmail_owner()
        self.idle_settle_secs = 3
        self.proc = None
        self.made = []  # mount points this run created (removed at the end)

    def maildir(self, user):
        return self.dir / "mail" / user

    @staticmethod
    def userdb_password(stored):
        """The userdb field for a hash of the run (sha512-crypt, as crypt(3)
        reads it, or plain), or None (argon2id: Courier cannot check it)."""
        if stored.startswith("{SHA512-CRYPT}"):
            return "systempw=" + stored[len("{SHA512-CRYPT}"):]
        if stored.startswith("{PLAIN}"):
            return "clearpw=" + stored[len("{PLAIN}"):]
        return None

    def setup(self, hashes):
        for sub in ("etc", "run/authdaemon", "mail", "log"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o755)
        os.chown(self.dir / "mail", *self.owner)
        lines = []
        for u, h in hashes.items():
            pw = self.userdb_password(h)
            if pw is None:
                raise RuntimeError("Courier's userdb cannot check this run's password hash (argon2id)")
            m = self.maildir(u)
            # Courier refuses a login whose Maildir does not exist (the
            # others create it): every user gets one, as maildirmake would
            S.make_maildir(m, self.owner)
            lines.append(f"{u}@{DOMAIN}\tuid={self.owner[0]}|gid={self.owner[1]}|home={m}|mail={m}|{pw}\n")
        userdb = self.dir / "etc" / "userdb"
        userdb.write_text("".join(lines))
        os.chmod(userdb, 0o600)
        (self.dir / "etc" / "authdaemonrc").write_text(
            'authmodulelist="authuserdb"\ndaemons=5\nauthdaemonvar=/run/courier/authdaemon\nDEBUG_LOGIN=0\n'
            'DEFAULTOPTIONS=""\nLOGGEROPTS=""\n')
        # Debian's settings for imapd and pop3d, read by the servers from
        # their environment (as the init scripts give them)
        for f in ("imapd", "pop3d"):
            shutil.copy(self.root / "etc" / "courier" / f, self.dir / "etc" / f)
        (self.dir / "etc" / "imapd-ssl").write_text("")
        self.make_mount_points(COURIER_MOUNTS)

    def start(self):
        r, d = self.root, self.dir
        tcpd = f"{r}/usr/sbin/couriertcpd -address=127.0.0.1 -nodnslookup -noidentlookup"
        script = (
            [f"mount --bind {src} {dst}" for src, dst in zip(
                [d / "etc", d / "run", r / "usr/lib/courier", r / "usr/lib/courier-authlib"], COURIER_MOUNTS)]
            + [f"export LD_LIBRARY_PATH={r}/usr/lib",
               f"{r}/usr/sbin/makeuserdb",
               "/usr/lib/courier/courier-authlib/authdaemond &",
               f"(set -a; . /etc/courier/imapd; exec {tcpd} -maxprocs=1200 -maxperip=1200 {self.imap_port} "
               f"/usr/lib/courier/courier/imaplogin {r}/usr/bin/imapd Maildir) &",
               f"(set -a; . /etc/courier/pop3d; exec {tcpd} -maxprocs=200 -maxperip=200 {self.pop3_port} "
               "/usr/lib/courier/courier/courierpop3login /usr/lib/courier/courier/courierpop3d Maildir) &",
               "wait"])
        self.start_namespaced(script, "courier.log", self.acct,
                              lambda: tcp_up(self.imap_port) and tcp_up(self.pop3_port), "courier")

    def stop(self):
        self.stop_namespaced(self.acct, "courier")


# --- OpenSMTPD (workload 1's third MTA) ---------------------------------------

# Paths compiled into OpenSMTPD 6.8 that no option moves: its queue, its
# privilege-separation chroot and its MDA helpers (mail.lmtp). In its
# private mount namespace each has the run's (or the unpacked) directory
# mounted on it; /run (its control socket) is a tmpfs there.
OPENSMTPD_MOUNTS = ["/var/spool/smtpd", "/var/lib/opensmtpd/empty", "/usr/libexec/opensmtpd"]

OPENSMTPD_CONF = """# Private OpenSMTPD for bench/run: SMTP in, its queue, LMTP out to the
# same Dovecot socket as Postfix's and Exim's (mail.lmtp, run as vmail).
table vusers file:{d}/vusers
listen on 127.0.0.1 port {port}
action "dovecot" lmtp "{lmtp_socket}" rcpt-to virtual <vusers>
match from any for domain "{domain}" action "dovecot"
"""


def opensmtpd_root(cache):
    """OpenSMTPD from Debian's package, unpacked under `cache` (not installed:
    it provides mail-transport-agent), with the libraries it declares and
    the users opensmtpd and opensmtpq it drops to (created as its postinst
    would). The unpacked tree, or the reason it is not there."""
    root, why = unpacked(cache, ["opensmtpd"], "usr/sbin/smtpd", [])
    if root is None:
        return None, why
    for u in ("opensmtpd", "opensmtpq"):
        try:
            pwd.getpwnam(u)
        except KeyError:
            run(["useradd", "--system", "--user-group", "--no-create-home", "--home-dir",
                 "/var/lib/opensmtpd/empty", "--shell", "/usr/sbin/nologin", u])
    p = subprocess.run(["ldd", str(root / "usr" / "sbin" / "smtpd")], capture_output=True, text=True)
    if "not found" in p.stdout or p.returncode != 0:
        return None, "OpenSMTPD's libraries are missing: " + " ".join(
            line.split()[0] for line in p.stdout.splitlines() if "not found" in line)
    return root, None


def opensmtpd_version(root):
    for deb in Path(root).parent.glob("opensmtpd_*.deb"):
        return deb.name.split("_")[1]
    return "?"


class OpenSmtpdSide(Namespaced):
    """OpenSMTPD 6.8 (smtpd, its queue, its lmtp action) handing mail to the
    Dovecot of `peer` over the same LMTP socket as Postfix: for workload 1
    only. Its CPU is OpenSMTPD's plus Dovecot's."""

    name = "opensmtpd+dovecot"

    def __init__(self, tmp, peer, root):
        self.dir = Path(tmp) / "opensmtpd"
        self.peer = peer
        self.root = Path(root)
        self.own = Accounting("opensmtpd")
        self.acct = SummedAccounting(self.own, peer.acct)
        self.smtp_port = free_port()
        self.has_imap = False
        self.proc = None
        self.made = []  # mount points this run created (removed at the end)

    def setup(self):
        for sub, mode in (("spool", 0o711), ("empty", 0o755), ("log", 0o755)):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
            os.chmod(self.dir / sub, mode)
        os.chmod(self.dir, 0o755)
        (self.dir / "vusers").write_text(f"@{DOMAIN} vmail\n")
        # OpenSMTPD's resolver (libasr) asks DNS before /etc/hosts by default,
        # for each client's name: /etc/hosts first, and DNS only on loopback
        # (nothing answers there), never the machine's resolver.
        (self.dir / "resolv.conf").write_text(
            "# bench/run: OpenSMTPD's private resolv.conf\nnameserver 127.0.0.1\nlookup file bind\n")
        (self.dir / "smtpd.conf").write_text(OPENSMTPD_CONF.format(
            d=self.dir, port=self.smtp_port, lmtp_socket=self.peer.dov / "run" / "lmtp", domain=DOMAIN))
        self.make_mount_points(OPENSMTPD_MOUNTS)

    def maildir(self, user):
        return self.peer.maildir(user)

    def start(self):
        r, d = self.root, self.dir
        script = (
            [f"mount --bind {src} {dst}" for src, dst in zip(
                [d / "spool", d / "empty", r / "usr/libexec/opensmtpd"], OPENSMTPD_MOUNTS)]
            + [f"mount --bind {d}/resolv.conf /etc/resolv.conf",
               "mount -t tmpfs -o mode=755 facteur-bench-run /run",
               f"exec {r}/usr/sbin/smtpd -d -f {d}/smtpd.conf"])
        self.start_namespaced(script, "smtpd.log", self.own, lambda: tcp_up(self.smtp_port), "opensmtpd")

    def stop(self):
        self.stop_namespaced(self.own, "opensmtpd")
