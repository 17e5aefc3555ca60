"""SliceSuperRes module logic (SliceSuperResLib) against real MRML (slicer-core wheel)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from conftest import REPO

slicer = pytest.importorskip("slicer", reason="the slicer-core wheel (real MRML) is needed")
sys.path.insert(0, str(REPO / "SliceSuperRes"))

from medsynth import InputError, Volume, make_ijk_to_ras  # noqa: E402
from medsynth_mrml import node_from_volume, volume_from_node  # noqa: E402
from SliceSuperResLib import PARAMS, SliceSuperResLogic  # noqa: E402


@pytest.fixture
def scene():
    return slicer.vtkMRMLScene()


@pytest.fixture
def thick_node(scene):
    k, j, i = np.mgrid[0:10, 0:24, 0:20].astype(np.float32)
    arr = 200 + 80 * np.sin(i / 3.0) * np.cos(j / 4.0) + 6 * k
    vol = Volume(arr, make_ijk_to_ras((0.9, 0.9, 4.0), (-10, 20, -30)), name="t2_thick")
    return node_from_volume(scene, vol)


@pytest.mark.parametrize("method", ["linear", "bspline"])
def test_process_makes_a_new_node_and_leaves_the_input(scene, thick_node, method):
    before = slicer.util.arrayFromVolume(thick_node).copy()
    logic = SliceSuperResLogic(scene)
    out = logic.process(thick_node, spacing=1.0, method=method)
    assert out is not thick_node and out.GetName().startswith("t2_thick_")
    res = volume_from_node(out)
    assert res.array.shape == (37, 24, 20)  # 36 mm span / 1 mm
    np.testing.assert_allclose(res.spacing, [0.9, 0.9, 1.0], atol=1e-9)
    inp = volume_from_node(thick_node)
    np.testing.assert_allclose(res.ijk_to_ras_points([[0, 0, 0], [0, 0, 36]]), inp.ijk_to_ras_points([[0, 0, 0], [0, 0, 9]]))
    np.testing.assert_allclose(res.array[::4], inp.array, atol=1e-3)  # input planes kept
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(thick_node), before)


def test_sainr_when_the_model_is_shipped(scene, thick_node):
    from medsynth import runtime

    if "sainr" not in runtime.list_models():
        pytest.skip("the SA-INR model is not in Resources/Models")
    out = SliceSuperResLogic(scene).process(thick_node, spacing=2.0, method="sainr")
    assert volume_from_node(out).array.shape == (19, 24, 20)


@pytest.mark.heavy
def test_apply_adapted_to_the_volume(scene):
    pytest.importorskip("torch", reason="adapting needs torch")
    pytest.importorskip("monai", reason="adapting needs MONAI")
    k, j, i = np.mgrid[0:10, 0:40, 0:36].astype(np.float32)
    vol = Volume(200 + 80 * np.sin(i / 3.0) * np.cos(j / 4.0) + 6 * k, make_ijk_to_ras((1.0, 1.0, 4.0)), name="big")
    node = node_from_volume(scene, vol)
    logic = SliceSuperResLogic(scene)
    n_before = scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode")
    with pytest.raises(InputError, match="does not apply"):
        logic.process(node, spacing=1.0, method="bspline", adapt_steps=2)
    assert scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode") == n_before
    seen = []
    out = logic.process(node, spacing=1.0, method="sainr", adapt_steps=2, progress=lambda f, m: seen.append(m))
    assert volume_from_node(out).array.shape == (37, 40, 36)
    assert any("adapting" in m for m in seen)


def test_preview_is_a_slab_updated_in_place(scene, thick_node):
    logic = SliceSuperResLogic(scene)
    vals = {"spacing": 1.0, "axis": "auto", "method": "linear"}
    node = logic.preview(thick_node, vals, ras=(0, 0, -10), normal_ras=(0, 0, 1))
    slab = volume_from_node(node)
    assert slab.array.shape[0] == 3 and slab.array.shape[1:] == (24, 20)
    full = volume_from_node(logic.process(thick_node, **vals))
    k0 = int(round(full.ras_to_ijk_points(slab.origin)[0][2]))
    np.testing.assert_allclose(slab.array, full.array[k0 : k0 + 3], atol=1e-4)
    again = logic.preview(thick_node, dict(vals, spacing=2.0), ras=(0, 0, -10), preview_node=node)
    assert again is node and logic.lastPreviewMilliseconds >= 0
    np.testing.assert_allclose(volume_from_node(node).spacing[2], 2.0)


def test_describe_and_bad_inputs(scene, thick_node):
    logic = SliceSuperResLogic(scene)
    text = logic.describe(thick_node, {"spacing": 1.0})
    assert "10 slices" in text and "37 slices" in text and "factor 4" in text
    with pytest.raises(InputError, match="spacing"):
        logic.process(thick_node, spacing=4.5)
    rgb = node_from_volume(scene, Volume(np.zeros((3, 4, 5, 3), np.uint8), name="rgb"))
    with pytest.raises(InputError):
        logic.process(rgb, spacing=0.5)
    flat = node_from_volume(scene, Volume(np.zeros((1, 8, 8), np.float32), name="flat"))
    with pytest.raises(InputError):
        logic.process(flat, spacing=0.5)
    iso = node_from_volume(scene, Volume(np.zeros((6, 6, 6), np.float32), name="iso"))
    with pytest.raises(InputError):
        logic.process(iso, spacing=0.5, axis="auto")


def test_parameters_are_the_engine_declarations():
    from medsynth.superres.params import SUPERRES_PARAMS

    assert PARAMS is SUPERRES_PARAMS


def test_preview_keeps_encoder_features_across_spacing_changes(scene, thick_node, monkeypatch):
    """A spacing change in the live preview re-runs only the decoder (issue: 1.6 s per change before)."""
    from medsynth.superres import sainr as sainr_module

    calls = []
    model = sainr_module.load_sainr()  # sessions are cached: the logic's runner uses this encoder session
    real_run = model.encoder.run

    def counting_run(feeds, *args, **kwargs):
        calls.append(feeds["lr"].shape)
        return real_run(feeds, *args, **kwargs)

    monkeypatch.setattr(model.encoder, "run", counting_run)
    logic = SliceSuperResLogic(scene)
    vals = {"spacing": 1.0, "axis": "auto", "method": "sainr"}
    node = logic.preview(thick_node, vals, ras=(0, 0, -10), normal_ras=(0, 0, 1))
    first = len(calls)
    assert first >= 1
    for spacing in (2.0, 1.5, 0.8):
        logic.preview(thick_node, dict(vals, spacing=spacing), ras=(0, 0, -10), preview_node=node)
    assert len(calls) == first, "the encoder ran again for a spacing change"
    # a changed input volume is encoded anew
    arr = slicer.util.arrayFromVolume(thick_node).copy()
    arr[0, 0, 0] += 1.0
    slicer.util.updateVolumeFromArray(thick_node, arr)
    logic.preview(thick_node, vals, ras=(0, 0, -10), preview_node=node)
    assert len(calls) > first
