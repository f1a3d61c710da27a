#!/usr/bin/env python3
"""N sequential TLS connections to HOST:PORT, one HTTP/1.1 request each
(`Connection: close`), for bench/perf/cg-tls.sh's per-connection cost.

    handshakes.py HOST PORT PATH N full|resume

`full` gives every connection a fresh handshake; `resume` offers each
connection the session ticket the previous one received. Prints
`connections=N resumed=R ok=K`; exits 1 unless every answer was a 200.
"""

import socket
import ssl
import sys


def one(ctx, host, port, path, session):
    with socket.create_connection((host, port), timeout=30) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost", session=session) as tls:
            tls.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
            answer = b""
            while chunk := tls.recv(65536):
                answer += chunk
            # TLS 1.3 tickets arrive after the handshake: the session is
            # only worth keeping once the answer has been read.
            return answer.startswith(b"HTTP/1.1 200"), tls.session_reused, tls.session


def main():
    host, port, path, n, mode = sys.argv[1:]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])
    session, ok, resumed = None, 0, 0
    for _ in range(int(n)):
        good, reused, got = one(ctx, host, int(port), path, session)
        ok += good
        resumed += reused
        if mode == "resume":
            session = got
    print(f"connections={n} resumed={resumed} ok={ok}")
    sys.exit(0 if ok == int(n) else 1)


if __name__ == "__main__":
    main()
