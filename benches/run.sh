#!/usr/bin/env bash
# The benchmark report (issue 6): runs every scenario side by side in one run, alternating
# implementations, REPS times each, and writes BENCHMARKS.md (tables of medians with min-max
# and ratios measured in the same run), crates/bench/report/benchmarks.svg (throughput and
# p99 bars, drawn by hand: no plotting library) and crates/bench/report/results.tsv (raw rows).
#
# Scenarios (each measurement: a discarded warm-up run of WARMUP s, then DURATION s measured):
#   1. FastCGI hello, gatehouse-bench direct: 1 / 16 / 256 connections with FCGI_KEEP_CONN,
#      multiplexed (16 x 8 and 1 x 16), and one connection per request; uWSGI (WSGI hello,
#      master + 2 processes) beside it, one connection per request (uWSGI closes after every
#      response whatever FCGI_KEEP_CONN says).
#   2. The same through nginx (1 worker, fastcgi_pass; keep_conn + upstream keepalive for
#      gatehouse) driven by wrk, with nginx `return 200` as the ceiling.
#   3. SCGI hello direct and through nginx (scgi_pass), HTTP hello direct: only when the
#      binary has the --scgi / --http listeners (else the report says they were skipped).
#   4. 10 MiB POST to `echo`, gatehouse-bench direct: throughput and the daemon's peak RSS
#      (VmHWM of a fresh daemon per repetition).
#   5. 10,000 idle kept-alive FastCGI connections: the daemon's RSS per connection.
#   6. WSGI and CGI against uWSGI, flup and fcgiwrap: only when the binary serves wsgi:/cgi:
#      apps (else a TODO section in the report).
#   Calibration: nginx `return 200` driven by wrk and by gatehouse-bench --http, with each
#   client's CPU per request, to show whether the load generator is the bottleneck.
#   Profile: the daemon under callgrind on a short FastCGI hello run (PROFILE=0 skips it).
#
# Usage: benches/run.sh            (as root: installs peers with apt and pip, builds --release)
# Env:   REPS=4 DURATION=5 WARMUP=1 (seconds; the whole run takes ~19 min on 2 cores)
#        IDLE_CONNS=10000  PROFILE=1
#        OUT=BENCHMARKS.md  DATA=crates/bench/report (the SVG chart and the raw results)
# All traffic stays on 127.0.0.1; every process started here is stopped by its PID.
set -Eeuo pipefail

cd "$(dirname "$0")/.."
. benches/lib.sh
REPS=${REPS:-4}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
IDLE_CONNS=${IDLE_CONNS:-10000}
PROFILE=${PROFILE:-1}
OUT=${OUT:-BENCHMARKS.md}
DATA=${DATA:-crates/bench/report}
CLK_TCK=$(getconf CLK_TCK)
GH=target/release/gatehouse
BENCH=target/release/gatehouse-bench
HELLO='Hello, world!\n'

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

