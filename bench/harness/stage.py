"""A stage: two fresh backends and one peer in front of them, for one scenario;
everything it started is stopped by pid when it ends."""

from .peers import apache, backend, floor, haproxy, nginx, portcullis
from .procs import LOOPBACK, PROCS, free_port, wait_ready

STARTERS = {"portcullis": portcullis.start, "nginx": nginx.start, "haproxy": haproxy.start,
            "apache": apache.start, "floor": floor.start}
# Peers that can check a JWT (steady-jwt): nginx's auth_jwt is NGINX Plus only,
# Apache has no JWT module in Debian.
JWT_PEERS = {"portcullis", "haproxy"}
# The floor is no peer to beat but a measuring stick: it runs only when --only names it.
OPTIONAL_PEERS = {"floor"}
PEERS = [p for p in STARTERS if p not in OPTIONAL_PEERS]


class Proxy:
    def __init__(self, peer, proc, port, tls, small_path, big_path):
        self.peer, self.proc, self.port, self.tls = peer, proc, port, tls
        scheme = "https" if tls else "http"
        self.base = f"{scheme}://{LOOPBACK}:{port}"
        self.small_path, self.big_path = small_path, big_path
        self.small = self.base + small_path
        self.big = self.base + big_path


class Stage:
    """Backends and one peer ("direct": backends only) for one scenario."""

    def __init__(self, env, peer, tls=False, jwt=None):
        self.env, self.peer, self.tls, self.jwt = env, peer, tls, jwt
        self.backends, self.proxy = [], None

    def __enter__(self):
        try:
            for name in ("backend-1", "backend-2"):
                self.backends.append(backend.start(self.env.nginx, self.env.dir(name), self.env.www, name))
            if self.peer == "direct":
                return self
            d = self.env.dir(self.peer)
            port = free_port()
            extra = {"jwt": self.jwt} if self.jwt else {}
            proc, small, big = STARTERS[self.peer](self.env, d, port, self.backends, self.tls, **extra)
            self.proxy = Proxy(self.peer, proc, port, self.tls, small, big)
            wait_ready(self.proxy.small, proc, self.peer, headers=[self.jwt.header] if self.jwt else [])
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        if self.proxy:
            PROCS.stop(self.proxy.proc)
        for b in self.backends:
            PROCS.stop(b.proc)
        return False
