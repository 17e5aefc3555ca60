"""User-facing parameters of slice super-resolution (CLI, Slicer panel and web panel derive from these)."""

from __future__ import annotations

from ..params import Param

AXES = ("auto", "i", "j", "k")
METHODS = ("sainr", "bspline", "linear")

SUPERRES_PARAMS = (
    Param(
        "spacing",
        float,
        1.0,
        "Target spacing",
        minimum=0.3,
        maximum=10.0,
        step=0.05,
        unit="mm",
        help="slice spacing wanted along the axis (rounded so the span divides evenly; the exact value is reported)",
        live=True,
    ),
    Param(
        "axis",
        str,
        "auto",
        "Axis",
        choices=AXES,
        help="voxel axis whose spacing is reduced; auto = the axis with the largest spacing",
        live=True,
    ),
    Param(
        "method",
        str,
        "sainr",
        "Method",
        choices=METHODS,
        help="sainr = learned spatial-attention implicit representation; bspline / linear = SimpleITK baselines",
        live=True,
    ),
    Param(
        "adapt_steps",
        int,
        0,
        "Adapt to this volume",
        minimum=0,
        maximum=2000,
        step=50,
        unit="steps",
        help="SA-INR only: first fine-tune the network on this volume's own in-plane detail for this many steps "
        "(0 = off; 200 steps took 35-45 s for a 181 x 217 x 46-91 volume on two CPU cores; needs torch and MONAI); whole-volume runs "
        "only, live previews use the shipped network",
    ),
    Param(
        "gate",
        float,
        0.0,
        "Flat-region gate",
        minimum=0.0,
        maximum=0.2,
        step=0.005,
        help="SA-INR only: pixels whose input neighbourhood varies by at most this much (intensity / the volume's "
        "99.5th percentile) take the cubic estimate alone, the rest goes through the network (the paper's "
        "gradient-guided gate; 0 = off; what it saves and costs: benchmarks/bench_superres_gate.py)",
        live=True,
    ),
)

__all__ = ["AXES", "METHODS", "SUPERRES_PARAMS"]
