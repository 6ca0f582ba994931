"""The progress bars of `backtest` and `download`: tqdm on stderr, on a terminal only."""

from __future__ import annotations

import importlib
import sys
from typing import Any

from configuration.logs import terminal_width


def progress_bar(total: int, description: str, unit: str, enabled: bool = True, unit_scale: bool = False) -> Any:
    """A tqdm bar on stderr, disabled (silent) unless asked for and stderr is a terminal. A terminal that tells no
    size (0 x 0: tqdm would hide the bar) gets 100 x 24."""
    tqdm = importlib.import_module("tqdm").tqdm  # imported when a bar is wanted: `import backtest` stays cheap
    shown = enabled and sys.stderr.isatty()
    sized = bool(terminal_width(sys.stderr))
    return tqdm(total=total, desc=description, unit=unit, unit_scale=unit_scale, file=sys.stderr, disable=not shown,
                leave=True,
                dynamic_ncols=sized, ncols=None if sized else 100, nrows=None if sized else 24)
