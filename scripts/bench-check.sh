#!/usr/bin/env bash
# Regression guard for the three performance benchmarks (README, "Contributing"; BENCHMARKS.md). Runs short
# versions of bench/dialout.sh, bench/calls.sh and bench/media.sh on the release build, and compares each figure
# with the one recorded in bench/reference.txt (measured by this script, same lengths) as a ratio. Fails when a
# figure is worse than the reference by more than TOLERANCE (default 1.5: this machine is shared and noisy; a
# real regression of the kind these catch is 2x or more).
#
#   scripts/bench-check.sh            # about 3 minutes; exit 1 on a regression (or a figure not measured)
#   scripts/bench-check.sh --record   # writes the figures measured as the new reference
#   TOLERANCE=1.3 scripts/bench-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
TOLERANCE=${TOLERANCE:-1.5}
reference=bench/reference.txt
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/outdial/target}
# The load generators: Debian's wrk and sipp.
command -v wrk >/dev/null && command -v sipp >/dev/null || apt-get install -y -q wrk sip-tester >/dev/null
# shellcheck source=bench/build.sh
source bench/build.sh
export OUTDIAL_BIN=$CARGO_TARGET_DIR/release/outdial
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "admission (DURATION=3s bench/dialout.sh) …" >&2
DURATION=3s bench/dialout.sh > "$out/dialout"
echo "call setup (RATE=500 SECONDS=4 bench/calls.sh) …" >&2
RATE=500 SECONDS=4 bench/calls.sh > "$out/calls"
# The media path alone: detection's second opinions (Whisper on the first greetings) would fall in the windows.
# 1,000 calls (the bar's load): with fewer, a call's memory can hide in what the gateway freed after start-up
# (BENCHMARKS.md, "Media", twentieth sitting); the memory figure is that of the second 500 calls.
echo "media (CALLS=1000 RATE=100 WINDOW=5 bench/media.sh, no second opinions) …" >&2
GATEWAY_EXTRA=$'[speech]\nsecond_opinions = 0' CALLS=1000 RATE=100 WINDOW=5 bench/media.sh > "$out/media"

python3 - "$out" "$reference" "$TOLERANCE" "${1:-}" <<'PY'
import re, sys, datetime, subprocess
out, reference, tolerance, mode = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
read = lambda name: open(f"{out}/{name}").read()

def ms(v):
    v = v.strip()
    for unit, f in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if v.endswith(unit):
            return float(v[: -len(unit)]) * f
    raise ValueError(v)

# name: (value, "higher" or "lower" is better, unit)
figures = {}
rows = [l.split("|")[1:-1] for l in read("dialout").splitlines() if l.startswith("| ") and "---" not in l]
for case in ("limited", "dead"):
    mine = [[c.strip() for c in r] for r in rows if r[0].strip() == case]
    figures[f"admission {case}: answers/s (lowest row)"] = (min(float(r[2]) for r in mine), "higher", "/s")
    figures[f"admission {case}: p99 (highest row)"] = (max(ms(r[5]) for r in mine), "lower", "ms")
calls = read("calls")
accepted = int(re.search(r"accepted (\d+)", calls).group(1))
cpu = float(re.search(r"gateway CPU: ([\d.]+) s", calls).group(1))
figures["call setup: gateway CPU per call"] = (1000 * cpu / max(accepted, 1), "lower", "ms")
figures["call setup: dialout→answered p99"] = (float(re.search(r"answered ms: .*p99 ([\d.]+)", calls).group(1)), "lower", "ms")
term = re.search(r"terminal notifications (\d+), missing terminal (\d+)", calls)
if int(term.group(2)) != 0:
    print(f"call setup lost notifications: {term.group(0)}")
    sys.exit(1)
media = read("media")
per = [float(x) for x in re.findall(r"= ([\d.]+) ms CPU per call-second", media)]
figures["media: CPU per call-second (mean of windows)"] = (sum(per) / len(per), "lower", "ms")
second = re.search(r"memory of the second half of the calls: .* = ([\d.]+) KiB per call", media)
figures["media: memory per call"] = (float(second.group(1)) if second else 0.0, "lower", "KiB")

if mode == "--record":
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    with open(reference, "w") as f:
        f.write(f"# scripts/bench-check.sh --record, {datetime.date.today()}, build {commit}, 2 cores\n")
        for name, (v, better, unit) in figures.items():
            f.write(f"{name} = {v:.3f}\n")
    print(open(reference).read())
    sys.exit(0)

recorded = {}
for line in open(reference):
    if "=" in line and not line.startswith("#"):
        k, v = line.rsplit("=", 1)
        recorded[k.strip()] = float(v)
worse = []
print(f"| figure | reference | now | ratio (>1 is worse) |")
print("|---|---|---|---|")
for name, (v, better, unit) in figures.items():
    ref = recorded.get(name)
    # A figure that could not be measured fails the check: a guard that skips it would pass with it broken.
    if v == 0:
        print(f"| {name} | {ref if ref is not None else '–'} | not measured | – **worse** |")
        worse.append(f"{name} (not measured)")
        continue
    if ref is None or ref == 0:
        print(f"| {name} | – | {v:.3f} {unit} | – |")
        continue
    ratio = ref / v if better == "higher" else v / ref
    flag = " **worse**" if ratio > tolerance else ""
    print(f"| {name} | {ref:.3f} {unit} | {v:.3f} {unit} | {ratio:.2f}{flag} |")
    if ratio > tolerance:
        worse.append(name)
if worse:
    print(f"\nworse than the reference by more than {tolerance}x: {', '.join(worse)}")
    sys.exit(1)
print(f"\nno figure worse than the reference by more than {tolerance}x")
PY
