#!/usr/bin/env bash
# Benchmark (issue 13): the uwsgi protocol behind nginx `uwsgi_pass`, a WSGI hello app
# (fixtures/apps/hello.py), gatehouse `--uwsgi` against uWSGI's own uwsgi socket (`--socket`),
# in one run, rounds rotating the order; prints median req/s, p99 and the daemon's CPU per
# request (utime+stime from /proc, children included).
#
# One nginx (1 worker), `include uwsgi_params; uwsgi_pass 127.0.0.1:PORT` per implementation
# (the uwsgi protocol has one request per connection: nothing is kept alive upstream):
#   gatehouse        `gatehouse wsgi:... --threads $APP_THREADS --uwsgi ...` (one process)
#   gatehouse -w2    the same with `--workers 2` (a master and two worker processes)
#   uWSGI 1x$N       `uwsgi --master --processes 1 --threads $APP_THREADS --socket ...`
#   uWSGI 2x1        `uwsgi --master --processes 2 --socket ...`
# wrk: -t$WRK_THREADS -c$CONNECTIONS, ${WARMUP} warm-up then ${DURATION}, ROUNDS rounds.
#
# Usage: benches/uwsgi-nginx-wrk.sh   (as root: installs nginx, wrk, uwsgi + python3 plugin with
#        apt when missing; builds gatehouse --release)
# Env:   ROUNDS=3 DURATION=5s WARMUP=1s CONNECTIONS=16 WRK_THREADS=2 APP_THREADS=4
#        GATEHOUSE=path (skips the build)  KEEP_WORK=1
# Only loopback traffic; every process started here is stopped by its PID at the end.
set -Eeuo pipefail

cd "$(dirname "$0")/.."
. benches/lib.sh
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5s}
WARMUP=${WARMUP:-1s}
CONNECTIONS=${CONNECTIONS:-16}
WRK_THREADS=${WRK_THREADS:-2}
APP_THREADS=${APP_THREADS:-4}
CLK_TCK=$(getconf CLK_TCK)
APP=$PWD/fixtures/apps/hello.py

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

missing=()
for p in nginx wrk uwsgi uwsgi-plugin-python3; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
    log "apt: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PIDS=()
start_bg() { # logfile command... ; sets BG_PID
    "${@:2}" >"$1" 2>&1 &
    BG_PID=$!
    PIDS+=("$BG_PID")
}
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [[ -n ${KEEP_WORK:-} ]]; then log "logs kept in $WORK"; else rm -rf "$WORK"; fi
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
if [[ -z ${GATEHOUSE:-} ]]; then
    log "building gatehouse (release)"
    cargo build --release --quiet --bin gatehouse
    GATEHOUSE=target/release/gatehouse
fi
WORK=$(mktemp -d /tmp/gatehouse-uwsgi-bench.XXXXXX)
trap cleanup EXIT

NAMES=(gatehouse gatehouse_w2 uwsgi1 uwsgi2)
declare -A LABEL PORT PID
LABEL[gatehouse]="gatehouse --uwsgi, 1 process x $APP_THREADS threads"
LABEL[gatehouse_w2]="gatehouse --uwsgi --workers 2"
LABEL[uwsgi1]="uWSGI --socket, 1 proc x $APP_THREADS threads"
LABEL[uwsgi2]="uWSGI --socket, 2 procs x 1 thread"
for n in "${NAMES[@]}"; do PORT[$n]=$(free_port); done
NGINX_PORT=$(free_port)

start_bg "$WORK/gatehouse.log" "$GATEHOUSE" "wsgi:$APP" --threads "$APP_THREADS" \
    --uwsgi "127.0.0.1:${PORT[gatehouse]}" --log-level warn
PID[gatehouse]=$BG_PID
start_bg "$WORK/gatehouse_w2.log" "$GATEHOUSE" "wsgi:$APP" --threads "$APP_THREADS" --workers 2 \
    --uwsgi "127.0.0.1:${PORT[gatehouse_w2]}" --log-level warn
PID[gatehouse_w2]=$BG_PID
UWSGI=(uwsgi --plugin python3 --master --listen 1024 --wsgi-file "$APP" --need-app
    --disable-logging --die-on-term)
start_bg "$WORK/uwsgi1.log" "${UWSGI[@]}" --processes 1 --threads "$APP_THREADS" \
    --socket "127.0.0.1:${PORT[uwsgi1]}"
PID[uwsgi1]=$BG_PID
start_bg "$WORK/uwsgi2.log" "${UWSGI[@]}" --processes 2 --socket "127.0.0.1:${PORT[uwsgi2]}"
PID[uwsgi2]=$BG_PID

