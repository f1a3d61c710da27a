#!/bin/bash
# usage: bench/perf/cg-peer.sh nginx|haproxy|floor LABEL [SECONDS] [CONNS]
# cg.sh for the peers: runs nginx, HAProxy or the floor (bench/floor, built
# with `cargo build --release` there) under callgrind as a plain-HTTP reverse
# proxy in front of setup.sh's two backends (the bench harness's configuration
# with one worker, see tls_peer.py), warms up, zeroes, sends
# wrk -t1 -cCONNS for SECONDS, dumps, and prints Ir per request, so the
# peers' counts come from the same session and method as Portcullis's.
set -u
PEER=$1; LABEL=$2; N=${3:-15}; C=${4:-10}
PB=${PB:-/tmp/pb}; HERE=$(cd "$(dirname "$0")" && pwd); . "$HERE/lib.sh"
. "$PB/ports" || { echo "run bench/perf/setup.sh first" >&2; exit 1; }
D=$PB/peer-$LABEL; rm -rf "$D"; mkdir -p "$D"
case $PEER in
  nginx|haproxy) EXE=$(command -v "$PEER" || echo "/usr/sbin/$PEER") ;;
  floor) EXE=$HERE/../floor/target/release/floor
    [ -x "$EXE" ] || { echo "build bench/floor first (cargo build --release there)" >&2; exit 1; } ;;
  *) echo "PEER is nginx, haproxy or floor (for Portcullis use cg.sh)" >&2; exit 2 ;;
esac
PORT=$(free_ports 1); URL=http://127.0.0.1:$PORT/
if [ "$PEER" = floor ]; then
  export FLOOR_WORKERS=1
  ARGS="127.0.0.1:$PORT 127.0.0.1:$B1_PORT 127.0.0.1:$B2_PORT"
else
  ARGS=$(python3 "$HERE/tls_peer.py" "$PEER" "$D" "$PORT" - - "$B1_PORT" "$B2_PORT") || exit 1
fi
ulimit -n 20000
# shellcheck disable=SC2086 # ARGS is a word list
setsid valgrind --tool=callgrind --callgrind-out-file="$D/cg.%p" "$EXE" $ARGS > "$D/peer.log" 2>&1 &
VPID=$!
for _ in $(seq 1 120); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "$URL")" = 200 ] && break
  sleep 0.5
done
wrk -t1 -c"$C" -d2s "$URL" > /dev/null
callgrind_control -z "$VPID" > /dev/null 2>&1
wrk -t1 -c"$C" -d"${N}s" "$URL" > "$D/wrk.txt"
callgrind_control -d "$VPID" > /dev/null 2>&1
sleep 1
kill -TERM "$VPID"; wait "$VPID" 2>/dev/null
REQS=$(grep -oP '^\s*\K\d+(?= requests in)' "$D/wrk.txt")
IR=$(awk '/^(summary|totals):/ { print $2; exit }' "$D/cg.$VPID.1")
echo "$LABEL reqs=$REQS Ir=$IR Ir/req=$((IR / REQS))"
grep -E 'Non-2xx|Socket errors' "$D/wrk.txt"
