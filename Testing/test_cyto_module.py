"""CytoSynth module logic (CytoSynthLib) against real MRML (slicer-core wheel): gallery node, insertion node,
records (point labels, table), bad input, training-set folder."""

from __future__ import annotations

import csv
import sys

import numpy as np
import pytest

from conftest import REPO

slicer = pytest.importorskip("slicer", reason="the slicer-core wheel (real MRML) is needed")
sys.path.insert(0, str(REPO / "CytoSynth"))

from medsynth import InputError, Volume, make_ijk_to_ras, runtime  # noqa: E402
from medsynth.cyto import BETHESDA_CLASSES, HERLEV_CLASSES, generate_cells  # noqa: E402
from medsynth.cyto.demo import smear_background  # noqa: E402
from medsynth_mrml import markups_from_points, node_from_volume, volume_from_node  # noqa: E402
from CytoSynthLib import PARAMS, CytoSynthLogic  # noqa: E402
from CytoSynthLib.logic import TABLE_COLUMNS, TABLE_NAME  # noqa: E402

pytestmark = pytest.mark.skipif(
    "cellgan" not in runtime.list_models(), reason="the cellgan model is not in Resources/Models"
)

LPS = np.diag([-1.0, -1.0, 1.0])


@pytest.fixture
def scene():
    return slicer.vtkMRMLScene()


@pytest.fixture
def rgb_node(scene):
    vol = Volume(smear_background(160, seed=1)[np.newaxis], make_ijk_to_ras((0.5, 0.5, 1.0), (10.0, 20.0, 0.0), LPS),
                 name="smear")
    return node_from_volume(scene, vol)


def test_params_are_the_engine_declarations():
    from medsynth.cyto.params import CYTO_PARAMS

    assert PARAMS is CYTO_PARAMS
    assert {p.name for p in PARAMS} >= {"cell_class", "count", "seed"}


@pytest.mark.parametrize("naming,classes", [("bethesda", BETHESDA_CLASSES), ("herlev", HERLEV_CLASSES)])
def test_gallery_node_a_row_per_class(scene, naming, classes):
    logic = CytoSynthLogic(scene)
    node = logic.gallery(cell_class="all", count=3, seed=0, naming=naming)
    assert node.IsA("vtkMRMLVectorVolumeNode") and node.GetScene() is scene
    arr = slicer.util.arrayFromVolume(node)
    assert arr.shape == (1, len(classes) * 66 + 2, 3 * 66 + 2, 3) and arr.dtype == np.uint8
    # first cell of the second row is cell 0 of the second class
    expected = generate_cells(classes[1], 1, seed=0, naming=naming)[0].image
    np.testing.assert_array_equal(arr[0, 68:132, 2:66], expected)
    assert node.GetAttribute("MedSynth.CytoSynth.rows").startswith(f"{classes[0]} (row 1)")
    labels = logic.gallery_labels_node
    assert [labels.GetNthControlPointLabel(i) for i in range(labels.GetNumberOfControlPoints())] == list(classes)


def test_gallery_of_one_class_wraps_rows(scene):
    node = CytoSynthLogic(scene).gallery({"cell_class": "LSIL", "count": 20, "seed": 4, "naming": "bethesda"})
    assert slicer.util.arrayFromVolume(node).shape == (1, 2 * 66 + 2, 16 * 66 + 2, 3)
    assert node.GetName().startswith("CellGallery_LSIL")


def test_insert_makes_a_new_node_and_records(scene, rgb_node):
    before = slicer.util.arrayFromVolume(rgb_node).copy()
    points = markups_from_points(scene, [[-30.0, -40.0, 0.0]], name="CellPosition")
    logic = CytoSynthLogic(scene)
    rec = logic.insert(rgb_node, points, cell_class="hsil", seed=3, naming="bethesda", patch_px=48, blend="poisson")
    out = rec["output"]
    assert out is not rgb_node and out.IsA("vtkMRMLVectorVolumeNode") and out.GetName().startswith("smear_cells")
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(rgb_node), before)  # input untouched
    after = slicer.util.arrayFromVolume(out)
    assert after.shape == before.shape and after.dtype == before.dtype
    i0, j0, i1, j1 = rec["box_ijk"]
    outside = np.ones(before.shape[:3], bool)
    outside[0, j0:j1, i0:i1] = False
    np.testing.assert_array_equal(after[outside], before[outside])
    assert (after[0, j0:j1, i0:i1] != before[0, j0:j1, i0:i1]).any()
    np.testing.assert_allclose(volume_from_node(out).ijk_to_ras, volume_from_node(rgb_node).ijk_to_ras)
    # the pixel under the point is the box centre
    ijk = volume_from_node(rgb_node).ras_to_ijk_points([-30.0, -40.0, 0.0])[0]
    assert rec["center_ijk"][:2] == [int(round(ijk[0])), int(round(ijk[1]))]
    assert (i1 - i0, j1 - j0) == (48, 48)
    # records: point label + description, table row
    assert rec["class"] == "HSIL" and rec["herlev_class"] in ("moderate_dysplastic", "severe_dysplastic")
    assert points.GetNthControlPointLabel(0) == "HSIL 1"
    assert f"seed {rec['seed']}" in points.GetNthControlPointDescription(0)
    table = logic.table_node
    assert table.IsA("vtkMRMLTableNode") and table.GetName() == TABLE_NAME
    assert [table.GetColumnName(c) for c in range(table.GetNumberOfColumns())] == list(TABLE_COLUMNS)
    row = CytoSynthLogic.table_rows(table)[0]
    assert row["class"] == "HSIL" and row["seed"] == "3" and row["image"] == out.GetName()
    assert float(row["R"]) == pytest.approx(-30.0) and float(row["A"]) == pytest.approx(-40.0)
    lo, hi = rec["box_ras_min"], rec["box_ras_max"]
    assert lo[0] < -30.0 < hi[0] and lo[1] < -40.0 < hi[1]


