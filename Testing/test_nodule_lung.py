"""Nodules and the lung fields: a suggested lung point (engine, CLI, Slicer logic, studio) and the warning a nodule
placed outside the estimated lung fields carries (issue #22: "a radiograph nodule on the shoulder gets no warning").

All on the synthetic chest phantom (CT in HU and the radiograph projected from it)."""

from __future__ import annotations

import itertools
import json
import sys

import numpy as np
import pytest

from conftest import REPO, chest_phantoms, run_cli
from medsynth import InputError, Volume, make_ijk_to_ras
from medsynth.nodule import NoduleSession, NoduleSpec, insert_ct, insert_cxr
from medsynth.nodule.candidates import LUNG_MARGIN_MM, check_lung_point, lung_places, suggest_lung_point

OUTSIDE = "the nodule centre lies outside the lung fields"


class SphereShapeModel:
    """A sphere's distance field standing in for the shape model (where the lung is does not depend on shape)."""

    unit_voxels = 16.0
    sdf_clip = 8.0

    def __init__(self):
        import types

        self.entry = types.SimpleNamespace(id="sphere-stand-in", version="0")
        g = np.arange(32) - 15.5
        r = np.sqrt(g[:, None, None] ** 2 + g[None, :, None] ** 2 + g[None, None, :] ** 2)
        self._field = np.clip((r - self.unit_voxels / 2.0) / self.sdf_clip, -1.0, 1.0).astype(np.float32)

    def field(self, seed, sphericity=0.0, lobulation=0.0, spiculation=0.0):
        return self._field


@pytest.fixture(scope="module")
def phantoms():
    """(CT, radiograph): the default chest phantom (2 mm in plane) and its projection (0.8 mm pixels)."""
    return chest_phantoms((48, 96, 112), (2.5, 2.0, 2.0))


@pytest.fixture(scope="module")
def model():
    return SphereShapeModel()


def shoulder(cxr: Volume) -> np.ndarray:
    """Top outer corner of the radiograph, above and beside the lung fields (rows run head to feet)."""
    nj, ni = cxr.array.shape[1:]
    return cxr.ijk_to_ras_points([0.1 * ni, 0.05 * nj, 0])[0]


def mediastinum(ct: Volume) -> np.ndarray:
    """Soft tissue between the phantom's lungs (heart), at mid height."""
    nk, nj, ni = ct.array.shape
    return ct.ijk_to_ras_points([0.5 * ni, 0.4 * nj, nk / 2])[0]


def hu_at(ct: Volume, ras) -> float:
    i, j, k = np.round(ct.ras_to_ijk_points(ras)[0]).astype(int)
    return float(ct.array[k, j, i])


# --------------------------------------------------------------------------- engine
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_suggested_point_is_inside_the_lungs(phantoms, seed):
    ct, cxr = phantoms
    p = suggest_lung_point(ct, 12.0, seed=seed)
    assert hu_at(ct, p) < -600  # aerated lung of the phantom
    got = check_lung_point(ct, p)
    assert got.inside is True and got.distance_mm == 0.0 and got.warning is None
    q = suggest_lung_point(cxr, 12.0, seed=seed)
    got = check_lung_point(cxr, q)
    assert got.inside is True and got.warning is None
    # the radiograph's point lies over a lung of the CT it was projected from (rows run head to feet)
    i, j = cxr.ras_to_ijk_points(q)[0][:2]
    nk, _, ni = ct.array.shape
    k_ct = int(round((nk - 1) * (1 - j / (cxr.array.shape[1] - 1))))
    i_ct = int(round(i * (ni - 1) / (cxr.array.shape[2] - 1)))
    assert (ct.array[k_ct, :, i_ct] < -600).sum() >= 5  # at least 10 mm of lung along the beam


def test_first_suggestion_is_stable_and_others_differ(phantoms):
    ct, cxr = phantoms
    for vol in (ct, cxr):
        places = lung_places(vol)
        a = suggest_lung_point(vol, 10.0, places=places)
        np.testing.assert_array_equal(a, suggest_lung_point(vol, 10.0))  # seed 0: the same point every time
        others = {tuple(np.round(suggest_lung_point(vol, 10.0, seed=s, places=places), 1)) for s in (1, 2, 3)}
        assert len(others) == 3


def test_points_outside_the_lungs_say_where(phantoms):
    ct, cxr = phantoms
    got = check_lung_point(cxr, shoulder(cxr))
    assert got.inside is False and got.distance_mm > LUNG_MARGIN_MM["cxr"]
    assert "on the shoulder?" in got.reason and f"{got.distance_mm:.0f} mm from the estimated lung fields" in got.reason
    assert got.warning.startswith(OUTSIDE + ": ")
    nk, nj, ni = cxr.array.shape
    low = check_lung_point(cxr, cxr.ijk_to_ras_points([0.3 * ni, 0.98 * nj, 0])[0])
    assert low.inside is False and "below the diaphragm?" in low.reason
    got = check_lung_point(ct, mediastinum(ct))
    assert got.inside is False and got.distance_mm > LUNG_MARGIN_MM["ct"]
    assert "mm from the estimated lung mask" in got.reason and "mediastinum" in got.reason


