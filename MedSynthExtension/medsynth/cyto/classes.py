"""Cell classes: the seven Herlev classes and their Bethesda categories, with either naming.

Herlev (2005) classes, as the data folders name them, and the category each maps to:

=====================  =====================  ==========
Herlev class           folder                 Bethesda
=====================  =====================  ==========
normal_superficial     normal_superficiel     NILM
normal_intermediate    normal_intermediate    NILM
normal_columnar        normal_columnar        NILM
light_dysplastic       light_dysplastic       LSIL
moderate_dysplastic    moderate_dysplastic    HSIL
severe_dysplastic      severe_dysplastic      HSIL
carcinoma_in_situ      carcinoma_in_situ      carcinoma
=====================  =====================  ==========

Strict Bethesda reporting puts carcinoma in situ under HSIL; the project keeps it as a fourth category
("carcinoma") as its issue asks, so that the most severe class stays separate.

A *class* is named in either naming (case, spaces and hyphens do not matter; the Herlev folder spelling
"normal_superficiel" is accepted). The generator is conditioned on the seven Herlev classes; a Bethesda
category is generated from its Herlev classes in proportion to their training counts. The *naming*
(``herlev`` or ``bethesda``) says how labels are written (CSV, gallery rows, markups labels).
"""

from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import numpy as np

from ..errors import InputError

HERLEV_CLASSES: Tuple[str, ...] = (
    "normal_superficial",
    "normal_intermediate",
    "normal_columnar",
    "light_dysplastic",
    "moderate_dysplastic",
    "severe_dysplastic",
    "carcinoma_in_situ",
)
#: folder name in the Herlev data (the original French spelling of "superficial" is kept there)
HERLEV_FOLDERS: Dict[str, str] = {c: c for c in HERLEV_CLASSES}
HERLEV_FOLDERS["normal_superficial"] = "normal_superficiel"

BETHESDA_CLASSES: Tuple[str, ...] = ("NILM", "LSIL", "HSIL", "carcinoma")
HERLEV_TO_BETHESDA: Dict[str, str] = {
    "normal_superficial": "NILM",
    "normal_intermediate": "NILM",
    "normal_columnar": "NILM",
    "light_dysplastic": "LSIL",
    "moderate_dysplastic": "HSIL",
    "severe_dysplastic": "HSIL",
    "carcinoma_in_situ": "carcinoma",
}
NAMINGS: Tuple[str, ...] = ("herlev", "bethesda")
ALL_CLASSES: Tuple[str, ...] = HERLEV_CLASSES + BETHESDA_CLASSES

#: Herlev class counts of the 716 cells of the data (used to weight Bethesda categories when no model says)
HERLEV_COUNTS: Dict[str, int] = {
    "normal_superficial": 58,
    "normal_intermediate": 57,
    "normal_columnar": 80,
    "light_dysplastic": 138,
    "moderate_dysplastic": 112,
    "severe_dysplastic": 152,
    "carcinoma_in_situ": 119,
}


def _key(name: str) -> str:
    return str(name).strip().lower().replace("-", "_").replace(" ", "_")


_LOOKUP: Dict[str, str] = {_key(c): c for c in ALL_CLASSES}
_LOOKUP[_key("normal_superficiel")] = "normal_superficial"


def canonical_class(name: str) -> str:
    """The canonical spelling of a Herlev class or Bethesda category; :class:`InputError` when unknown."""
    found = _LOOKUP.get(_key(name))
    if found is None:
        raise InputError(
            f"unknown cell class {name!r}; Herlev classes: {', '.join(HERLEV_CLASSES)}; "
            f"Bethesda categories: {', '.join(BETHESDA_CLASSES)}"
        )
    return found


def check_naming(naming: str) -> str:
    n = str(naming).strip().lower()
    if n not in NAMINGS:
        raise InputError(f"naming must be one of {', '.join(NAMINGS)}, got {naming!r}")
    return n


def classes_of(naming: str) -> Tuple[str, ...]:
    """The class names of a naming, in display order."""
    return HERLEV_CLASSES if check_naming(naming) == "herlev" else BETHESDA_CLASSES


def herlev_members(name: str) -> List[str]:
    """The Herlev classes a class name stands for (itself for a Herlev class)."""
    c = canonical_class(name)
    if c in HERLEV_CLASSES:
        return [c]
    return [h for h in HERLEV_CLASSES if HERLEV_TO_BETHESDA[h] == c]


def label_of(herlev_class: str, naming: str) -> str:
    """How a Herlev class is written in ``naming``."""
    h = canonical_class(herlev_class)
    if h not in HERLEV_CLASSES:
        raise InputError(f"{herlev_class!r} is not a Herlev class")
    return h if check_naming(naming) == "herlev" else HERLEV_TO_BETHESDA[h]


def herlev_index(herlev_class: str) -> int:
    return HERLEV_CLASSES.index(canonical_class(herlev_class))


def to_naming(herlev_indices: Sequence[int], naming: str) -> np.ndarray:
    """Herlev class indices -> class indices of ``naming``."""
    idx = np.asarray(herlev_indices, dtype=np.int64)
    if check_naming(naming) == "herlev":
        return idx
    table = np.array([BETHESDA_CLASSES.index(HERLEV_TO_BETHESDA[h]) for h in HERLEV_CLASSES])
    return table[idx]


def draw_herlev(name: str, count: int, rng: np.random.Generator, weights: Dict[str, float] = None) -> List[str]:
    """``count`` Herlev classes for a class name: itself, or members of a Bethesda category drawn in
    proportion to ``weights`` (default: the Herlev counts)."""
    members = herlev_members(name)
    if len(members) == 1:
        return members * int(count)
    w = np.array([float((weights or HERLEV_COUNTS).get(m, 1.0)) for m in members])
    picks = rng.choice(len(members), size=int(count), p=w / w.sum())
    return [members[int(i)] for i in picks]
