#!/usr/bin/env python3
"""Makes the fixtures of facteur-trust's unit tests with dkimpy (an
implementation nobody here wrote): RSA keys of 2048 and 512 bits, messages
signed with them (rsa-sha256, rsa-sha1, a small key) and one ARC-sealed
message. Run it here to make them again; the tests read the files it
writes (`*.eml`, `*.p` = the p= value of each key's DNS record).

    python3 make.py     (needs dkimpy and openssl)
"""
import base64
import subprocess

import dkim


def key(bits, name):
    pem = subprocess.run(["openssl", "genrsa", str(bits)], capture_output=True, check=True).stdout
    der = subprocess.run(["openssl", "rsa", "-pubout", "-outform", "DER"], input=pem,
                         capture_output=True, check=True).stdout
    # dkimpy wants PKCS#1 ("BEGIN RSA PRIVATE KEY").
    pem = subprocess.run(["openssl", "rsa", "-traditional"], input=pem, capture_output=True,
                         check=True).stdout
    open(f"{name}.p", "w").write(base64.b64encode(der).decode() + "\n")
    return pem


MSG = (b"From: Alice <alice@%s>\r\nTo: bob@example.test\r\nSubject: fixture\r\n"
       b"Date: Mon, 23 Nov 2026 18:47:54 +0000\r\nMessage-ID: <fixture@%s>\r\n\r\n"
       b"Hello, this is the body.\r\n")


def write(name, signature, msg):
    open(name, "wb").write(signature + msg)


k2048 = key(2048, "rsa2048")
k512 = key(512, "rsa512")
heads = [b"from", b"to", b"subject", b"date", b"message-id"]
m = MSG % (b"rsa.test", b"rsa.test")
write("rsa-sha256.eml", dkim.sign(m, b"s", b"rsa.test", k2048, include_headers=heads), m)
m = MSG % (b"sha1.test", b"sha1.test")
write("rsa-sha1.eml", dkim.sign(m, b"s", b"sha1.test", k2048, include_headers=heads,
                                signature_algorithm=b"rsa-sha1"), m)
m = MSG % (b"small.test", b"small.test")
write("rsa512.eml", dkim.sign(m, b"s", b"small.test", k512, include_headers=heads), m)
# ARC: a list at lists.test received the message (its own results in
# Authentication-Results), sealed it, and changed the subject.
m = MSG % (b"origin.test", b"origin.test")
m = (b"Authentication-Results: lists.test; dkim=pass header.d=origin.test;\r\n"
     b" dmarc=pass header.from=origin.test\r\n") + m
sig = dkim.arc_sign(m, b"arc", b"lists.test", k2048, b"lists.test",
                    include_headers=heads + [b"authentication-results"])
write("arc.eml", b"".join(sig), m)
