#!/usr/bin/env python3
"""The media peer (BENCHMARKS.md, "Media"; issue 18's side-by-side): rtpengine (Debian `rtpengine-daemon`, user
space, no kernel module) relaying N G.711 streams, measured as bench/media.sh measures the gateway — CPU per
call-second and memory per call — on the same machine.

    bench/rtp-peer.py N WINDOW            (e.g. bench/rtp-peer.py 1000 15)

N calls are set up through rtpengine's NG control protocol (bencode over UDP: `offer` from leg A, `answer` from leg
B). Then every 20 ms this driver sends one 160-byte PCMU packet per call from A to rtpengine, which relays each to
B (one socket here counts what arrives). Per call that is what the gateway does per call: one packet received and
one sent every 20 ms (the gateway also decodes, detects and encodes; a relay does not). Prints rtpengine's CPU per
call-second, its memory per call (RSS growth after the calls were set up over N), and the share of packets relayed.
"""
import os
import random
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

HZ = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def bencode(x):
    if isinstance(x, int):
        return b"i%de" % x
    if isinstance(x, str):
        x = x.encode()
    if isinstance(x, bytes):
        return b"%d:%s" % (len(x), x)
    if isinstance(x, list):
        return b"l" + b"".join(bencode(v) for v in x) + b"e"
    if isinstance(x, dict):
        return b"d" + b"".join(bencode(k) + bencode(x[k]) for k in sorted(x)) + b"e"
    raise TypeError(type(x))


def bdecode(b, i=0):
    c = b[i:i + 1]
    if c == b"i":
        j = b.index(b"e", i)
        return int(b[i + 1:j]), j + 1
    if c in (b"l", b"d"):
        i += 1
        items = []
        while b[i:i + 1] != b"e":
            v, i = bdecode(b, i)
            items.append(v)
        if c == b"l":
            return items, i + 1
        return {items[k].decode(): items[k + 1] for k in range(0, len(items), 2)}, i + 1
    j = b.index(b":", i)
    n = int(b[i:j])
    return b[j + 1:j + 1 + n], j + 1 + n


def free_port(kind=socket.SOCK_DGRAM):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def cpu_and_rss(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / HZ, int(fields[21]) * PAGE


def sdp(port, session):
    return (f"v=0\r\no=- {session} 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n")


def media_port(text):
    for line in text.decode().splitlines():
        if line.startswith("m=audio "):
            return int(line.split()[1])
    raise ValueError(text)


def main():
    n, window = int(sys.argv[1]), float(sys.argv[2])
    if not shutil.which("rtpengine"):
        sys.exit("rtpengine is not installed: apt-get install --no-install-recommends rtpengine-daemon")
    ng = free_port()
    work = tempfile.mkdtemp()
    proc = subprocess.Popen(
        ["rtpengine", "--config-file=none", "--table=-1", "--foreground", "--log-stderr", "--log-level=3",
         "--interface=127.0.0.1", f"--listen-ng=127.0.0.1:{ng}", "--port-min=30000", "--port-max=39999",
         "--num-threads=2", f"--pidfile={work}/pid"],
        stdout=subprocess.DEVNULL, stderr=open(f"{work}/log", "w"))
    try:
        run(proc, ng, n, window)
    finally:
        proc.terminate()
        proc.wait(5)
        shutil.rmtree(work, ignore_errors=True)


def run(proc, ng_port, n, window):
    ctl = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    ctl.settimeout(2)
    seq = [0]

    def ng(cmd):
        seq[0] += 1
        cookie = b"c%d" % seq[0]
        for _ in range(50):
            try:
                ctl.sendto(cookie + b" " + bencode(cmd), ("127.0.0.1", ng_port))
                data = ctl.recv(65536)
            except (socket.timeout, ConnectionRefusedError):
                time.sleep(0.1)
                continue
            reply, _ = bdecode(data.split(b" ", 1)[1])
            if reply.get("result") not in (b"ok", b"pong"):
                sys.exit(f"rtpengine refused {cmd['command']}: {reply}")
            return reply
        sys.exit("rtpengine did not answer on its NG port")

    ng({"command": "ping"})
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for s in (a, b):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
        s.bind(("127.0.0.1", 0))
    a_port, b_port = a.getsockname()[1], b.getsockname()[1]
    _, rss0 = cpu_and_rss(proc.pid)
    targets = []
    for i in range(n):
        call = f"peer-{i}"
        ng({"command": "offer", "call-id": call, "from-tag": "a", "sdp": sdp(a_port, i)})
        answer = ng({"command": "answer", "call-id": call, "from-tag": "a", "to-tag": "b", "sdp": sdp(b_port, i)})
        targets.append(("127.0.0.1", media_port(answer["sdp"])))
    received = [0]
    stop = threading.Event()

    def sink():
        b.settimeout(0.5)
        while not stop.is_set():
            try:
                b.recv(2048)
                received[0] += 1
            except socket.timeout:
                pass

    t = threading.Thread(target=sink, daemon=True)
    t.start()
    payload = bytes(random.randrange(256) for _ in range(160))
    ssrc = [random.getrandbits(32) for _ in range(n)]
    sent = 0
    tick = 0
    # A second of warm-up, then the measured window.
    start = time.monotonic()
    measured = None
    while True:
        now = time.monotonic()
        if measured is None and now - start >= 1.0:
            cpu0, _ = cpu_and_rss(proc.pid)
            measured = now
        if measured is not None and now - measured >= window:
            break
        for i, dst in enumerate(targets):
            hdr = struct.pack("!BBHII", 0x80, 0, tick & 0xFFFF, (tick * 160) & 0xFFFFFFFF, ssrc[i])
            a.sendto(hdr + payload, dst)
            sent += 1
        tick += 1
        next_at = start + tick * 0.02
        time.sleep(max(0.0, next_at - time.monotonic()))
    cpu1, rss2 = cpu_and_rss(proc.pid)
    elapsed = time.monotonic() - measured
    paced = time.monotonic() - start
    time.sleep(0.3)
    stop.set()
    t.join()
    # Every packet of the run, warm-up included (those in flight at the window's edges would blur a window's count).
    got, expected = received[0], sent
    call_seconds = n * elapsed
    print(f"rtpengine {n} relayed streams, {elapsed:.1f} s measured")
    print(f"  CPU: {cpu1 - cpu0:.2f} s = {1000 * (cpu1 - cpu0) / call_seconds:.3f} ms per call-second")
    print(f"  memory: {(rss2 - rss0) / n / 1024:.1f} KiB per call (RSS {rss0 >> 20} → {rss2 >> 20} MiB)")
    print(f"  packets (whole run): {expected} sent, {got} relayed ({100 * got / max(1, expected):.2f} %)")
    print(f"  driver pace: {tick} ticks of 20 ms in {paced:.1f} s (the schedule: {tick * 0.02:.1f} s)")


if __name__ == "__main__":
    main()
