#!/usr/bin/env bash
# Memory soak (BENCHMARKS.md, issue 14: "a soak of 20,000 short calls must end within 10 % of the RSS after the first
# 2,000"). The release gateway dials sipp (answers, holds each call 1 s, hangs up) at RATE calls/s in ROUNDS rounds
# of 2,000 calls, the same setup as bench/calls.sh; after each round, once the calls are over, it prints the
# gateway's resident memory (VmRSS) and the SIP stack's transactions ("busy"); then, after IDLE seconds without
# calls (default 35: the answered INVITEs' transactions live 32 s after their 2xx, RFC 6026 Timer M), the same again
# ("idle": what the gateway keeps once its calls and their protocol windows are over). IDLE=0 skips the idle sample.
#
#   RATE=200 ROUNDS=10 bench/soak.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=${RATE:-200}
ROUNDS=${ROUNDS:-10}
IDLE=${IDLE:-35}
PER_ROUND=2000
# sipp's scenario answers INVITEs only: no keep-alive OPTIONS.
TRUNK_EXTRA="keepAliveSec = 0"
# shellcheck source=bench/gateway.sh
source bench/gateway.sh
rss() { awk '/VmRSS/ {print $2}' "/proc/$gw/status"; }
# The SIP stack's running transactions (outdial_sip_transactions{state="running"}).
txs() { curl -s "$base/metrics" | awk -F' ' '/^outdial_sip_transactions\{state="running"\}/ {print $2}'; }
echo "start: RSS $(rss) KiB"
seconds=$(python3 -c "print($PER_ROUND / $RATE)")
for r in $(seq "$ROUNDS"); do
  "$T/outdial-bench-calls" "$base" bench bench-secret-1 Bench "$RATE" "$seconds" > "$work/round" 2>&1
  sleep 3
  summary=$(grep -E "^accepted|missing terminal" "$work/round" | tr '\n' ' ')
  echo "round $r: $((r * PER_ROUND)) calls, busy: RSS $(rss) KiB, $(txs) SIP transactions; $summary"
  if [ "$IDLE" -gt 0 ]; then
    sleep "$IDLE"
    idle=$(rss)
    [ "$r" = 1 ] && first_idle=$idle
    echo "round $r: $((r * PER_ROUND)) calls, idle: RSS $idle KiB, $(txs) SIP transactions"
  fi
  if grep -q "refused {[0-9]" "$work/round"; then
    echo "  the gateway said:"; grep -E "WARN|ERROR" "$work/log" | tail -3 | sed 's/^/    /'
    curl -s "$base/api/v1/actions/dialout" -u bench:bench-secret-1 -H 'content-type: application/json' \
      -d '{"bot":"Bench","target":"tel:+1555","caller":"1"}' | sed 's/^/    a dialout now: /'; echo
  fi
done
echo "gateway CPU: $(ps -o times= -p $gw) s total; $(nproc) cores"
# The bar (issue 14): at rest, the RSS after the last round within 10 % of the RSS after the first.
if [ "$IDLE" -gt 0 ] && [ "$ROUNDS" -gt 1 ]; then
  if [ "$idle" -gt $((first_idle * 110 / 100)) ]; then
    echo "FAIL: idle RSS $idle KiB after $((ROUNDS * PER_ROUND)) calls is over 110 % of $first_idle KiB after $PER_ROUND"
    exit 1
  fi
  echo "ok: idle RSS $idle KiB after $((ROUNDS * PER_ROUND)) calls, $first_idle KiB after $PER_ROUND (bar: ≤ 110 %)"
fi
