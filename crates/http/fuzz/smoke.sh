#!/usr/bin/env bash
# Fuzz smoke test of the HTTP front end's request head -> CGI variables path: builds the
# cargo-fuzz target (request_env) and runs it for FUZZ_SECONDS (default 20) seconds from the
# seeds in seeds/. Exits non-zero when a target does not build or finds a crash: a panic, or a failed
# assertion of the target's invariant (see src/fuzzing.rs).
#
# Only the stable toolchain is installed, so RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its
# nightly-only sanitizer flags. Install cargo-fuzz with `cargo install cargo-fuzz --locked`.
set -euo pipefail
cd "$(dirname "$0")"
export RUSTC_BOOTSTRAP=1
seconds="${FUZZ_SECONDS:-20}"

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
    # corpus/ collects new inputs (git-ignored); seeds/ is only read.
    if ! cargo fuzz run "$target" "corpus/$target" seeds -- \
        -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        echo "smoke.sh: $target crashed; the input is under artifacts/$target" >&2
        exit 1
    fi
    grep -E '^stat::(number_of_executed_units|new_units_added|peak_rss_mb)' "$log" || true
done
echo "smoke.sh: all targets ran ${seconds}s without a crash"