{
    cat <<CONF
user root;
worker_processes 1;
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK/client_body;
    fastcgi_temp_path $WORK/fastcgi;
    proxy_temp_path $WORK/proxy;
    scgi_temp_path $WORK/scgi;
    uwsgi_temp_path $WORK/uwsgi;
    server {
        listen 127.0.0.1:$NGINX_PORT backlog=4096;
CONF
    for n in "${NAMES[@]}"; do
        echo "        location = /$n { include /etc/nginx/uwsgi_params; uwsgi_pass 127.0.0.1:${PORT[$n]}; }"
    done
    echo "    }"
    echo "}"
} >"$WORK/nginx.conf"
start_bg "$WORK/nginx.log" nginx -p "$WORK" -e "$WORK/nginx-error.log" -c "$WORK/nginx.conf"

for n in "${NAMES[@]}"; do wait_port "${PORT[$n]}"; done
wait_port "$NGINX_PORT"
for n in "${NAMES[@]}"; do
    body=$(curl -s "http://127.0.0.1:$NGINX_PORT/$n" || true)
    if [[ $body != "Hello, world!" ]]; then
        log "/$n answered ${body@Q}, not Hello, world!; logs in $WORK"
        KEEP_WORK=1
        exit 1
    fi
done

measure() { # name: appends "name rps p99_us errors cpu_us_per_req" to $WORK/results
    local n=$1 url="http://127.0.0.1:$NGINX_PORT/$1" out t0 t1
    wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"$WARMUP" "$url" >/dev/null 2>&1 || true
    t0=$(cpu_ticks "${PID[$n]}")
    out=$(wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$url" 2>&1) || true
    t1=$(cpu_ticks "${PID[$n]}")
    awk -v n="$n" -v t=$((t1 - t0)) -v hz="$CLK_TCK" '
        /^Requests\/sec:/ { rps = $2 }
        /requests in/ { reqs = $1 }
        $1 == "99%" { v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v)
                      p99 = v * ((u == "us") ? 1 : (u == "ms") ? 1000 : (u == "s") ? 1e6 : 1) }
        /Non-2xx or 3xx responses:/ { errors += $NF }
        /Socket errors:/ { for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) errors += $i }
        END { printf "%s %s %.1f %d %.1f\n", n, rps + 0, p99, errors, (reqs > 0 ? t / hz * 1e6 / reqs : 0) }
    ' <<<"$out" | tee -a "$WORK/results" >&2
}

: >"$WORK/results"
for round in $(seq 1 "$ROUNDS"); do
    log "round $round of $ROUNDS"
    for i in "${!NAMES[@]}"; do
        measure "${NAMES[$(((i + round - 1) % ${#NAMES[@]}))]}"
    done
done

echo
echo "WSGI hello through nginx (1 worker, uwsgi_pass), wrk -t$WRK_THREADS -c$CONNECTIONS" \
    "-d$DURATION, median of $ROUNDS rounds (min-max), $(nproc) cores, load before: $LOAD_BEFORE, $(date -u +%Y-%m-%d)"
python3 - "$WORK/results" "${NAMES[@]}" <<PY
import statistics, sys
path, names = sys.argv[1], sys.argv[2:]
label = {"gatehouse": "${LABEL[gatehouse]}", "gatehouse_w2": "${LABEL[gatehouse_w2]}",
         "uwsgi1": "${LABEL[uwsgi1]}", "uwsgi2": "${LABEL[uwsgi2]}"}
rows = {n: [] for n in names}
for line in open(path):
    n, rps, p99, err, cpu = line.split()
    rows[n].append((float(rps), float(p99), int(err), float(cpu)))
med = {n: [statistics.median(c) for c in zip(*rows[n])] for n in names if rows[n]}
g = med["gatehouse"]
print(f"| {'implementation':<44} | {'req/s (min-max)':>24} | {'p99':>9} | {'CPU us/req':>10} | {'errors':>6} | {'gatehouse / it':>14} |")
print("|" + "|".join("-" * w for w in (46, 26, 11, 12, 8, 16)) + "|")
for n in names:
    rps, p99, err, cpu = med[n]
    lo, hi = min(r[0] for r in rows[n]), max(r[0] for r in rows[n])
    errors = sum(r[2] for r in rows[n])
    ratio = "-" if n == "gatehouse" else f"{g[0] / rps:.2f}x"
    p = f"{p99 / 1000:.2f} ms" if p99 >= 1000 else f"{p99:.0f} us"
    print(f"| {label[n]:<44} | {f'{rps:,.0f} ({lo:,.0f}-{hi:,.0f})':>24} | {p:>9} | {cpu:>10.1f} | {errors:>6} | {ratio:>14} |")
PY
