"""A small authoritative DNS server for the tests, on loopback (UDP and TCP),
answering MX, A, AAAA, TXT and PTR from a table. Written with socket + struct only (RFC
1035 wire format), so the tests need no DNS package and no network.

Why a Python server rather than hickory-server in process: the e2e tests
drive the real facteur-qmgr binary, which must be pointed at a nameserver
address (`qmgr.dns_servers`); a server the test owns is what a real
deployment's resolver is, and the same table serves qmgr and the test.

    dns = DnsServer({"remote.test": {"MX": [(10, "mx.remote.test")]},
                     "mx.remote.test": {"A": ["127.0.0.2"]},
                     "nomail.test": {"MX": [(0, ".")]}})
    dns.start(); ... dns.addr  -> "127.0.0.1:PORT"; dns.stop()

Names not in the table get NXDOMAIN; known names without the asked type get
an empty NOERROR answer (NODATA). A TXT value longer than 255 bytes is sent
as several character-strings (RFC 7208 §3.3, RFC 6376 §3.6.2.2 join them);
a name whose entry has `"SERVFAIL": True` answers SERVFAIL to every query
(a temporary DNS failure). `ptr_name("127.0.0.5")` gives the reverse name
to put a PTR under.
"""

import errno
import socket
import struct
import threading

TYPES = {"A": 1, "MX": 15, "AAAA": 28, "TXT": 16, "PTR": 12}


def ptr_name(ip):
    """The in-addr.arpa / ip6.arpa name of an address (RFC 1035 §3.5,
    RFC 3596 §2.5)."""
    packed = socket.inet_pton(socket.AF_INET6 if ":" in ip else socket.AF_INET, ip)
    if len(packed) == 4:
        return ".".join(str(b) for b in reversed(packed)) + ".in-addr.arpa"
    nibbles = packed.hex()
    return ".".join(reversed(nibbles)) + ".ip6.arpa"


def txt_rdata(text):
    """A TXT record's data: `text` in character-strings of 255 bytes."""
    b = text.encode()
    chunks = [b[i:i + 255] for i in range(0, len(b), 255)] or [b""]
    return b"".join(bytes([len(c)]) + c for c in chunks)


def encode_name(name):
    name = name.rstrip(".")
    out = b""
    if name:
        for label in name.split("."):
            b = label.encode("idna") if label else b""
            out += bytes([len(b)]) + b
    return out + b"\0"


def decode_name(msg, off):
    labels = []
    while True:
        n = msg[off]
        if n & 0xC0 == 0xC0:
            ptr = struct.unpack("!H", msg[off:off + 2])[0] & 0x3FFF
            rest, _ = decode_name(msg, ptr)
            return ".".join(labels + ([rest] if rest else [])), off + 2
        off += 1
        if n == 0:
            return ".".join(labels), off
        labels.append(msg[off:off + n].decode("ascii", "replace"))
        off += n


class DnsServer:
    def __init__(self, zone, host="127.0.0.1", port=0):
        """`host`, `port`: where to listen (port 0: one the system picks;
        bench/run's workload 7 takes port 53 of its own loopback address,
        for programs that read /etc/resolv.conf)."""
        self.zone = {k.lower().rstrip("."): v for k, v in zone.items()}
        # One port number for UDP and TCP. The system picks a free UDP
        # port, and a TCP socket may hold the same number (a client's
        # ephemeral port): then another UDP port is tried.
        for attempt in range(50):
            self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.udp.bind((host, port))
            self.port = self.udp.getsockname()[1]
            self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                self.tcp.bind((host, self.port))
                break
            except OSError as e:
                self.udp.close()
                self.tcp.close()
                if e.errno != errno.EADDRINUSE or port != 0 or attempt == 49:
                    raise
        self.tcp.listen(16)
        self.addr = f"{host}:{self.port}"
        self.queries = []
        self._stop = False

    def set(self, name, rtype, values):
        self.zone.setdefault(name.lower().rstrip("."), {})[rtype] = values

    def answer(self, query):
        qid, flags = struct.unpack("!HH", query[:4])
        name, off = decode_name(query, 12)
        qtype, qclass = struct.unpack("!HH", query[off:off + 4])
        question = query[12:off + 4]
        self.queries.append((name.lower(), qtype))
        entry = self.zone.get(name.lower().rstrip("."))
        rrs = []
        if entry is not None:
            for tname, tnum in TYPES.items():
                if tnum != qtype:
                    continue
                for v in entry.get(tname, []):
                    if tname == "A":
                        rdata = socket.inet_pton(socket.AF_INET, v)
                    elif tname == "AAAA":
                        rdata = socket.inet_pton(socket.AF_INET6, v)
                    elif tname == "MX":
                        rdata = struct.pack("!H", v[0]) + encode_name(v[1])
                    elif tname == "PTR":
                        rdata = encode_name(v)
                    else:
                        rdata = txt_rdata(v)
                    rrs.append(b"\xc0\x0c" + struct.pack("!HHIH", tnum, 1, 60, len(rdata)) + rdata)
        rcode = 3 if entry is None else 0
        if entry is not None and entry.get("SERVFAIL"):
            rrs, rcode = [], 2
        # QR, AA, RD copied, RA.
        rflags = 0x8000 | 0x0400 | (flags & 0x0100) | 0x0080 | rcode
        head = struct.pack("!HHHHHH", qid, rflags, 1, len(rrs), 0, 0)
        return head + question + b"".join(rrs)

    def _serve_udp(self):
        while not self._stop:
            try:
                data, peer = self.udp.recvfrom(4096)
                self.udp.sendto(self.answer(data), peer)
            except OSError:
                return
            except Exception:  # a malformed query: no answer
                continue

    def _serve_tcp(self):
        while not self._stop:
            try:
                c, _ = self.tcp.accept()
            except OSError:
                return
            with c:
                try:
                    c.settimeout(5)
                    n = struct.unpack("!H", c.recv(2))[0]
                    q = b""
                    while len(q) < n:
                        q += c.recv(n - len(q))
                    a = self.answer(q)
                    c.sendall(struct.pack("!H", len(a)) + a)
                except Exception:
                    pass

    def start(self):
        for f in (self._serve_udp, self._serve_tcp):
            threading.Thread(target=f, daemon=True).start()
        return self

    def stop(self):
        self._stop = True
        self.udp.close()
        self.tcp.close()
