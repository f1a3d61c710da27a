#!/usr/bin/env bash
# Failover under load, release build: two nginx backends (single process each,
# so one can be killed or frozen by its pid), Portcullis round robin in front,
# wrk with 1 thread and 50 keep-alive connections.
#   kill:   one backend gets SIGKILL 2 s into an 8 s run
#   freeze: one backend gets SIGSTOP 2 s into the run, SIGCONT 5 s later;
#           timeouts.request = 1s, wrk --timeout 2s (as in anchors.md)
# Loopback only; every process started here is stopped by its pid.
#   bash bench/failover.sh
# The same failures across Portcullis, nginx, HAProxy and Apache: bench/run --scenarios kill,freeze
set -euo pipefail
cd "$(dirname "$0")/.."

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
cleanup() {
  for pid in "${pids[@]}"; do kill -CONT "$pid" 2>/dev/null || true; kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; exit 1; }

start_nginx() { # name port -> pid on stdout
  local dir="$work/nginx-$1"; mkdir -p "$dir"
  cat >"$dir/nginx.conf" <<NGINX
daemon off;
master_process off;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log crit;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path $dir; proxy_temp_path $dir; fastcgi_temp_path $dir; uwsgi_temp_path $dir; scgi_temp_path $dir;
  server { listen 127.0.0.1:$2; location / { return 200 "hello from $1\n"; } }
}
NGINX
  "$nginx_bin" -c "$dir/nginx.conf" -p "$dir" >/dev/null 2>&1 &
  echo $!
}

run_scenario() { # scenario
  local scenario=$1
  local p1 p2 b1 b2 gw
  p1=$(free_port); p2=$(free_port); gw=$(free_port)
  b1=$(start_nginx one "$p1"); pids+=("$b1")
  b2=$(start_nginx two "$p2"); pids+=("$b2")
  wait_port "$p1"; wait_port "$p2"
  local store="$work/store-$scenario"; mkdir -p "$store/topologies"
  cat >"$store/topologies/bench.toml" <<TOML
[[service]]
name = "small"
urls = ["http://127.0.0.1:$p1", "http://127.0.0.1:$p2"]
[service.ha]
load_balancing = "round-robin"
[service.timeouts]
connect = "1s"
request = "1s"
TOML
  cat >"$work/$scenario.toml" <<TOML
[node]
id = "bench"
[gateway]
listen = "127.0.0.1:$gw"
[cluster]
store = "dir:$store"
TOML
  RUST_LOG=warn ./target/release/portcullis serve -c "$work/$scenario.toml" &
  local gw_pid=$!; pids+=("$gw_pid")
  wait_port "$gw"
  curl -fsS "http://127.0.0.1:$gw/gateway/bench/small/" >/dev/null
  wrk -t1 -c50 -d8s --timeout 2s --latency "http://127.0.0.1:$gw/gateway/bench/small/" >"$work/$scenario.txt" &
  local wrk_pid=$!
  sleep 2
  if [ "$scenario" = kill ]; then
    kill -KILL "$b1"
  else
    kill -STOP "$b1"; sleep 5; kill -CONT "$b1"
  fi
  wait "$wrk_pid"
  local rps p99 non2xx sockerr
  rps=$(awk '/Requests\/sec/ {print $2}' "$work/$scenario.txt")
  p99=$(awk '$1=="99%" {print $2}' "$work/$scenario.txt")
  non2xx=$(awk '/Non-2xx/ {print $NF}' "$work/$scenario.txt"); non2xx=${non2xx:-0}
  sockerr=$(grep -o 'Socket errors:.*' "$work/$scenario.txt" || echo "Socket errors: none")
  echo "| $scenario | $rps | $p99 | $non2xx | $sockerr |"
  kill "$gw_pid" "$b1" "$b2" 2>/dev/null || true
  wait "$gw_pid" 2>/dev/null || true
}

echo "| scenario | req/s (8 s run) | p99 | non-2xx | socket errors (wrk) |"
echo "|---|---|---|---|---|"
run_scenario kill
run_scenario freeze
