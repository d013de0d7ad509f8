#!/usr/bin/env bash
# Fuzz smoke test of the uwsgi parser: builds every cargo-fuzz target and runs each for
# FUZZ_SECONDS (default 15) seconds, starting from the seeds in seeds/. Fails if a target does
# not build or finds a crash (a failed assertion of its invariant, or a panic).
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`); only the stable toolchain is installed
# here, so RUSTC_BOOTSTRAP=1 lets cargo-fuzz use its nightly-only sanitizer flags.
set -euo pipefail
cd "$(dirname "$0")"

seconds="${FUZZ_SECONDS:-15}"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "smoke.sh: cargo-fuzz is missing; install it with: cargo install cargo-fuzz --locked" >&2
    exit 1
fi

cargo fuzz build
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for target in $(cargo fuzz list); do
    mkdir -p "corpus/$target"
    echo "smoke.sh: fuzzing $target for ${seconds}s"
    # New inputs go to corpus/<target> (ignored by git); seeds/ is read only.
    if ! cargo fuzz run "$target" "corpus/$target" seeds -- \
        -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        echo "smoke.sh: $target failed (crash input under artifacts/$target)" >&2
        exit 1
    fi
    grep -E '^stat::(number_of_executed_units|new_units_added|peak_rss_mb)' "$log" || true
done
echo "smoke.sh: every target ran ${seconds}s without a crash"
