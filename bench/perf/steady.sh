#!/bin/bash
# usage: steady.sh BINARY [SECONDS] -- like bench/run's steady: 2 workers, wrk -t1 -c50, prints req/s and CPU-s per 100k
BIN=$1; D=${2:-8}
PB=${PB:-/tmp/pb}; HERE=$(cd "$(dirname "$0")" && pwd); . "$HERE/lib.sh"; BIN=$(realpath "$BIN"); cd $PB
GW_PORT=$(free_ports 1); URL=http://127.0.0.1:$GW_PORT/gateway/bench/small/
CFG=$(gateway_config ${CONF:-$PB/gw/portcullis.toml} $GW_PORT)
PORTCULLIS_WORKERS=2 RUST_LOG=warn setsid $BIN serve -c $CFG > gw.steady.log 2>&1 &
P=$!
wait_http $URL 50
wrk -t1 -c50 -d1s $URL > /dev/null
t0=$(awk '{print $14+$15}' /proc/$P/stat)
wrk -t1 -c50 -d${D}s $URL > wrk.steady.txt
t1=$(awk '{print $14+$15}' /proc/$P/stat)
kill -TERM $P; wait $P 2>/dev/null
rm -f $CFG
REQS=$(grep -oP '^\s*\K\d+(?= requests in)' wrk.steady.txt)
RPS=$(grep -oP 'Requests/sec:\s*\K[\d.]+' wrk.steady.txt)
python3 -c "print(f'$(basename $BIN) rps=$RPS cpu_s_per_100k={($t1-$t0)/$(getconf CLK_TCK)/$REQS*1e5:.2f}')"
