"""Slicer parameter nodes derived from :class:`medsynth.params.Param` declarations."""

from __future__ import annotations

from typing import Any, Dict, Iterable, Optional

from medsynth.params import Param


def annotations_for(params: Iterable[Param]) -> Dict[str, Any]:
    """``typing.Annotated`` types for ``slicer.parameterNodeWrapper`` (Slicer >= 5.4)."""
    from typing import Annotated

    from slicer.parameterNodeWrapper import Choice, Default, WithinRange

    ann: Dict[str, Any] = {}
    for p in params:
        marks: list = [Default(p.default)]
        if p.minimum is not None and p.maximum is not None:
            marks.append(WithinRange(p.minimum, p.maximum))
        if p.choices:
            marks.append(Choice(list(p.choices)))
        ann[p.name] = Annotated[(p.kind, *marks)]
    return ann


def parameter_node_class(class_name: str, params: Iterable[Param], nodes: Optional[Dict[str, Any]] = None):
    """Build a ``@parameterNodeWrapper`` class with one field per parameter plus node references.

    ``nodes`` maps field names to MRML node classes or class names (for example
    ``{"inputVolume": "vtkMRMLScalarVolumeNode"}``); they are Optional references.
    """
    from typing import Optional as _Optional

    import slicer
    from slicer.parameterNodeWrapper import parameterNodeWrapper

    ann = {name: _Optional[getattr(slicer, cls) if isinstance(cls, str) else cls] for name, cls in (nodes or {}).items()}
    ann.update(annotations_for(params))
    cls = type(class_name, (), {"__annotations__": ann, "__module__": __name__})
    return parameterNodeWrapper(cls)


def values_of(parameter_node: Any, params: Iterable[Param]) -> Dict[str, Any]:
    """The parameter values of a wrapped parameter node as a plain dict for the logic."""
    return {p.name: getattr(parameter_node, p.name) for p in params}
