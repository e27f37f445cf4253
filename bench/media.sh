#!/usr/bin/env bash
# Media benchmark (BENCHMARKS.md, the bars: ≤ 1 ms CPU per call-second with bidirectional G.711 RTP and detection running,
# at ≥ 1,000 concurrent calls on 2 cores; send jitter p99 < 5 ms; memory per call, no growth).
# sipp answers every call and streams a looping voicemail greeting without beep (rtp_stream); the release gateway
# dials with machineDetection "detect", so each call's detector finds a machine and keeps listening for a beep.
#
#   CALLS=1000 RATE=100 WINDOW=20 bench/media.sh
# GATEWAY_EXTRA adds sections to the gateway's configuration, e.g. GATEWAY_EXTRA=$'[speech]\nsecond_opinions = 0'.
# BOT_EXTRA adds lines to the bot, e.g. BOT_EXTRA='machineDetectionConfig = { secondOpinionMs = 0 }'.
# MEDIA_THREADS / MEDIA_REALTIME set sip.media_threads / sip.media_realtime; FAR_END_NICE runs sipp at that nice
# level (the far end is on the same cores here; in production it is another machine).
set -euo pipefail
cd "$(dirname "$0")/.."
CALLS=${CALLS:-1000}
RATE=${RATE:-100}
WINDOW=${WINDOW:-20}
# shellcheck source=bench/build.sh
source bench/build.sh
T=${CARGO_TARGET_DIR:-target}/release
work=$(mktemp -d)
trap 'kill $gw $sp $bt 2>/dev/null || true; rm -rf "$work"' EXIT
# The greeting as raw µ-law for sipp's rtp_stream (the WAV's data chunk).
python3 - crates/outdial-detect/tests/audio/greeting_8k_ulaw.wav "$work/greeting_loop.ul" <<'PY'
import sys
b = open(sys.argv[1], "rb").read()
i = b.index(b"data")
n = int.from_bytes(b[i + 4:i + 8], "little")
open(sys.argv[2], "wb").write(b[i + 8:i + 8 + n])
PY
sipp_port=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
(cd "$work" && exec nice -n "${FAR_END_NICE:-0}" sipp -sf "$OLDPWD/crates/outdial-testkit/sipp/uas_answer_rtp_loop.xml" -i 127.0.0.1 -mi 127.0.0.1 \
  -p "$sipp_port" -nostdin -rtp_threadtasks 50 -buff_size 4194304 >/dev/null 2>&1) &
sp=$!
# The reference bot (silent: the calls stay with the far end), from outdial sim.
bot_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$T/outdial" sim --listen 127.0.0.1:0 --bot "127.0.0.1:$bot_port" --bot-script silent > "$work/bot.out" 2>&1 &
bt=$!
cat > "$work/bench.toml" <<TOML
[log]
level = "warn"
[sip]
rtp_ports = "20000-40000"
media_timeout_sec = 0
media_threads = ${MEDIA_THREADS:-0}
media_realtime = ${MEDIA_REALTIME:-true}
${GATEWAY_EXTRA:-}
[[trunks]]
name = "sipp"
address = "127.0.0.1:$sipp_port"
keepAliveSec = 0
[[bots]]
name = "Bench"
botUrl = "http://127.0.0.1:$bot_port/bot"
dialoutMaxConcurrentCalls = 0
${BOT_EXTRA:-}
[[applications]]
clientId = "bench"
clientSecret = "bench-secret-1"
policies = [{ role = "OUTDIAL/ADMIN", scope = "*" }]
TOML
ulimit -n 65536 2>/dev/null || true
"${OUTDIAL_BIN:-$T/outdial}" serve --config "$work/bench.toml" --store "sqlite://$work/outdial.db" --listen 127.0.0.1:0 --sip-listen 127.0.0.1:0 \
  > "$work/out" 2> "$work/log" &
gw=$!
for _ in $(seq 100); do grep -q listening "$work/out" 2>/dev/null && break; sleep 0.1; done
base=$(sed -n 's/^outdial listening on //p' "$work/out")
s0=$(awk '{print $14+$15}' /proc/$sp/stat)
python3 bench/media.py "$base" bench bench-secret-1 Bench "$CALLS" "$RATE" "$WINDOW" "$gw"
s1=$(awk '{print $14+$15}' /proc/$sp/stat)
echo "sipp (the far end, same machine) used $(( (s1 - s0) / 100 )) s of CPU over the run; $(nproc) cores"
