"""Brain PET parameters, declared once: the command line, the CrossModality panel and the studio derive from these."""

from __future__ import annotations

from ..params import Param
from .atlas import REFERENCE_REGIONS

REFERENCES = tuple(REFERENCE_REGIONS)
SPACES = ("auto", "mni", "native")

SBR_PARAMS = (
    Param(
        "reference",
        str,
        "occipital",
        "Reference region",
        choices=REFERENCES,
        help="non-specific reference: occipital cortex or cerebellar grey matter",
    ),
    Param(
        "space",
        str,
        "auto",
        "Input space",
        choices=SPACES,
        help="mni = input already in MNI space; native = register to the CFT template; auto = mni when on the "
        "atlas grid, else register",
    ),
)

SIMULATE_PARAMS = (
    Param("subjects", int, 10, "Subjects", minimum=1, maximum=10000, step=1, help="number of subjects to simulate"),
    Param(
        "pd_fraction",
        float,
        0.5,
        "PD fraction",
        minimum=0.0,
        maximum=1.0,
        step=0.05,
        help="fraction of subjects with Parkinson's disease (rounded to a count)",
    ),
    Param("seed", int, 0, "Seed", minimum=0, maximum=2**31 - 1, step=1, help="random seed (same seed, same cohort)"),
)


__all__ = ["REFERENCES", "SBR_PARAMS", "SIMULATE_PARAMS", "SPACES"]
