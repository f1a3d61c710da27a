#!/bin/bash
# usage: bench/perf/sys.sh BINARY|nginx|haproxy|floor LABEL [SECONDS=5] [CONNS=50]
# System calls, context switches and CPU time per request, counted by
# `perf stat` on the proxy process during a bounded wrk run (2 workers, as
# bench/run's steady scenario). Counts, unlike req/s, hardly move when the
# machine is busy. URL_PATH=1m asks setup.sh's backends for 1 MiB bodies;
# PORTCULLIS_PER_CORE passes through to Portcullis.
set -u
PEER=$1; LABEL=$2; N=${3:-5}; C=${4:-50}
PB=${PB:-/tmp/pb}; HERE=$(cd "$(dirname "$0")" && pwd); . "$HERE/lib.sh"
. "$PB/ports" || { echo "run bench/perf/setup.sh first" >&2; exit 1; }
D=$PB/sys-$LABEL; rm -rf "$D"; mkdir -p "$D"
ulimit -n 20000
PORT=$(free_ports 1); SUFFIX=${URL_PATH:-}
case $PEER in
  nginx|haproxy)
    EXE=$(command -v "$PEER" || echo "/usr/sbin/$PEER")
    ARGS=$(python3 "$HERE/tls_peer.py" "$PEER" "$D" "$PORT" - - "$B1_PORT" "$B2_PORT") || exit 1
    # tls_peer.py writes one worker; this tool counts the harness's two
    sed -i -e 's/^worker_processes 1;/worker_processes 2;/' -e 's/^master_process off;//' \
      -e 's/nbthread 1$/nbthread 2/' "$D"/*.conf "$D"/*.cfg 2>/dev/null
    URL=http://127.0.0.1:$PORT/$SUFFIX
    # shellcheck disable=SC2086 # ARGS is a word list
    setsid "$EXE" $ARGS > "$D/peer.log" 2>&1 &
    ;;
  floor)
    EXE=$HERE/../floor/target/release/floor
    [ -x "$EXE" ] || { echo "build bench/floor first (cargo build --release there)" >&2; exit 1; }
    URL=http://127.0.0.1:$PORT/$SUFFIX
    FLOOR_WORKERS=2 setsid "$EXE" "127.0.0.1:$PORT" "127.0.0.1:$B1_PORT" "127.0.0.1:$B2_PORT" > "$D/floor.log" 2>&1 &
    ;;
  *)
    BIN=$(realpath "$PEER")
    URL=http://127.0.0.1:$PORT/gateway/bench/small/$SUFFIX
    CFG=$(gateway_config "${CONF:-$PB/gw/portcullis.toml}" "$PORT")
    PORTCULLIS_WORKERS=2 RUST_LOG=${LOG:-warn} setsid "$BIN" serve -c "$CFG" > "$D/gw.log" 2>&1 &
    ;;
esac
P=$!
wait_http "$URL" 50 || exit 1
wrk -t1 -c"$C" -d1s "$URL" > /dev/null
# nginx with a master: count its workers (children) too
PIDS=$(echo $P $(pgrep -P $P) | tr ' ' ,)
EV=raw_syscalls:sys_enter,syscalls:sys_enter_read,syscalls:sys_enter_write,syscalls:sys_enter_writev,syscalls:sys_enter_readv,syscalls:sys_enter_recvfrom,syscalls:sys_enter_sendto,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_epoll_ctl,syscalls:sys_enter_futex,syscalls:sys_enter_sched_yield,context-switches,cpu-migrations,task-clock
perf stat -x, -e "$EV" -p "$PIDS" -o "$D/perf.csv" -- sleep $((N + 1)) &
PERF=$!
sleep 0.5
# user and system CPU time (clock ticks, /proc/PID/stat fields 14 and 15) of
# the proxy's processes around the measured run: where the time goes when
# hardware counters are not available
ticks() { for p in ${PIDS//,/ }; do awk '{print $14, $15}' /proc/$p/stat 2>/dev/null; done | awk '{u+=$1; s+=$2} END {print u+0, s+0}'; }
T0=$(ticks)
wrk -t1 -c"$C" -d"${N}s" --latency "$URL" > "$D/wrk.txt"
T1=$(ticks)
echo "$T0 $T1 $(getconf CLK_TCK)" > "$D/ticks.txt"
wait $PERF
kill -TERM $P; wait $P 2>/dev/null
[ -n "${CFG:-}" ] && rm -f "$CFG"
REQS=$(grep -oP '^\s*\K\d+(?= requests in)' "$D/wrk.txt")
python3 - "$D/perf.csv" "$REQS" "$LABEL" "$D/wrk.txt" "$D/ticks.txt" <<'PY'
import sys
path, reqs, label, wrk, ticks = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
out = []
u0, s0, u1, s1, hz = (int(x) for x in open(ticks).read().split())
out.append(f"user_us/req={(u1 - u0) * 1e6 / hz / reqs:.2f} sys_us/req={(s1 - s0) * 1e6 / hz / reqs:.2f}")
for line in open(path):
    f = line.strip().split(",")
    if len(f) < 3 or not f[0] or f[0].startswith("#"):
        continue
    try:
        v = float(f[0])
    except ValueError:
        continue
    name = f[2].replace("syscalls:sys_enter_", "").replace("raw_syscalls:sys_enter", "syscalls")
    if name == "task-clock":
        out.append(f"cpu_us/req={v * 1000 / reqs:.2f}")  # perf gives ms
    elif v:
        out.append(f"{name}={v / reqs:.3f}")
rps = next((l.split()[-1] for l in open(wrk) if l.startswith("Requests/sec")), "?")
print(f"{label} reqs={reqs} rps={rps} per request: " + " ".join(out))
PY
grep -E 'Non-2xx|Socket errors' "$D/wrk.txt"
