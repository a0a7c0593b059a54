"""Differential tests: the actions facteur's interpreter decides (through
`facteurctl sieve test`) against those of Dovecot's Pigeonhole (`sieve-test`
from Debian's dovecot-sieve, run as `nobody` in a private directory with a
one-line configuration: it refuses root and writes beside the script), for
a corpus of scripts and messages. Both are reduced to the same form: the
folders stored into (with their flags, lower-cased; the implicit keep
included), the addresses redirected to, reject, discard, and whether a
vacation reply is part of the result."""

import os
import re
import shutil
import subprocess
import tempfile

import pytest

from harness import BIN

EXTS = "+editheader +vacation-seconds +special-use"

MESSAGES = {
    "list": """From: Alice <alice+news@example.org>
To: bob@example.com, "Team" <team@example.com>
Cc: carol@example.net
Subject: [sieve-users] Re: the new draft
List-Id: Sieve users <sieve-users.lists.example.org>
Date: Tue, 01 Apr 2025 09:06:31 -0800
Message-ID: <draft-1@example.org>
X-Spam-Score: 7

Hello, the draft is attached. Café.
""",
    "plain": """From: boss@example.com
To: bob@example.com
Subject: Quarterly report
Date: Wed, 02 Apr 2025 17:30:00 +0000
Message-ID: <q1@example.com>

Numbers inside.
""",
    "robot": """From: "Daily Robot" <noreply@robot.example.net>
To: undisclosed-recipients:;
Subject: daily report 2025-04-03
Auto-Submitted: auto-generated
Precedence: bulk
X-Spam-Flag: YES

beep
""",
}

SCRIPTS = {
    "sorting": r'''require ["fileinto"];
if header :contains "list-id" "sieve-users" { fileinto "Lists/sieve"; stop; }
if address :is "from" "boss@example.com" { fileinto "Boss"; }
if header :is "X-Spam-Flag" "YES" { fileinto "Junk"; stop; }
''',
    "flags": r'''require ["imap4flags", "fileinto"];
if address :localpart "from" "boss" { addflag "\\Flagged"; }
if header :contains "subject" "report" { addflag ["\\Seen", "$Report"]; }
if hasflag "$Report" { fileinto :flags "\\Answered" "Reports"; }
''',
    "variables": r'''require ["variables", "fileinto", "regex"];
if header :matches "subject" "[*] *" { set :lower "list" "${1}"; fileinto "lists.${list}"; stop; }
if header :regex "subject" "^daily report ([0-9]{4})" { fileinto "robots.${1}"; }
''',
    "relational": r'''require ["relational", "comparator-i;ascii-numeric", "fileinto"];
if header :value "ge" :comparator "i;ascii-numeric" "X-Spam-Score" "5" { fileinto "Spam"; }
if address :count "ge" :comparator "i;ascii-numeric" ["to", "cc"] "3" { fileinto "Crowd"; }
''',
    "envelope": r'''require ["envelope", "subaddress", "fileinto"];
if envelope :detail "to" "sieve" { fileinto "sieve-mail"; }
if envelope :domain "from" "robot.example.net" { discard; stop; }
if address :user "from" "alice" { fileinto "alice"; }
''',
    "copy-redirect": r'''require ["copy", "fileinto"];
if header :contains "subject" "report" { redirect :copy "archive@example.net"; }
if address :domain "from" "example.org" { redirect "forward@example.net"; }
''',
    "reject-discard": r'''require ["reject"];
if header :is "Auto-Submitted" "auto-generated" { discard; }
elsif header :contains "subject" "draft" { reject "No drafts here."; }
''',
    "body-date": r'''require ["body", "date", "relational", "fileinto"];
if body :text :contains "café" { fileinto "Cafe"; }
if date :zone "+0000" :value "ge" "date" "hour" "17" { fileinto "Late"; }
if date :originalzone "date" "weekday" "2" { fileinto "Tuesday"; }
''',
    "anyof-not": r'''require ["fileinto"];
if anyof (not exists "Message-ID", header :contains "precedence" "bulk") { fileinto "Bulk"; }
if allof (exists ["From", "To"], not size :over 1K) { fileinto "Small"; }
''',
    "vacation": r'''require ["vacation"];
vacation :days 3 :subject "Away" "I am away.";
''',
    "duplicate-keep": r'''require ["fileinto"];
fileinto "A"; fileinto "A"; keep; fileinto "INBOX";
''',
    "mailbox-specialuse": r'''require ["fileinto", "mailbox", "special-use"];
if header :contains "subject" "report" { fileinto :create "Created"; }
''',
}

ENVELOPE = ("alice@example.org", "bob+sieve@example.com")


