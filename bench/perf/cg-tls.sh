#!/bin/bash
# usage: bench/perf/cg-tls.sh PEER LABEL [REQUESTS=20000] [CONNECTIONS=100]
#   PEER: a portcullis binary, or the word nginx or haproxy.
# Runs PEER under callgrind with TLS on the front (the bench harness's tls
# configuration, one worker; see tls_peer.py) proxying to setup.sh's two
# backends, and prints user-space instructions (Ir) per unit of work, each
# phase on its own zeroed counters:
#   h1      REQUESTS requests, wrk -t1 -c50 (stopped by stop-after.lua)
#   h2      REQUESTS requests, h2load -c 50 -m 10 (ALPN h2)
#   full    CONNECTIONS sequential connections, full handshake + 1 request each
#   resume  the same, each offering the previous connection's session ticket
# h1 and h2 include the 50 handshakes of their connections, as in bench/run.
# PHASES="h2 full" (environment) runs only some phases; all four by default.
set -u
BIN=$1; LABEL=$2; N=${3:-20000}; H=${4:-100}
PB=${PB:-/tmp/pb}; HERE=$(cd "$(dirname "$0")" && pwd); . "$HERE/lib.sh"
. "$PB/ports" || { echo "run bench/perf/setup.sh first" >&2; exit 1; }
D=$PB/tls-$LABEL; rm -rf "$D"; mkdir -p "$D"

# The certificate every peer serves: ECDSA P-256 for localhost, like the harness's.
CERT=$PB/tls/gateway.crt; KEY=$PB/tls/gateway.key
if [ ! -f "$CERT" ]; then
  mkdir -p "$PB/tls"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost -days 30 -keyout "$KEY" -out "$CERT" > /dev/null 2>&1
fi

PORT=$(free_ports 1)
case $BIN in
  nginx|haproxy) PEER=$BIN; EXE=$(command -v "$BIN" || echo "/usr/sbin/$BIN"); URLPATH=/ ;;
  *) PEER=portcullis; EXE=$(realpath "$BIN"); URLPATH=/gateway/bench/small/ ;;
esac
URL=https://127.0.0.1:$PORT$URLPATH
ARGS=$(python3 "$HERE/tls_peer.py" "$PEER" "$D" "$PORT" "$CERT" "$KEY" "$B1_PORT" "$B2_PORT") || exit 1
ulimit -n 20000
# shellcheck disable=SC2086 # ARGS is a word list
PORTCULLIS_WORKERS=1 RUST_LOG=${LOG:-warn} setsid valgrind --tool=callgrind \
  --callgrind-out-file="$D/cg.%p" "$EXE" $ARGS > "$D/peer.log" 2>&1 &
VPID=$!

for _ in $(seq 1 300); do
  [ "$(curl -sk -o /dev/null -w '%{http_code}' "$URL")" = 200 ] && break
  sleep 0.5
done

# total_ir DUMP: the instruction total of one callgrind dump file.
total_ir() { awk '/^(summary|totals):/ { print $2; exit }' "$1"; }

# measure PHASE UNITS_CMD...: zero, run the load (prints a count on its last
# line), dump; prints the phase's Ir per unit.
DUMPS=0
measure() {
  local phase=$1; shift
  callgrind_control -z "$VPID" > /dev/null 2>&1
  local units; units=$("$@" 2> "$D/$phase.err" | tail -1)
  callgrind_control -d "$VPID" > /dev/null 2>&1
  DUMPS=$((DUMPS + 1))
  local ir; ir=$(total_ir "$D/cg.$VPID.$DUMPS")
  if [ -z "$units" ] || [ "$units" = 0 ] || [ -z "$ir" ]; then
    echo "$LABEL $phase: no figure (units='$units' Ir='$ir'; see $D)"
    return
  fi
  echo "$LABEL $phase units=$units Ir=$ir Ir/unit=$((ir / units))"
}

h1_load() {
  REQUESTS=$N wrk -t1 -c50 -d600s -s "$HERE/stop-after.lua" "$URL" > "$D/wrk.txt"
  grep -E 'Non-2xx|Socket errors' "$D/wrk.txt" >&2
  grep -oP '^\s*\K\d+(?= requests in)' "$D/wrk.txt"
}

h2_load() {
  h2load -n "$N" -c 50 -m 10 "$URL" > "$D/h2load.txt"
  grep -q 'Application protocol: h2' "$D/h2load.txt" || echo "h2load did not negotiate h2" >&2
  grep -oP 'requests: .* \K\d+(?= succeeded)' "$D/h2load.txt"
}

conn_load() {
  python3 "$HERE/handshakes.py" 127.0.0.1 "$PORT" "$URLPATH" "$H" "$1" | tee "$D/$1.txt" >&2
  grep -oP 'ok=\K\d+' "$D/$1.txt"
}

wrk -t1 -c50 -d2s "$URL" > /dev/null
h2load -n 2000 -c 50 -m 10 "$URL" > /dev/null
for phase in ${PHASES:-h1 h2 full resume}; do
  case $phase in
    h1) measure h1 h1_load ;;
    h2) measure h2 h2_load ;;
    full|resume) measure "$phase" conn_load "$phase" ;;
    *) echo "unknown phase $phase" >&2 ;;
  esac
done
[ -f "$D/resume.txt" ] && echo "$LABEL resumed: $(grep -oP 'resumed=\K\d+' "$D/resume.txt") of $H"

kill -TERM "$VPID"; wait "$VPID" 2>/dev/null
