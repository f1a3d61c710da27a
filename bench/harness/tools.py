"""The programs a run needs: found on PATH or in the sbin directories, installed
from Debian packages when missing, Portcullis built with cargo, and the TLS
certificate every peer serves."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from .procs import log

ROOT = Path(__file__).resolve().parent.parent.parent


def which(name):
    found = shutil.which(name)
    if found:
        return found
    for d in ("/usr/sbin", "/sbin", "/usr/local/sbin"):
        if os.access(f"{d}/{name}", os.X_OK):
            return f"{d}/{name}"
    return None


def missing_packages(peers, scenarios):
    """Debian packages of the tools these peers and scenarios need that are not installed."""
    wanted = [("nginx", "nginx-light"), ("wrk", "wrk"), ("curl", "curl")]
    if "haproxy" in peers:
        wanted.append(("haproxy", "haproxy"))
    if "apache" in peers:
        wanted.append(("apache2", "apache2"))
    if "tls" in scenarios:
        wanted.append(("h2load", "nghttp2-client"))
    if "steady-jwt" in scenarios:
        wanted.append(("openssl", "openssl"))
    return [pkg for binary, pkg in wanted if not which(binary)]


def install_missing(peers, scenarios):
    missing = missing_packages(peers, scenarios)
    if not missing:
        return
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    log(f"installing {' '.join(missing)}")
    # Keep package scripts from starting system services (nginx, haproxy and apache2
    # would otherwise bind port 80 on every address): the usual policy-rc.d guard,
    # only when the machine has none, removed afterwards.
    guard = Path("/usr/sbin/policy-rc.d")
    made_guard = False
    if not guard.exists():
        subprocess.run(sudo + ["sh", "-c", f"printf '#!/bin/sh\\nexit 101\\n' > {guard} && chmod 755 {guard}"],
                       check=True)
        made_guard = True
    try:
        subprocess.run(sudo + ["apt-get", "update", "-q"], check=True)
        subprocess.run(sudo + ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-q",
                               "--no-install-recommends"] + missing, check=True)
    finally:
        if made_guard:
            subprocess.run(sudo + ["rm", "-f", str(guard)])


def build_portcullis(skip):
    """(binary, None), or (None, why not)."""
    binary = ROOT / "target" / "release" / "portcullis"
    if skip:
        if binary.exists():
            return binary, None
        return None, f"--no-build and no {binary}"
    log("cargo build --release -p portcullis")
    try:
        r = subprocess.run(["cargo", "build", "--release", "-p", "portcullis"], cwd=ROOT,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    except OSError as e:
        return None, f"cargo build failed: {e}"
    if r.returncode != 0:
        errors = [line for line in r.stdout.splitlines() if line.startswith("error")]
        sys.stderr.write(r.stdout[-4000:])
        return None, "cargo build failed: " + (errors[0] if errors else f"status {r.returncode}")
    return binary, None


def build_floor():
    """Builds bench/floor (its own workspace); None, or why it failed."""
    log("cargo build --release (bench/floor)")
    try:
        r = subprocess.run(["cargo", "build", "--release"], cwd=ROOT / "bench" / "floor",
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    except OSError as e:
        return f"cargo build failed: {e}"
    if r.returncode != 0:
        sys.stderr.write(r.stdout[-4000:])
        return f"cargo build failed: status {r.returncode}"
    return None


def make_certs(work, portcullis):
    """(certificate, key) for localhost under work/tls: `portcullis cert create`
    when there is a binary, openssl otherwise."""
    out = work / "tls"
    if portcullis:
        r = subprocess.run([str(portcullis), "cert", "create", "--host", "localhost", "--out", str(out)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if r.returncode == 0:
            return out / "gateway.crt", out / "gateway.key"
        log(f"portcullis cert create failed, using openssl: {r.stdout.strip()[-200:]}")
    out.mkdir(exist_ok=True)
    crt, key = out / "gateway.crt", out / "gateway.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                    "-days", "2", "-keyout", str(key), "-out", str(crt)],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return crt, key


def cmd_version(cmd, pattern=None):
    """The first line a program prints for its version (or the part matching pattern)."""
    try:
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"
    text = r.stdout.strip()
    if pattern:
        m = re.search(pattern, text)
        return m.group(0) if m else text.splitlines()[0] if text else "?"
    return text.splitlines()[0] if text else "?"
