#!/usr/bin/env python3
"""Writes one peer's TLS configuration for bench/perf/cg-tls.sh from the bench
harness's own templates (bench/harness/peers/), so callgrind sees the
configuration the tls scenario benchmarks; prints the arguments that run it.

    tls_peer.py PEER DIR PORT CERT KEY BACKEND_PORT...

PEER is portcullis, nginx or haproxy; the printed arguments follow the
program's name. CERT and KEY given as `-` write the plain-HTTP variant (for
bench/perf/cg-peer.sh). The one change from the harness: one
worker (one nginx process without master, one HAProxy thread; cg-tls.sh sets
PORTCULLIS_WORKERS=1), so a single process holds every instruction and
callgrind's serialised threads do not pay for idle hand-offs between workers.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.peers import render  # noqa: E402

LOOPBACK = "127.0.0.1"
NOFILE = 20000


def one_worker(text, before, after):
    if before not in text:
        raise SystemExit(f"template changed: {before!r} not found")
    return text.replace(before, after)


def portcullis(d, port, cert, key, backends):
    store = d / "store"
    (store / "topologies").mkdir(parents=True, exist_ok=True)
    urls = ", ".join(f'"http://{LOOPBACK}:{p}"' for p in backends)
    (store / "topologies" / "bench.toml").write_text(
        render("portcullis-topology.toml", urls=urls, stall_timeout="200ms"))
    tls = f'tls = {{ cert = "{cert}", key = "{key}" }}\n'
    conf = d / "portcullis.toml"
    conf.write_text(render("portcullis.toml", listen=f"{LOOPBACK}:{port}", tls=tls, store=store))
    return ["serve", "-c", str(conf)]


def nginx(d, port, cert, key, backends):
    servers = "\n".join(f"    server {LOOPBACK}:{p};" for p in backends)
    if cert == "-":
        tls, listen = "", f"{LOOPBACK}:{port}"
    else:
        tls = f"    ssl_certificate {cert};\n    ssl_certificate_key {key};\n"
        listen = f"{LOOPBACK}:{port} ssl http2"
    text = render("nginx.conf", nofile=NOFILE, dir=d, servers=servers, listen=listen, tls=tls)
    text = one_worker(text, "worker_processes 2;", "worker_processes 1;\nmaster_process off;")
    conf = d / "nginx.conf"
    conf.write_text(text)
    return ["-c", str(conf), "-p", str(d), "-e", str(d / "error.log")]


def haproxy(d, port, cert, key, backends):
    servers = "\n".join(f"  server b{i} {LOOPBACK}:{p} check inter 1s" for i, p in enumerate(backends, 1))
    bind = f"{LOOPBACK}:{port}"
    if cert != "-":
        pem = d / "combined.pem"  # HAProxy wants certificate and key in one file
        pem.write_text(Path(cert).read_text() + Path(key).read_text())
        pem.chmod(0o600)
        bind += f" ssl crt {pem} alpn h2,http/1.1"
    text = render("haproxy.cfg", nofile=NOFILE, bind=bind, servers=servers, rules="")
    text = one_worker(text, "nbthread 2", "nbthread 1")
    conf = d / "haproxy.cfg"
    conf.write_text(text)
    return ["-f", str(conf), "-db"]


def main():
    peer, d, port, cert, key, *backends = sys.argv[1:]
    d = Path(d)
    d.mkdir(parents=True, exist_ok=True)
    writers = {"portcullis": portcullis, "nginx": nginx, "haproxy": haproxy}
    print(" ".join(writers[peer](d, port, cert, key, backends)))


if __name__ == "__main__":
    main()
