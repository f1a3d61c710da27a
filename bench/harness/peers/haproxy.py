"""HAProxy as a peer: 2 threads, round robin, TCP checks, retries with
redispatch (configuration: haproxy.cfg; with a JWT, haproxy-jwt.cfg's checks in
the frontend)."""

from ..procs import LOOPBACK, PROCS, StartError, nofile
from . import render, write


def start(env, d, port, backends, tls, jwt=None):
    if not env.haproxy:
        raise StartError("haproxy is not installed")
    servers = "\n".join(f"  server b{i} {LOOPBACK}:{b.port} check inter 1s" for i, b in enumerate(backends, 1))
    bind = f"{LOOPBACK}:{port} ssl crt {env.pem} alpn h2,http/1.1" if tls else f"{LOOPBACK}:{port}"
    rules = render("haproxy-jwt.cfg", public_pem=jwt.public, issuer=jwt.ISSUER_TEXT, audience=jwt.AUDIENCE_TEXT) \
        if jwt else ""
    conf = write(d / "haproxy.cfg", "haproxy.cfg", nofile=nofile(), bind=bind, servers=servers, rules=rules)
    return PROCS.spawn([env.haproxy, "-f", str(conf), "-db"], d / "stdout.log"), "/", "/1m"
