"""Model runtime: manifests, checksums and cached ONNX Runtime sessions.

A model folder holds ``manifest.json``::

    {"format": 1, "models": [ {"id": "...", "version": "1.0.0", "file": "x.onnx",
      "sha256": "...", "inputs": [{"name": "image", "shape": ["N", 1, "D", "H", "W"],
      "dtype": "float32"}], "outputs": [...], "spacing_mm": [...],
      "normalization": {...}, "training_command": "...", "metrics": {...},
      "data_terms": "...", "card": "x.md",
      "files": {"stats": {"file": "x_stats.npz", "sha256": "..."}}} ]}

``files`` lists the side files a model reads besides its ONNX graph (latent directions, calibration
statistics...), each by role with its sha256; code gets them through :func:`side_file`, which checks the
checksum first.  ``medsynth info`` shows the state of every file.

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
import re
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
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
#: side files named by the manifest fields of earlier versions: role -> (file field, sha256 field)
_LEGACY_SIDE_FIELDS = {"latent": ("latent_file", "latent_sha256"), "stats": ("stats_file", "stats_sha256")}


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
    files: Dict[str, Dict[str, str]] = field(default_factory=dict)  # side files: role -> {"file", "sha256"}
    extra: Dict[str, Any] = field(default_factory=dict)
    folder: Path = field(default=Path("."), repr=False)

    @property
    def path(self) -> Path:
        return self.folder / self.file

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], folder: Path) -> "ModelEntry":
        where = f"manifest {Path(folder) / MANIFEST_NAME}"
        if not isinstance(d, Mapping):
            raise ModelError(f"{where}: a model entry is a JSON {_json_kind(d)}, not an object")
        name = d.get("id", "?")
        missing = [k for k in REQUIRED_FIELDS if k not in d]
        if missing:
            raise ModelError(f"{where}: entry {name!r} lacks {', '.join(missing)}")
        for k in ("id", "version", "file", "sha256"):
            if not isinstance(d[k], str) or not d[k]:
                raise ModelError(f"{where}: field {k!r} of entry {name!r} must be a non-empty string, got {d[k]!r}")
        if not _SHA256.match(d["sha256"]):
            raise ModelError(f"{where}: sha256 of {name!r} is not 64 lowercase hex digits: {d['sha256']!r}")
        _check_relative(d["file"], f"{where}: file of {name!r}")
        for k in ("inputs", "outputs"):
            if not isinstance(d[k], list) or not all(isinstance(i, Mapping) and isinstance(i.get("name"), str)
                                                     for i in d[k]):
                raise ModelError(f"{where}: {k!r} of {name!r} must be a list of objects with a 'name'")
        known = {f for f in cls.__dataclass_fields__ if f not in ("folder", "extra")}
        kwargs = {k: v for k, v in d.items() if k in known}
        extra = {k: v for k, v in d.items() if k not in known}
        files = kwargs.pop("files", None)
        files = {} if files is None else files
        if not isinstance(files, Mapping):
            raise ModelError(f"{where}: 'files' of {name!r} must be an object (role -> file and sha256)")
        files = {str(role): spec for role, spec in files.items()}
        for role, (file_key, sha_key) in _LEGACY_SIDE_FIELDS.items():  # manifests of earlier versions
            if file_key in extra and role not in files:
                files[role] = {"file": extra.pop(file_key)}
                if sha_key in extra:
                    files[role]["sha256"] = extra.pop(sha_key)
        for role, spec in files.items():
            what = f"{where}: side file {role!r} of {name!r}"
            if not isinstance(spec, Mapping) or not isinstance(spec.get("file"), str) or not spec["file"]:
                raise ModelError(f"{what} must be an object with 'file' and 'sha256'")
            _check_relative(spec["file"], what)
            sha = spec.get("sha256")
            if sha is not None and not (isinstance(sha, str) and _SHA256.match(sha)):
                raise ModelError(f"{what}: sha256 is not 64 lowercase hex digits: {sha!r}")
        kwargs["files"] = {role: dict(spec) for role, spec in files.items()}
        return cls(folder=Path(folder), extra=extra, **kwargs)

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d.pop("folder")
        extra = d.pop("extra")
        if not d["files"]:
            d.pop("files")
        d.update(extra)
        return d

    # ------------------------------------------------------------------ side files
    def add_side_file(self, role: str, path: os.PathLike) -> None:
        """Record ``path`` (a file in this entry's folder) as side file ``role``, with its sha256 now."""
        path = Path(path)
        self.files[role] = {"file": path.name, "sha256": sha256_of(path)}
        for key in _LEGACY_SIDE_FIELDS.get(role, ()):
            self.extra.pop(key, None)

    def side_path(self, role: str) -> Path:
        """Where side file ``role`` lies (not checked; use :meth:`side_file` before reading it)."""
        spec = self.files.get(role)
        if spec is None:
            raise ModelError(
                f"manifest entry '{self.id}' in {self.folder} lists no side file '{role}' "
                f"(listed: {', '.join(sorted(self.files)) or 'none'}); re-export the model"
            )
        return self.folder / spec["file"]

    def side_file(self, role: str) -> Path:
        """The path of side file ``role`` after its sha256 was checked against the manifest."""
        path = self.side_path(role)
        problem = self._side_problem(role)
        if problem:
            raise ModelError(problem)
        return path

    def _side_problem(self, role: str) -> str:
        spec = self.files[role]
        path = self.folder / spec["file"]
        what = f"side file '{spec['file']}' ({role}) of model '{self.id}'"
        if not spec.get("sha256"):
            return f"{what} has no sha256 in the manifest ({self.folder / MANIFEST_NAME}); re-export the model"
        if not path.is_file():
            return f"{what} is missing: {path}"
        try:
            actual = sha256_of(path)
        except OSError as exc:
            return f"{what} cannot be read: {exc.strerror or exc} ({path})"
        if actual != spec["sha256"]:
            return (f"checksum of {what} does not hold: manifest {spec['sha256'][:12]}..., file {actual[:12]}... "
                    f"({path}); the file is damaged or was replaced")
        return ""

    def problems(self) -> List[str]:
        """What is wrong with this model's files (empty when the model file and every side file hold)."""
        out = []
        if not self.path.is_file():
            out.append(f"model file of '{self.id}' is missing: {self.path}")
        else:
            try:
                if sha256_of(self.path) != self.sha256:
                    out.append(f"checksum of '{self.id}' does not hold ({self.path}); the file is damaged or was "
                               "replaced")
            except OSError as exc:
                out.append(f"model file of '{self.id}' cannot be read: {exc.strerror or exc} ({self.path})")
        out.extend(p for p in (self._side_problem(r) for r in sorted(self.files)) if p)
        return out

    def side_files_status(self) -> Dict[str, str]:
        """Role -> "checksum OK" or what is wrong."""
        return {r: (self._side_problem(r) or "checksum OK") for r in sorted(self.files)}

    def checksum_ok(self) -> bool:
        """The model file and every side file are present and hold their sha256."""
        return not self.problems()


def side_file(entry: ModelEntry, role: str) -> Path:
    """The checked path of side file ``role`` of ``entry`` (:class:`ModelError` if missing or changed)."""
    return entry.side_file(role)


def _json_kind(value: Any) -> str:
    return {dict: "object", list: "list", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number" if isinstance(value, (int, float)) else type(value).__name__)


def _check_relative(name: str, what: str) -> None:
    p = Path(name)
    if p.is_absolute() or ".." in p.parts or name != name.strip():
        raise ModelError(f"{what} must be a file name inside the model folder, got {name!r}")


def _read_manifest_models(path: Path) -> List[Any]:
    """The ``models`` list of manifest ``path`` after the checks of its structure."""
    if not path.is_file():
        raise ModelError(f"manifest {path} is not a file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ModelError(f"manifest {path} is not UTF-8 text: {exc}") from None
    except (ValueError, RecursionError) as exc:  # json.JSONDecodeError; nesting too deep
        raise ModelError(f"manifest {path} is not valid JSON: {exc}") from None
    except OSError as exc:
        raise ModelError(f"manifest {path} cannot be read: {exc.strerror or exc}") from None
    if not isinstance(data, dict):
        raise ModelError(
            f"manifest {path} is a JSON {_json_kind(data)}; expected an object with \"format\": {MANIFEST_FORMAT} "
            "and \"models\": [...]"
        )
    if data.get("format") != MANIFEST_FORMAT:
        raise ModelError(f"manifest {path} has format {data.get('format')!r}; expected {MANIFEST_FORMAT}")
    if "models" not in data:
        raise ModelError(f"manifest {path} has no \"models\" list")
    models = data["models"]
    if not isinstance(models, list):
        raise ModelError(f"manifest {path}: \"models\" is a JSON {_json_kind(models)}, not a list")
    for i, m in enumerate(models):
        if not isinstance(m, dict):
            raise ModelError(f"manifest {path}: models[{i}] is a JSON {_json_kind(m)}, not an object")
        if not isinstance(m.get("id"), str) or not m["id"]:
            raise ModelError(f"manifest {path}: models[{i}] has no \"id\" string")
    ids = [m["id"] for m in models]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise ModelError(f"manifest {path} lists {', '.join(map(repr, dup))} more than once")
    return models


def read_manifest(folder: Path) -> List[ModelEntry]:
    """The entries of ``folder``'s manifest ([] when it has none); :class:`ModelError` when it is malformed."""
    path = Path(folder) / MANIFEST_NAME
    if not path.exists():
        return []
    return [ModelEntry.from_dict(m, Path(folder)) for m in _read_manifest_models(path)]


def write_manifest_entry(folder: Path, entry: ModelEntry) -> Path:
    """Add or replace ``entry`` (by id) in ``folder``'s manifest (written atomically).

    Every side file in ``entry.files`` needs its sha256 (:meth:`ModelEntry.add_side_file` records it)."""
    folder = Path(folder)
    for role, spec in entry.files.items():
        if not (isinstance(spec.get("sha256"), str) and _SHA256.match(spec["sha256"])):
            raise ModelError(f"side file {spec.get('file')!r} ({role}) of '{entry.id}' has no sha256; "
                             "record it with ModelEntry.add_side_file")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / MANIFEST_NAME
    models = []
    if path.exists():
        models = [m for m in _read_manifest_models(path) if m["id"] != entry.id]
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


def scan_models() -> Tuple[Dict[str, ModelEntry], List[str]]:
    """Like :func:`list_models`, but a malformed manifest is reported (second item) instead of raised."""
    entries: Dict[str, ModelEntry] = {}
    problems: List[str] = []
    for folder in model_dirs():
        try:
            found = read_manifest(folder)
        except ModelError as exc:
            problems.append(str(exc))
            continue
        for entry in found:
            entries[entry.id] = entry
    return entries, problems


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
    threads = threads or _env_threads()
    if threads:
        options.intra_op_num_threads = int(threads)
    options.log_severity_level = 3
    session = ort.InferenceSession(str(entry.path), sess_options=options, providers=list(providers))
    loaded = LoadedModel(entry, session)
    with _settings_lock:
        _sessions[key] = loaded
    return loaded


def _env_threads() -> Optional[int]:
    """``MEDSYNTH_THREADS``: threads of each ONNX Runtime session (set to 1 in batch worker processes)."""
    text = os.environ.get("MEDSYNTH_THREADS", "").strip()
    return int(text) if text.isdigit() and int(text) > 0 else None


def clear_cache() -> None:
    with _settings_lock:
        _sessions.clear()
