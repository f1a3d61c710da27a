"""Every peer's configuration template fills in completely and says what the
harness means: loopback addresses only, the given ports, TLS only when asked."""

import tempfile
import types
import unittest
from pathlib import Path

from harness.peers import backend, haproxy, portcullis, render


class FakeEnv:
    def __init__(self, work):
        self.cert, self.key, self.pem = work / "c.crt", work / "c.key", work / "c.pem"


BACKENDS = [types.SimpleNamespace(port=40001), types.SimpleNamespace(port=40002)]


class Templates(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.work = Path(self.tmp.name)
        self.env = FakeEnv(self.work)

    def tearDown(self):
        self.tmp.cleanup()

    def test_a_missing_value_is_an_error(self):
        with self.assertRaises(KeyError):
            render("haproxy.cfg", nofile=1, bind="x")

    def test_portcullis_config_and_topology(self):
        conf = portcullis.write_config(self.env, self.work, 40000, BACKENDS, tls=True).read_text()
        self.assertIn('listen = "127.0.0.1:40000"', conf)
        self.assertIn(f'tls = {{ cert = "{self.env.cert}", key = "{self.env.key}" }}\nmax_connections = 30000', conf)
        self.assertIn(f'store = "dir:{self.work}/store"', conf)
        topo = (self.work / "store" / "topologies" / "bench.toml").read_text()
        self.assertIn('urls = ["http://127.0.0.1:40001", "http://127.0.0.1:40002"]', topo)
        self.assertIn(f'stall_timeout = "{portcullis.STALL_TIMEOUT}"', topo)

    def test_portcullis_minimal_config_has_only_old_keys(self):
        conf = portcullis.write_minimal_config(self.work, "before-0-warn", [40001], 40000).read_text()
        self.assertEqual(conf, f'[node]\nid = "before-0-warn"\n[gateway]\nlisten = "127.0.0.1:40000"\n'
                               f'shutdown_grace = "1s"\n[cluster]\nstore = "dir:{self.work}/store-before-0-warn"\n')
        topo = (self.work / "store-before-0-warn" / "topologies" / "bench.toml").read_text()
        self.assertNotIn("stall_timeout", topo)

    def test_nginx_plain_and_tls(self):
        plain = render("nginx.conf", nofile=20000, dir=self.work, servers="    server 127.0.0.1:40001;",
                       listen="127.0.0.1:40000", tls="")
        self.assertIn("  server {\n    listen 127.0.0.1:40000;\n    location / {", plain)
        self.assertIn("worker_rlimit_nofile 20000;", plain)

    def test_haproxy_servers_and_tls_bind(self):
        (self.work / "p").mkdir()
        proc_args = {}
        original = haproxy.PROCS.spawn
        haproxy.PROCS.spawn = lambda cmd, log: proc_args.setdefault("cmd", cmd)
        try:
            self.env.haproxy = "/bin/haproxy"
            haproxy.start(self.env, self.work / "p", 40000, BACKENDS, tls=True)
        finally:
            haproxy.PROCS.spawn = original
        cfg = (self.work / "p" / "haproxy.cfg").read_text()
        self.assertIn(f"bind 127.0.0.1:40000 ssl crt {self.env.pem} alpn h2,http/1.1", cfg)
        self.assertIn("  server b1 127.0.0.1:40001 check inter 1s\n  server b2 127.0.0.1:40002 check inter 1s\n", cfg)
        self.assertEqual(proc_args["cmd"], ["/bin/haproxy", "-f", str(self.work / "p" / "haproxy.cfg"), "-db"])

    def test_backend_answers_the_small_body_at_root(self):
        conf = render("backend-nginx.conf", nofile=1, dir=self.work, listen="127.0.0.1:40001", www=self.work)
        self.assertIn(f'location / {{ return 200 "{backend.SMALL_BODY.strip()}\\n"; }}', conf)
        self.assertEqual(len(backend.SMALL_BODY), 19)

    def test_apache_listeners(self):
        tls = render("apache2-tls.conf", listen="127.0.0.1:40000", dir=self.work, cert="c", key="k")
        self.assertTrue(tls.startswith("Listen 127.0.0.1:40000 https\n"))
        self.assertIn("<VirtualHost 127.0.0.1:40000>", tls)
        self.assertEqual(render("apache2-plain.conf", listen="127.0.0.1:40000"),
                         "Listen 127.0.0.1:40000\nProxyPass / balancer://bench/\n")


if __name__ == "__main__":
    unittest.main()
