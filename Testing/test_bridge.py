"""Tests of the MRML bridge (medsynth_mrml) against real MRML from the slicer-core wheel."""

from __future__ import annotations

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="the MRML bridge needs Slicer or the slicer-core wheel")

import medsynth_mrml as bridge  # noqa: E402
from medsynth import InputError, Volume, make_ijk_to_ras  # noqa: E402
from medsynth.io import read_volume, write_volume  # noqa: E402
from conftest import rotation  # noqa: E402

MATRIX_TOL = 1e-12


def oblique_left_handed_anisotropic() -> np.ndarray:
    """An oblique, left-handed (det < 0), anisotropic ijk-to-RAS matrix."""
    directions = rotation("z", 25) @ rotation("x", -15) @ np.diag([1.0, -1.0, 1.0])
    return make_ijk_to_ras(spacing=(0.7, 1.3, 4.0), origin=(-12.5, 30.25, 7.0), directions=directions)


def ramp(shape, dtype=np.int16) -> np.ndarray:
    """A non-symmetric array: every voxel differs, so any flip or transposition shows."""
    return (np.arange(int(np.prod(shape))) * 7 % 1001).reshape(shape).astype(dtype)


@pytest.fixture
def scene():
    return slicer.vtkMRMLScene()


# --------------------------------------------------------------------------- Volume <-> node
ROUND_TRIP_CASES = {
    "oblique": Volume(
        ramp((3, 4, 5), np.float32) / 3,
        make_ijk_to_ras(origin=(1, 2, 3), directions=rotation("z", 30) @ rotation("y", 20)),
        name="oblique",
    ),
    "anisotropic": Volume(ramp((3, 4, 5)), make_ijk_to_ras(spacing=(0.7, 1.3, 4.0), origin=(-5, 0, 9)), name="aniso"),
    "left_handed": Volume(ramp((3, 4, 5), np.uint16), oblique_left_handed_anisotropic(), name="left"),
    "rgb": Volume(
        ramp((2, 3, 4, 3), np.uint8),
        make_ijk_to_ras(spacing=(0.5, 0.5, 1.0), directions=rotation("x", 10)),
        name="rgb",
    ),
    "one_slice_2d": Volume(ramp((1, 6, 7), np.float64), make_ijk_to_ras(spacing=(0.3, 0.4, 1.0)), name="xray"),
}


@pytest.mark.parametrize("case", sorted(ROUND_TRIP_CASES))
def test_volume_node_round_trip_is_exact(scene, case):
    volume = ROUND_TRIP_CASES[case]
    node = bridge.node_from_volume(scene, volume)
    expected_class = "vtkMRMLVectorVolumeNode" if volume.is_vector else "vtkMRMLScalarVolumeNode"
    assert node.GetClassName() == expected_class
    back = bridge.volume_from_node(node)
    np.testing.assert_array_equal(back.array, volume.array)
    assert back.array.dtype == volume.array.dtype
    np.testing.assert_allclose(back.ijk_to_ras, volume.ijk_to_ras, rtol=0, atol=MATRIX_TOL)
    assert back.name == node.GetName() == volume.name
    # the returned array is a copy, not a view of VTK memory
    back.array.flat[0] += 1
    assert slicer.util.arrayFromVolume(node).flat[0] == volume.array.flat[0]


def test_names_are_unique_and_follow_reference_and_suffix(scene):
    volume = ROUND_TRIP_CASES["anisotropic"]
    reference = bridge.node_from_volume(scene, volume, name="CT")
    first = bridge.node_from_volume(scene, volume, reference_node=reference, suffix="denoised")
    second = bridge.node_from_volume(scene, volume, reference_node=reference, suffix="denoised")
    named = bridge.node_from_volume(scene, volume, name="custom")
    assert first.GetName() == "CT_denoised"
    assert second.GetName() != first.GetName() and second.GetName().startswith("CT_denoised")
    assert named.GetName() == "custom"
    assert first.GetDisplayNode() is not None


def test_update_node_replaces_voxels_and_geometry(scene):
    node = bridge.node_from_volume(scene, ROUND_TRIP_CASES["anisotropic"], name="preview")
    display = node.GetDisplayNode()
    new = ROUND_TRIP_CASES["left_handed"]
    assert bridge.update_node_from_volume(node, new) is node
    back = bridge.volume_from_node(node)
    np.testing.assert_array_equal(back.array, new.array)
    np.testing.assert_allclose(back.ijk_to_ras, new.ijk_to_ras, rtol=0, atol=MATRIX_TOL)
    assert node.GetName() == "preview" and node.GetDisplayNode() is display


