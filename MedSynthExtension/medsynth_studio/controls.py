"""Web controls generated from a module's :class:`~medsynth.params.Param` declarations.

One declaration gives one Vuetify 3 control bound to the trame state key
``<panel id>_<param name>``:

* ``float`` / ``int`` with a minimum and a maximum: ``VSlider`` (min, max, step; the
  bounds and step are state keys too, ``<key>_min`` / ``_max`` / ``_step``, so a panel can fit them to
  the data, e.g. window/level to the volume's range);
* ``float`` / ``int`` without a range: a number ``VTextField``;
* ``str`` with choices: ``VSelect``;  ``str`` without: ``VTextField``;
* ``bool``: ``VSwitch``.

:func:`control_spec` is plain Python (what to build, testable without trame);
:func:`build_control` creates the trame widget from it.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

from medsynth.params import Param

#: Slider steps when a numeric Param gives none: ints step by 1, floats in 100 steps.
FLOAT_STEPS = 100


def state_key(prefix: str, name: str) -> str:
    """The trame state key of a panel value (a valid JavaScript identifier)."""
    return f"{prefix}_{name}"


def control_spec(param: Param, prefix: str) -> Dict[str, Any]:
    """What control to build for ``param``: ``{"widget", "key", "props"}`` (no trame needed).

    ``props`` are the Vuetify properties; a ``(name, default)`` tuple is a state binding
    as trame writes it.
    """
    key = state_key(prefix, param.name)
    label = param.label + (f" ({param.unit})" if param.unit else "")
    common: Dict[str, Any] = {
        "label": label,
        "hide_details": "auto",
        "density": "compact",
        "classes": f"medsynth-param medsynth-param-{param.name}",
    }
    if param.help:
        common["title"] = param.help
    if param.kind is bool:
        return {
            "widget": "VSwitch",
            "key": key,
            "props": dict(common, v_model=(key, bool(param.default)), color="primary", inset=True),
        }
    if param.kind in (int, float):
        if param.minimum is not None and param.maximum is not None:
            step = param.step if param.step is not None else (1 if param.kind is int else (param.maximum - param.minimum) / FLOAT_STEPS)
            if param.kind is int:
                step = max(1, int(round(step)))
            return {
                "widget": "VSlider",
                "key": key,
                "props": dict(
                    common,
                    v_model=(key, param.default),
                    min=(f"{key}_min", param.minimum),
                    max=(f"{key}_max", param.maximum),
                    step=(f"{key}_step", step),
                    unit=param.unit,
                ),
            }
        return {
            "widget": "VTextField",
            "key": key,
            "props": dict(common, v_model=(key, param.default), type="number", suffix=param.unit or None),
        }
    if param.choices:
        return {
            "widget": "VSelect",
            "key": key,
            "props": dict(common, v_model=(key, param.default), items=(f"{key}_items", list(param.choices))),
        }
    return {"widget": "VTextField", "key": key, "props": dict(common, v_model=(key, param.default))}


def initial_state(params: Sequence[Param], prefix: str) -> Dict[str, Any]:
    """State keys and defaults every control of ``params`` binds to."""
    out: Dict[str, Any] = {}
    for p in params:
        spec = control_spec(p, prefix)
        for value in spec["props"].values():
            if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str):
                out[value[0]] = value[1]
    return out


def build_control(param: Param, prefix: str, disabled: Optional[str] = None):
    """Create the trame Vuetify widget for ``param`` inside the current ``with`` layout block.

    ``disabled``: a JavaScript expression (e.g. the panel's busy flag) that disables it.
    """
    from trame.widgets import html
    from trame.widgets import vuetify3 as v3

    spec = control_spec(param, prefix)
    props = dict(spec["props"])
    if disabled:
        props["disabled"] = (disabled,)
    key = spec["key"]
    if spec["widget"] == "VSlider":
        unit = props.pop("unit")
        label = props.pop("label")
        classes = props.pop("classes")
        with html.Div(classes=classes):
            html.Div(
                f"{label}: {{{{ +Number({key}).toFixed(3) }}}}{(' ' + unit) if unit else ''}",
                classes="text-caption",
                title=props.pop("title", None),
            )
            return v3.VSlider(**props)
    return getattr(v3, spec["widget"])(**props)
