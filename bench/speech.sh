#!/usr/bin/env bash
# The speech loop's latencies with the local engines (Whisper tiny or Moonshine, espeak-ng or Piper), release build:
#   bench/speech.sh [CALLS] [TTS]   (default 10 calls, one after the other; TTS `piper` for the Piper voice)
# See bench/calls/src/bin/speech.rs for what is measured.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/outdial/target}
./scripts/install.sh
# shellcheck source=bench/build.sh
source bench/build.sh
"$CARGO_TARGET_DIR/release/outdial-bench-speech" "$CARGO_TARGET_DIR/release/outdial" "${1:-10}" ${2:+"$2"}