def test_linear_parent_transform_is_applied_and_nonlinear_refused(scene):
    volume = ROUND_TRIP_CASES["anisotropic"]
    node = bridge.node_from_volume(scene, volume)
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    shift = np.eye(4)
    shift[:3, :3] = rotation("z", 90)
    shift[:3, 3] = (10, -4, 2)
    transform.SetMatrixTransformToParent(bridge.bridge._matrix_to_vtk(shift))
    node.SetAndObserveTransformNodeID(transform.GetID())
    np.testing.assert_allclose(bridge.volume_from_node(node).ijk_to_ras, shift @ volume.ijk_to_ras, atol=MATRIX_TOL)
    # updating a transformed node keeps its world geometry equal to the volume's
    bridge.update_node_from_volume(node, volume)
    np.testing.assert_allclose(bridge.volume_from_node(node).ijk_to_ras, volume.ijk_to_ras, atol=MATRIX_TOL)

    grid = scene.AddNewNodeByClass("vtkMRMLGridTransformNode")
    node.SetAndObserveTransformNodeID(grid.GetID())
    with pytest.raises(InputError, match="non-linear"):
        bridge.volume_from_node(node)


def test_labelmap_node_and_int64_labels(scene):
    labels = Volume(ramp((2, 3, 4), np.int64) % 5, oblique_left_handed_anisotropic(), name="labels")
    node = bridge.labelmap_node_from_volume(scene, labels)
    assert node.GetClassName() == "vtkMRMLLabelMapVolumeNode"
    back = bridge.volume_from_node(node)
    np.testing.assert_array_equal(back.array, labels.array)
    assert back.array.dtype == np.int32  # VTK 'long long' is not a Slicer volume type
    with pytest.raises(InputError, match="whole numbers"):
        bridge.labelmap_node_from_volume(scene, labels.with_array(labels.array + 0.5))


# --------------------------------------------------------------------------- files: SimpleITK vs Slicer storage
FILE_SUFFIXES = (".nii.gz", ".nrrd", ".mha")


def file_volume() -> Volume:
    return Volume(ramp((3, 4, 5), np.int16), oblique_left_handed_anisotropic(), name="file")


def assert_same_voxels_at_same_points(a: Volume, b: Volume) -> None:
    np.testing.assert_array_equal(a.array, b.array)
    np.testing.assert_allclose(a.ijk_to_ras, b.ijk_to_ras, rtol=0, atol=1e-5)
    corners = np.array([[0, 0, 0], [4, 0, 0], [0, 3, 0], [0, 0, 2], [4, 3, 2]], dtype=float)
    ras = a.ijk_to_ras_points(corners)
    np.testing.assert_allclose(b.ras_to_ijk_points(ras), corners, atol=1e-4)
    assert np.max(np.abs(b.ijk_to_ras_points(corners) - ras)) < 1e-4  # same voxel, same RAS point, mm


def flip_k(volume: Volume) -> Volume:
    """The same image with its slice order reversed: k' = nk - 1 - k (det of the matrix changes sign)."""
    nk = volume.array.shape[0]
    flip = np.eye(4)
    flip[2, 2], flip[2, 3] = -1.0, nk - 1.0
    return Volume(volume.array[::-1].copy(), volume.ijk_to_ras @ flip, name=volume.name)


def assert_same_voxel_at_every_ras_point(a: Volume, b: Volume) -> None:
    """Whatever the index order, every voxel of b sits on a voxel of a (within 1e-4 mm) with the same value."""
    k, j, i = np.indices(b.array.shape[:3])
    ijk_b = np.stack([i.ravel(), j.ravel(), k.ravel()], axis=1).astype(float)
    ras = b.ijk_to_ras_points(ijk_b)
    ijk_a = np.rint(a.ras_to_ijk_points(ras)).astype(int)
    assert np.max(np.linalg.norm(a.ijk_to_ras_points(ijk_a) - ras, axis=1)) < 1e-4
    np.testing.assert_array_equal(a.array[ijk_a[:, 2], ijk_a[:, 1], ijk_a[:, 0]], b.array.reshape(-1))


