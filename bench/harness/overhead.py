"""`bench/overhead`: two Portcullis builds side by side on one nginx backend,
each with the access log off and on; wrk req/s and callgrind instructions per
request."""

import argparse
import http.client
import os
import re
import sys
import tempfile
import time
from pathlib import Path

from .load import Wrk
from .peers import backend, portcullis
from .procs import LOOPBACK, PROCS, free_port, settle_nofile, wait_ready
from .tools import which

BUILDS = ("before", "after")
LOGS = {"log off": "warn", "log on": "info"}
STOP_GRACE = 10.0  # callgrind writes its output file on the way out


def parse_args(argv, description):
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", required=True)
    parser.add_argument("--after", required=True)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-callgrind", action="store_true")
    return parser.parse_args(argv)


def send_requests(port, count):
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=30)
    for _ in range(count):
        conn.request("GET", portcullis.SMALL_PATH)
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"status {response.status}")
    conn.close()


class Bench:
    """The work directory, the backend and the tools of one overhead run."""

    def __init__(self, work, backend_port, wrk):
        self.work, self.backend_port, self.wrk = work, backend_port, wrk

    def serve(self, binary, name, log, workers, wrapper=()):
        """Portcullis with a fresh minimal config, ready once it answered a request; (process, port)."""
        port = free_port()
        config = portcullis.write_minimal_config(self.work, name, [self.backend_port], port)
        env = dict(os.environ, PORTCULLIS_WORKERS=str(workers), RUST_LOG=log)
        # Output to /dev/null, as measured before: with the access log on, writing it to a file would cost more.
        process = PROCS.spawn([*wrapper, binary, "serve", "-c", str(config)], os.devnull, env=env)
        # The topology is read before listening; the first request that passes says it is loaded.
        wait_ready(f"http://{LOOPBACK}:{port}{portcullis.SMALL_PATH}", process, name, timeout=120)
        return process, port

    def rate(self, binary, name, level, seconds):
        """wrk req/s through one build with 2 workers; an error when any answer was not 2xx or 3xx."""
        process, port = self.serve(binary, name, level, 2)
        try:
            r = Wrk(self.wrk, self.work, f"http://{LOOPBACK}:{port}{portcullis.SMALL_PATH}", seconds,
                    timeout=None, latency=False).wait()
        finally:
            PROCS.stop(process, grace=STOP_GRACE)
        if r["non2xx"]:
            raise RuntimeError(f"wrk saw {r['non2xx']} errors")
        return r["rps"]

    def instructions(self, binary, name, level, count):
        """Instructions callgrind counted in a 1-worker run that served count requests."""
        out = self.work / f"callgrind.{os.getpid()}.{time.time_ns()}"
        process, port = self.serve(binary, name, level, 1,
                                   wrapper=("valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"))
        try:
            send_requests(port, count)
        finally:
            PROCS.stop(process, grace=STOP_GRACE)
        text = out.read_text(errors="replace")
        out.unlink()
        return parse_callgrind_total(text)


def parse_callgrind_total(text):
    match = re.search(r"^summary:\s+(\d+)", text, re.M) or re.search(r"^totals:\s+(\d+)", text, re.M)
    return int(match.group(1))


def measure_rates(bench, builds, rounds, seconds):
    """{(build, log label): [req/s per round]}, builds and log settings alternating."""
    rates = {(b, label): [] for b in builds for label in LOGS}
    for round_index in range(rounds):
        for build, binary in builds.items():
            for label, level in LOGS.items():
                rate = bench.rate(binary, f"{build}-{round_index}-{level}", level, seconds)
                rates[(build, label)].append(rate)
                print(f"round {round_index + 1}: {build}, {label}: {rate:,.0f} req/s", file=sys.stderr)
    return rates


def measure_instructions(bench, builds):
    """{(build, log label): instructions per request}: 3,000 requests minus 1,000, over 2,000."""
    instructions = {}
    for build, binary in builds.items():
        for label, level in LOGS.items():
            small = bench.instructions(binary, f"cg-{build}-{level}", level, 1000)
            large = bench.instructions(binary, f"cg2-{build}-{level}", level, 3000)
            instructions[(build, label)] = (large - small) / 2000
    return instructions


def median(values):
    return sorted(values)[len(values) // 2]


def table(rates, instructions):
    """The markdown table printed at the end."""
    base = median(rates[("before", "log off")])
    base_ir = instructions.get(("before", "log off"))
    lines = ["| build | access log | req/s (median) | vs before, log off | instructions per request "
             "| vs before, log off |", "|---|---|---|---|---|---|"]
    for (build, label), values in rates.items():
        med = median(values)
        ir = instructions.get((build, label))
        ir_text = f"{ir:,.0f}" if ir else "-"
        ir_ratio = f"{ir / base_ir:.3f}" if ir and base_ir else "-"
        lines.append(f"| {build} | {label} | {med:,.0f} | {med / base:.3f} | {ir_text} | {ir_ratio} |")
    return "\n".join(lines)


def main(argv, description):
    args = parse_args(argv, description)
    for tool in ["nginx", "wrk"] + ([] if args.no_callgrind else ["valgrind"]):
        if not which(tool):
            sys.exit(f"{tool} is missing: apt-get install -y {tool}")
    settle_nofile()
    builds = {"before": args.before, "after": args.after}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.chmod(work, 0o755)
        try:
            back = backend.start(which("nginx"), work, work, "backend")
            bench = Bench(work, back.port, which("wrk"))
            rates = measure_rates(bench, builds, args.rounds, args.seconds)
            instructions = {} if args.no_callgrind else measure_instructions(bench, builds)
        finally:
            PROCS.stop_all()
    print(table(rates, instructions))
    return 0
