#!/usr/bin/env bash
# Per-host fairness of notification delivery (BENCHMARKS.md): runs the fairness scenario of outdial-notify N times —
# 400 notifications pending for a receiver that never answers (1 s timeout), 60 notifications to another receiver
# on another host, one every 50 ms — and prints each run's delay of the healthy receiver (median, p99, max) and how
# long the hanging receiver's backlog took once it answered again.
# Usage: bench/fairness.sh [RUNS]   (default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-5}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/outdial/target}"
cargo nextest run -p outdial-notify --no-run >/dev/null 2>&1
for i in $(seq "$runs"); do
  cargo nextest run -p outdial-notify -E 'test(a_receiver_that_never_answers_does_not_delay_the_others)' \
    --no-capture 2>&1 | grep -E "healthy receiver delay|backlog of 400" | sed "s/^/run $i: /"
done
