"""nginx as a peer: 2 worker processes, an upstream with keep-alive, retries on
error and timeout (configuration: nginx.conf)."""

from ..procs import LOOPBACK, PROCS, StartError, nofile
from . import write


def start(env, d, port, backends, tls):
    if not env.nginx:
        raise StartError("nginx is not installed")
    servers = "\n".join(f"    server {LOOPBACK}:{b.port};" for b in backends)
    listen = f"{LOOPBACK}:{port} ssl http2" if tls else f"{LOOPBACK}:{port}"
    tls_conf = f"    ssl_certificate {env.cert};\n    ssl_certificate_key {env.key};\n" if tls else ""
    conf = write(d / "nginx.conf", "nginx.conf", nofile=nofile(), dir=d, servers=servers, listen=listen,
                 tls=tls_conf)
    proc = PROCS.spawn([env.nginx, "-c", str(conf), "-p", str(d), "-e", str(d / "error.log")], d / "stdout.log")
    return proc, "/", "/1m"
