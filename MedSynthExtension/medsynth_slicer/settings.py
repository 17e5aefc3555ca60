"""User settings of the extension (device, user model folder), stored by the face
(QSettings in Slicer) and applied to the engine's runtime."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, MutableMapping

from medsynth import runtime

KEY_DEVICE = "MedSynth/Device"
KEY_USER_MODELS = "MedSynth/UserModelFolder"


@dataclass
class Settings:
    device: str = "auto"
    user_model_folder: str = ""

    @classmethod
    def load(cls, store: MutableMapping[str, Any]) -> "Settings":
        device = str(store.get(KEY_DEVICE) or "auto").lower()
        if device not in runtime.DEVICES:
            device = "auto"
        return cls(device=device, user_model_folder=str(store.get(KEY_USER_MODELS) or ""))

    def save(self, store: MutableMapping[str, Any]) -> None:
        store[KEY_DEVICE] = self.device
        store[KEY_USER_MODELS] = self.user_model_folder

    def apply(self) -> None:
        """Make the engine use these settings (device; built-in plus user model folder)."""
        runtime.set_device(self.device)
        runtime.set_user_model_dirs([Path(self.user_model_folder)] if self.user_model_folder else [])


def model_rows() -> List[Dict[str, Any]]:
    """One row per known model for the settings table: id, version, task, folder, checksum state.

    A manifest that cannot be read is a row of its own (checksum "MANIFEST PROBLEM", the reason as task),
    not an exception: the table still lists every other model.
    """
    rows = []
    entries, problems = runtime.scan_models()
    for entry in entries.values():
        rows.append(
            {
                "id": entry.id,
                "version": entry.version,
                "task": entry.task,
                "folder": str(entry.folder),
                "checksum": "OK" if entry.checksum_ok() else "FAILS",
            }
        )
    for problem in problems:
        rows.append({"id": "-", "version": "-", "task": problem, "folder": "-", "checksum": "MANIFEST PROBLEM"})
    return rows


class QSettingsStore(MutableMapping):
    """A MutableMapping over ``qt.QSettings()`` (Slicer only)."""

    def __init__(self) -> None:
        import qt

        self._s = qt.QSettings()

    def __getitem__(self, key: str) -> Any:
        if not self._s.contains(key):
            raise KeyError(key)
        return self._s.value(key)

    def __setitem__(self, key: str, value: Any) -> None:
        self._s.setValue(key, value)

    def __delitem__(self, key: str) -> None:
        self._s.remove(key)

    def __iter__(self):
        return iter(self._s.allKeys())

    def __len__(self) -> int:
        return len(self._s.allKeys())
