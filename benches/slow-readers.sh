#!/usr/bin/env bash
# Benchmark: the daemon's memory and app capacity with many slow readers of a large answer
# (issue 12, "slow readers pin app capacity and memory").
#
# One gatehouse (the release binary, HTTP front end on loopback, default response buffering
# unless SPOOL=off) serves /cgi (a CGI script printing 10 MiB, --cgi-max $CGI_MAX) and /wsgi
# (fixtures/apps/big_answer.py: 10 pieces of 1 MiB, --threads $THREADS). $READERS clients with a
# 16 KiB receive buffer each ask for one 10 MiB answer (half CGI, half WSGI), read its first
# 64 KiB and stop reading. Printed: the daemon's VmRSS before and with them, its open spill
# files, and, while they all hold, the latency of $PROBES sequential small requests to the CGI
# script and to the WSGI app (what the other clients of the apps see). Then the readers close.
#
# Usage: benches/slow-readers.sh   (builds target/release/gatehouse with cargo)
# Env:   READERS=1000 PROBES=20 CGI_MAX=2 THREADS=2 SPOOL=http|off
#        GATEHOUSE=path/to/gatehouse: that binary instead of building one
# Disk: each reader's answer waits in a spill file, so about READERS x 10 MiB (10 GB for 1,000)
# must be free in $TMPDIR. Only loopback traffic; the spool directory is a temp dir; every
# process is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
READERS=${READERS:-1000} PROBES=${PROBES:-20} CGI_MAX=${CGI_MAX:-2} THREADS=${THREADS:-2}
SPOOL=${SPOOL:-http}
if [ -z "${GATEHOUSE:-}" ]; then
    cargo build --release --quiet
    GATEHOUSE=target/release/gatehouse
fi
ulimit -n "$((READERS * 2 + 256))"
tmp=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$tmp"' EXIT
mkdir "$tmp/cgi" "$tmp/spool"
printf '#!/bin/sh\nprintf "Content-Type: text/plain\\r\\n\\r\\n"\nif [ "$QUERY_STRING" = small ]; then echo small; else exec head -c 10485760 /dev/zero; fi\n' >"$tmp/cgi/big.sh"
chmod 755 "$tmp/cgi/big.sh" "$tmp/cgi" "$tmp"
"$GATEHOUSE" --mount "/cgi=cgi:$tmp/cgi" --mount "/wsgi=wsgi:$PWD/fixtures/apps/big_answer.py" \
    --http 127.0.0.1:0 --cgi-max "$CGI_MAX" --threads "$THREADS" --max-conns $((READERS + 64)) \
    --spool-dir "$tmp/spool" --spool-response "$SPOOL" 2>"$tmp/log" &
pid=$!
for _ in $(seq 100); do grep -q 'listening on http' "$tmp/log" && break; sleep 0.1; done
addr=$(sed -n 's/.*listening on http //p' "$tmp/log" | head -1)
python3 - "$addr" "$pid" "$tmp/spool" "$READERS" "$PROBES" <<'PY'
import os, socket, sys, time
addr, pid, spool, readers, probes = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
host, port = addr.rsplit(":", 1); port = int(port)
def rss():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
def spill_files():
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            n += os.readlink(f"/proc/{pid}/fd/{fd}").startswith(spool)
        except OSError:
            pass
    return n
def get(path):
    t = time.monotonic()
    s = socket.create_connection((host, port), timeout=300)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n".encode())
    while s.recv(65536):
        pass
    s.close()
    return time.monotonic() - t
get("/wsgi/big"); get("/cgi/big.sh")
before = rss()
held = []
t0 = time.monotonic()
for i in range(readers):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    s.settimeout(300)
    s.connect((host, port))
    path = "/cgi/big.sh" if i % 2 else "/wsgi/big"
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n".encode())
    held.append(s)
got = 0
for s in held:
    n = 0
    while n < 65536:
        b = s.recv(65536)
        if not b:
            break
        n += len(b)
    got += n >= 65536
opened = time.monotonic() - t0
def probe(path):
    ts = sorted(get(path) for _ in range(probes))
    return f"median {ts[len(ts)//2]*1000:.0f} ms, max {ts[-1]*1000:.0f} ms"
print(f"readers holding: {got}/{readers} (started in {opened:.1f} s)")
print(f"small CGI requests meanwhile:  {probe('/cgi/big.sh?small')}")
print(f"small WSGI requests meanwhile: {probe('/wsgi/small')}")
during = rss()
print(f"daemon VmRSS: {before} KiB before, {during} KiB with the readers (+{during - before} KiB, {(during - before) / readers:.0f} KiB each)")
print(f"spill files open: {spill_files()}")
for s in held:
    s.close()
PY
