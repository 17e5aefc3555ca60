"""CrossModality module logic (CrossModalityLib, PET part) against real MRML (slicer-core wheel)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from conftest import REPO

slicer = pytest.importorskip("slicer", reason="the slicer-core wheel (real MRML) is needed")
sys.path.insert(0, str(REPO / "CrossModality"))

from medsynth import CancelToken, Cancelled, InputError, Volume, make_ijk_to_ras  # noqa: E402
from medsynth.io import read_volume  # noqa: E402
from medsynth_mrml import labels_from_segmentation, node_from_volume, volume_from_node  # noqa: E402
from CrossModalityLib import NODE_REFERENCES, PARAMS, CrossModalityLogic  # noqa: E402

pytestmark = pytest.mark.skipif(
    "fdg2cft" not in __import__("medsynth.runtime", fromlist=["x"]).list_models(),
    reason="the fdg2cft model is not in Resources/Models",
)


@pytest.fixture(scope="module")
def fdg_volumes():
    """One simulated NC and one PD FDG (MNI 2 mm), seeded."""
    from medsynth.pet.atlas import load_atlas
    from medsynth.pet.simulate import draw_params, simulate_subject, subject_rng

    atlas = load_atlas()
    out = {}
    for i, group in enumerate(("NC", "PD")):
        rng = subject_rng(5, i)
        out[group] = simulate_subject(draw_params(rng, group, f"sub-{group}"), rng, atlas).fdg
    return out


@pytest.fixture
def scene():
    return slicer.vtkMRMLScene()


def _node(scene, volume, name):
    return node_from_volume(scene, volume.with_array(volume.array, name=name))


def test_synthesize_makes_a_new_node_on_the_input_grid(scene, fdg_volumes):
    fdg = _node(scene, fdg_volumes["NC"], "FDG")
    before = slicer.util.arrayFromVolume(fdg).copy()
    messages = []
    out = CrossModalityLogic(scene).synthesize(fdg, progress=lambda f, m: messages.append((f, m)))
    assert out is not fdg and out.GetName() == "FDG_synthetic_CFT"
    res, inp = volume_from_node(out), volume_from_node(fdg)
    assert res.array.shape == inp.array.shape and np.allclose(res.ijk_to_ras, inp.ijk_to_ras)
    assert res.array.dtype == np.float32 and res.array.max() > 2.0  # SUVR: striatum well above occipital
    assert out.GetAttribute("DICOM.Modality") == "PT" and "simulated" in out.GetAttribute("MedSynth.Note")
    assert '"direction": "fdg2cft"' in out.GetAttribute("MedSynth.CrossModality")
    assert messages[-1][0] == 1.0
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(fdg), before)


def test_striatal_binding_table_and_regions_pd_below_nc(scene, fdg_volumes):
    logic = CrossModalityLogic(scene)
    pp = {}
    for group in ("NC", "PD"):
        fdg = _node(scene, fdg_volumes[group], f"FDG_{group}")
        table, seg = logic.striatalBinding(fdg)
        assert table.IsA("vtkMRMLTableNode") and table.GetName() == f"FDG_{group}_synthetic_CFT_SBR"
        cols = [table.GetColumnName(c) for c in range(table.GetNumberOfColumns())]
        assert cols == ["region", "SBR_L", "SBR_R", "SUVR_L", "SUVR_R", "asymmetry_index_percent", "lower_side"]
        assert [table.GetCellText(r, 0) for r in range(table.GetNumberOfRows())] == [
            "caudate", "putamen_anterior", "putamen_posterior", "putamen", "striatum"]
        assert table.GetAttribute("MedSynth.CrossModality.reference") == "occipital"
        names = {seg.GetSegmentation().GetNthSegment(i).GetName()
                 for i in range(seg.GetSegmentation().GetNumberOfSegments())}
        assert names == {"caudate_L", "caudate_R", "putamen_anterior_L", "putamen_anterior_R",
                         "putamen_posterior_L", "putamen_posterior_R", "occipital_L", "occipital_R"}
        labels = labels_from_segmentation(seg, reference_volume_node=fdg)
        assert labels.array.shape == volume_from_node(fdg).array.shape
        assert set(np.unique(labels.array)) >= {1, 2, 3, 4, 5, 6, 18, 19}
        sbr = table.GetTable().GetColumnByName("SBR_L").GetValue(2), table.GetTable().GetColumnByName("SBR_R").GetValue(2)
        pp[group] = min(sbr)
    assert pp["PD"] < pp["NC"], pp


def test_cerebellar_reference_and_compute_finish_split(scene, fdg_volumes):
    logic = CrossModalityLogic(scene)
    fdg = _node(scene, fdg_volumes["NC"], "FDG")
    result = logic.compute_binding(logic.inputVolume(fdg), {"reference": "cerebellum", "space": "mni"})
    n = scene.GetNumberOfNodes()
    table, seg = logic.finish_binding(fdg, result)
    assert scene.GetNumberOfNodes() > n
    assert table.GetAttribute("MedSynth.CrossModality.reference") == "cerebellum"
    names = {seg.GetSegmentation().GetNthSegment(i).GetName() for i in range(seg.GetSegmentation().GetNumberOfSegments())}
    assert {"cerebellum_gm_L", "cerebellum_gm_R"} <= names and "occipital_L" not in names


def test_bad_input_and_cancel_add_nothing(scene, fdg_volumes):
    logic = CrossModalityLogic(scene)
    flat = node_from_volume(scene, Volume(np.zeros((1, 64, 64), np.float32), make_ijk_to_ras((2, 2, 2)), name="flat"))
    mr = node_from_volume(scene, read_volume(REPO / "Resources" / "SampleData" / "mni_t1_2mm.nii.gz"))
    fdg = _node(scene, fdg_volumes["NC"], "FDG")
    n = scene.GetNumberOfNodes()
    with pytest.raises(InputError, match="not a 3D volume"):
        logic.synthesize(flat)
    with pytest.raises(InputError, match="does not look like a FDG PET"):
        logic.striatalBinding(mr, space="mni")
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        logic.synthesize(fdg, cancel=token)
    with pytest.raises(Cancelled):
        logic.striatalBinding(fdg, cancel=token)
    assert scene.GetNumberOfNodes() == n


def test_parameters_and_references_are_the_engine_declarations():
    from medsynth.mrct import MRCT_PARAMS
    from medsynth.pet.sbr import SBR_PARAMS

    assert tuple(PARAMS) == tuple(SBR_PARAMS) + tuple(MRCT_PARAMS)
    assert set(NODE_REFERENCES) == {"fdgVolume", "mrVolume", "ctVolume"}


def test_mr_to_ct_and_mu_map(scene):
    from medsynth import runtime

    if "mr2ct" not in runtime.list_models():
        pytest.skip("the mr2ct model is not in Resources/Models")
    logic = CrossModalityLogic(scene)
    mr = node_from_volume(scene, read_volume(REPO / "Resources" / "SampleData" / "mni_t1_2mm.nii.gz"))
    before = slicer.util.arrayFromVolume(mr).copy()
    ct = logic.synthesizeCT(mr)
    ct_arr = slicer.util.arrayFromVolume(ct)
    assert ct_arr.shape == before.shape and ct.GetAttribute("DICOM.Modality") == "CT"
    assert ct_arr.min() < -500 and 0 < np.median(ct_arr[before > np.percentile(before, 60)]) < 200  # air; brain
    assert ct.GetDisplayNode().GetWindow() == 400
    mu = slicer.util.arrayFromVolume(logic.muMap(ct))
    assert mu.min() >= 0 and 0.08 < np.median(mu[before > np.percentile(before, 60)]) < 0.11  # ~ water 0.096
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(mr), before)
    with pytest.raises(InputError):
        logic.synthesizeCT(node_from_volume(scene, Volume(np.full((8, 8, 8), -1000.0, np.float32), name="ct")))


def test_compute_steps_accept_the_whole_panel_parameter_set(scene, fdg_volumes):
    """The Slicer panel passes every declared value (PET and MR) to each step."""
    from medsynth.params import defaults

    values = defaults(PARAMS)
    logic = CrossModalityLogic(scene)
    fdg = _node(scene, fdg_volumes["NC"], "FDG")
    result = logic.compute_synthesis(logic.inputVolume(fdg), values)
    assert result.volume.array.shape == fdg_volumes["NC"].array.shape
