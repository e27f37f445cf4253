#!/usr/bin/env bash
# Barge-in: from the start of the person's voice to the gateway stopping the bot's prompt, release build:
#   bench/barge.sh [CALLS]   (default 20 calls, one after the other)
# See bench/calls/src/bin/barge.rs for what is measured.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/outdial/target}
./scripts/install.sh
# shellcheck source=bench/build.sh
source bench/build.sh
"$CARGO_TARGET_DIR/release/outdial-bench-barge" "$CARGO_TARGET_DIR/release/outdial" "${1:-20}"