def test_no_lung_means_nothing_to_say_and_no_suggestion():
    water = Volume(np.zeros((20, 30, 30), np.int16), make_ijk_to_ras((2.0, 2.0, 2.0)), name="water")
    got = check_lung_point(water, water.center_ras())
    assert got.inside is None and got.warning is None and "no lung found" in got.reason
    with pytest.raises(InputError, match="no lung found in 'water'"):
        suggest_lung_point(water, 10.0)


def test_insertion_warns_outside_the_lung_fields_and_not_inside(phantoms, model):
    ct, cxr = phantoms
    spec = NoduleSpec(diameter_mm=10.0)
    _, _, info = insert_cxr(cxr, shoulder(cxr), spec, model=model)
    warning = [w for w in info["warnings"] if w.startswith(OUTSIDE)]
    assert len(warning) == 1 and "on the shoulder?" in warning[0] and "mm from the estimated lung fields" in warning[0]
    assert info["lung_fields"]["inside"] is False
    _, _, info = insert_cxr(cxr, suggest_lung_point(cxr, 10.0), spec, model=model)
    assert not [w for w in info["warnings"] if OUTSIDE in w] and info["lung_fields"]["inside"] is True
    _, _, info = insert_ct(ct, mediastinum(ct), spec, model=model)
    assert any(w.startswith(OUTSIDE) and "mm from the estimated lung mask" in w for w in info["warnings"])
    _, _, info = insert_ct(ct, suggest_lung_point(ct, 10.0), spec, model=model)
    assert not [w for w in info["warnings"] if OUTSIDE in w] and info["lung_fields"]["inside"] is True
    # callers that place at lung points by construction (batch, benchmark) skip the check
    _, _, info = insert_cxr(cxr, shoulder(cxr), spec, model=model, lung_check=False)
    assert "lung_fields" not in info and not [w for w in info["warnings"] if OUTSIDE in w]


def test_live_session_warns_when_the_point_leaves_the_lung(phantoms, model):
    _, cxr = phantoms
    session = NoduleSession(cxr, model=model)
    spec = NoduleSpec(diameter_mm=8.0)
    inside = session.update(spec, suggest_lung_point(cxr, 8.0, places=session.context.lung_places)).info
    assert not [w for w in inside["warnings"] if OUTSIDE in w]
    out = session.update(spec, shoulder(cxr)).info
    assert any(w.startswith(OUTSIDE) for w in out["warnings"])
    assert session.context.lung_places is session.context.lung_places  # found once


# --------------------------------------------------------------------------- command line
@pytest.fixture(scope="module")
def files(phantoms, tmp_path_factory):
    from medsynth.io import write_volume

    d = tmp_path_factory.mktemp("lung_hosts")
    ct, cxr = phantoms
    write_volume(ct, d / "ct.nrrd")
    write_volume(cxr, d / "cxr.nrrd")  # keeps its 0.8 mm pixel spacing
    return d


def test_cli_shoulder_warns_on_stderr_and_still_writes(files, tmp_path, phantoms):
    _, cxr = phantoms
    nj, ni = cxr.array.shape[1:]
    out = tmp_path / "n.nrrd"
    rc, stdout, err = run_cli(["nodule", str(files / "cxr.nrrd"), str(out), "--ijk", str(0.1 * ni), str(0.05 * nj),
                               "--json", str(tmp_path / "n.json")])
    assert rc == 0, err
    lines = [ln for ln in err.splitlines() if OUTSIDE in ln]
    assert len(lines) == 1 and lines[0].startswith("warning: " + OUTSIDE) and "on the shoulder?" in lines[0]
    assert out.is_file() and "wrote" in stdout
    facts = json.loads((tmp_path / "n.json").read_text())
    assert facts["lung_fields"]["inside"] is False and facts["lung_fields"]["distance_mm"] > 12


@pytest.mark.parametrize("name", ["ct.nrrd", "cxr.nrrd"])
def test_cli_suggest_places_in_the_lung_and_prints_the_point(files, tmp_path, name, phantoms):
    out = tmp_path / f"n_{name}"
    rc, stdout, err = run_cli(["nodule", str(files / name), str(out), "--suggest", "--diameter", "12",
                               "--json", str(tmp_path / "n.json")])
    assert rc == 0, err
    assert OUTSIDE not in err
    line = next(ln for ln in stdout.splitlines() if ln.startswith("suggested lung point (seed 0): RAS "))
    ras = [float(v) for v in line.split("RAS ")[1].split()]
    facts = json.loads((tmp_path / "n.json").read_text())
    assert facts["lung_fields"]["inside"] is True
    assert ras == pytest.approx(facts["ras"], abs=0.06)
    vol = phantoms[0] if name == "ct.nrrd" else phantoms[1]
    assert ras == pytest.approx(suggest_lung_point(vol, 12.0), abs=0.06)  # the engine's suggestion, as every face
    rc, stdout2, err = run_cli(["nodule", str(files / name), str(tmp_path / f"m_{name}"), "--suggest", "4"])
    assert rc == 0, err
    assert "suggested lung point (seed 4)" in stdout2


