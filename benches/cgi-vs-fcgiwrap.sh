#!/usr/bin/env bash
# Benchmark: CGI programs behind nginx, `gatehouse cgi:...` against Debian's fcgiwrap.
#
# Side by side, in one run, behind the same nginx, both over a unix socket in a temp dir:
#   - a tiny compiled CGI program (C, built here with cc) and a tiny shell CGI script, both
#     answering `Hello, world!`;
#   - gatehouse: the release binary, `target/release/gatehouse cgi:DIR --cgi-max $CHILDREN
#     --fastcgi unix:...` (the FastCGI front end, the dispatcher, the cgi-exec app), at most
#     $CHILDREN scripts at once (more requests wait for a slot);
#   - fcgiwrap: `fcgiwrap -c $CHILDREN`, $CHILDREN preforked processes, each running one script
#     at a time (more requests wait in the socket's backlog).
# Same concurrency available to both: $CHILDREN scripts at once. Same nginx config for both
# (1 worker process, Debian's fastcgi_params + SCRIPT_FILENAME, one FastCGI connection per
# request: fcgiwrap's processes serve one connection each, so a keepalive pool would starve it).
# wrk: $THREADS threads, $CONNECTIONS keep-alive connections to nginx, $DURATION per run after a
# 2 s warm-up. The pair is measured $ROUNDS times, gatehouse and fcgiwrap alternating, and each
# column is the median of the rounds (other load on a shared machine moves single rounds).
# Printed per target: requests/s, p99 latency, non-2xx answers (all rounds), the server's own
# CPU per request (utime+stime of the server and its long-lived processes from /proc, the scripts
# excluded: fcgiwrap lets the kernel reap them, so their time is not charged to it), the whole
# machine's busy CPU per request (/proc/stat: nginx, wrk and the scripts included), and the
# gatehouse/fcgiwrap ratios of requests/s and p99; then the load average before and after and
# every round's req/s and p99, to judge how much other load moved the figures.
#
# Usage: benches/cgi-vs-fcgiwrap.sh   (as root; installs nginx, wrk, fcgiwrap with apt when
#        missing; builds target/release/gatehouse with cargo)
# Env:   DURATION=10s CONNECTIONS=16 THREADS=2 CHILDREN=8 ROUNDS=3
#        GATEHOUSE=path/to/gatehouse: that binary instead of building target/release/gatehouse
#        QUIET=1: only the table on stdout (wrk's own output and progress are not shown)
# Only loopback traffic and unix sockets; every process it starts is stopped at the end.
set -Eeuo pipefail

cd "$(dirname "$0")/.."
. benches/lib.sh
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-16}
THREADS=${THREADS:-2}
CHILDREN=${CHILDREN:-8}
ROUNDS=${ROUNDS:-3}
QUIET=${QUIET:-0}
CLK_TCK=$(getconf CLK_TCK)

log() { # progress and wrk output: stderr, unless QUIET=1
    if [[ $QUIET != 1 ]]; then echo "$@" >&2; fi
}

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

# Busy CPU ticks of the whole machine (all but idle and iowait).
machine_ticks() {
    awk '$1 == "cpu" {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat
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
if [[ -z ${GATEHOUSE:-} ]]; then
    log "building target/release/gatehouse..."
    cargo build --release --quiet -p gatehouse --bin gatehouse
    GATEHOUSE=target/release/gatehouse
fi
"$GATEHOUSE" "cgi:$WORK/cgi-bin" --cgi-max "$CHILDREN" --fastcgi "unix:$GH_SOCK" \
    --log-level warn &
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
            echo "error: /$server/$script answered ${body@Q} instead of Hello, world!" >&2
            exit 1
        fi
    done
done

# Milliseconds from wrk's latency notation (850.00us, 12.34ms, 1.20s, 2.00m).
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        f = (u == "us") ? 0.001 : (u == "ms") ? 1 : (u == "s") ? 1000 : (u == "m") ? 60000 : 0
        if (f == 0) { print "nan"; exit }
        printf "%.2f", n * f
    }'
}

# The median of numbers given as arguments.
median() {
    printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {
        if (NR % 2) print a[(NR + 1) / 2]; else printf "%.2f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2
    }'
}

