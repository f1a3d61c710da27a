#!/bin/bash
# usage: bench/perf/cg.sh BINARY LABEL [SECONDS] [CONNS]
# Runs the gateway under callgrind with 1 worker on a free loopback port, warms up, zeroes, sends NREQ requests, dumps.
BIN=$(realpath "$1"); LABEL=$2; N=${3:-15}; C=${4:-10}
PB=${PB:-/tmp/pb}; HERE=$(cd "$(dirname "$0")" && pwd); . "$HERE/lib.sh"; cd $PB
rm -f cg.$LABEL.*
GW_PORT=$(free_ports 1); URL=http://127.0.0.1:$GW_PORT/gateway/bench/small/
CFG=$(gateway_config ${CONF:-$PB/gw/portcullis.toml} $GW_PORT)
PORTCULLIS_WORKERS=${WORKERS:-1} RUST_LOG=${LOG:-warn} setsid valgrind --tool=callgrind --callgrind-out-file=$PB/cg.$LABEL.%p \
   $BIN serve -c $CFG > gw.$LABEL.log 2>&1 &
VPID=$!
for i in $(seq 1 120); do curl -s -o /dev/null -w '%{http_code}' $URL 2>/dev/null | grep -q 200 && break; sleep 1; done
wrk -t1 -c$C -d2s $URL > /dev/null
callgrind_control -z $VPID > /dev/null 2>&1
wrk -t1 -c$C -d${N}s $URL > wrk.$LABEL.txt
callgrind_control -d $VPID > /dev/null 2>&1
sleep 1
kill -TERM $VPID; wait $VPID 2>/dev/null
rm -f $CFG
REQS=$(grep -oP '^\s*\K\d+(?= requests in)' wrk.$LABEL.txt)
F=$(ls -t cg.$LABEL.$VPID* | grep -v '\.0*$' | head -1)
# the dump triggered by -d is the numbered one (.1); the exit dump is the unnumbered file
F=$(ls cg.$LABEL.$VPID.1 2>/dev/null || echo $F)
IR=$(callgrind_annotate $F 2>/dev/null | grep -m1 'PROGRAM TOTALS' | grep -oP '^[\d,]+' | tr -d ,)
echo "$LABEL reqs=$REQS Ir=$IR Ir/req=$((IR / REQS)) file=$F"
grep -E 'Non-2xx|Socket errors' wrk.$LABEL.txt
