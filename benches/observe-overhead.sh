#!/usr/bin/env bash
# Benchmark: what watching requests costs (issue 11's target: at most 10 % more daemon CPU per
# request on a FastCGI hello).
#
# Side by side, in one run, behind the same nginx (1 worker, fastcgi_keep_conn + upstream
# keepalive), two `gatehouse hello` daemons from the same binary:
#   - plain: no observer installed (serve_request does nothing more than before);
#   - observed: $OBSERVE_ARGS, by default `--metrics 127.0.0.1:PORT` (add the access log with
#     OBSERVE_ARGS='--metrics 127.0.0.1:{METRICS_PORT} --access-log {WORK}/access.log'; the
#     placeholders are filled in).
# Both with $DAEMON_ARGS (default `--runtime-threads 1`: one I/O thread each, so both get the
# same share of a small machine). wrk: $THREADS threads, $CONNECTIONS keep-alive connections,
# $DURATION per run after a 2 s warm-up; plain and observed alternate for $ROUNDS rounds and each
# figure is the median of the rounds (other load on a shared machine moves single rounds).
# Printed: requests/s, p99 and the daemon's CPU per request (utime+stime from /proc) of each,
# and observed/plain of the CPU per request, the figure the target is about. At the end the
# observed daemon's /metrics is read back: its gatehouse_requests_total must be at least the
# requests wrk counted (warm-ups add more), or the script says so and exits 1 (skipped when
# OBSERVE_ARGS has no --metrics).
#
# Usage: benches/observe-overhead.sh   (as root; installs nginx and wrk with apt when missing;
#        builds target/release/gatehouse with cargo)
# Env:   DURATION=10s CONNECTIONS=32 THREADS=2 ROUNDS=3 DAEMON_ARGS='--runtime-threads 1'
#        OBSERVE_ARGS='--metrics 127.0.0.1:{METRICS_PORT}'
#        GATEHOUSE=path/to/gatehouse: that binary instead of building target/release/gatehouse
# Only loopback traffic; every process it starts is stopped at the end.
set -Eeuo pipefail

cd "$(dirname "$0")/.."
. benches/lib.sh
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-3}
DAEMON_ARGS=${DAEMON_ARGS:---runtime-threads 1}
OBSERVE_ARGS=${OBSERVE_ARGS:---metrics 127.0.0.1:{METRICS_PORT}}
CLK_TCK=$(getconf CLK_TCK)

