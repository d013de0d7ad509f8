#!/usr/bin/env bash
# Long fuzzing runs: every cargo-fuzz target of every crates/*/fuzz, each for a given time, with
# a corpus that persists between runs outside git; prints a table of executions, coverage and
# crashes. CI runs only the short smoke (crates/*/fuzz/smoke.sh); this is for finding things.
#
#   benches/fuzz.sh [SECONDS_PER_TARGET] [TARGET_FILTER]
#     SECONDS_PER_TARGET  default 1800 (30 minutes)
#     TARGET_FILTER       a regex on CRATE/TARGET (e.g. 'http|cgi_head'); default all
#   FUZZ_CORPUS=DIR       corpus root (default ${XDG_CACHE_HOME:-$HOME/.cache}/gatehouse-fuzz);
#                         each target keeps DIR/CRATE/TARGET; seeds/ of the crate are read too
#   FUZZ_JOBS=N           targets run at once (default 1; each takes a core)
#
# A crash leaves its input under crates/CRATE/fuzz/artifacts/TARGET/ and the table says so; the
# script goes on with the other targets and exits 1 at the end. Only the stable toolchain exists:
# RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its nightly-only sanitizer flags.
set -uo pipefail
cd "$(dirname "$0")/.."
export RUSTC_BOOTSTRAP=1
seconds="${1:-1800}"
filter="${2:-.}"
corpus_root="${FUZZ_CORPUS:-${XDG_CACHE_HOME:-$HOME/.cache}/gatehouse-fuzz}"
jobs="${FUZZ_JOBS:-1}"
logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT

cargo fuzz --version >/dev/null 2>&1 || {
    echo "fuzz.sh: cargo-fuzz is not installed (cargo install cargo-fuzz --locked)" >&2
    exit 1
}

targets=()
for dir in crates/*/fuzz; do
    krate="$(basename "$(dirname "$dir")")"
    (cd "$dir" && cargo fuzz build --release >/dev/null 2>&1) || {
        echo "fuzz.sh: $dir does not build" >&2
        exit 1
    }
    for t in $(cd "$dir" && cargo fuzz list); do
        [[ "$krate/$t" =~ $filter ]] && targets+=("$krate/$t")
    done
done
echo "fuzz.sh: ${#targets[@]} targets, ${seconds}s each, $jobs at a time, corpus in $corpus_root"

run_one() {
    local krate="${1%/*}" t="${1#*/}"
    local dir="crates/$krate/fuzz" corpus="$corpus_root/$krate/$t"
    mkdir -p "$corpus"
    local log="$logs/$krate-$t.log"
    (cd "$dir" && cargo fuzz run "$t" "$corpus" seeds -- \
        -max_total_time="$seconds" -max_len=8192 -print_final_stats=1 -timeout=10 \
        >"$log" 2>&1)
    echo $? >"$logs/$krate-$t.rc"
}

running=0
for kt in "${targets[@]}"; do
    run_one "$kt" &
    running=$((running + 1))
    if ((running >= jobs)); then
        wait -n
        running=$((running - 1))
    fi
done
wait

failed=0
printf '\n%-34s %8s %14s %10s %8s %8s %8s  %s\n' target seconds executions exec/s cov ft corpus result
for kt in "${targets[@]}"; do
    krate="${kt%/*}" t="${kt#*/}"
    log="$logs/$krate-$t.log"
    rc="$(cat "$logs/$krate-$t.rc" 2>/dev/null || echo 1)"
    execs="$(grep -oE '^stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo 0)"
    secs="$(grep -oE '^stat::total_time_seconds?: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo "$seconds")"
    last="$(grep -E '^#[0-9]+' "$log" | tail -n 1)"
    cov="$(grep -oE 'cov: [0-9]+' <<<"$last" | grep -oE '[0-9]+' || echo -)"
    ft="$(grep -oE 'ft: [0-9]+' <<<"$last" | grep -oE '[0-9]+' || echo -)"
    corp="$(find "$corpus_root/$krate/$t" -type f | wc -l)"
    rate=$((execs / (secs > 0 ? secs : 1)))
    if [[ "$rc" == 0 ]]; then
        result="no crash"
    else
        result="CRASH: $(ls -t "crates/$krate/fuzz/artifacts/$t" 2>/dev/null | head -n 1)"
        failed=1
        tail -n 30 "$log" >&2
    fi
    printf '%-34s %8s %14s %10s %8s %8s %8s  %s\n' "$kt" "$secs" "$execs" "$rate" "$cov" "$ft" "$corp" "$result"
done
exit "$failed"
