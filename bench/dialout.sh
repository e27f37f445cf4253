#!/usr/bin/env bash
# Admission benchmark of POST /api/v1/actions/dialout on the embedded store (BENCHMARKS.md, "Dialout admission").
# wrk sends dialouts as fast as it can, in two cases, each with Basic and with Bearer authentication:
#
#   limited  a bot limited to LIMIT dialouts/s (2,000) whose calls go to a sipp that answers (and waits for the
#            gateway's BYE): the accepted ones are really placed (sipp counts the INVITEs it answered), the rest
#            get 429;
#   dead     a trunk that does not answer (a UDP sink counts the INVITEs and never responds): dialouts are
#            accepted and placed until the trunk is known to be down (or the RTP ports are all held by calls
#            waiting for it), then refused with 503;
#
# plus the refusal of an invalid request (400) as a floor. Each row: answers per second (every status), latency,
# and the answers by result from the gateway's own counter (`outdial_dialouts_total`).
#
#   bench/dialout.sh                           # 8 s per row, 32 connections
#   DURATION=30s CONNS=64 LIMIT=2000 bench/dialout.sh
#   OUTDIAL_BIN=/path/to/outdial bench/dialout.sh   # another build, for a ratio in one sitting
#
# Needs wrk and sipp (Debian packages). Prints a Markdown table for BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-8s}
CONNS=${CONNS:-32}
THREADS=${THREADS:-1}
LIMIT=${LIMIT:-2000}
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
command -v sipp >/dev/null || { echo "sipp is not installed (apt-get install sip-tester)" >&2; exit 1; }
# shellcheck source=bench/build.sh
[ -n "${OUTDIAL_BIN:-}" ] || source bench/build.sh
BIN=${OUTDIAL_BIN:-${CARGO_TARGET_DIR:-target}/release/outdial}
work=$(mktemp -d)
pid='' sp='' sink=''
trap 'kill $pid $sp $sink 2>/dev/null || true; rm -rf "$work"' EXIT
ulimit -n 65536 2>/dev/null || true
free_port() {
  python3 -c 'import socket,sys; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
sipp_port=$(free_port)
dead_port=$(free_port)
(cd crates/outdial-testkit/sipp && exec sipp -sf uas_answer_wait_bye.xml -i 127.0.0.1 -p "$sipp_port" -nostdin \
  -trace_stat -stf "$work/sipp.csv" -fd 1 >/dev/null 2>&1) &
sp=$!
# The dead trunk: takes every datagram, answers none, counts the INVITEs (distinct Call-IDs).
python3 - "$dead_port" "$work/invites" <<'PY' &
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.settimeout(0.5)
seen, last = set(), 0
while True:
    try:
        data = s.recv(65535)
        if data.startswith(b"INVITE "):
            for line in data.split(b"\r\n"):
                if line.lower().startswith((b"call-id:", b"i:")):
                    seen.add(line.split(b":", 1)[1].strip())
    except socket.timeout:
        pass
    if time.time() - last > 0.5:
        last = time.time()
        with open(sys.argv[2], "w") as f:
            f.write(str(len(seen)))
PY
sink=$!
cat > "$work/bench.toml" <<TOML
[log]
level = "warn"
[[trunks]]
name = "dead"
address = "127.0.0.1:$dead_port"
keepAliveSec = 0
[[trunks]]
name = "answering"
address = "127.0.0.1:$sipp_port"
keepAliveSec = 0
[[bots]]
name = "Open"
botUrl = "http://127.0.0.1:9/bot"
trunk = "dead"
[[bots]]
name = "Limited"
botUrl = "http://127.0.0.1:9/bot"
trunk = "answering"
dialoutLimitPerSecond = $LIMIT
[[applications]]
clientId = "bench"
clientSecret = "bench-secret-1"
policies = [{ role = "OUTDIAL/ADMIN", scope = "*" }]
TOML
"$BIN" serve --config "$work/bench.toml" --store "sqlite://$work/outdial.db" --listen 127.0.0.1:0 --sip-listen 127.0.0.1:0 \
  > "$work/out" 2> "$work/log" &
pid=$!
for _ in $(seq 100); do grep -q listening "$work/out" 2>/dev/null && break; sleep 0.1; done
base=$(sed -n 's/^outdial listening on //p' "$work/out")
[ -n "$base" ] || { cat "$work/log" >&2; exit 1; }
token=$(curl -s -X POST "$base/oauth/token" -d grant_type=client_credentials -d client_id=bench -d client_secret=bench-secret-1 \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
basic="Basic $(printf 'bench:bench-secret-1' | base64)"
limited='{"bot":"Limited","target":"tel:+123456789","caller":"1-800-111","metadata":{"participantName":"Alice"}}'
dead='{"bot":"Open","target":"tel:+123456789","caller":"1-800-111","metadata":{"participantName":"Alice"}}'
invalid='{"bot":"Open","target":"tel:+123456789","caller":"1-800-111","answerTimeoutSec":301}'

# The gateway's answers so far, by result: "accepted=N rate_limited=N …".
answers() {
  curl -s -H "Authorization: $basic" "$base/metrics" \
    | sed -n 's/^outdial_dialouts_total{result="\([a-z_]*\)"} \([0-9]*\).*/\1 \2/p'
}
# What changed between two `answers` readings, as "200 N, 429 N, 503 N".
delta() {
  python3 - "$1" "$2" <<'PY'
import sys
def parse(s):
    return {k: int(v) for k, v in (l.split() for l in s.splitlines() if l.strip())}
a, b = parse(sys.argv[1]), parse(sys.argv[2])
names = {"accepted": "200", "rate_limited": "429", "concurrency_limited": "429 (concurrency)",
         "unavailable": "503", "invalid": "400"}
print(", ".join(f"{names.get(k, k)} {b[k] - a.get(k, 0):,}" for k in sorted(b) if b[k] - a.get(k, 0) > 0))
PY
}
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$pid/stat"; }
sipp_answered() { tail -1 "$work/sipp.csv" 2>/dev/null | awk -F';' -v col="$1" 'NR==1 {print $col}'; }
# The column of sipp's "TotalCallCreated" (calls it received as UAS).
sipp_col() { head -1 "$work/sipp.csv" | tr ';' '\n' | grep -n '^TotalCallCreated$' | cut -d: -f1; }

echo "| case | auth | answers/s | p50 | p90 | p99 | answers by status | gateway CPU |"
echo "|---|---|---|---|---|---|---|---|"
for scenario in "limited:$limited" "dead:$dead" "400 invalid:$invalid"; do
  name=${scenario%%:*}
  body=${scenario#*:}
  for auth in Basic Bearer; do
    if [ "$auth" = Basic ]; then header=$basic; else header="Bearer $token"; fi
    before=$(answers)
    c0=$(cpu_s)
    out=$(BODY="$body" AUTH="$header" wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -s bench/dialout.lua "$base/api/v1/actions/dialout")
    after=$(answers)
    c1=$(cpu_s)
    rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
    p50=$(awk '$1=="50%" {print $2}' <<<"$out")
    p90=$(awk '$1=="90%" {print $2}' <<<"$out")
    p99=$(awk '$1=="99%" {print $2}' <<<"$out")
    cores=$(awk -v a="$c0" -v b="$c1" -v d="${DURATION%s}" 'BEGIN {printf "%.2f cores", (b - a) / d}')
    echo "| $name | $auth | ${rps%.*} | $p50 | $p90 | $p99 | $(delta "$before" "$after") | $cores |"
  done
done

# Every accepted call placed? Wait for the last calls to reach sipp (answered, then hung up by the gateway: the
# bench's bot is unreachable) and for the dead trunk's INVITEs to be counted.
sleep 3
accepted=$(answers | awk '$1=="accepted" {print $2}')
col=$(sipp_col)
placed_answering=$(sipp_answered "$col")
placed_dead=$(cat "$work/invites" 2>/dev/null || echo 0)
echo
echo "accepted ${accepted:-0} dialouts in all; INVITEs answered by sipp (limited): ${placed_answering:-0};" \
  "INVITEs received by the dead trunk: ${placed_dead:-0}"
echo "wrk $CONNS connections, $THREADS thread(s), $DURATION per row; bot limit $LIMIT/s; $(nproc) cores; $(date -u +%F)"
