"""Turn a trained torch module into an ONNX model plus its manifest entry.

torch is needed here (training and export), never for inference.  The export is
checked: ONNX Runtime and torch are run on the same random input and must agree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from .errors import ModelError
from .runtime import ModelEntry, sha256_of, write_manifest_entry

OPSET = 17


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
