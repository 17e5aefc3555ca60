"""FDG <-> CFT PET synthesis with ONNX Runtime (no torch): registration to MNI, the network, back to the input grid.

The generators (trained by :mod:`medsynth.pet.train` on *simulated* PET, see docs/pet.md) work on a fixed crop of the
MNI 2 mm atlas grid (:data:`CROP`, 80 x 96 x 80 voxels around the brain). Steps of :func:`synthesize`:

1. check the input (:func:`medsynth.pet.checks.check_pet_volume`: a 3D scalar volume, field of view, not a CT);
2. bring it to MNI space (:func:`medsynth.pet.sbr.to_mni`: used as is on the atlas grid, otherwise an affine
   mutual-information registration to the template of the input tracer; a registration that does not converge is
   an error) and check its contrast (:func:`medsynth.pet.checks.check_pet_contrast`: an MR or CT is named);
3. normalise the intensities (:func:`normalise`): FDG divided by its mean over the atlas brain, CFT divided by its
   mean over the occipital cortex (SUVR), then masked to the brain (dilated by 4 mm) and cropped;
4. run the network on ``[input, prior]`` (the prior is the healthy template of the output tracer, normalised the
   same way); the output is masked to the brain;
5. put the output back on the atlas grid and resample it onto the input's grid through the inverse of the
   registration (linear interpolation).

The synthetic CFT is in SUVR units (occipital cortex = 1), so ``SBR = value / mean(reference) - 1`` applies
directly; the synthetic FDG is relative to its whole-brain mean (= 1).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Dict, Optional, Tuple

import numpy as np

from ..errors import InputError, ModelError
from ..progress import CancelToken, ProgressCallback, Reporter
from ..volume import Volume

#: crop of the atlas array (k, j, i) the networks see: 80 x 96 x 80 voxels of 2 mm around the brain
CROP: Tuple[Tuple[int, int], ...] = ((0, 80), (7, 103), (5, 85))
CROP_SHAPE = tuple(b - a for a, b in CROP)
MASK_DILATION_VOXELS = 2
#: direction -> (input tracer, output tracer)
DIRECTIONS: Dict[str, Tuple[str, str]] = {"fdg2cft": ("FDG", "CFT"), "cft2fdg": ("CFT", "FDG")}
#: how each tracer is normalised (stated in the manifest)
NORMALISATION = {
    "FDG": "divided by the mean over the atlas brain (labels 1-22 of the MedSynth PET atlas, MNI 2 mm)",
    "CFT": "divided by the mean over the occipital cortex (atlas labels occipital_L/R): SUVR",
}
#: quantisation of the prepared training arrays (uint8 of sqrt(x / vmax)); see medsynth.pet.train
QUANT_VMAX = {"FDG": 4.0, "CFT": 9.0}
#: single-file volume formats the synthetic PET is written as (one atomic rename)
OUTPUT_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha")


# --------------------------------------------------------------------------- MNI-crop data layout (shared with training)
def crop(array: np.ndarray) -> np.ndarray:
    """The network's crop of an array on the atlas grid (k, j, i)."""
    (k0, k1), (j0, j1), (i0, i1) = CROP
    return array[..., k0:k1, j0:j1, i0:i1]


def uncrop(array: np.ndarray, fill: float = 0.0) -> np.ndarray:
    """A cropped array back on the full atlas grid (outside the crop: ``fill``)."""
    from .atlas import ATLAS_SHAPE_IJK

    ni, nj, nk = ATLAS_SHAPE_IJK
    out = np.full((nk, nj, ni), fill, np.float32)
    (k0, k1), (j0, j1), (i0, i1) = CROP
    out[k0:k1, j0:j1, i0:i1] = array
    return out


def _dilate(mask: np.ndarray, n: int) -> np.ndarray:
    out = mask.copy()
    for _ in range(n):
        grown = out.copy()
        for ax in range(3):
            grown[tuple(slice(1, None) if a == ax else slice(None) for a in range(3))] |= out[
                tuple(slice(None, -1) if a == ax else slice(None) for a in range(3))
            ]
            grown[tuple(slice(None, -1) if a == ax else slice(None) for a in range(3))] |= out[
                tuple(slice(1, None) if a == ax else slice(None) for a in range(3))
            ]
        out = grown
    return out


@lru_cache(maxsize=1)
def brain_mask() -> np.ndarray:
    """The atlas brain dilated by :data:`MASK_DILATION_VOXELS` (bool, full atlas grid): where the networks work."""
    from .atlas import load_atlas

    return _dilate(load_atlas().brain, MASK_DILATION_VOXELS)


