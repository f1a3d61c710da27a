"""7. Steady small GETs with JWT authentication: the steady scenario with a
bearer token on every request, for the peers that can check one (Portcullis's
`[service.auth]` jwt, HAProxy's jwt_verify). The cost of authentication is
this table against table 1, peer by peer."""

from ..jwt import Jwt
from ..load import wrk
from ..procs import cpu_seconds_between, cpu_ticks
from ..stage import JWT_PEERS, Stage
from ..table import Column, f_2, f_int, f_ms, peer_rows, render, rounds_phrase


# The runner runs this scenario for these peers only.
PEERS = JWT_PEERS
# The runner runs this scenario in rounds (see rounds.py) and lists these per round.
ROUND_KEYS = ("rps", "p99")
ROUND_FORMATS = {"p99": f_ms}
SUMMED_KEYS = ("errors",)


def run(env, peer, cfg):
    jwt = Jwt(env.openssl, env.dir("jwt"))
    with Stage(env, peer, jwt=jwt) as st:
        url = st.proxy.small
        wrk(env, url, 1, headers=[jwt.header])
        root = st.proxy.proc.pid
        before = cpu_ticks(root)
        r = wrk(env, url, cfg.duration, headers=[jwt.header])
        return {"rps": r["rps"], "p50": r["p50"], "p99": r["p99"], "errors": r["errors"],
                "cpu100k": cpu_seconds_between(before, cpu_ticks(root)) / max(r["requests"], 1) * 1e5}


def render_table(by_peer, cfg):
    return render(
        "7. Steady small GET with JWT authentication",
        f"Table 1's load (`wrk -t1 -c50 -d{cfg.duration}s --latency`, {rounds_phrase(cfg)}) with one ES256 "
        "bearer token on every request: signature, issuer, audience and expiry checked, the subject sent as X-Forwarded-User. "
        "Portcullis verifies a token's signature once and remembers it until it expires; HAProxy 2.6's "
        "jwt_verify checks it on every request. Not run for nginx (its auth_jwt is NGINX Plus "
        "only) nor Apache (no JWT module in Debian).",
        [Column("rps", "req/s", f_int, "up"), Column("p50", "p50", f_ms, "down"),
         Column("p99", "p99", f_ms, "down"), Column("cpu100k", "CPU s / 100k req", f_2, "down"),
         Column("errors", "errors", f_int, "down")],
        peer_rows(by_peer, cfg.peers))
