"""Small image helpers of the PET package (SimpleITK underneath, physical units)."""

from __future__ import annotations

from typing import Optional

import numpy as np
import SimpleITK as sitk

from ..io import volume_from_sitk, volume_to_sitk
from ..volume import Volume

FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))


def gaussian_array(volume: Volume, array: np.ndarray, sigma_mm: float) -> np.ndarray:
    """Gaussian smoothing of ``array`` (on ``volume``'s grid) with ``sigma_mm`` in millimetres (float32)."""
    arr = np.asarray(array, dtype=np.float32)
    if sigma_mm <= 0:
        return arr.copy()
    img = volume_to_sitk(volume.with_array(arr))
    out = sitk.SmoothingRecursiveGaussian(img, float(sigma_mm))
    return sitk.GetArrayFromImage(out).astype(np.float32)


def blur_fwhm(volume: Volume, fwhm_mm: float, array: Optional[np.ndarray] = None) -> np.ndarray:
    """An isotropic Gaussian PSF of ``fwhm_mm`` FWHM applied to ``array`` (default: the volume's voxels)."""
    return gaussian_array(volume, volume.array if array is None else array, fwhm_mm * FWHM_TO_SIGMA)


def to_sitk_float(volume: Volume) -> sitk.Image:
    return volume_to_sitk(volume.with_array(np.asarray(volume.array, dtype=np.float32)))


def from_sitk(image: sitk.Image, like: Volume, name: Optional[str] = None) -> Volume:
    """A SimpleITK image on ``like``'s grid back to a Volume keeping ``like``'s matrix exactly."""
    out = volume_from_sitk(image, name=name or like.name, modality=like.modality)
    return Volume(out.array, like.ijk_to_ras.copy(), out.name, out.modality)


def affine_to_matrix(transform: sitk.Transform) -> np.ndarray:
    """The 4x4 (LPS) matrix of a SimpleITK matrix-offset transform (Euler, Similarity, Affine...)."""
    t = transform.Downcast() if hasattr(transform, "Downcast") else transform
    if t.GetName() == "CompositeTransform":
        m = np.eye(4)
        comp = sitk.CompositeTransform(t)
        # a composite applies its last-added transform first
        for n in range(comp.GetNumberOfTransforms()):
            m = m @ affine_to_matrix(comp.GetNthTransform(n))
        return m
    mat = np.asarray(t.GetMatrix(), float).reshape(3, 3)
    c = np.asarray(t.GetCenter(), float)
    tr = np.asarray(t.GetTranslation(), float)
    out = np.eye(4)
    out[:3, :3] = mat
    out[:3, 3] = c + tr - mat @ c
    return out


def matrix_to_affine(m_lps: np.ndarray) -> sitk.AffineTransform:
    """A SimpleITK affine transform from a 4x4 LPS matrix."""
    m = np.asarray(m_lps, dtype=float)
    a = sitk.AffineTransform(3)
    a.SetMatrix([float(x) for x in m[:3, :3].ravel()])
    a.SetTranslation([float(x) for x in m[:3, 3]])
    return a
