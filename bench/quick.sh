#!/usr/bin/env bash
# Small-GET throughput and p99: direct to an nginx backend versus through
# Portcullis, with wrk (1 thread, 50 keep-alive connections), release build.
# Loopback only; every process started here is stopped by its pid.
#   bash bench/quick.sh [DURATION_SECONDS]
# Portcullis beside nginx, HAProxy and Apache, every scenario: bench/run (docs/benchmarks.md).
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${1:-8}"

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo apt-get update -q && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${need[@]}"
fi
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)

cargo build --release -q -p portcullis
work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; exit 1; }

backend_port=$(free_port)
mkdir -p "$work/nginx"
cat >"$work/nginx/nginx.conf" <<NGINX
daemon off;
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path $work/nginx;
  proxy_temp_path $work/nginx;
  fastcgi_temp_path $work/nginx;
  uwsgi_temp_path $work/nginx;
  scgi_temp_path $work/nginx;
  server {
    listen 127.0.0.1:$backend_port;
    location / { return 200 "hello from nginx\n"; }
  }
}
NGINX
"$nginx_bin" -c "$work/nginx/nginx.conf" -p "$work/nginx" &
pids+=($!)
wait_port "$backend_port"

gateway_port=$(free_port)
mkdir -p "$work/store/topologies"
cat >"$work/store/topologies/bench.toml" <<TOML
[[service]]
name = "small"
urls = ["http://127.0.0.1:$backend_port"]
TOML
cat >"$work/portcullis.toml" <<TOML
[node]
id = "bench"
[gateway]
listen = "127.0.0.1:$gateway_port"
[cluster]
store = "dir:./store"
TOML
RUST_LOG=warn ./target/release/portcullis serve -c "$work/portcullis.toml" &
pids+=($!)
wait_port "$gateway_port"

run() {
  local label=$1 url=$2
  curl -fsS "$url" >/dev/null
  wrk -t1 -c50 -d"${duration}s" --latency "$url" >"$work/$label.txt"
  local rps p99
  rps=$(awk '/Requests\/sec/ {print $2}' "$work/$label.txt")
  p99=$(awk '$1=="99%" {print $2}' "$work/$label.txt")
  local errors
  errors=$(awk '/Non-2xx|Socket errors/ {print}' "$work/$label.txt" | tr '\n' ' ')
  echo "$label $rps $p99 ${errors:-none}"
}

echo "| target | req/s | p99 | errors |"
echo "|---|---|---|---|"
direct=$(run direct "http://127.0.0.1:$backend_port/x")
through=$(run portcullis "http://127.0.0.1:$gateway_port/gateway/bench/small/x")
for line in "$direct" "$through"; do
  set -- $line; label=$1; rps=$2; p99=$3; shift 3
  echo "| $label | $rps | $p99 | $* |"
done
d_rps=$(echo "$direct" | awk '{print $2}'); p_rps=$(echo "$through" | awk '{print $2}')
python3 -c "print(f'portcullis / direct throughput: {float(\"$p_rps\")/float(\"$d_rps\"):.2f}')"
