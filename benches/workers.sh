#!/usr/bin/env bash
# Benchmark (the workers issue, "Performance"): gatehouse's master/worker process model against
# the pre-forking Python servers, in four parts, every process started here on loopback TCP in a
# temp dir and stopped by its PID at the end.
#
# 1. heavy   A CPU-bound Flask route (fixtures/apps/heavy.py `/`: 300 rows through a Jinja
#            template, ~6.5 ms of CPU per request on this machine) behind one nginx (1
#            worker), wrk -t$WRK_THREADS -c$CONNECTIONS, rounds alternating (order rotated):
#              gatehouse --workers 2   fastcgi_keep_conn on + upstream keepalive (keep_conn),
#                                      and the same daemon with plain fastcgi_pass (plain)
#              uWSGI 2x1               --master --processes 2 --threads 1, plain fastcgi_pass
#                                      (uWSGI closes FastCGI connections after each response)
#              gunicorn -w 2 (sync)    proxy_pass over HTTP: gunicorn speaks no FastCGI; its
#                                      sync workers close after each response
#              gatehouse --workers 1   today's single process (one CPython, one GIL), keep_conn
#            Target: gatehouse --workers 2 >= uWSGI 2 processes. Per round also: each worker's
#            share of the daemon's CPU, and the established connections each worker held
#            half-way through the run (`ss -tnp`), which show how the connections were spread.
# 2. scaling --workers 2 against --workers 1 "without nginx/wrk competing for the cores": the
#            daemon is driven directly over FastCGI (kept-alive connections) by gatehouse-bench
#            at -c 2 and -c 4 (no nginx in the path, nginx idle). gatehouse-bench costs ~0.1-0.2
#            ms of CPU per request (it also compares each 91 KB body with the expected one),
#            against ~6.5 ms of Python, so the load generator takes 1-4% of one core: the table
#            shows its CPU share, and also the CPU the rest of the machine (other users'
#            compiles and benchmarks) took during each run, from /proc/stat, so a ratio
#            under 2 can be told apart from stolen cores. uWSGI 2x1 vs 1x1 driven the same way
#            (one connection per request, as uWSGI closes anyway) is the control: what two
#            processes can get out of this machine at that moment. gatehouse --workers 2 is also
#            driven one connection per request (the kernel then picks a worker per request).
#            Ratio = median of the paired per-round ratios (2 workers / 1 worker, same round).
#            Target: >= 1.8x.
# 3. reload  Zero-downtime reload under load: wrk for $RELOAD_SECONDS s while the master gets
#            SIGHUP every $RELOAD_EVERY s, with a copy of fixtures/apps/hello.py in the temp dir
#            rewritten before each SIGHUP so the answer changes ("Hello, generation G!").
#            Three paths: nginx fastcgi_pass plain, nginx fastcgi_keep_conn on + upstream
#            keepalive pool, and wrk straight at gatehouse's --http listener (keep-alive).
#            Reported: requests, non-2xx, wrk's socket errors, bodies that were not a hello of
#            some generation (a wrk Lua check), upstream errors in nginx's error log, the workers
#            alive at the end, and per SIGHUP the seconds until the new answer was served
#            (polled every 20 ms through the same path). The peers get the same treatment for
#            comparison: uWSGI 2x1 behind nginx (its SIGHUP: graceful reload of the workers, the
#            master re-executes itself) and gunicorn -w 2 behind proxy_pass (new workers, then
#            the old ones stop). At the end the gatehouse master gets SIGTERM: exit status, time.
# 4. memory  VmRSS (and Pss, which splits shared pages between processes) of the master and of
#            each worker from /proc/PID/status and smaps_rollup, after 2000 warm-up requests:
#            hello.py and heavy.py; gatehouse --workers 2 (and 1), uWSGI master + 2 workers,
#            gunicorn master + 2 workers. Fresh daemons, started one at a time.
#
# The interpreter: gatehouse embeds the libpython of the `python3` it was built with (pyenv
# 3.11.7 here); gunicorn runs on that python3; uWSGI's Debian plugin links /usr's libpython, so
# by default (UWSGI_PYTHON=same) it is run with LD_LIBRARY_PATH=that python's LIBDIR and --home
# its prefix, so all three run the same CPython build (Debian's own build is ~25% faster at this
# route). UWSGI_PYTHON=system keeps Debian's and adds the first python3's site-packages for Flask.
#
# CPU per request (us): daemon = the process started and its live descendants (workers
# included), utime+stime from /proc; nginx = nginx master and worker; client = the load
# generator (bash `time`); "others" = CPU the rest of the machine used during the run
# (/proc/stat busy minus the three), in cores. The machine has 2 cores shared with other work:
# compare figures from the same run only; the load average is printed.
#
# Usage: benches/workers.sh        (as root: installs nginx, wrk, uwsgi, uwsgi-plugin-python3
#                                    with apt and gunicorn, flask with pip when missing; builds
#                                    gatehouse and gatehouse-bench --release)
# Env:   ROUNDS=6 DURATION=6s WARMUP=1s CONNECTIONS=8 WRK_THREADS=1 DIRECT_CONNS="2 4"
#        RELOAD_SECONDS=20 RELOAD_EVERY=3 RELOAD_CONNECTIONS=16 PARTS="heavy scaling reload memory"
#        UWSGI_PYTHON=same|system GATEHOUSE=path BENCH=path (skip the build) KEEP_WORK=1
# Before the master/worker model is in the binary (no --runtime-threads in --help), the rows
# that need it are skipped with a note, and `--workers 1` is today's single process.
# A whole run takes ~15 minutes (6 rounds).
set -Eeuo pipefail

cd "$(dirname "$0")/.."
. benches/lib.sh
ROUNDS=${ROUNDS:-6}
DURATION=${DURATION:-6s}
WARMUP=${WARMUP:-1s}
CONNECTIONS=${CONNECTIONS:-8}
WRK_THREADS=${WRK_THREADS:-1}
DIRECT_CONNS=${DIRECT_CONNS:-"2 4"}
RELOAD_SECONDS=${RELOAD_SECONDS:-20}
RELOAD_EVERY=${RELOAD_EVERY:-3}
RELOAD_CONNECTIONS=${RELOAD_CONNECTIONS:-16}
PARTS=${PARTS:-"heavy scaling reload memory"}
UWSGI_PYTHON=${UWSGI_PYTHON:-same}
CLK_TCK=$(getconf CLK_TCK)
HEAVY=$PWD/fixtures/apps/heavy.py
HELLO_APP=$PWD/fixtures/apps/hello.py
export PYTHONDONTWRITEBYTECODE=1 # the reload test rewrites a .py every few seconds
TIMEFORMAT='%U %S'               # bash `time`: the load generator's user and system seconds
LOADS=""                         # the load average as each part starts
note_load() { LOADS+="${LOADS:+; }$1: $(cut -d' ' -f1-3 /proc/loadavg)"; }

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
part() { [[ " $PARTS " == *" $1 "* ]]; }

