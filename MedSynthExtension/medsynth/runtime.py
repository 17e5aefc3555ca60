"""Model runtime: manifests, checksums and cached ONNX Runtime sessions.

A model folder holds ``manifest.json``::

    {"format": 1, "models": [ {"id": "...", "version": "1.0.0", "file": "x.onnx",
      "sha256": "...", "inputs": [{"name": "image", "shape": ["N", 1, "D", "H", "W"],
      "dtype": "float32"}], "outputs": [...], "spacing_mm": [...],
      "normalization": {...}, "training_command": "...", "metrics": {...},
      "data_terms": "...", "card": "x.md"} ]}

The shipped models live in ``Resources/Models``; users add folders of their own
(same format) with :func:`add_user_model_dir` or the ``MEDSYNTH_MODEL_DIRS``
environment variable.  Loading checks the sha256 before an ONNX Runtime session is
made; execution providers are CUDA then CPU (or as the device preference says), and
:meth:`LoadedModel.provider` says which one runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from .errors import ModelError

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1
DEVICES = ("auto", "cpu", "gpu")
REQUIRED_FIELDS = ("id", "version", "file", "sha256", "inputs", "outputs")


def resources_dir() -> Path:
    """The extension's shared Resources folder (``MEDSYNTH_RESOURCES`` overrides)."""
    env = os.environ.get("MEDSYNTH_RESOURCES")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent
    for parent in [here] + list(here.parents):
        if (parent / "Resources" / "Models").is_dir():
            return parent / "Resources"
    return here.parent.parent / "Resources"


def builtin_model_dir() -> Path:
    return resources_dir() / "Models"


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class ModelEntry:
    """One model of a manifest; ``folder`` is where its manifest lives."""

    id: str
    version: str
    file: str
    sha256: str
    inputs: List[Dict[str, Any]]
    outputs: List[Dict[str, Any]]
    task: str = ""
    spacing_mm: Optional[List[float]] = None
    normalization: Dict[str, Any] = field(default_factory=dict)
    training_command: str = ""
    metrics: Dict[str, Any] = field(default_factory=dict)
    data_terms: str = ""
    card: str = ""
    extra: Dict[str, Any] = field(default_factory=dict)
    folder: Path = field(default=Path("."), repr=False)

    @property
    def path(self) -> Path:
        return self.folder / self.file

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], folder: Path) -> "ModelEntry":
        missing = [k for k in REQUIRED_FIELDS if k not in d]
        if missing:
            raise ModelError(f"manifest entry {d.get('id', '?')!r} in {folder} lacks {', '.join(missing)}")
        known = {f for f in cls.__dataclass_fields__ if f not in ("folder", "extra")}
        kwargs = {k: v for k, v in d.items() if k in known}
        extra = {k: v for k, v in d.items() if k not in known}
        return cls(folder=folder, extra=extra, **kwargs)

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d.pop("folder")
        extra = d.pop("extra")
        d.update(extra)
        return d

    def checksum_ok(self) -> bool:
        return self.path.is_file() and sha256_of(self.path) == self.sha256


def read_manifest(folder: Path) -> List[ModelEntry]:
    path = Path(folder) / MANIFEST_NAME
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ModelError(f"manifest {path} is not valid JSON: {exc}") from None
    if data.get("format") != MANIFEST_FORMAT:
        raise ModelError(f"manifest {path} has format {data.get('format')!r}; expected {MANIFEST_FORMAT}")
    return [ModelEntry.from_dict(m, Path(folder)) for m in data.get("models", [])]


