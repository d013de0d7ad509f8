#!/usr/bin/env bash
# Start-up time of one CGI request: the median wall time, over RUNS (default 50) runs, of the
# release build of the `gatehouse-cgi-echo` example serving one GET (and one 1 KiB POST) from a
# CGI environment, from spawn to exit, as a web server sees it. For scale it also times
# /bin/true under the same harness (the cost of fork+exec+wait alone).
#
# A measurement, not a test: run it on a quiet machine. Usage: crates/cgi/bench-startup.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

runs="${RUNS:-50}"
cargo build --quiet --release -p gatehouse-cgi --example gatehouse-cgi-echo
bin="$(cargo metadata --format-version 1 --no-deps \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/examples/gatehouse-cgi-echo"

python3 - "$bin" "$runs" <<'PY'
import resource, statistics, subprocess, sys, time

binary, runs = sys.argv[1], int(sys.argv[2])
base_env = {
    "GATEWAY_INTERFACE": "CGI/1.1",
    "SERVER_PROTOCOL": "HTTP/1.1",
    "SERVER_SOFTWARE": "bench",
    "SERVER_NAME": "localhost",
    "SERVER_PORT": "80",
    "REMOTE_ADDR": "127.0.0.1",
    "SCRIPT_NAME": "/cgi-bin/echo",
    "PATH_INFO": "/hello",
    "QUERY_STRING": "a=1",
    "HTTP_HOST": "localhost",
    "HTTP_USER_AGENT": "bench-startup",
}

def once(argv, env, body, check):
    """Wall time and child CPU time (user+sys) of one run, in ms."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter_ns()
    done = subprocess.run(argv, env=env, input=body, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wall = (time.perf_counter_ns() - start) / 1e6
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if check and (done.returncode != 0 or not done.stdout.startswith(b"Status: 200")):
        sys.exit(f"bad run of {argv[0]}: exit {done.returncode}, {done.stdout[:80]!r} {done.stderr!r}")
    cpu = ((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)) * 1e3
    return wall, cpu

get_env = dict(base_env, REQUEST_METHOD="GET")
post_body = b"x" * 1024
post_env = dict(base_env, REQUEST_METHOD="POST", CONTENT_LENGTH=str(len(post_body)),
                CONTENT_TYPE="application/octet-stream")
cases = [
    ("echo GET", [binary], get_env, b"", True),
    ("echo POST 1 KiB", [binary], post_env, post_body, True),
    ("/bin/true (spawn floor)", ["/bin/true"], get_env, b"", False),
]
samples = {name: ([], []) for name, *_ in cases}
# Interleaved, so a burst of load on the machine hits every case alike; 3 warm-up rounds.
for i in range(runs + 3):
    for name, argv, env, body, check in cases:
        wall, cpu = once(argv, env, body, check)
        if i >= 3:
            samples[name][0].append(wall)
            samples[name][1].append(cpu)
rows = [(name, (statistics.median(w), min(w), max(w), statistics.median(c)))
        for name, (w, c) in samples.items()]
print(f"CGI start-up, {runs} runs each, ms: wall median / min / max, child CPU median")
for name, (med, lo, hi, cpu) in rows:
    print(f"  {name:<26} {med:7.3f} / {lo:7.3f} / {hi:7.3f}   cpu {cpu:6.3f}")
print(f"median of one CGI request (echo GET): {rows[0][1][0]:.3f} ms wall, "
      f"{rows[0][1][3]:.3f} ms CPU ({rows[0][1][0] - rows[2][1][0]:.3f} ms above the spawn floor)")
PY
