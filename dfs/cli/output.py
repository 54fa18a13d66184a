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


SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50}


def parse_size(text: str) -> int:
    """'10G' -> 10737418240 (the units of `human`, an optional trailing 'B' or 'iB')."""
    value = text.strip().upper().removesuffix("IB").removesuffix("B")
    unit = value[-1:] if value[-1:] in SIZE_UNITS else ""
    number = value[:len(value) - len(unit)]
    try:
        size = float(number) * SIZE_UNITS[unit]
    except ValueError:
        raise ValueError(f"not a size: {text!r} (try 500M, 10G)") from None
    if size < 0 or size != size:
        raise ValueError(f"not a size: {text!r}")
    return int(size)


def mode_string(stat: Stat) -> str:
    """As ls -l: 'drwxr-x---' for a directory with mode 0750, 'prw-r--r--' for a fifo
    ("s" a socket, "c"/"b" a device), set-uid/set-gid as s (S without x), sticky as t."""
    kind = "-" if stat.kind == "f" else stat.kind
    bits = ""
    for shift, special, letter in ((6, 0o4000, "s"), (3, 0o2000, "s"), (0, 0o1000, "t")):
        value = (stat.mode >> shift) & 7
        x = "x" if value & 1 else "-"
        if stat.mode & special:
            x = letter if value & 1 else letter.upper()
        bits += ("r" if value & 4 else "-") + ("w" if value & 2 else "-") + x
    return kind + bits


def size_or_device(stat: Stat) -> str:
    """What ls -l shows in the size column: a device's "major, minor", else the size."""
    if stat.kind in ("c", "b"):
        return "%d, %d" % device_numbers(stat.rdev)
    return str(stat.size)


def device_numbers(rdev: int) -> tuple[int, int]:
    """(major, minor) of a device number (glibc's encoding, as os.major/os.minor on Linux;
    written out so that it works where the os module lacks them)."""
    major = ((rdev >> 8) & 0xFFF) | ((rdev >> 32) & 0xFFFFF000)
    minor = (rdev & 0xFF) | ((rdev >> 12) & 0xFFFFFF00)
    return major, minor


def table_lines(rows: Sequence[Sequence[object]], header: Sequence[str]) -> list[str]:
    """Left-aligned columns two spaces apart, the header first."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    return ["  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=False)).rstrip()
            for row in [header, *rows]]


def print_table(rows: Sequence[Sequence[object]], header: Sequence[str]) -> None:
    for line in table_lines(rows, header):
        print(line)


def printable(text: str) -> str:
    """``text`` safe for a terminal: control characters (escape sequences) shown escaped.
    For text that comes from others: worker ids, paths, what a server says."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
