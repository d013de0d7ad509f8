#!/usr/bin/env bash
# Benchmark: nginx + wrk against a "hello" app served over FastCGI.
#
# Side by side, in one run, behind the same nginx (1 worker):
#   - nginx `return 200` (the ceiling: no FastCGI at all)
#   - gatehouse `hello` via fastcgi_pass, plain (one FastCGI connection per request)
#   - gatehouse `hello` via fastcgi_pass with fastcgi_keep_conn on + upstream keepalive
#   - uWSGI --fastcgi-socket serving a WSGI hello (master + 2 processes), plain and keep_conn
# wrk: 2 threads, 32 keep-alive connections, 10 s per target after a 2 s warm-up.
# Printed per target: requests/s, p99 latency, non-2xx answers, CPU per request of the daemon
# (utime+stime deltas from /proc/PID/stat, the daemon's children included) and of nginx.
#
# Usage: benches/fastcgi-nginx-wrk.sh   (as root; installs nginx, wrk, uwsgi,
#        uwsgi-plugin-python3 with apt when missing; builds gatehouse --release)
# Env:   DURATION=10s CONNECTIONS=32 THREADS=2
#        GATEHOUSE=path/to/gatehouse (skips the release build; for trying the script out)
# Only loopback traffic; every process it starts is stopped at the end.
set -Eeuo pipefail

cd "$(dirname "$0")/.."
. benches/lib.sh
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
CLK_TCK=$(getconf CLK_TCK)

need_packages() {
    local missing=() p
    for p in nginx wrk uwsgi uwsgi-plugin-python3; do
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
WORK=$(mktemp -d /tmp/gatehouse-bench.XXXXXX)
trap cleanup EXIT

GH_PORT=$(free_port)
UW_PORT=$(free_port)
NGINX_PORT=$(free_port)

"$GATEHOUSE" hello --fastcgi "127.0.0.1:$GH_PORT" --log-level warn &
GH_PID=$!
PIDS+=("$GH_PID")

cat >"$WORK/hello.py" <<'PY'
def application(environ, start_response):
    body = b"Hello, world!\n"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
PY
uwsgi --plugin python3 --master --processes 2 --fastcgi-socket "127.0.0.1:$UW_PORT" \
    --wsgi-file "$WORK/hello.py" --need-app --disable-logging --die-on-term \
    --logto "$WORK/uwsgi.log" &
UW_PID=$!
PIDS+=("$UW_PID")

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
    upstream gatehouse_keepalive { server 127.0.0.1:$GH_PORT; keepalive 32; }
    upstream uwsgi_keepalive { server 127.0.0.1:$UW_PORT; keepalive 32; }
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location = /ceiling { default_type text/plain; return 200 "Hello, world!\n"; }
        location = /gatehouse-plain { include /etc/nginx/fastcgi_params; fastcgi_pass 127.0.0.1:$GH_PORT; }
        location = /gatehouse-keepalive {
            include /etc/nginx/fastcgi_params;
            fastcgi_keep_conn on;
            fastcgi_pass gatehouse_keepalive;
        }
        location = /uwsgi-plain { include /etc/nginx/fastcgi_params; fastcgi_pass 127.0.0.1:$UW_PORT; }
        location = /uwsgi-keepalive {
            include /etc/nginx/fastcgi_params;
            fastcgi_keep_conn on;
            fastcgi_pass uwsgi_keepalive;
        }
    }
}
EOF
nginx -p "$WORK" -e "$WORK/error.log" -c "$WORK/nginx.conf" &
NGINX_PID=$!
PIDS+=("$NGINX_PID")

wait_port "$GH_PORT"
wait_port "$UW_PORT"
wait_port "$NGINX_PORT"

for path in ceiling gatehouse-plain gatehouse-keepalive uwsgi-plain uwsgi-keepalive; do
    body=$(curl -s "http://127.0.0.1:$NGINX_PORT/$path" || true)
    if [[ $body != "Hello, world!" ]]; then
        echo "warning: /$path answered ${body@Q} instead of Hello, world!" >&2
    fi
done

# bench NAME PATH DAEMON_PID
ROWS=()
bench() {
    local name=$1 path=$2 daemon=$3 url="http://127.0.0.1:$NGINX_PORT/$2"
    wrk -t"$THREADS" -c"$CONNECTIONS" -d2s "$url" >/dev/null 2>&1 || true
    local d0 n0 out d1 n1
    d0=$([[ $daemon == - ]] && echo 0 || cpu_ticks "$daemon")
    n0=$(cpu_ticks "$NGINX_PID")
    out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$url")
    d1=$([[ $daemon == - ]] && echo 0 || cpu_ticks "$daemon")
    n1=$(cpu_ticks "$NGINX_PID")
    echo "--- $name ($url)" >&2
    echo "$out" >&2
    local rps p99 reqs bad
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    reqs=$(awk '/requests in/ {print $1}' <<<"$out")
    bad=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' <<<"$out")
    local daemon_us nginx_us
    if [[ $daemon == - ]]; then
        daemon_us="-"
    else
        daemon_us=$(awk -v t=$((d1 - d0)) -v hz="$CLK_TCK" -v n="$reqs" 'BEGIN {printf "%.1f", t / hz * 1e6 / n}')
    fi
    nginx_us=$(awk -v t=$((n1 - n0)) -v hz="$CLK_TCK" -v n="$reqs" 'BEGIN {printf "%.1f", t / hz * 1e6 / n}')
    ROWS+=("$(printf '| %-34s | %10s | %8s | %17s | %16s | %7s |' \
        "$name" "$rps" "$p99" "$daemon_us" "$nginx_us" "${bad:-0}")")
}

bench "nginx return 200 (ceiling)" ceiling -
bench "gatehouse hello, plain" gatehouse-plain "$GH_PID"
bench "gatehouse hello, keep_conn" gatehouse-keepalive "$GH_PID"
bench "uWSGI hello (2 procs), plain" uwsgi-plain "$UW_PID"
bench "uWSGI hello (2 procs), keep_conn" uwsgi-keepalive "$UW_PID"

echo
echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION, nginx 1 worker, $(nproc) cores, $(date -u +%Y-%m-%d)"
printf '| %-34s | %10s | %8s | %17s | %16s | %7s |\n' \
    target "req/s" p99 "daemon CPU us/req" "nginx CPU us/req" non-2xx
printf '|%s|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..36})" "$(printf -- '-%.0s' {1..12})" \
    "$(printf -- '-%.0s' {1..10})" "$(printf -- '-%.0s' {1..19})" "$(printf -- '-%.0s' {1..18})" \
    "$(printf -- '-%.0s' {1..9})"
printf '%s\n' "${ROWS[@]}"
