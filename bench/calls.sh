#!/usr/bin/env bash
# Call-setup benchmark (BENCHMARKS.md, the bars: ≥ 500 calls/s, every notification received).
# sipp answers every call, holds it 1 s and hangs up (BYE); the release gateway dials it through a trunk; the
# driver posts dialouts at RATE/s for SECONDS with a notifyUrl and counts the notifications.
#
#   RATE=200 SECONDS=10 bench/calls.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=${RATE:-200}
SECONDS_=${SECONDS:-10}
cargo build --quiet --release -p outdial -p outdial-bench
T=${CARGO_TARGET_DIR:-target}/release
work=$(mktemp -d)
trap 'kill $gw $sp $bt 2>/dev/null || true; rm -rf "$work"' EXIT
sipp_port=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
(cd crates/outdial-testkit/sipp && exec sipp -sf uas_answer_then_bye.xml -i 127.0.0.1 -p "$sipp_port" -d 1000 -nostdin \
  -trace_stat -stf "$work/sipp_stat.csv" >/dev/null 2>&1) &
sp=$!
# The reference bot (silent: the calls stay with the far end), from outdial sim.
bot_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$T/outdial" sim --listen 127.0.0.1:0 --bot "127.0.0.1:$bot_port" --bot-script silent > "$work/bot.out" 2>&1 &
bt=$!
cat > "$work/bench.toml" <<TOML
[log]
level = "warn"
[sip]
rtp_ports = "20000-60000"
[[trunks]]
name = "sipp"
address = "127.0.0.1:$sipp_port"
[[bots]]
name = "Bench"
botUrl = "http://127.0.0.1:$bot_port/bot"
[[applications]]
clientId = "bench"
clientSecret = "bench-secret-1"
policies = [{ role = "OUTDIAL/ADMIN", scope = "*" }]
TOML
"$T/outdial" serve --config "$work/bench.toml" --store "sqlite://$work/outdial.db" --listen 127.0.0.1:0 --sip-listen 127.0.0.1:0 \
  > "$work/out" 2> "$work/log" &
gw=$!
for _ in $(seq 100); do grep -q listening "$work/out" 2>/dev/null && break; sleep 0.1; done
base=$(sed -n 's/^outdial listening on //p' "$work/out")
ulimit -n 65536 2>/dev/null || true
"$T/outdial-bench-calls" "$base" bench bench-secret-1 Bench "$RATE" "$SECONDS_"
echo "gateway CPU: $(ps -o times= -p $gw) s total; $(nproc) cores; sipp and the driver on the same machine"
