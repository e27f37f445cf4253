#!/usr/bin/env python3
import sqlite3, os, sys, json, random, struct, uuid
# Which b-trees a call's writes dirty in SQLite's WAL: replays a modelled call (create, 4 states, 2 notifications and
# their attempts) for 5,000 calls at 500/s in transactions of WIN ms. Usage: WIN=5 python3 bench/store-wal.py base|split|split_nostate_noowner
MIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crates", "outdial-store", "migrations", "sqlite")
variant = sys.argv[1]
db = f"/tmp/store-wal-{variant}.db"
for s in ("", "-wal", "-shm"):
    try: os.remove(db + s)
    except FileNotFoundError: pass
c = sqlite3.connect(db, isolation_level=None)
c.execute("PRAGMA journal_mode=WAL"); c.execute("PRAGMA synchronous=NORMAL"); c.execute("PRAGMA wal_autocheckpoint=0")
mig = "".join(open(os.path.join(MIG, f)).read() for f in sorted(os.listdir(MIG)))
c.executescript(mig)
if "split" in variant:
    c.executescript("CREATE TABLE conversation_requests (id TEXT PRIMARY KEY, body TEXT NOT NULL) WITHOUT ROWID;")
if "nostate" in variant:
    c.executescript("DROP INDEX conversations_state;")
if "noowner" in variant:
    c.executescript("DROP INDEX conversations_owner_live;")
c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
REQ = "x" * 700
def body(state, n): return json.dumps({"state": state, "pad": "y" * (450 + 20 * n)})
# per call schedule: (offset ms, kind)
sched = [(0, "create", "accepted"), (5, "upd", "dialing"), (15, "upd", "ringing"), (30, "updn", "answered"),
         (35, "att", None), (40, "upd", "answered2"), (60, "ev", None), (1030, "updn", "ended"), (1035, "att", None)]
writes = []
for i in range(5000):
    t0 = i * 2.0
    cid = str(uuid.UUID(int=(int(t0 * 1000) << 80) | random.getrandbits(80)))
    for n, (off, k, st) in enumerate(sched):
        writes.append((t0 + off + random.random(), i, cid, k, st, n))
writes.sort()
seqs = {}
WIN = float(os.environ.get("WIN", "5"))
txs = 0
def walsize():
    try: return os.path.getsize(db + "-wal")
    except FileNotFoundError: return 0
t = 0; i = 0
while i < len(writes):
    t += WIN
    batch = []
    while i < len(writes) and writes[i][0] < t:
        batch.append(writes[i]); i += 1
    if not batch: continue
    c.execute("BEGIN")
    for (_, _, cid, k, st, n) in batch:
        now = int(t)
        if k == "create":
            b = body(st, n) if "split" in variant else REQ + body(st, n)
            c.execute("INSERT INTO conversations (id, bot, client_id, state, created_at, updated_at, body, owner) VALUES (?,?,?,?,?,?,?,?)", (cid, "bench", "app", st, now, now, b, "node"))
            if "split" in variant:
                c.execute("INSERT INTO conversation_requests VALUES (?,?)", (cid, REQ))
            c.execute("INSERT INTO conversation_events (conversation_id, at, kind, data) VALUES (?,?,?,?)", (cid, now, st, '{"bot":"bench","clientId":"app"}'))
        elif k in ("upd", "updn"):
            b = body(st, n) if "split" in variant else REQ + body(st, n)
            c.execute("UPDATE conversations SET state=?, updated_at=?, body=? WHERE id=?", (st[:8], now, b, cid))
            c.execute("INSERT INTO conversation_events (conversation_id, at, kind, data) VALUES (?,?,?,?)", (cid, now, st, '{"a":' + '"z"' * 1 + ', "p":"' + "q" * 150 + '"}'))
            if k == "updn":
                s = seqs[cid] = seqs.get(cid, 0) + 1
                c.execute("INSERT INTO outbox (event_id, conversation_id, sequence, url, body, secret, status, attempts, next_attempt_at, last_error, created_at, delivered_at, host) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                          (str(uuid.UUID(int=(now << 80) | random.getrandbits(80))), cid, s, "http://127.0.0.1:9/n", "b" * 600, None, "pending", 0, now, None, now, None, "127.0.0.1:9"))
        elif k == "att":
            c.execute("UPDATE outbox SET status='delivered', attempts=1, delivered_at=? WHERE conversation_id=? AND sequence=?", (now, cid, seqs[cid]))
            c.execute("INSERT INTO conversation_events (conversation_id, at, kind, data) VALUES (?,?,?,?)", (cid, now, "notification", '{"status":200,"p":"' + "q" * 100 + '"}'))
        else:
            c.execute("INSERT INTO conversation_events (conversation_id, at, kind, data) VALUES (?,?,?,?)", (cid, now, "bot-connected", '{}'))
    c.execute("COMMIT"); txs += 1
w = walsize(); frames = (w - 32) // (4096 + 24)
# map frames to btrees
f = open(db + "-wal", "rb"); f.read(32)
pages = []
while True:
    h = f.read(24)
    if len(h) < 24: break
    pages.append(struct.unpack(">I", h[:4])[0]); f.seek(4096, 1)
c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
owner = dict(c.execute("SELECT pageno, name FROM dbstat"))
from collections import Counter
cnt = Counter(owner.get(p, "?") for p in pages)
print(f"{variant}: {txs} tx, {frames} frames, {frames/txs:.1f} pages/tx, {frames*4120/5000/1024:.1f} KiB/call, db pages {os.path.getsize(db)//4096}")
for k, v in cnt.most_common(): print(f"   {k:32} {v/txs:6.1f}")
