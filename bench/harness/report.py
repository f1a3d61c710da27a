"""The report: a fixed introduction (report-head.md), what this run was and ran
on, one table per scenario, how each peer is configured (report-config.md),
and then the hand-written notes kept from the existing file."""

import os
import platform
import string
import subprocess
from pathlib import Path

from .peers import portcullis
from .procs import nofile
from .rounds import listing
from .scenarios import SCENARIOS
from .tools import ROOT, cmd_version

HERE = Path(__file__).resolve().parent
# Everything from this line on in the report file is written by hand (analysis,
# optimisation history) and survives a new run.
NOTES_MARKER = "<!-- bench/run keeps everything below this line -->"
SMOKE_MODE = "smoke (1 s runs: checks that the harness works, not for comparison)"


def tables(results, cfg):
    """The markdown table of every scenario in results, in the report's order,
    each followed by its rounds when it ran more than one."""
    return [module.render_table(results[name], cfg)
            + _rounds_text(results[name], getattr(module, "ROUND_KEYS", ()), getattr(module, "ROUND_FORMATS", None))
            for name, module in SCENARIOS.items() if name in results]


def _rounds_text(by_peer, keys, formats):
    text = listing(by_peer, keys, formats) if keys else ""
    return "\n" + text if text else ""


def notes_after_marker(existing):
    """The part of an existing report to keep: from the marker on, after a blank
    line; nothing when there is no marker."""
    at = existing.find(NOTES_MARKER)
    return "\n" + existing[at:] if at >= 0 else ""


def kept_notes(out):
    try:
        existing = out.read_text()
    except OSError:
        return ""
    return notes_after_marker(existing)


def _first_field(path, prefix, sep=":"):
    """The value of the first line of a /proc- or os-release-style file that
    starts with prefix, or None."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(prefix):
                    return line.split(sep, 1)[1].strip()
    except OSError:
        pass
    return None


def _git(*args):
    return subprocess.run(["git", "-C", str(ROOT)] + list(args), stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, text=True).stdout.strip()


def _portcullis_line(env):
    commit = _git("rev-parse", "HEAD") or "unknown"
    dirty = _git("status", "--porcelain", "--untracked-files=no", "--", "crates", "Cargo.toml", "Cargo.lock")
    return (f"commit {commit[:12]}" + (" with uncommitted changes in crates/ or Cargo files" if dirty else "")
            + (f", `{cmd_version([str(env.portcullis), '--version'])}`" if env.portcullis else ""))


def machine(env):
    """The machine and program versions, as markdown list items."""
    model = _first_field("/proc/cpuinfo", "model name") or "?"
    mem_kib = _first_field("/proc/meminfo", "MemTotal")
    mem = f"{int(mem_kib.split()[0]) / (1 << 20):.1f} GiB" if mem_kib else "?"
    osname = (_first_field("/etc/os-release", "PRETTY_NAME=", "=") or "?").strip('"')
    items = [
        ("CPU", f"{os.cpu_count()} × {model} (`nproc` = {len(os.sched_getaffinity(0))})"),
        ("memory", mem),
        ("OS, kernel", f"{osname}, Linux {platform.release()}"),
        ("Portcullis", _portcullis_line(env)),
        ("nginx", cmd_version([env.nginx or "nginx", "-v"], r"nginx/\S+")),
        ("HAProxy", cmd_version([env.haproxy or "haproxy", "-v"], r"HAProxy version \S+")),
        ("Apache", cmd_version([env.apache or "apache2", "-v"], r"Apache/\S+( \(\w+\))?")),
        ("wrk", cmd_version([env.wrk or "wrk", "-v"], r"wrk \S+")),
        ("h2load", cmd_version([env.h2load or "h2load", "--version"])),
        ("Python", platform.python_version()),
    ]
    return "\n".join(f"- {k}: {v}" for k, v in items)


def this_run(cfg, started, elapsed):
    """The "This run" list items that do not depend on the machine."""
    mode = SMOKE_MODE if cfg.smoke else "full"
    return [f"- date: {started.strftime('%Y-%m-%d %H:%M UTC')}, {elapsed / 60:.1f} minutes; mode: {mode}",
            f"- reproduce: `{cfg.command}` (from the repository root; `bench/run --help` for options)",
            f"- load average when the run began: {' '.join(cfg.loadavg)} (1, 5, 15 min; anything well above 0 "
            "means other work shared the CPU and the figures are noisier)",
            f"- open-file limit of every process: {nofile():,}"]


def assemble(run_items, machine_text, table_texts):
    """The whole generated part of the report, before the kept notes."""
    head = (HERE / "report-head.md").read_text()
    config = string.Template((HERE / "report-config.md").read_text()).substitute(
        stall_timeout=portcullis.STALL_TIMEOUT)
    parts = [head, "## This run\n"] + run_items + [machine_text, "", "## Results\n"] + table_texts + [config]
    return "\n".join(parts)


def report(results, cfg, env, started, elapsed):
    return assemble(this_run(cfg, started, elapsed), machine(env), tables(results, cfg))
