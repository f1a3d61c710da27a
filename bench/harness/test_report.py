"""The report: tables per scenario in order, the generated part above the
hand-notes marker, the notes below it kept from the existing file."""

import datetime
import tempfile
import unittest
from pathlib import Path

from harness import report, runner
from harness.peers import portcullis

STEADY = {"portcullis": {"rps": 25394.0, "p50": 0.00185, "p99": 0.00414, "cpu100k": 4.12, "errors": 0},
          "nginx": {"rps": 38626.0, "p50": 0.00113, "p99": 0.00448, "cpu100k": 2.38, "errors": 0},
          "direct": {"rps": 113538.0, "p50": 0.00021, "p99": 0.00064, "errors": 0}}
KILL = {"portcullis": {"errors": 0, "detail": "none", "p99": 0.00448, "rps": 23927.0},
        "nginx": "failed: nginx exited with status 1: bind() failed"}


def cfg_for(*argv):
    cfg = runner.parse_args(list(argv), "doc")
    cfg.loadavg = ["0.10", "0.20", "0.30"]
    return cfg


class Tables(unittest.TestCase):
    def test_steady_table_with_ratios_and_the_direct_reference(self):
        [text] = report.tables({"steady": STEADY}, cfg_for("--only", "portcullis,nginx", "--duration", "8"))
        self.assertIn("`wrk -t1 -c50 -d8s --latency`", text)
        self.assertIn("| portcullis | 25,394 (0.66×) | 1.85 ms (1.64×) | 4.14 ms (best) | 4.12 (1.73×) | 0 (best) |",
                      text)
        self.assertIn("| nginx | 38,626 (best) | 1.13 ms (best) | 4.48 ms (1.08×) | 2.38 (best) | 0 (best) |", text)
        self.assertTrue(text.rstrip().endswith("| *direct to one backend (reference)* | 113,538 | 0.21 ms | 0.64 ms "
                                               "| n/a | 0 |"))

    def test_tables_follow_the_scenario_order_not_the_results_order(self):
        texts = report.tables({"kill": KILL, "steady": STEADY}, cfg_for("--only", "portcullis,nginx"))
        self.assertEqual([t.splitlines()[0] for t in texts], ["### 1. Steady small GET", "### 4. One backend killed"])

    def test_failed_cell_and_kill_duration_at_least_4_s(self):
        [text] = report.tables({"kill": KILL}, cfg_for("--only", "portcullis,nginx", "--duration", "1"))
        self.assertIn("-d4s --timeout 2s", text)
        self.assertIn("| nginx | failed: nginx exited with status 1: bind() failed | | | |", text)

    def test_idle_table_shows_open_over_opened(self):
        idle = {"portcullis": {"per_conn": 2453.0, "per_open": 2453.0, "open": 10000, "n": 10000, "failed": 0,
                               "rss0": 10.6 * (1 << 20), "rss1": 34.0 * (1 << 20)}}
        [text] = report.tables({"idle": idle}, cfg_for("--only", "portcullis"))
        self.assertIn("### 6. 10,000 idle keep-alive client connections", text)
        self.assertIn("| portcullis | 2,453 | 10,000 / 10,000 | 2,453 | 10.6 MiB | 34.0 MiB | 0 |", text)


class Notes(unittest.TestCase):
    def test_notes_start_at_the_marker_after_a_blank_line(self):
        existing = "# old generated part\n\n| old | table |\n\n" + report.NOTES_MARKER + "\n\n## By hand\n"
        self.assertEqual(report.notes_after_marker(existing), "\n" + report.NOTES_MARKER + "\n\n## By hand\n")

    def test_no_marker_keeps_nothing(self):
        self.assertEqual(report.notes_after_marker("# only generated text\n"), "")

    def test_missing_file_keeps_nothing(self):
        self.assertEqual(report.kept_notes(Path("/nonexistent/benchmarks.md")), "")

    def test_a_new_report_replaces_the_part_above_the_marker_only(self):
        generated = report.assemble(["- date: new"], "- CPU: x", ["### 1. New table\n"])
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "benchmarks.md"
            out.write_text("# Old\n- date: old\n" + report.NOTES_MARKER + "\n\nhand notes\n")
            text = generated + report.kept_notes(out)
        self.assertNotIn("date: old", text)
        before, marker, after = text.partition(report.NOTES_MARKER)
        self.assertEqual(marker, report.NOTES_MARKER)
        self.assertEqual(after, "\n\nhand notes\n")
        self.assertTrue(before.endswith("\n\n"), "a blank line before the marker")
        self.assertLess(before.index("## This run"), before.index("## Results"))
        self.assertLess(before.index("### 1. New table"), before.index("## How each peer is configured"))


class Document(unittest.TestCase):
    def test_head_run_items_results_and_configuration_in_order(self):
        cfg = cfg_for("--smoke", "--only", "nginx", "--scenarios", "steady")
        started = datetime.datetime(2026, 11, 23, 13, 50, tzinfo=datetime.timezone.utc)
        items = report.this_run(cfg, started, 270.0)
        text = report.assemble(items, "- CPU: test", report.tables({"steady": {"nginx": STEADY["nginx"]}}, cfg))
        self.assertTrue(text.startswith("# Benchmarks: Portcullis beside nginx, HAProxy and Apache\n"))
        self.assertIn("\n## This run\n\n- date: 2026-11-23 13:50 UTC, 4.5 minutes; mode: smoke (1 s runs", text)
        self.assertIn("- reproduce: `bench/run --smoke --only nginx --scenarios steady` (from the repository root",
                      text)
        self.assertIn("- load average when the run began: 0.10 0.20 0.30 (1, 5, 15 min", text)
        self.assertIn("- CPU: test\n\n## Results\n\n### 1. Steady small GET\n", text)
        self.assertIn(f'`stall_timeout = "{portcullis.STALL_TIMEOUT}"`', text)
        self.assertNotIn("${", text)
        self.assertTrue(text.rstrip().endswith("the run recorded here still logged them)."))


if __name__ == "__main__":
    unittest.main()
