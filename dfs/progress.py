"""How long operations show themselves to a person: a progress bar on a terminal only."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Protocol

PROGRESS_MIN_BYTES = 8 * 1024 * 1024


class Bar(Protocol):
    """What callers do with a bar (a tqdm): close it when the transfer ends."""

    def close(self) -> None: ...


def progress_bar(total: int, label: str) -> tuple[Bar | None, Callable[[int], object] | None]:
    """-> (bar, update callable) for a transfer of ``total`` bytes, or (None, None) when it
    is small or stderr is not a terminal (logs and pipes get no bar)."""
    if total < PROGRESS_MIN_BYTES or not sys.stderr.isatty():
        return None, None
    from tqdm import tqdm  # type: ignore[import-untyped]  # tqdm ships no type information
    bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=label,
               leave=False)
    return bar, bar.update
