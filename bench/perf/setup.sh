#!/bin/bash
# Two nginx backends on free loopback ports and gateway configs under $PB;
# the ports are written to $PB/ports for the other scripts.
set -e
PB=${PB:-/tmp/pb}
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
mkdir -p $PB/gw/store/topologies $PB/gw1/store/topologies
ports=($(free_ports 2)); B1_PORT=${ports[0]}; B2_PORT=${ports[1]}
printf 'B1_PORT=%s\nB2_PORT=%s\n' "$B1_PORT" "$B2_PORT" > $PB/ports
for n in 1 2; do
  d=$PB/b$n; mkdir -p $d
  # a 1 MiB body for the large-response runs (URL_PATH=1m)
  head -c 1048576 /dev/zero | tr '\0' x > $d/1m.bin
  port=$B1_PORT; [ $n = 2 ] && port=$B2_PORT
  cat > $d/nginx.conf <<CONF
daemon off;
master_process off;
worker_processes 1;
pid $d/nginx.pid;
error_log $d/error.log crit;
events { worker_connections 16384; }
http {
  access_log off;
  default_type text/plain;
  keepalive_timeout 120s;
  keepalive_requests 1000000;
  client_body_temp_path $d; proxy_temp_path $d; fastcgi_temp_path $d; uwsgi_temp_path $d; scgi_temp_path $d;
  server {
    listen 127.0.0.1:$port;
    location / { return 200 "hello from backend\n"; }
    location = /1m { alias $d/1m.bin; }
  }
}
CONF
  setsid nginx -c $d/nginx.conf -p $d -e $d/error.log > $d/stdout.log 2>&1 &
  echo $! > $PB/b$n.pid
done
for g in gw gw1; do
  urls="\"http://127.0.0.1:$B1_PORT\", \"http://127.0.0.1:$B2_PORT\""
  [ $g = gw1 ] && urls="\"http://127.0.0.1:$B1_PORT\""
  cat > $PB/$g/store/topologies/bench.toml <<T
[[service]]
name = "small"
urls = [$urls]

[service.ha]
load_balancing = "round-robin"

[service.timeouts]
connect = "1s"
request = "1s"
T
  # listen is replaced by a free port each time a script starts the gateway
  cat > $PB/$g/portcullis.toml <<T
[node]
id = "bench"

[gateway]
listen = "127.0.0.1:0"
path = "gateway"
max_connections = 30000
header_read_timeout = "120s"
shutdown_grace = "1s"

[cluster]
store = "dir:$PB/$g/store"
T
done
wait_http 127.0.0.1:$B1_PORT/ 50 && wait_http 127.0.0.1:$B2_PORT/ 50 && echo "backends up on 127.0.0.1:$B1_PORT and :$B2_PORT"
