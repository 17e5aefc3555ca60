"""Where the project's reference data (``../shared/data``) lies: for training commands, evaluations and tests.

Nothing at inference time reads it; the shipped models and sample data are in ``Resources/``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Union


def shared_data_dir(data: Optional[Union[str, "os.PathLike[str]"]] = None) -> Path:
    """``data`` when given, else ``MEDSYNTH_SHARED_DATA``, else ``shared/data`` beside the repository checkout."""
    if data:
        return Path(data)
    env = os.environ.get("MEDSYNTH_SHARED_DATA")
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent.parent / "shared" / "data"
        if (parent / "MedSynthExtension").is_dir() and candidate.is_dir():
            return candidate
    return here.parents[3] / "shared" / "data"