# bench URL_PATH SERVER_PID; sets RPS, P99_MS, BAD, CPU_US, MACHINE_US for one run
bench() {
    local url="http://127.0.0.1:$NGINX_PORT/$1" server=$2
    wrk -t"$THREADS" -c"$CONNECTIONS" -d2s "$url" >/dev/null 2>&1 || true
    local s0 s1 m0 m1 out reqs
    s0=$(cpu_ticks "$server")
    m0=$(machine_ticks)
    out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$url")
    s1=$(cpu_ticks "$server")
    m1=$(machine_ticks)
    log "--- $url"
    log "$out"
    RPS=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    P99_MS=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
    reqs=$(awk '/requests in/ {print $1}' <<<"$out")
    BAD=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' <<<"$out")
    BAD=${BAD:-0}
    CPU_US=$(awk -v t=$((s1 - s0)) -v hz="$CLK_TCK" -v n="$reqs" 'BEGIN {printf "%.0f", t / hz * 1e6 / n}')
    MACHINE_US=$(awk -v t=$((m1 - m0)) -v hz="$CLK_TCK" -v n="$reqs" 'BEGIN {printf "%.0f", t / hz * 1e6 / n}')
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
ROW_FORMAT='| %-32s | %9s | %8s | %7s | %17s | %18s |\n'
declare -A MED_RPS MED_P99
ROWS=()
RATIOS=()
ROUND_LINES=()
for script in hello hello.sh; do
    kind=$([[ $script == hello ]] && echo "compiled" || echo "shell")
    declare -A RPS_ALL=() P99_ALL=() CPU_ALL=() MACH_ALL=() BAD_SUM=()
    for round in $(seq 1 "$ROUNDS"); do
        for server in gatehouse fcgiwrap; do
            pid=$([[ $server == gatehouse ]] && echo "$GH_PID" || echo "$FW_PID")
            log "=== $kind, round $round/$ROUNDS: $server"
            bench "$server/$script" "$pid"
            RPS_ALL[$server]+="$RPS "
            P99_ALL[$server]+="$P99_MS "
            CPU_ALL[$server]+="$CPU_US "
            MACH_ALL[$server]+="$MACHINE_US "
            BAD_SUM[$server]=$(( ${BAD_SUM[$server]:-0} + BAD ))
        done
    done
    for server in gatehouse fcgiwrap; do
        # shellcheck disable=SC2086 # word splitting of the per-round lists is intended
        {
            rps=$(median ${RPS_ALL[$server]})
            p99=$(median ${P99_ALL[$server]})
            cpu=$(median ${CPU_ALL[$server]})
            mach=$(median ${MACH_ALL[$server]})
        }
        MED_RPS[$server,$kind]=$rps
        MED_P99[$server,$kind]=$p99
        name=$([[ $server == gatehouse ]] && echo "gatehouse --cgi-max $CHILDREN" || echo "fcgiwrap -c $CHILDREN")
        ROWS+=("$(printf "$ROW_FORMAT" "$name, $kind" "$rps" "${p99}ms" "${BAD_SUM[$server]}" "$cpu" "$mach")")
        ROUND_LINES+=("$name, $kind, per round: req/s ${RPS_ALL[$server]}| p99 ms ${P99_ALL[$server]}")
    done
    RATIOS+=("$(awk -v k="$kind" -v a="${MED_RPS[gatehouse,$kind]}" -v b="${MED_RPS[fcgiwrap,$kind]}" \
        -v c="${MED_P99[gatehouse,$kind]}" -v d="${MED_P99[fcgiwrap,$kind]}" \
        'BEGIN {printf "%s: gatehouse/fcgiwrap = %.2fx req/s, %.2fx p99", k, a / b, c / d}')")
    unset RPS_ALL P99_ALL CPU_ALL MACH_ALL BAD_SUM
done

echo
echo "$("$GATEHOUSE" --version 2>/dev/null || echo gatehouse) (cgi:, release) vs fcgiwrap $(dpkg-query -W -f='${Version}' fcgiwrap 2>/dev/null)"
echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION, median of $ROUNDS alternating rounds, nginx 1 worker, $CHILDREN scripts at once, $(nproc) cores, $(date -u +%Y-%m-%d)"
printf "$ROW_FORMAT" target "req/s" p99 non-2xx "server CPU us/req" "machine CPU us/req"
printf '|%s|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..34})" "$(printf -- '-%.0s' {1..11})" \
    "$(printf -- '-%.0s' {1..10})" "$(printf -- '-%.0s' {1..9})" "$(printf -- '-%.0s' {1..19})" \
    "$(printf -- '-%.0s' {1..20})"
printf '%s\n' "${ROWS[@]}"
printf '%s\n' "${RATIOS[@]}"
echo "load average before and after: $LOAD_BEFORE / $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%s\n' "${ROUND_LINES[@]}"
