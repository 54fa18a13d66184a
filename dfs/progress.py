"""How long operations show themselves to a person: a progress bar on a terminal only."""

import sys

PROGRESS_MIN_BYTES = 8 * 1024 * 1024


def progress_bar(total, label):
    """-> (bar, update callable) for a transfer of ``total`` bytes, or (None, None) when it
    is small or stderr is not a terminal (logs and pipes get no bar)."""
    if total < PROGRESS_MIN_BYTES or not sys.stderr.isatty():
        return None, None
    from tqdm import tqdm
    bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=label,
               leave=False)
    return bar, bar.update
