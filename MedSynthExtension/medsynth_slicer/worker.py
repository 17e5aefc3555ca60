"""Run engine work off the GUI thread with progress and cancel, polled by a Qt timer.

The engine function runs in a Python thread (numpy, SimpleITK and ONNX Runtime
release the GIL); MRML is touched only on the main thread, in ``on_done``.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Optional

from medsynth.errors import Cancelled
from medsynth.progress import CancelToken


class BackgroundTask:
    """``compute(progress, cancel) -> result`` in a thread; callbacks on the main thread.

    Args:
        compute: the engine call; takes ``progress(fraction, message)`` and a :class:`CancelToken`.
        on_done: called with the result (make output nodes here).
        on_error: called with the exception (not for a cancel).
        on_progress: called with ``(fraction, message)`` at each poll.
        on_finished: called last in every case (reset buttons here); gets ``cancelled: bool``.
    """

    POLL_MS = 100

    def __init__(
        self,
        compute: Callable[[Callable[[float, str], None], CancelToken], Any],
        on_done: Callable[[Any], None],
        on_error: Callable[[BaseException], None],
        on_progress: Callable[[float, str], None],
        on_finished: Callable[[bool], None],
    ) -> None:
        self.compute = compute
        self.on_done = on_done
        self.on_error = on_error
        self.on_progress = on_progress
        self.on_finished = on_finished
        self.cancel_token = CancelToken()
        self._state = (0.0, "starting")
        self._result: Any = None
        self._error: Optional[BaseException] = None
        self._thread: Optional[threading.Thread] = None
        self._timer = None

    def _progress(self, fraction: float, message: str) -> None:
        self._state = (fraction, message)

    def _run(self) -> None:
        try:
            self._result = self.compute(self._progress, self.cancel_token)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            self._error = exc

    def start(self) -> None:
        import qt

        self._thread = threading.Thread(target=self._run, name="medsynth-task", daemon=True)
        self._thread.start()
        self._timer = qt.QTimer()
        self._timer.setInterval(self.POLL_MS)
        self._timer.timeout.connect(self._poll)
        self._timer.start()

    def cancel(self) -> None:
        self.cancel_token.cancel()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _poll(self) -> None:
        self.on_progress(*self._state)
        if self.running:
            return
        self._timer.stop()
        cancelled = isinstance(self._error, Cancelled)
        try:
            if self._error is None:
                self.on_done(self._result)
            elif not cancelled:
                self.on_error(self._error)
        finally:
            self.on_finished(cancelled)
