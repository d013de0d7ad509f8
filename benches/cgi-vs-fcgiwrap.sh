#!/usr/bin/env bash
# Benchmark: CGI programs behind nginx, gatehouse's CGI app against Debian's fcgiwrap.
#
# Side by side, in one run, behind the same nginx (1 worker), both over a unix socket:
#   - a tiny compiled CGI program (C, built here with cc) and a tiny shell CGI script;
#   - gatehouse: the gatehouse-cgi-exec app behind the dispatcher and the FastCGI front end,
#     at most $CHILDREN scripts at once (`--cgi-max`);
#   - fcgiwrap: $CHILDREN preforked processes (`-c`), each running one script at a time.
# Same concurrency available to both: $CHILDREN scripts at once. wrk: $THREADS threads,
# $CONNECTIONS keep-alive connections, $DURATION per target after a 2 s warm-up.
# Printed per target: requests/s, p99 latency, non-2xx answers, the server's own CPU per request
# (utime+stime of the server and its long-lived processes from /proc, the scripts excluded:
# fcgiwrap lets the kernel reap them, so their time is not charged to it), the whole machine's
# busy CPU per request (/proc/stat: nginx, wrk and the scripts included; other load on the machine
# shows up here), and the gatehouse/fcgiwrap ratio of requests/s.
#
# Usage: benches/cgi-vs-fcgiwrap.sh   (as root; installs nginx, wrk, fcgiwrap with apt when
#        missing; builds the serve_cgi example of gatehouse-cgi-exec --release)
# The pair is measured ROUNDS times, alternating, and each row keeps its best round (highest
# req/s): on a shared machine other load only ever makes a round slower.
# Env:   DURATION=10s CONNECTIONS=16 THREADS=2 CHILDREN=8 ROUNDS=3
#        GATEHOUSE=path/to/gatehouse: run `gatehouse cgi:ROOT --cgi-max N --fastcgi unix:...`
#        instead of the example (once the binary has the cgi: app).
# Only loopback traffic and unix sockets; every process it starts is stopped at the end.
set -Eeuo pipefail

cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-16}
THREADS=${THREADS:-2}
CHILDREN=${CHILDREN:-8}
ROUNDS=${ROUNDS:-3}
CLK_TCK=$(getconf CLK_TCK)

