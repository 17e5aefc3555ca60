"""NoduleSynth parameters: one declaration for the command line, the Slicer panel and the web studio.

Slider units for sphericity / lobulation / spiculation: offsets from the seed's own shape along steps
fitted to the decoder's response (one unit moves its own shape measure by about 0.3 / 0.1 / 0.1 training
SD and, on the median, leaves the other two alone); 0 is the shape as drawn (see
Resources/Models/nodule-shape-vae.md and docs/nodule.md "Shape slider cross-talk").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Dict, Mapping

from ..errors import InputError
from ..params import Param, validate

TEXTURES = ("solid", "part-solid", "ggo")

NODULE_PARAMS = (
    Param("diameter_mm", float, 10.0, "Diameter", 3.0, 30.0, 0.5, unit="mm", live=True,
          help="equivalent-sphere diameter of the inserted nodule"),
    Param("texture", str, "solid", "Texture", choices=TEXTURES, live=True,
          help="solid, part-solid (solid core in ground glass) or ggo (pure ground-glass)"),
    Param("solid_fraction", float, 0.5, "Solid fraction", 0.0, 1.0, 0.05, live=True,
          help="part-solid only: volume fraction of the solid core"),
    Param("sphericity", float, 0.0, "Sphericity", -3.0, 3.0, 0.1, unit="SD", live=True,
          help="roundness, lobulation and spiculation held (- elongated, + round)"),
    Param("lobulation", float, 0.0, "Lobulation", -3.0, 3.0, 0.1, unit="SD", live=True,
          help="lobulated outline, roundness and spiculation held"),
    Param("spiculation", float, 0.0, "Spiculation", -3.0, 3.0, 0.1, unit="SD", live=True,
          help="spiculated outline, roundness and lobulation held"),
    Param("seed", int, 0, "Shape seed", 0, 999999, 1, live=True,
          help="random shape drawn from the training nodules' latent distribution"),
    Param("solid_hu", float, 30.0, "Solid attenuation", -100.0, 100.0, 5.0, unit="HU", live=True,
          help="mean attenuation of solid tissue"),
    Param("ggo_hu", float, -550.0, "Ground-glass attenuation", -750.0, -300.0, 10.0, unit="HU", live=True,
          help="mean attenuation of the ground-glass component"),
)

_BY_NAME = {p.name: p for p in NODULE_PARAMS}


BATCH_PARAMS = (
    Param("count", int, 10, "Images", 1, 10000, 1, help="number of images to write"),
    Param("seed", int, 0, "Seed", 0, 2**31 - 1, 1, help="random seed of the batch (same seed, same batch)"),
)
"""``nodule-batch`` limits: at most 10000 images a run (a run of more is several runs with other seeds)."""


@dataclass(frozen=True)
class NoduleSpec:
    """Everything that defines one nodule (all validated against :data:`NODULE_PARAMS`)."""

    # defaults from the declarations (one place): a field per parameter of NODULE_PARAMS, checked in a test
    diameter_mm: float = _BY_NAME["diameter_mm"].default
    texture: str = _BY_NAME["texture"].default
    solid_fraction: float = _BY_NAME["solid_fraction"].default
    sphericity: float = _BY_NAME["sphericity"].default
    lobulation: float = _BY_NAME["lobulation"].default
    spiculation: float = _BY_NAME["spiculation"].default
    seed: int = _BY_NAME["seed"].default
    solid_hu: float = _BY_NAME["solid_hu"].default
    ggo_hu: float = _BY_NAME["ggo_hu"].default

    def __post_init__(self) -> None:
        for f in fields(self):
            object.__setattr__(self, f.name, _BY_NAME[f.name].check(getattr(self, f.name)))

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> "NoduleSpec":
        """From a parameter mapping (unknown names are an error; missing ones take defaults)."""
        return cls(**validate(NODULE_PARAMS, dict(values)))

    def with_(self, **changes: Any) -> "NoduleSpec":
        return replace(self, **changes)

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @property
    def shape_key(self):
        """What the decoded shape depends on (diameter and texture do not)."""
        return (self.seed, self.sphericity, self.lobulation, self.spiculation)

    @property
    def core_fraction(self) -> float:
        """Volume fraction of solid tissue: 1 for solid, the solid fraction for part-solid, 0 for GGO."""
        if self.texture == "solid":
            return 1.0
        if self.texture == "ggo":
            return 0.0
        return float(self.solid_fraction)


def check_spec(spec: Any) -> NoduleSpec:
    if isinstance(spec, NoduleSpec):
        return spec
    if isinstance(spec, Mapping):
        return NoduleSpec.from_values(spec)
    raise InputError(f"expected a NoduleSpec or a mapping of nodule parameters, got {type(spec).__name__}")
