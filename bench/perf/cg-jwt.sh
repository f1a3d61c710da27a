#!/bin/bash
# usage: bench/perf/cg-jwt.sh BINARY LABEL [SECONDS] [CONNS]
# cg.sh with the bench service behind `[service.auth]` JWT (an Ed25519 key
# set from a file) and every request carrying one valid token: the Ir per
# request of authentication, to compare with cg.sh's figure in the same
# sitting. Needs bench/perf/setup.sh's backends and Python's `cryptography`.
# NOAUTH=1: the same requests (token included) to the service without
# `[service.auth]`, so the difference is authentication alone, not the longer
# request head.
set -e
BIN=$(realpath "$1"); LABEL=$2; N=${3:-15}; C=${4:-10}
PB=${PB:-/tmp/pb}; HERE=$(cd "$(dirname "$0")" && pwd)
J=$PB/jwt; mkdir -p $J/gw/store/topologies
python3 $HERE/jwt_setup.py $J
touch $J/gw/store/.portcullis-store
sed "s#^store = .*#store = \"dir:$J/gw/store\"#" $PB/gw/portcullis.toml > $J/gw/portcullis.toml
{ cat $PB/gw/store/topologies/bench.toml
  if [ -z "$NOAUTH" ]; then
    printf '\n[service.auth]\nmethods = ["jwt"]\n'
    printf 'jwt = { jwks = "file:%s/jwks.json", issuer = "https://idp.bench", audiences = ["bench"] }\n' $J
  fi
} > $J/gw/store/topologies/bench.toml
T=$(cat $J/token)
# cg.sh's steps with the token on every request
. "$HERE/lib.sh"; cd $PB
rm -f cg.$LABEL.*
GW_PORT=$(free_ports 1); URL=http://127.0.0.1:$GW_PORT/gateway/bench/small/
CFG=$(gateway_config $J/gw/portcullis.toml $GW_PORT)
PORTCULLIS_WORKERS=1 RUST_LOG=${LOG:-warn} setsid valgrind --tool=callgrind --callgrind-out-file=$PB/cg.$LABEL.%p \
   $BIN serve -c $CFG > gw.$LABEL.log 2>&1 &
VPID=$!
for i in $(seq 1 120); do curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $T" $URL 2>/dev/null | grep -q 200 && break; sleep 1; done
wrk -t1 -c$C -d2s -H "Authorization: Bearer $T" $URL > /dev/null
callgrind_control -z $VPID > /dev/null 2>&1
wrk -t1 -c$C -d${N}s -H "Authorization: Bearer $T" $URL > wrk.$LABEL.txt
callgrind_control -d $VPID > /dev/null 2>&1
sleep 1
kill -TERM $VPID; wait $VPID 2>/dev/null || true
rm -f $CFG
REQS=$(grep -oP '^\s*\K\d+(?= requests in)' wrk.$LABEL.txt)
F=$(ls cg.$LABEL.$VPID.1 2>/dev/null || ls -t cg.$LABEL.$VPID* | head -1)
IR=$(callgrind_annotate $F 2>/dev/null | grep -m1 'PROGRAM TOTALS' | grep -oP '^[\d,]+' | tr -d ,)
echo "$LABEL reqs=$REQS Ir=$IR Ir/req=$((IR / REQS)) file=$F"
grep -E 'Non-2xx|Socket errors' wrk.$LABEL.txt || true
