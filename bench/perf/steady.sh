#!/bin/bash
# usage: steady.sh BINARY [SECONDS] -- like bench/run's steady: 2 workers, wrk -t1 -c50, prints req/s and CPU-s per 100k
BIN=$1; D=${2:-8}
PB=${PB:-/tmp/pb}; BIN=$(realpath "$BIN"); cd $PB
PORTCULLIS_WORKERS=2 RUST_LOG=warn setsid $BIN serve -c ${CONF:-$PB/gw/portcullis.toml} > gw.steady.log 2>&1 &
P=$!
for i in $(seq 1 50); do curl -s -o /dev/null 127.0.0.1:18080/gateway/bench/small/ && break; sleep 0.2; done
wrk -t1 -c50 -d1s http://127.0.0.1:18080/gateway/bench/small/ > /dev/null
t0=$(awk '{print $14+$15}' /proc/$P/stat)
wrk -t1 -c50 -d${D}s http://127.0.0.1:18080/gateway/bench/small/ > wrk.steady.txt
t1=$(awk '{print $14+$15}' /proc/$P/stat)
kill -TERM $P; wait $P 2>/dev/null
REQS=$(grep -oP '^\s*\K\d+(?= requests in)' wrk.steady.txt)
RPS=$(grep -oP 'Requests/sec:\s*\K[\d.]+' wrk.steady.txt)
python3 -c "print(f'$(basename $BIN) rps=$RPS cpu_s_per_100k={($t1-$t0)/$(getconf CLK_TCK)/$REQS*1e5:.2f}')"
