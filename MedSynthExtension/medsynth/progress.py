"""Progress reporting and cancellation for long operations (plain Python, no Qt).

Every long engine function takes ``progress`` (a callable ``(fraction, message)``)
and ``cancel`` (a :class:`CancelToken`).  Faces adapt them: the Slicer module to a
progress bar and a Cancel button, the command line to a text line, the studio to
a Vuetify progress bar.
"""

from __future__ import annotations

import sys
import threading
from typing import Callable, Optional

from .errors import Cancelled

ProgressCallback = Callable[[float, str], None]


class CancelToken:
    """A thread-safe flag a face sets to ask a running operation to stop."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled("operation cancelled")


class Reporter:
    """Combines a progress callback and a cancel token; maps sub-steps into a range.

    ``Reporter(progress, cancel).step(0.5, "tiles")`` calls ``progress(0.5, "tiles")``
    after checking the cancel token.  ``sub(lo, hi)`` gives a reporter whose
    fractions 0..1 land in ``lo..hi`` of the parent.
    """

    def __init__(
        self,
        progress: Optional[ProgressCallback] = None,
        cancel: Optional[CancelToken] = None,
        lo: float = 0.0,
        hi: float = 1.0,
    ) -> None:
        self.progress = progress
        self.cancel = cancel
        self.lo = lo
        self.hi = hi

    def step(self, fraction: float, message: str = "") -> None:
        if self.cancel is not None:
            self.cancel.raise_if_cancelled()
        if self.progress is not None:
            f = min(max(float(fraction), 0.0), 1.0)
            self.progress(self.lo + (self.hi - self.lo) * f, message)

    def sub(self, lo: float, hi: float) -> "Reporter":
        span = self.hi - self.lo
        return Reporter(self.progress, self.cancel, self.lo + span * lo, self.lo + span * hi)


# --------------------------------------------------------------------------- terminals
_LINE_OPEN = False  # whether progress_printer left an unfinished (carriage-return) line on stderr


def progress_printer(fraction: float, message: str) -> None:
    """Progress for terminals: one rewritten line on stderr (the ``progress`` callback of command-line faces)."""
    global _LINE_OPEN
    end = "\n" if fraction >= 1.0 else ""
    sys.stderr.write(f"\r[{fraction * 100:5.1f}%] {message[:70]:<70}{end}")
    sys.stderr.flush()
    _LINE_OPEN = not end


def terminal_message(text: str) -> None:
    """A message on stderr that starts on a line of its own (after an unfinished progress line)."""
    global _LINE_OPEN
    sys.stderr.write(("\n" if _LINE_OPEN else "") + text.rstrip("\n") + "\n")
    sys.stderr.flush()
    _LINE_OPEN = False


def reset_terminal_line() -> None:
    """Forget an unfinished progress line (a new command starts)."""
    global _LINE_OPEN
    _LINE_OPEN = False