def canon_pigeonhole(out):
    acts = set()
    section = None
    current = None
    for line in out.splitlines():
        if line.startswith("Performed actions:"):
            section = "performed"
        elif line.startswith("Implicit keep:"):
            section = "implicit"
        m = re.match(r"^ \* store message in folder: (.*)$", line)
        if m:
            current = ["store", m.group(1), []]
            acts.add(("store", m.group(1)))
            continue
        m = re.match(r"^\s+\+ add IMAP flags: (.*)$", line)
        if m and current:
            acts.discard(("store", current[1]))
            current[2] = sorted(f.lower() for f in m.group(1).split())
            acts.add(("store", current[1], " ".join(current[2])))
            continue
        m = re.match(r"^ \* redirect message to: <(.*)>$", line)
        if m:
            acts.add(("redirect", m.group(1)))
        elif line.startswith(" * reject message"):
            acts.add(("reject",))
        elif line.strip() == "* discard":
            acts.add(("discard",))
        elif line.startswith(" * send vacation message"):
            acts.add(("vacation",))
    return normalize(acts)


def canon_facteur(out):
    acts = set()
    for line in out.splitlines():
        m = re.match(r'^(?:implicit keep|keep) \(INBOX\)(?: flags (.*))?$', line)
        if m:
            acts.add(store("INBOX", m.group(1)))
            continue
        m = re.match(r'^fileinto "(.*?)"(?: flags (.*?))?(?: \(create\))?(?: \(copy\))?(?: \(special-use .*\))?$', line)
        if m:
            acts.add(store(m.group(1), m.group(2)))
            continue
        m = re.match(r"^redirect to (\S+)", line)
        if m:
            acts.add(("redirect", m.group(1)))
        elif line.startswith(("reject ", "ereject ")):
            acts.add(("reject",))
        elif line == "discard":
            acts.add(("discard",))
        elif line.startswith("vacation reply"):
            acts.add(("vacation",))
    return normalize(acts)


def store(folder, flags):
    if flags:
        return ("store", folder, " ".join(sorted(f.lower() for f in flags.split())))
    return ("store", folder)


def normalize(acts):
    # a store without flags and the same with none are one thing
    return sorted(acts)


@pytest.fixture(scope="module")
def workdir():
    d = tempfile.mkdtemp(prefix="sieve-diff-")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def pigeonhole(workdir, name, script, msg):
    d = os.path.join(workdir, name)
    os.makedirs(os.path.join(d, "home", "Maildir", "cur"), exist_ok=True)
    for sub in ("new", "tmp"):
        os.makedirs(os.path.join(d, "home", "Maildir", sub), exist_ok=True)
    with open(os.path.join(d, "script.sieve"), "w") as f:
        f.write(script)
    with open(os.path.join(d, "msg.eml"), "w") as f:
        f.write(msg)
    with open(os.path.join(d, "dovecot.conf"), "w") as f:
        f.write("mail_location = maildir:~/Maildir\n")
    subprocess.run(["chown", "-R", "nobody", d], check=True)
    cmd = ["sieve-test", "-c", "dovecot.conf", "-C", "-x", EXTS, "-f", ENVELOPE[0], "-a", ENVELOPE[1],
           "script.sieve", "msg.eml"]
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "nobody", "--", "env", f"HOME={d}/home"] + cmd
    r = subprocess.run(cmd, cwd=d, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"sieve-test failed ({r.returncode}): {r.stdout}{r.stderr}"
    return r.stdout


def facteur(workdir, name, script, msg):
    d = os.path.join(workdir, name)
    os.makedirs(d, exist_ok=True)
    s, m = os.path.join(d, "f-script.sieve"), os.path.join(d, "f-msg.eml")
    with open(s, "w") as f:
        f.write(script)
    with open(m, "w") as f:
        f.write(msg.replace("\n", "\r\n"))
    r = subprocess.run([str(BIN / "facteurctl"), "--config", "/nonexistent", "sieve", "test", s, m,
                        "--from", ENVELOPE[0], "--to", ENVELOPE[1]], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


@pytest.mark.parametrize("sname", sorted(SCRIPTS))
@pytest.mark.parametrize("mname", sorted(MESSAGES))
def test_same_actions_as_pigeonhole(workdir, sname, mname):
    name = f"{sname}-{mname}"
    ours = facteur(workdir, name, SCRIPTS[sname], MESSAGES[mname])
    theirs = pigeonhole(workdir, name, SCRIPTS[sname], MESSAGES[mname])
    assert canon_facteur(ours) == canon_pigeonhole(theirs), f"facteur:\n{ours}\nPigeonhole:\n{theirs}"
