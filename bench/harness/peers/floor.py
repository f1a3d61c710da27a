"""The floor (bench/floor) as an optional peer: the smallest proxy that does
what steady asks (bodiless GET, round robin over keep-alive backends,
X-Forwarded-* added), with 2 workers and no feature at all. It is no product:
it shows what any proxy could reach on this machine and harness. Plain HTTP
only; not among the default peers (`--only floor,...`)."""

import os

from ..procs import LOOPBACK, PROCS, StartError
from ..tools import ROOT

BINARY = ROOT / "bench" / "floor" / "target" / "release" / "floor"


def start(env, d, port, backends, tls):
    if tls:
        raise StartError("the floor speaks plain HTTP only")
    if not BINARY.exists():
        raise StartError(f"no {BINARY} (bench/run builds it unless --no-build)")
    argv = [str(BINARY), f"{LOOPBACK}:{port}"] + [f"{LOOPBACK}:{b.port}" for b in backends]
    proc = PROCS.spawn(argv, d / "stdout.log", env=dict(os.environ, FLOOR_WORKERS="2"), cwd=d)
    return proc, "/", "/1m"
