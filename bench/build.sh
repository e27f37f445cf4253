# Sourced by every script that runs the release gateway (from the repository's root): one set of packages for all of
# them. outdial-bench's dependencies change the features of the gateway's own crates, so a script that built
# outdial alone would make (and measure) a second gateway binary, compiled apart after each change.
cargo build --quiet --release -p outdial -p outdial-bench
