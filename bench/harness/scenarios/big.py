"""3. 1 MiB responses: throughput and CPU per GiB relayed."""

from ..load import wrk
from ..procs import cpu_seconds_between, cpu_ticks
from ..stage import Stage
from ..table import Column, f_3, f_int, f_ms, peer_rows, render


def run(env, peer, cfg):
    with Stage(env, peer) as st:
        wrk(env, st.proxy.big, 1, conns=10)
        root = st.proxy.proc.pid
        before = cpu_ticks(root)
        r = wrk(env, st.proxy.big, cfg.duration, conns=10)
        cpu = cpu_seconds_between(before, cpu_ticks(root))
        gib = r["requests"] / 1024  # 1 MiB each
        return {"mib_s": r["mib_s"], "rps": r["rps"], "p99": r["p99"], "errors": r["errors"],
                "cpu_gib": cpu / gib if gib else None}


def render_table(by_peer, cfg):
    return render(
        "3. 1 MiB responses",
        f"`wrk -t1 -c10 -d{cfg.duration}s` on a 1 MiB file, after a 1 s warm-up. MiB/s is wrk's "
        "Transfer/sec (wrk's MB are 2^20 bytes). CPU: the peer's CPU seconds per GiB relayed.",
        [Column("mib_s", "MiB/s", f_int, "up"), Column("rps", "req/s", f_int, "up"),
         Column("p99", "p99", f_ms, "down"), Column("cpu_gib", "CPU s / GiB", f_3, "down"),
         Column("errors", "errors", f_int, "down")],
        peer_rows(by_peer, cfg.peers))
