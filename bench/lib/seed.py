"""Seeds mailboxes for bench/run by writing Maildir files directly, the same
bytes to both sides: facteur's store (docs/store-format.md: files in cur/
named `<unique>,S=<size>,W=<crlf size>:2,<flags>`, mtime = INTERNALDATE)
and Dovecot's plain Maildir (which reads the same S=/W= fields).

Messages are deterministic for a given (seed, index, size): headers of a
normal mail, a text body padded to the size asked, LF line endings (the
Maildir convention, as both servers store them).
"""

import os
from pathlib import Path

BASE_TIME = 1_790_000_000  # 2026-09 — INTERNALDATEs of seeded mail
WORDS = (
    "postman letter parcel stamp route morning village sorting bag bicycle "
    "address envelope receipt window counter delivery evening square"
).split()


def message(seed, i, size):
    head = (
        f"Return-Path: <sender{i % 7}@bench.test>\n"
        f"From: Sender {i % 7} <sender{i % 7}@bench.test>\n"
        f"To: Reader <reader@example.test>\n"
        f"Subject: {seed} message {i}: {WORDS[i % len(WORDS)]} {WORDS[(i * 7) % len(WORDS)]}\n"
        f"Date: Mon, 2 Nov 2026 {i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d} +0000\n"
        f"Message-ID: <{seed}.{i}@bench.test>\n"
        "MIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\n\n"
    )
    out = [head]
    n = len(head)
    k = i
    while n < size:
        line = " ".join(WORDS[(k + j) % len(WORDS)] for j in range(9)) + f" {k}\n"
        out.append(line)
        n += len(line)
        k += 1
    return "".join(out).encode()


def make_maildir(d, owner=None):
    for sub in ("", "cur", "new", "tmp"):
        p = Path(d) / sub
        p.mkdir(parents=True, exist_ok=True, mode=0o700)
        if owner:
            os.chown(p, *owner)


def seed(dirs, seed_name, count, size, owners=None, seen_every=3):
    """Writes `count` messages of about `size` bytes into cur/ of every
    Maildir in `dirs` (owners: (uid, gid) or None per dir). Every
    `seen_every`-th message is unseen; the rest carry \\Seen."""
    owners = owners or [None] * len(dirs)
    for d, o in zip(dirs, owners):
        make_maildir(d, o)
    for i in range(count):
        data = message(seed_name, i, size)
        w = len(data) + data.count(b"\n")
        flags = "" if i % seen_every == 0 else "S"
        name = f"{BASE_TIME + i}.M{i}P1Q{i}R{i * 2654435761 % (1 << 32):08x}.bench,S={len(data)},W={w}:2,{flags}"
        for d, o in zip(dirs, owners):
            p = os.path.join(d, "cur", name)
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, data)
                if o:
                    os.fchown(fd, *o)
            finally:
                os.close(fd)
            os.utime(p, (BASE_TIME + i, BASE_TIME + i))


# Where clear() moves emptied new/ and cur/ directories (set by bench/run to
# a directory on the same file system as the mailboxes; None: unlink).
TRASH = None
_moved = 0


def clear(dirs):
    """Empties new/ and cur/ (between delivery runs).

    With TRASH set, each directory is renamed into TRASH and made again,
    empty, with its mode and owner: no file is deleted while the
    workloads run. On an ext4 without a journal, the inodes of files
    deleted in the last minutes (up to 6, while their inode table block is
    dirty) are skipped one by one at every file creation (`recently_deleted`
    in the kernel's inode allocator), so unlinking the 5,000 messages of the
    last run made the next runs' deliveries pay for the harness's own
    clean-up, more with every run. bench/run deletes TRASH at the end (or
    unlinks as before when its file system is nearly full)."""
    global _moved
    for d in dirs:
        for sub in ("new", "cur"):
            p = Path(d) / sub
            if not p.is_dir():
                continue
            if TRASH is not None and _room(TRASH):
                st = p.stat()
                TRASH.mkdir(exist_ok=True)
                _moved += 1
                p.rename(TRASH / str(_moved))
                p.mkdir(mode=0o700)
                os.chown(p, st.st_uid, st.st_gid)
                os.chmod(p, st.st_mode & 0o7777)
            else:
                for e in os.scandir(p):
                    os.unlink(e.path)


def _room(trash):
    """Whether the trash's file system has a tenth of its space free."""
    v = os.statvfs(trash.parent)
    return v.f_bavail * 10 > v.f_blocks
