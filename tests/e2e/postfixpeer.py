"""A private Postfix instance on loopback, as the receiving server of the
remote-delivery tests (test_remote.py) and, with OpenDKIM as its milter,
the judge of facteur's DKIM signatures (test_dkim.py): its own directory
for configuration, queue, log and virtual mailboxes, never the system's."""

import contextlib
import os
import shutil
import smtplib
import subprocess
import tempfile
from pathlib import Path

from harness import wait_for

POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"

VMAILBOX = "bob@remote.test remote/bob/\ncarol@remote.test remote/carol/\nbob@sts.test remote/stsbob/\n"
# wrongname.test: a domain whose MX certificate does not match (TLS verify).
DOMAINS = "remote.test wrongname.test sts.test"


@contextlib.contextmanager
def world_dir(prefix):
    """A directory for a test's peers under /tmp, not pytest's tmp_path:
    Postfix's unprivileged processes must reach it. Removed afterwards
    unless FACTEUR_KEEP is set."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    os.chmod(tmp, 0o755)
    try:
        yield tmp
    finally:
        if os.environ.get("FACTEUR_KEEP") is None:
            shutil.rmtree(tmp, ignore_errors=True)


def start_postfix(d, port, certs, addr="127.0.0.2", vmailbox=VMAILBOX, domains=DOMAINS, main_extra=""):
    """Postfix smtpd on addr:port, STARTTLS with the certificate `certs`/mx.pem
    (None: no TLS), virtual mailboxes `vmailbox` ("address remote/user/"
    lines) in the virtual domains `domains`, SIZE 100000, no SMTPUTF8,
    `main_extra` appended to main.cf. Returns, once smtpd answers, a
    function that runs `postfix -c DIR ARGS...`."""
    for sub in ("etc", "spool", "data", "log", "vmail"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    os.chmod(d, 0o755)
    os.chown(d / "vmail", 65534, 65534)
    (d / "vmailbox").write_text(vmailbox)
    tls = f"""smtpd_tls_security_level = may
smtpd_tls_cert_file = {certs}/mx.pem
smtpd_tls_key_file = {certs}/mx.key
smtpd_tls_loglevel = 1""" if certs else "smtpd_tls_security_level = none"
    (d / "etc" / "main.cf").write_text(f"""compatibility_level = 3.6
queue_directory = {d}/spool
data_directory = {d}/data
maillog_file = {d}/log/postfix.log
maillog_file_prefixes = {d}
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.remote.test
mydestination =
virtual_mailbox_domains = {domains}
virtual_mailbox_maps = texthash:{d}/vmailbox
virtual_mailbox_base = {d}/vmail
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
virtual_minimum_uid = 100
virtual_transport = virtual
alias_maps =
alias_database =
inet_interfaces = all
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
relayhost =
default_transport = error:no outbound mail from this test instance
relay_transport = error:no outbound mail from this test instance
message_size_limit = 100000
smtputf8_enable = no
{tls}
biff = no
{main_extra}
""")
    (d / "etc" / "master.cf").write_text(f"""{addr}:{port} inet n - n - - smtpd
pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
tlsmgr unix - - n 1000? 1 tlsmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
virtual unix - n n - - virtual
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
showq unix n - n - - showq
""")
    run = lambda *a: subprocess.run([POSTFIX, "-c", str(d / "etc"), *a], capture_output=True, text=True, timeout=60)
    run("set-permissions")
    r = run("start")
    assert r.returncode == 0, r.stdout + r.stderr

    def up():
        try:
            smtplib.SMTP(addr, port, timeout=2).quit()
            return True
        except OSError:
            return False

    wait_for(up, 30, "postfix smtpd")
    return run
