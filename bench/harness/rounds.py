"""Rounds: the throughput scenarios run several times with the peers
interleaved, and each figure is the median of its rounds.

Why: on a shared 2-core machine the same build's req/s moves by ±15% from one
minute to the next. Run once and one peer after another, that drift lands
between the peers and becomes a ratio. Interleaved (round r runs the peers in
an order rotated by r) and taken as medians, every peer sees the same spread of
machine states.

A scenario takes part when its module names ROUND_KEYS: the figures that the
report lists round by round under its table. Counts of errors (the module's
SUMMED_KEYS) add up over the rounds instead, so that no error is hidden by a
median. A round that failed makes the peer's cell that failure.
"""

import statistics

from .table import f_int


def rotated(peers, round_index):
    """The peers in the order round round_index runs them."""
    if not peers:
        return []
    k = round_index % len(peers)
    return peers[k:] + peers[:k]


def _combine_key(key, values, summed):
    present = [v for v in values if v is not None]
    if not present:
        return None
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return sum(present) if key in summed else statistics.median(present)
    distinct = list(dict.fromkeys(str(v) for v in present))
    return distinct[0] if len(distinct) == 1 else " / ".join(distinct)


def combine(round_results, summed=()):
    """One result from a peer's rounds (dicts, or strings for failed rounds):
    each number the median of its rounds (the sum for keys in summed), other
    values kept when equal and joined with " / " when not. The first failed
    round, if any, is the result. "rounds" keeps the round dicts."""
    failed = [r for r in round_results if not isinstance(r, dict)]
    if failed:
        return failed[0]
    if len(round_results) == 1:
        return round_results[0]
    keys = list(dict.fromkeys(k for r in round_results for k in r))
    out = {k: _combine_key(k, [r.get(k) for r in round_results], summed) for k in keys}
    out["rounds"] = list(round_results)
    return out


def listing(by_peer, keys, formats=None):
    """A markdown paragraph with each peer's rounds for keys, or "" when no
    peer has more than one round."""
    formats = formats or {}
    lines = []
    for peer, result in by_peer.items():
        if not isinstance(result, dict) or "rounds" not in result:
            continue
        parts = []
        for key in keys:
            fmt = formats.get(key, f_int)
            values = [r.get(key) for r in result["rounds"]]
            parts.append(f"{key} " + " · ".join("n/a" if v is None else fmt(v) for v in values))
        lines.append(f"{peer}: " + "; ".join(parts))
    if not lines:
        return ""
    return ("Rounds, in the order they ran (the table gives each figure's median; errors are summed): "
            + " — ".join(lines) + ".\n")
