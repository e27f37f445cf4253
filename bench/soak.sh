#!/usr/bin/env bash
# Memory soak (BENCHMARKS.md, issue 14: "a soak of 20,000 short calls must end within 10 % of the RSS after the first
# 2,000"). The release gateway dials sipp (answers, holds each call 1 s, hangs up) at RATE calls/s in ROUNDS rounds
# of 2,000 calls, the same setup as bench/calls.sh; after each round, once the calls are over, it prints the
# gateway's resident memory (VmRSS) and the calls so far.
#
#   RATE=200 ROUNDS=10 bench/soak.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=${RATE:-200}
ROUNDS=${ROUNDS:-10}
PER_ROUND=2000
cargo build --quiet --release -p outdial -p outdial-bench
T=${CARGO_TARGET_DIR:-target}/release
work=$(mktemp -d)
trap 'kill $gw $sp $bt 2>/dev/null || true; rm -rf "$work"' EXIT
sipp_port=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
(cd crates/outdial-testkit/sipp && exec sipp -sf uas_answer_then_bye.xml -i 127.0.0.1 -p "$sipp_port" -d 1000 -nostdin \
  >/dev/null 2>&1) &
sp=$!
bot_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$T/outdial" sim --listen 127.0.0.1:0 --bot "127.0.0.1:$bot_port" --bot-script silent > "$work/bot.out" 2>&1 &
bt=$!
cat > "$work/soak.toml" <<TOML
[log]
level = "warn"
[sip]
rtp_ports = "20000-60000"
[[trunks]]
name = "sipp"
address = "127.0.0.1:$sipp_port"
# sipp's scenario answers INVITEs only: no keep-alive OPTIONS.
keepAliveSec = 0
[[bots]]
name = "Bench"
botUrl = "http://127.0.0.1:$bot_port/bot"
[[applications]]
clientId = "bench"
clientSecret = "bench-secret-1"
policies = [{ role = "OUTDIAL/ADMIN", scope = "*" }]
TOML
"$T/outdial" serve --config "$work/soak.toml" --store "sqlite://$work/outdial.db" --listen 127.0.0.1:0 --sip-listen 127.0.0.1:0 \
  > "$work/out" 2> "$work/log" &
gw=$!
for _ in $(seq 100); do grep -q listening "$work/out" 2>/dev/null && break; sleep 0.1; done
base=$(sed -n 's/^outdial listening on //p' "$work/out")
ulimit -n 65536 2>/dev/null || true
rss() { awk '/VmRSS/ {print $2}' "/proc/$gw/status"; }
echo "start: RSS $(rss) KiB"
seconds=$(python3 -c "print($PER_ROUND / $RATE)")
for r in $(seq "$ROUNDS"); do
  "$T/outdial-bench-calls" "$base" bench bench-secret-1 Bench "$RATE" "$seconds" > "$work/round" 2>&1
  sleep 3
  summary=$(grep -E "^accepted|missing terminal" "$work/round" | tr '\n' ' ')
  echo "round $r: $((r * PER_ROUND)) calls, RSS $(rss) KiB; $summary"
  if grep -q "refused {[0-9]" "$work/round"; then
    echo "  the gateway said:"; grep -E "WARN|ERROR" "$work/log" | tail -3 | sed 's/^/    /'
    curl -s "$base/api/v1/actions/dialout" -u bench:bench-secret-1 -H 'content-type: application/json' \
      -d '{"bot":"Bench","target":"tel:+1555","caller":"1"}' | sed 's/^/    a dialout now: /'; echo
  fi
done
echo "gateway CPU: $(ps -o times= -p $gw) s total; $(nproc) cores"
