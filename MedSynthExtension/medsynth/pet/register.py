"""Affine registration of a PET volume to a PET template in MNI space (SimpleITK, Mattes mutual information).

Both images are smoothed and subsampled once into a three-level pyramid (template grid shrunk 4x, 2x, 1x with
4, 2, 1 mm Gaussian smoothing, i.e. 8, 4 and 2 mm voxels for the 2 mm atlas grid; the input is smoothed alike and
averaged down to about half the level's voxel size first). A similarity transform (rotation, isotropic scale,
translation) started from the images' centres of mass is fitted on the coarsest level with every template voxel
in the metric, then a full affine started from it on the two finer levels (10 % and 3 % of the template voxels,
random samples). :class:`RegistrationSettings` holds these choices; ``RegistrationSettings.legacy()`` is the
earlier, about 5x slower scheme (a similarity then an affine stage, each over all three levels with SimpleITK's
own pyramid, 10 % sampling) with the same accuracy on simulated inputs (``benchmarks/bench_pet_register.py``).

A registration that does not converge is an error (:class:`RegistrationError`), never a silent result: after the
optimisation the aligned image must correlate with the template over the head (Pearson r at least
``min_correlation``) and the transform must be plausible for a head (axis scales 0.6-1.6, no reflection).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk

from ..errors import InputError
from ..progress import Reporter
from ..volume import Volume
from ..io import transform_lps_ras
from ._img import affine_to_matrix, from_sitk, matrix_to_affine, to_sitk_float


class RegistrationError(InputError):
    """Registration to the template failed to converge (the input is not aligned; no result is given)."""


@dataclass(frozen=True)
class RegistrationSettings:
    """How :func:`register_to_template` optimises (see the module docstring; the defaults are the fast scheme).

    Level ``n`` is the template grid shrunk ``shrink[n]`` times after Gaussian smoothing of ``sigma_mm[n]``.
    ``similarity_levels`` / ``affine_levels`` are the levels each stage runs on, coarse to fine (an empty
    ``similarity_levels`` starts the affine stage from the centres of mass); ``sampling[n]`` is the fraction of the
    level's template voxels in the metric (random samples; 1 = all). ``iterations`` is the most per level and
    stage. ``shared_pyramid`` smooths and subsamples both images once for all stages (False: SimpleITK's pyramid
    inside each stage, from the full-resolution images, as :meth:`legacy` does); ``gradient_filters`` precomputes
    image gradients at each level (False: finite differences at the sampled points).
    """

    shrink: Tuple[int, ...] = (4, 2, 1)
    sigma_mm: Tuple[float, ...] = (4.0, 2.0, 1.0)
    similarity_levels: Tuple[int, ...] = (0,)
    affine_levels: Tuple[int, ...] = (1, 2)
    sampling: Tuple[float, ...] = (1.0, 0.1, 0.03)
    iterations: int = 150
    learning_rate: float = 1.0
    min_step: float = 0.01
    relaxation: float = 0.6
    histogram_bins: int = 32
    shared_pyramid: bool = True
    gradient_filters: bool = False

    def __post_init__(self) -> None:
        n = len(self.shrink)
        if len(self.sigma_mm) != n or len(self.sampling) != n:
            raise ValueError("shrink, sigma_mm and sampling need one value per level")
        if any(not 0 <= k < n for k in (*self.similarity_levels, *self.affine_levels)):
            raise ValueError(f"similarity_levels and affine_levels must be level numbers 0-{n - 1}")
        if any(not 0.0 < f <= 1.0 for f in self.sampling) or min(self.shrink) < 1 or self.iterations < 1:
            raise ValueError("sampling must be in (0, 1], shrink factors and iterations at least 1")

    @classmethod
    def legacy(cls) -> "RegistrationSettings":
        """The earlier scheme: similarity then affine, each on all three levels (SimpleITK's pyramid per stage),
        10 % random sampling, steps down to 0.001 (about 5x slower, same accuracy)."""
        return cls(
            similarity_levels=(0, 1, 2),
            affine_levels=(0, 1, 2),
            sampling=(0.1, 0.1, 0.1),
            min_step=1e-3,
            shared_pyramid=False,
            gradient_filters=True,
        )

    def describe(self) -> str:
        def lv(levels: Sequence[int]) -> str:
            return ", ".join(f"{self.shrink[n]}x/{self.sigma_mm[n]:g} mm/{self.sampling[n]:.0%}" for n in levels) or "-"

        return (
            f"similarity [{lv(self.similarity_levels)}] then affine [{lv(self.affine_levels)}] (shrink/smoothing/"
            f"sampled), <= {self.iterations} iterations per level, steps {self.learning_rate:g} -> "
            f"{self.min_step:g}, {self.histogram_bins} bins, "
            f"{'one shared pyramid' if self.shared_pyramid else 'SimpleITK pyramid per stage'}"
            f"{', gradient filters' if self.gradient_filters else ''}"
        )


@dataclass
class Registration:
    """Result of :func:`register_to_template`.

    ``template_to_moving`` is the 4x4 RAS matrix mapping a template (MNI) point to the matching point of the
    moving image; ``aligned`` is the moving image resampled on the template grid.
    """

    aligned: Volume
    template_to_moving: np.ndarray
    transform: sitk.Transform  # LPS, template point -> moving point
    correlation: float
    metric: float
    iterations: List[int] = field(default_factory=list)
    stop: List[str] = field(default_factory=list)
    problem: Optional[str] = None  # why it is judged not converged (only with check=False)

    def summary(self) -> Dict[str, Any]:
        return {
            "method": "affine, Mattes mutual information (SimpleITK)",
            "template_to_input_ras": np.round(self.template_to_moving, 5).tolist(),
            "correlation_with_template": round(float(self.correlation), 4),
            "metric": round(float(self.metric), 5),
            "iterations": self.iterations,
            "stop": self.stop,
        }

    def moving_to_template(self) -> np.ndarray:
        return np.linalg.inv(self.template_to_moving)


def _plausible(m_ras: np.ndarray) -> Optional[str]:
    a = m_ras[:3, :3]
    if np.linalg.det(a) <= 0:
        return "the transform includes a reflection"
    sv = np.linalg.svd(a, compute_uv=False)
    if sv.min() < 0.6 or sv.max() > 1.6:
        return f"the transform scales the head by {sv.min():.2f}-{sv.max():.2f} (expected 0.6-1.6)"
    return None


def masked_correlation(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    x = np.asarray(a, np.float64)[mask]
    y = np.asarray(b, np.float64)[mask]
    if x.size < 10 or x.std() == 0 or y.std() == 0:
        return 0.0
    return float(np.corrcoef(x, y)[0, 1])


def _method(settings: RegistrationSettings, initial: sitk.Transform, iterations: int, mask: Optional[sitk.Image]):
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=settings.histogram_bins)
    reg.SetMetricUseFixedImageGradientFilter(settings.gradient_filters)
    reg.SetMetricUseMovingImageGradientFilter(settings.gradient_filters)
    if mask is not None:
        reg.SetMetricFixedMask(mask)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(
        learningRate=settings.learning_rate,
        minStep=settings.min_step,
        numberOfIterations=iterations,
        relaxationFactor=settings.relaxation,
        gradientMagnitudeTolerance=1e-6,
    )
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetInitialTransform(initial, inPlace=False)
    return reg


def _on_iteration(reg, callback) -> dict:
    """Add ``callback`` for each optimiser iteration. SimpleITK turns an exception raised in a Python callback
    (Ctrl-C, a cancel from the progress reporter) into a RuntimeError of its own; the returned record keeps the
    original, so that :func:`_execute` raises it again instead of calling it a failed registration."""
    record: dict = {}

    def guarded() -> None:
        try:
            callback()
        except BaseException as exc:  # noqa: BLE001 - kept and raised again after Execute
            record["exc"] = exc
            raise

    reg.AddCommand(sitk.sitkIterationEvent, guarded)
    return record


def _execute(reg, fixed: sitk.Image, moving: sitk.Image, label: str, record: Optional[dict] = None) -> sitk.Transform:
    try:
        return reg.Execute(fixed, moving)
    except RuntimeError as exc:
        if record and record.get("exc") is not None:
            raise record["exc"] from None  # Ctrl-C or a cancel inside the iteration callback
        raise RegistrationError(f"registration to the template failed ({label}): {str(exc).splitlines()[-1]}") from None


def _run_stage(
    fixed: sitk.Image,
    moving: sitk.Image,
    mask: Optional[sitk.Image],
    initial: sitk.Transform,
    iterations: int,
    seed: int,
    reporter: Reporter,
    label: str,
    settings: Optional[RegistrationSettings] = None,
    levels: Sequence[int] = (0, 1, 2),
):
    """One stage over ``levels`` with SimpleITK's own pyramid (smoothing and shrinking inside, per stage)."""
    settings = settings or RegistrationSettings.legacy()
    reg = _method(settings, initial, iterations, mask)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentagePerLevel([float(settings.sampling[n]) for n in levels], seed)
    reg.SetShrinkFactorsPerLevel([int(settings.shrink[n]) for n in levels])
    reg.SetSmoothingSigmasPerLevel([float(settings.sigma_mm[n]) for n in levels])
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    counter = {"n": 0}

    def on_iteration() -> None:
        counter["n"] += 1
        if counter["n"] % 10 == 0:
            reporter.step(
                min(counter["n"] / (len(levels) * iterations), 0.99), f"{label}: level {reg.GetCurrentLevel() + 1}"
            )

    record = _on_iteration(reg, on_iteration)
    out = _execute(reg, fixed, moving, label, record)
    return out, float(reg.GetMetricValue()), counter["n"], reg.GetOptimizerStopConditionDescription()


def _level_image(image: sitk.Image, sigma_mm: float, spacing_mm: Sequence[float], subsample: bool) -> sitk.Image:
    """``image`` smoothed by ``sigma_mm`` for a pyramid level of voxel size ``spacing_mm``: averaged down (bin
    shrink) to about half that size first where it is finer, then smoothed, then (``subsample``: the template)
    subsampled to the level's grid."""
    sp = image.GetSpacing()
    pre = [max(1, int(np.floor(t / 2.0 / s + 1e-6))) for t, s in zip(spacing_mm, sp)]
    if max(pre) > 1:
        image = sitk.BinShrink(image, pre)
    if sigma_mm > 0:
        image = sitk.SmoothingRecursiveGaussian(image, float(sigma_mm))
    if subsample:
        post = [max(1, int(round(t / s))) for t, s in zip(spacing_mm, image.GetSpacing())]
        if max(post) > 1:
            image = sitk.Shrink(image, post)
    return image


def _run_level(
    fixed: sitk.Image,
    moving: sitk.Image,
    initial: sitk.Transform,
    settings: RegistrationSettings,
    sampling: float,
    iterations: int,
    seed: int,
    reporter: Reporter,
    label: str,
):
    """One stage on one level of the shared pyramid (images already smoothed and subsampled)."""
    reg = _method(settings, initial, iterations, None)
    if sampling >= 1.0:
        reg.SetMetricSamplingStrategy(reg.NONE)
    else:
        reg.SetMetricSamplingStrategy(reg.RANDOM)
        reg.SetMetricSamplingPercentage(float(sampling), seed)
    counter = {"n": 0}

    def on_iteration() -> None:
        counter["n"] += 1
        if counter["n"] % 10 == 0:
            reporter.step(min(counter["n"] / iterations, 0.99), label)

    record = _on_iteration(reg, on_iteration)
    out = _execute(reg, fixed, moving, label, record)
    return out, float(reg.GetMetricValue()), counter["n"], reg.GetOptimizerStopConditionDescription()


def _similarity_to_affine(sim: sitk.Transform, center: np.ndarray) -> sitk.AffineTransform:
    m_sim = affine_to_matrix(sim)
    aff0 = sitk.AffineTransform(3)
    aff0.SetCenter([float(v) for v in center])
    aff0.SetMatrix([float(v) for v in m_sim[:3, :3].ravel()])
    aff0.SetTranslation([float(v) for v in m_sim[:3, 3] - center + m_sim[:3, :3] @ center])
    return aff0


def register_to_template(
    moving: Volume,
    template: Volume,
    mask: Optional[np.ndarray] = None,
    min_correlation: float = 0.75,
    iterations: Optional[int] = None,
    seed: int = 1,
    reporter: Optional[Reporter] = None,
    what: str = "the template",
    check: bool = True,
    settings: Optional[RegistrationSettings] = None,
) -> Registration:
    """Register ``moving`` (any grid) affinely to ``template``; ``mask`` (bool on the template grid) is where the
    correlation check is made (default: template > 5 % of its 99th percentile). The metric samples the whole
    template grid (a fixed-image mask biased the scale by 1-3 % in tests: the background edge carries information).
    ``settings`` (default :class:`RegistrationSettings`) says how it optimises; ``iterations``, when given,
    replaces its most iterations per level.

    Raises :class:`RegistrationError` when it does not converge (see the module docstring); with ``check=False``
    the result is returned with ``problem`` set instead (for callers that add their own diagnosis).
    """
    reporter = reporter or Reporter()
    settings = settings or RegistrationSettings()
    if iterations is not None:
        settings = replace(settings, iterations=int(iterations))
    if moving.is_vector or template.is_vector:
        raise InputError("registration needs scalar volumes")
    fixed = to_sitk_float(template)
    mov_arr = np.asarray(moving.array, np.float32)
    mov = to_sitk_float(moving.with_array(mov_arr))
    if mask is None:
        mask = template.array > 0.05 * float(np.percentile(template.array, 99))

    reporter.step(0.0, "registration: initialising")
    try:
        init = sitk.CenteredTransformInitializer(
            fixed, mov, sitk.Similarity3DTransform(), sitk.CenteredTransformInitializerFilter.MOMENTS
        )
    except RuntimeError as exc:
        raise RegistrationError(f"cannot initialise registration to {what}: {str(exc).splitlines()[-1]}") from None
    center = np.asarray(init.GetCenter(), float)
    its = settings.iterations
    sim_levels, aff_levels = settings.similarity_levels, settings.affine_levels
    n1 = n2 = 0
    stop1 = stop2 = "not run"
    metric = float("nan")
    if not settings.shared_pyramid:
        sim = init
        if sim_levels:
            sim, metric, n1, stop1 = _run_stage(
                fixed, mov, None, init, its, seed, reporter.sub(0.0, 0.4), "similarity", settings, sim_levels
            )
        aff = _similarity_to_affine(sim, center)
        if aff_levels:
            aff, metric, n2, stop2 = _run_stage(
                fixed, mov, None, aff, its, seed, reporter.sub(0.4, 0.95), "affine", settings, aff_levels
            )
    else:
        # the pyramid once for both stages: template smoothed and subsampled, input smoothed (and averaged down)
        pyramid: Dict[int, Tuple[sitk.Image, sitk.Image]] = {}
        for n in sorted(set(sim_levels) | set(aff_levels)):
            spacing = [settings.shrink[n] * s for s in fixed.GetSpacing()]
            pyramid[n] = (
                _level_image(fixed, settings.sigma_mm[n], spacing, True),
                _level_image(mov, settings.sigma_mm[n], [float(np.mean(spacing))] * 3, False),
            )
        runs = [("similarity", n) for n in sim_levels] + [("affine", n) for n in aff_levels]
        transform: sitk.Transform = init
        affine = False
        for k, (stage, n) in enumerate(runs):
            if stage == "affine" and not affine:
                transform, affine = _similarity_to_affine(transform, center), True
            sub = reporter.sub(0.05 + 0.9 * k / len(runs), 0.05 + 0.9 * (k + 1) / len(runs))
            label = f"{stage}: level {n + 1}"
            transform, metric, count, stop = _run_level(
                *pyramid[n], transform, settings, settings.sampling[n], its, seed, sub, label
            )
            if stage == "similarity":
                n1, stop1 = n1 + count, stop
            else:
                n2, stop2 = n2 + count, stop
        aff = transform if affine else _similarity_to_affine(transform, center)
    m_lps = affine_to_matrix(aff)
    final = matrix_to_affine(m_lps)
    m_ras = transform_lps_ras(m_lps)
    res = sitk.Resample(mov, fixed, final, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    aligned = from_sitk(res, template, name=f"{moving.name}_mni")
    aligned = Volume(aligned.array, template.ijk_to_ras.copy(), aligned.name, moving.modality)
    corr = masked_correlation(aligned.array, template.array, mask)
    reporter.step(1.0, "registration done")
    bad = _plausible(m_ras)
    if bad is None and corr < min_correlation:
        bad = f"the aligned image correlates poorly with {what} (r = {corr:.2f} < {min_correlation:.2f})"
    problem = None
    if bad is not None:
        problem = (
            f"registration to {what} did not converge: {bad}. The input may not be a brain PET of this tracer, may "
            "be cut off or very far from a standard head position; no result was written"
        )
        if check:
            raise RegistrationError(problem)
    return Registration(
        aligned=aligned,
        template_to_moving=m_ras,
        transform=final,
        correlation=corr,
        metric=metric,
        iterations=[n1, n2],
        stop=[stop1, stop2],
        problem=problem,
    )


def resample_from_template(
    volume_on_template: Volume, reg: Registration, target: Volume, interpolation: str = "nearest"
) -> Volume:
    """Bring a template-space volume (e.g. atlas labels) onto ``target``'s grid through a registration."""
    from ..io import volume_to_sitk

    src = volume_to_sitk(volume_on_template)
    ref = volume_to_sitk(target.with_array(np.zeros(target.array.shape[:3], np.uint8)))
    inv = reg.transform.GetInverse()
    interp = sitk.sitkNearestNeighbor if interpolation == "nearest" else sitk.sitkLinear
    out = sitk.Resample(src, ref, inv, interp, 0.0, src.GetPixelID())
    return from_sitk(out, target, name=volume_on_template.name)


__all__ = [
    "Registration",
    "RegistrationError",
    "RegistrationSettings",
    "masked_correlation",
    "register_to_template",
    "resample_from_template",
]
