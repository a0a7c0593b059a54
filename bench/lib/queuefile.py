"""Writes facteur queue files (docs/queue-file.md, format version 1) for
workload 6 of bench/run: a queue of tens of thousands of messages made in
seconds, straight into a queue directory while facteur-qmgr is stopped
(nobody reads a file while it is written). Standard library only.

A deferred message is written as qmgr leaves one after a failed attempt:
its delivery state in a state log of one frame (`state/<id>.state`), so
that the next attempt appends to it, as it would in a real backlog.

Files are written without fsync: bench/run needs a queue, not durability.
A file qmgr cannot parse goes to corrupt/, which workload 6 checks is
empty afterwards, so this writer is checked against the real reader on
every run.
"""

import os
import struct

MAGIC = b"\x89FQF\r\n\x1a\n"
STATE_MAGIC = b"\x89FQS\r\n\x1a\n"
VERSION = 1
PENDING, DEFERRED = 0, 3


def _record(kind, payload):
    return kind + struct.pack(">I", len(payload)) + payload


def _str(s):
    b = s.encode()
    return struct.pack(">I", len(b)) + b


def _fnv1a(data):
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def state_log(attempts, next_attempt, status, last_reply, nonce):
    """A state log of one frame ("State file" in docs/queue-file.md), for
    a queue file of one recipient with this nonce."""
    t = bytes([status, 1 if last_reply is not None else 0]) + (_str(last_reply) if last_reply is not None else b"")
    state = b"".join([
        STATE_MAGIC, struct.pack(">H", VERSION),
        _record(b"K", struct.pack(">Q", nonce)),
        _record(b"D", struct.pack(">Iqb", attempts, next_attempt, 0)),
        _record(b"T", t),
        _record(b"X", b""),
    ])
    return b"FQSL" + struct.pack(">IQ", len(state), _fnv1a(state)) + state


def queue_file(qid, sender, rcpt, message, arrival, attempts=0, next_attempt=0, status=PENDING,
               last_reply=None, nonce=1):
    """The bytes of one queue file: one recipient, message in network form."""
    has = 2 if last_reply is not None else 0
    r = bytes([status, 0, has]) + _str(rcpt) + (_str(last_reply) if last_reply is not None else b"")
    return b"".join([
        MAGIC, struct.pack(">H", VERSION),
        _record(b"Q", qid.encode()),
        _record(b"K", struct.pack(">Q", nonce)),
        _record(b"A", struct.pack(">q", arrival)),
        _record(b"S", sender.encode()),
        _record(b"B", bytes([1])),  # 8BITMIME
        _record(b"P", b"ESMTP"),
        _record(b"D", struct.pack(">Iqb", attempts, next_attempt, 0)),
        _record(b"R", r),
        _record(b"M", message),
        _record(b"X", b""),
    ])


def queue_id(prefix, i):
    """A valid queue id (1-64 ASCII letters and digits), unique per (prefix, i)."""
    return f"{prefix}{i:010d}"


def _write(path, data):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def fill(spool, queue, prefix, count, sender, rcpts, message, arrival, **state):
    """Writes `count` queue files into `spool`/`queue`/ (mode 0600),
    recipients taken from `rcpts` in turn; a message tried already
    (`attempts` > 0) gets its state log in `spool`/state/. Returns the ids."""
    ids = []
    for i in range(count):
        qid = queue_id(prefix, i)
        data = queue_file(qid, sender, rcpts[i % len(rcpts)], message, arrival, nonce=i + 1, **state)
        _write(os.path.join(spool, queue, qid), data)
        if state.get("attempts", 0) > 0:
            log = state_log(state["attempts"], state.get("next_attempt", 0), state.get("status", PENDING),
                            state.get("last_reply"), nonce=i + 1)
            _write(os.path.join(spool, "state", f"{qid}.state"), log)
        ids.append(qid)
    return ids
