"""4. One backend killed (SIGKILL) during the run: what the client sees."""

import signal

from ..load import CLIENT_TIMEOUT, Wrk
from ..procs import signal_pid, sleep_until
from ..stage import Stage
from ..table import Column, f_int, f_ms, peer_rows, render
from .steady import warm_up

KILL_AT = 2.0  # seconds into the run


def run(env, peer, cfg):
    with Stage(env, peer) as st:
        warm_up(env, st.proxy.small)
        w = Wrk(env.wrk, env.work, st.proxy.small, cfg.kill_duration)
        sleep_until(w.started + KILL_AT)
        signal_pid(st.backends[0].proc.pid, signal.SIGKILL)
        r = w.wait()
        return {"errors": r["errors"], "detail": r["error_detail"], "p99": r["p99"], "rps": r["rps"]}


def render_table(by_peer, cfg):
    return render(
        "4. One backend killed",
        f"`wrk -t1 -c50 -d{cfg.kill_duration}s --timeout {CLIENT_TIMEOUT}s`; backend 1 gets SIGKILL "
        f"{KILL_AT:.0f} s into the run. Errors are what the client sees: wrk's non-2xx responses plus "
        "socket errors (connect, read, write, timeout).",
        [Column("errors", "client-visible errors", f_int, "down"), Column("detail", "of which", str),
         Column("p99", "p99", f_ms, "down"), Column("rps", "req/s", f_int, "up")],
        peer_rows(by_peer, cfg.peers))