def normalise(array: np.ndarray, tracer: str) -> Tuple[np.ndarray, float]:
    """``(array / scale, scale)`` for an array on the atlas grid: FDG by its brain mean, CFT by its occipital mean."""
    from .atlas import load_atlas

    atlas = load_atlas()
    region = atlas.brain if tracer == "FDG" else atlas.mask("occipital")
    scale = float(np.asarray(array, np.float64)[region].mean())
    if not np.isfinite(scale) or scale <= 0:
        what = "brain" if tracer == "FDG" else "occipital cortex"
        raise InputError(f"the {tracer} input has no positive uptake in the {what} (mean {scale:g}) once in MNI space")
    return (np.asarray(array, np.float32) / scale).astype(np.float32), scale


@lru_cache(maxsize=2)
def prior(tracer: str) -> np.ndarray:
    """The network's prior channel for an output ``tracer``: its healthy template, normalised, masked, cropped."""
    from .simulate import pet_template

    t, _ = normalise(pet_template(tracer).array, tracer)
    return crop(np.where(brain_mask(), t, 0.0)).astype(np.float32)


def network_input(normalised: np.ndarray, direction: str) -> np.ndarray:
    """``[1, 2, D, H, W]`` float32: the normalised input (masked, cropped) and the output tracer's prior."""
    _, out_tracer = DIRECTIONS[direction]
    x = crop(np.where(brain_mask(), normalised, 0.0))
    return np.stack([x, prior(out_tracer)])[None].astype(np.float32)


# --------------------------------------------------------------------------- inference
@dataclass
class SynthesisResult:
    """Result of :func:`synthesize`."""

    volume: Volume  # the synthetic image on the input's grid
    mni: Volume  # the synthetic image on the atlas grid (MNI 2 mm)
    aligned_input: Volume  # the input on the atlas grid
    direction: str
    space: str  # "mni", "resampled" or "registered"
    registration: Any = None  # medsynth.pet.register.Registration or None
    input_scale: float = 1.0  # the input's normalisation divisor (brain or occipital mean)
    model: Dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def units(self) -> str:
        return "SUVR (occipital cortex = 1)" if DIRECTIONS[self.direction][1] == "CFT" else "relative to brain mean"

    def summary(self) -> Dict[str, Any]:
        return {
            "direction": self.direction,
            "model": self.model,
            "space": self.space,
            "units": self.units,
            "input_normalisation_divisor": round(float(self.input_scale), 6),
            "registration": self.registration.summary() if self.registration is not None else None,
            "seconds": round(self.seconds, 2),
            "note": "synthetic PET from a generator trained on simulated images (docs/pet.md); not a measurement",
        }


def _back_to_input(mni: Volume, how: str, reg: Any, target: Volume) -> Volume:
    from ..resample import resample_like
    from .register import resample_from_template

    if how == "mni":
        return Volume(mni.array.copy(), target.ijk_to_ras.copy(), mni.name, mni.modality)
    if reg is not None:
        return resample_from_template(mni, reg, target, interpolation="linear")
    return resample_like(mni, target, "linear")


