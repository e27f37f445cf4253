#!/usr/bin/env python3
"""Media benchmark driver (BENCHMARKS.md, the bars): N concurrent answered calls with bidirectional G.711 RTP and machine
detection running; measures the gateway's CPU per call-second, memory per call and RTP send offset (how far each packet left from its 20 ms schedule, early or late).

    bench/media.py BASE CLIENT SECRET BOT N RATE WINDOW GATEWAY_PID
"""
import base64
import json
import sys
import threading
import time
import urllib.request

base, client, secret, bot, n, rate, window, pid = sys.argv[1:9]
n, rate, window, pid = int(n), float(rate), float(window), int(pid)
auth = "Basic " + base64.b64encode(f"{client}:{secret}".encode()).decode()
HZ = 100.0
PAGE = 4096


def call(method, path, body=None):
    req = urllib.request.Request(base + path, method=method, data=json.dumps(body).encode() if body else None,
                                 headers={"Authorization": auth, "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        data = r.read()
        return json.loads(data) if data else None


def offsets():
    """The gateway's send-offset buckets (outdial_rtp_send_offset_packets_total) by label."""
    req = urllib.request.Request(base + "/metrics")
    text = urllib.request.urlopen(req, timeout=30).read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("outdial_rtp_send_offset_packets_total{"):
            label = line.split('below="', 1)[1].split('"', 1)[0]
            out[label] = int(float(line.rsplit(" ", 1)[1]))
    return out


def percentiles(hist, order):
    total = sum(hist.values())
    acc, p50, p99 = 0, None, None
    for k in order:
        acc += hist.get(k, 0)
        if p50 is None and acc >= 0.5 * total:
            p50 = k
        if p99 is None and acc >= 0.99 * total:
            p99 = k
    return total, p50, p99


def cpu_s():
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / HZ


def rss_mib():
    return int(open(f"/proc/{pid}/statm").read().split()[1]) * PAGE / 2**20


def count(state):
    total, cursor = 0, None
    while True:
        q = f"/api/v1/conversations?status={state}&limit=500" + (f"&cursor={cursor}" if cursor else "")
        page = call("GET", q)
        total += len(page["conversations"])
        cursor = page.get("nextCursor")
        if not cursor:
            return total


rss0 = rss_mib()
ids, lock = [], threading.Lock()


def dial(i):
    body = {"bot": bot, "target": f"tel:+1555{i:07d}", "caller": "1000", "answerTimeoutSec": 10,
            "machineDetection": "detect", "voicemailEndTimeoutSec": 300}
    cid = call("POST", "/api/v1/actions/dialout", body)["conversationId"]
    with lock:
        ids.append(cid)


t0 = time.time()
threads = []
half = None  # (calls answered, RSS) once half the calls are dialled
for i in range(n):
    t = threading.Thread(target=dial, args=(i,))
    t.start()
    threads.append(t)
    if i + 1 == n // 2:
        # The RSS after start-up holds memory the gateway freed and may reuse for its first calls, so the growth
        # from the start undercounts a call's memory (a few hundred calls can fit in it); the second half of the
        # calls is measured alone as well.
        time.sleep(1)
        half = (count("answered"), rss_mib())
        t0 += time.time() - (t0 + (i + 1) / rate)
    time.sleep(max(0.0, t0 + (i + 1) / rate - time.time()))
for t in threads:
    t.join()
for _ in range(120):
    answered = count("answered")
    if answered >= n:
        break
    time.sleep(1)
print(f"{len(ids)} dialouts, {answered} answered and live")
time.sleep(5)  # let every call pass its detection verdict (machine: the beep search keeps running)

samples = []
o0 = offsets()
for _ in range(2):
    c0, w0 = cpu_s(), time.time()
    time.sleep(window)
    c1, w1 = cpu_s(), time.time()
    samples.append(((c1 - c0) / (w1 - w0), rss_mib()))
o1 = offsets()
steady = {k: o1[k] - o0.get(k, 0) for k in o1}
live = count("answered")
for i, (cores, rss) in enumerate(samples):
    print(f"window {i + 1} ({window:.0f} s): gateway {cores:.3f} cores = {1000 * cores / live:.3f} ms CPU per call-second; "
          f"RSS {rss:.1f} MiB")
print(f"memory: {rss0:.1f} MiB before the calls, {samples[-1][1]:.1f} MiB with {live} calls = "
      f"{1024 * (samples[-1][1] - rss0) / live:.1f} KiB per call; growth between windows "
      f"{samples[1][1] - samples[0][1]:+.1f} MiB")
if half and live > half[0]:
    print(f"memory of the second half of the calls: {half[1]:.1f} MiB with {half[0]} calls, {samples[-1][1]:.1f} MiB "
          f"with {live} = {1024 * (samples[-1][1] - half[1]) / (live - half[0]):.1f} KiB per call")

for cid in ids:
    try:
        call("DELETE", f"/api/v1/conversations/{cid}")
    except Exception:
        pass
order = ["0.5ms", "1ms", "2ms", "5ms", "10ms", "20ms", "+Inf"]
total, p50, p99 = percentiles(steady, order)
print(f"RTP send offset (early or late) with all {live} calls up, over the two windows: {total} packets, "
      f"p50 below {p50}, p99 below {p99}; histogram {steady}")
time.sleep(3)
bounds = ["<0.5ms", "<1ms", "<2ms", "<5ms", "<10ms", "<20ms", ">=20ms"]
hist = dict.fromkeys(bounds, 0)
worst = 0.0
for cid in ids:
    for e in call("GET", f"/api/v1/conversations/{cid}/events"):
        if e["kind"] == "media-stats":
            for k, v in e["data"]["sendOffset"]["buckets"].items():
                hist[k] += v
            worst = max(worst, e["data"]["sendOffset"]["maxMs"])
total, p50, p99 = percentiles(hist, bounds)
print(f"RTP send offset over the whole run (ramp-up and hang-ups included), {total} packets: p50 {p50}, p99 {p99}, max {worst:.1f} ms; histogram {hist}")
