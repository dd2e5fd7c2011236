"""Plain-text tables for benchmark output."""

from __future__ import annotations


def format_table(headers: list[str], rows: list[list], floatfmt: str = ".3g") -> str:
    """Render rows as an aligned text table (numbers formatted with ``floatfmt``)."""
    def cell(v):
        if isinstance(v, float):
            return format(v, floatfmt)
        return str(v)

    cells = [[cell(v) for v in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    sep = "  ".join("-" * w for w in widths)
    body = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
            for r in cells]
    return "\n".join([line, sep, *body])
