"""bench/run's command line: the flags, their defaults and their limits."""

import contextlib
import io
import unittest

from harness import runner
from harness.scenarios import freeze, tls


def parse(*argv):
    return runner.parse_args(list(argv), "doc")


def rejects(*argv):
    """What argparse printed when it refused argv (an AssertionError when it did not)."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            parse(*argv)
    except SystemExit as e:
        assert e.code == 2, e.code
        return err.getvalue()
    raise AssertionError(f"{argv} accepted")


class Flags(unittest.TestCase):
    def test_defaults_are_the_full_run(self):
        cfg = parse()
        self.assertEqual(cfg.peers, ["portcullis", "nginx", "haproxy", "apache"])
        self.assertEqual(cfg.scenarios, ["steady", "tls", "1m", "kill", "freeze", "idle", "steady-jwt"])
        self.assertEqual((cfg.duration, cfg.idle, cfg.idle_hold), (8, 10000, 5.0))
        self.assertEqual((cfg.kill_duration, cfg.freeze_duration), (8, 9))
        self.assertFalse(cfg.no_build or cfg.no_install or cfg.keep or cfg.smoke)
        self.assertIsNone(cfg.out)
        self.assertEqual(cfg.command, "bench/run")

    def test_the_floor_runs_only_when_named(self):
        self.assertNotIn("floor", parse().peers)
        self.assertEqual(parse("--only", "floor,nginx").peers, ["floor", "nginx"])
        self.assertIn("unknown peer 'flor'", rejects("--only", "flor"))

    def test_smoke_shortens_everything(self):
        cfg = parse("--smoke")
        self.assertEqual((cfg.duration, cfg.idle, cfg.idle_hold), (1, 1000, 2.0))
        self.assertEqual((cfg.kill_duration, cfg.freeze_duration), (4, 9))

    def test_the_documented_invocation(self):
        cfg = parse("--scenarios", "steady", "--only", "portcullis,nginx,haproxy", "--no-build", "--no-install",
                    "--out", "/tmp/x y.md", "--duration", "2", "--idle-connections", "50", "--keep")
        self.assertEqual(cfg.peers, ["portcullis", "nginx", "haproxy"])
        self.assertEqual(cfg.scenarios, ["steady"])
        self.assertTrue(cfg.no_build and cfg.no_install and cfg.keep)
        self.assertEqual((cfg.out, cfg.duration, cfg.idle), ("/tmp/x y.md", 2, 50))
        self.assertEqual(cfg.command, "bench/run --scenarios steady --only portcullis,nginx,haproxy --no-build "
                                      "--no-install --out '/tmp/x y.md' --duration 2 --idle-connections 50 --keep")

    def test_unknown_names_and_out_of_range_numbers_are_refused(self):
        self.assertIn("unknown peer 'envoy'", rejects("--only", "nginx,envoy"))
        self.assertIn("unknown scenario 'h3'", rejects("--scenarios", "h3"))
        self.assertIn("--duration must be 1..120", rejects("--duration", "121"))
        self.assertIn("--idle-connections must be 1..20000", rejects("--idle-connections", "20001"))


class Arithmetic(unittest.TestCase):
    def test_h2load_requests_match_the_h1_run_rounded_to_a_thousand(self):
        self.assertEqual(tls.h2_requests(19309.4, 8), 154000)
        self.assertEqual(tls.h2_requests(10.0, 1), 2000)
        self.assertEqual(tls.h2_requests(1e6, 8), 2_000_000)

    def test_freeze_rates_leave_out_our_own_status_requests(self):
        before, during = freeze.rates((100, 100), 10.0, (1100, 1100), 11.5, 8101, 16.5)
        self.assertAlmostEqual(before, (2200 - 200 - 2) / 1.5)
        self.assertAlmostEqual(during, (8101 - 1100 - 1) / 5.0)

    def test_freeze_rates_are_none_without_counters(self):
        self.assertEqual(freeze.rates((None, 100), 0.0, (5, 6), 1.0, None, 2.0), (None, None))


if __name__ == "__main__":
    unittest.main()
