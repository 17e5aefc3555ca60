"""NoduleSynth module logic (NoduleSynthLib) against real MRML (slicer-core wheel)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from conftest import REPO

slicer = pytest.importorskip("slicer", reason="the slicer-core wheel (real MRML) is needed")
sys.path.insert(0, str(REPO / "NoduleSynth"))

from medsynth import InputError, Volume, make_ijk_to_ras, runtime  # noqa: E402
from medsynth_mrml import labels_from_segmentation, node_from_volume, volume_from_node  # noqa: E402
from NoduleSynthLib import NoduleSynthLogic  # noqa: E402

pytestmark = pytest.mark.skipif(
    "nodule-shape-vae" not in runtime.list_models(), reason="the nodule shape model is not in Resources/Models"
)


@pytest.fixture
def scene():
    return slicer.vtkMRMLScene()


@pytest.fixture
def ct_node(scene):
    rng = np.random.default_rng(0)
    arr = (-850 + 20 * rng.standard_normal((40, 48, 48))).astype(np.int16)  # lung-like parenchyma
    vol = Volume(arr, make_ijk_to_ras((0.8, 0.8, 1.25), (-20, -20, -25)), name="chest", modality="CT")
    return node_from_volume(scene, vol)


def test_live_edit_add_undo(scene, ct_node):
    before = slicer.util.arrayFromVolume(ct_node).copy()
    logic = NoduleSynthLogic(scene)
    out = logic.start(ct_node)
    logic.update({"diameter_mm": 8.0}, ras=(0, 0, 0))
    first = volume_from_node(out).array.copy()
    changed = first != before
    # a solid nodule is much denser than lung; its partial-volume rim pulls the mean of all changed voxels down
    assert changed.any() and first[changed].max() > -100 and first[changed].mean() > -450
    logic.update({"diameter_mm": 14.0})  # a slider move: the same place, larger
    bigger = volume_from_node(out).array
    assert (bigger != before).sum() > changed.sum()
    info = logic.add()
    assert info is not None and logic.segmentation_node is not None
    seg = logic.segmentation_node.GetSegmentation()
    assert seg.GetNumberOfSegments() == 1 and seg.GetNthSegment(0).GetName() == "Nodule 1"
    labels = labels_from_segmentation(logic.segmentation_node, out)
    assert labels.array.sum() > 0
    # a second nodule, then undo it
    logic.update({"diameter_mm": 6.0, "texture": "ggo"}, ras=(8, 8, 5))
    logic.add()
    assert logic.segmentation_node.GetSegmentation().GetNumberOfSegments() == 2
    logic.undo()
    assert logic.segmentation_node.GetSegmentation().GetNumberOfSegments() == 1
    np.testing.assert_array_equal(volume_from_node(out).array, bigger)
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(ct_node), before)  # input untouched


def test_process_one_call_and_errors(scene, ct_node):
    logic = NoduleSynthLogic(scene)
    out, seg = logic.process(ct_node, ras=(0, 0, 0), diameter_mm=10.0, texture="solid")
    assert out.GetName().startswith("chest") and seg is not None
    with pytest.raises(InputError):
        logic.process(ct_node, ras=(500, 0, 0), diameter_mm=10.0)  # outside the image
    with pytest.raises(InputError):
        logic.process(ct_node, ras=(0, 0, 0), diameter_mm=50.0)  # out of range
    with pytest.raises(InputError, match="start"):
        NoduleSynthLogic(scene).update({"diameter_mm": 5.0}, ras=(0, 0, 0))


def test_make_teaching_sheet_from_a_node(scene, ct_node, tmp_path):
    """The panel's "Make teaching sheet": the same sheet code as 'medsynth sheet nodule', on the node's image."""
    before = slicer.util.arrayFromVolume(ct_node).copy()
    logic = NoduleSynthLogic(scene)
    n_nodes = scene.GetNumberOfNodes()
    out = tmp_path / "sheet.png"
    facts = logic.makeTeachingSheet(ct_node, str(out), ["diameter=6,10", "texture=solid,ggo"],
                                    {"diameter_mm": 12.0, "spiculation": 0.5}, ras=(0, 0, 0))
    assert out.is_file() and out.read_bytes()[:4] == b"\x89PNG"
    assert len(facts["tiles"]) == 4 and facts["kind"] == "ct" and facts["ras"] == [0.0, 0.0, 0.0]
    assert {t["diameter_mm"] for t in facts["tiles"]} == {6.0, 10.0}
    assert np.array_equal(slicer.util.arrayFromVolume(ct_node), before)
    assert scene.GetNumberOfNodes() == n_nodes  # a sheet adds nothing to the scene
    with pytest.raises(InputError, match="png or .pdf|\\.png"):
        logic.makeTeachingSheet(ct_node, str(tmp_path / "s.jpg"), ["diameter_mm=6,10"], ras=(0, 0, 0))
    with pytest.raises(InputError, match="unknown parameter"):
        logic.makeTeachingSheet(ct_node, str(tmp_path / "s.png"), ["size=6,10"], ras=(0, 0, 0))
    with pytest.raises(InputError, match="choose a chest CT"):
        logic.makeTeachingSheet(None, str(tmp_path / "s.png"), ["diameter_mm=6,10"])
    assert not (tmp_path / "s.png").exists() and not (tmp_path / "s.jpg").exists()
