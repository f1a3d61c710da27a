"""2. TLS termination: HTTP/1.1 with wrk, HTTP/2 with h2load."""

from ..load import h2load, wrk
from ..stage import Stage
from ..table import Column, f_int, f_ms, peer_rows, render, rounds_phrase
from .steady import warm_up

# The runner runs this scenario in rounds (see rounds.py) and lists these per round.
ROUND_KEYS = ("h1_rps", "h2_rps")
SUMMED_KEYS = ("h1_errors", "h2_failed")


def h2_requests(h1_rps, duration):
    """As many requests as HTTP/1.1 did in D seconds, so h2load takes about D
    seconds too: rounded down to a thousand, within 2,000..2,000,000."""
    return int(min(max(h1_rps * duration, 2000), 2_000_000) // 1000 * 1000)


def run(env, peer, cfg):
    with Stage(env, peer, tls=True) as st:
        warm_up(env, st.proxy.small)
        r = wrk(env, st.proxy.small, cfg.duration)
        n = h2_requests(r["rps"], cfg.duration)
        h = h2load(env, st.proxy.small, n, limit=30 + 15 * cfg.duration)
        return {"h1_rps": r["rps"], "h1_p99": r["p99"], "h1_errors": r["errors"], "h2_rps": h["rps"],
                "h2_failed": h["failed"] + h["non2xx"], "h2_proto": h["proto"], "h2_n": n}


def render_table(by_peer, cfg):
    return render(
        "2. TLS termination",
        f"HTTP/1.1: `wrk -t1 -c50 -d{cfg.duration}s` on https. HTTP/2: `h2load -n N -c 50 -m 10` on https, "
        "N = the HTTP/1.1 req/s × D rounded down to a thousand (so both take about D seconds). "
        "Certificate from `portcullis cert create` (ECDSA P-256); the backends stay plain HTTP. "
        f"Both loads {rounds_phrase(cfg)}.",
        [Column("h1_rps", "HTTP/1.1 req/s", f_int, "up"), Column("h1_p99", "HTTP/1.1 p99", f_ms, "down"),
         Column("h2_rps", "HTTP/2 req/s", f_int, "up"),
         Column("h2_failed", "HTTP/2 failed or non-2xx", f_int, "down"),
         Column("h2_proto", "h2load protocol", str), Column("h1_errors", "HTTP/1.1 errors", f_int, "down")],
        peer_rows(by_peer, cfg.peers))
