"""The benchmark harness shared by `bench/run` and `bench/overhead`.

Modules: `procs` (processes started and stopped by pid, free loopback ports,
readiness waits), `tools` (finding, installing and building the programs a run
needs), `load` (wrk and h2load, and the parsers of their output), `peers` (one
module per proxy, each with its configuration as a template file beside it),
`scenarios` (one module per scenario: how it is measured and how its table
reads), `report` (the markdown report) and `runner` (`bench/run`'s command
line). Python 3 standard library only.
"""
