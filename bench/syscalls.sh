#!/usr/bin/env bash
# The gateway's system calls per call, by kind (BENCHMARKS.md, "Call setup"): bench/calls.sh at RATE calls/s for
# SECONDS, with `perf stat` counting the gateway's system calls over the whole run (from half a second after its
# threads start: most of the start-up's few thousand are left out). Counts move little between runs, unlike CPU time on a shared
# machine, so they compare builds where a time cannot.
#
#   RATE=500 SECONDS=10 bench/syscalls.sh
#   OUTDIAL_BIN=/path/to/outdial RATE=500 SECONDS=10 bench/syscalls.sh   # another build
#
# Needs perf (Debian linux-perf) and its system-call tracepoints (kernel.perf_event_paranoid ≤ 1, or root).
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=${RATE:-500}
SECONDS_=${SECONDS:-10}
command -v perf >/dev/null || { echo "perf is not installed (apt-get install linux-perf)" >&2; exit 1; }
out=$(mktemp)
trap 'rm -f "$out" "$out.calls"' EXIT
RATE=$RATE SECONDS=$SECONDS_ bench/calls.sh > "$out.calls" 2>&1 &
calls=$!
gw=
for _ in $(seq 600); do
  gw=$(pgrep -n -f 'serve --config /tmp/.*/bench.toml' || true)
  [ -n "$gw" ] && break
  sleep 0.1
done
[ -n "$gw" ] || { echo "the gateway did not start" >&2; cat "$out.calls" >&2; exit 1; }
# Attached once the gateway's threads run, so that each is counted from its own counter (not only through the
# counters a first thread's children inherit).
for _ in $(seq 50); do [ "$(ls "/proc/$gw/task" 2>/dev/null | wc -l)" -ge 4 ] && break; sleep 0.1; done
sleep 0.5
# Until the gateway exits (bench/calls.sh stops it when its run is over).
perf stat -x, -e 'syscalls:sys_enter_*' -p "$gw" -o "$out" 2>/dev/null || true
wait $calls
grep -E 'accepted|gateway CPU' "$out.calls"
n=$((RATE * SECONDS_))
awk -F, -v n="$n" '$1 ~ /^[0-9]+$/ && $1 > 0 { sub("syscalls:sys_enter_", "", $3); t += $1; c[$3] = $1 }
  END { printf "system calls per call (%d calls): %.1f in all\n", n, t / n;
        for (k in c) printf "%8.2f  %s\n", c[k] / n, k | "sort -rn | head -20" }' "$out"
