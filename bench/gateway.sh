# Sourced by bench/calls.sh and bench/soak.sh: the release gateway dialling sipp (uas_answer_then_bye.xml: answers,
# holds each call 1 s, hangs up) through a trunk, with the silent reference bot and an admin application `bench`.
# In: SIPP_STAT=1 (sipp writes its statistics to $work/sipp_stat.csv), TRUNK_EXTRA (extra lines of the trunk).
# OUTDIAL_BIN: another gateway binary to measure (an older build, for a ratio in one sitting).
# Out: T (release folder), work (temporary folder, removed on exit), gw (gateway pid), base (API URL).
# shellcheck source=bench/build.sh
source bench/build.sh
T=${CARGO_TARGET_DIR:-target}/release
GW=${OUTDIAL_BIN:-$T/outdial}
work=$(mktemp -d)
trap 'kill $gw $sp $bt 2>/dev/null || true; rm -rf "$work"' EXIT
sipp_port=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
stat=()
[ "${SIPP_STAT:-}" = 1 ] && stat=(-trace_stat -stf "$work/sipp_stat.csv")
(cd crates/outdial-testkit/sipp && exec sipp -sf uas_answer_then_bye.xml -i 127.0.0.1 -p "$sipp_port" -d 1000 -nostdin \
  "${stat[@]}" >/dev/null 2>&1) &
sp=$!
# The reference bot (silent: the calls stay with the far end), from outdial sim.
bot_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$T/outdial" sim --listen 127.0.0.1:0 --bot "127.0.0.1:$bot_port" --bot-script silent > "$work/bot.out" 2>&1 &
bt=$!
cat > "$work/bench.toml" <<TOML
[log]
level = "warn"
[sip]
rtp_ports = "20000-60000"
[[trunks]]
name = "sipp"
address = "127.0.0.1:$sipp_port"
${TRUNK_EXTRA:-}
[[bots]]
name = "Bench"
botUrl = "http://127.0.0.1:$bot_port/bot"
[[applications]]
clientId = "bench"
clientSecret = "bench-secret-1"
policies = [{ role = "OUTDIAL/ADMIN", scope = "*" }]
TOML
"$GW" serve --config "$work/bench.toml" --store "sqlite://$work/outdial.db" --listen 127.0.0.1:0 --sip-listen 127.0.0.1:0 \
  > "$work/out" 2> "$work/log" &
gw=$!
for _ in $(seq 100); do grep -q listening "$work/out" 2>/dev/null && break; sleep 0.1; done
base=$(sed -n 's/^outdial listening on //p' "$work/out")
ulimit -n 65536 2>/dev/null || true
