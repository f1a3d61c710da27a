#!/bin/bash
# usage: idle.sh BINARY N  -- gateway with 2 workers on a free loopback port; N idle keep-alive conns; prints bytes/conn
BIN=$1; N=${2:-5000}
PB=${PB:-/tmp/pb}; HERE=$(cd "$(dirname "$0")" && pwd); . "$HERE/lib.sh"; BIN=$(realpath "$BIN"); cd $PB
ulimit -n 20000
GW_PORT=$(free_ports 1); URL=http://127.0.0.1:$GW_PORT/gateway/bench/small/
CFG=$(gateway_config ${CONF:-$PB/gw/portcullis.toml} $GW_PORT)
PORTCULLIS_WORKERS=${WORKERS:-2} RUST_LOG=warn setsid $BIN serve -c $CFG > gw.idle.log 2>&1 &
P=$!
wait_http $URL 50
wrk -t1 -c50 -d1s $URL > /dev/null
python3 $HERE/idle.py $P $N $GW_PORT
kill -TERM $P; wait $P 2>/dev/null
rm -f $CFG
