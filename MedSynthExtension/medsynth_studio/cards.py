"""Model cards in the studio: which models each panel runs, and each card's text, read safely.

Every module panel links to the cards of the models it runs (``Resources/Models/*.md``; the manifest
maps a model id to its card file, :attr:`medsynth.runtime.ModelEntry.card`).  A link says "trained on
simulated data" when the manifest's training-data fields say so.  The card is read here, on the
server, and shown as plain text inside the page (a dialog): no file is served over HTTP and no
route is added, and the page renders the text as text (no HTML from a card reaches the page).

A card file must be a ``.md`` file inside its manifest's folder (no absolute path, no ``..``, no link
leading out of the folder) and at most :data:`MAX_CARD_BYTES`; anything else is refused with an error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from medsynth.errors import InputError

#: The models each panel runs (panel id -> model ids).  A panel class may declare ``models`` instead.
PANEL_MODELS: Dict[str, Tuple[str, ...]] = {
    "superres": ("sainr",),
    "nodule": ("nodule-shape-vae",),
    "cyto": ("cellgan",),
    "crossmod": ("fdg2cft", "pd-classifier", "mr2ct"),
    "pdmeta": ("metaad-cycle",),
}
MAX_CARD_BYTES = 512 * 1024
#: Words of a manifest's training-data fields (``data_terms``, ``data``) that mark simulated training data.
_SIMULATED = re.compile(r"\b(simulated|synthetic)\b", re.IGNORECASE)


@dataclass(frozen=True)
class CardLink:
    model_id: str
    version: str
    card: str  #: the card's file name ('' when the manifest names none)
    simulated: bool  #: trained on simulated data
    installed: bool

    @property
    def label(self) -> str:
        if not self.installed:
            return f"Model card: {self.model_id} (model not installed)"
        return f"Model card: {self.model_id} {self.version}" + (" - trained on simulated data" if self.simulated else "")


def trained_on_simulated(entry) -> bool:
    """Whether a manifest entry says its model was trained on simulated (or synthetic) data."""
    text = " ".join(str(x) for x in (entry.data_terms, entry.extra.get("data", "")) if x)
    return bool(_SIMULATED.search(text))


def panel_models(panel) -> Tuple[str, ...]:
    """The model ids a panel (object, class or id) runs."""
    declared = getattr(panel, "models", None)
    if declared:
        return tuple(declared)
    panel_id = panel if isinstance(panel, str) else getattr(panel, "id", "")
    return PANEL_MODELS.get(panel_id, ())


def _entries() -> Dict[str, object]:
    from medsynth.runtime import list_models

    try:
        return dict(list_models())
    except Exception:  # noqa: BLE001 - a broken manifest: the links say "not installed"
        return {}


def panel_cards(panel) -> List[CardLink]:
    """The card links of a panel, in its models' order."""
    entries = _entries()
    links = []
    for model_id in panel_models(panel):
        entry = entries.get(model_id)
        if entry is None:
            links.append(CardLink(model_id, "", "", False, False))
        else:
            links.append(CardLink(model_id, entry.version, entry.card, trained_on_simulated(entry), True))
    return links


def card_path(entry) -> Path:
    """The card file of a manifest entry, checked to be a ``.md`` file inside the manifest's folder."""
    name = str(entry.card or "")
    if not name:
        raise InputError(f"model '{entry.id}' has no model card in its manifest")
    rel = Path(name)
    if rel.is_absolute() or ".." in rel.parts or "\\" in name or rel.suffix.lower() != ".md":
        raise InputError(f"model '{entry.id}': card '{rel.name}' refused (a .md file inside the model folder only)")
    folder = Path(entry.folder).resolve()
    path = (folder / rel).resolve()
    if folder not in path.parents:
        raise InputError(f"model '{entry.id}': card '{rel.name}' refused (it leads out of the model folder)")
    if not path.is_file():
        raise InputError(f"model '{entry.id}': card '{rel.name}' not found")
    if path.stat().st_size > MAX_CARD_BYTES:
        raise InputError(f"model '{entry.id}': card '{rel.name}' is larger than {MAX_CARD_BYTES // 1024} kB")
    return path


def card_text(model_id: str, allowed: Optional[Sequence[str]] = None) -> Dict[str, object]:
    """``{"id", "title", "text", "simulated"}`` of a model's card (plain text, shown as text).

    ``allowed``: the model ids the caller may ask for (the page can ask only for the cards it links to).
    """
    model_id = str(model_id)
    if allowed is not None and model_id not in allowed:
        raise InputError(f"no model card '{model_id}' here")
    entry = _entries().get(model_id)
    if entry is None:
        raise InputError(f"model '{model_id}' is not installed: no model card to show")
    path = card_path(entry)
    text = path.read_text(encoding="utf-8", errors="replace")
    first = next((line.strip() for line in text.splitlines() if line.strip()), model_id)
    return {"id": model_id, "title": first.lstrip("#").strip() or model_id, "text": text,
            "simulated": trained_on_simulated(entry), "file": path.name}


def all_panel_models(panels: Sequence) -> Tuple[str, ...]:
    seen: List[str] = []
    for panel in panels:
        for model_id in panel_models(panel):
            if model_id not in seen:
                seen.append(model_id)
    return tuple(seen)