# --------------------------------------------------------------------------- Slicer logic (slicer-core MRML)
@pytest.fixture
def scene():
    slicer = pytest.importorskip("slicer", reason="the slicer-core wheel (real MRML) is needed")
    return slicer.vtkMRMLScene()


@pytest.fixture
def logic_class(scene):
    sys.path.insert(0, str(REPO / "NoduleSynth"))
    from NoduleSynthLib import NoduleSynthLogic

    return NoduleSynthLogic


@pytest.mark.parametrize("kind", ["ct", "cxr"])
def test_logic_suggests_moves_the_point_and_reports_the_warning(scene, logic_class, phantoms, model, kind):
    from medsynth_mrml import node_from_volume, points_from_markups

    vol = phantoms[0] if kind == "ct" else phantoms[1]
    node = node_from_volume(scene, vol)
    points = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "NoduleCentre")
    logic = logic_class(scene)
    ras = logic.suggestLungPoint(node, 10.0, point_list=points)
    assert points.GetNumberOfControlPoints() == 1
    np.testing.assert_allclose(points_from_markups(points)[-1], ras, atol=1e-4)
    assert check_lung_point(vol, ras).inside is True
    logic.start(node, model=model)
    info = logic.update({"diameter_mm": 10.0}, points_from_markups(points)[-1])  # what the panel's status shows
    assert not [w for w in info["warnings"] if OUTSIDE in w]
    again = logic.suggestLungPoint(node, 10.0, seed=1, point_list=points)  # reuses the session's lung
    assert points.GetNumberOfControlPoints() == 1 and tuple(again) != tuple(ras)
    np.testing.assert_allclose(points_from_markups(points)[-1], again, atol=1e-4)
    away = shoulder(vol) if kind == "cxr" else mediastinum(vol)
    info = logic.update({"diameter_mm": 10.0}, away)
    assert any(w.startswith(OUTSIDE) for w in info["warnings"])
    with pytest.raises(InputError, match="no input volume"):
        logic.suggestLungPoint(None)


def test_slicer_panel_has_the_suggest_button_calling_the_logic():
    source = (REPO / "NoduleSynth" / "NoduleSynth.py").read_text()
    ui = (REPO / "NoduleSynth" / "Resources" / "UI" / "NoduleSynth.ui").read_text()
    assert 'name="suggestButton"' in ui and "Suggest a lung point" in ui
    assert "self.ui.suggestButton" in source and "self.logic.suggestLungPoint(" in source
    assert "candidates" not in source  # no engine call of its own


# --------------------------------------------------------------------------- studio (its nodule panel)
_servers = itertools.count()


@pytest.fixture
def studio(monkeypatch):
    """A studio context on a plain MRML scene (no views) with the Nodule panel; the sphere shape model."""
    pytest.importorskip("trame_slicer", reason="needs trame-slicer")
    import types

    import slicer
    from trame.app import get_server

    import medsynth.nodule.shape as shape
    from medsynth_studio.context import StudioContext
    from medsynth_studio.nodule import NoduleSynthPanel

    monkeypatch.setattr(shape, "default_shape_model", SphereShapeModel)

    class NoViews:
        def get_slice_views(self):
            return []

        def get_threed_views(self):
            return []

    server = get_server(f"nodule_lung_test_{next(_servers)}", client_type="vue3")
    context = StudioContext(types.SimpleNamespace(scene=slicer.vtkMRMLScene(), view_manager=NoViews()), server)
    panel = NoduleSynthPanel(context)
    context.add_panel(panel)
    context.state.ready()
    assert panel.run_action("phantom") is None, context.state["nodule_error"]
    return context, panel


def test_studio_suggest_goes_through_the_logic_and_warns_outside(studio, monkeypatch):
    context, panel = studio
    calls = []
    real = type(panel.logic).suggestLungPoint

    def spy(self, *args, **kwargs):
        calls.append((args, kwargs))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(type(panel.logic), "suggestLungPoint", spy)
    assert panel.run_action("suggest") is None, context.state["nodule_error"]
    assert len(calls) == 1 and calls[0][0][0] is panel.node("volume")
    ras = [context.state[f"nodule_{n}"] for n in "ras"]
    phantom = panel.logic.session.volume
    assert check_lung_point(phantom, ras).inside is True
    assert "updated in" in context.state["nodule_status"] and "Warning" not in context.state["nodule_status"]
    assert panel.run_action("suggest") is None and len(calls) == 2  # again: another point
    assert [context.state[f"nodule_{n}"] for n in "ras"] != ras
    away = mediastinum(phantom)
    panel.set_values(r=float(away[0]), a=float(away[1]), s=float(away[2]))
    assert "Warning: " in context.state["nodule_status"] and OUTSIDE in context.state["nodule_status"]
    source = (REPO / "MedSynthExtension" / "medsynth_studio" / "nodule.py").read_text()
    assert "candidates" not in source  # the face holds no engine call of its own
