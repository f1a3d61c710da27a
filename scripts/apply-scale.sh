#!/usr/bin/env bash
# Measures what applying a large topology costs a member: the time from
# writing it into a dir store until the member serves it, and the member's
# resident memory before, after, and after the topology is deleted again.
#
#   scripts/apply-scale.sh [BINARY] [SERVICES] [URLS_PER_SERVICE]
#
# Defaults: target/debug/portcullis, 4000 services, 2 urls each, every
# service with an active health check (HEALTH=0: none). Everything binds to
# loopback.
set -euo pipefail

BIN=${1:-target/debug/portcullis}
SERVICES=${2:-4000}
URLS=${3:-2}
BIN=$(realpath "$BIN")
WORK=$(mktemp -d)
trap 'kill "$PID" 2>/dev/null || true; rm -rf "$WORK"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
GW=$(free_port)
ADMIN=$(free_port)
mkdir -p "$WORK/store/topologies"
cat >"$WORK/portcullis.toml" <<TOML
[node]
id = "scale"
[gateway]
listen = "127.0.0.1:$GW"
[admin]
listen = "127.0.0.1:$ADMIN"
[cluster]
store = "dir:$WORK/store"
TOML

generation() { curl -sf "http://127.0.0.1:$ADMIN/api/v1/health" | python3 -c 'import json,sys; print(json.load(sys.stdin)["generation"])'; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$PID/status"; }
wait_generation() { # until the generation differs from $1
  while [ "$(generation 2>/dev/null || echo "$1")" = "$1" ]; do sleep 0.05; done
}

RUST_LOG=warn "$BIN" serve -c "$WORK/portcullis.toml" >"$WORK/log" 2>&1 &
PID=$!
until curl -sf "http://127.0.0.1:$ADMIN/api/v1/health" >/dev/null; do sleep 0.05; done
sleep 1
echo "rss at start: $(rss_kb) kB"

python3 - "$WORK/big.toml" "$SERVICES" "$URLS" "${HEALTH:-1}" <<'PY'
import sys
path, services, urls, health = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
with open(path, "w") as f:
    for i in range(services):
        u = ", ".join(f'"http://127.0.0.1:9/s{i}/{j}"' for j in range(urls))
        check = '[service.health]\ninterval = "5s"\n' if health else ""
        f.write(f'[[service]]\nname = "s{i}"\nurls = [{u}]\n{check}\n')
PY
before=$(generation)
start=$(date +%s.%N)
mv "$WORK/big.toml" "$WORK/store/topologies/big.toml"
wait_generation "$before"
end=$(date +%s.%N)
echo "applied $SERVICES services x $URLS urls in $(python3 -c "print(round($end-$start,2))") s (includes up to 0.5 s of store polling)"
sleep 2
echo "rss with the topology: $(rss_kb) kB"

before=$(generation)
mv "$WORK/store/topologies/big.toml" "$WORK/big.toml"
wait_generation "$before"
sleep 3
echo "rss after deleting it: $(rss_kb) kB"

# Applying and deleting again must not grow the member: what a DELETE
# leaves is reused, not leaked (ROUNDS times; VERBOSE=1 prints each).
ROUNDS=${ROUNDS:-3}
for round in $(seq "$ROUNDS"); do
  before=$(generation)
  cp "$WORK/big.toml" "$WORK/store/topologies/.big.tmp"
  mv "$WORK/store/topologies/.big.tmp" "$WORK/store/topologies/big.toml"
  wait_generation "$before"
  before=$(generation)
  rm "$WORK/store/topologies/big.toml"
  wait_generation "$before"
  [ -n "${VERBOSE:-}" ] && echo "  round $round: $(rss_kb) kB"
done
sleep 3
echo "rss after $ROUNDS more apply/delete rounds: $(rss_kb) kB"