install_peers() {
    local missing=() p
    for p in nginx wrk uwsgi uwsgi-plugin-python3 fcgiwrap valgrind jq; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    if ((${#missing[@]})); then
        log "apt: installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
    python3 -c 'import flup' 2>/dev/null || pip install -q flup >/dev/null 2>&1 ||
        log "pip: flup could not be installed (only scenario 6 needs it)"
}

status_kib() { # pid field (VmRSS, VmHWM)
    awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status"
}

PIDS=()
start_bg() { # logfile command... ; sets BG_PID
    "${@:2}" >"$1" 2>&1 &
    BG_PID=$!
    PIDS+=("$BG_PID")
}

stop_pid() { # pid
    kill -TERM "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

stop_tree() { # pid: the process and its descendants (fcgiwrap's children outlive their parent)
    local kids
    kids=$(descendants "$1")
    stop_pid "$1"
    # shellcheck disable=SC2086
    [[ -z $kids ]] || kill -TERM $kids 2>/dev/null || true
}

cleanup() {
    local pid
    [[ -z ${FW_PID:-} ]] || stop_tree "$FW_PID"
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    [[ -n ${KEEP_WORK:-} ]] || rm -rf "$WORK"
}

# One result row: scenario config impl rep rps p99_us errors daemon_us client_us proxy_us extra
row() {
    local IFS=$'\t'
    echo "$*" >>"$RESULTS"
}

per_req_us() { # ticks requests
    awk -v t="$1" -v hz="$CLK_TCK" -v n="$2" 'BEGIN { if (n > 0) printf "%.1f", t / hz * 1e6 / n; else print "" }'
}

client_us() { # time-file requests
    awk -v n="$2" '{ if (n > 0) printf "%.1f", ($1 + $2) * 1e6 / n; else print "" }' "$1"
}

# gatehouse-bench: warm-up run, then the measured run. Args: scenario config impl rep daemon_pid args...
ghb() {
    local scenario=$1 config=$2 impl=$3 rep=$4 daemon=$5
    shift 5
    "$BENCH" "$@" -d "${WARMUP}s" -q >/dev/null 2>&1 || true
    local t0 t1 json
    t0=$(cpu_ticks "$daemon")
    json=$(/usr/bin/time -f '%U %S' -o "$WORK/time" "$BENCH" "$@" -d "${DURATION}s" --json -q \
        2>>"$WORK/bench-stderr.log") || true
    t1=$(cpu_ticks "$daemon")
    if [[ -z $json ]]; then
        log "gatehouse-bench failed: $impl $config"
        row "$scenario" "$config" "$impl" "$rep" 0 0 1 "" "" "" ""
        return
    fi
    echo "$json" >>"$WORK/bench.jsonl"
    local n rps p99 errors
    read -r n rps p99 errors < <(jq -r '[.requests, .requests_per_sec, .latency_us.p99, .errors] | @tsv' <<<"$json")
    row "$scenario" "$config" "$impl" "$rep" "$rps" "$p99" "$errors" \
        "$(per_req_us $((t1 - t0)) "$n")" "$(client_us "$WORK/time" "$n")" "" ""
    log "$scenario | $config | $impl | rep $rep: $rps req/s, p99 ${p99}us, $errors errors"
}

# wrk through nginx. Args: scenario config impl rep daemon_pid(or -) connections url
wrk_run() {
    local scenario=$1 config=$2 impl=$3 rep=$4 daemon=$5 conns=$6 url=$7
    local threads=$((conns < 2 ? 1 : 2))
    wrk -t"$threads" -c"$conns" -d"${WARMUP}s" "$url" >/dev/null 2>&1 || true
    local d0 d1 n0 n1 out
    d0=$([[ $daemon == - ]] && echo 0 || cpu_ticks "$daemon")
    n0=$(cpu_ticks "$NGINX_PID")
    out=$(/usr/bin/time -f '%U %S' -o "$WORK/time" wrk -t"$threads" -c"$conns" -d"${DURATION}s" --latency "$url" 2>&1) || true
    d1=$([[ $daemon == - ]] && echo 0 || cpu_ticks "$daemon")
    n1=$(cpu_ticks "$NGINX_PID")
    echo "--- $scenario | $config | $impl | rep $rep"$'\n'"$out" >>"$WORK/wrk.log"
    local rps p99 reqs errors
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" { v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
        m = (u == "us") ? 1 : (u == "ms") ? 1000 : (u == "s") ? 1e6 : 1; printf "%.1f", v * m }' <<<"$out")
    reqs=$(awk '/requests in/ {print $1}' <<<"$out")
    errors=$(awk '/Non-2xx or 3xx responses:/ {n += $NF}
        /Socket errors:/ { for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) n += $i }
        END {print n + 0}' <<<"$out")
    local daemon_us=""
    [[ $daemon == - ]] || daemon_us=$(per_req_us $((d1 - d0)) "${reqs:-0}")
    row "$scenario" "$config" "$impl" "$rep" "${rps:-0}" "${p99:-0}" "$errors" "$daemon_us" \
        "$(client_us "$WORK/time" "${reqs:-0}")" "$(per_req_us $((n1 - n0)) "${reqs:-0}")" ""
    log "$scenario | $config | $impl | rep $rep: ${rps:-0} req/s, p99 ${p99:-?}us, $errors errors"
}

has_flag() { "$GH" --help 2>&1 | grep -q -- "$1"; }

# Writes the report from the result rows: write_report results.tsv meta.txt profile.txt OUT SVG.
# Hand-written notes between the markers <!-- notes:start --> and <!-- notes:end --> in an
# existing OUT are kept.
write_report() {
    python3 - "$@" <<'PY'
import math, os, re, statistics, sys
from collections import OrderedDict

results, meta_path, profile_path, out_path, svg_path = sys.argv[1:6]
meta = dict(line.rstrip("\n").split("=", 1) for line in open(meta_path) if "=" in line)
cols = ["scenario", "config", "impl", "rep", "rps", "p99", "errors", "daemon_us", "client_us", "proxy_us", "extra"]
rows = []
for line in open(results):
    parts = line.rstrip("\n").split("\t")
    parts += [""] * (len(cols) - len(parts))
    rows.append(dict(zip(cols, parts)))

def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None

# group: scenario -> config -> impl -> list of rows (insertion order kept)
groups = OrderedDict()
for r in rows:
    groups.setdefault(r["scenario"], OrderedDict()).setdefault(r["config"], OrderedDict()).setdefault(r["impl"], []).append(r)

def stats(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return statistics.median(values), min(values), max(values)

def fmt_rps(s):
    return "-" if s is None else f"{s[0]:,.0f} ({s[1]:,.0f}–{s[2]:,.0f})"

def fmt_us(us):
    if us >= 1000:
        return f"{us / 1000:.2f} ms"
    return f"{us:.0f} µs"

def fmt_lat(s):
    return "-" if s is None else f"{fmt_us(s[0])} ({fmt_us(s[1])}–{fmt_us(s[2])})"

def fmt_med(s, digits=1):
    return "-" if s is None else f"{s[0]:.{digits}f}"

def extra(r):
    return dict(kv.split("=", 1) for kv in r["extra"].split(";") if "=" in kv)

def reference(impls):
    for name in impls:
        if name.startswith("gatehouse"):
            return name
    return next(iter(impls))

md = []
w = md.append
w("# Benchmarks")
w("")
w(f"Generated by `benches/run.sh` on {meta.get('date')} at commit `{meta.get('commit')}`; do not edit by hand "
  "except between the notes markers (kept when the report is regenerated).")
w("")
w(f"- Machine: {meta.get('cpus')} CPUs ({meta.get('cpu_model')}), Linux {meta.get('kernel')}, shared with other "
  f"work (load average before {meta.get('load_before')}, after {meta.get('load_after')}). Everything (daemon, peers, "
  "nginx, load generator) runs on the same 2 cores over loopback.")
w(f"- Peers: nginx {meta.get('nginx')} (1 worker), wrk {meta.get('wrk')}, uWSGI {meta.get('uwsgi')} "
  "(`--master --processes 2`, WSGI hello in CPython).")
w(f"- Each figure: {meta.get('reps')} repetitions of {meta.get('duration')} s, each after a discarded "
  f"{meta.get('warmup')} s warm-up run; implementations alternate within each repetition. "
  f"Whole run: {int(meta.get('elapsed', 0)) // 60} min {int(meta.get('elapsed', 0)) % 60} s.")
w("- req/s and p99: median (min–max) over the repetitions. Ratio: median req/s divided by the median of "
  "the group's gatehouse row (the first one), measured in the same run.")
w("- CPU per request (µs, median): daemon = the server process and its children; nginx = the nginx "
  "master and worker; client = the load generator (user + system). From /proc/PID/stat and "
  "`/usr/bin/time`; 10 ms ticks, so short runs are coarse.")
w("- Every gatehouse-bench run checks each response (status 2xx and the exact body `Hello, world!\\n` "
  "where it says hello); errors are counted, and any error is shown in the table.")
w("")
w(f"![throughput and p99 per scenario]({os.path.relpath(svg_path, os.path.dirname(out_path) or '.')})")
w("")

groups = OrderedDict(sorted(groups.items(), key=lambda kv: kv[0]))
chart = []  # (label, rps stats, p99 stats)
def generic(scenario, configs):
    w(f"## {scenario}")
    w("")
    w("| config | implementation | req/s | ratio | p99 | daemon CPU µs/req | nginx CPU µs/req | client CPU µs/req | errors |")
    w("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for config, impls in configs.items():
        ref = reference(impls)
        ref_rps = stats([num(r["rps"]) for r in impls[ref]])
        for impl, rs in impls.items():
            rps = stats([num(r["rps"]) for r in rs])
            p99 = stats([num(r["p99"]) for r in rs])
            ratio = "-" if not (rps and ref_rps and ref_rps[0]) else f"{rps[0] / ref_rps[0]:.2f}x"
            errors = sum(int(num(r["errors"]) or 0) for r in rs)
            err = "0" if errors == 0 else f"**{errors}**"
            w(f"| {config} | {impl} | {fmt_rps(rps)} | {ratio} | {fmt_lat(p99)} | "
              f"{fmt_med(stats([num(r['daemon_us']) for r in rs]))} | {fmt_med(stats([num(r['proxy_us']) for r in rs]))} | "
              f"{fmt_med(stats([num(r['client_us']) for r in rs]))} | {err} |")
            chart.append((f"{scenario.split('.')[0]}. {config} · {impl}", rps, p99))
    w("")

def special(scenario, configs):
    if scenario.startswith("4."):
        w(f"## {scenario}")
        w("")
        w("A fresh `gatehouse echo` per repetition; the body is streamed and hashed, never held. "
          "No warm-up: the daemon's CPU covers the measured run. Peak RSS = VmHWM of the daemon at the end of the run.")
        w("")
        w("| config | req/s | body MiB/s | p99 | daemon CPU µs/req | RSS at start | peak RSS (VmHWM) | errors |")
        w("|---|---:|---:|---:|---:|---:|---:|---:|")
        for config, impls in configs.items():
            for impl, rs in impls.items():
                ex = [extra(r) for r in rs]
                rps = stats([num(r["rps"]) for r in rs])
                mib = stats([num(e.get("mib_s")) for e in ex])
                base = stats([num(e.get("base_kib")) for e in ex])
                hwm = stats([num(e.get("hwm_kib")) for e in ex])
                errors = sum(int(num(r["errors"]) or 0) for r in rs)
                w(f"| {config} | {rps[0]:.1f} ({rps[1]:.1f}–{rps[2]:.1f}) | "
                  f"{mib[0]:.0f} ({mib[1]:.0f}–{mib[2]:.0f}) | {fmt_lat(stats([num(r['p99']) for r in rs]))} | "
                  f"{fmt_med(stats([num(r['daemon_us']) for r in rs]), 0)} | {base[0] / 1024:.1f} MiB | "
                  f"{hwm[0] / 1024:.1f} MiB ({hwm[1] / 1024:.1f}–{hwm[2] / 1024:.1f}) | {'0' if not errors else f'**{errors}**'} |")
        w("")
    if scenario.startswith("5."):
        w(f"## {scenario}")
        w("")
        w("A fresh `gatehouse hello --max-conns 2N` per repetition; RSS after 10 requests on one "
          "connection, then with every connection open and idle (`gatehouse-bench --idle-hold`: one "
          "request each, then held), sampled 2 s into the hold.")
        w("")
        w("| connections held | daemon fds | RSS before | RSS holding | KiB per connection | errors |")
        w("|---:|---:|---:|---:|---:|---:|")
        for config, impls in configs.items():
            for impl, rs in impls.items():
                ex = [extra(r) for r in rs]
                held = stats([num(e.get("held")) for e in ex])
                fds = stats([num(e.get("fds")) for e in ex])
                base = stats([num(e.get("base_kib")) for e in ex])
                hold = stats([num(e.get("held_kib")) for e in ex])
                per = stats([num(e.get("kib_per_conn")) for e in ex])
                errors = sum(int(num(r["errors"]) or 0) for r in rs)
                w(f"| {held[0]:.0f} | {fds[0]:.0f} | {base[0] / 1024:.1f} MiB | {hold[0] / 1024:.1f} MiB "
                  f"({hold[1] / 1024:.1f}–{hold[2] / 1024:.1f}) | {per[0]:.2f} ({per[1]:.2f}–{per[2]:.2f}) | "
                  f"{'0' if not errors else f'**{errors}**'} |")
        w("")

def peers_settings():
    w("## 6. WSGI and CGI against uWSGI, flup and fcgiwrap")
    w("")
    if meta.get("wsgi") == "1" or meta.get("cgi") == "1":
        w("The same WSGI hello file for all three WSGI servers: gatehouse `wsgi:FILE` (default pool), "
          "uWSGI `--master --processes 2`, flup's threaded `WSGIServer` (a thread per connection). "
          "uWSGI, flup and fcgiwrap are measured one connection per request: uWSGI closes after every "
          "response whatever FCGI_KEEP_CONN says, flup keeps the connection but answers a kept-alive "
          "request only after ~40 ms (small writes without TCP_NODELAY meet delayed ACKs: 112 req/s "
          "at c=16 when tried), and fcgiwrap's 2 children each hold one kept-alive connection and "
          "starve the others. CGI: the same `/bin/sh` script printing the hello for gatehouse "
          "`cgi:FILE` and for fcgiwrap `-c 2` (which gets it as SCRIPT_FILENAME).")
        if meta.get("wsgi") != "1" or meta.get("cgi") != "1":
            w("")
            w("TODO: only part of scenario 6 ran: the binary lacks " +
              ("`wsgi:`" if meta.get("wsgi") != "1" else "`cgi:`") + " apps.")
    else:
        w("TODO: not measured. The `gatehouse` binary built for this run does not serve `wsgi:...` or "
          "`cgi:...` apps yet (its `--help` lists only hello, echo and env), so there is nothing of ours "
          "to put beside uWSGI, flup and fcgiwrap. When they are wired: a WSGI hello "
          "(gatehouse `wsgi:` vs uWSGI `--fastcgi-socket` vs flup's threaded `WSGIServer`), and a CGI "
          "shell hello (gatehouse `cgi:` vs fcgiwrap), each direct with gatehouse-bench and through nginx.")
    w("")

settings_done = False
for scenario, configs in groups.items():
    if scenario.startswith("6") and not settings_done:
        peers_settings()
        settings_done = True
    if scenario.startswith(("4.", "5.")):
        special(scenario, configs)
    else:
        generic(scenario, configs)
if not settings_done:
    peers_settings()

if meta.get("scgi") != "1" or meta.get("http") != "1":
    w("## 3. SCGI and HTTP: skipped parts")
    w("")
    missing = [name for name, key in (("`--scgi`", "scgi"), ("`--http`", "http")) if meta.get(key) != "1"]
    w(f"The `gatehouse` binary built for this run has no {' and no '.join(missing)} listener "
      "(`gatehouse --help`), so those rows are missing. The front ends exist as crates "
      "(crates/scgi, crates/http) and gatehouse-bench speaks both (`--scgi`, `--http`); "
      "`benches/run.sh` measures them as soon as the binary has the flags.")
    w("")
w("## Profile")
w("")
prof = open(profile_path).read() if os.path.exists(profile_path) else ""
if prof.strip():
    w("`valgrind --tool=callgrind` on `gatehouse hello --fastcgi` while gatehouse-bench sends 20,000 "
      "requests over 16 kept-alive connections (`perf stat -e instructions` is not supported on this "
      "machine). Exclusive instruction counts, top functions:")
    w("")
    def clean(line):
        line = re.sub(r"/root/\.cargo/registry/src/[^/]+/", "", line)
        line = re.sub(r"/rustc/[0-9a-f]+/", "", line)
        line = re.sub(r" \[[^\]]*\]$", "", line)
        return line.replace("/work/main/", "")[:160]
    def table(text, limit, only=None):
        out, on = [], False
        for line in text.splitlines():
            if "PROGRAM TOTALS" in line:
                out.append(clean(line))
            if line.startswith("Ir ") and "file:function" in line:
                on = True
                continue
            if on and re.match(r"^\s*[0-9,]+ \(", line) and (only is None or re.search(only, clean(line))):
                out.append(clean(line))
        return out[:limit]
    w("```text")
    w("\n".join(table(prof, 31)))
    w("```")
    incl = profile_path + ".incl"
    if os.path.exists(incl):
        w("")
        w("Inclusive counts, our code only (a function's share includes what it calls):")
        w("")
        w("```text")
        w("\n".join(table(open(incl).read(), 26, r"%\)\s+(crates|src)/")))
        w("```")
    bench = profile_path + ".bench"
    if os.path.exists(bench):
        w("")
        w("The profiled run, as gatehouse-bench saw it (callgrind slows the daemon about 20x):")
        w("")
        w("```text")
        w(open(bench).read().rstrip())
        w("```")
else:
    w("Not run (PROFILE=0 or valgrind missing).")
w("")

notes = ("<!-- notes:start -->\n## Notes\n\n(Hand-written analysis goes here; kept across regenerations.)\n"
         "<!-- notes:end -->")
if os.path.exists(out_path):
    old = open(out_path).read()
    m = re.search(r"<!-- notes:start -->.*?<!-- notes:end -->", old, re.S)
    if m:
        notes = m.group(0)
w(notes)
w("")
open(out_path, "w").write("\n".join(md))

# ---- SVG: two panels of horizontal bars (median) with min-max whiskers.
label_w, panel_w, row_h, top = 430, 330, 18, 46
n = len(chart)
height = top + n * row_h + 30
width = label_w + 2 * panel_w + 40
def esc(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
max_rps = max([c[1][2] for c in chart if c[1]] + [1])
max_p99 = max([c[2][2] for c in chart if c[2]] + [1])
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">',
       f'<rect width="{width}" height="{height}" fill="white"/>',
       f'<text x="10" y="18" font-size="14" font-weight="bold">gatehouse benchmarks, {esc(meta.get("date", ""))} '
       f'(median of {esc(meta.get("reps", ""))}, whiskers min-max)</text>',
       f'<text x="{label_w}" y="38" font-weight="bold">requests/s</text>',
       f'<text x="{label_w + panel_w + 20}" y="38" font-weight="bold">p99 latency (log scale from 10 µs)</text>']
for i, (label, rps, p99) in enumerate(chart):
    y = top + i * row_h
    if i % 2 == 0:
        svg.append(f'<rect x="0" y="{y - 2}" width="{width}" height="{row_h}" fill="#f4f4f4"/>')
    svg.append(f'<text x="{label_w - 6}" y="{y + 11}" text-anchor="end">{esc(label)}</text>')
    for x0, s, color, unit in ((label_w, rps, "#3a7bd5", "rps"), (label_w + panel_w + 20, p99, "#d5693a", "us")):
        if not s:
            continue
        span = panel_w - 90
        if unit == "rps":
            pos = lambda v: v / max_rps * span
        else:  # log scale from 10 us to the largest p99
            lo = 10.0
            pos = lambda v: max(0.0, math.log10(max(v, lo) / lo) / math.log10(max(max_p99, lo * 10) / lo)) * span
        bw = max(1, pos(s[0]))
        svg.append(f'<rect x="{x0}" y="{y + 2}" width="{bw:.1f}" height="{row_h - 6}" fill="{color}"/>')
        svg.append(f'<line x1="{x0 + pos(s[1]):.1f}" x2="{x0 + pos(s[2]):.1f}" y1="{y + row_h / 2 - 1}" '
                   f'y2="{y + row_h / 2 - 1}" stroke="black"/>')
        text = f"{s[0]:,.0f}" if unit == "rps" else fmt_us(s[0])
        svg.append(f'<text x="{x0 + max(bw, pos(s[2])) + 4:.1f}" y="{y + 11}">{esc(text)}</text>')
svg.append("</svg>")
os.makedirs(os.path.dirname(svg_path) or ".", exist_ok=True)
open(svg_path, "w").write("\n".join(svg) + "\n")
PY
}

# ---------------------------------------------------------------------------------------------

install_peers
# The commit the binaries are built from, taken now: the tree may move during the run.
COMMIT="$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src crates 2>/dev/null || echo '+dirty')"
log "building (cargo build --release; gatehouse-bench)"
cargo build --release --quiet
cargo build --release --quiet -p gatehouse-bench
WORK=$(mktemp -d /tmp/gatehouse-report.XXXXXX)
RESULTS=$WORK/results.tsv
: >"$RESULTS"
trap cleanup EXIT
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
START=$(date +%s)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

GH_PORT=$(free_port) UW_PORT=$(free_port) NGINX_PORT=$(free_port)
start_bg "$WORK/gatehouse.log" "$GH" hello --fastcgi "127.0.0.1:$GH_PORT" --log-level warn
GH_PID=$BG_PID

cat >"$WORK/hello.py" <<'PY'
def application(environ, start_response):
    body = b"Hello, world!\n"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
PY
UWSGI_ARGS=(--plugin python3 --master --processes 2 --listen 1024 --wsgi-file "$WORK/hello.py"
    --need-app --disable-logging --die-on-term)
start_bg "$WORK/uwsgi.log" uwsgi "${UWSGI_ARGS[@]}" --fastcgi-socket "127.0.0.1:$UW_PORT"
UW_PID=$BG_PID

SCGI=0 HTTP=0
if has_flag '--scgi'; then SCGI=1; fi
if has_flag '--http'; then HTTP=1; fi
EXTRA_NGINX=""
if ((SCGI)); then
    GH_SCGI_PORT=$(free_port)
    start_bg "$WORK/gatehouse-scgi.log" "$GH" hello --scgi "127.0.0.1:$GH_SCGI_PORT" --log-level warn
    GH_SCGI_PID=$BG_PID
    EXTRA_NGINX="location = /scgi { include /etc/nginx/scgi_params; scgi_pass 127.0.0.1:$GH_SCGI_PORT; }"
fi
if ((HTTP)); then
    GH_HTTP_PORT=$(free_port)
    start_bg "$WORK/gatehouse-http.log" "$GH" hello --http "127.0.0.1:$GH_HTTP_PORT" --log-level warn
    GH_HTTP_PID=$BG_PID
fi

# 6. WSGI and CGI apps and their peers, when the binary serves wsgi:/cgi: apps.
WSGI=0 CGI=0
if has_flag 'wsgi:'; then WSGI=1; fi
if has_flag 'cgi:'; then CGI=1; fi
EXTRA_UPSTREAMS=""
if ((WSGI)); then
    GH_WSGI_PORT=$(free_port) FLUP_PORT=$(free_port)
    start_bg "$WORK/gatehouse-wsgi.log" "$GH" "wsgi:$WORK/hello.py" --fastcgi "127.0.0.1:$GH_WSGI_PORT" --log-level warn
    GH_WSGI_PID=$BG_PID
    cat >"$WORK/flup_run.py" <<'PY'
import runpy, sys
from flup.server.fcgi import WSGIServer  # threaded, one thread per connection
app = runpy.run_path(sys.argv[1])["application"]
WSGIServer(app, bindAddress=("127.0.0.1", int(sys.argv[2]))).run()
PY
    start_bg "$WORK/flup.log" python3 "$WORK/flup_run.py" "$WORK/hello.py" "$FLUP_PORT"
    FLUP_PID=$BG_PID
    EXTRA_UPSTREAMS+="upstream wsgi_keepalive { server 127.0.0.1:$GH_WSGI_PORT; keepalive 64; }"
    EXTRA_NGINX+="
        location = /wsgi-gatehouse { include /etc/nginx/fastcgi_params; fastcgi_keep_conn on; fastcgi_pass wsgi_keepalive; }
        location = /wsgi-flup { include /etc/nginx/fastcgi_params; fastcgi_pass 127.0.0.1:$FLUP_PORT; }"
fi
if ((CGI)); then
    mkdir -p "$WORK/cgi-bin"
    printf '#!/bin/sh\nprintf "Content-Type: text/plain\\r\\n\\r\\nHello, world!\\n"\n' >"$WORK/cgi-bin/hello.sh"
    chmod 755 "$WORK/cgi-bin/hello.sh"
    GH_CGI_PORT=$(free_port) FW_PORT=$(free_port)
    start_bg "$WORK/gatehouse-cgi.log" "$GH" "cgi:$WORK/cgi-bin/hello.sh" --fastcgi "127.0.0.1:$GH_CGI_PORT" --log-level warn
    GH_CGI_PID=$BG_PID
    start_bg "$WORK/fcgiwrap.log" fcgiwrap -c 2 -s "tcp:127.0.0.1:$FW_PORT"
    FW_PID=$BG_PID
    EXTRA_UPSTREAMS+=" upstream cgi_keepalive { server 127.0.0.1:$GH_CGI_PORT; keepalive 64; }"
    EXTRA_NGINX+="
        location = /cgi-gatehouse { include /etc/nginx/fastcgi_params; fastcgi_keep_conn on; fastcgi_pass cgi_keepalive; }
        location = /cgi-fcgiwrap {
            include /etc/nginx/fastcgi_params;
            fastcgi_param SCRIPT_FILENAME $WORK/cgi-bin/hello.sh;
            fastcgi_pass 127.0.0.1:$FW_PORT;
        }"
fi

cat >"$WORK/nginx.conf" <<EOF
user root;
worker_processes 1;
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log warn;
worker_rlimit_nofile 65536;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK/client_body;
    fastcgi_temp_path $WORK/fastcgi;
    proxy_temp_path $WORK/proxy;
    scgi_temp_path $WORK/scgi;
    uwsgi_temp_path $WORK/uwsgi;
    upstream gatehouse_keepalive { server 127.0.0.1:$GH_PORT; keepalive 256; }
    $EXTRA_UPSTREAMS
    server {
        listen 127.0.0.1:$NGINX_PORT backlog=4096;
        location = /ceiling { default_type text/plain; return 200 "Hello, world!\n"; }
        location = /gatehouse-plain { include /etc/nginx/fastcgi_params; fastcgi_pass 127.0.0.1:$GH_PORT; }
        location = /gatehouse-keepalive {
            include /etc/nginx/fastcgi_params;
            fastcgi_keep_conn on;
            fastcgi_pass gatehouse_keepalive;
        }
        location = /uwsgi-plain { include /etc/nginx/fastcgi_params; fastcgi_pass 127.0.0.1:$UW_PORT; }
        $EXTRA_NGINX
    }
}
EOF
start_bg "$WORK/nginx.log" nginx -p "$WORK" -e "$WORK/nginx-error.log" -c "$WORK/nginx.conf"
NGINX_PID=$BG_PID
wait_port "$GH_PORT"
wait_port "$UW_PORT"
wait_port "$NGINX_PORT"
((SCGI)) && wait_port "$GH_SCGI_PORT"
((HTTP)) && wait_port "$GH_HTTP_PORT"
((WSGI)) && wait_port "$GH_WSGI_PORT" && wait_port "$FLUP_PORT"
((CGI)) && wait_port "$GH_CGI_PORT" && wait_port "$FW_PORT"
NG=http://127.0.0.1:$NGINX_PORT
for path in ceiling gatehouse-plain gatehouse-keepalive uwsgi-plain $( ((SCGI)) && echo scgi) \
    $( ((WSGI)) && echo wsgi-gatehouse wsgi-flup) $( ((CGI)) && echo cgi-gatehouse cgi-fcgiwrap); do
    body=$(curl -s "$NG/$path" || true)
    [[ $body == "Hello, world!" ]] || log "warning: /$path answered ${body@Q}"
done

FC=(--fastcgi "127.0.0.1:$GH_PORT" --expect-body "$HELLO")
UW=(--fastcgi "127.0.0.1:$UW_PORT" --expect-body "$HELLO" --no-keep-conn)
for rep in $(seq 1 "$REPS"); do
    log "=== repetition $rep of $REPS"
    S1="1. FastCGI hello, direct (gatehouse-bench)"
    for c in 1 16 256; do
        ghb "$S1" "c=$c keep-conn" gatehouse "$rep" "$GH_PID" "${FC[@]}" -c "$c"
        ghb "$S1" "c=$c one conn per request" gatehouse "$rep" "$GH_PID" "${FC[@]}" -c "$c" --no-keep-conn
        ghb "$S1" "c=$c one conn per request" "uWSGI 2 procs" "$rep" "$UW_PID" "${UW[@]}" -c "$c"
    done
    ghb "$S1" "c=16 x multiplex 8" gatehouse "$rep" "$GH_PID" "${FC[@]}" -c 16 --multiplex 8
    ghb "$S1" "c=1 x multiplex 16" gatehouse "$rep" "$GH_PID" "${FC[@]}" -c 1 --multiplex 16

    S2="2. FastCGI hello through nginx (wrk)"
    for c in 1 16 256; do
        wrk_run "$S2" "c=$c" "nginx return 200 (ceiling)" "$rep" - "$c" "$NG/ceiling"
        wrk_run "$S2" "c=$c" "gatehouse keep_conn" "$rep" "$GH_PID" "$c" "$NG/gatehouse-keepalive"
        wrk_run "$S2" "c=$c" "gatehouse plain" "$rep" "$GH_PID" "$c" "$NG/gatehouse-plain"
        wrk_run "$S2" "c=$c" "uWSGI 2 procs" "$rep" "$UW_PID" "$c" "$NG/uwsgi-plain"
    done

    S3="3. SCGI and HTTP hello"
    if ((SCGI)); then
        ghb "$S3" "SCGI direct c=16" gatehouse "$rep" "$GH_SCGI_PID" --scgi "127.0.0.1:$GH_SCGI_PORT" --expect-body "$HELLO" -c 16
        wrk_run "$S3" "SCGI through nginx c=16" gatehouse "$rep" "$GH_SCGI_PID" 16 "$NG/scgi"
    fi
    if ((HTTP)); then
        ghb "$S3" "HTTP direct c=16" gatehouse "$rep" "$GH_HTTP_PID" --http "http://127.0.0.1:$GH_HTTP_PORT/" --expect-body "$HELLO" -c 16
        wrk_run "$S3" "HTTP direct c=16" "gatehouse (wrk)" "$rep" "$GH_HTTP_PID" 16 "http://127.0.0.1:$GH_HTTP_PORT/"
    fi

    if ((WSGI)); then
        S6="6a. WSGI hello, direct (gatehouse-bench)"
        GW=(--fastcgi "127.0.0.1:$GH_WSGI_PORT" --expect-body "$HELLO" -c 16)
        ghb "$S6" "c=16 keep-conn" "gatehouse wsgi:" "$rep" "$GH_WSGI_PID" "${GW[@]}"
        ghb "$S6" "c=16 one conn per request" "gatehouse wsgi:" "$rep" "$GH_WSGI_PID" "${GW[@]}" --no-keep-conn
        ghb "$S6" "c=16 one conn per request" "uWSGI 2 procs" "$rep" "$UW_PID" "${UW[@]}" -c 16
        ghb "$S6" "c=16 one conn per request" "flup threaded" "$rep" "$FLUP_PID" \
            --fastcgi "127.0.0.1:$FLUP_PORT" --expect-body "$HELLO" -c 16 --no-keep-conn
        S6B="6b. WSGI hello through nginx (wrk)"
        wrk_run "$S6B" "c=16" "gatehouse wsgi: keep_conn" "$rep" "$GH_WSGI_PID" 16 "$NG/wsgi-gatehouse"
        wrk_run "$S6B" "c=16" "uWSGI 2 procs" "$rep" "$UW_PID" 16 "$NG/uwsgi-plain"
        wrk_run "$S6B" "c=16" "flup threaded" "$rep" "$FLUP_PID" 16 "$NG/wsgi-flup"
    fi
    if ((CGI)); then
        S6C="6c. CGI hello (a shell script per request)"
        GC=(--fastcgi "127.0.0.1:$GH_CGI_PORT" --expect-body "$HELLO" -c 16)
        ghb "$S6C" "direct c=16 keep-conn" "gatehouse cgi:" "$rep" "$GH_CGI_PID" "${GC[@]}"
        ghb "$S6C" "direct c=16 one conn per request" "gatehouse cgi:" "$rep" "$GH_CGI_PID" "${GC[@]}" --no-keep-conn
        ghb "$S6C" "direct c=16 one conn per request" "fcgiwrap -c 2" "$rep" "$FW_PID" \
            --fastcgi "127.0.0.1:$FW_PORT" -P "SCRIPT_FILENAME=$WORK/cgi-bin/hello.sh" --expect-body "$HELLO" \
            -c 16 --no-keep-conn
        wrk_run "$S6C" "nginx c=16" "gatehouse cgi: keep_conn" "$rep" "$GH_CGI_PID" 16 "$NG/cgi-gatehouse"
        wrk_run "$S6C" "nginx c=16" "fcgiwrap -c 2" "$rep" "$FW_PID" 16 "$NG/cgi-fcgiwrap"
    fi

    SC="0. Calibration: nginx return 200, two load generators (daemon CPU = nginx)"
    wrk_run "$SC" "c=16" "wrk" "$rep" "$NGINX_PID" 16 "$NG/ceiling"
    ghb "$SC" "c=16" "gatehouse-bench --http" "$rep" "$NGINX_PID" --http "$NG/ceiling" --expect-body "$HELLO" -c 16
done

# 4. 10 MiB POST to echo: a fresh daemon per repetition, so VmHWM is this scenario's peak.
S4="4. 10 MiB POST to echo (gatehouse-bench direct)"
for rep in $(seq 1 "$REPS"); do
    for c in 1 4; do
        port=$(free_port)
        start_bg "$WORK/echo.log" "$GH" echo --fastcgi "127.0.0.1:$port" --log-level warn
        pid=$BG_PID
        wait_port "$port"
        base=$(status_kib "$pid" VmRSS)
        t0=$(cpu_ticks "$pid")
        json=$("$BENCH" --fastcgi "127.0.0.1:$port" -c "$c" -d "${DURATION}s" \
            --body-size 10MiB --json -q 2>>"$WORK/bench-stderr.log") || true
        [[ -n $json ]] || json='{}'
        t1=$(cpu_ticks "$pid")
        hwm=$(status_kib "$pid" VmHWM)
        stop_pid "$pid"
        read -r n rps p99 errors mibs < <(jq -r '[.requests, .requests_per_sec, .latency_us.p99, .errors,
            (.bytes_out_per_sec / 1048576)] | @tsv' <<<"$json")
        row "$S4" "c=$c" gatehouse "$rep" "${rps:-0}" "${p99:-0}" "${errors:-1}" \
            "$(per_req_us $((t1 - t0)) "${n:-0}")" "" "" "mib_s=${mibs:-0};base_kib=$base;hwm_kib=$hwm"
        log "$S4 c=$c rep $rep: ${mibs:-0} MiB/s, VmHWM $hwm KiB (start $base KiB)"
    done
done

# 5. Idle kept-alive connections: RSS with them held, minus RSS after one request.
S5="5. $IDLE_CONNS idle kept-alive FastCGI connections"
for rep in $(seq 1 "$REPS"); do
    port=$(free_port)
    start_bg "$WORK/idle.log" "$GH" hello --fastcgi "127.0.0.1:$port" --log-level warn \
        --max-conns $((IDLE_CONNS * 2)) --backlog 4096
    pid=$BG_PID
    wait_port "$port"
    "$BENCH" --fastcgi "127.0.0.1:$port" -c 1 -n 10 -q >/dev/null 2>&1 || true
    base=$(status_kib "$pid" VmRSS)
    : >"$WORK/idle-bench.err"
    "$BENCH" --fastcgi "127.0.0.1:$port" -c "$IDLE_CONNS" --idle-hold 6s --timeout 30s --json \
        >"$WORK/idle-bench.json" 2>"$WORK/idle-bench.err" &
    bpid=$!
    for _ in $(seq 1 600); do
        grep -q 'holding' "$WORK/idle-bench.err" && break
        kill -0 "$bpid" 2>/dev/null || break
        sleep 0.1
    done
    sleep 2
    held_rss=$(status_kib "$pid" VmRSS)
    fds=$(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
    wait "$bpid" || true
    stop_pid "$pid"
    held=$(jq -r '.held_connections // 0' "$WORK/idle-bench.json" 2>/dev/null || echo 0)
    errors=$(jq -r '.errors // 1' "$WORK/idle-bench.json" 2>/dev/null || echo 1)
    per=$(awk -v a="$held_rss" -v b="$base" -v n="$held" 'BEGIN { if (n > 0) printf "%.2f", (a - b) / n; else print 0 }')
    row "$S5" "c=$IDLE_CONNS" gatehouse "$rep" 0 0 "$errors" "" "" "" \
        "held=$held;fds=$fds;base_kib=$base;held_kib=$held_rss;kib_per_conn=$per"
    log "$S5 rep $rep: held $held, RSS $base -> $held_rss KiB = $per KiB per connection"
done


# Profile: the daemon under callgrind, FastCGI hello, 16 kept-alive connections.
PROFILE_TXT=$WORK/profile.txt
: >"$PROFILE_TXT"
if ((PROFILE)) && command -v valgrind >/dev/null; then
    log "profiling the daemon with callgrind"
    port=$(free_port)
    start_bg "$WORK/callgrind.log" valgrind --tool=callgrind --callgrind-out-file="$WORK/callgrind.out" \
        "$GH" hello --fastcgi "127.0.0.1:$port" --log-level warn
    pid=$BG_PID
    wait_port "$port"
    "$BENCH" --fastcgi "127.0.0.1:$port" -c 16 -n 20000 --timeout 60s -q --expect-body "$HELLO" \
        >"$WORK/callgrind-bench.txt" 2>&1 || true
    stop_pid "$pid"
    callgrind_annotate --inclusive=no "$WORK/callgrind.out" 2>/dev/null | head -60 >"$PROFILE_TXT" || true
    callgrind_annotate --inclusive=yes "$WORK/callgrind.out" 2>/dev/null | head -120 >"$PROFILE_TXT.incl" || true
    sed -n 1,6p "$WORK/callgrind-bench.txt" >"$PROFILE_TXT.bench" || true
fi

END=$(date +%s)
log "measurements done in $((END - START)) s; writing $OUT and $DATA/"

META=$WORK/meta.txt
{
    echo "date=$(date -u +%Y-%m-%dT%H:%MZ)"
    echo "commit=$COMMIT"
    echo "cpus=$(nproc)"
    echo "cpu_model=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"
    echo "kernel=$(uname -r)"
    echo "nginx=$(nginx -v 2>&1 | sed 's/.*\///')"
    echo "wrk=$(wrk -v 2>&1 | head -1 | awk '{print $2}')"
    echo "uwsgi=$(uwsgi --version 2>/dev/null)"
    echo "reps=$REPS"
    echo "duration=$DURATION"
    echo "warmup=$WARMUP"
    echo "elapsed=$((END - START))"
    echo "load_before=$LOAD_BEFORE"
    echo "load_after=$(cut -d' ' -f1-3 /proc/loadavg)"
    echo "scgi=$SCGI"
    echo "http=$HTTP"
    echo "wsgi=$WSGI"
    echo "cgi=$CGI"
    echo "idle_conns=$IDLE_CONNS"
} >"$META"
mkdir -p "$DATA"
cp "$RESULTS" "$DATA/results.tsv"
write_report "$RESULTS" "$META" "$PROFILE_TXT" "$OUT" "$DATA/benchmarks.svg"
log "done: $OUT"
