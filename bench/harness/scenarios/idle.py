"""6. Idle keep-alive client connections: the peer's resident memory per
connection, opened by a Python client that sends one GET on each and keeps it."""

import re
import socket
import time

from ..procs import LOOPBACK, nofile, rss_bytes
from ..stage import Stage
from ..table import Column, f_int, f_mib, peer_rows, render

BATCH = 50  # connections opened (and requests in flight) at a time, like wrk -c50
OPEN_LIMIT_S = 120


def read_response(s):
    """Reads one HTTP/1.1 response (Content-Length or chunked) off s; its status."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the response")
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    if m:
        need = int(m.group(1))
        while len(body) < need:
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError("closed inside the body")
            body += chunk
    elif re.search(rb"(?im)^transfer-encoding:\s*chunked", head):
        while not body.endswith(b"0\r\n\r\n"):
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError("closed inside the body")
            body += chunk
    return status


def still_open(s):
    try:
        s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        return False  # end of stream (closed by the peer) or unexpected bytes
    except (BlockingIOError, TimeoutError):
        return True  # nothing to read: open and idle
    except OSError:
        return False


class Opener:
    """Opens keep-alive connections to a port in batches, one request each; keeps
    those answered 200 and counts the rest."""

    def __init__(self, port, request):
        self.port, self.request = port, request
        self.socks, self.failed, self.first_error = [], 0, None

    def _fail(self, error, s=None):
        self.failed += 1
        self.first_error = self.first_error or error
        if s:
            s.close()

    def _send(self, count):
        batch = []
        for _ in range(count):
            s = socket.socket()
            s.settimeout(10)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")  # close = RST
            try:
                s.connect((LOOPBACK, self.port))
                s.sendall(self.request)
                batch.append(s)
            except OSError as e:
                self._fail(str(e), s)
        return batch

    def _collect(self, batch):
        for s in batch:
            try:
                if read_response(s) == 200:
                    self.socks.append(s)
                    continue
                self._fail("non-200 answer", s)
            except OSError as e:
                self._fail(str(e), s)

    def open(self, n):
        """Opens n; the seconds it took."""
        t_start = time.monotonic()
        for start in range(0, n, BATCH):
            self._collect(self._send(min(n, start + BATCH) - start))
            if time.monotonic() - t_start > OPEN_LIMIT_S:
                raise RuntimeError(f"opening {n} connections took over {OPEN_LIMIT_S} s")
        return time.monotonic() - t_start

    def count_open(self):
        for s in self.socks:
            s.setblocking(False)
        return sum(1 for s in self.socks if still_open(s))

    def close(self):
        for s in self.socks:
            s.close()


def run(env, peer, cfg):
    n = cfg.idle
    if n + 200 > nofile():
        raise RuntimeError(f"{n} connections need an open-file limit over {n + 200}; it is {nofile()}")
    with Stage(env, peer) as st:
        root = st.proxy.proc.pid
        time.sleep(0.5)  # let the peer settle after its readiness request before the baseline
        rss0 = rss_bytes(root)
        request = (f"GET {st.proxy.small_path} HTTP/1.1\r\nHost: {LOOPBACK}:{st.proxy.port}\r\n"
                   f"User-Agent: bench-idle\r\n\r\n").encode()
        opener = Opener(st.proxy.port, request)
        try:
            opened = opener.open(n)
            time.sleep(cfg.idle_hold)  # part of the measure: memory idle_hold s after the last one
            rss1 = rss_bytes(root)
            open_now = opener.count_open()
        finally:
            opener.close()
        return {"per_conn": (rss1 - rss0) / n, "per_open": (rss1 - rss0) / open_now if open_now else None,
                "open": open_now, "n": n, "failed": opener.failed,
                "first_error": opener.first_error, "rss0": rss0, "rss1": rss1, "open_secs": opened,
                "held": opened + cfg.idle_hold}


def render_table(by_peer, cfg):
    rows = peer_rows(by_peer, cfg.peers)
    for _, r in rows:
        if isinstance(r, dict):
            r["open_text"] = f"{r['open']:,} / {r['n']:,}"
    return render(
        f"6. {cfg.idle:,} idle keep-alive client connections",
        f"A Python client opens {cfg.idle:,} connections to the peer, {BATCH} at a time, sends one small GET "
        f"on each, reads the answer and keeps the connection open; {cfg.idle_hold:.0f} s after the last "
        "one it reads the resident memory (sum of VmRSS of the peer's processes). Bytes per connection = "
        f"(RSS then − RSS before connecting) / {cfg.idle:,}. Still open: connections the peer had not "
        "closed at measurement time (client keep-alive timeouts are 120 s everywhere); where a peer closed "
        "some, the next column divides by the ones still open instead.",
        [Column("per_conn", "bytes per idle connection", f_int, "down"),
         Column("open_text", "still open / opened", str),
         Column("per_open", "bytes per connection still open", f_int), Column("rss0", "RSS before", f_mib),
         Column("rss1", "RSS with connections", f_mib), Column("failed", "failed to open", f_int, "down")],
        rows)
