"""The parsers of wrk's and h2load's output."""

import unittest

from harness.load import parse_h2load, parse_wrk

WRK_LATENCY = """Running 8s test @ http://127.0.0.1:40000/gateway/bench/small/
  1 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.01ms    1.10ms  30.12ms   90.00%
    Req/Sec    25.52k     1.20k   27.00k    80.00%
  Latency Distribution
     50%  850.00us
     75%    2.20ms
     90%    3.00ms
     99%    1.21s
  203152 requests in 8.00s, 32.55MB read
  Socket errors: connect 1, read 30, write 0, timeout 2
  Non-2xx or 3xx responses: 5
Requests/sec:  25394.12
Transfer/sec:      4.07MB
"""

WRK_PLAIN = """Running 1m test @ http://127.0.0.1:40000/1m
  1 threads and 10 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     5.01ms    1.10ms  30.12ms   90.00%
    Req/Sec     1.89k   100.00     2.00k    80.00%
  113160 requests in 1.00m, 110.51GB read
Requests/sec:   1886.00
Transfer/sec:      1.84GB
"""


class ParseWrk(unittest.TestCase):
    def test_summary_and_rates(self):
        r = parse_wrk(WRK_LATENCY)
        self.assertEqual(r["requests"], 203152)
        self.assertAlmostEqual(r["seconds"], 8.0)
        self.assertAlmostEqual(r["rps"], 25394.12)
        self.assertAlmostEqual(r["mib_s"], 4.07)  # wrk's MB are MiB

    def test_latency_units_become_seconds(self):
        r = parse_wrk(WRK_LATENCY)
        self.assertAlmostEqual(r["p50"], 850e-6)
        self.assertAlmostEqual(r["p99"], 1.21)

    def test_errors_are_counted_and_described(self):
        r = parse_wrk(WRK_LATENCY)
        self.assertEqual((r["connect"], r["read"], r["write"], r["timeout"], r["non2xx"]), (1, 30, 0, 2, 5))
        self.assertEqual(r["errors"], 38)
        self.assertEqual(r["errors_no_timeout"], 36)
        self.assertEqual(r["error_detail"], "non-2xx 5, connect 1, read 30, timeout 2")

    def test_clean_run_without_latency_distribution(self):
        r = parse_wrk(WRK_PLAIN)
        self.assertAlmostEqual(r["seconds"], 60.0)
        self.assertAlmostEqual(r["mib_s"], 1.84 * 1024)
        self.assertIsNone(r["p50"])
        self.assertIsNone(r["p99"])
        self.assertEqual(r["errors"], 0)
        self.assertEqual(r["error_detail"], "none")

    def test_no_summary_is_an_error_quoting_the_output(self):
        with self.assertRaisesRegex(RuntimeError, "unable to connect"):
            parse_wrk("unable to connect to 127.0.0.1:1 Connection refused\n")


H2LOAD = """starting benchmark...
finished in 1.02s, 17843.00 req/s, 1.20MB/s
requests: 18000 total, 18000 started, 18000 done, 17990 succeeded, 4 failed, 3 errored, 3 timeout
status codes: 17980 2xx, 0 3xx, 0 4xx, 10 5xx
Application protocol: h2
"""


class ParseH2load(unittest.TestCase):
    def test_counts(self):
        r = parse_h2load(H2LOAD)
        self.assertAlmostEqual(r["rps"], 17843.0)
        self.assertEqual(r["succeeded"], 17990)
        self.assertEqual(r["failed"], 10)
        self.assertEqual(r["non2xx"], 10)
        self.assertEqual(r["proto"], "h2")

    def test_no_summary_is_an_error(self):
        with self.assertRaises(RuntimeError):
            parse_h2load("No protocol negotiated. Aborted\n")


if __name__ == "__main__":
    unittest.main()
