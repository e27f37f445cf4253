#!/usr/bin/env bash
# Admission benchmark of POST /api/v1/actions/dialout on the embedded store (BENCHMARKS.md, the bars).
# Starts the release binary on a temporary SQLite file and runs wrk against it for each answer kind
# (200 accepted, 429 rate-limited, 400 invalid) with Basic and with Bearer authentication.
#
#   bench/dialout.sh            # 10 s per scenario, 32 connections
#   DURATION=30s CONNS=64 bench/dialout.sh
#
# Needs wrk (Debian package `wrk`). Prints a Markdown table for BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
CONNS=${CONNS:-32}
THREADS=${THREADS:-1}
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
cargo build --quiet --release -p outdial
BIN=${CARGO_TARGET_DIR:-target}/release/outdial
work=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
cat > "$work/bench.toml" <<'TOML'
[log]
level = "warn"
[[trunks]]
name = "t1"
address = "127.0.0.1:5099"
[[bots]]
name = "Open"
botUrl = "http://127.0.0.1:9/bot"
[[bots]]
name = "Slow"
botUrl = "http://127.0.0.1:9/bot"
dialoutLimitPerSecond = 0.001
[[applications]]
clientId = "bench"
clientSecret = "bench-secret-1"
policies = [{ role = "OUTDIAL/ADMIN", scope = "*" }]
TOML
"$BIN" serve --config "$work/bench.toml" --store "sqlite://$work/outdial.db" --listen 127.0.0.1:0 > "$work/out" 2> "$work/log" &
pid=$!
for _ in $(seq 100); do grep -q listening "$work/out" 2>/dev/null && break; sleep 0.1; done
base=$(sed -n 's/^outdial listening on //p' "$work/out")
[ -n "$base" ] || { cat "$work/log" >&2; exit 1; }
token=$(curl -s -X POST "$base/oauth/token" -d grant_type=client_credentials -d client_id=bench -d client_secret=bench-secret-1 \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
basic="Basic $(printf 'bench:bench-secret-1' | base64)"
ok='{"bot":"Open","target":"tel:+123456789","caller":"1-800-111","metadata":{"participantName":"Alice"}}'
limited='{"bot":"Slow","target":"tel:+123456789","caller":"1-800-111"}'
invalid='{"bot":"Open","target":"tel:+123456789","caller":"1-800-111","answerTimeoutSec":301}'
# Spend the one cell of the slow bot so that every measured request is refused.
curl -s -o /dev/null -H "Authorization: $basic" -H 'Content-Type: application/json' -d "$limited" "$base/api/v1/actions/dialout"

echo "| answer | auth | requests/s | p50 | p90 | p99 | non-2xx |"
echo "|---|---|---|---|---|---|---|"
for scenario in "200 accepted:$ok" "429 rate limit:$limited" "400 invalid:$invalid"; do
  name=${scenario%%:*}
  body=${scenario#*:}
  for auth in Basic Bearer; do
    if [ "$auth" = Basic ]; then header=$basic; else header="Bearer $token"; fi
    out=$(BODY="$body" AUTH="$header" wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -s bench/dialout.lua "$base/api/v1/actions/dialout")
    rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
    p50=$(awk '$1=="50%" {print $2}' <<<"$out")
    p90=$(awk '$1=="90%" {print $2}' <<<"$out")
    p99=$(awk '$1=="99%" {print $2}' <<<"$out")
    non2xx=$(awk '/Non-2xx/ {print $5}' <<<"$out")
    echo "| $name | $auth | ${rps%.*} | $p50 | $p90 | $p99 | ${non2xx:-0} |"
  done
done
accepted=$(curl -s -H "Authorization: $basic" "$base/metrics" | awk '/^outdial_dialouts_total\{result="accepted"\}/ {print $2}')
echo
echo "conversations stored: ${accepted:-0}; wrk $CONNS connections, $THREADS thread(s), $DURATION per row; $(nproc) cores"
