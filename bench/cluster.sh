#!/usr/bin/env bash
# Cluster benchmarks (BENCHMARKS.md, "Cluster"; docs/cluster.md):
#  1. admission of POST /api/v1/actions/dialout with the Redis limiter against the local limiter, in the same run
#     (requests/s, p50, p99; wrk, Bearer auth), for 429 (refused by the rate limit) and 200 (accepted);
#  2. takeover after kill -9: a node holds CALLS answered calls (sipp), is killed, and the time until sipp has the
#     BYE of every call (sent by the other node) is measured RUNS times; the median is printed.
#
#   bench/cluster.sh
#   DURATION=10s CONNS=32 RUNS=5 CALLS=20 bench/cluster.sh
#
# Needs wrk, sipp (sip-tester), redis-server and PostgreSQL at 127.0.0.1:5432 (scripts/install.sh --test).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
CONNS=${CONNS:-32}
RUNS=${RUNS:-5}
CALLS=${CALLS:-20}
PG=${PG:-postgres://postgres@127.0.0.1:5432}
cargo build --quiet --release -p outdial
BIN=${CARGO_TARGET_DIR:-target}/release/outdial
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
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
  [ -n "$base" ] || { cat "$work/$name.log" >&2; exit 1; }
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
dialoutLimitPerSecond = 1000000
dialoutMaxConcurrentCalls = 1000000
[[bots]]
name = "Slow"
botUrl = "http://127.0.0.1:9/bot"
dialoutLimitPerSecond = 0.001
TOML
}

echo "### Admission: local limiter against the Redis limiter"
echo
echo "| limiter | answer | requests/s | p50 | p99 |"
echo "|---|---|---|---|---|"
for limiter in local redis; do
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
  for scenario in "429 rate limit:$limited" "200 accepted:$ok"; do
    name=${scenario%%:*}
    body=${scenario#*:}
    out=$(BODY="$body" AUTH="Bearer $token" wrk -t1 -c"$CONNS" -d"$DURATION" --latency -s bench/dialout.lua "$base/api/v1/actions/dialout")
    rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
    p50=$(awk '$1=="50%" {print $2}' <<<"$out")
    p99=$(awk '$1=="99%" {print $2}' <<<"$out")
    echo "| $limiter | $name | ${rps%.*} | $p50 | $p99 |"
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
for run in $(seq "$RUNS"); do
  db="outdial_bench_$$_$run"
  psql "$PG/test" -qc "CREATE DATABASE $db" > /dev/null
  sipp_port=$(free_port)
  (cd crates/outdial-testkit/sipp && sipp -sf uas_answer_wait_bye.xml -i 127.0.0.1 -p "$sipp_port" -m "$CALLS" \
    -timeout 120s -nostdin > /dev/null 2>&1) &
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
  wait "$sipp" || { echo "run $run: sipp did not get every BYE" >&2; exit 1; }
  t1=$(date +%s.%N)
  times+=("$(python3 -c "print(round($t1 - $t0, 2))")")
  kill -9 "$b" 2>/dev/null || true
  wait "$b" 2>/dev/null || true
  psql "$PG/test" -qc "DROP DATABASE $db WITH (FORCE)" > /dev/null
done
echo "kill -9 → every BYE at the far end, $RUNS runs (s): ${times[*]}"
python3 -c "import statistics,sys; print('median', statistics.median(map(float, sys.argv[1:])), 's')" "${times[@]}"
echo
echo "wrk $CONNS connections, $DURATION per row; $(nproc) cores; $(date -u +%F)"