@pytest.mark.parametrize("suffix", FILE_SUFFIXES)
def test_simpleitk_file_read_by_slicer_storage_node(scene, tmp_path, suffix):
    volume = file_volume()
    assert np.linalg.det(volume.ijk_to_ras[:3, :3]) < 0
    path = write_volume(volume, tmp_path / f"sitk{suffix}")
    node = bridge.read_node(scene, path)
    assert node.GetName() == "sitk"
    assert node.GetStorageNode() is not None
    read = bridge.volume_from_node(node)
    assert_same_voxel_at_every_ras_point(volume, read)
    # Slicer quirk: its reader makes a left-handed file right-handed by reversing the slice order
    assert np.linalg.det(read.ijk_to_ras[:3, :3]) > 0
    assert_same_voxels_at_same_points(flip_k(volume), read)


@pytest.mark.parametrize("suffix", FILE_SUFFIXES)
def test_right_handed_file_reads_identically(scene, tmp_path, suffix):
    volume = file_volume()
    volume = flip_k(volume)  # same image, right-handed index order
    path = write_volume(volume, tmp_path / f"sitk{suffix}")
    assert_same_voxels_at_same_points(volume, bridge.volume_from_node(bridge.read_node(scene, path)))


@pytest.mark.parametrize("suffix", FILE_SUFFIXES)
def test_slicer_storage_node_file_read_by_simpleitk(scene, tmp_path, suffix):
    volume = file_volume()
    node = bridge.node_from_volume(scene, volume)
    path = bridge.write_node(node, tmp_path / f"slicer{suffix}")
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"slicer{suffix}"]  # no temporary left behind
    assert_same_voxels_at_same_points(volume, read_volume(path))  # left-handed kept as is on writing
    assert_same_voxel_at_every_ras_point(volume, read_volume(path))


def test_rgb_file_reads_into_vector_node(scene, tmp_path):
    volume = ROUND_TRIP_CASES["rgb"]
    path = write_volume(volume, tmp_path / "rgb.nrrd")
    node = bridge.read_node(scene, path)
    assert node.GetClassName() == "vtkMRMLVectorVolumeNode"
    assert_same_voxels_at_same_points(volume, bridge.volume_from_node(node))


def test_file_errors_leave_nothing(scene, tmp_path):
    node = bridge.node_from_volume(scene, file_volume())
    nodes_before = scene.GetNumberOfNodes()
    with pytest.raises(InputError, match="not found"):
        bridge.read_node(scene, tmp_path / "missing.nrrd")
    broken = tmp_path / "broken.nrrd"
    broken.write_bytes(b"NRRD0004\nthis is not a header\n")
    with pytest.raises(InputError):
        bridge.read_node(scene, broken)
    assert scene.GetNumberOfNodes() == nodes_before
    with pytest.raises(InputError, match="cannot write format"):
        bridge.write_node(node, tmp_path / "out.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.nrrd"]


# --------------------------------------------------------------------------- segmentations
SEGMENTS = {1: ("liver", (0.8, 0.2, 0.1)), 3: ("kidney", (0.1, 0.5, 0.9))}


def label_volume() -> Volume:
    labels = np.zeros((3, 4, 5), np.int16)
    labels[0, 1:3, 1:4] = 1
    labels[2, 0, 0] = 3
    labels[1, 3, 4] = 3
    return Volume(labels, oblique_left_handed_anisotropic(), name="labels")


def segments_by_name(node):
    segmentation = node.GetSegmentation()
    return {
        segmentation.GetNthSegment(i).GetName(): segmentation.GetNthSegment(i)
        for i in range(segmentation.GetNumberOfSegments())
    }


def test_segmentation_from_labels_round_trip(scene):
    labels = label_volume()
    reference = bridge.node_from_volume(scene, labels.with_array(ramp((3, 4, 5), np.float32), name="CT"))
    seg = bridge.segmentation_node_from_labels(scene, labels, SEGMENTS, reference_node=reference, suffix="organs")
    assert seg.GetName() == "CT_organs"
    segments = segments_by_name(seg)
    assert sorted(segments) == ["kidney", "liver"]
    for value, (name, colour) in SEGMENTS.items():
        np.testing.assert_allclose(segments[name].GetColor(), colour)
    nodes_before = scene.GetNumberOfNodes()
    back = bridge.labels_from_segmentation(seg, reference)
    assert scene.GetNumberOfNodes() == nodes_before  # temporary labelmap removed
    np.testing.assert_array_equal(back.array, labels.array)
    np.testing.assert_allclose(back.ijk_to_ras, labels.ijk_to_ras, atol=1e-9)


