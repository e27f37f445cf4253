#!/usr/bin/env bash
# The README's run command: installs what outdial needs (scripts/install.sh: cmake, espeak-ng, the Whisper model),
# builds it in release mode and runs it. With no arguments: `outdial demo` (gateway, simulated callees and the
# reference bot, five calls on loopback). Any arguments go to the binary instead, e.g. `scripts/run.sh serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/outdial/target}
./scripts/install.sh
if [ $# -eq 0 ]; then set -- demo; fi
exec cargo run --release -q -p outdial -- "$@"
