"""Turn a trained torch module into an ONNX model plus its manifest entry.

torch is needed here (training and export), never for inference.  The export is
checked: ONNX Runtime and torch are run on the same random input and must agree.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from .errors import ModelError
from .runtime import ModelEntry, sha256_of, write_manifest_entry

OPSET = 17


# --------------------------------------------------------------------------- training checkpoints
def plain_checkpoint(obj: Any, where: str = "checkpoint") -> Any:
    """``obj`` with numpy values as Python numbers or lists and paths as strings, so that it loads with
    ``torch.load(weights_only=True)``: only tensors and plain types (dict, list, tuple, str, int, float,
    bool, None) are kept; anything else is refused here, when saving, not when loading."""
    import torch

    if obj is None or type(obj) in (bool, int, float, str) or isinstance(obj, (torch.Tensor, torch.dtype,
                                                                             torch.Size)):
        return obj
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (str, bool, int, float)):  # subclasses such as torch.__version__ (TorchVersion)
        return next(t for t in (str, bool, int, float) if isinstance(obj, t))(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, dict):
        return {k: plain_checkpoint(v, f"{where}[{k!r}]") for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(plain_checkpoint(v, f"{where}[{i}]") for i, v in enumerate(obj))
    raise TypeError(f"{where} is a {type(obj).__name__}; checkpoints hold only tensors and plain types")


def save_checkpoint_file(obj: Dict[str, Any], path: Path) -> Path:
    """Write ``obj`` (tensors and plain types, see :func:`plain_checkpoint`) to ``path`` atomically."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    torch.save(plain_checkpoint(obj), str(tmp))
    os.replace(tmp, path)
    return path


def load_checkpoint_file(path: Path) -> Dict[str, Any]:
    """A training checkpoint, read with ``torch.load(weights_only=True)`` (tensors and plain types only:
    loading never runs code stored in the file)."""
    import pickle

    import torch

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"checkpoint {path} is missing")
    try:
        ck = torch.load(str(path), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        why = next((ln for ln in lines if "Unsupported global" in ln), lines[0] if lines else type(exc).__name__)
        raise ModelError(
            f"checkpoint {path} cannot be read with weights_only=True (damaged, not a torch checkpoint, or one "
            f"that holds Python objects): {why[:300]}"
        ) from None
    if not isinstance(ck, dict):
        raise ModelError(f"checkpoint {path} holds a {type(ck).__name__}, not a dict")
    return ck


def _shape_spec(shape: Sequence[int], dynamic: Dict[int, str]) -> List[Any]:
    return [dynamic.get(i, int(s)) for i, s in enumerate(shape)]


def export_onnx(
    module: Any,
    example_inputs: Sequence[Any],
    folder: Path,
    model_id: str,
    version: str,
    input_names: Sequence[str],
    output_names: Sequence[str],
    dynamic_axes: Optional[Dict[str, Dict[int, str]]] = None,
    atol: float = 1e-3,
    write_manifest: bool = True,
    **entry_fields: Any,
) -> ModelEntry:
    """Export ``module`` to ``folder/<model_id>.onnx`` and add its manifest entry.

    ``dynamic_axes`` maps each input/output name to ``{axis: "name"}`` for sizes that
    vary.  ``entry_fields`` fill the remaining :class:`ModelEntry` fields (task,
    normalization, spacing_mm, training_command, metrics, data_terms, card, ...).
    Raises :class:`ModelError` if ONNX Runtime differs from torch by more than ``atol``.
    """
    import onnxruntime as ort
    import torch

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    dynamic_axes = dynamic_axes or {}
    path = folder / f"{model_id}.onnx"
    tmp = folder / f".{model_id}.partial.onnx"
    module = module.eval()
    inputs = tuple(example_inputs)
    try:
        with torch.no_grad():
            torch.onnx.export(
                module,
                inputs,
                str(tmp),
                input_names=list(input_names),
                output_names=list(output_names),
                dynamic_axes={k: dict(v) for k, v in dynamic_axes.items()},
                opset_version=OPSET,
                dynamo=False,
            )
        # check ONNX Runtime against torch on a fresh random input of the example's shape
        gen = torch.Generator().manual_seed(0)
        probe = tuple(torch.randn(x.shape, generator=gen, dtype=x.dtype) if x.is_floating_point() else x for x in inputs)
        with torch.no_grad():
            ref = module(*probe)
        ref_list = [ref] if isinstance(ref, torch.Tensor) else list(ref)
        sess = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
        got = sess.run(None, {n: x.numpy() for n, x in zip(input_names, probe)})
        max_diff = max(float(np.max(np.abs(g - r.numpy()))) for g, r in zip(got, ref_list))
        if not max_diff <= atol:
            raise ModelError(f"ONNX Runtime differs from torch by {max_diff:.3g} (> {atol}) for '{model_id}'")
        tmp.replace(path)
    finally:
        if tmp.exists():
            tmp.unlink()
    entry = ModelEntry(
        id=model_id,
        version=version,
        file=path.name,
        sha256=sha256_of(path),
        inputs=[
            {"name": n, "shape": _shape_spec(x.shape, dynamic_axes.get(n, {})), "dtype": str(x.numpy().dtype)}
            for n, x in zip(input_names, inputs)
        ],
        outputs=[
            {"name": n, "shape": _shape_spec(r.shape, dynamic_axes.get(n, {})), "dtype": str(r.numpy().dtype)}
            for n, r in zip(output_names, ref_list)
        ],
        folder=folder,
        **entry_fields,
    )
    entry.extra.setdefault("export_check", {"max_abs_diff_vs_torch": max_diff, "opset": OPSET})
    if write_manifest:
        write_manifest_entry(folder, entry)
    return entry