def test_second_insertion_goes_into_the_same_output(scene, rgb_node):
    points = markups_from_points(scene, [[-30.0, -40.0, 0.0]], name="CellPosition")
    logic = CytoSynthLogic(scene)
    first = logic.insert(rgb_node, points, cell_class="LSIL", seed=1)
    kept = slicer.util.arrayFromVolume(first["output"]).copy()
    points.AddControlPoint(-55.0, -5.0, 0.0)
    second = logic.insert(rgb_node, points, cell_class="carcinoma", seed=2, naming="herlev", output_node=first["output"])
    assert second["output"] is first["output"]
    assert scene.GetNumberOfNodesByClass("vtkMRMLVectorVolumeNode") == 2  # input + one output
    after = slicer.util.arrayFromVolume(first["output"])
    i0, j0, i1, j1 = second["box_ijk"]
    outside = np.ones(after.shape[:3], bool)
    outside[0, j0:j1, i0:i1] = False
    np.testing.assert_array_equal(after[outside], kept[outside])  # the first cell stays
    assert points.GetNthControlPointLabel(1) == "carcinoma_in_situ 2"
    assert logic.table_node.GetNumberOfRows() == 2
    # a new logic (another panel session) appends to the same table
    CytoSynthLogic(scene).insert(rgb_node, [-50.0, -50.0, 0.0], cell_class="NILM", seed=0)
    assert scene.GetFirstNodeByName(TABLE_NAME).GetNumberOfRows() == 3


def test_insertion_bad_input(scene, rgb_node):
    logic = CytoSynthLogic(scene)
    grey = node_from_volume(scene, Volume(np.zeros((1, 40, 40), np.uint8), make_ijk_to_ras(), name="grey"))
    with pytest.raises(InputError, match="RGB"):
        logic.insert(grey, [-10.0, -10.0, 0.0], cell_class="HSIL")
    with pytest.raises(InputError, match="outside"):
        logic.insert(rgb_node, [500.0, 0.0, 0.0], cell_class="HSIL")
    with pytest.raises(InputError, match="unknown cell class"):
        logic.insert(rgb_node, [-30.0, -40.0, 0.0], cell_class="koilocyte")
    with pytest.raises(InputError, match="one class"):
        logic.insert(rgb_node, [-30.0, -40.0, 0.0], cell_class="all")
    with pytest.raises(InputError, match="count"):
        logic.gallery(cell_class="HSIL", count=0)
    empty = markups_from_points(scene, np.zeros((0, 3)), name="empty")
    with pytest.raises(InputError, match="place a point"):
        logic.insert(rgb_node, empty, cell_class="HSIL")
    assert logic.table_node is None and scene.GetNumberOfNodesByClass("vtkMRMLVectorVolumeNode") == 1
    assert logic.check_insertion(rgb_node, [-30.0, -40.0, 0.0]) == ""
    assert "outside" in logic.check_insertion(rgb_node, [500.0, 0.0, 0.0])
    assert "RGB" in logic.check_insertion(grey, [0.0, 0.0, 0.0])


def test_write_folder_class_balanced(tmp_path):
    written, csv_path = CytoSynthLogic.write_folder(str(tmp_path), cell_class="all", count=2, naming="bethesda")
    assert len(written) == 8
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert sorted({r["class"] for r in rows}) == sorted(BETHESDA_CLASSES)
    with pytest.raises(InputError, match="folder"):
        CytoSynthLogic.write_folder("", cell_class="all", count=2)
