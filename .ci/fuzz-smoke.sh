#!/usr/bin/env bash
# The fuzz smoke test of one crate (what each crates/*/fuzz/smoke.sh runs):
#   .ci/fuzz-smoke.sh FUZZ_DIR DEFAULT_SECONDS
# builds every cargo-fuzz target of FUZZ_DIR and runs each for FUZZ_SECONDS (default
# DEFAULT_SECONDS) seconds from the seeds in seeds/. Exits non-zero when a target does not
# build or finds a crash: a panic, or a failed assertion of the target's invariant (see the
# crate's src/fuzzing.rs). New inputs go to corpus/<target> (git-ignored); seeds/ is only read.
#
# Only the stable toolchain is installed, so RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its
# nightly-only sanitizer flags. Install cargo-fuzz with `cargo install cargo-fuzz --locked`.
# (benches/fuzz.sh runs the same targets for as long as you like, with a persistent corpus.)
set -euo pipefail
cd "$1"
export RUSTC_BOOTSTRAP=1
seconds="${FUZZ_SECONDS:-$2}"

cargo fuzz --version >/dev/null 2>&1 || {
    echo "smoke.sh: cargo-fuzz is not installed (cargo install cargo-fuzz --locked)" >&2
    exit 1
}
cargo fuzz build
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
for target in $(cargo fuzz list); do
    mkdir -p "corpus/$target"
    echo "smoke.sh: $target for ${seconds}s"
    if ! cargo fuzz run "$target" "corpus/$target" seeds -- \
        -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        echo "smoke.sh: $target crashed; the input is under artifacts/$target" >&2
        exit 1
    fi
    grep -E '^stat::(number_of_executed_units|new_units_added|peak_rss_mb)' "$log" || true
done
echo "smoke.sh: all targets ran ${seconds}s without a crash"
