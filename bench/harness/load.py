"""The load generators, wrk and h2load, run in the background by pid, and the
parsers of what they print."""

import re
import subprocess
import time

from .procs import PROCS, StartError

CLIENT_TIMEOUT = 2  # wrk --timeout, seconds

UNIT_S = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
UNIT_B = {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}


def parse_wrk(text):
    """wrk's summary as a dict: requests, seconds, rps, mib_s, p50 and p99 (seconds,
    None without --latency), socket errors, non2xx, errors (all of them),
    errors_no_timeout and error_detail ("read 30, timeout 2" or "none")."""
    r = {"text": text}
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+), ([\d.]+)(\w+) read", text)
    if not m:
        raise RuntimeError(f"wrk printed no summary: {text.strip()[-300:]}")
    r["requests"] = int(m.group(1))
    r["seconds"] = float(m.group(2)) * UNIT_S[m.group(3)]
    r["rps"] = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    m = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", text)
    r["mib_s"] = float(m.group(1)) * UNIT_B[m.group(2)] / (1 << 20)
    for pct in ("50", "99"):
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(\w+)", text, re.M)
        r[f"p{pct}"] = float(m.group(1)) * UNIT_S[m.group(2)] if m else None
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    r["connect"], r["read"], r["write"], r["timeout"] = (int(x) for x in m.groups()) if m else (0, 0, 0, 0)
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    r["non2xx"] = int(m.group(1)) if m else 0
    r["errors"] = r["non2xx"] + r["connect"] + r["read"] + r["write"] + r["timeout"]
    r["errors_no_timeout"] = r["errors"] - r["timeout"]
    parts = [f"{k} {r[k]}" for k in ("non2xx", "connect", "read", "write", "timeout") if r[k]]
    r["error_detail"] = ", ".join(parts).replace("non2xx", "non-2xx") or "none"
    return r


def parse_h2load(text):
    """h2load's summary as a dict: rps, succeeded, failed (failed + errored +
    timeout), non2xx and proto (the negotiated application protocol)."""
    m = re.search(r"finished in ([\d.]+)(\w+), ([\d.]+) req/s", text)
    if not m:
        raise RuntimeError(f"h2load: {text.strip()[-300:]}")
    r = {"rps": float(m.group(3))}
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                  r"(\d+) errored, (\d+) timeout", text)
    r["succeeded"], r["failed"] = int(m.group(4)), int(m.group(5)) + int(m.group(6)) + int(m.group(7))
    m = re.search(r"status codes: (\d+) 2xx", text)
    r["non2xx"] = r["succeeded"] - int(m.group(1)) if m else 0
    m = re.search(r"Application protocol: (\S+)", text)
    r["proto"] = m.group(1) if m else "?"
    return r


class Wrk:
    """wrk -t1 in the background, its output in a file of work; wait() parses it.
    timeout=None leaves out --timeout; latency=False leaves out --latency."""

    def __init__(self, binary, work, url, duration, conns=50, timeout=CLIENT_TIMEOUT, latency=True,
                 headers=()):
        if not binary:
            raise StartError("wrk is not installed")
        self.out = work / f"wrk-{time.monotonic_ns()}.txt"
        self.duration = duration
        cmd = [binary, "-t1", f"-c{conns}", f"-d{duration}s"]
        if timeout is not None:
            cmd += ["--timeout", f"{timeout}s"]
        if latency:
            cmd.append("--latency")
        for h in headers:
            cmd += ["-H", h]
        self.proc = PROCS.spawn(cmd + [url], self.out)
        self.started = time.monotonic()

    def wait(self):
        try:
            self.proc.wait(timeout=self.duration + 30)
        finally:
            PROCS.stop(self.proc)
        return parse_wrk(self.out.read_text(errors="replace"))


def wrk(env, url, duration, conns=50, headers=()):
    return Wrk(env.wrk, env.work, url, duration, conns, headers=headers).wait()


def h2load(env, url, n, limit):
    if not env.h2load:
        raise StartError("h2load is not installed")
    out = env.work / f"h2load-{time.monotonic_ns()}.txt"
    proc = PROCS.spawn([env.h2load, "-n", str(n), "-c", "50", "-m", "10", url], out)
    try:
        proc.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"h2load -n {n} did not finish in {limit} s")
    finally:
        PROCS.stop(proc)
    return parse_h2load(out.read_text(errors="replace"))
