#!/usr/bin/env bash
# The test command of the README, and what CI runs (.ci/run). On a fresh Debian machine (as root) it installs
# what the tests need, starts PostgreSQL and Redis when they are not running, then runs every test of the
# workspace with cargo-nextest. The build goes to a target directory outside the clone so runs are incremental.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/outdial/target}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v python3 >/dev/null || missing+=(python3)
command -v curl >/dev/null || missing+=(curl)
command -v pg_ctlcluster >/dev/null || missing+=(postgresql)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v sipp >/dev/null || missing+=(sip-tester)           # SIP far end of the conformance suite
command -v stunnel4 >/dev/null || missing+=(stunnel4)         # TLS in front of sipp (Debian's sipp has no TLS)
command -v openssl >/dev/null || missing+=(openssl)           # the TLS tests' throw-away CA
command -v espeak-ng >/dev/null || missing+=(espeak-ng)       # the local text-to-speech engine
if [ ${#missing[@]} -gt 0 ] || ! command -v kamailio >/dev/null; then
  as_root apt-get update -qq
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# Kamailio, the proxy ("SBC") between outdial and sipp in the end-to-end suite; its recommends are not needed.
if ! command -v kamailio >/dev/null; then
  echo "installing: kamailio"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends kamailio >/dev/null
fi

# PostgreSQL on 127.0.0.1:5432, trust authentication for local connections, database "test".
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  version=$(ls /etc/postgresql | sort -n | tail -1)
  hba=/etc/postgresql/$version/main/pg_hba.conf
  if ! grep -q '^host all all 127.0.0.1/32 trust' "$hba"; then
    as_root sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
  fi
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start
  for _ in $(seq 50); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.2; done
fi
psql -h 127.0.0.1 -U postgres -d test -c 'select 1' >/dev/null 2>&1 \
  || psql -h 127.0.0.1 -U postgres -d postgres -c 'create database test' >/dev/null

# Redis on 127.0.0.1:6379 (for the cluster-mode limiter), keeping nothing on disk.
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  as_root mkdir -p /var/lib/redis /var/log/redis
  as_root redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
fi

command -v cargo-nextest >/dev/null || cargo install --locked cargo-nextest

cargo nextest run --workspace --no-fail-fast "$@"
