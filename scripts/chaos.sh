#!/usr/bin/env bash
# Fault experiments that take minutes (issue 14; docs/operations.md, "What happens when …"). The ones that fit in CI
# are tests (full disk, SIGTERM drain, kill -9 with a call up, a hanging receiver); this script runs the long ones
# on the release build:
#
#   1. kill -9 under load: dialouts at RATE/s for SECONDS while the gateway is killed (SIGKILL) and restarted twice
#      on the same addresses; every accepted dialout must get exactly one terminal notification, and the far end
#      (sipp) must not be left holding calls.
#   2. the memory soak (bench/soak.sh): 20,000 calls, RSS after each 2,000 busy and at rest; fails when the RSS at
#      rest after the last round is over 110 % of the first round's.
#
#   scripts/chaos.sh [kill|soak|all]      (default all; RATE=50 DURATION=20 for kill)
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
RATE=${RATE:-50}
DURATION=${DURATION:-20}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/outdial/target}
# shellcheck source=bench/build.sh
source bench/build.sh
T=$CARGO_TARGET_DIR/release
free_port() { python3 -c "import socket; s=socket.socket(socket.AF_INET, socket.SOCK_$1); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])"; }

kill_under_load() {
  local work gw sp bt api sip sipp_port bot_port
  work=$(mktemp -d)
  sipp_port=$(free_port DGRAM); bot_port=$(free_port STREAM); api=$(free_port STREAM); sip=$(free_port DGRAM)
  # sipp answers and holds every call until it gets a BYE; the gateway ends calls after 3 s (max_call_duration_sec),
  # so a call still up at sipp at the end is one the gateway forgot to end.
  (cd crates/outdial-testkit/sipp && exec sipp -sf uas_answer_wait_bye.xml -i 127.0.0.1 -p "$sipp_port" \
    -nostdin -trace_stat -stf "$work/sipp.csv" -fd 1 >/dev/null 2>&1) &
  sp=$!
  "$T/outdial" sim --listen 127.0.0.1:0 --bot "127.0.0.1:$bot_port" --bot-script silent > "$work/bot.out" 2>&1 &
  bt=$!
  cat > "$work/chaos.toml" <<TOML
[log]
level = "info"
[sip]
rtp_ports = "20000-60000"
max_call_duration_sec = 3
[[trunks]]
name = "sipp"
address = "127.0.0.1:$sipp_port"
keepAliveSec = 0
[[bots]]
name = "Bench"
botUrl = "http://127.0.0.1:$bot_port/bot"
[[applications]]
clientId = "bench"
clientSecret = "bench-secret-1"
policies = [{ role = "OUTDIAL/ADMIN", scope = "*" }]
TOML
  start() {
    "$T/outdial" serve --config "$work/chaos.toml" --store "sqlite://$work/outdial.db" --listen "127.0.0.1:$api" \
      --sip-listen "127.0.0.1:$sip" >> "$work/out" 2>> "$work/log" &
    gw=$!
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$api/healthz" >/dev/null && break; sleep 0.1; done
  }
  start
  "$T/outdial-bench-calls" "http://127.0.0.1:$api" bench bench-secret-1 Bench "$RATE" "$DURATION" > "$work/driver" 2>&1 &
  local driver=$!
  for at in 1 2; do
    sleep $((DURATION / 3))
    kill -9 "$gw"; wait "$gw" 2>/dev/null || true
    echo "kill -9 number $at; restarting"
    start
  done
  wait "$driver" || true
  sleep 8
  echo "--- driver"; cat "$work/driver"
  echo "--- after each restart:"
  grep -o "ended [0-9]* conversation(s) left unfinished" "$work/log" || true
  echo "BYEs sent and answered: $(grep -c "BYE sent for the call the previous run left up, and answered" "$work/log" || true)"
  echo "BYEs that failed: $(grep -c "cannot end the call the previous run left up" "$work/log" || true)"
  local held
  held=$(awk -F';' 'NR==1 {for (i=1;i<=NF;i++) if ($i=="CurrentCall") c=i} NR>1 {v=$c} END {print v}' "$work/sipp.csv" 2>/dev/null || echo unknown)
  echo "--- sipp: calls still up at the far end: $held"
  kill "$gw" "$sp" "$bt" 2>/dev/null || true
  rm -rf "$work"
}

case "$what" in
  kill) kill_under_load ;;
  soak) bench/soak.sh ;;
  all) kill_under_load; bench/soak.sh ;;
  *) echo "usage: scripts/chaos.sh [kill|soak|all]" >&2; exit 2 ;;
esac
