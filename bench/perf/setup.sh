#!/bin/bash
# Two nginx backends (127.0.0.1:18081, :18082) and gateway configs under $PB.
set -e
PB=${PB:-/tmp/pb}
mkdir -p $PB/gw/store/topologies $PB/gw1/store/topologies
for n in 1 2; do
  d=$PB/b$n; mkdir -p $d
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
    listen 127.0.0.1:1808$n;
    location / { return 200 "hello from backend\n"; }
  }
}
CONF
  setsid nginx -c $d/nginx.conf -p $d -e $d/error.log > $d/stdout.log 2>&1 &
  echo $! > $PB/b$n.pid
done
for g in gw gw1; do
  urls='"http://127.0.0.1:18081", "http://127.0.0.1:18082"'
  [ $g = gw1 ] && urls='"http://127.0.0.1:18081"'
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
  cat > $PB/$g/portcullis.toml <<T
[node]
id = "bench"

[gateway]
listen = "127.0.0.1:18080"
path = "gateway"
max_connections = 30000
header_read_timeout = "120s"
shutdown_grace = "1s"

[cluster]
store = "dir:$PB/$g/store"
T
done
sleep 1
curl -sf 127.0.0.1:18081/ >/dev/null && curl -sf 127.0.0.1:18082/ >/dev/null && echo "backends up"
