#!/usr/bin/env python3
"""A far end that really encrypts (issue 12, item 6): a minimal SIP UAS over UDP whose media is SRTP through
libsrtp (PyPI `pylibsrtp`), an implementation independent of outdial's.

    srtp_peer.py SIP_PORT SUITE SECONDS

SUITE is 80 or 32 (AES_CM_128_HMAC_SHA1_80 / _32). The peer prints `READY` once listening, answers the INVITE
with 200 OK and an `a=crypto` key of its own for the suite the offer has with that name, checks every packet of
the caller with the caller's key, and sends the caller's audio back protected with its own key. After SECONDS it
sends BYE and prints one JSON line: packets received, authenticated, failed, how many carried the plain payload on
the wire, packets sent back, and whether the BYE got 200.
"""
import base64
import json
import os
import socket
import sys
import time

from pylibsrtp import Error, Policy, Session

SIP_PORT = int(sys.argv[1])
SUITE = sys.argv[2]
SECONDS = float(sys.argv[3])
NAME = {"80": "AES_CM_128_HMAC_SHA1_80", "32": "AES_CM_128_HMAC_SHA1_32"}[SUITE]
PROFILE = {"80": Policy.SRTP_PROFILE_AES128_CM_SHA1_80, "32": Policy.SRTP_PROFILE_AES128_CM_SHA1_32}[SUITE]


def session(key, direction):
    return Session(policy=Policy(key=key, ssrc_type=direction, srtp_profile=PROFILE))


def parse(datagram):
    head, _, body = datagram.decode("utf-8", "replace").partition("\r\n\r\n")
    lines = head.split("\r\n")
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.append((name.strip(), value.strip()))
    return lines[0], headers, body


def header(headers, name):
    for n, v in headers:
        if n.lower() == name.lower():
            return v
    return None


sip = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sip.bind(("127.0.0.1", SIP_PORT))
rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
rtp.bind(("127.0.0.1", 0))
rtp_port = rtp.getsockname()[1]
print("READY", flush=True)

# The INVITE.
while True:
    data, gateway = sip.recvfrom(65535)
    start, headers, body = parse(data)
    if start.startswith("INVITE "):
        break
their_key = None
tag = None
media_ip, media_port = "127.0.0.1", None
for line in body.split("\r\n"):
    if line.startswith("c=IN IP4 "):
        media_ip = line.split()[2]
    elif line.startswith("m=audio "):
        media_port = int(line.split()[1])
    elif line.startswith("a=crypto:") and NAME in line and their_key is None:
        fields = line[len("a=crypto:"):].split()
        tag = fields[0]
        their_key = base64.b64decode(fields[2][len("inline:"):].split("|")[0])
assert their_key is not None and media_port, "the offer has a usable a=crypto and an audio port"
our_key = os.urandom(30)
rx = session(their_key, Policy.SSRC_ANY_INBOUND)
tx = session(our_key, Policy.SSRC_ANY_OUTBOUND)

to_tag = "peer1"
vias = "".join(f"{n}: {v}\r\n" for n, v in headers if n.lower() == "via")
sdp = (
    "v=0\r\no=peer 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    f"m=audio {rtp_port} RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    f"a=crypto:{tag} {NAME} inline:{base64.b64encode(our_key).decode()}\r\na=sendrecv\r\n"
)
ok = (
    "SIP/2.0 200 OK\r\n" + vias
    + f"From: {header(headers, 'From')}\r\nTo: {header(headers, 'To')};tag={to_tag}\r\n"
    + f"Call-ID: {header(headers, 'Call-ID')}\r\nCSeq: {header(headers, 'CSeq')}\r\n"
    + f"Contact: <sip:127.0.0.1:{SIP_PORT}>\r\nContent-Type: application/sdp\r\n"
    + f"Content-Length: {len(sdp)}\r\n\r\n" + sdp
)
sip.sendto(ok.encode(), gateway)
sip.settimeout(0.5)
for _ in range(10):
    try:
        data, _ = sip.recvfrom(65535)
    except socket.timeout:
        sip.sendto(ok.encode(), gateway)
        continue
    if parse(data)[0].startswith("ACK "):
        break

# The media, for SECONDS.
stats = {"received": 0, "authenticated": 0, "failed": 0, "plain_on_wire": 0, "sent": 0}
rtp.settimeout(0.05)
until = time.monotonic() + SECONDS
while time.monotonic() < until:
    try:
        data, source = rtp.recvfrom(2048)
    except socket.timeout:
        continue
    stats["received"] += 1
    try:
        plain = rx.unprotect(data)
    except Error:
        stats["failed"] += 1
        continue
    stats["authenticated"] += 1
    payload = plain[12:]
    if data[12:12 + len(payload)] == payload:
        stats["plain_on_wire"] += 1
    rtp.sendto(tx.protect(plain), (media_ip, media_port))
    stats["sent"] += 1

# BYE to the caller's Contact.
contact = header(headers, "Contact") or ""
target = contact.strip("<>").split(">")[0]
bye = (
    f"BYE {target} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{SIP_PORT};branch=z9hG4bK-peer-bye\r\n"
    f"From: {header(headers, 'To')};tag={to_tag}\r\nTo: {header(headers, 'From')}\r\n"
    f"Call-ID: {header(headers, 'Call-ID')}\r\nCSeq: 1 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
)
stats["bye_ok"] = False
for _ in range(4):
    sip.sendto(bye.encode(), gateway)
    try:
        data, _ = sip.recvfrom(65535)
    except socket.timeout:
        continue
    if parse(data)[0].startswith("SIP/2.0 200"):
        stats["bye_ok"] = True
        break
print(json.dumps(stats), flush=True)
