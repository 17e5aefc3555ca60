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