need_packages() {
    local missing=() p
    for p in nginx wrk fcgiwrap; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    if ((${#missing[@]})); then
        echo "installing: ${missing[*]}" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_for() { # path-or-port
    local i
    for i in $(seq 1 300); do
        if [[ $1 == /* ]]; then
            [[ -S $1 ]] && return 0
        elif (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "nothing listens on $1" >&2
    return 1
}

# CPU ticks (utime + stime) of a process and its live descendants (not reaped children's).
cpu_ticks() { # pid
    local total=0 pid stat rest
    for pid in $1 $(descendants "$1"); do
        stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
        rest=${stat##*) }                         # fields from 3 on (the name may hold spaces)
        read -r -a f <<<"$rest"
        total=$((total + f[11] + f[12]))          # fields 14 and 15: utime, stime
    done
    echo "$total"
}

# Busy CPU ticks of the whole machine (all but idle and iowait).
machine_ticks() {
    awk '$1 == "cpu" {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat
}

descendants() { # pid
    local child
    for child in $(cat /proc/"$1"/task/*/children 2>/dev/null); do
        echo "$child"
        descendants "$child"
    done
}

PIDS=()
cleanup() {
    local pid
    # fcgiwrap's master waits for its preforked children, which do not get its signal: stop
    # every descendant too.
    for pid in "${PIDS[@]}"; do
        kill -TERM $(descendants "$pid") "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}

need_packages
WORK=$(mktemp -d /tmp/gatehouse-cgi-bench.XXXXXX)
trap cleanup EXIT
chmod 755 "$WORK"
mkdir -m 755 "$WORK/cgi-bin"

cat >"$WORK/hello.c" <<'C'
#include <stdio.h>
int main(void) {
    fputs("Content-Type: text/plain\r\n\r\nHello, world!\n", stdout);
    return 0;
}
C
cc -O2 -o "$WORK/cgi-bin/hello" "$WORK/hello.c"
cat >"$WORK/cgi-bin/hello.sh" <<'SH'
#!/bin/sh
printf 'Content-Type: text/plain\r\n\r\nHello, world!\n'
SH
chmod 755 "$WORK/cgi-bin/hello" "$WORK/cgi-bin/hello.sh"

GH_SOCK=$WORK/gatehouse.sock
FW_SOCK=$WORK/fcgiwrap.sock
if [[ -n ${GATEHOUSE:-} ]]; then
    "$GATEHOUSE" "cgi:$WORK/cgi-bin" --cgi-max "$CHILDREN" --fastcgi "unix:$GH_SOCK" \
        --log-level warn &
    GH_WHAT="gatehouse cgi: (binary)"
else
    echo "building the serve_cgi example (release)..." >&2
    cargo build --release --quiet -p gatehouse-cgi-exec --example serve_cgi
    target/release/examples/serve_cgi "$WORK/cgi-bin" "unix:$GH_SOCK" "$CHILDREN" &
    GH_WHAT="gatehouse-cgi-exec (serve_cgi example)"
fi
GH_PID=$!
PIDS+=("$GH_PID")
fcgiwrap -c "$CHILDREN" -s "unix:$FW_SOCK" &
FW_PID=$!
PIDS+=("$FW_PID")

NGINX_PORT=$(free_port)
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
    server {
        listen 127.0.0.1:$NGINX_PORT;
        root $WORK/cgi-bin;
        location /gatehouse/ {
            rewrite ^/gatehouse(/.*)\$ \$1 break;
            include /etc/nginx/fastcgi_params;
            fastcgi_param SCRIPT_FILENAME \$document_root\$fastcgi_script_name;
            fastcgi_pass unix:$GH_SOCK;
        }
        location /fcgiwrap/ {
            rewrite ^/fcgiwrap(/.*)\$ \$1 break;
            include /etc/nginx/fastcgi_params;
            fastcgi_param SCRIPT_FILENAME \$document_root\$fastcgi_script_name;
            fastcgi_pass unix:$FW_SOCK;
        }
    }
}
EOF
nginx -p "$WORK" -e "$WORK/error.log" -c "$WORK/nginx.conf" &
NGINX_PID=$!
PIDS+=("$NGINX_PID")

wait_for "$GH_SOCK"
wait_for "$FW_SOCK"
wait_for "$NGINX_PORT"

for server in gatehouse fcgiwrap; do
    for script in hello hello.sh; do
        body=$(curl -s "http://127.0.0.1:$NGINX_PORT/$server/$script" || true)
        if [[ $body != "Hello, world!" ]]; then
            echo "warning: /$server/$script answered ${body@Q} instead of Hello, world!" >&2
        fi
    done
done

# bench NAME PATH SERVER_PID; sets RPS and ROW
bench() {
    local name=$1 url="http://127.0.0.1:$NGINX_PORT/$2" server=$3
    wrk -t"$THREADS" -c"$CONNECTIONS" -d2s "$url" >/dev/null 2>&1 || true
    local s0 s1 m0 m1 out
    s0=$(cpu_ticks "$server")
    m0=$(machine_ticks)
    out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$url")
    s1=$(cpu_ticks "$server")
    m1=$(machine_ticks)
    echo "--- $name ($url)" >&2
    echo "$out" >&2
    local p99 reqs bad cpu machine
    RPS=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    reqs=$(awk '/requests in/ {print $1}' <<<"$out")
    bad=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' <<<"$out")
    cpu=$(awk -v t=$((s1 - s0)) -v hz="$CLK_TCK" -v n="$reqs" 'BEGIN {printf "%.0f", t / hz * 1e6 / n}')
    machine=$(awk -v t=$((m1 - m0)) -v hz="$CLK_TCK" -v n="$reqs" 'BEGIN {printf "%.0f", t / hz * 1e6 / n}')
    ROW=$(printf '| %-30s | %10s | %8s | %17s | %18s | %7s |' \
        "$name" "$RPS" "$p99" "$cpu" "$machine" "${bad:-0}")
}

# Each row keeps the best of ROUNDS runs, gatehouse and fcgiwrap alternating.
declare -A BEST_RPS BEST_ROW
ROWS=()
RATIOS=()
for script in hello hello.sh; do
    kind=$([[ $script == hello ]] && echo "compiled" || echo "shell")
    for round in $(seq 1 "$ROUNDS"); do
        for server in gatehouse fcgiwrap; do
            if [[ $server == gatehouse ]]; then
                name="gatehouse, $kind"
                pid=$GH_PID
            else
                name="fcgiwrap -c $CHILDREN, $kind"
                pid=$FW_PID
            fi
            echo "=== round $round" >&2
            bench "$name" "$server/$script" "$pid"
            if [[ -z ${BEST_RPS[$name]:-} ]] || awk -v a="$RPS" -v b="${BEST_RPS[$name]}" 'BEGIN {exit !(a > b)}'; then
                BEST_RPS[$name]=$RPS
                BEST_ROW[$name]=$ROW
            fi
        done
    done
    gh="gatehouse, $kind"
    fw="fcgiwrap -c $CHILDREN, $kind"
    ROWS+=("${BEST_ROW[$gh]}" "${BEST_ROW[$fw]}")
    RATIOS+=("$kind: gatehouse/fcgiwrap = $(awk -v a="${BEST_RPS[$gh]}" -v b="${BEST_RPS[$fw]}" 'BEGIN {printf "%.2f", a / b}')x req/s")
done

echo
echo "$GH_WHAT vs fcgiwrap $(dpkg-query -W -f='${Version}' fcgiwrap 2>/dev/null)"
echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION, best of $ROUNDS alternating rounds, nginx 1 worker, $CHILDREN scripts at once, $(nproc) cores, $(date -u +%Y-%m-%d)"
printf '| %-30s | %10s | %8s | %17s | %18s | %7s |\n' \
    target "req/s" p99 "server CPU us/req" "machine CPU us/req" non-2xx
printf '|%s|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..32})" "$(printf -- '-%.0s' {1..12})" \
    "$(printf -- '-%.0s' {1..10})" "$(printf -- '-%.0s' {1..19})" "$(printf -- '-%.0s' {1..20})" \
    "$(printf -- '-%.0s' {1..9})"
printf '%s\n' "${ROWS[@]}"
printf '%s\n' "${RATIOS[@]}"
