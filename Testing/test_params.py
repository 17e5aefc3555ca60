import argparse

import pytest

from medsynth import InputError
from medsynth.params import Param, add_arguments, from_namespace, validate

PARAMS = (
    Param("diameter", float, 10.0, "Diameter", 3.0, 30.0, 0.5, unit="mm", live=True),
    Param("texture", str, "solid", "Texture", choices=("solid", "ggo")),
    Param("count", int, 1, "Count", 1, 100),
    Param("mask", bool, True, "Write mask"),
)


def test_validate_fills_defaults_and_checks_ranges():
    assert validate(PARAMS, {"diameter": "12"}) == {"diameter": 12.0, "texture": "solid", "count": 1, "mask": True}
    with pytest.raises(InputError, match="diameter: 40.0 is above the maximum 30.0 mm"):
        validate(PARAMS, {"diameter": 40})
    with pytest.raises(InputError, match="texture: 'glass' is not one of solid, ggo"):
        validate(PARAMS, {"texture": "glass"})
    with pytest.raises(InputError, match="unknown parameter"):
        validate(PARAMS, {"colour": 1})
    with pytest.raises(InputError, match="count: 'many' is not a valid int"):
        validate(PARAMS, {"count": "many"})


def test_command_line_options_come_from_the_declarations():
    parser = argparse.ArgumentParser()
    add_arguments(parser, PARAMS)
    ns = parser.parse_args(["--diameter", "7.5", "--no-mask"])
    assert from_namespace(PARAMS, ns) == {"diameter": 7.5, "texture": "solid", "count": 1, "mask": False}
    assert "[3..30 mm]" in parser.format_help()
    with pytest.raises(SystemExit):
        parser.parse_args(["--texture", "glass"])


def test_nodule_spec_fields_are_the_declared_parameters():
    """NoduleSpec holds one field per declared nodule parameter, with the declared default (no second copy)."""
    from dataclasses import fields

    from medsynth.nodule.params import NODULE_PARAMS, NoduleSpec

    spec = NoduleSpec()
    assert [f.name for f in fields(NoduleSpec)] == [p.name for p in NODULE_PARAMS]
    assert spec.to_dict() == {p.name: p.default for p in NODULE_PARAMS}
