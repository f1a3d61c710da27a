"""Portcullis as a peer: a dir store with topology `bench`, service `small`
(round robin over the backends), 2 workers (configuration: portcullis.toml and
portcullis-topology.toml).

`bench/overhead` runs older builds too, so it uses the minimal pair
(portcullis-minimal.toml, portcullis-minimal-topology.toml): only keys every
build since the first accepts.
"""

import os

from ..procs import LOOPBACK, PROCS, StartError
from . import render, write

SMALL_PATH = "/gateway/bench/small/"
# No peer has an equivalent: a try is abandoned once its backend has answered
# nobody for this long; "0s" turns it off.
STALL_TIMEOUT = os.environ.get("PORTCULLIS_STALL_TIMEOUT", "200ms")


def _urls(backend_ports):
    return ", ".join(f'"http://{LOOPBACK}:{p}"' for p in backend_ports)


def write_config(env, d, port, backends, tls, jwt=None):
    """portcullis.toml in d and the `bench` topology in d/store (with a JWT,
    the service behind `[service.auth]`); the config's path."""
    store = d / "store"
    (store / "topologies").mkdir(parents=True)
    topology = write(store / "topologies" / "bench.toml", "portcullis-topology.toml",
                     urls=_urls(b.port for b in backends), stall_timeout=STALL_TIMEOUT)
    if jwt:
        with topology.open("a") as f:
            f.write(render("portcullis-jwt.toml", jwks=jwt.jwks, issuer=jwt.ISSUER_TEXT,
                           audience=jwt.AUDIENCE_TEXT))
    tls_line = f'tls = {{ cert = "{env.cert}", key = "{env.key}" }}\n' if tls else ""
    return write(d / "portcullis.toml", "portcullis.toml", listen=f"{LOOPBACK}:{port}", tls=tls_line, store=store)


def write_minimal_config(work, name, backend_ports, port):
    """work/NAME.toml (node id NAME) and its store work/store-NAME; the config's path."""
    store = work / f"store-{name}"
    (store / "topologies").mkdir(parents=True, exist_ok=True)
    write(store / "topologies" / "bench.toml", "portcullis-minimal-topology.toml", urls=_urls(backend_ports))
    return write(work / f"{name}.toml", "portcullis-minimal.toml", node=name, listen=f"{LOOPBACK}:{port}",
                 store=store)


def start(env, d, port, backends, tls, jwt=None):
    if env.portcullis is None:
        raise StartError(env.portcullis_error or "no portcullis binary")
    config = write_config(env, d, port, backends, tls, jwt)
    envv = dict(os.environ, PORTCULLIS_WORKERS="2", RUST_LOG="warn")
    proc = PROCS.spawn([str(env.portcullis), "serve", "-c", str(config)], d / "stdout.log", env=envv, cwd=d)
    return proc, SMALL_PATH, SMALL_PATH + "1m"
