#!/usr/bin/env python3
# usage: idle.py PID N PORT  -- opens N keep-alive connections to 127.0.0.1:PORT, one request each, prints RSS delta / N
import socket, sys, time, resource
pid, n, port = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
resource.setrlimit(resource.RLIMIT_NOFILE, (n + 500, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
def rss():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) * 1024
req = f"GET /gateway/bench/small/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: bench-idle\r\n\r\n".encode()
def read_resp(s):
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += s.recv(4096)
    head, rest = buf.split(b"\r\n\r\n", 1)
    cl = 0
    for l in head.split(b"\r\n"):
        if l.lower().startswith(b"content-length:"):
            cl = int(l.split(b":")[1])
    while len(rest) < cl:
        rest += s.recv(4096)
    return int(head.split()[1])
time.sleep(0.5)
r0 = rss()
socks = []
for start in range(0, n, 50):
    batch = []
    for _ in range(min(50, n - start)):
        s = socket.socket(); s.settimeout(10)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
        s.connect(("127.0.0.1", port)); s.sendall(req); batch.append(s)
    for s in batch:
        assert read_resp(s) == 200
        socks.append(s)
time.sleep(2)
r1 = rss()
print(f"rss0={r0} rss1={r1} per_conn={(r1-r0)/n:.0f}")
for s in socks: s.close()
