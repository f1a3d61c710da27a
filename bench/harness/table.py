"""One results table in markdown: each peer's absolute figures and, in
parentheses, its ratio to the best peer of the column."""


def f_int(v):
    return f"{v:,.0f}"


def f_ms(v):
    return f"{v * 1000:.2f} ms" if v < 1 else f"{v:.2f} s"


def f_2(v):
    return f"{v:.2f}"


def f_3(v):
    return f"{v:.3f}"


def f_mib(v):
    return f"{v / (1 << 20):.1f} MiB"


ARROWS = {"up": " ↑", "down": " ↓"}


class Column:
    """key in the result dict, header, formatter, which way is better: "up",
    "down" or None (no ratio)."""

    def __init__(self, key, header, fmt, better=None):
        self.key, self.header, self.fmt, self.better = key, header, fmt, better


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def best_values(columns, rows):
    """{key: best value} for the columns with a direction and more than one number."""
    best = {}
    for c in columns:
        vals = [r[c.key] for _, r in rows if isinstance(r, dict) and _is_number(r.get(c.key))]
        if c.better and len(vals) > 1:
            best[c.key] = max(vals) if c.better == "up" else min(vals)
    return best


def cell(column, result, best):
    """The formatted value, with "(best)" or "(0.65×)" when best has its column."""
    v = result.get(column.key)
    if v is None:
        return "n/a"
    text = column.fmt(v)
    if column.key in best and _is_number(v):
        b = best[column.key]
        if v == b:
            text += " (best)"
        elif b != 0:
            text += f" ({v / b:.2f}×)"
    return text


def _row(label, result, columns, best):
    if isinstance(result, dict):
        return f"| {label} | " + " | ".join(cell(c, result, best) for c in columns) + " |"
    return f"| {label} | {result} |" + " |" * (len(columns) - 1)  # an error message fills the first column


def render(title, intro, columns, rows, reference=()):
    """rows: [(peer, result dict or error string)]. Reference rows (in italics)
    take no part in the ratios and get none."""
    heads = [c.header + ARROWS.get(c.better, "") for c in columns]
    lines = [f"### {title}", "", intro, "", "| peer | " + " | ".join(heads) + " |",
             "|---|" + "---|" * len(columns)]
    best = best_values(columns, rows)
    lines += [_row(peer, r, columns, best) for peer, r in rows]
    lines += [_row(f"*{peer}*", r, columns, {}) for peer, r in reference]
    return "\n".join(lines) + "\n"


def peer_rows(by_peer, peers):
    """[(peer, result)] in the order of peers, for the peers that have a result."""
    return [(p, by_peer[p]) for p in peers if p in by_peer]


def rounds_phrase(cfg):
    """How a scenario run in rounds was measured, for its table's introduction."""
    n = getattr(cfg, "rounds", 1)
    if n <= 1:
        return "one round"
    return (f"{n} rounds with the peers interleaved (each round in an order rotated by one), "
            "each figure the median of its rounds and errors the sum")