def synthesize(
    volume: Volume,
    direction: str = "fdg2cft",
    space: str = "auto",
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
    device: Optional[str] = None,
    model_id: Optional[str] = None,
    reporter: Optional[Reporter] = None,
) -> SynthesisResult:
    """Synthesize the other tracer from a brain PET ``volume`` (see the module docstring).

    ``direction`` is ``"fdg2cft"`` or ``"cft2fdg"``; ``space`` as in :func:`medsynth.pet.sbr.to_mni`. Raises
    :class:`InputError` for a bad input (with the reason), :class:`RegistrationError` when registration does not
    converge, :class:`Cancelled` when ``cancel`` is set; nothing is returned in those cases.
    """
    from ..runtime import load_model
    from .atlas import load_atlas
    from .checks import check_pet_contrast, check_pet_volume
    from .sbr import to_mni

    if direction not in DIRECTIONS:
        raise InputError(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
    t0 = time.perf_counter()
    reporter = reporter or Reporter(progress, cancel)
    in_tracer, out_tracer = DIRECTIONS[direction]
    check_pet_volume(volume, in_tracer)
    reporter.step(0.0, f"loading the {direction} model")
    model = load_model(model_id or direction, device)
    atlas = load_atlas()
    reporter.step(0.02, "bringing the input to MNI space")
    aligned, how, reg = to_mni(volume, in_tracer, space, atlas, reporter.sub(0.02, 0.8))
    check_pet_contrast(aligned.array, atlas, in_tracer, volume.name)
    reporter.step(0.8, f"synthesizing {out_tracer}")
    x, scale = normalise(aligned.array, in_tracer)
    feed = network_input(x, direction)
    name = model.input_names[0]
    (y,) = model.run({name: feed})
    reporter.step(0.9, "writing the result")
    y = np.asarray(y, np.float32).reshape(feed.shape[2:])
    if not np.all(np.isfinite(y)):
        raise ModelError(f"the {direction} model produced non-finite values; no result was written")
    full = np.where(brain_mask(), uncrop(np.clip(y, 0.0, None)), 0.0).astype(np.float32)
    out_name = f"{volume.name}_synthetic_{out_tracer.lower()}"
    mni = Volume(full, atlas.labels.ijk_to_ras.copy(), out_name, "PET")
    out = _back_to_input(mni, how, reg, volume)
    out = Volume(out.array.astype(np.float32), volume.ijk_to_ras.copy(), out_name, "PET")
    reporter.step(1.0, f"synthetic {out_tracer} done")
    entry = model.entry
    return SynthesisResult(
        volume=out,
        mni=mni,
        aligned_input=aligned,
        direction=direction,
        space=how,
        registration=reg,
        input_scale=scale,
        model={"id": entry.id, "version": entry.version, "provider": model.provider},
        seconds=time.perf_counter() - t0,
    )


def synthesize_file(
    input_path: Any,
    output_path: Any,
    direction: str = "fdg2cft",
    space: str = "auto",
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
    device: Optional[str] = None,
) -> SynthesisResult:
    """Read, synthesize, write (atomically). The output suffix is checked first; a failure or a cancel leaves no
    output file."""
    from pathlib import Path

    from ..io import read_volume, suffix_of, write_volume

    out = Path(output_path)
    if suffix_of(out) not in OUTPUT_SUFFIXES:
        raise InputError(
            f"cannot write a PET volume as '{suffix_of(out) or out.name}'; use one of {', '.join(OUTPUT_SUFFIXES)}"
        )
    if Path(input_path).resolve() == out.resolve():
        raise InputError("the output would overwrite the input; choose another output path")
    volume = read_volume(input_path)
    result = synthesize(volume, direction, space, progress, cancel, device)
    if cancel is not None:
        cancel.raise_if_cancelled()
    write_volume(result.volume, out)
    return result


def synthetic_cft_sbr(
    fdg: Volume,
    reference: str = "occipital",
    space: str = "auto",
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
    device: Optional[str] = None,
):
    """Synthesize CFT from ``fdg`` and measure its striatal binding. Returns ``(SynthesisResult, SBRResult)``.

    The SBR is measured in MNI space on the synthetic CFT; ``SBRResult.labels_in_input`` holds the striatal and
    reference regions on the FDG input's grid (through the same registration).
    """
    from .atlas import LABEL_OF, REFERENCE_REGIONS
    from .sbr import striatal_binding

    reporter = Reporter(progress, cancel)
    syn = synthesize(fdg, "fdg2cft", space, reporter=reporter.sub(0.0, 0.85), device=device)
    reporter.step(0.85, "striatal binding of the synthetic CFT")
    res = striatal_binding(syn.mni, reference, "mni", labels_in_input=False)
    from .atlas import load_atlas

    atlas = load_atlas()
    keep = [LABEL_OF[f"{p}_{s}"] for p in ("caudate", "putamen_anterior", "putamen_posterior") for s in ("L", "R")]
    keep += [LABEL_OF[n] for n in REFERENCE_REGIONS[reference]]
    lab = atlas.labels.array
    lab_vol = atlas.labels.with_array(np.where(np.isin(lab, keep), lab, 0).astype(np.uint8), name="striatal_regions")
    res.labels_in_input = _back_to_input_labels(lab_vol, syn, fdg)
    res.input_name = fdg.name
    res.space = syn.space
    res.registration = syn.registration.summary() if syn.registration is not None else None
    reporter.step(1.0, "striatal binding done")
    return syn, res


def _back_to_input_labels(labels: Volume, syn: SynthesisResult, target: Volume) -> Volume:
    from ..resample import resample_like
    from .register import resample_from_template

    if syn.space == "mni":
        return Volume(labels.array.copy(), target.ijk_to_ras.copy(), labels.name)
    if syn.registration is not None:
        return resample_from_template(labels, syn.registration, target, "nearest")
    return resample_like(labels, target, "nearest")


__all__ = [
    "CROP",
    "CROP_SHAPE",
    "DIRECTIONS",
    "NORMALISATION",
    "SynthesisResult",
    "brain_mask",
    "crop",
    "network_input",
    "normalise",
    "prior",
    "synthesize",
    "synthesize_file",
    "synthetic_cft_sbr",
    "uncrop",
]
