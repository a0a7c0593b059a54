"""Crash safety: SIGKILL facteur-lmtpd in the middle of 200 concurrent
deliveries. Every message that got its 250 is in new/ whole; nothing
half-written is visible in new/ or cur/; the next start works."""

import concurrent.futures
import smtplib
import threading
import time

from harness import as_stored, crlf, strip_added_headers


def test_kill9_during_200_concurrent_deliveries(lmtpd):
    f = lmtpd
    # Big enough bodies that the kill lands while files are being written.
    def message(i):
        return crlf(f"Subject: crash {i}\nX-Seq: {i}\n\n" + (f"line {i} " * 20 + "\n") * (200 + (i % 7) * 300))

    acked = set()
    lock = threading.Lock()

    def client(k):
        try:
            c = smtplib.LMTP("127.0.0.1", f.lmtp_port)
            c.ehlo()
            for i in range(k, 200, 20):
                c.mail("s@remote.test")
                c.rcpt("alice@example.test")
                code, _ = c.data(message(i))
                if code == 250:
                    with lock:
                        acked.add(i)
            c.quit()
        except (smtplib.SMTPException, OSError):
            pass  # the server died under us: expected

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        futs = [pool.submit(client, k) for k in range(20)]
        deadline = time.monotonic() + 60
        while len(acked) < 40 and time.monotonic() < deadline:
            time.sleep(0.005)
        f.kill9(f.lmtpd)
        for fut in futs:
            fut.result()
    assert 40 <= len(acked) < 200, f"the kill should land mid-run ({len(acked)} acknowledged)"

    md = f.maildir("alice@example.test")
    stored = {}
    for p in list((md / "new").iterdir()) + list((md / "cur").iterdir()):
        content = strip_added_headers(p.read_bytes())
        seq = int(content.split(b"X-Seq: ")[1].split(b"\n")[0])
        # Whole: byte for byte what was sent (no truncated file is visible).
        assert content == as_stored(message(seq)), f"message {seq} is not whole in {p}"
        assert seq not in stored
        stored[seq] = p
    missing = acked - set(stored)
    assert not missing, f"acknowledged but lost: {sorted(missing)}"

    # The next start works and delivers.
    f.start_lmtpd()
    c = smtplib.LMTP("127.0.0.1", f.lmtp_port)
    c.ehlo()
    c.mail("s@remote.test")
    c.rcpt("alice@example.test")
    assert c.data(message(999))[0] == 250
    c.quit()
