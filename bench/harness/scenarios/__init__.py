"""One module per scenario, each with `run(env, peer, cfg)` -> result dict (or
StartError / another exception, reported as `failed: ...`) and
`render_table(by_peer, cfg)` -> its markdown table. SCENARIOS keeps the
command line's names in the report's order."""

from . import big, freeze, idle, kill, steady, steady_jwt, tls

SCENARIOS = {"steady": steady, "tls": tls, "1m": big, "kill": kill, "freeze": freeze, "idle": idle,
             "steady-jwt": steady_jwt}