def test_segmentation_keeps_empty_listed_labels_and_unlisted_ones(scene):
    labels = label_volume()
    spec = dict(SEGMENTS)
    spec[5] = ("tumour", (1.0, 1.0, 0.0))  # listed but absent: an empty named segment
    only_liver = labels.with_array(np.where(labels.array == 3, 7, labels.array))  # 7: present but unlisted
    seg = bridge.segmentation_node_from_labels(scene, only_liver, {1: spec[1], 5: spec[5]})
    segments = segments_by_name(seg)
    assert sorted(segments) == ["Label_7", "liver", "tumour"]
    np.testing.assert_allclose(segments["tumour"].GetColor(), (1.0, 1.0, 0.0))
    back = bridge.labels_from_segmentation(seg)  # on the segmentation's reference geometry (the label grid)
    np.testing.assert_array_equal(back.array, only_liver.array)


def test_segmentation_spec_errors(scene):
    with pytest.raises(InputError, match="positive integers"):
        bridge.segmentation_node_from_labels(scene, label_volume(), {0: ("background", (0, 0, 0))})
    with pytest.raises(InputError, match="colour"):
        bridge.segmentation_node_from_labels(scene, label_volume(), {1: ("liver", (255, 0, 0))})
    assert scene.GetNodesByClass("vtkMRMLSegmentationNode").GetNumberOfItems() == 0


# --------------------------------------------------------------------------- subject hierarchy
def test_new_nodes_are_placed_beside_the_reference(scene):
    hierarchy = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    study = hierarchy.CreateStudyItem(hierarchy.GetSceneItemID(), "study")
    folder = hierarchy.CreateFolderItem(study, "series")
    reference = bridge.node_from_volume(scene, label_volume().with_array(ramp((3, 4, 5)), name="CT"))
    hierarchy.CreateItem(folder, reference)

    output = bridge.node_from_volume(scene, ROUND_TRIP_CASES["anisotropic"], reference_node=reference, suffix="out")
    seg = bridge.segmentation_node_from_labels(scene, label_volume(), SEGMENTS, reference_node=reference)
    points = bridge.markups_from_points(scene, np.zeros((1, 3)), reference_node=reference)
    for node in (output, seg, points):
        assert hierarchy.GetItemParent(hierarchy.GetItemByDataNode(node)) == folder


# --------------------------------------------------------------------------- markups
def test_markups_round_trip_in_world_ras(scene):
    points = np.array([[1.5, -2.25, 3.0], [-40.0, 12.5, 0.125], [0.0, 0.0, -7.75]])
    node = bridge.markups_from_points(scene, points, name="centres", labels=["a", "b", "c"])
    np.testing.assert_allclose(bridge.points_from_markups(node), points, atol=1e-12)
    assert bridge.control_point_labels(node) == ["a", "b", "c"]
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    shift = np.eye(4)
    shift[:3, 3] = (5, 6, 7)
    transform.SetMatrixTransformToParent(bridge.bridge._matrix_to_vtk(shift))
    node.SetAndObserveTransformNodeID(transform.GetID())
    np.testing.assert_allclose(bridge.points_from_markups(node), points + (5, 6, 7), atol=1e-12)


def test_roi_from_bounds(scene):
    roi = bridge.roi_from_bounds(scene, (-1, 2, 3), (5, 4, 13), name="box")
    center = [0.0] * 3
    roi.GetCenter(center)
    np.testing.assert_allclose(center, (2, 3, 8))
    np.testing.assert_allclose(roi.GetSize(), (6, 2, 10))


# --------------------------------------------------------------------------- errors
def test_none_and_empty_nodes_raise_clear_input_errors(scene):
    with pytest.raises(InputError, match="None"):
        bridge.volume_from_node(None)
    empty = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "empty")
    with pytest.raises(InputError, match="'empty' has no image data"):
        bridge.volume_from_node(empty)
    with pytest.raises(InputError, match="None"):
        bridge.points_from_markups(None)
    with pytest.raises(InputError, match="None"):
        bridge.labels_from_segmentation(None)
    with pytest.raises(InputError, match="Nx3"):
        bridge.markups_from_points(scene, np.zeros((2, 2)))
    with pytest.raises(InputError, match="components"):
        bridge.node_from_volume(scene, ROUND_TRIP_CASES["rgb"], node_class="vtkMRMLScalarVolumeNode")


