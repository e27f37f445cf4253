#!/usr/bin/env bash
# The test command of the README, and what CI runs (.ci/run). On a fresh Debian machine (as root) it installs
# what the tests need, starts PostgreSQL and Redis when they are not running, then runs every test of the
# workspace with cargo-nextest. The build goes to a target directory outside the clone so runs are incremental.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/outdial/target}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

./scripts/install.sh --test

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

# The rules the code keeps (docs/architecture.md, "Rules"): formatting, lints as errors, no unused dependency.
cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo machete

cargo nextest run --workspace --no-fail-fast "$@"