install_peers() {
    local missing=() p
    for p in nginx wrk uwsgi uwsgi-plugin-python3; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    if ((${#missing[@]})); then
        log "apt: installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
    python3 -c 'import flask, gunicorn' 2>/dev/null || python3 -m pip install -q flask gunicorn >/dev/null
}

PIDS=()
start_bg() { # logfile command... ; sets BG_PID
    "${@:2}" >"$1" 2>&1 &
    BG_PID=$!
    PIDS+=("$BG_PID")
}

# Stops one process started here (SIGTERM, then SIGKILL after 15 s) and reaps it.
stop_pid() { # pid
    local i
    kill -TERM "$1" 2>/dev/null || return 0
    for i in $(seq 1 150); do
        kill -0 "$1" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [[ -n ${KEEP_WORK:-} ]]; then log "logs kept in $WORK"; else rm -rf "$WORK"; fi
}

install_peers
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
if [[ -z ${GATEHOUSE:-} || -z ${BENCH:-} ]]; then
    log "building gatehouse and gatehouse-bench (release)"
    cargo build --release --quiet -p gatehouse -p gatehouse-bench
fi
GATEHOUSE=${GATEHOUSE:-$PWD/target/release/gatehouse}
BENCH=${BENCH:-$PWD/target/release/gatehouse-bench}
COMMIT="$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src crates 2>/dev/null || echo '+dirty')"
WORK=$(mktemp -d /tmp/gatehouse-workers-bench.XXXXXX)
trap cleanup EXIT

# The master/worker model: `--workers N` is processes once `--runtime-threads` exists (before,
# `--workers` was the tokio I/O threads, and `--workers 2` would quietly be one process).
if "$GATEHOUSE" --help 2>&1 | grep -q -- '--runtime-threads'; then MW=1; else MW=0; fi
GH1=(--workers 1) # before the model, `--workers 1` meant one I/O thread: then no option at all
if ((!MW)); then
    GH1=()
    log "this gatehouse has no master/worker model (no --runtime-threads): --workers 2 rows and the reload part are skipped"
fi

PY=$(python3 -c 'import sys; print(sys.executable)')
PY_PREFIX=$(python3 -c 'import sys; print(sys.prefix)')
PY_LIBDIR=$(python3 -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR"))')
PY_SITE=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
PY_VERSION=$(python3 -c 'import platform; print(platform.python_version())')
UWSGI=(uwsgi --plugin python3 --master --listen 1024 --need-app --disable-logging --die-on-term)
UWSGI_ENV=()
if [[ $UWSGI_PYTHON == same ]]; then
    UWSGI+=(--home "$PY_PREFIX")
    UWSGI_ENV=(env "LD_LIBRARY_PATH=$PY_LIBDIR")
else
    UWSGI+=(--pythonpath "$PY_SITE")
fi
GUNICORN=("$PY" -m gunicorn --worker-class sync --backlog 1024 --access-logfile /dev/null --error-logfile -)

# Per-run scratch: results as TSV lines "part config impl round rps p99_us errors daemon_us
# nginx_us client_us others_cores split extra".
RESULTS=$WORK/results.tsv
: >"$RESULTS"

# /proc/stat: busy jiffies over all CPUs (everything but idle and iowait).
machine_busy() { awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; }

# The direct children of a process (workers of a pre-forking master).
children() { cat /proc/"$1"/task/*/children 2>/dev/null | tr ' ' '\n' | grep . || true; }

# "pid:ticks pid:ticks ..." for the master alone and each child subtree.
split_ticks() { # master
    local c stat rest f
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || { echo; return; }
    rest=${stat##*) }
    read -r -a f <<<"$rest"
    printf 'm:%s' $((f[11] + f[12]))
    for c in $(children "$1"); do printf ' %s:%s' "$c" "$(cpu_ticks "$c")"; done
    echo
}

# The share of each worker in the CPU the daemon used between two split_ticks samples, as
# "51/49" (descending; the master's own share after "m", when it is over 1%).
split_share() { # before after
    python3 - "$1" "$2" <<'PY'
import sys
a = dict(x.split(":") for x in sys.argv[1].split())
b = dict(x.split(":") for x in sys.argv[2].split())
d = {k: int(b[k]) - int(a.get(k, 0)) for k in b}
total = sum(d.values())
if total <= 0 or len(d) < 3:
    print("-")
    sys.exit()
workers = sorted((v for k, v in d.items() if k != "m"), reverse=True)
out = "/".join(f"{100 * v / total:.0f}" for v in workers) if len(workers) > 1 else "-"
m = 100 * d.get("m", 0) / total
if m >= 1:
    out += f" m{m:.0f}"
print(out)
PY
}

# Established connections on each worker of a master listening on PORT, sampled once, as
# "8/0" (descending): shows how the kernel spread the connections over the workers.
conn_sample() { # master_pid port
    local out c counts=()
    out=$(ss -Htnp state established "( sport = :$2 )" 2>/dev/null || true)
    for c in $(children "$1"); do counts+=("$(grep -c "pid=$c," <<<"$out" || true)"); done
    ((${#counts[@]} > 1)) || { echo "-"; return; }
    printf '%s\n' "${counts[@]}" | sort -rn | paste -sd/
}
# Samples conn_sample at the middle of a DURATION run into FILE, in the background.
sample_later() { # master_pid port file
    ( sleep "$(awk -v d="${DURATION%s}" 'BEGIN { print d / 2 }')"; conn_sample "$1" "$2" >"$3" ) &
    SAMPLER=$!
}
# Notes a daemon that died or lost workers before a measurement (someone else's pkill, a crash).
check_alive() { # pid what
    if ! kill -0 "$1" 2>/dev/null; then
        log "WARNING: $2 (pid $1) is gone"
        echo "$2 (pid $1) was gone at $(date +%H:%M:%S)" >>"$WORK/notes"
    fi
}

# One wrk measurement through nginx (or straight at an HTTP listener); appends a result line.
# $LUA checks each body (status 2xx and the marker in it) and prints "bodies: ok N bad M".
wrk_measure() { # part config impl round daemon_pid url daemon_port
    local part=$1 config=$2 impl=$3 round=$4 dpid=$5 url=$6 dport=$7 out t0 t1 n0 n1 b0 b1 s0 s1 cli
    check_alive "$dpid" "$impl"
    wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"$WARMUP" --timeout 10s "$url" >/dev/null 2>&1 || true
    s0=$(split_ticks "$dpid")
    t0=$(cpu_ticks "$dpid") n0=$(cpu_ticks "$NGINX_PID") b0=$(machine_busy)
    sample_later "$dpid" "$dport" "$WORK/conns"
    { time wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"$DURATION" --timeout 10s --latency -s "$LUA" "$url" \
        >"$WORK/wrk.out" 2>&1; } 2>"$WORK/wrk.time" || true
    t1=$(cpu_ticks "$dpid") n1=$(cpu_ticks "$NGINX_PID") b1=$(machine_busy)
    s1=$(split_ticks "$dpid")
    wait "$SAMPLER" 2>/dev/null || true
    out=$(cat "$WORK/wrk.out")
    cli=$(awk '{ printf "%d", ($1 + $2) * '"$CLK_TCK"' }' "$WORK/wrk.time")
    echo "--- $part | $config | $impl | round $round"$'\n'"$out" >>"$WORK/wrk.log"
    awk -v part="$part" -v config="$config" -v impl="$impl" -v round="$round" -v hz="$CLK_TCK" \
        -v dt=$((t1 - t0)) -v nt=$((n1 - n0)) -v ct="$cli" -v busy=$((b1 - b0)) \
        -v sp="$(split_share "$s0" "$s1")" -v secs="${DURATION%s}" -v conns="$(cat "$WORK/conns" 2>/dev/null)" '
        /^Requests\/sec:/ { rps = $2 }
        /requests in/ { reqs = $1 }
        $1 == "99%" { v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v)
                      p99 = v * ((u == "us") ? 1 : (u == "ms") ? 1000 : (u == "s") ? 1e6 : 1) }
        /Non-2xx or 3xx responses:/ { errors += $NF }
        /Socket errors:/ { for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) errors += $i }
        /^bodies:/ { errors += $5 }
        END {
            per = (reqs > 0) ? 1e6 / hz / reqs : 0
            others = (busy - dt - nt - ct) / hz / secs
            printf "%s\t%s\t%s\t%s\t%.1f\t%.0f\t%d\t%.1f\t%.1f\t%.1f\t%.2f\t%s\tdaemon_cores=%.3f;conns=%s\n", part, config,
                impl, round, rps + 0, p99, errors, dt * per, nt * per, ct * per, others, sp, dt / hz / secs, conns
        }' <<<"$out" | tee -a "$RESULTS" | cut -f2-8 | tr '\t' ' ' | sed 's/^/  /' >&2
}

# One gatehouse-bench measurement straight at a FastCGI listener.
bench_measure() { # part config impl round daemon_pid daemon_port bench-args...
    local part=$1 config=$2 impl=$3 round=$4 dpid=$5 dport=$6 t0 t1 b0 b1 s0 s1 cli json secs
    shift 6
    check_alive "$dpid" "$impl"
    secs=${DURATION%s}
    "$BENCH" "$@" -d "$WARMUP" -q >/dev/null 2>&1 || true
    s0=$(split_ticks "$dpid")
    t0=$(cpu_ticks "$dpid") b0=$(machine_busy)
    sample_later "$dpid" "$dport" "$WORK/conns"
    { time "$BENCH" "$@" -d "$DURATION" --json -q >"$WORK/bench.json" 2>>"$WORK/bench-stderr.log"; } \
        2>"$WORK/bench.time" || true
    t1=$(cpu_ticks "$dpid") b1=$(machine_busy)
    s1=$(split_ticks "$dpid")
    wait "$SAMPLER" 2>/dev/null || true
    cli=$(awk '{ printf "%d", ($1 + $2) * '"$CLK_TCK"' }' "$WORK/bench.time")
    json=$(cat "$WORK/bench.json")
    [[ -n $json ]] || json='{}'
    read -r n rps p99 errors < <(jq -r '[.requests // 0, .requests_per_sec // 0, .latency_us.p99 // 0,
        .errors // 1] | @tsv' <<<"$json")
    awk -v part="$part" -v config="$config" -v impl="$impl" -v round="$round" -v hz="$CLK_TCK" \
        -v n="$n" -v rps="$rps" -v p99="$p99" -v errors="$errors" -v dt=$((t1 - t0)) -v ct="$cli" \
        -v busy=$((b1 - b0)) -v secs="$secs" -v sp="$(split_share "$s0" "$s1")" \
        -v conns="$(cat "$WORK/conns" 2>/dev/null)" 'BEGIN {
            per = (n > 0) ? 1e6 / hz / n : 0
            others = (busy - dt - ct) / hz / secs
            share = ct / hz / secs
            printf "%s\t%s\t%s\t%s\t%.1f\t%.0f\t%d\t%.1f\t-\t%.1f\t%.2f\t%s\tclient_cores=%.4f;daemon_cores=%.3f;conns=%s\n",
                part, config, impl, round, rps, p99, errors, dt * per, ct * per, others, sp, share, dt / hz / secs, conns
        }' | tee -a "$RESULTS" | cut -f2-8 | tr '\t' ' ' | sed 's/^/  /' >&2
}

# The wrk Lua check: every response 2xx and its body containing (or, for the reload, matching)
# the pattern; prints "bodies: ok N bad M" at the end (threads' counters summed).
write_lua() { # file lua-pattern plain(1: find as plain text)
    cat >"$1" <<EOF
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) ok = 0; bad = 0; first_bad = "" end
function response(status, headers, body)
    if status >= 200 and status < 300 and body and string.find(body, "$2", 1, $3) then
        ok = ok + 1
    else
        bad = bad + 1
        if first_bad == "" then first_bad = status .. " " .. string.sub(body or "", 1, 80) end
    end
end
function done(summary, latency, requests)
    local o, b, f = 0, 0, ""
    for _, t in ipairs(threads) do
        o = o + t:get("ok"); b = b + t:get("bad")
        if f == "" then f = t:get("first_bad") end
    end
    io.write(string.format("bodies: ok %d bad %d\n", o, b))
    if f ~= "" then io.write("first bad body: " .. f .. "\n") end
end
EOF
}

NGINX_PID=
write_nginx() { # conf-body (upstreams and locations)
    cat >"$WORK/nginx.conf" <<EOF
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
    fastcgi_buffers 16 16k;
    proxy_buffers 16 16k;
$1
}
EOF
}
start_nginx() {
    start_bg "$WORK/nginx.log" nginx -p "$WORK" -e "$WORK/nginx-error.log" -c "$WORK/nginx.conf"
    NGINX_PID=$BG_PID
}

# The heavy route's expected body, escaped for --expect-body (\\ and \n).
escape_body() { python3 -c 'import sys; sys.stdout.write(sys.stdin.read().replace("\\", "\\\\").replace("\n", "\\n"))'; }

# Waits until URL answers 200 (up to 60 s: uWSGI and gunicorn import Flask per worker).
wait_http() { # url
    local i
    for i in $(seq 1 600); do
        [[ $(curl -s -o /dev/null -w '%{http_code}' "$1" 2>/dev/null) == 200 ]] && return 0
        sleep 0.1
    done
    log "no 200 from $1; logs in $WORK"
    KEEP_WORK=1
    return 1
}

START=$(date +%s)
ulimit -n 65536 2>/dev/null || true

# --- parts 1 and 2: the heavy app --------------------------------------------------------------
if part heavy || part scaling; then
    note_load "parts 1-2"
    declare -A PORT PIDOF
    for n in gh2 gh1 uw2 uw1 gu2; do PORT[$n]=$(free_port); done
    if ((MW)); then
        start_bg "$WORK/gh2.log" "$GATEHOUSE" "wsgi:$HEAVY" --workers 2 --fastcgi "127.0.0.1:${PORT[gh2]}" --log-level info
        PIDOF[gh2]=$BG_PID
    fi
    start_bg "$WORK/gh1.log" "$GATEHOUSE" "wsgi:$HEAVY" "${GH1[@]}" --fastcgi "127.0.0.1:${PORT[gh1]}" --log-level info
    PIDOF[gh1]=$BG_PID
    start_bg "$WORK/uw2.log" "${UWSGI_ENV[@]}" "${UWSGI[@]}" --processes 2 --threads 1 --wsgi-file "$HEAVY" \
        --fastcgi-socket "127.0.0.1:${PORT[uw2]}"
    PIDOF[uw2]=$BG_PID
    if part scaling; then
        start_bg "$WORK/uw1.log" "${UWSGI_ENV[@]}" "${UWSGI[@]}" --processes 1 --threads 1 --wsgi-file "$HEAVY" \
            --fastcgi-socket "127.0.0.1:${PORT[uw1]}"
        PIDOF[uw1]=$BG_PID
    fi
    start_bg "$WORK/gu2.log" "${GUNICORN[@]}" -w 2 -b "127.0.0.1:${PORT[gu2]}" --chdir "$(dirname "$HEAVY")" heavy:app
    PIDOF[gu2]=$BG_PID
    # One nginx server (port) per implementation, `location /`, so every app sees the path `/`.
    declare -A NGPORT
    for n in gh2 gh2_plain uw2 gu2 gh1; do NGPORT[$n]=$(free_port); done
    srv() { echo "    server { listen 127.0.0.1:${NGPORT[$1]} backlog=4096; location / { $2 } }"; }
    FP="include /etc/nginx/fastcgi_params;"
    write_nginx "
    upstream gh2_keepalive { server 127.0.0.1:${PORT[gh2]}; keepalive 16; }
    upstream gh1_keepalive { server 127.0.0.1:${PORT[gh1]}; keepalive 16; }
$(srv gh2 "$FP fastcgi_keep_conn on; fastcgi_pass gh2_keepalive;")
$(srv gh2_plain "$FP fastcgi_pass 127.0.0.1:${PORT[gh2]};")
$(srv gh1 "$FP fastcgi_keep_conn on; fastcgi_pass gh1_keepalive;")
$(srv uw2 "$FP fastcgi_pass 127.0.0.1:${PORT[uw2]};")
$(srv gu2 "proxy_pass http://127.0.0.1:${PORT[gu2]};")"
    start_nginx
    wait_port "${NGPORT[gh1]}"
    url() { echo "http://127.0.0.1:${NGPORT[$1]}/"; }
    HEAVY_NAMES=(gh2 gh2_plain uw2 gu2 gh1)
    ((MW)) || HEAVY_NAMES=(uw2 gu2 gh1)
    for n in "${HEAVY_NAMES[@]}"; do wait_http "$(url "$n")"; done
    python3_of_gh=$(grep -o 'python: CPython [^ ]* prefix=[^ ]*' "$WORK/gh1.log" | head -1 || true)
    python_of_uw=$(grep -o 'Python version: [0-9.]*' "$WORK/uw2.log" | head -1 || true)
    log "gatehouse: ${python3_of_gh:-?}; uWSGI: ${python_of_uw:-?}; gunicorn: $PY ($PY_VERSION)"
    curl -s "$(url uw2)" >"$WORK/heavy.body"
    MARKER=$(grep -o 'checksum=[0-9]*' "$WORK/heavy.body")
    for n in "${HEAVY_NAMES[@]}"; do
        if ! curl -s "$(url "$n")" | cmp -s - "$WORK/heavy.body"; then
            log "warning: /$n answers differently from uWSGI"
        fi
    done
    write_lua "$WORK/heavy.lua" "$MARKER" true
    LUA=$WORK/heavy.lua
    # Python per request, one process, no concurrency (the figure the header quotes).
    "$BENCH" --fastcgi "127.0.0.1:${PORT[gh1]}" -c 1 -n 50 -q >/dev/null 2>&1 || true
    t0=$(cpu_ticks "${PIDOF[gh1]}")
    one=$("$BENCH" --fastcgi "127.0.0.1:${PORT[gh1]}" -c 1 -n 200 --json -q 2>/dev/null || echo '{}')
    t1=$(cpu_ticks "${PIDOF[gh1]}")
    SERIAL=$(jq -r '"\(.latency_us.p50 // 0) \(.requests // 0)"' <<<"$one")
    SERIAL_CPU=$(awk -v t=$((t1 - t0)) -v n="${SERIAL#* }" -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", n ? t / hz * 1000 / n : 0 }')
    log "heavy route, one at a time on gatehouse --workers 1: p50 $(awk -v u="${SERIAL% *}" 'BEGIN { printf "%.2f", u / 1000 }') ms, CPU $SERIAL_CPU ms/request"

    declare -A PID_OF_NAME=([gh2]=${PIDOF[gh2]:-} [gh2_plain]=${PIDOF[gh2]:-} [uw2]=${PIDOF[uw2]}
        [gu2]=${PIDOF[gu2]} [gh1]=${PIDOF[gh1]})
    declare -A PORT_OF_NAME=([gh2]=${PORT[gh2]} [gh2_plain]=${PORT[gh2]} [uw2]=${PORT[uw2]} [gu2]=${PORT[gu2]}
        [gh1]=${PORT[gh1]})
    declare -A LABEL=([gh2]="gatehouse --workers 2, keep_conn" [gh2_plain]="gatehouse --workers 2, plain"
        [uw2]="uWSGI 2 procs x 1 thread, plain" [gu2]="gunicorn -w 2 sync, proxy_pass (HTTP)"
        [gh1]="gatehouse --workers 1, keep_conn")
    EXPECT=$(escape_body <"$WORK/heavy.body")
    for round in $(seq 1 "$ROUNDS"); do
        if part heavy; then
            log "heavy through nginx: round $round of $ROUNDS"
            for i in "${!HEAVY_NAMES[@]}"; do
                n=${HEAVY_NAMES[$(((i + round - 1) % ${#HEAVY_NAMES[@]}))]}
                wrk_measure heavy "c=$CONNECTIONS" "${LABEL[$n]}" "$round" "${PID_OF_NAME[$n]}" "$(url "$n")" \
                    "${PORT_OF_NAME[$n]}"
            done
        fi
        if part scaling; then
            log "scaling, direct FastCGI: round $round of $ROUNDS"
            for c in $DIRECT_CONNS; do
                order=(gh1 gh2 gh2n uw1 uw2)
                ((MW)) || order=(gh1 uw1 uw2)
                ((round % 2)) || order=($(printf '%s\n' "${order[@]}" | tac))
                for n in "${order[@]}"; do
                    case $n in
                    gh2n) bench_measure scaling "c=$c" "gatehouse --workers 2, one conn per request" "$round" \
                        "${PIDOF[gh2]}" "${PORT[gh2]}" --fastcgi "127.0.0.1:${PORT[gh2]}" -c "$c" --no-keep-conn \
                        --expect-body "$EXPECT" --timeout 30s ;;
                    gh*) bench_measure scaling "c=$c" "gatehouse --workers ${n#gh}" "$round" "${PIDOF[$n]}" "${PORT[$n]}" \
                        --fastcgi "127.0.0.1:${PORT[$n]}" -c "$c" --expect-body "$EXPECT" --timeout 30s ;;
                    uw*) bench_measure scaling "c=$c" "uWSGI ${n#uw} procs x 1 thread" "$round" "${PIDOF[$n]}" "${PORT[$n]}" \
                        --fastcgi "127.0.0.1:${PORT[$n]}" -c "$c" --no-keep-conn --expect-body "$EXPECT" --timeout 30s ;;
                    esac
                done
            done
        fi
    done
    for n in gh2 gh1 uw2 uw1 gu2; do [[ -n ${PIDOF[$n]:-} ]] && stop_pid "${PIDOF[$n]}"; done
    stop_pid "$NGINX_PID"
    grep -c 'upstream' "$WORK/nginx-error.log" 2>/dev/null >"$WORK/heavy-nginx-errors" || true
    cp "$WORK/nginx-error.log" "$WORK/nginx-error-heavy.log" 2>/dev/null || true
    : >"$WORK/nginx-error.log"
fi

# --- part 3: reload under load -----------------------------------------------------------------
write_hello() { # dir generation
    cat >"$1/hello.py.new" <<EOF
"""hello.py, rewritten by benches/workers.sh before each SIGHUP: generation $2."""

BODY = b"Hello, generation $2!\n"
HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))]


def application(environ, start_response):
    start_response("200 OK", HEADERS)
    return [BODY]
EOF
    mv -f "$1/hello.py.new" "$1/hello.py"
}

# Seconds from SIGHUP until URL answers the new generation (polled every 20 ms, at most 30 s).
time_to_new() { # url generation t0
    local url=$1 want="Hello, generation $2!" now
    while :; do
        if [[ $(curl -s --max-time 2 "$url" 2>/dev/null) == "$want" ]]; then
            now=$(date +%s.%N)
            awk -v a="$3" -v b="$now" 'BEGIN { printf "%.2f", b - a }'
            return
        fi
        now=$(date +%s.%N)
        if awk -v a="$3" -v b="$now" 'BEGIN { exit !(b - a > 30) }'; then echo never; return; fi
        sleep 0.02
    done
}

# wrk at URL for RELOAD_SECONDS while the master gets SIGHUP every RELOAD_EVERY s, the app file
# in DIR rewritten before each; appends a row to reload.tsv.
reload_run() { # server path-label url master_pid app_dir daemon_log
    local server=$1 name=$2 url=$3 mpid=$4 dir=$5 dlog=$6 ng0 log0 wpid times=() t_end t0 out reqs \
        non2xx sock bad first_bad p99 ng_new ng_up ng_kinds workers ready gen t_start k
    log "reload under load: $server, $name, ${RELOAD_SECONDS}s, SIGHUP every ${RELOAD_EVERY}s"
    ng0=$(wc -l <"$WORK/nginx-error.log")
    log0=$(wc -l <"$dlog")
    gen=$(sed -n 's/^BODY = b"Hello, generation \([0-9]*\)!.*/\1/p' "$dir/hello.py")
    wrk -t"$WRK_THREADS" -c"$RELOAD_CONNECTIONS" -d"${RELOAD_SECONDS}s" --timeout 5s --latency \
        -s "$WORK/reload.lua" "$url" >"$WORK/reload-wrk.out" 2>&1 &
    wpid=$!
    # SIGHUPs on a fixed schedule: at RELOAD_EVERY, 2 x RELOAD_EVERY, ... while at least
    # RELOAD_EVERY of the load is left after it.
    t_start=$(date +%s.%N)
    for ((k = 1; (k + 1) * RELOAD_EVERY <= RELOAD_SECONDS; k++)); do
        while awk -v a="$t_start" -v b="$(date +%s.%N)" -v k=$((k * RELOAD_EVERY)) 'BEGIN { exit !(b - a < k) }'; do
            sleep 0.02
        done
        gen=$((gen + 1))
        write_hello "$dir" "$gen"
        t0=$(date +%s.%N)
        kill -HUP "$mpid"
        times+=("$(time_to_new "$url" "$gen" "$t0")")
    done
    wait "$wpid" || true
    sleep 1
    out=$(cat "$WORK/reload-wrk.out")
    echo "--- reload $server $name"$'\n'"$out" >>"$WORK/wrk.log"
    reqs=$(awk '/requests in/ { print $1 }' <<<"$out")
    non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' <<<"$out")
    sock=$(grep 'Socket errors:' <<<"$out" | sed 's/.*Socket errors: //' || true)
    bad=$(awk '/^bodies:/ { print $5 }' <<<"$out")
    first_bad=$(grep '^first bad body:' <<<"$out" | cut -c17- | tr -d '\r\n' || true)
    p99=$(awk '$1 == "99%" { print $2 }' <<<"$out")
    ng_new=$(tail -n +$((ng0 + 1)) "$WORK/nginx-error.log")
    ng_up=$(grep -c 'upstream' <<<"$ng_new" || true)
    ng_kinds=$(grep 'upstream' <<<"$ng_new" | sed -E 's/^.*\*[0-9]+ //; s/ while .*//; s/, client:.*//; s/\(.*\)//' |
        sort | uniq -c | awk '{ n = $1; $1 = ""; printf "%s%d x%s", sep, n, $0; sep = "; " }' || true)
    workers=$(children "$mpid" | wc -l)
    ready=-
    [[ $server == gatehouse* ]] && ready=$(tail -n +$((log0 + 1)) "$dlog" | grep -ci 'reload: generation [0-9]* ready' || true)
    printf 'reload\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$server" "$name" "${reqs:-0}" \
        "${non2xx:-0}" "${sock:-none}" "${bad:-?}" "${ng_up:-0}" "${times[*]}" "$workers" "$ready" "${p99:-?}" \
        "${ng_kinds:-}${first_bad:+; first bad: $first_bad}" >>"$WORK/reload.tsv"
    tail -1 "$WORK/reload.tsv" | cut -f2- | tr '\t' ' ' | sed 's/^/  /' >&2
}

if part reload; then
    note_load "part 3"
    : >"$WORK/nginx-error.log"
    write_lua "$WORK/reload.lua" '^Hello, generation %d+!\n$' false
    declare -A RPORT RDIR RPID RLOG RNG
    RSERVERS=(uw2 gu2)
    ((MW)) && RSERVERS=(gh2 uw2 gu2)
    for n in gh2 uw2 gu2; do
        RPORT[$n]=$(free_port) RNG[$n]=$(free_port) RDIR[$n]=$WORK/reload-$n RLOG[$n]=$WORK/reload-$n.log
        mkdir -p "${RDIR[$n]}"
        write_hello "${RDIR[$n]}" 0
    done
    RNG[gh2_keep]=$(free_port)
    if ((MW)); then
        RH=$(free_port)
        start_bg "${RLOG[gh2]}" "$GATEHOUSE" "wsgi:${RDIR[gh2]}/hello.py" --workers 2 \
            --fastcgi "127.0.0.1:${RPORT[gh2]}" --http "127.0.0.1:$RH" --log-level info
        RPID[gh2]=$BG_PID
    fi
    # uWSGI: SIGHUP is its graceful reload (workers finish, the master re-executes itself
    # keeping the sockets); gunicorn: new workers, then the old ones stop gracefully.
    start_bg "${RLOG[uw2]}" "${UWSGI_ENV[@]}" "${UWSGI[@]}" --processes 2 --threads 1 \
        --wsgi-file "${RDIR[uw2]}/hello.py" --fastcgi-socket "127.0.0.1:${RPORT[uw2]}"
    RPID[uw2]=$BG_PID
    start_bg "${RLOG[gu2]}" "${GUNICORN[@]}" -w 2 -b "127.0.0.1:${RPORT[gu2]}" --chdir "${RDIR[gu2]}" hello:application
    RPID[gu2]=$BG_PID
    FP="include /etc/nginx/fastcgi_params;"
    write_nginx "
    upstream reload_keepalive { server 127.0.0.1:${RPORT[gh2]}; keepalive 16; }
    server { listen 127.0.0.1:${RNG[gh2]} backlog=4096; location / { $FP fastcgi_pass 127.0.0.1:${RPORT[gh2]}; } }
    server { listen 127.0.0.1:${RNG[gh2_keep]} backlog=4096; location / { $FP fastcgi_keep_conn on; fastcgi_pass reload_keepalive; } }
    server { listen 127.0.0.1:${RNG[uw2]} backlog=4096; location / { $FP fastcgi_pass 127.0.0.1:${RPORT[uw2]}; } }
    server { listen 127.0.0.1:${RNG[gu2]} backlog=4096; location / { proxy_pass http://127.0.0.1:${RPORT[gu2]}; } }"
    start_nginx
    for n in "${RSERVERS[@]}"; do wait_http "http://127.0.0.1:${RNG[$n]}/"; done
    if ((MW)); then
        wait_http "http://127.0.0.1:$RH/"
        reload_run "gatehouse --workers 2" "nginx fastcgi_pass plain" "http://127.0.0.1:${RNG[gh2]}/" \
            "${RPID[gh2]}" "${RDIR[gh2]}" "${RLOG[gh2]}"
        reload_run "gatehouse --workers 2" "nginx fastcgi_keep_conn + upstream keepalive 16" \
            "http://127.0.0.1:${RNG[gh2_keep]}/" "${RPID[gh2]}" "${RDIR[gh2]}" "${RLOG[gh2]}"
        reload_run "gatehouse --workers 2" "direct HTTP keep-alive (wrk at --http)" "http://127.0.0.1:$RH/" \
            "${RPID[gh2]}" "${RDIR[gh2]}" "${RLOG[gh2]}"
        sigterm_t0=$(date +%s.%N)
        kill -TERM "${RPID[gh2]}"
        rc=0
        wait "${RPID[gh2]}" || rc=$?
        TERM_INFO="gatehouse master: SIGTERM -> exit status $rc after $(awk -v a="$sigterm_t0" -v b="$(date +%s.%N)" \
            'BEGIN { printf "%.2f", b - a }') s; reloads logged ready: $(grep -ci 'reload: generation [0-9]* ready' "${RLOG[gh2]}" || true)"
        log "$TERM_INFO"
    else
        TERM_INFO="gatehouse rows skipped: no master/worker model in this binary"
    fi
    reload_run "uWSGI 2 procs (peer)" "nginx fastcgi_pass plain" "http://127.0.0.1:${RNG[uw2]}/" \
        "${RPID[uw2]}" "${RDIR[uw2]}" "${RLOG[uw2]}"
    reload_run "gunicorn -w 2 (peer)" "nginx proxy_pass" "http://127.0.0.1:${RNG[gu2]}/" \
        "${RPID[gu2]}" "${RDIR[gu2]}" "${RLOG[gu2]}"
    stop_pid "${RPID[uw2]}"
    stop_pid "${RPID[gu2]}"
    stop_pid "$NGINX_PID"
    cp "$WORK/nginx-error.log" "$WORK/nginx-error-reload.log"
fi

# --- part 4: memory ----------------------------------------------------------------------------
kib() { awk -v k="$2" '$1 == k ":" { print $2; exit }' "/proc/$1/status" 2>/dev/null || echo 0; }
pss() { awk '$1 == "Pss:" { print $2; exit }' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
mem_row() { # impl app master_pid
    local m=$3 c list="" total_rss total_pss
    total_rss=$(kib "$m" VmRSS) total_pss=$(pss "$m")
    for c in $(children "$m"); do
        list+="${list:+ + }$(mib "$(kib "$c" VmRSS)")"
        total_rss=$((total_rss + $(kib "$c" VmRSS)))
        total_pss=$((total_pss + $(pss "$c")))
    done
    printf 'memory\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$(mib "$(kib "$m" VmRSS)")" "${list:--}" \
        "$(mib "$total_rss")" "$(mib "$total_pss")" "$(children "$m" | wc -l)" >>"$WORK/memory.tsv"
    tail -1 "$WORK/memory.tsv" | tr '\t' ' ' | sed 's/^/  /' >&2
}
if part memory; then
    note_load "part 4"
    log "memory: fresh daemons, 2000 requests each, then VmRSS/Pss"
    for app in hello heavy; do
        file=$HELLO_APP path=/
        [[ $app == heavy ]] && file=$HEAVY
        impls=(gh2 gh1 uw2 gu2)
        ((MW)) || impls=(gh1 uw2 gu2)
        for n in "${impls[@]}"; do
            port=$(free_port)
            case $n in
            gh2) start_bg "$WORK/mem.log" "$GATEHOUSE" "wsgi:$file" --workers 2 --fastcgi "127.0.0.1:$port" --log-level warn
                label="gatehouse --workers 2" ;;
            gh1) start_bg "$WORK/mem.log" "$GATEHOUSE" "wsgi:$file" "${GH1[@]}" --fastcgi "127.0.0.1:$port" --log-level warn
                label="gatehouse --workers 1" ;;
            uw2) start_bg "$WORK/mem.log" "${UWSGI_ENV[@]}" "${UWSGI[@]}" --processes 2 --threads 1 --wsgi-file "$file" \
                --fastcgi-socket "127.0.0.1:$port"
                label="uWSGI master + 2 workers" ;;
            gu2) start_bg "$WORK/mem.log" "${GUNICORN[@]}" -w 2 -b "127.0.0.1:$port" --chdir "$(dirname "$file")" \
                "$(basename "$file" .py):application"
                label="gunicorn master + 2 sync workers" ;;
            esac
            pid=$BG_PID
            wait_port "$port"
            if [[ $n == gu2 ]]; then
                wait_http "http://127.0.0.1:$port/"
                wrk -t1 -c2 -d30s "http://127.0.0.1:$port/" >/dev/null 2>&1 &
                wk=$!
                # stop wrk after ~2000 requests' worth of time (hello: well under a second)
                sleep $([[ $app == heavy ]] && echo 6 || echo 1)
                kill -INT "$wk" 2>/dev/null || true
                wait "$wk" 2>/dev/null || true
            else
                sleep 2 # uWSGI and the workers import the app
                keep=()
                [[ $n == uw2 ]] && keep=(--no-keep-conn)
                "$BENCH" --fastcgi "127.0.0.1:$port" -c 2 -n 2000 --timeout 30s -q "${keep[@]}" >/dev/null 2>&1 || true
            fi
            sleep 1
            mem_row "$label" "$app" "$pid"
            stop_pid "$pid"
        done
    done
fi

END=$(date +%s)
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# --- the report --------------------------------------------------------------------------------
echo
echo "gatehouse workers benchmark, commit $COMMIT, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores" \
    "($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), $(uname -r)"
echo "load average before: $LOAD_BEFORE; $LOADS; after: $LOAD_AFTER; whole run $((END - START)) s"
echo "python: gatehouse ${python3_of_gh:-?}; uWSGI ${python_of_uw:-?} (UWSGI_PYTHON=$UWSGI_PYTHON); gunicorn $PY $PY_VERSION"
echo "nginx $(nginx -v 2>&1 | sed 's/.*\///'), wrk $(wrk -v 2>&1 | head -1 | awk '{print $2}'), uWSGI $(uwsgi --version), gunicorn $("$PY" -m gunicorn --version 2>/dev/null | awk '{print $NF}' | tr -d ')')"
((MW)) || echo "NOTE: this binary has no master/worker model: --workers 2 rows and the reload part were skipped"
[[ -z ${SERIAL_CPU:-} ]] || echo "heavy route (fixtures/apps/heavy.py /, 300 rows): one request at a time on gatehouse --workers 1:" \
    "p50 $(awk -v u="${SERIAL% *}" 'BEGIN { printf "%.2f", u / 1000 }') ms, daemon CPU $SERIAL_CPU ms per request"
python3 - "$RESULTS" "$ROUNDS" "$DURATION" "$WARMUP" "$CONNECTIONS" "$WRK_THREADS" <<'PY'
import statistics, sys
from collections import OrderedDict
path, rounds, duration, warmup, conns, wrk_threads = sys.argv[1:]
rows = OrderedDict()
for line in open(path):
    f = line.rstrip("\n").split("\t")
    part, config, impl, rnd = f[0], f[1], f[2], int(f[3])
    rps, p99, err = float(f[4]), float(f[5]), int(f[6])
    d = lambda x: float(x) if x not in ("-", "") else None
    extra = dict(kv.split("=") for kv in f[12].split(";") if "=" in kv) if len(f) > 12 else {}
    rows.setdefault((part, config, impl), []).append(dict(round=rnd, rps=rps, p99=p99, err=err,
        daemon=d(f[7]), nginx=d(f[8]), client=d(f[9]), others=d(f[10]), split=f[11],
        client_cores=float(extra.get("client_cores", "nan")),
        daemon_cores=float(extra.get("daemon_cores", "nan")), conns=extra.get("conns", "") or "-"))
def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None
def us(v):
    return "-" if v is None else f"{v / 1000:.1f} ms" if v >= 1000 else f"{v:.0f} us"
def num(v, fmt="{:.0f}"):
    return "-" if v is None else fmt.format(v)

def table(part, title, ref_impl, cols):
    keys = [k for k in rows if k[0] == part]
    if not keys:
        return
    print()
    print(title)
    print()
    heads = ["config", "implementation", "req/s median (min-max)", "ratio", "p99"] + [c[0] for c in cols] + ["errors"]
    print("| " + " | ".join(heads) + " |")
    print("|" + "|".join(["---", "---"] + ["---:"] * (len(heads) - 2)) + "|")
    for k in keys:
        r = rows[k]
        m = med([x["rps"] for x in r])
        ref = rows.get((part, k[1], ref_impl))
        ratio = "-"
        if ref and k[2] != ref_impl:
            by_round = {x["round"]: x["rps"] for x in ref}
            pairs = [x["rps"] / by_round[x["round"]] for x in r if by_round.get(x["round"])]
            if pairs:
                ratio = f"{statistics.median(pairs):.2f}x"
        elif ref:
            ratio = "1.00x"
        spread = f"{m:,.0f} ({min(x['rps'] for x in r):,.0f}-{max(x['rps'] for x in r):,.0f})"
        vals = [c[1](r) for c in cols]
        print("| " + " | ".join([k[1], k[2], spread, ratio, us(med([x["p99"] for x in r]))] + vals
                                + [str(sum(x["err"] for x in r))]) + " |")

splits = lambda r: " ".join(x["split"] for x in r)
conns_of = lambda r: " ".join(x["conns"] for x in r)
table("heavy",
      f"1. Heavy Flask route through nginx (1 worker), wrk -t{wrk_threads} -c{conns} -d{duration} "
      f"(after a {warmup} warm-up), {rounds} rounds, order rotated; ratio = median of per-round ratios "
      "to gatehouse --workers 2 keep_conn",
      "gatehouse --workers 2, keep_conn",
      [("daemon CPU us/req", lambda r: num(med([x["daemon"] for x in r]))),
       ("nginx CPU us/req", lambda r: num(med([x["nginx"] for x in r]))),
       ("wrk CPU us/req", lambda r: num(med([x["client"] for x in r]))),
       ("daemon cores", lambda r: num(med([x["daemon_cores"] for x in r]), "{:.2f}")),
       ("others (cores)", lambda r: num(med([x["others"] for x in r]), "{:.2f}")),
       ("worker CPU split % per round", splits),
       ("connections per worker, mid-run", conns_of)])
table("scaling",
      f"2. Scaling, heavy route straight over FastCGI (gatehouse-bench, no nginx), -d{duration} after a "
      f"{warmup} warm-up, {rounds} rounds; gatehouse kept-alive connections, uWSGI one per request; "
      "ratio = median of per-round ratios to the 1-process row of the same server (gatehouse rows to "
      "--workers 1, uWSGI rows to uWSGI 1 proc)",
      None,
      [("daemon CPU us/req", lambda r: num(med([x["daemon"] for x in r]))),
       ("client CPU us/req", lambda r: num(med([x["client"] for x in r]), "{:.1f}")),
       ("client share of a core", lambda r: num(med([x["client_cores"] for x in r]), "{:.2%}")),
       ("daemon cores", lambda r: num(med([x["daemon_cores"] for x in r]), "{:.2f}")),
       ("others (cores)", lambda r: num(med([x["others"] for x in r]), "{:.2f}")),
       ("worker CPU split % per round", splits),
       ("connections per worker, mid-run", conns_of)])
PY
# The scaling ratios need per-server reference rows: printed separately.
python3 - "$RESULTS" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    f = line.rstrip("\n").split("\t")
    if f[0] != "scaling":
        continue
    rows.setdefault((f[1], f[2]), {})[int(f[3])] = float(f[4])
out = []
for (config, impl), by_round in rows.items():
    if impl.startswith("gatehouse --workers ") and not impl.endswith(" 1"):
        ref = rows.get((config, "gatehouse --workers 1"))
    elif impl.startswith("uWSGI ") and not impl.startswith("uWSGI 1 "):
        ref = rows.get((config, "uWSGI 1 procs x 1 thread"))
    else:
        continue
    if not ref:
        continue
    pairs = [v / ref[r] for r, v in by_round.items() if ref.get(r)]
    out.append(f"| {config} | {impl} | {statistics.median(pairs):.2f}x | "
               + " ".join(f"{p:.2f}" for p in pairs) + " |")
if out:
    print()
    print("Scaling ratios (2 processes / 1 process of the same server, paired per round):")
    print()
    print("| config | implementation | median ratio | per round |")
    print("|---|---|---:|---|")
    print("\n".join(out))
PY
if [[ -s $WORK/reload.tsv ]]; then
    echo
    echo "3. Reload under load: wrk -t$WRK_THREADS -c$RELOAD_CONNECTIONS -d${RELOAD_SECONDS}s --timeout 5s," \
        "SIGHUP to the master every ${RELOAD_EVERY}s with its hello.py rewritten before each (the peers' own SIGHUP reloads for comparison)"
    echo
    echo "| server | path | requests | non-2xx | socket errors | wrong bodies | nginx upstream errors | s to new answer, per SIGHUP | workers after | \"generation G ready\" logged | p99 | notes |"
    echo "|---|---|---:|---:|---|---:|---:|---|---:|---:|---:|---|"
    while IFS=$'\t' read -r _ server name reqs non sock bad ng times workers ready p99 notes; do
        echo "| $server | $name | $reqs | $non | $sock | $bad | $ng | $times | $workers | $ready | $p99 | $notes |"
    done <"$WORK/reload.tsv"
fi
if [[ -n ${TERM_INFO:-} ]]; then echo; echo "reload: $TERM_INFO"; fi
if [[ -s $WORK/memory.tsv ]]; then
    echo
    echo "4. Memory after 2000 requests (MiB): VmRSS of the master and of each worker; Pss splits pages shared between them"
    echo
    echo "| implementation | app | master RSS | worker RSS | total RSS | total Pss | workers |"
    echo "|---|---|---:|---|---:|---:|---:|"
    while IFS=$'\t' read -r _ impl app m w t p n; do
        echo "| $impl | $app | $m | $w | $t | $p | $n |"
    done <"$WORK/memory.tsv"
fi
if [[ -s $WORK/notes ]]; then
    echo
    echo "WARNING, daemons that were gone before a measurement (their rows are errors):"
    sed 's/^/  /' "$WORK/notes"
fi
if [[ -s $WORK/heavy-nginx-errors ]]; then
    echo
    echo "nginx error log, parts 1-2: $(cat "$WORK/heavy-nginx-errors") lines naming an upstream"
fi
