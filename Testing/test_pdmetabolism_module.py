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
    assert {p.name for p in PARAMS} == {"space", "z_threshold", "opacity"}
    t = next(p for p in PARAMS if p.name == "z_threshold")
    assert t.default == 2.0 and t.unit == "z" and t.live
    assert NODE_REFERENCES == {"fdgVolume": "vtkMRMLScalarVolumeNode"}


def _views(scene):
    """What Slicer's scene holds for the views: a layout node with the layout logic (it creates the view nodes of a
    layout, the table view too), slice and slice composite nodes."""
    layout = slicer.vtkMRMLLayoutNode()
    scene.AddNode(layout)
    layout_logic = slicer.vtkMRMLLayoutLogic()
    layout_logic.SetMRMLScene(scene)
    layout.SetViewArrangement(slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpView)
    red = scene.GetFirstNodeByName("Red") if scene.GetFirstNodeByName("Red") is not None else None
    if red is None or not red.IsA("vtkMRMLSliceNode"):
        red = scene.AddNewNodeByClass("vtkMRMLSliceNode", "Red")
        red.SetLayoutName("Red")
    for name in ("Red", "Yellow", "Green"):
        composite = scene.AddNewNodeByClass("vtkMRMLSliceCompositeNode")
        composite.SetLayoutName(name)
    return layout, layout_logic, red


def _shown_rgba(display, values):
    """RGBA the slice pipeline of ``display`` gives for ``values`` (one row of voxels)."""
    from vtkmodules.util.numpy_support import vtk_to_numpy

    node = display.GetDisplayableNode()
    image = node.GetImageData()
    keep = slicer.util.arrayFromVolume(node).copy()
    row = np.zeros(keep.shape, np.float32)
    row.flat[: len(values)] = values
    slicer.util.updateVolumeFromArray(node, row)
    algo = display.GetOutputImageDataConnection().GetProducer()
    algo.Update()
    out = vtk_to_numpy(algo.GetOutputDataObject(0).GetPointData().GetScalars())[: len(values)].copy()
    slicer.util.updateVolumeFromArray(node, keep)
    assert image is not None
    return out


def test_detect_z_map_table_display_and_jump(scene, fdg_volumes):
    logic = PDMetabolismLogic(scene)
    layout, _layout_logic, slice_node = _views(scene)
    scores = {}
    for group in ("NC", "PD"):
        fdg = node_from_volume(scene, fdg_volumes[group].with_array(fdg_volumes[group].array, name=f"FDG_{group}"))
        before = slicer.util.arrayFromVolume(fdg).copy()
        nodes = logic.detectAnomalies(fdg, z_threshold=2.0, opacity=0.5)
        zn, mp, signed, table = nodes
        assert zn.GetName() == f"FDG_{group}_anomaly_z" and mp.GetName() == f"FDG_{group}_anomaly"
        assert signed.GetName() == f"FDG_{group}_anomaly_signed" and table.GetName() == f"FDG_{group}_anomaly_regions"
        z, a, s = volume_from_node(zn), volume_from_node(mp), volume_from_node(signed)
        assert z.array.shape == a.array.shape == before.shape and np.allclose(a.array, np.abs(s.array), atol=1e-5)
        assert np.all(np.sign(z.array[np.abs(z.array) > 1e-3]) == np.sign(s.array[np.abs(z.array) > 1e-3]))
        assert "regional-SD z" in zn.GetAttribute("MedSynth.PDMetabolism.map")
        # the foreground of every slice view, over the FDG, with the opacity
        composites = [scene.GetNthNodeByClass(i, "vtkMRMLSliceCompositeNode")
                      for i in range(scene.GetNumberOfNodesByClass("vtkMRMLSliceCompositeNode"))]
        assert composites and all(c.GetForegroundVolumeID() == zn.GetID() and c.GetBackgroundVolumeID() == fdg.GetID()
                                  and c.GetForegroundOpacity() == pytest.approx(0.5) for c in composites)
        logic.setMapOpacity(0.3)
        assert all(c.GetForegroundOpacity() == pytest.approx(0.3) for c in composites)
        # diverging colour table of its own, symmetric window +-4, |z| < 2 hidden in both signs
        d = zn.GetDisplayNode()
        assert d.GetWindowLevelMin() == pytest.approx(-4.0) and d.GetWindowLevelMax() == pytest.approx(4.0)
        assert not d.GetApplyThreshold()
        colours = scene.GetNodeByID(d.GetColorNodeID())
        assert colours.GetName() == f"FDG_{group}_anomaly_z_colours" and colours.GetNumberOfColors() == 256
        rgba = [[0.0] * 4 for _ in range(3)]
        for k, i in enumerate((0, 128, 255)):
            colours.GetColor(i, rgba[k])
        blue, mid, red = rgba
        assert blue[2] > blue[0] + 0.2 and red[0] > red[2] + 0.2 and min(mid[:3]) > 0.85  # blue - white - red
        assert blue[3] == 1.0 and red[3] == 1.0 and mid[3] == 0.0
        probe = [-4.5, -2.1, -1.9, -0.5, 0.0, 0.5, 1.9, 2.1, 3.0, 6.0]
        shown = _shown_rgba(d, probe)
        assert [int(px[3] > 0) for px in shown] == [1, 1, 0, 0, 0, 0, 0, 1, 1, 1]
        assert shown[0][2] > shown[0][0] and shown[-1][0] > shown[-1][2]  # hypo blue, hyper red
        # the threshold in z units updates the display (both tails), live
        logic.setZThreshold(zn, 3.0)
        assert zn.GetAttribute("MedSynth.PDMetabolism.threshold") == "3.0"
        assert [int(px[3] > 0) for px in _shown_rgba(d, probe)] == [1, 0, 0, 0, 0, 0, 0, 0, 1, 1]
        logic.setZThreshold(zn, 0.0)
        assert all(px[3] > 0 for px in _shown_rgba(d, probe))
        logic.setZThreshold(zn, 5.0)  # the window widens past the threshold: +-6
        assert d.GetWindowLevelMax() == pytest.approx(6.0) and d.GetWindowLevelMin() == pytest.approx(-6.0)
        assert [int(px[3] > 0) for px in _shown_rgba(d, probe)] == [0, 0, 0, 0, 0, 0, 0, 0, 0, 1]
        with pytest.raises(InputError, match="maximum"):
            logic.setZThreshold(zn, 11.0)
        logic.setZThreshold(zn, 2.0)
        # colour legend with the units in its title
        legends = [zn.GetNthDisplayNode(i) for i in range(zn.GetNumberOfDisplayNodes())]
        legends = [n for n in legends if n is not None and n.IsA("vtkMRMLColorLegendDisplayNode")]
        assert len(legends) == 1 and legends[0].GetTitleText() == "z (regional NC SD); blue hypo, red hyper"
        assert legends[0].GetVisibility()
        # the absolute map keeps its % display (no longer the foreground, no legend)
        da = mp.GetDisplayNode()
        assert da.GetApplyThreshold() and da.GetLowerThreshold() == pytest.approx(5.0)
        logic.setMapThreshold(mp, 7.5)
        assert da.GetLowerThreshold() == pytest.approx(7.5)
        sd = signed.GetDisplayNode()
        assert sd.GetWindowLevelMin() == pytest.approx(-sd.GetWindowLevelMax())
        # the table beside the views: a layout with a table view showing it
        assert layout.GetViewArrangement() == slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpTableView
        views = [scene.GetNthNodeByClass(i, "vtkMRMLTableViewNode")
                 for i in range(scene.GetNumberOfNodesByClass("vtkMRMLTableViewNode"))]
        assert views and all(v.GetTableNodeID() == table.GetID() for v in views)
        # 3D: no Volume Rendering module under slicer-core -> the slice planes are shown in 3D
        assert slice_node.GetSliceVisible()
        assert table.GetNumberOfRows() == 21
        cols = [table.GetColumnName(c) for c in range(table.GetNumberOfColumns())]
        assert cols[:3] == ["region", "z", "residual_percent"] and cols[-3:] == ["R", "A", "S"]
        zt = [abs(float(table.GetCellText(r, 1))) for r in range(table.GetNumberOfRows())]
        assert zt == sorted(zt, reverse=True)
        ras = logic.jumpToRegion(table, 0)
        assert np.allclose([slice_node.GetSliceToRAS().GetElement(i, 3) for i in range(3)], ras, atol=1.0)
        scores[group] = json.loads(zn.GetAttribute("MedSynth.PDMetabolism.score"))["value"]
        assert "simulated" in zn.GetAttribute("MedSynth.Note")
        np.testing.assert_array_equal(slicer.util.arrayFromVolume(fdg), before)
    assert scores["PD"] > scores["NC"]


