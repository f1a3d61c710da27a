"""Rounds: the interleaving order, how a peer's rounds become one result, and
the per-round listing under a table."""

import contextlib
import io
import unittest

from harness import report, rounds, runner
from harness.table import f_ms


class Order(unittest.TestCase):
    def test_each_round_starts_one_peer_later(self):
        peers = ["portcullis", "nginx", "haproxy"]
        self.assertEqual([rounds.rotated(peers, r) for r in range(4)],
                         [peers, ["nginx", "haproxy", "portcullis"], ["haproxy", "portcullis", "nginx"], peers])
        self.assertEqual(rounds.rotated([], 2), [])

    def test_every_peer_takes_every_position_once_in_as_many_rounds(self):
        peers = ["a", "b", "c", "d"]
        for peer in peers:
            positions = {rounds.rotated(peers, r).index(peer) for r in range(len(peers))}
            self.assertEqual(positions, set(range(len(peers))))


class Combine(unittest.TestCase):
    def test_numbers_are_medians_and_errors_add_up(self):
        out = rounds.combine([{"rps": 30000.0, "p99": 0.004, "errors": 0},
                              {"rps": 42000.0, "p99": 0.002, "errors": 2},
                              {"rps": 39000.0, "p99": 0.003, "errors": 1}], summed=("errors",))
        self.assertEqual((out["rps"], out["p99"], out["errors"]), (39000.0, 0.003, 3))
        self.assertEqual([r["rps"] for r in out["rounds"]], [30000.0, 42000.0, 39000.0])

    def test_one_failed_round_fails_the_cell(self):
        out = rounds.combine([{"rps": 1.0}, "failed: nginx exited", {"rps": 2.0}])
        self.assertEqual(out, "failed: nginx exited")

    def test_texts_are_kept_when_equal_and_joined_when_not(self):
        self.assertEqual(rounds.combine([{"proto": "h2"}, {"proto": "h2"}])["proto"], "h2")
        self.assertEqual(rounds.combine([{"proto": "h2"}, {"proto": "http/1.1"}])["proto"], "h2 / http/1.1")

    def test_missing_figures_are_left_out_of_the_median(self):
        out = rounds.combine([{"p99": None, "rps": 1.0}, {"p99": 0.5, "rps": 3.0}])
        self.assertEqual((out["p99"], out["rps"]), (0.5, 2.0))

    def test_a_single_round_is_the_result_unchanged(self):
        only = {"rps": 5.0}
        self.assertIs(rounds.combine([only]), only)


class Listing(unittest.TestCase):
    def test_rounds_are_listed_under_the_table_in_the_order_they_ran(self):
        by_peer = {"portcullis": rounds.combine([{"rps": 37486.0, "p99": 0.00356}, {"rps": 39094.0, "p99": 0.00337},
                                                 {"rps": 42629.0, "p99": 0.00293}]),
                   "nginx": "failed: bind() failed"}
        cfg = runner.parse_args(["--only", "portcullis,nginx"], "doc")
        [text] = report.tables({"steady": by_peer}, cfg)
        self.assertIn("| portcullis | 39,094 |", text)
        self.assertIn("portcullis: rps 37,486 · 39,094 · 42,629; p99 3.56 ms · 3.37 ms · 2.93 ms.", text)
        self.assertIn("3 rounds with the peers interleaved", text)
        self.assertNotIn("nginx: rps", text)

    def test_no_listing_for_single_rounds(self):
        self.assertEqual(rounds.listing({"nginx": {"rps": 1.0}}, ("rps",), {"p99": f_ms}), "")


class Runner(unittest.TestCase):
    def test_steady_adds_the_direct_reference_and_jwt_keeps_its_peers(self):
        cfg = runner.parse_args(["--only", "nginx,portcullis"], "doc")
        self.assertEqual(runner.scenario_peers("steady", cfg), ["nginx", "portcullis", "direct"])
        self.assertEqual(runner.scenario_peers("steady-jwt", cfg), ["portcullis"])

    def test_rounds_default_three_smoke_one_and_limits(self):
        self.assertEqual(runner.parse_args([], "doc").rounds, 3)
        self.assertEqual(runner.parse_args(["--smoke"], "doc").rounds, 1)
        self.assertEqual(runner.parse_args(["--rounds", "5"], "doc").rounds, 5)
        err = io.StringIO()
        with self.assertRaises(SystemExit), contextlib.redirect_stderr(err):
            runner.parse_args(["--rounds", "10"], "doc")
        self.assertIn("--rounds must be 1..9", err.getvalue())


if __name__ == "__main__":
    unittest.main()
