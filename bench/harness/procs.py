"""Processes the harness starts: spawned in their own session, stopped by pid
(with their descendants, found through /proc), never by name.

Also: free loopback ports chosen at run time, and readiness waits that poll a
condition instead of sleeping a fixed time.
"""

import os
import resource
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

LOOPBACK = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
# Wanted open-file limit; lowered by settle_nofile() to the hard limit when it
# cannot be raised (no CAP_SYS_RESOURCE).
NOFILE_WANTED = 65536
_nofile = NOFILE_WANTED


class StartError(Exception):
    """A peer (or a backend) could not be started; reported as `failed: ...`."""


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def nofile():
    """The open-file limit every process of this run gets."""
    return _nofile


def _stat(pid):
    """(ppid, utime+stime ticks, starttime) of a pid, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(")") + 2:].split()
    # fields[0] is field 3 (state) of proc(5): ppid=4, utime=14, stime=15, starttime=22
    return int(fields[1]), int(fields[11]) + int(fields[12]), int(fields[19])


def process_tree(root):
    """Pids of root and all its descendants (nginx and apache workers)."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _stat(int(entry))
            if st:
                children.setdefault(st[0], []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        if _stat(pid) is None:
            continue
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def cpu_ticks(root):
    """{(pid, starttime): utime+stime ticks} for the process tree of root."""
    out = {}
    for pid in process_tree(root):
        st = _stat(pid)
        if st:
            out[(pid, st[2])] = st[1]
    return out


def cpu_seconds_between(before, after):
    ticks = sum(v - before.get(k, 0) for k, v in after.items())
    return ticks / CLK_TCK


def rss_bytes(root):
    """Sum of VmRSS over the process tree of root."""
    total = 0
    for pid in process_tree(root):
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


def settle_nofile():
    """Raise this process's open-file limit to NOFILE_WANTED, or to its hard limit
    when that is all it may have; every process started later inherits it."""
    global _nofile
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE_WANTED, NOFILE_WANTED))
        _nofile = NOFILE_WANTED
    except (ValueError, OSError):
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        _nofile = hard if hard != resource.RLIM_INFINITY else NOFILE_WANTED
        resource.setrlimit(resource.RLIMIT_NOFILE, (_nofile, hard))
    return _nofile


def _raise_nofile():
    """In the child before exec, in case the parent's limit was changed."""
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (_nofile, _nofile))
    except (ValueError, OSError):
        pass


def signal_pid(pid, sig):
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


class Procs:
    """Every process a run starts; stopped by pid (and its descendants' pids)."""

    def __init__(self):
        self.live = []

    def spawn(self, cmd, log_path, env=None, cwd=None):
        with open(log_path, "ab") as out:
            p = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                env=env, cwd=cwd, start_new_session=True, preexec_fn=_raise_nofile)
        p.log_path = log_path
        self.live.append(p)
        return p

    def stop(self, p, grace=3.0):
        if p not in self.live:
            return
        self._stop(p, grace)
        self.live.remove(p)  # only once it is down: an interrupted stop is redone by stop_all

    def _stop(self, p, grace):
        tree = []
        for pid in process_tree(p.pid) if p.poll() is None else []:
            st = _stat(pid)
            if st:
                tree.append((pid, st[2]))
        for pid, _ in tree:  # a frozen process cannot act on SIGTERM
            signal_pid(pid, signal.SIGCONT)
        if p.poll() is None:
            signal_pid(p.pid, signal.SIGTERM)
            try:
                p.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        for pid, start in tree:
            st = _stat(pid)
            if st and st[2] == start:  # still the same process, not a reused pid
                signal_pid(pid, signal.SIGKILL)
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            log(f"pid {p.pid} did not exit")

    def stop_all(self):
        for p in list(reversed(self.live)):
            self.stop(p, grace=2.0)


PROCS = Procs()


def free_port():
    """A loopback port nothing listens on now (the kernel's choice)."""
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def log_tail(path, lines=3):
    try:
        text = Path(path).read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    tail = " / ".join(line.strip() for line in text[-lines:] if line.strip())
    return tail[:300]


_OPENER = urllib.request.build_opener(
    urllib.request.ProxyHandler({}),
    urllib.request.HTTPSHandler(context=ssl._create_unverified_context()))


def http_get(url, timeout=2.0, headers=()):
    """GET url with "Name: value" header lines."""
    request = urllib.request.Request(url, headers=dict(h.split(": ", 1) for h in headers))
    with _OPENER.open(request, timeout=timeout) as r:
        return r.status, r.read()


def wait_ready(url, proc, what, timeout=20.0, headers=()):
    """Polls url (with the header lines given) until it answers 200; StartError
    when proc exits or time runs out."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise StartError(f"{what} exited with status {proc.returncode}: {log_tail(proc.log_path)}")
        try:
            status, _ = http_get(url, timeout=1.0, headers=headers)
            if status == 200:
                return
            last = f"status {status}"
        except urllib.error.HTTPError as e:
            last = f"status {e.code}"
        except Exception as e:  # not listening yet
            last = str(e)
        time.sleep(0.1)
    raise StartError(f"{what} not ready after {timeout:.0f} s ({last}): {log_tail(proc.log_path)}")


def sleep_until(t):
    delay = t - time.monotonic()
    if delay > 0:
        time.sleep(delay)
