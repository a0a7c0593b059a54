"""Writes facteur queue files (docs/queue-file.md, format version 1) for
workload 6 of bench/run: a queue of tens of thousands of messages made in
seconds, straight into a queue directory while facteur-qmgr is stopped
(nobody reads a file while it is written). Standard library only.

Files are written without fsync: bench/run needs a queue, not durability.
A file qmgr cannot parse goes to corrupt/, which workload 6 checks is
empty afterwards, so this writer is checked against the real reader on
every run.
"""

import os
import struct

MAGIC = b"\x89FQF\r\n\x1a\n"
VERSION = 1
PENDING, DEFERRED = 0, 3


def _record(kind, payload):
    return kind + struct.pack(">I", len(payload)) + payload


def _str(s):
    b = s.encode()
    return struct.pack(">I", len(b)) + b


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


def fill(directory, prefix, count, sender, rcpts, message, arrival, **state):
    """Writes `count` queue files into `directory` (mode 0600), recipients
    taken from `rcpts` in turn. Returns the ids."""
    ids = []
    for i in range(count):
        qid = queue_id(prefix, i)
        data = queue_file(qid, sender, rcpts[i % len(rcpts)], message, arrival, nonce=i + 1, **state)
        fd = os.open(os.path.join(directory, qid), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        ids.append(qid)
    return ids
