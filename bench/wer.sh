#!/usr/bin/env bash
# Word error rate and recognition time of the local recognisers (Whisper tiny.en, Moonshine base) on real recorded
# telephone speech: Debian's Asterisk English prompts and their transcripts, release build:
#   bench/wer.sh [LIMIT]
# See bench/calls/src/bin/wer.rs for what is measured.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/outdial/target}
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
if [ ! -f /usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz ] \
  || [ ! -d /usr/share/asterisk/sounds/en_US_f_Allison ]; then
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    asterisk-core-sounds-en-wav asterisk-core-sounds-en >/dev/null
fi
cargo build --release -q -p outdial-bench --bin outdial-bench-wer
"$CARGO_TARGET_DIR/release/outdial-bench-wer" "$@"