def test_z_map_volume_rendering_when_the_logic_has_one(scene, fdg_volumes):
    """With a Volume Rendering logic (Slicer's module, the studio's): the z map is volume rendered, |z| below the
    threshold transparent, colours blue -> red; the threshold updates it."""
    vr = slicer.vtkSlicerVolumeRenderingLogic()
    vr.SetMRMLScene(scene)
    logic = PDMetabolismLogic(scene, volumeRenderingLogic=vr)
    fdg = node_from_volume(scene, fdg_volumes["PD"])
    nodes = logic.detectAnomalies(fdg, z_threshold=2.5)
    d = vr.GetFirstVolumeRenderingDisplayNode(nodes.z)
    assert d is not None and d.GetVisibility()
    opacity = d.GetVolumePropertyNode().GetScalarOpacity()
    colour = d.GetVolumePropertyNode().GetColor()
    assert opacity.GetValue(0.0) == 0.0 and opacity.GetValue(2.0) == 0.0 and opacity.GetValue(-2.0) == 0.0
    assert opacity.GetValue(3.0) > 0 and opacity.GetValue(-3.0) > 0
    lo, hi = colour.GetColor(-3.5), colour.GetColor(3.5)
    assert lo[2] > lo[0] and hi[0] > hi[2]
    logic.setZThreshold(nodes.z, 1.0)
    assert opacity.GetValue(2.0) > 0 and opacity.GetValue(-2.0) > 0 and opacity.GetValue(0.5) == 0.0


def test_3d_falls_back_when_volume_rendering_fails(scene, fdg_volumes):
    class Broken:
        def GetFirstVolumeRenderingDisplayNode(self, node):
            raise RuntimeError("no volume rendering here")

    scene.AddNewNodeByClass("vtkMRMLSliceNode", "Red").SetLayoutName("Red")
    logic = PDMetabolismLogic(scene, volumeRenderingLogic=Broken())
    nodes = logic.detectAnomalies(node_from_volume(scene, fdg_volumes["NC"]))
    assert logic.show3D(nodes.z, 2.0) == "slice planes"
    assert scene.GetFirstNodeByName("Red").GetSliceVisible()
    assert PDMetabolismLogic(slicer.vtkMRMLScene()).showTable(nodes.table) is False  # no layout node: no error


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
