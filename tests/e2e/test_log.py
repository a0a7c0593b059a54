"""The daemons' logs, in both formats, and `facteurctl log`: one message
sent over SMTP is followed by its queue id through smtpd, qmgr and lmtpd
(`--queue-id`); `[log] format = "json"` gives one JSON object per line,
each naming its daemon, and every line about a message carries its
queue_id; `--errors` keeps warnings only."""

import json
import re
import smtplib

import pytest

from harness import Facteur, crlf, wait_for

ALICE = "alice@example.test"


def site(fmt):
    f = Facteur(extra={"log": f'format = "{fmt}"', "qmgr": 'scan_interval = "1s"'})
    f.add_user(ALICE)
    f.start_all()
    return f


def send(f, subject):
    with smtplib.SMTP("127.0.0.1", f.smtp_port, timeout=30) as s:
        s.ehlo()
        assert s.mail("bob@example.test")[0] == 250
        assert s.rcpt(ALICE)[0] == 250
        code, text = s.data(crlf(f"From: bob@example.test\nTo: {ALICE}\nSubject: {subject}\n\nhi\n"))
        assert code == 250, (code, text)
        # A refused recipient gives a warning-free refusal line too.
        s.rset()
    qid = re.search(rb"queued as (\w+)", text).group(1).decode()
    wait_for(lambda: f.all_files(ALICE), 20, "delivery")
    wait_for(lambda: qid in f.log_text("lmtpd"), 20, "lmtpd's line")
    return qid


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_one_message_through_every_daemon(fmt):
    f = site(fmt)
    try:
        qid = send(f, f"logged {fmt}")
        out = f.ctl("log", "--dir", str(f.root), "--queue-id", qid)
        lines = out.strip().splitlines()
        daemons = {l.split()[1] for l in lines}
        assert {"facteur-smtpd", "facteur-qmgr", "facteur-lmtpd"} <= daemons, out
        times = [l.split()[0] for l in lines]
        assert times == sorted(times), out
        assert all(qid in l for l in lines)
        # By address: the delivery lines name the recipient.
        assert ALICE in f.ctl("log", "--dir", str(f.root), "--address", ALICE.upper())
        assert f.ctl("log", "--dir", str(f.root), "--errors", "--queue-id", qid).strip() == ""
        if fmt == "json":
            for name in ("smtpd", "qmgr", "lmtpd"):
                for raw in f.log_text(name).splitlines():
                    obj = json.loads(raw)
                    assert obj["daemon"] == f"facteur-{name}", raw
                    msg = obj["fields"].get("message", "")
                    if msg in ("queued", "delivered") or (name == "qmgr" and msg == "delivered"):
                        assert obj["fields"].get("queue_id"), raw
    finally:
        f.cleanup()
