"""1. Steady small GETs: throughput, latency and CPU per request. Also run
without a peer ("direct" to one backend) as the reference row."""

from ..load import wrk
from ..procs import LOOPBACK, cpu_seconds_between, cpu_ticks
from ..stage import Stage
from ..table import Column, f_2, f_int, f_ms, peer_rows, render, rounds_phrase

# The runner runs this scenario in rounds (see rounds.py) and lists these per round.
ROUND_KEYS = ("rps", "p99")
ROUND_FORMATS = {"p99": f_ms}
SUMMED_KEYS = ("errors",)

DIRECT = "direct"
DIRECT_LABEL = "direct to one backend (reference)"


def warm_up(env, url):
    wrk(env, url, 1)


def run(env, peer, cfg):
    with Stage(env, peer) as st:
        url = st.proxy.small if st.proxy else f"http://{LOOPBACK}:{st.backends[0].port}/"
        warm_up(env, url)
        root = st.proxy.proc.pid if st.proxy else None
        before = cpu_ticks(root) if root else None
        r = wrk(env, url, cfg.duration)
        res = {"rps": r["rps"], "p50": r["p50"], "p99": r["p99"], "errors": r["errors"]}
        if root:
            res["cpu100k"] = cpu_seconds_between(before, cpu_ticks(root)) / max(r["requests"], 1) * 1e5
        return res


def render_table(by_peer, cfg):
    reference = [(DIRECT_LABEL, by_peer[DIRECT])] if DIRECT in by_peer else []
    return render(
        "1. Steady small GET",
        f"`wrk -t1 -c50 -d{cfg.duration}s --latency` on the small body (19 bytes), after a 1 s warm-up; "
        f"{rounds_phrase(cfg)}. "
        "CPU: utime+stime of all the peer's processes over the run, per 100,000 requests.",
        [Column("rps", "req/s", f_int, "up"), Column("p50", "p50", f_ms, "down"),
         Column("p99", "p99", f_ms, "down"), Column("cpu100k", "CPU s / 100k req", f_2, "down"),
         Column("errors", "errors", f_int, "down")],
        peer_rows(by_peer, cfg.peers), reference)
