#!/usr/bin/env python3
"""A far end that answers in G.722 (issue 12, item 7): a minimal SIP UAS over UDP whose audio is coded with the
PyPI `g722` codec (an implementation independent of outdial's).

    g722_peer.py SIP_PORT SECONDS

It prints `READY`, answers an INVITE that offers payload type 9 with `m=audio … RTP/AVP 9`, decodes what it
receives, and once the caller has spoken (0.5 s of voice, then 0.7 s of quiet) says "Yes please." (espeak-ng at
16 kHz, coded in G.722). It answers the caller's BYE, or sends its own after SECONDS, and prints one JSON line:
G.722 packets received, packets of other payload types, loud packets heard, whether it answered, who hung up.
"""
import array
import json
import os
import select
import socket
import subprocess
import sys
import tempfile
import time

import G722
import numpy

SIP_PORT = int(sys.argv[1])
SECONDS = float(sys.argv[2])


def parse(datagram):
    head, _, body = datagram.decode("utf-8", "replace").partition("\r\n\r\n")
    lines = head.split("\r\n")
    return lines[0], [(n.strip(), v.strip()) for n, _, v in (l.partition(":") for l in lines[1:])], body


def header(headers, name):
    return next((v for n, v in headers if n.lower() == name.lower()), None)


def speech():
    """ "Yes please." as 16 kHz 16-bit PCM."""
    with tempfile.TemporaryDirectory() as d:
        wav, raw = os.path.join(d, "s.wav"), os.path.join(d, "s.raw")
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", wav, "Yes please."], check=True)
        subprocess.run(["sox", wav, "-r", "16000", "-c", "1", "-b", "16", "-e", "signed-integer", raw], check=True)
        with open(raw, "rb") as f:
            return numpy.frombuffer(f.read(), dtype=numpy.int16)


sip = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sip.bind(("127.0.0.1", SIP_PORT))
rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
rtp.bind(("127.0.0.1", 0))
rtp_port = rtp.getsockname()[1]
answer_audio = G722.G722(16000, 64000).encode(numpy.concatenate([speech(), numpy.zeros(8000, numpy.int16)]))
silence = G722.G722(16000, 64000).encode(numpy.zeros(320, numpy.int16))
decoder = G722.G722(16000, 64000)
print("READY", flush=True)

while True:
    data, gateway = sip.recvfrom(65535)
    start, headers, body = parse(data)
    if start.startswith("INVITE "):
        break
media_ip, media_port, offers_9 = "127.0.0.1", None, False
for line in body.split("\r\n"):
    if line.startswith("c=IN IP4 "):
        media_ip = line.split()[2]
    elif line.startswith("m=audio "):
        fields = line.split()
        media_port = int(fields[1])
        offers_9 = "9" in fields[3:]
if not offers_9:
    print(json.dumps({"error": "the offer has no G.722", "offer": body}), flush=True)
    sys.exit(1)
vias = "".join(f"{n}: {v}\r\n" for n, v in headers if n.lower() == "via")
sdp = ("v=0\r\no=peer 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       f"m=audio {rtp_port} RTP/AVP 9\r\na=rtpmap:9 G722/8000\r\na=sendrecv\r\n")
ok = ("SIP/2.0 200 OK\r\n" + vias + f"From: {header(headers, 'From')}\r\nTo: {header(headers, 'To')};tag=peer9\r\n"
      + f"Call-ID: {header(headers, 'Call-ID')}\r\nCSeq: {header(headers, 'CSeq')}\r\n"
      + f"Contact: <sip:127.0.0.1:{SIP_PORT}>\r\nContent-Type: application/sdp\r\nContent-Length: {len(sdp)}\r\n\r\n" + sdp)
sip.sendto(ok.encode(), gateway)

stats = {"g722": 0, "other": 0, "loud": 0, "answered": False, "bye_from_gateway": False}
loud_run, quiet_run, heard_voice = 0, 0, False
playing, play_at = None, 0
seq, ts, ssrc = 1, 0, 0x5eed
next_send = time.monotonic()
until = time.monotonic() + SECONDS
while time.monotonic() < until:
    timeout = max(0.0, next_send - time.monotonic())
    ready, _, _ = select.select([sip, rtp], [], [], timeout)
    if sip in ready:
        data, _ = sip.recvfrom(65535)
        start, h, _ = parse(data)
        if start.startswith("INVITE "):
            sip.sendto(ok.encode(), gateway)
        elif start.startswith("BYE "):
            bye_ok = ("SIP/2.0 200 OK\r\n" + "".join(f"{n}: {v}\r\n" for n, v in h if n.lower() == "via")
                      + f"From: {header(h, 'From')}\r\nTo: {header(h, 'To')}\r\nCall-ID: {header(h, 'Call-ID')}\r\n"
                      + f"CSeq: {header(h, 'CSeq')}\r\nContent-Length: 0\r\n\r\n")
            sip.sendto(bye_ok.encode(), gateway)
            stats["bye_from_gateway"] = True
            break
    if rtp in ready:
        data, _ = rtp.recvfrom(2048)
        if len(data) > 12 and (data[1] & 0x7F) == 9:
            stats["g722"] += 1
            pcm = numpy.asarray(decoder.decode(data[12:]), dtype=numpy.float64)
            loud = pcm.size > 0 and numpy.sqrt(numpy.mean(pcm ** 2)) > 500
            stats["loud"] += int(loud)
            if loud:
                loud_run, quiet_run = loud_run + 1, 0
                heard_voice = heard_voice or loud_run >= 25
            else:
                quiet_run += 1
            if heard_voice and quiet_run >= 35 and playing is None:
                playing, play_at, stats["answered"] = answer_audio, 0, True
        elif len(data) > 12:
            stats["other"] += 1
    if time.monotonic() >= next_send:
        next_send += 0.02
        if playing is not None and play_at < len(playing):
            payload = playing[play_at:play_at + 160]
            play_at += 160
        else:
            payload = silence
        header_bytes = bytes([0x80, 9]) + seq.to_bytes(2, "big") + ts.to_bytes(4, "big") + ssrc.to_bytes(4, "big")
        rtp.sendto(header_bytes + payload, (media_ip, media_port))
        seq, ts = (seq + 1) & 0xFFFF, (ts + 160) & 0xFFFFFFFF
print(json.dumps(stats), flush=True)
