"""What every scenario of a run shares: the work directory, the programs, the
1 MiB file the backends serve and the TLS certificate."""

import os

from .tools import make_certs, which


class Env:
    """Binaries, certificates and files shared by every scenario of a run."""

    def __init__(self, work, portcullis, portcullis_error):
        self.work = work
        self.portcullis = portcullis
        self.portcullis_error = portcullis_error
        self.nginx = which("nginx")
        self.haproxy = which("haproxy")
        self.apache = which("apache2")
        self.wrk = which("wrk")
        self.h2load = which("h2load")
        self.openssl = which("openssl")
        self.www = work / "www"
        self.www.mkdir()
        (self.www / "1m").write_bytes(os.urandom(1 << 20))
        self.cert, self.key = make_certs(work, portcullis)
        self.pem = work / "tls" / "combined.pem"  # HAProxy wants cert and key in one file
        self.pem.write_text(self.cert.read_text() + self.key.read_text())
        os.chmod(self.pem, 0o600)
        self.seq = 0

    def dir(self, name):
        """A fresh numbered directory for one process's config and logs."""
        self.seq += 1
        d = self.work / f"{self.seq:03d}-{name}"
        d.mkdir()
        os.chmod(d, 0o777)  # nginx and apache workers may run as nobody / www-data
        return d
