"""Long actions in the studio: engine work in a thread, progress bar and Cancel in the page.

The same split as the Slicer face (``medsynth_slicer.worker``): ``compute(progress, cancel)``
runs in a worker thread and must not touch MRML or VTK; ``on_done(result)`` runs on the
server's event loop (the thread that renders), where it may create or update nodes.
Progress goes to the panel's state keys ``<id>_busy``, ``<id>_progress`` (0..100) and
``<id>_message``; errors to ``<id>_error``.
"""

from __future__ import annotations

import asyncio
import re
import logging
import threading
import time
from typing import Any, Callable, Optional, Tuple

from medsynth.errors import Cancelled
from medsynth.progress import CancelToken

Compute = Callable[[Callable[[float, str], None], CancelToken], Any]
OnDone = Callable[[Any], None]
TaskPair = Tuple[Compute, OnDone]

log = logging.getLogger("medsynth.studio")

#: How often the page's progress bar is refreshed while a task runs (seconds).
POLL_S = 0.1


#: An absolute path on the server (POSIX or Windows): its folders are dropped from messages for the page.
_PATH = re.compile(r"""(?<![\w.:/])(?:[A-Za-z]:)?[\\/](?:[^\s'"\\/,;()\[\]<>]+[\\/])*([^\s'"\\/,;()\[\]<>]*)""")


def redact_paths(text: str) -> str:
    """``text`` with every absolute path reduced to its last part (no server folders in the page)."""
    return _PATH.sub(lambda m: m.group(1) or "(path)", text)


def error_text(exc: BaseException) -> str:
    """One line for the page: the message of a MedSynth error, else the exception type too."""
    from medsynth.errors import MedSynthError

    text = redact_paths(str(exc).strip().splitlines()[0]) if str(exc).strip() else ""
    if isinstance(exc, MedSynthError) and text:
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class TaskRunner:
    """Runs one long action at a time for a panel, reporting into trame state.

    Args:
        state: the trame state (anything with item access and ``with state:`` flushing).
        prefix: the panel id; the keys are ``<prefix>_busy`` / ``_progress`` / ``_message`` / ``_error``.
    """

    def __init__(self, state, prefix: str) -> None:
        self.state = state
        self.prefix = prefix
        self.token: Optional[CancelToken] = None
        self._lock = threading.Lock()
        self._fraction = 0.0
        self._message = ""
        self.last_outcome = ""  # "done", "cancelled" or "error" (for tests and benchmarks)
        for key, value in self.defaults().items():
            self.state.setdefault(key, value)

    def defaults(self) -> dict:
        p = self.prefix
        return {f"{p}_busy": False, f"{p}_progress": 0, f"{p}_message": "", f"{p}_error": ""}

    @property
    def busy(self) -> bool:
        return self.token is not None

    def cancel(self) -> None:
        if self.token is not None:
            self.token.cancel()
            self._set(message="Cancelling...")

    def _report(self, fraction: float, message: str) -> None:  # worker thread
        with self._lock:
            self._fraction = float(fraction)
            self._message = message

    def _set(self, **values) -> None:
        with self.state:
            for k, v in values.items():
                self.state[f"{self.prefix}_{k}"] = v

    def start(self, compute: Compute, on_done: OnDone, label: str = "") -> "asyncio.Task":
        """Schedule :meth:`run` on the running event loop (what a button callback calls)."""
        return asyncio.ensure_future(self.run(compute, on_done, label))

    async def run(self, compute: Compute, on_done: OnDone, label: str = "") -> str:
        """Run ``compute`` in a thread, then ``on_done`` here; returns the outcome."""
        if self.token is not None:
            self._set(error="Another action of this panel is still running; cancel it first.")
            return "busy"
        self.token = CancelToken()
        token = self.token
        self._fraction, self._message = 0.0, label or "Working..."
        self._set(busy=True, progress=0, message=self._message, error="")
        loop = asyncio.get_running_loop()
        start = time.perf_counter()
        future = loop.run_in_executor(None, compute, self._report, token)
        outcome = "done"
        try:
            while not future.done():
                await asyncio.wait([future], timeout=POLL_S)
                with self._lock:
                    fraction, message = self._fraction, self._message
                if not token.cancelled:
                    self._set(progress=int(round(100 * fraction)), message=message)
            result = future.result()
            if token.cancelled:
                raise Cancelled("operation cancelled")
            on_done(result)
            self._set(message=f"{label or 'Done'} ({time.perf_counter() - start:.1f} s)", progress=100)
        except Cancelled:
            outcome = "cancelled"
            self._set(message="Cancelled; nothing was added.", progress=0)
        except Exception as exc:  # noqa: BLE001 - every failure is shown in the page
            outcome = "error"
            log.exception("%s failed", label or self.prefix)
            self._set(error=error_text(exc), message="", progress=0)
        finally:
            self.token = None
            self._set(busy=False)
        self.last_outcome = outcome
        return outcome
