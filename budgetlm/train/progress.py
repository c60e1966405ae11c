"""Progress display: one updating line on a terminal, a line per evaluation otherwise."""

from __future__ import annotations

import sys
from typing import TextIO


class Progress:
    """Shows step, loss, tokens/s, share of the budget used and the time left."""

    def __init__(self, stream: TextIO | None = None, interactive: bool | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.interactive = self.stream.isatty() if interactive is None else interactive
        self._open_line = False

    def update(
        self,
        step: int,
        total: int,
        loss: float,
        tokens_per_s: float,
        used: float,
        eta_seconds: float,
    ) -> None:
        """Redraw the status line (terminal only; logs get `message` lines instead)."""
        if not self.interactive:
            return
        line = (
            f"step {step}/{total} | loss {loss:.3f} | {tokens_per_s / 1000:.1f}k tok/s | "
            f"budget {100 * min(used, 9.99):.0f}% | ETA {format_duration(eta_seconds)}"
        )
        self.stream.write("\r\033[K" + line)
        self.stream.flush()
        self._open_line = True

    def message(self, text: str) -> None:
        """Print a line above the status line."""
        if self._open_line:
            self.stream.write("\r\033[K")
            self._open_line = False
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self._open_line:
            self.stream.write("\n")
            self.stream.flush()
            self._open_line = False


def format_duration(seconds: float) -> str:
    """125 -> '2m05s'."""
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"
