"""Exceptions shared by the engine and every face."""

from __future__ import annotations


class MedSynthError(Exception):
    """Base class of all MedSynth errors."""


class InputError(MedSynthError, ValueError):
    """Bad input: a missing or unreadable file, an unsupported format, a 4D, empty or NaN image..."""


class ModelError(MedSynthError):
    """A model is missing, its checksum does not hold, or its manifest entry is malformed."""


class Cancelled(MedSynthError):
    """A long operation was cancelled through its :class:`~medsynth.progress.CancelToken`."""


class Stopped(Cancelled):
    """A batch was cancelled or interrupted after some whole items were written; the message says what is kept."""


def one_line(exc: BaseException) -> str:
    """One line for an error: an operating-system error as what failed and on which file, any other as the last
    non-empty line of its message (ITK puts a file/line banner first)."""
    if isinstance(exc, OSError) and (exc.strerror or exc.filename):
        what = exc.strerror or exc.__class__.__name__
        names = [str(n) for n in (exc.filename, exc.filename2) if n]
        return f"{what}: {' -> '.join(names)}" if names else what
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[-1] if lines else exc.__class__.__name__
