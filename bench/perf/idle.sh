#!/bin/bash
# usage: idle.sh BINARY N  -- gateway with 2 workers; N idle keep-alive conns; prints bytes/conn
BIN=$1; N=${2:-5000}
PB=${PB:-/tmp/pb}; HERE=$(cd "$(dirname "$0")" && pwd); BIN=$(realpath "$BIN"); cd $PB
ulimit -n 20000
PORTCULLIS_WORKERS=${WORKERS:-2} RUST_LOG=warn setsid $BIN serve -c ${CONF:-$PB/gw/portcullis.toml} > gw.idle.log 2>&1 &
P=$!
for i in $(seq 1 50); do curl -s -o /dev/null 127.0.0.1:18080/gateway/bench/small/ && break; sleep 0.2; done
wrk -t1 -c50 -d1s http://127.0.0.1:18080/gateway/bench/small/ > /dev/null
python3 $HERE/idle.py $P $N
kill -TERM $P; wait $P 2>/dev/null
