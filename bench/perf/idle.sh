#!/bin/bash
# usage: idle.sh BINARY N  -- gateway with 2 workers on a free loopback port; N idle keep-alive conns; prints bytes/conn
# THP=off starts the gateway with transparent huge pages disabled for it
# (prctl PR_SET_THP_DISABLE, inherited across exec): mimalloc asks for huge
# pages on its arenas, so with them the RSS grows in 2 MiB steps (about
# 420 B a step at N=5000) and says more about which pages were touched than
# about what the connections hold.
BIN=$1; N=${2:-5000}
PB=${PB:-/tmp/pb}; HERE=$(cd "$(dirname "$0")" && pwd); . "$HERE/lib.sh"; BIN=$(realpath "$BIN"); cd $PB
ulimit -n 20000
GW_PORT=$(free_ports 1); URL=http://127.0.0.1:$GW_PORT/gateway/bench/small/
CFG=$(gateway_config ${CONF:-$PB/gw/portcullis.toml} $GW_PORT)
RUN=()
[ "$THP" = off ] && RUN=(python3 -c 'import ctypes, os, sys; ctypes.CDLL(None).prctl(41, 1, 0, 0, 0); os.execv(sys.argv[1], sys.argv[1:])')
PORTCULLIS_WORKERS=${WORKERS:-2} RUST_LOG=${LOG:-warn} setsid "${RUN[@]}" $BIN serve -c $CFG > gw.idle.log 2>&1 &
P=$!
wait_http $URL 50
wrk -t1 -c50 -d1s $URL > /dev/null
python3 $HERE/idle.py $P $N $GW_PORT
kill -TERM $P; wait $P 2>/dev/null
grep -o 'parked=[0-9]*' gw.idle.log | tail -1
rm -f $CFG
