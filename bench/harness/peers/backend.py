"""The backends: single-process nginx (master_process off), so one can be
SIGKILLed or SIGSTOPped by its pid. `/` answers a 19-byte body, `/1m` a 1 MiB
file, `/nginx_status` the request counter the freeze scenario reads."""

from ..procs import LOOPBACK, PROCS, StartError, http_get, nofile, wait_ready, free_port
from . import write

SMALL_BODY = "hello from backend\n"  # what backend-nginx.conf answers at /: 19 bytes


class Backend:
    def __init__(self, name, port, proc):
        self.name, self.port, self.proc = name, port, proc

    @property
    def url(self):
        return f"http://{LOOPBACK}:{self.port}"

    def requests_served(self):
        """Request counter of nginx's stub_status, or None."""
        try:
            _, body = http_get(f"{self.url}/nginx_status", timeout=1.0)
            return int(body.decode().splitlines()[2].split()[2])
        except Exception:
            return None


def start(nginx, d, www, name):
    """A backend in directory d, ready (it answered 200 at /) when this returns."""
    if not nginx:
        raise StartError("nginx is not installed")
    port = free_port()
    conf = write(d / "nginx.conf", "backend-nginx.conf", nofile=nofile(), dir=d, listen=f"{LOOPBACK}:{port}",
                 www=www)
    proc = PROCS.spawn([nginx, "-c", str(conf), "-p", str(d), "-e", str(d / "error.log")], d / "stdout.log")
    wait_ready(f"http://{LOOPBACK}:{port}/", proc, f"backend {name}")
    return Backend(name, port, proc)
