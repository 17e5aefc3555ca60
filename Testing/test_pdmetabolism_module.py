"""PDMetabolism module logic (PDMetabolismLib) against real MRML (slicer-core wheel)."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from conftest import REPO

slicer = pytest.importorskip("slicer", reason="the slicer-core wheel (real MRML) is needed")
sys.path.insert(0, str(REPO / "PDMetabolism"))

from medsynth import CancelToken, Cancelled, InputError, Volume, make_ijk_to_ras  # noqa: E402
from medsynth_mrml import node_from_volume, volume_from_node  # noqa: E402
from PDMetabolismLib import NODE_REFERENCES, PARAMS, PDMetabolismLogic  # noqa: E402

pytestmark = pytest.mark.skipif(
    "metaad-cycle" not in __import__("medsynth.runtime", fromlist=["x"]).list_models(),
    reason="the metaad-cycle model is not in Resources/Models",
)


@pytest.fixture(scope="module")
def fdg_volumes():
    from medsynth.pet.simulate import example_subject

    return {group: example_subject(group).fdg for group in ("NC", "PD")}  # PD: an advanced subject


@pytest.fixture
def scene():
    return slicer.vtkMRMLScene()


def test_params_and_references():
    assert {p.name for p in PARAMS} == {"space", "threshold", "opacity"}
    assert NODE_REFERENCES == {"fdgVolume": "vtkMRMLScalarVolumeNode"}


def test_detect_maps_table_display_and_jump(scene, fdg_volumes):
    logic = PDMetabolismLogic(scene)
    slice_node = scene.AddNewNodeByClass("vtkMRMLSliceNode", "Red")
    slice_node.SetLayoutName("Red")
    scores = {}
    for group in ("NC", "PD"):
        fdg = node_from_volume(scene, fdg_volumes[group].with_array(fdg_volumes[group].array, name=f"FDG_{group}"))
        before = slicer.util.arrayFromVolume(fdg).copy()
        mp, signed, table = logic.detectAnomalies(fdg, threshold=4.0)
        assert mp.GetName() == f"FDG_{group}_anomaly" and signed.GetName() == f"FDG_{group}_anomaly_signed"
        a, s = volume_from_node(mp), volume_from_node(signed)
        assert a.array.shape == before.shape and np.allclose(a.array, np.abs(s.array), atol=1e-5)
        d = mp.GetDisplayNode()
        assert d.GetApplyThreshold() and d.GetLowerThreshold() == pytest.approx(4.0)
        assert d.GetWindowLevelMin() == pytest.approx(0.0) and d.GetWindowLevelMax() >= 8.0
        sd = signed.GetDisplayNode()
        assert sd.GetWindowLevelMin() == pytest.approx(-sd.GetWindowLevelMax())
        logic.setMapThreshold(mp, 7.5)
        assert d.GetLowerThreshold() == pytest.approx(7.5)
        assert table.GetNumberOfRows() == 21
        cols = [table.GetColumnName(c) for c in range(table.GetNumberOfColumns())]
        assert cols[:3] == ["region", "z", "residual_percent"] and cols[-3:] == ["R", "A", "S"]
        z = [abs(float(table.GetCellText(r, 1))) for r in range(table.GetNumberOfRows())]
        assert z == sorted(z, reverse=True)
        ras = logic.jumpToRegion(table, 0)
        assert np.allclose([slice_node.GetSliceToRAS().GetElement(i, 3) for i in range(3)], ras, atol=1.0)
        scores[group] = json.loads(mp.GetAttribute("MedSynth.PDMetabolism.score"))["value"]
        assert "simulated" in mp.GetAttribute("MedSynth.Note")
        legends = [mp.GetNthDisplayNode(i) for i in range(mp.GetNumberOfDisplayNodes())]
        assert any(n is not None and n.IsA("vtkMRMLColorLegendDisplayNode") for n in legends)
        np.testing.assert_array_equal(slicer.util.arrayFromVolume(fdg), before)
    assert scores["PD"] > scores["NC"]


def test_bad_input_adds_nothing(scene):
    flat = node_from_volume(scene, Volume(np.zeros((1, 64, 64), np.float32), make_ijk_to_ras((2, 2, 2)), name="flat"))
    count = scene.GetNumberOfNodes()
    with pytest.raises(InputError):
        PDMetabolismLogic(scene).detectAnomalies(flat)
    assert scene.GetNumberOfNodes() == count


def test_cancel_adds_nothing(scene, fdg_volumes):
    fdg = node_from_volume(scene, fdg_volumes["NC"])
    token = CancelToken()
    token.cancel()
    count = scene.GetNumberOfNodes()
    with pytest.raises(Cancelled):
        PDMetabolismLogic(scene).detectAnomalies(fdg, cancel=token)
    assert scene.GetNumberOfNodes() == count
