"""PD vs NC from an FDG PET with its synthetic CFT: the second stage of the EJNMMI FDG -> CFT work (ONNX, no torch).

The paper's second stage classifies Parkinson's disease from the real FDG together with the CFT synthesised from
it. Here (:func:`classify`):

1. the FDG is checked and brought to MNI space, and the shipped ``fdg2cft`` generator makes the synthetic CFT
   (:func:`medsynth.pet.synthesis.synthesize`: registration, normalisation, the generator);
2. :func:`features`: the FDG divided by its brain mean and the synthetic CFT in SUVR (occipital = 1), both on the
   networks' MNI crop (80 x 96 x 80 voxels of 2 mm) averaged to 4 mm (40 x 48 x 40), stacked as two channels;
3. a 3D CNN (MONAI ``Classifier``, trained by :mod:`medsynth.pet.train_classifier`) gives the PD probability; the
   operating threshold was set on validation subjects of the training cohort (manifest ``extra.threshold``).

The striatal binding of the synthetic CFT (lower posterior-putamen SBR, no training) is reported beside it: the
simplest use of the synthetic CFT and the baseline the classifier must beat. Both models were trained on simulated
PET only (docs/pet.md); the result is not a diagnosis.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

import numpy as np

from ..errors import ModelError
from ..progress import CancelToken, ProgressCallback, Reporter
from ..volume import Volume

MODEL_ID = "pd-classifier"
#: the same network on the FDG channel alone: the comparison arm (shipped so the evaluation needs no torch)
FDG_ONLY_MODEL_ID = "pd-classifier-fdg"
#: channels of each arm (feature rows of :func:`features`)
ARMS: Dict[str, tuple] = {"fdg_cft": (0, 1), "fdg": (0,)}
FEATURE_SHAPE = (40, 48, 40)


def pool2(a: np.ndarray) -> np.ndarray:
    """Average 2 x 2 x 2 blocks of the last three axes (the 2 mm crop -> 4 mm)."""
    k, j, i = a.shape[-3:]
    b = a[..., : k // 2 * 2, : j // 2 * 2, : i // 2 * 2]
    b = b.reshape(*a.shape[:-3], k // 2, 2, j // 2, 2, i // 2, 2)
    return b.mean(axis=(-5, -3, -1)).astype(np.float32)


def features(fdg_mni: np.ndarray, cft_mni: np.ndarray) -> np.ndarray:
    """[2, 40, 48, 40] float32: brain-mean-normalised FDG and SUVR CFT, both on the atlas grid, cropped and pooled."""
    from .synthesis import brain_mask, crop, normalise

    x, _ = normalise(np.asarray(fdg_mni, np.float32), "FDG")
    mask = brain_mask()
    f = np.stack([np.where(mask, x, 0.0), np.where(mask, np.asarray(cft_mni, np.float32), 0.0)])
    return pool2(crop(f))


def lower_posterior_putamen_sbr(cft_mni: np.ndarray) -> float:
    """SBR of the posterior putamen, the lower of the two sides (occipital reference), on the atlas grid."""
    from .atlas import load_atlas
    from .sbr import sbr_from_labels

    s = sbr_from_labels(np.asarray(cft_mni, np.float32), load_atlas().labels.array, "occipital")
    return float(min(s["putamen_posterior_L"], s["putamen_posterior_R"]))


def sigmoid(v: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(v, np.float64)))


def predict(model: Any, feats: np.ndarray, arm: str) -> np.ndarray:
    """PD probabilities of a batch of features [N, 2, 40, 48, 40] through one arm's ONNX model."""
    x = np.ascontiguousarray(feats[:, list(ARMS[arm])], np.float32)
    (logit,) = model.run({model.input_names[0]: x})
    p = sigmoid(np.asarray(logit).reshape(len(x)))
    if not np.all(np.isfinite(p)):
        raise ModelError(f"the {arm} PD classifier produced non-finite values")
    return p


def subject_features(fdg: Volume, cft: Optional[Volume] = None, device: Optional[str] = None) -> Dict[str, Any]:
    """Features of one subject (FDG volume on any grid; its true CFT when known, for the reference SBR)."""
    from .sbr import to_mni
    from .synthesis import synthesize

    syn = synthesize(fdg, "fdg2cft", "auto", device=device)
    out = {"features": features(syn.aligned_input.array, syn.mni.array),
           "sbr_synthetic": lower_posterior_putamen_sbr(syn.mni.array)}
    if cft is not None:
        aligned, _, _ = to_mni(cft, "CFT", "auto")
        out["sbr_true"] = lower_posterior_putamen_sbr(aligned.array)
    return out


@dataclass
class ClassifyResult:
    """Result of :func:`classify`."""

    probability: float
    threshold: float
    sbr_posterior_putamen_lower: float
    synthetic_cft: Volume  # on the input's grid (as medsynth fdg2cft writes it)
    space: str
    model: Dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def label(self) -> str:
        return "PD" if self.probability >= self.threshold else "NC"

    def line(self) -> str:
        """One line for a panel or a terminal."""
        return (f"PD probability {self.probability:.2f} (threshold {self.threshold:.2f}): {self.label}-like; "
                f"posterior-putamen SBR of the synthetic CFT {self.sbr_posterior_putamen_lower:.2f}. "
                "Trained on simulated PET only; not a diagnosis.")

    def report(self) -> Dict[str, Any]:
        return {
            "pd_probability": round(self.probability, 4),
            "threshold": round(self.threshold, 4),
            "label": self.label,
            "synthetic_cft_sbr_posterior_putamen_lower": round(self.sbr_posterior_putamen_lower, 4),
            "input_space": self.space,
            "model": self.model,
            "seconds": round(self.seconds, 2),
            "note": "classifier and FDG -> CFT generator trained on simulated PET only (docs/pet.md); not a diagnosis",
        }


def classify(
    fdg: Volume,
    space: str = "auto",
    device: Optional[str] = None,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
    reporter: Optional[Reporter] = None,
) -> ClassifyResult:
    """PD probability of one FDG PET (any grid) from the FDG and its synthetic CFT (see the module docstring).

    Raises :class:`~medsynth.errors.InputError` for a bad input, ``RegistrationError`` when a native-space input does
    not register, :class:`~medsynth.progress.Cancelled` when cancelled.
    """
    from ..runtime import load_model
    from .synthesis import synthesize

    t0 = time.perf_counter()
    reporter = reporter or Reporter(progress, cancel)
    syn = synthesize(fdg, "fdg2cft", space, device=device, reporter=reporter.sub(0.0, 0.85))
    reporter.step(0.85, "classifying")
    model = load_model(MODEL_ID, device)
    feats = features(syn.aligned_input.array, syn.mni.array)[None]
    prob = float(predict(model, feats, "fdg_cft")[0])
    entry = model.entry
    thr = float(entry.extra.get("threshold", 0.5))
    reporter.step(1.0, "classified")
    return ClassifyResult(
        probability=prob,
        threshold=thr,
        sbr_posterior_putamen_lower=lower_posterior_putamen_sbr(syn.mni.array),
        synthetic_cft=syn.volume,
        space=syn.space,
        model={"id": entry.id, "version": entry.version, "provider": model.provider,
               "fdg2cft": syn.model},
        seconds=time.perf_counter() - t0,
    )


__all__ = ["ARMS", "ClassifyResult", "FDG_ONLY_MODEL_ID", "MODEL_ID", "classify", "features",
           "lower_posterior_putamen_sbr", "pool2", "predict", "subject_features"]
