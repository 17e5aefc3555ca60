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
    from medsynth.pet.simulate import simulated_subject

    return {group: simulated_subject(group, 5).fdg for group in ("NC", "PD")}


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


# --------------------------------------------------------------------------- Classify PD (FDG + synthetic CFT)
def _classifiers_missing():
    from medsynth.pet.classify import FDG_ONLY_MODEL_ID, MODEL_ID
    from medsynth.runtime import list_models

    return sorted({MODEL_ID, FDG_ONLY_MODEL_ID} - set(list_models()))


needs_classifier = pytest.mark.skipif(
    bool(_classifiers_missing()), reason="the pd-classifier models are not in Resources/Models"
)


@pytest.fixture(scope="module")
def example_fdgs():
    """The seeded example subjects of the PET self-tests: a healthy control and an advanced PD (MNI 2 mm)."""
    from medsynth.pet.simulate import example_subject

    return {group: example_subject(group).fdg for group in ("NC", "PD")}


@needs_classifier
def test_classify_pd_line_report_and_cft_node_pd_above_nc(scene, example_fdgs):
    logic = CrossModalityLogic(scene)
    probability = {}
    for group in ("NC", "PD"):
        fdg = _node(scene, example_fdgs[group], f"FDG_{group}")
        before = slicer.util.arrayFromVolume(fdg).copy()
        messages = []
        res = logic.classifyPD(fdg, progress=lambda f, m: messages.append((f, m)))
        assert "PD probability" in res.line and res.line.endswith("not a diagnosis.")
        assert res.report["label"] == res.label in ("PD", "NC")
        assert res.report["pd_probability"] == pytest.approx(res.probability, abs=1e-4)
        assert 0.0 <= res.probability <= 1.0 and res.report["model"]["id"] == "pd-classifier"
        cft = res.cftNode
        assert cft is not fdg and cft.GetName() == f"FDG_{group}_synthetic_CFT"
        out, inp = volume_from_node(cft), volume_from_node(fdg)
        assert out.array.shape == inp.array.shape and np.allclose(out.ijk_to_ras, inp.ijk_to_ras)
        assert cft.GetAttribute("DICOM.Modality") == "PT"
        assert '"pd_probability"' in cft.GetAttribute("MedSynth.CrossModality.classification")
        assert messages and messages[-1][0] == 1.0
        np.testing.assert_array_equal(slicer.util.arrayFromVolume(fdg), before)
        probability[group] = res.probability
    assert probability["PD"] > probability["NC"], probability


@needs_classifier
def test_classify_compute_finish_split_and_cancel_add_nothing(scene, example_fdgs):
    logic = CrossModalityLogic(scene)
    fdg = _node(scene, example_fdgs["NC"], "FDG")
    n = scene.GetNumberOfNodes()
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        logic.classifyPD(fdg, cancel=token)
    assert scene.GetNumberOfNodes() == n
    from medsynth.params import defaults

    result = logic.compute_classification(logic.inputVolume(fdg), defaults(PARAMS))  # the panel's whole value set
    assert scene.GetNumberOfNodes() == n  # the engine step adds nothing
    res = logic.finish_classification(fdg, result, addCFT=False)
    assert res.cftNode is None and scene.GetNumberOfNodes() == n and "PD probability" in res.line


def test_classify_without_the_classifier_model_is_refused_before_synthesis(scene, fdg_volumes, monkeypatch):
    from medsynth import runtime
    from medsynth.errors import ModelError

    shipped = runtime.list_models
    monkeypatch.setattr(runtime, "list_models",
                        lambda: {k: v for k, v in shipped().items() if not k.startswith("pd-classifier")})
    logic = CrossModalityLogic(scene)
    fdg = _node(scene, fdg_volumes["NC"], "FDG")
    n = scene.GetNumberOfNodes()
    messages = []
    with pytest.raises(ModelError, match="pd-classifier"):
        logic.classifyPD(fdg, progress=lambda f, m: messages.append((f, m)))
    assert messages == [] and scene.GetNumberOfNodes() == n  # refused before the synthesis started
    with pytest.raises(InputError):
        logic.classifyPD(node_from_volume(scene, Volume(np.zeros((1, 64, 64), np.float32), name="flat")))
