"""A private Dovecot (Debian's dovecot-imapd) on loopback: IMAP only, one
passwd-file of users, Maildir++ homes under a directory the test gives,
its own base, state and log directories; never the system's instance or
/etc/dovecot. Mail is owned by the system user `vmail` (made if missing, as
Debian's facteur package makes it)."""

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
from pathlib import Path

from harness import wait_for

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"

CONF = """# Private Dovecot of facteur's tests (see ../shared/peer-configs/dovecot.conf).
protocols = imap{pop3}
listen = 127.0.0.1
base_dir = {d}/run
state_dir = {d}/state
instance_name = facteur-test-dovecot-{port}
log_path = {d}/log/dovecot.log
info_log_path = {d}/log/dovecot-info.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/users
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {d}/users
  default_fields = uid=vmail gid=vmail home={mail}/%u
}}
mail_location = maildir:~
first_valid_uid = 100
namespace inbox {{
  inbox = yes
  separator = /
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
"""

POP3 = """service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
"""


def vmail_owner():
    try:
        pw = pwd.getpwnam("vmail")
    except KeyError:
        subprocess.run(["useradd", "--system", "--user-group", "--no-create-home", "--home-dir",
                        "/nonexistent", "--shell", "/usr/sbin/nologin", "vmail"], check=True)
        pw = pwd.getpwnam("vmail")
    return pw.pw_uid, pw.pw_gid


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def chown_tree(path, owner):
    for root, dirs, files in os.walk(path):
        os.chown(root, *owner)
        for n in dirs + files:
            os.lchown(os.path.join(root, n), *owner)


@contextlib.contextmanager
def dovecot(d, mail, users, pop3=False):
    """Dovecot serving `users` ({login: password}) from `mail`/<login>;
    yields its IMAP port (with `pop3`, the IMAP and the POP3 ports).
    Stopped (and its processes gone) afterwards."""
    d, mail = Path(d), Path(mail)
    owner = vmail_owner()
    for sub in ("run", "state", "log"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    mail.mkdir(parents=True, exist_ok=True)
    chown_tree(mail, owner)
    os.chmod(d, 0o755)
    port = free_port()
    (d / "users").write_text("".join(f"{u}:{{PLAIN}}{p}::::::\n" for u, p in users.items()))
    conf = d / "dovecot.conf"
    pop3_port = free_port() if pop3 else None
    text = CONF.format(d=d, mail=mail, port=port, pop3=" pop3" if pop3 else "")
    if pop3:
        text += POP3.format(port=pop3_port)
    conf.write_text(text)
    # Output to a file, not a pipe: the daemon it leaves behind keeps its
    # descriptors, and a pipe would never reach end of file.
    with open(d / "log" / "start.log", "w") as out:
        rc = subprocess.run([DOVECOT, "-c", str(conf)], stdout=out, stderr=subprocess.STDOUT).returncode
    assert rc == 0, (d / "log" / "start.log").read_text()

    def up():
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
        return False

    try:
        wait_for(up, 30, "dovecot")
        yield (port, pop3_port) if pop3 else port
    finally:
        subprocess.run([DOVECOT, "-c", str(conf), "stop"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        pidfile = d / "run" / "master.pid"
        wait_for(lambda: not pidfile.exists(), 20, "dovecot to stop")
