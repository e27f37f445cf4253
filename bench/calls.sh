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
SIPP_STAT=1
# shellcheck source=bench/gateway.sh
source bench/gateway.sh
"$T/outdial-bench-calls" "$base" bench bench-secret-1 Bench "$RATE" "$SECONDS_"
cpu=$(awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$gw/stat")
echo "gateway CPU: $cpu s total; $(nproc) cores; sipp and the driver on the same machine"
