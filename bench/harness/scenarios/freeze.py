"""5. One backend frozen (SIGSTOP, then SIGCONT) during the run: requests held
past the client timeout, and throughput before and during the freeze counted
on the backends."""

import signal
import time

from ..load import CLIENT_TIMEOUT, Wrk
from ..procs import signal_pid, sleep_until
from ..stage import Stage
from ..table import Column, f_int, f_ms, peer_rows, render
from .steady import warm_up

FREEZE_AT = 2.0    # seconds into the run
FREEZE_FOR = 5.0   # seconds


def _counts(backends):
    return tuple(b.requests_served() for b in backends)


def _freeze_during(w, b1, b2):
    """Freezes b1 from FREEZE_AT for FREEZE_FOR into wrk's run; the backends'
    counters and times around it: (c0, t0, c1, t_stop, b2_end, t_cont)."""
    frozen = False
    try:
        sleep_until(w.started + 0.5)
        c0, t0 = _counts((b1, b2)), time.monotonic()
        sleep_until(w.started + FREEZE_AT)
        c1 = _counts((b1, b2))
        t_stop = time.monotonic()
        signal_pid(b1.proc.pid, signal.SIGSTOP)
        frozen = True
        sleep_until(t_stop + FREEZE_FOR)
        b2_end = b2.requests_served()
        t_cont = time.monotonic()
        signal_pid(b1.proc.pid, signal.SIGCONT)
        frozen = False
        return c0, t0, c1, t_stop, b2_end, t_cont
    finally:
        if frozen:
            signal_pid(b1.proc.pid, signal.SIGCONT)


def rates(c0, t0, c1, t_stop, b2_end, t_cont):
    """req/s before the freeze (both backends) and during it (backend 2), or None
    where a counter could not be read."""
    before = during = None
    if None not in c0 and None not in c1:
        before = (sum(c1) - sum(c0) - 2) / (t_stop - t0)   # minus our own stub_status requests
    if b2_end is not None and c1[1] is not None:
        during = (b2_end - c1[1] - 1) / (t_cont - t_stop)
    return before, during


def run(env, peer, cfg):
    with Stage(env, peer) as st:
        warm_up(env, st.proxy.small)
        b1, b2 = st.backends
        w = Wrk(env.wrk, env.work, st.proxy.small, cfg.freeze_duration)
        marks = _freeze_during(w, b1, b2)
        r = w.wait()
        before, during = rates(*marks)
        return {"timeouts": r["timeout"], "errors": r["errors_no_timeout"], "rps": r["rps"],
                "rps_before": before, "rps_during": during, "p99": r["p99"]}


def render_table(by_peer, cfg):
    return render(
        "5. One backend frozen",
        f"`wrk -t1 -c50 -d{cfg.freeze_duration}s --timeout {CLIENT_TIMEOUT}s`; backend 1 gets SIGSTOP "
        f"{FREEZE_AT:.0f} s into the run and SIGCONT {FREEZE_FOR:.0f} s later. Timeouts: requests that "
        f"took over {CLIENT_TIMEOUT} s (wrk's socket timeouts). Errors: non-2xx, connect, read and write "
        "errors. Throughput before and during the freeze is counted on the backends (nginx stub_status "
        "request counters, read just before SIGSTOP and SIGCONT; requests a peer retried count once, "
        "on the backend that answered).",
        [Column("timeouts", f"requests over {CLIENT_TIMEOUT} s", f_int, "down"),
         Column("errors", "other errors", f_int, "down"),
         Column("rps_before", "req/s before freeze", f_int, "up"),
         Column("rps_during", "req/s during freeze", f_int, "up"),
         Column("rps", "req/s whole run", f_int, "up"), Column("p99", "p99", f_ms, "down")],
        peer_rows(by_peer, cfg.peers))
