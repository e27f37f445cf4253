#!/usr/bin/env bash
# The beep detector on a sweep of beeps (ramps, frequencies, levels, noise, harmonics, two tones) and its false
# beeps on speech, release build:
#   bench/beeps.sh [CORPUS_DIR ...]   (default: the real-recording corpus, made when missing)
# See bench/calls/src/bin/beeps.rs for what is measured.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/outdial/target}
dirs=("$@")
if [ ${#dirs[@]} -eq 0 ]; then
  [ -f target/real-corpus/labels.csv ] || scripts/make-real-corpus.py target/real-corpus
  dirs=(target/real-corpus)
fi
cargo build --release -q -p outdial-bench --bin outdial-bench-beeps
"$CARGO_TARGET_DIR/release/outdial-bench-beeps" "${dirs[@]}"
