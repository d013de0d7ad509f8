# Helpers shared by the benchmark scripts (sourced from the repository's top, after `cd`).

# A free loopback TCP port.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Waits up to 30 s for something to listen on loopback port $1.
wait_port() { # port
    local i
    for i in $(seq 1 300); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    if declare -F log >/dev/null; then
        log "nothing listens on port $1"
    else
        echo "nothing listens on port $1" >&2
    fi
    return 1
}

# The PIDs of a process's descendants, depth first.
descendants() { # pid
    local child
    for child in $(cat /proc/"$1"/task/*/children 2>/dev/null); do
        echo "$child"
        descendants "$child"
    done
}

# CPU ticks (utime + stime) of a process and its live descendants (children already reaped are
# not counted).
cpu_ticks() { # pid
    local total=0 pid stat rest f
    for pid in $1 $(descendants "$1"); do
        stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
        rest=${stat##*) }                         # fields from 3 on (the name may hold spaces)
        read -r -a f <<<"$rest"
        total=$((total + f[11] + f[12]))          # fields 14 and 15: utime, stime
    done
    echo "$total"
}
