"""`bench/run`: its command line, the loop over peers and scenarios, and where
the report goes."""

import argparse
import datetime
import os
import shlex
import shutil
import signal
import tempfile
import time
from pathlib import Path

from . import report, rounds
from .env import Env
from .procs import PROCS, StartError, log, settle_nofile
from .scenarios import SCENARIOS, steady
from .stage import OPTIONAL_PEERS, PEERS
from .tools import ROOT, build_floor, build_portcullis, install_missing

SCENARIO_NAMES = list(SCENARIOS)


def parse_args(argv, description):
    ap = argparse.ArgumentParser(prog="bench/run", description=description,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true",
                    help="1 s runs and 1,000 idle connections; writes the report to a temp file")
    ap.add_argument("--only", default=",".join(PEERS), help=f"peers, comma separated ({','.join(PEERS)}; also {','.join(sorted(OPTIONAL_PEERS))})")
    ap.add_argument("--scenarios", default=",".join(SCENARIO_NAMES),
                    help=f"scenarios, comma separated ({','.join(SCENARIO_NAMES)})")
    ap.add_argument("--duration", type=int, help="seconds per measurement (default 8, smoke 1)")
    ap.add_argument("--rounds", type=int,
                    help="rounds of the throughput scenarios, peers interleaved, medians reported "
                         "(default 3, smoke 1)")
    ap.add_argument("--idle-connections", type=int, help="idle scenario size (default 10000, smoke 1000)")
    ap.add_argument("--out", help="report file (default docs/benchmarks.md, smoke: a temp file)")
    ap.add_argument("--no-install", action="store_true", help="do not apt-get install missing tools")
    ap.add_argument("--no-build", action="store_true", help="use the existing target/release/portcullis")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (configs, logs)")
    cfg = ap.parse_args(argv)
    _check(ap, cfg)
    cfg.command = "bench/run" + ("" if not argv else " " + " ".join(shlex.quote(a) for a in argv))
    return cfg


def _check(ap, cfg):
    """Validates the options and fills in the derived settings."""
    cfg.peers = [p.strip() for p in cfg.only.split(",") if p.strip()]
    cfg.scenarios = [s.strip() for s in cfg.scenarios.split(",") if s.strip()]
    for p in cfg.peers:
        if p not in PEERS and p not in OPTIONAL_PEERS:
            ap.error(f"unknown peer {p!r}; peers: {', '.join(PEERS + sorted(OPTIONAL_PEERS))}")
    for s in cfg.scenarios:
        if s not in SCENARIOS:
            ap.error(f"unknown scenario {s!r}; scenarios: {', '.join(SCENARIO_NAMES)}")
    cfg.duration = cfg.duration or (1 if cfg.smoke else 8)
    if not 1 <= cfg.duration <= 120:
        ap.error("--duration must be 1..120")
    cfg.rounds = cfg.rounds or (1 if cfg.smoke else 3)
    if not 1 <= cfg.rounds <= 9:
        ap.error("--rounds must be 1..9")
    cfg.idle = cfg.idle_connections or (1000 if cfg.smoke else 10000)
    if not 1 <= cfg.idle <= 20000:
        ap.error("--idle-connections must be 1..20000")
    cfg.kill_duration = max(cfg.duration, 4)          # the kill comes 2 s in
    cfg.freeze_duration = max(cfg.duration, 9)        # 2 s, 5 s frozen, 2 s after
    cfg.idle_hold = 2.0 if cfg.smoke else 5.0


def on_signal(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def failure_text(e):
    """A failure as one table cell: no pipes, no newlines."""
    text = f"failed: {e}" if isinstance(e, StartError) else f"failed: {type(e).__name__}: {e}"
    return text.replace("|", "/").replace("\n", " ")


def scenario_peers(scen, cfg):
    """The peers that run scenario scen, in the command line's order; steady adds
    the direct reference."""
    only = getattr(SCENARIOS[scen], "PEERS", None)
    peers = [p for p in cfg.peers if only is None or p in only]  # others: no equivalent, the table says so
    return peers + [steady.DIRECT] if scen == "steady" else peers


def run_one(env, cfg, scen, peer, label):
    log(f"{peer}: {scen}{label}")
    try:
        return SCENARIOS[scen].run(env, peer, cfg)
    except KeyboardInterrupt:
        raise
    except Exception as e:
        res = failure_text(e)
        log(res)
        return res


def run_scenarios(env, cfg, results):
    """Every scenario for its peers (results filled in round by round). The
    throughput scenarios run cfg.rounds rounds with the peers interleaved."""
    for scen in cfg.scenarios:
        module = SCENARIOS[scen]
        peers = scenario_peers(scen, cfg)
        n = cfg.rounds if getattr(module, "ROUND_KEYS", None) else 1
        runs = {p: [] for p in peers}
        for r in range(n):
            for peer in rounds.rotated(peers, r):
                runs[peer].append(run_one(env, cfg, scen, peer, f" (round {r + 1} of {n})" if n > 1 else ""))
            summed = getattr(module, "SUMMED_KEYS", ())
            results[scen] = {p: rounds.combine(rs, summed) for p, rs in runs.items() if rs}


def report_path(cfg):
    if cfg.out:
        return Path(cfg.out)
    if cfg.smoke:
        return Path(tempfile.mkstemp(prefix="portcullis-bench-smoke-", suffix=".md")[1])
    return ROOT / "docs" / "benchmarks.md"


def write_report(results, cfg, env, started, elapsed, t_load):
    """Writes and prints the report; exit status 3 when some cell failed."""
    text = report.report(results, cfg, env, started, elapsed)
    out = report_path(cfg)
    text += report.kept_notes(out)
    out.write_text(text)
    print(text)
    log(f"done in {elapsed:.0f} s ({time.monotonic() - t_load:.0f} s of scenarios); report: {out}")
    failed = [f"{p} {sc}" for sc, by_peer in results.items() for p, r in by_peer.items() if isinstance(r, str)]
    if failed:
        log(f"failed: {', '.join(failed)}")
        return 3
    return 0


def prepare(cfg):
    """Tools installed and Portcullis built as asked: (binary or None, why not)."""
    if not cfg.no_install:
        install_missing(cfg.peers, cfg.scenarios)
    # Without Portcullis among the peers, an existing binary still makes the certificates
    # (openssl does otherwise); no build then.
    portcullis, perr = build_portcullis(cfg.no_build or "portcullis" not in cfg.peers)
    if perr:
        log(f"Portcullis unavailable: {perr}")
    if "floor" in cfg.peers and not cfg.no_build:
        ferr = build_floor()
        if ferr:
            log(f"the floor unavailable: {ferr}")
    return portcullis, perr


def main(argv, description):
    cfg = parse_args(argv, description)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    settle_nofile()
    t0 = time.monotonic()
    started = datetime.datetime.now(datetime.timezone.utc)
    cfg.loadavg = Path("/proc/loadavg").read_text().split()[:3]
    portcullis, perr = prepare(cfg)
    work = Path(tempfile.mkdtemp(prefix="portcullis-bench-"))
    os.chmod(work, 0o755)
    results = {}
    t_load = time.monotonic()
    try:
        env = Env(work, portcullis, perr)
        run_scenarios(env, cfg, results)
        return write_report(results, cfg, env, started, time.monotonic() - t0, t_load)
    except KeyboardInterrupt:
        log("interrupted: stopping what this run started; figures so far (not written):")
        if results:
            print("\n".join(report.tables(results, cfg)))
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        PROCS.stop_all()
        if cfg.keep:
            log(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