need_packages() {
    local missing=() p
    for p in nginx wrk; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    if ((${#missing[@]})); then
        echo "installing: ${missing[*]}" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}

need_packages
if [[ -z ${GATEHOUSE:-} ]]; then
    echo "building gatehouse (release)..." >&2
    cargo build --release --quiet --bin gatehouse
    GATEHOUSE=target/release/gatehouse
fi
WORK=$(mktemp -d)
trap cleanup EXIT

PLAIN_PORT=$(free_port)
OBSERVED_PORT=$(free_port)
METRICS_PORT=$(free_port)
NGINX_PORT=$(free_port)
observe_args=${OBSERVE_ARGS//\{METRICS_PORT\}/$METRICS_PORT}
observe_args=${observe_args//\{WORK\}/$WORK}

# shellcheck disable=SC2086 # the argument lists are meant to be split
"$GATEHOUSE" hello --fastcgi "127.0.0.1:$PLAIN_PORT" --log-level warn $DAEMON_ARGS &
PLAIN_PID=$!
PIDS+=("$PLAIN_PID")
# shellcheck disable=SC2086
"$GATEHOUSE" hello --fastcgi "127.0.0.1:$OBSERVED_PORT" --log-level warn $DAEMON_ARGS $observe_args &
OBSERVED_PID=$!
PIDS+=("$OBSERVED_PID")

cat >"$WORK/nginx.conf" <<EOF
user root;
worker_processes 1;
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $WORK/client_body;
    fastcgi_temp_path $WORK/fastcgi;
    proxy_temp_path $WORK/proxy;
    scgi_temp_path $WORK/scgi;
    uwsgi_temp_path $WORK/uwsgi;
    upstream plain { server 127.0.0.1:$PLAIN_PORT; keepalive 32; }
    upstream observed { server 127.0.0.1:$OBSERVED_PORT; keepalive 32; }
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location = /plain {
            include /etc/nginx/fastcgi_params;
            fastcgi_keep_conn on;
            fastcgi_pass plain;
        }
        location = /observed {
            include /etc/nginx/fastcgi_params;
            fastcgi_keep_conn on;
            fastcgi_pass observed;
        }
    }
}
EOF
nginx -p "$WORK" -e "$WORK/error.log" -c "$WORK/nginx.conf" &
NGINX_PID=$!
PIDS+=("$NGINX_PID")

wait_port "$PLAIN_PORT"
wait_port "$OBSERVED_PORT"
if [[ $observe_args == *--metrics* ]]; then
    wait_port "$METRICS_PORT"
fi
wait_port "$NGINX_PORT"

for path in plain observed; do
    body=$(curl -s "http://127.0.0.1:$NGINX_PORT/$path" || true)
    if [[ $body != "Hello, world!" ]]; then
        echo "warning: /$path answered ${body@Q} instead of Hello, world!" >&2
    fi
done

# The median of numbers given as arguments.
median() {
    printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {
        if (NR % 2) print a[(NR + 1) / 2]; else printf "%.2f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2
    }'
}

declare -A RPS CPU P99
OBSERVED_REQS=0
# bench NAME DAEMON_PID: one run; appends to RPS[NAME], P99[NAME], CPU[NAME]
bench() {
    local name=$1 daemon=$2 url="http://127.0.0.1:$NGINX_PORT/$1"
    wrk -t"$THREADS" -c"$CONNECTIONS" -d2s "$url" >/dev/null 2>&1 || true
    local d0 d1 out rps p99 reqs cpu
    d0=$(cpu_ticks "$daemon")
    out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$url")
    d1=$(cpu_ticks "$daemon")
    echo "--- $name ($url)" >&2
    echo "$out" >&2
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    reqs=$(awk '/requests in/ {print $1}' <<<"$out")
    cpu=$(awk -v t=$((d1 - d0)) -v hz="$CLK_TCK" -v n="$reqs" 'BEGIN {printf "%.2f", t / hz * 1e6 / n}')
    RPS[$name]+="$rps "
    P99[$name]+="$p99 "
    CPU[$name]+="$cpu "
    if [[ $name == observed ]]; then
        OBSERVED_REQS=$((OBSERVED_REQS + reqs))
    fi
}

for round in $(seq 1 "$ROUNDS"); do
    echo "round $round of $ROUNDS" >&2
    bench plain "$PLAIN_PID"
    bench observed "$OBSERVED_PID"
done

echo
echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION x $ROUNDS rounds (medians), nginx 1 worker, keep_conn,"
echo "daemons: $DAEMON_ARGS; observed: $observe_args; $(nproc) cores, $(date -u +%Y-%m-%d)"
printf '| %-10s | %10s | %8s | %17s |\n' daemon "req/s" p99 "daemon CPU us/req"
printf '|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..12})" "$(printf -- '-%.0s' {1..12})" \
    "$(printf -- '-%.0s' {1..10})" "$(printf -- '-%.0s' {1..19})"
for name in plain observed; do
    # shellcheck disable=SC2086 # the lists are meant to be split
    printf '| %-10s | %10s | %8s | %17s |\n' "$name" "$(median ${RPS[$name]})" \
        "$(median ${P99[$name]})" "$(median ${CPU[$name]})"
done
# shellcheck disable=SC2086
plain_cpu=$(median ${CPU[plain]})
# shellcheck disable=SC2086
observed_cpu=$(median ${CPU[observed]})
awk -v p="$plain_cpu" -v o="$observed_cpu" 'BEGIN {
    printf "observed/plain daemon CPU per request: %.3f (%+.1f %%; target: at most +10 %%)\n", o / p, (o / p - 1) * 100
}'
echo "per round, CPU us/req: plain ${CPU[plain]}| observed ${CPU[observed]}"

if [[ $observe_args != *--metrics* ]]; then
    exit 0
fi
counted=$(curl -s "http://127.0.0.1:$METRICS_PORT/metrics" |
    awk '/^gatehouse_requests_total\{/ {s += $NF} END {printf "%d", s}')
if ((counted < OBSERVED_REQS)); then
    echo "error: /metrics counted $counted requests, wrk sent $OBSERVED_REQS" >&2
    exit 1
fi
echo "/metrics counted $counted requests (wrk's runs: $OBSERVED_REQS, plus warm-ups)"
