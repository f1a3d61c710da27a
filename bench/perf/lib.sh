# Sourced by the scripts of bench/perf: free loopback ports and readiness waits.

# free_ports N: N distinct loopback ports nothing listens on now, one a line
# (all bound at once, so they differ; the kernel chooses).
free_ports() {
  python3 -c '
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print("\n".join(str(s.getsockname()[1]) for s in socks))' "$1"
}

# wait_http URL TRIES: polls URL every 0.2 s until it answers, at most TRIES times.
wait_http() {
  for _ in $(seq 1 "$2"); do
    curl -s -o /dev/null "$1" && return 0
    sleep 0.2
  done
  echo "no answer from $1" >&2
  return 1
}

# gateway_config CONF PORT: CONF with the gateway listening on 127.0.0.1:PORT,
# written beside it; prints the new file's path.
gateway_config() {
  local out="${1%.toml}.$2.toml"
  sed "s/^listen = .*/listen = \"127.0.0.1:$2\"/" "$1" > "$out"
  echo "$out"
}
