"""Latent-space steering of the shape model (numpy only; shared by training, evaluation and inference).

Each slider ``a`` (sphericity, lobulation, spiculation) has a weight vector ``w_a`` fitted by ridge
regression of a target (the z-scored shape measure and the z-scored reader score, averaged) on the
training nodules' latent means.  Its projection ``t_a = w_a . z`` has mean ``m_a`` and standard deviation
``s_a`` over the training nodules.  A slider value ``v`` (in those standard deviations) asks for
``t_a = m_a + v * s_a``; all three requests are met at once by the smallest change of ``z``
(``z' = z + W^T (W W^T)^-1 (t - W z)``), so moving one slider leaves the other two projections unchanged.

With ``"steering": "offset"`` in the JSON (sliders fitted to the decoder's response,
:mod:`medsynth.nodule.fit_sliders`) a slider value is instead an offset from the code's own shape:
``z' = z + sum_a v_a s_a S_a`` with ``S = W^T (W W^T)^-1`` (unit: the fitted step; 0 = the nodule as drawn or
encoded), so each slider moves along its own fitted step whatever the other readings are.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Mapping, Optional, Sequence

import numpy as np

ATTRIBUTES = ("sphericity", "lobulation", "spiculation")
ATTRIBUTE_MEASURE = {"sphericity": "roundness", "lobulation": "lobulation", "spiculation": "spiculation"}
LATENT_FORMAT = 1


class LatentSpace:
    """Prior over latent codes (the training codes' mean and covariance) and the attribute directions."""

    def __init__(self, data: Mapping) -> None:
        self.data = dict(data)
        self.latent_size = int(data["latent_size"])
        self.mean = np.asarray(data["latent_mean"], np.float64)
        self.chol = np.asarray(data["latent_cov_cholesky"], np.float64)
        attrs = data["attributes"]
        self.names = tuple(a for a in ATTRIBUTES if a in attrs)
        self.weights = np.stack([np.asarray(attrs[a]["weights"], np.float64) for a in self.names])
        self.proj_mean = np.array([attrs[a]["mean"] for a in self.names], np.float64)
        self.proj_std = np.array([attrs[a]["std"] for a in self.names], np.float64)
        self._gram_inv = np.linalg.inv(self.weights @ self.weights.T)
        self.offset = data.get("steering", "absolute") == "offset"

    @classmethod
    def load(cls, path: Path) -> "LatentSpace":
        return cls(json.loads(Path(path).read_text(encoding="utf-8")))

    def sample(self, seed: int) -> np.ndarray:
        """A latent code drawn from the training codes' Gaussian (same seed -> same code)."""
        eps = np.random.default_rng(int(seed) & 0xFFFFFFFF).standard_normal(self.latent_size)
        return self.mean + self.chol @ eps

    def sliders(self, z: np.ndarray) -> Dict[str, float]:
        """Slider readings of ``z``: its projections, centred on the training codes and in slider units (training
        standard deviations; offset steering: steps)."""
        t = self.weights @ np.asarray(z, np.float64)
        return {a: float(v) for a, v in zip(self.names, (t - self.proj_mean) / self.proj_std)}

    def steer(self, z: np.ndarray, values: Mapping[str, Optional[float]]) -> np.ndarray:
        """``z`` moved (least change) so that each named slider reads its value; ``None`` keeps that one as it is.
        Offset steering: ``z`` moved by each named slider's value times its step (``None`` or 0: not moved)."""
        z = np.asarray(z, np.float64)
        if self.offset:
            v = np.array([float(values.get(a) or 0.0) for a in self.names])
            return z + self.weights.T @ (self._gram_inv @ (v * self.proj_std))
        t_now = self.weights @ z
        target = t_now.copy()
        for i, a in enumerate(self.names):
            v = values.get(a)
            if v is not None:
                target[i] = self.proj_mean[i] + float(v) * self.proj_std[i]
        return z + self.weights.T @ (self._gram_inv @ (target - t_now))

    def code(self, seed: int, sphericity: float = 0.0, lobulation: float = 0.0, spiculation: float = 0.0) -> np.ndarray:
        return self.steer(self.sample(seed), {"sphericity": sphericity, "lobulation": lobulation,
                                              "spiculation": spiculation})


def fit_directions(
    mu: np.ndarray, targets: Mapping[str, np.ndarray], ridge: float = 1.0
) -> Dict[str, Dict[str, object]]:
    """Ridge regression of each target on the latent means; returns weights, projection mean and std."""
    x = np.asarray(mu, np.float64)
    xm = x.mean(axis=0)
    xc = x - xm
    out = {}
    for name, y in targets.items():
        y = np.asarray(y, np.float64)
        yc = y - y.mean()
        w = np.linalg.solve(xc.T @ xc + ridge * np.eye(x.shape[1]), xc.T @ yc)
        t = x @ w
        out[name] = {"weights": w.tolist(), "mean": float(t.mean()), "std": float(t.std())}
    return out


def zscore(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, np.float64)
    s = v.std()
    return (v - v.mean()) / (s if s > 0 else 1.0)


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman rank correlation (average ranks for ties), numpy only."""
    from scipy.stats import spearmanr

    a, b = np.asarray(a, float), np.asarray(b, float)
    if np.all(a == a[0]) or np.all(b == b[0]):
        return 0.0
    return float(spearmanr(a, b)[0])
