"""Results tables: formatting, ratios to the best peer, failed and reference rows."""

import unittest

from harness.table import Column, best_values, f_int, f_mib, f_ms, peer_rows, render

RPS = Column("rps", "req/s", f_int, "up")
P99 = Column("p99", "p99", f_ms, "down")
NOTE = Column("note", "note", str)


def body_lines(markdown):
    return [line for line in markdown.splitlines() if line.startswith("| ") and "---" not in line][1:]


class Formatting(unittest.TestCase):
    def test_integers_get_thousands_separators(self):
        self.assertEqual(f_int(25394.4), "25,394")
        self.assertEqual(f_int(0), "0")

    def test_latency_in_ms_below_a_second_and_in_s_above(self):
        self.assertEqual(f_ms(0.00414), "4.14 ms")
        self.assertEqual(f_ms(0.9991), "999.10 ms")
        self.assertEqual(f_ms(1.5), "1.50 s")

    def test_mib(self):
        self.assertEqual(f_mib(34.0 * (1 << 20)), "34.0 MiB")


class Ratios(unittest.TestCase):
    def test_best_is_the_max_going_up_and_the_min_going_down(self):
        rows = [("a", {"rps": 100.0, "p99": 0.004}), ("b", {"rps": 50.0, "p99": 0.002})]
        self.assertEqual(best_values([RPS, P99, NOTE], rows), {"rps": 100.0, "p99": 0.002})

    def test_a_single_number_or_failed_rows_give_no_best(self):
        rows = [("a", {"rps": 100.0}), ("b", "failed: x"), ("c", {"rps": None})]
        self.assertEqual(best_values([RPS], rows), {})

    def test_cells_show_best_and_ratios_to_it(self):
        rows = [("a", {"rps": 1000.0, "p99": 0.004}), ("b", {"rps": 650.0, "p99": 0.002}),
                ("c", {"rps": 1000.0, "p99": 0.0058})]
        lines = body_lines(render("T", "intro", [RPS, P99], rows))
        self.assertEqual(lines, ["| a | 1,000 (best) | 4.00 ms (2.00×) |",
                                 "| b | 650 (0.65×) | 2.00 ms (best) |",
                                 "| c | 1,000 (best) | 5.80 ms (2.90×) |"])

    def test_zero_best_going_down_gives_no_ratio_to_others(self):
        errors = Column("errors", "errors", f_int, "down")
        lines = body_lines(render("T", "i", [errors], [("a", {"errors": 0}), ("b", {"errors": 30})]))
        self.assertEqual(lines, ["| a | 0 (best) |", "| b | 30 |"])


class Render(unittest.TestCase):
    def test_title_intro_and_headers_with_arrows(self):
        text = render("1. Steady", "How it is measured.", [RPS, P99, NOTE], [])
        self.assertEqual(text, "### 1. Steady\n\nHow it is measured.\n\n"
                               "| peer | req/s ↑ | p99 ↓ | note |\n|---|---|---|---|\n")

    def test_failed_peer_fills_the_first_cell_and_keeps_the_column_count(self):
        lines = body_lines(render("T", "i", [RPS, P99, NOTE], [("a", "failed: nginx is not installed")]))
        self.assertEqual(lines, ["| a | failed: nginx is not installed | | |"])
        self.assertEqual(lines[0].count("|"), 5)

    def test_missing_value_is_n_a(self):
        lines = body_lines(render("T", "i", [RPS, P99], [("a", {"rps": 5.0, "p99": None})]))
        self.assertEqual(lines, ["| a | 5 | n/a |"])

    def test_reference_rows_are_italic_and_take_no_part_in_ratios(self):
        rows = [("a", {"rps": 100.0}), ("b", {"rps": 50.0})]
        text = render("T", "i", [RPS], rows, reference=[("direct", {"rps": 400.0})])
        self.assertEqual(body_lines(text), ["| a | 100 (best) |", "| b | 50 (0.50×) |", "| *direct* | 400 |"])

    def test_peer_rows_follow_the_requested_order(self):
        by_peer = {"nginx": 1, "portcullis": 2, "direct": 3}
        self.assertEqual(peer_rows(by_peer, ["portcullis", "haproxy", "nginx"]), [("portcullis", 2), ("nginx", 1)])


if __name__ == "__main__":
    unittest.main()
