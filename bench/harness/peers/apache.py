"""Apache as a peer: event MPM, 2 processes, mod_proxy_balancer (configuration:
apache2.conf with apache2-plain.conf or apache2-tls.conf as its listener)."""

import os
import subprocess

from ..procs import LOOPBACK, PROCS, StartError
from . import render, write

MODULES_DIR = "/usr/lib/apache2/modules"


def _modules(apache, tls):
    """LoadModule lines for what the config uses and the binary does not build in."""
    modules = ["mpm_event", "authz_core", "proxy", "proxy_http", "proxy_balancer", "lbmethod_byrequests",
               "slotmem_shm"]
    if tls:
        modules += ["ssl", "socache_shmcb", "http2"]
    if os.geteuid() == 0:
        modules.append("unixd")  # for User/Group
    builtin = subprocess.run([apache, "-l"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             text=True).stdout
    modules = [m for m in modules if f"mod_{m}.c" not in builtin]
    for m in modules:
        if not os.path.exists(f"{MODULES_DIR}/mod_{m}.so"):
            raise StartError(f"{MODULES_DIR}/mod_{m}.so is missing")
    return "\n".join(f"LoadModule {m}_module {MODULES_DIR}/mod_{m}.so" for m in modules)


def start(env, d, port, backends, tls):
    if not env.apache:
        raise StartError("apache2 is not installed")
    loads = _modules(env.apache, tls)
    user = "User www-data\nGroup www-data\n" if os.geteuid() == 0 else ""
    members = "\n".join(f"  BalancerMember http://{LOOPBACK}:{b.port} timeout=1 retry=1 connectiontimeout=1"
                        for b in backends)
    (d / "run").mkdir()
    os.chmod(d / "run", 0o777)
    listen = f"{LOOPBACK}:{port}"
    if tls:
        server = render("apache2-tls.conf", listen=listen, dir=d, cert=env.cert, key=env.key)
    else:
        server = render("apache2-plain.conf", listen=listen)
    conf = write(d / "apache2.conf", "apache2.conf", dir=d, loads=loads, user=user, members=members,
                 server=server.rstrip("\n"))
    return PROCS.spawn([env.apache, "-f", str(conf), "-DFOREGROUND"], d / "stdout.log"), "/", "/1m"
