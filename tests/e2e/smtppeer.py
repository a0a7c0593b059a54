"""A scripted SMTP peer for the remote-delivery tests: the failures a real
server would not produce on demand. Plain sockets and threads; what it does
depends on the recipient:

- local part `temp`            -> RCPT 451 4.2.0 (that recipient deferred)
- local part `perm`            -> RCPT 550 5.1.1 (that recipient bounced)
- domain `tempfail.test`       -> every RCPT 451 (the message stays queued)
- domain `close.test`          -> 354, then the connection closes mid-DATA
- domain `hang.test`           -> 354, then no answer after the final dot
- anything else                -> 250, and the message is kept in `self.messages`

It offers PIPELINING, SIZE, 8BITMIME and DSN, never STARTTLS (so the policy
`encrypt` must refuse it), and records every command line it received.
Except on 127.0.0.5, where it offers STARTTLS, says 220 to it and then
answers the TLS handshake with clear text (a broken TLS set-up).
"""

import socket
import threading


class ScriptedPeer:
    def __init__(self, addrs, port):
        self.port = port
        self.socks = []
        for a in addrs:
            fam = socket.AF_INET6 if ":" in a else socket.AF_INET
            s = socket.socket(fam, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((a, port))
            s.listen(32)
            self.socks.append(s)
        self.messages = []  # (mail_from, [rcpts], data bytes, peer address)
        self.commands = []
        self.lock = threading.Lock()
        self._stop = False

    def start(self):
        for s in self.socks:
            threading.Thread(target=self._accept, args=(s,), daemon=True).start()
        return self

    def stop(self):
        self._stop = True
        for s in self.socks:
            s.close()

    def _accept(self, s):
        while not self._stop:
            try:
                c, peer = s.accept()
            except OSError:
                return
            threading.Thread(target=self._session, args=(c, peer), daemon=True).start()

    def _session(self, c, peer):
        f = c.makefile("rb")
        try:
            c.settimeout(60)
            c.sendall(b"220 scripted.test ESMTP\r\n")
            mail, rcpts = None, []
            while True:
                line = f.readline(4096)
                if not line:
                    return
                cmd = line.decode("utf-8", "replace").rstrip("\r\n")
                with self.lock:
                    self.commands.append(cmd)
                verb = cmd.split(" ", 1)[0].upper()
                broken_tls = c.getsockname()[0] == "127.0.0.5"
                if verb == "EHLO":
                    tls = b"250-STARTTLS\r\n" if broken_tls else b""
                    c.sendall(b"250-scripted.test\r\n" + tls + b"250-PIPELINING\r\n250-SIZE 1000000\r\n250-8BITMIME\r\n250 DSN\r\n")
                elif verb == "STARTTLS" and broken_tls:
                    c.sendall(b"220 2.0.0 ready\r\n")
                    c.sendall(b"this is not a TLS server hello\r\n")
                    return
                elif verb == "HELO":
                    c.sendall(b"250 scripted.test\r\n")
                elif verb == "MAIL":
                    mail, rcpts = cmd, []
                    c.sendall(b"250 2.1.0 ok\r\n")
                elif verb == "RCPT":
                    addr = cmd[cmd.index("<") + 1:cmd.index(">")]
                    local, _, dom = addr.partition("@")
                    if local == "temp" or dom == "tempfail.test":
                        c.sendall(b"451 4.2.0 <" + addr.encode() + b"> try again later\r\n")
                    elif local == "perm":
                        c.sendall(b"550 5.1.1 <" + addr.encode() + b"> no such user\r\n")
                    else:
                        rcpts.append(addr)
                        c.sendall(b"250 2.1.5 ok\r\n")
                elif verb == "DATA":
                    if not rcpts:
                        c.sendall(b"554 5.5.1 no valid recipients\r\n")
                        continue
                    c.sendall(b"354 go ahead\r\n")
                    data = b""
                    doms = {r.partition("@")[2] for r in rcpts}
                    while True:
                        l = f.readline(100000)
                        if not l:
                            return
                        if "close.test" in doms:
                            c.close()
                            return
                        if l == b".\r\n":
                            break
                        data += l
                    if "hang.test" in doms:
                        threading.Event().wait(60)
                        return
                    with self.lock:
                        self.messages.append((mail, list(rcpts), data, peer[0]))
                    c.sendall(b"250 2.0.0 queued as SCRIPTED\r\n")
                elif verb == "RSET":
                    mail, rcpts = None, []
                    c.sendall(b"250 2.0.0 ok\r\n")
                elif verb == "QUIT":
                    c.sendall(b"221 2.0.0 bye\r\n")
                    return
                else:
                    c.sendall(b"502 5.5.2 not implemented\r\n")
        except OSError:
            pass
        finally:
            try:
                c.close()
            except OSError:
                pass
