#!/usr/bin/env bash
# Cluster benchmarks (BENCHMARKS.md, "Cluster"; docs/cluster.md):
#  1. admission of POST /api/v1/actions/dialout with the Redis limiter against the local limiter, in the same run
#     (requests/s, p50, p99; wrk, Bearer auth), for 429 (refused by the rate limit) and 200 (accepted);
#  2. takeover after kill -9: a node holds CALLS answered calls (sipp), is killed, and the time until sipp has the
#     BYE of every call (sent by the other node) is measured RUNS times; the median is printed.
#
#   bench/cluster.sh
#   DURATION=10s CONNS=32 RUNS=5 CALLS=20 bench/cluster.sh
#   LIMITERS= RUNS=1 bench/cluster.sh      # the takeover only
#
# Needs wrk, sipp (sip-tester), redis-server and PostgreSQL at 127.0.0.1:5432 (scripts/install.sh --test).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
CONNS=${CONNS:-32}
RUNS=${RUNS:-5}
CALLS=${CALLS:-20}
PG=${PG:-postgres://postgres@127.0.0.1:5432}
# shellcheck source=bench/build.sh
source bench/build.sh
BIN=${CARGO_TARGET_DIR:-target}/release/outdial
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
exec 3>&2 2>"${BENCH_STDERR:-/dev/null}"   # no "Killed" lines from the processes this script kills; errors go to fd 3
fail() { echo "$*" >&3; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no > /dev/null &
pids+=($!)

# start NAME CONFIG STORE [ENV...]: runs a gateway, sets $base and $pid.
start() {
  local name=$1 config=$2 store=$3; shift 3
  env "$@" OUTDIAL_ADMIN_CLIENT_ID=bench OUTDIAL_ADMIN_CLIENT_SECRET=bench-secret-1 \
    "$BIN" serve --config "$config" --store "$store" --listen 127.0.0.1:0 --sip-listen 127.0.0.1:0 \
    > "$work/$name.out" 2> "$work/$name.log" &
  pid=$!
  pids+=($pid)
  for _ in $(seq 300); do grep -q listening "$work/$name.out" 2>/dev/null && break; sleep 0.1; done
  base=$(sed -n 's/^outdial listening on //p' "$work/$name.out")
  [ -n "$base" ] || fail "$(cat "$work/$name.log")"
}

limits_config() {
  cat <<TOML
[log]
level = "warn"
[sip]
trunk_down_after = 1000000
$1
[[trunks]]
name = "t1"
address = "127.0.0.1:5099"
[[bots]]
name = "Open"
botUrl = "http://127.0.0.1:9/bot"
dialoutLimitPerSecond = 10000
[[bots]]
name = "Slow"
botUrl = "http://127.0.0.1:9/bot"
dialoutLimitPerSecond = 0.001
TOML
}

echo "### Admission: local limiter against the Redis limiter"
echo
echo "| limiter | bot | answers/s | p50 | p99 | non-2xx |"
echo "|---|---|---|---|---|---|"
for limiter in ${LIMITERS-local redis}; do
  if [ $limiter = redis ]; then extra="[limits]
redis_url = \"redis://127.0.0.1:$redis_port/0\""; else extra=""; fi
  limits_config "$extra" > "$work/$limiter.toml"
  start "$limiter" "$work/$limiter.toml" "sqlite://$work/$limiter.db"
  gw=$pid
  token=$(curl -s -X POST "$base/oauth/token" -d grant_type=client_credentials -d client_id=bench -d client_secret=bench-secret-1 \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
  limited='{"bot":"Slow","target":"tel:+123456789","caller":"1-800-111"}'
  ok='{"bot":"Open","target":"tel:+123456789","caller":"1-800-111"}'
  curl -s -o /dev/null -H "Authorization: Bearer $token" -H 'Content-Type: application/json' -d "$limited" "$base/api/v1/actions/dialout"
  for scenario in "Slow (every request refused by the rate limit, 429):$limited" "Open (10,000/s; accepted until the RTP ports run out, then 503):$ok"; do
    name=${scenario%%:*}
    body=${scenario#*:}
    out=$(BODY="$body" AUTH="Bearer $token" wrk -t1 -c"$CONNS" -d"$DURATION" --latency -s bench/dialout.lua "$base/api/v1/actions/dialout")
    rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
    p50=$(awk '$1=="50%" {print $2}' <<<"$out")
    p99=$(awk '$1=="99%" {print $2}' <<<"$out")
    non2xx=$(awk '/Non-2xx/ {print $5}' <<<"$out")
    echo "| $limiter | $name | ${rps%.*} | $p50 | $p99 | ${non2xx:-0} |"
  done
  kill -9 "$gw" 2>/dev/null || true
  wait "$gw" 2>/dev/null || true
done

echo
echo "### Takeover after kill -9 ($CALLS answered calls, default heartbeat 2 s and node timeout 10 s)"
echo
bot_port=$(free_port)
"$BIN" sim --listen 127.0.0.1:$(free_port) --bot "127.0.0.1:$bot_port" --bot-script silent > /dev/null 2>&1 &
pids+=($!)
times=()
byes=()
for run in $(seq "$RUNS"); do
  db="outdial_bench_$$_$run"
  psql "$PG/test" -qc "CREATE DATABASE $db" > /dev/null
  sipp_port=$(free_port)
  (cd crates/outdial-testkit/sipp && sipp -sf uas_answer_wait_bye.xml -i 127.0.0.1 -p "$sipp_port" -m "$CALLS" \
    -timeout 120s -nostdin -trace_msg -message_file "$work/sipp.log" > /dev/null 2>&1) &
  sipp=$!
  cat > "$work/node.toml" <<TOML
[log]
level = "warn"
[[trunks]]
name = "sbc"
address = "127.0.0.1:$sipp_port"
keepAliveSec = 0
[[bots]]
name = "Bot1"
botUrl = "http://127.0.0.1:$bot_port/bot"
TOML
  start a "$work/node.toml" "$PG/$db" OUTDIAL_CLUSTER__NODE_ID=a
  a=$pid
  a_base=$base
  start b "$work/node.toml" "$PG/$db" OUTDIAL_CLUSTER__NODE_ID=b
  b=$pid
  for _ in $(seq "$CALLS"); do
    curl -s -o /dev/null -u bench:bench-secret-1 -H 'Content-Type: application/json' \
      -d '{"bot":"Bot1","target":"tel:+1","caller":"1"}' "$a_base/api/v1/actions/dialout"
  done
  for _ in $(seq 200); do
    n=$(curl -s -u bench:bench-secret-1 "$a_base/api/v1/conversations?status=answered&limit=500" \
      | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["conversations"]))')
    [ "$n" -ge "$CALLS" ] && break
    sleep 0.1
  done
  t0=$(date +%s.%N)
  kill -9 "$a"
  # Taken over: node b has sent every BYE, had it answered, and ended every conversation.
  for _ in $(seq 600); do
    n=$(curl -s -u bench:bench-secret-1 "$base/api/v1/conversations?status=live&limit=500" \
      | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["conversations"]))')
    [ "$n" -eq 0 ] && break
    sleep 0.05
  done
  t1=$(date +%s.%N)
  wait "$sipp" || fail "run $run: sipp did not get every BYE"
  # When the last call's first BYE reached sipp (its message trace).
  bye=$(python3 - "$work/sipp.log" <<'PY'
import re, sys, datetime
at, seen, last, in_bye = None, set(), None, False
for line in open(sys.argv[1], errors="replace"):
    m = re.match(r"-+ (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)", line)
    if m:
        at, in_bye = m.group(1), False
    elif line.startswith("BYE sip:"):
        in_bye = True
    elif in_bye and line.lower().startswith("call-id:"):
        cid = line.split(":", 1)[1].strip()
        if cid not in seen:
            seen.add(cid)
            last = at
print(datetime.datetime.strptime(last, "%Y-%m-%d %H:%M:%S.%f").timestamp())
PY
)
  byes+=("$(python3 -c "print(round($bye - $t0, 2))")")
  times+=("$(python3 -c "print(round($t1 - $t0, 2))")")
  kill -9 "$b" 2>/dev/null || true
  wait "$b" 2>/dev/null || true
  psql "$PG/test" -qc "DROP DATABASE $db WITH (FORCE)" > /dev/null
done
median() { python3 -c "import statistics,sys; print(statistics.median(map(float, sys.argv[1:])))" "$@"; }
echo "kill -9 → the far end has every call's BYE (sipp's trace), $RUNS runs (s): ${byes[*]}; median $(median "${byes[@]}") s"
echo "kill -9 → every conversation ended by the other node, $RUNS runs (s): ${times[*]}; median $(median "${times[@]}") s"
echo "(sipp answers a BYE at the address the call came from, the dead node's, so the taker waits its 5 s BYE timeout"
echo " before it ends the conversations; a far end that answers at the Via, as RFC 3261 says, saves those 5 s)"
echo
echo "wrk $CONNS connections, $DURATION per row; $(nproc) cores; $(date -u +%F)"
