#!/usr/bin/env bash
# Benchmark: what the access log and the metrics cost on the FastCGI hello (issue 11's target:
# at most 10 % more daemon CPU per request).
#
# One release binary, four configurations, run in turns (ROUNDS rounds, each configuration once
# per round, so a machine that gets busier mid-run hurts them alike):
#   base        hello --fastcgi 127.0.0.1:P
#   access-log  + --access-log FILE (combined format, on the local disk)
#   metrics     + --metrics 127.0.0.1:M (scraped once a second during the run, as Prometheus would)
#   both        + both
# Load: gatehouse-bench straight to the FastCGI socket (no nginx, so the daemon's own cost is
# what is measured), -c CONNECTIONS keep-alive connections, DURATION after a 1 s warm-up.
# Printed per configuration: median req/s, median daemon CPU per request (utime+stime deltas of
# the daemon and its workers from /proc), and that CPU against base.
#
# Usage: benches/observe-overhead.sh   (builds gatehouse and gatehouse-bench --release)
# Env:   DURATION=10s CONNECTIONS=16 ROUNDS=3 WORKERS=1 (WORKERS=2: --workers 2, the master's
#        shared counters)  GATEHOUSE=path (skips the build)
# Only loopback traffic; every process it starts is stopped at the end.
set -Eeuo pipefail

cd "$(dirname "$0")/.."
. benches/lib.sh
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-16}
ROUNDS=${ROUNDS:-3}
WORKERS=${WORKERS:-1}
CLK_TCK=$(getconf CLK_TCK)

if [[ -z ${GATEHOUSE:-} ]]; then
    echo "building gatehouse and gatehouse-bench (release)..." >&2
    cargo build --release --quiet --bin gatehouse && cargo build --release --quiet -p gatehouse-bench
    GATEHOUSE=target/release/gatehouse
fi
BENCH=${BENCH:-target/release/gatehouse-bench}
WORK=$(mktemp -d /tmp/gatehouse-observe.XXXXXX)
DAEMON=
SCRAPER=
cleanup() {
    [[ -n $SCRAPER ]] && kill "$SCRAPER" 2>/dev/null || true
    [[ -n $DAEMON ]] && kill -TERM "$DAEMON" 2>/dev/null && wait "$DAEMON" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

CONFIGS=(base access-log metrics both)
declare -A RPS CPU

run_one() { # config
    local config=$1 port mport args=()
    port=$(free_port)
    mport=$(free_port)
    args=(hello --fastcgi "127.0.0.1:$port" --log-level warn)
    ((WORKERS > 1)) && args+=(--workers "$WORKERS")
    case $config in
        access-log) args+=(--access-log "$WORK/access.log") ;;
        metrics) args+=(--metrics "127.0.0.1:$mport") ;;
        both) args+=(--access-log "$WORK/access.log" --metrics "127.0.0.1:$mport") ;;
    esac
    rm -f "$WORK/access.log"
    "$GATEHOUSE" "${args[@]}" 2>"$WORK/daemon.log" &
    DAEMON=$!
    wait_port "$port"
    if [[ $config == metrics || $config == both ]]; then
        wait_port "$mport"
        (while sleep 1; do
            curl -s -o /dev/null "http://127.0.0.1:$mport/metrics" || true
        done) &
        SCRAPER=$!
    fi
    "$BENCH" --fastcgi "127.0.0.1:$port" -c "$CONNECTIONS" -d 1s -q --json >/dev/null
    local t0 t1 out
    t0=$(cpu_ticks "$DAEMON")
    out=$("$BENCH" --fastcgi "127.0.0.1:$port" -c "$CONNECTIONS" -d "$DURATION" -q --json)
    t1=$(cpu_ticks "$DAEMON")
    [[ -n $SCRAPER ]] && { kill "$SCRAPER" 2>/dev/null || true; wait "$SCRAPER" 2>/dev/null || true; SCRAPER=; }
    kill -TERM "$DAEMON"
    wait "$DAEMON" 2>/dev/null || true
    DAEMON=
    python3 - "$out" "$((t1 - t0))" "$CLK_TCK" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
ticks, hz = int(sys.argv[2]), int(sys.argv[3])
n = r["requests"]
if r.get("errors"):
    sys.exit(f"errors in the run: {r['errors']}")
print(f'{r["requests_per_sec"]:.0f} {ticks / hz / n * 1e6:.2f}')
PY
}

for round in $(seq 1 "$ROUNDS"); do
    for config in "${CONFIGS[@]}"; do
        read -r rps cpu < <(run_one "$config")
        echo "round $round $config: $rps req/s, $cpu µs CPU/request" >&2
        RPS[$config]+="$rps "
        CPU[$config]+="$cpu "
    done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo
echo "FastCGI hello, gatehouse-bench -c $CONNECTIONS, $DURATION x $ROUNDS rounds, workers $WORKERS"
printf '%-12s %10s %14s %10s\n' config "req/s" "CPU µs/req" "vs base"
base_cpu=$(median <<<"${CPU[base]}")
for config in "${CONFIGS[@]}"; do
    rps=$(median <<<"${RPS[$config]}")
    cpu=$(median <<<"${CPU[$config]}")
    rel=$(python3 -c "print(f'{($cpu / $base_cpu - 1) * 100:+.1f} %')")
    printf '%-12s %10s %14s %10s\n' "$config" "$rps" "$cpu" "$rel"
done