def write_manifest_entry(folder: Path, entry: ModelEntry) -> Path:
    """Add or replace ``entry`` (by id) in ``folder``'s manifest (written atomically)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / MANIFEST_NAME
    models = []
    if path.is_file():
        models = [m for m in json.loads(path.read_text(encoding="utf-8")).get("models", []) if m["id"] != entry.id]
    models.append(entry.to_dict())
    models.sort(key=lambda m: m["id"])
    tmp = path.with_suffix(".json.partial")
    tmp.write_text(json.dumps({"format": MANIFEST_FORMAT, "models": models}, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


# --------------------------------------------------------------------------- device and providers
_settings_lock = threading.Lock()
_device = os.environ.get("MEDSYNTH_DEVICE", "auto").lower()
_user_dirs: List[Path] = [Path(p) for p in os.environ.get("MEDSYNTH_MODEL_DIRS", "").split(os.pathsep) if p]


def set_device(device: str) -> None:
    """``auto`` (CUDA when present, else CPU), ``cpu`` or ``gpu`` (CUDA required)."""
    global _device
    device = device.lower()
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    with _settings_lock:
        _device = device
        _sessions.clear()


def get_device() -> str:
    return _device


def available_providers() -> List[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


def providers_for(device: Optional[str] = None) -> List[str]:
    device = (device or _device).lower()
    available = available_providers()
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device == "gpu":
        if "CUDAExecutionProvider" not in available:
            raise ModelError("GPU was requested but ONNX Runtime has no CUDA provider here (install onnxruntime-gpu)")
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


def add_user_model_dir(folder: os.PathLike) -> None:
    p = Path(folder)
    with _settings_lock:
        if p not in _user_dirs:
            _user_dirs.append(p)


def set_user_model_dirs(folders: Sequence[os.PathLike]) -> None:
    with _settings_lock:
        _user_dirs[:] = [Path(f) for f in folders]


def model_dirs() -> List[Path]:
    """Built-in folder first; a user model with the same id overrides it."""
    return [builtin_model_dir()] + list(_user_dirs)


def list_models() -> Dict[str, ModelEntry]:
    entries: Dict[str, ModelEntry] = {}
    for folder in model_dirs():
        for entry in read_manifest(folder):
            entries[entry.id] = entry
    return entries


def get_entry(model_id: str) -> ModelEntry:
    models = list_models()
    if model_id not in models:
        raise ModelError(
            f"model '{model_id}' is in no manifest (searched {', '.join(str(d) for d in model_dirs())}); "
            f"known: {', '.join(sorted(models)) or 'none'}"
        )
    return models[model_id]


# --------------------------------------------------------------------------- sessions
class LoadedModel:
    """An ONNX Runtime session with its manifest entry."""

    def __init__(self, entry: ModelEntry, session: Any) -> None:
        self.entry = entry
        self.session = session

    @property
    def provider(self) -> str:
        """The execution provider that runs this model (first of the session's list)."""
        return self.session.get_providers()[0]

    @property
    def input_names(self) -> List[str]:
        return [i.name for i in self.session.get_inputs()]

    def run(self, feeds: Mapping[str, np.ndarray], output_names: Optional[Sequence[str]] = None) -> List[np.ndarray]:
        spec = {i["name"]: i for i in self.entry.inputs}
        prepared = {}
        for name, value in feeds.items():
            if name not in spec:
                raise ModelError(f"model '{self.entry.id}' has no input '{name}'; inputs: {', '.join(spec)}")
            arr = np.ascontiguousarray(value, dtype=np.dtype(spec[name].get("dtype", "float32")))
            rank = len(spec[name].get("shape", arr.shape))
            if arr.ndim != rank:
                raise ModelError(
                    f"input '{name}' of '{self.entry.id}' needs rank {rank} ({spec[name].get('shape')}), got {arr.shape}"
                )
            prepared[name] = arr
        return self.session.run(list(output_names) if output_names else None, prepared)


_sessions: Dict[Tuple[str, str, Tuple[str, ...]], LoadedModel] = {}


def load_model(model_id: str, device: Optional[str] = None, threads: Optional[int] = None) -> LoadedModel:
    """Verify the checksum and return a cached ONNX Runtime session for ``model_id``."""
    entry = get_entry(model_id)
    return load_entry(entry, device, threads)


def load_entry(entry: ModelEntry, device: Optional[str] = None, threads: Optional[int] = None) -> LoadedModel:
    providers = tuple(providers_for(device))
    key = (str(entry.path.resolve()), entry.sha256, providers)
    with _settings_lock:
        cached = _sessions.get(key)
    if cached is not None:
        return cached
    if not entry.path.is_file():
        raise ModelError(f"model file of '{entry.id}' is missing: {entry.path}")
    actual = sha256_of(entry.path)
    if actual != entry.sha256:
        raise ModelError(
            f"checksum of '{entry.id}' does not hold: manifest {entry.sha256[:12]}..., file {actual[:12]}... "
            f"({entry.path}); the file is damaged or was replaced"
        )
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = int(threads)
    options.log_severity_level = 3
    session = ort.InferenceSession(str(entry.path), sess_options=options, providers=list(providers))
    loaded = LoadedModel(entry, session)
    with _settings_lock:
        _sessions[key] = loaded
    return loaded


def clear_cache() -> None:
    with _settings_lock:
        _sessions.clear()
