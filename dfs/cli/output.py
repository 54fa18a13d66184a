"""How the `dfs` command prints: aligned tables, human sizes, `ls -l` mode strings."""

from __future__ import annotations

from collections.abc import Sequence

from dfs.wire import Stat


def human(n: float) -> str:
    """1536 -> '1.5K' (powers of 1024, as `ls -h`)."""
    for unit in ("B", "K", "M", "G", "T"):
        if abs(n) < 1024 or unit == "T":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1024
    return str(n)


def mode_string(stat: Stat) -> str:
    """'drwxr-x---' for a directory with mode 0750."""
    kind = {"d": "d", "l": "l"}.get(stat.kind, "-")
    bits = ""
    for shift in (6, 3, 0):
        value = (stat.mode >> shift) & 7
        bits += ("r" if value & 4 else "-") + ("w" if value & 2 else "-") + \
            ("x" if value & 1 else "-")
    return kind + bits


def print_table(rows: Sequence[Sequence[object]], header: Sequence[str]) -> None:
    """Left-aligned columns two spaces apart, the header first."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=False)).rstrip())