def test_update_node_region_writes_only_the_region(scene):
    vol = Volume(np.zeros((4, 5, 6), np.int16), make_ijk_to_ras((1, 2, 3), (1, 2, 3)), name="r")
    node = bridge.node_from_volume(scene, vol)
    region = (slice(1, 3), slice(0, 2), slice(4, 6))
    bridge.update_node_region(node, region, np.full((2, 2, 2), 7, np.int16))
    back = bridge.volume_from_node(node)
    expected = vol.array.copy()
    expected[region] = 7
    np.testing.assert_array_equal(back.array, expected)
    np.testing.assert_array_equal(back.ijk_to_ras, vol.ijk_to_ras)
    with pytest.raises(InputError, match="differ in shape"):
        bridge.update_node_region(node, region, np.zeros((1, 1, 1)))


def test_copy_display_fixes_window_level(scene):
    a = bridge.node_from_volume(scene, Volume(np.arange(60, dtype=np.int16).reshape(3, 4, 5), name="a"))
    b = bridge.node_from_volume(scene, Volume(np.zeros((3, 4, 5), np.int16), name="b"))
    a.GetDisplayNode().SetAutoWindowLevel(False)
    a.GetDisplayNode().SetWindowLevel(40, 10)
    bridge.copy_display(a, b)
    d = b.GetDisplayNode()
    assert (d.GetWindow(), d.GetLevel(), d.GetAutoWindowLevel()) == (40, 10, 0)
    assert d.GetColorNodeID() == a.GetDisplayNode().GetColorNodeID()


# --------------------------------------------------------------------------- tables
def test_table_from_rows_types_names_and_placement(scene):
    import math

    rows = [
        {"region": "caudate", "side": "L", "sbr": 2.5, "n": 3},
        {"region": "putamen", "sbr": None, "n": 4, "note": "low"},
    ]
    node = bridge.table_node_from_rows(scene, rows, name="SBR")
    assert node.IsA("vtkMRMLTableNode") and node.GetName() == "SBR"
    assert [node.GetColumnName(c) for c in range(node.GetNumberOfColumns())] == ["region", "side", "sbr", "n", "note"]
    assert node.GetNumberOfRows() == 2
    table = node.GetTable()
    assert table.GetColumnByName("sbr").GetValue(0) == 2.5 and math.isnan(table.GetColumnByName("sbr").GetValue(1))
    assert table.GetColumnByName("n").IsNumeric() and not table.GetColumnByName("region").IsNumeric()
    assert node.GetCellText(1, 1) == "" and node.GetCellText(1, 4) == "low"
    assert bridge.table_node_from_rows(scene, rows, name="SBR").GetName() != "SBR"  # unique

    hierarchy = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    folder = hierarchy.CreateFolderItem(hierarchy.GetSceneItemID(), "series")
    reference = bridge.node_from_volume(scene, label_volume(), name="PET")
    hierarchy.CreateItem(folder, reference)
    placed = bridge.table_node_from_rows(scene, rows[:1], reference_node=reference)
    assert placed.GetName() == "PET_table"
    assert hierarchy.GetItemParent(hierarchy.GetItemByDataNode(placed)) == folder
    empty = bridge.table_node_from_rows(scene, [])
    assert empty.GetNumberOfRows() == 0 and empty.GetNumberOfColumns() == 0


def test_table_from_rows_refuses_bad_rows(scene):
    before = scene.GetNodesByClass("vtkMRMLTableNode").GetNumberOfItems()
    with pytest.raises(InputError, match="mapping"):
        bridge.table_node_from_rows(scene, [{"a": 1}, [1, 2]])
    with pytest.raises(InputError, match="sequence of mappings"):
        bridge.table_node_from_rows(scene, {"a": 1})
    with pytest.raises(InputError, match="column names"):
        bridge.table_node_from_rows(scene, [{1: "x"}])
    assert scene.GetNodesByClass("vtkMRMLTableNode").GetNumberOfItems() == before
