"""Conversions between engine objects (:class:`medsynth.Volume`, point arrays) and MRML nodes.

Rules kept by every function here:

* The scene is always an argument.  Nothing uses ``slicer.app``, ``slicer.mrmlScene``,
  ``slicer.modules`` or ``slicer.util.loadVolume``/``saveNode``, so the same code runs
  inside Slicer and under the ``slicer-core`` wheel.
* Geometry is the full 4x4 ijk-to-RAS matrix (spacing, origin and directions, either
  handedness).  Voxels are copied, never shared with VTK.
* A node under a *linear* parent transform is read in world coordinates; a non-linear
  parent transform is an :class:`~medsynth.InputError` ("harden the transform first").
  New nodes are created in world coordinates (no parent transform).
* Label values: 0 is background.  When a segmentation is made from labels each segment
  remembers its label value in the segment tag :data:`LABEL_VALUE_TAG`, so exporting it
  back gives the same values.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Set, Tuple, Union

import numpy as np
import slicer
import vtk

from medsynth.errors import InputError, MedSynthError
from medsynth.io import atomic_output, stem_of, suffix_of
from medsynth.volume import Volume

PathLike = Union[str, "os.PathLike[str]"]
Colour = Sequence[float]
SegmentSpec = Mapping[int, Tuple[str, Optional[Colour]]]

SCALAR_VOLUME_CLASS = "vtkMRMLScalarVolumeNode"
LABELMAP_VOLUME_CLASS = "vtkMRMLLabelMapVolumeNode"
VECTOR_VOLUME_CLASS = "vtkMRMLVectorVolumeNode"
SEGMENTATION_CLASS = "vtkMRMLSegmentationNode"
FIDUCIAL_CLASS = "vtkMRMLMarkupsFiducialNode"
ROI_CLASS = "vtkMRMLMarkupsROINode"
STORAGE_CLASS = "vtkMRMLVolumeArchetypeStorageNode"

#: Volume node classes whose voxels :func:`volume_from_node` can read.
SCALAR_CLASSES = (SCALAR_VOLUME_CLASS, LABELMAP_VOLUME_CLASS)
VECTOR_CLASSES = (VECTOR_VOLUME_CLASS,)

#: Segment tag holding the label value a segment was imported from.
LABEL_VALUE_TAG = "MedSynth.LabelValue"

#: Formats the Slicer volume storage node reads / writes here.  Writing is limited to
#: single-file formats so the write can go through a temporary file and one rename.
READ_SUFFIXES = (".nrrd", ".nhdr", ".nii", ".nii.gz", ".mha", ".mhd")
WRITE_SUFFIXES = (".nrrd", ".nii", ".nii.gz", ".mha")

_TEMPORARY_LABELMAP_NAME = "MedSynthTemporaryLabelmap"


# =========================================================================== matrices
def _matrix_to_numpy(matrix: "vtk.vtkMatrix4x4") -> np.ndarray:
    """Copy a vtkMatrix4x4 into a 4x4 float array."""
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)], dtype=float)


def _matrix_to_vtk(array: np.ndarray) -> "vtk.vtkMatrix4x4":
    """Copy a 4x4 array into a new vtkMatrix4x4."""
    matrix = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            matrix.SetElement(r, c, float(array[r, c]))
    return matrix


def _parent_to_world(node: "slicer.vtkMRMLTransformableNode") -> Optional[np.ndarray]:
    """The 4x4 parent-to-world matrix of ``node``, or None when it has no parent transform.

    Raises :class:`InputError` when the transform chain is not linear.
    """
    transform = node.GetParentTransformNode()
    if transform is None:
        return None
    if not transform.IsTransformToWorldLinear():
        raise InputError(
            f"'{node.GetName()}' is under the non-linear transform '{transform.GetName()}'; "
            "harden the transform on the node first"
        )
    matrix = vtk.vtkMatrix4x4()
    transform.GetMatrixTransformToWorld(matrix)
    return _matrix_to_numpy(matrix)


def _node_ijk_to_world(node: "slicer.vtkMRMLVolumeNode") -> np.ndarray:
    """IJK-to-world matrix of a volume node (its IJKToRAS with any linear parent transform applied)."""
    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    ijk_to_ras = _matrix_to_numpy(matrix)
    parent = _parent_to_world(node)
    return ijk_to_ras if parent is None else parent @ ijk_to_ras


# =========================================================================== checks
def _require_node(node: object, what: str) -> None:
    if node is None:
        raise InputError(f"no {what} given (the node is None)")


def _require_volume_node(node: object) -> None:
    """Raise :class:`InputError` unless ``node`` is a volume node with image data."""
    _require_node(node, "volume node")
    if not hasattr(node, "IsA") or not node.IsA("vtkMRMLVolumeNode"):
        cls = node.GetClassName() if hasattr(node, "GetClassName") else type(node).__name__
        raise InputError(f"expected a volume node, got {cls}")
    image = node.GetImageData()
    if image is None or image.GetPointData() is None or image.GetPointData().GetScalars() is None:
        raise InputError(f"volume node '{node.GetName()}' has no image data (load or compute its voxels first)")
    if image.GetNumberOfPoints() == 0:
        raise InputError(f"volume node '{node.GetName()}' has empty image data")


def _require_scene(scene: object) -> None:
    if scene is None or not hasattr(scene, "AddNewNodeByClass"):
        raise InputError("a vtkMRMLScene is required")


def _vtk_compatible_array(array: np.ndarray, name: str) -> np.ndarray:
    """Voxels in a type VTK volume nodes hold.

    bool becomes uint8 and float16 becomes float32.  64-bit integers (rejected by Slicer's
    ``updateVolumeFromArray``) become int32 when every value fits, else :class:`InputError`.
    """
    if array.dtype == np.bool_:
        return array.astype(np.uint8)
    if array.dtype == np.float16:
        return array.astype(np.float32)
    if array.dtype in (np.dtype(np.int64), np.dtype(np.uint64)):
        info = np.iinfo(np.int32)
        lo, hi = int(array.min()), int(array.max())
        if lo < info.min or hi > info.max:
            raise InputError(
                f"'{name}' holds 64-bit integers in [{lo}, {hi}], outside the int32 range that Slicer volumes use"
            )
        return array.astype(np.int32)
    if array.dtype.kind not in "biuf":
        raise InputError(f"'{name}' has voxel type {array.dtype}, which a Slicer volume cannot hold")
    return array


def _label_array(volume: Volume) -> np.ndarray:
    """Integer voxels for a labelmap; float arrays must hold whole numbers."""
    if volume.is_vector:
        raise InputError(f"labels '{volume.name}' must be a scalar volume, got {volume.components} components")
    array = volume.array
    if array.dtype.kind == "f":
        if not np.all(np.isfinite(array)) or not np.all(np.mod(array, 1) == 0):
            raise InputError(f"labels '{volume.name}' must be whole numbers; got non-integer {array.dtype} values")
        lo, hi = float(array.min()), float(array.max())
        array = array.astype(np.int16 if -32768 <= lo and hi <= 32767 else np.int32)
    return _vtk_compatible_array(array, volume.name)


# =========================================================================== names and hierarchy
def _output_name(
    scene: "slicer.vtkMRMLScene",
    name: Optional[str],
    fallback: str,
    reference_node: Optional["slicer.vtkMRMLNode"],
    suffix: Optional[str],
) -> str:
    """A unique node name.

    ``name`` wins; else ``"<reference name>_<suffix>"`` (or ``"<fallback>_<suffix>"``
    without a reference); else ``fallback``.  Made unique with ``scene.GenerateUniqueName``.
    """
    if name:
        base = name
    elif suffix:
        stem = reference_node.GetName() if reference_node is not None and reference_node.GetName() else fallback
        base = f"{stem}_{suffix}"
    else:
        base = fallback
    return scene.GenerateUniqueName(base)


def place_beside(
    scene: "slicer.vtkMRMLScene", node: "slicer.vtkMRMLNode", reference_node: Optional["slicer.vtkMRMLNode"]
) -> None:
    """Give ``node`` the same subject-hierarchy parent (folder, study...) as ``reference_node``.

    Does nothing when there is no reference, no subject hierarchy, or the reference has no
    hierarchy item (under slicer-core items exist only where someone created them).
    """
    if reference_node is None:
        return
    hierarchy = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    if hierarchy is None:
        return
    invalid = slicer.vtkMRMLSubjectHierarchyNode.GetInvalidItemID()
    reference_item = hierarchy.GetItemByDataNode(reference_node)
    if reference_item == invalid:
        return
    parent = hierarchy.GetItemParent(reference_item)
    item = hierarchy.GetItemByDataNode(node)
    if item == invalid:
        hierarchy.CreateItem(parent, node)
    else:
        hierarchy.SetItemParent(item, parent)


def remove_node(scene: "slicer.vtkMRMLScene", node: Optional["slicer.vtkMRMLNode"]) -> None:
    """Remove a node with its display and storage nodes (``scene.RemoveNode`` alone keeps them)."""
    if node is None or node.GetScene() is None:
        return
    dependents = []
    if node.IsA("vtkMRMLDisplayableNode"):
        dependents += [node.GetNthDisplayNode(i) for i in range(node.GetNumberOfDisplayNodes())]
    if node.IsA("vtkMRMLStorableNode"):
        dependents += [node.GetNthStorageNode(i) for i in range(node.GetNumberOfStorageNodes())]
    scene.RemoveNode(node)
    for dependent in dependents:
        if dependent is not None and dependent.GetScene() is not None:
            scene.RemoveNode(dependent)


# =========================================================================== volumes
def volume_from_node(node: "slicer.vtkMRMLVolumeNode", modality: Optional[str] = None) -> Volume:
    """Copy a scalar, labelmap or vector (e.g. RGB) volume node into a :class:`Volume`.

    The matrix is the node's IJKToRAS, composed with its parent transform when that is
    linear.  ``modality`` defaults to the node's ``DICOM.Modality`` attribute.
    Raises :class:`InputError` for None, a node without voxels, an unsupported volume type
    (e.g. tensors) or a non-linear parent transform.
    """
    _require_volume_node(node)
    class_name = node.GetClassName()
    if class_name not in SCALAR_CLASSES + VECTOR_CLASSES:
        raise InputError(
            f"'{node.GetName()}' is a {class_name}; supported: scalar, labelmap and vector volume nodes"
        )
    array = np.array(slicer.util.arrayFromVolume(node), copy=True)
    if class_name in VECTOR_CLASSES and array.ndim == 3:
        array = array[..., np.newaxis]  # one-component vector volume: keep the channel axis
    return Volume(
        array=array,
        ijk_to_ras=_node_ijk_to_world(node),
        name=node.GetName() or "volume",
        modality=modality if modality is not None else (node.GetAttribute("DICOM.Modality") or None),
    )


def _write_into_node(node: "slicer.vtkMRMLVolumeNode", array: np.ndarray, ijk_to_world: np.ndarray) -> None:
    """Set voxels and geometry so that the node's world geometry equals ``ijk_to_world``."""
    parent = _parent_to_world(node)
    local = ijk_to_world if parent is None else np.linalg.inv(parent) @ ijk_to_world
    was_modifying = node.StartModify()
    try:
        node.SetIJKToRASMatrix(_matrix_to_vtk(local))
        slicer.util.updateVolumeFromArray(node, array)
    finally:
        node.EndModify(was_modifying)


def _new_volume_node(
    scene: "slicer.vtkMRMLScene",
    node_class: str,
    array: np.ndarray,
    volume: Volume,
    name: Optional[str],
    reference_node: Optional["slicer.vtkMRMLNode"],
    suffix: Optional[str],
) -> "slicer.vtkMRMLVolumeNode":
    _require_scene(scene)
    node = scene.AddNewNodeByClass(node_class, _output_name(scene, name, volume.name, reference_node, suffix))
    if node is None:
        raise InputError(f"the scene cannot create a {node_class}")
    try:
        _write_into_node(node, array, volume.ijk_to_ras)
        if volume.modality:
            node.SetAttribute("DICOM.Modality", volume.modality)
        node.CreateDefaultDisplayNodes()
        place_beside(scene, node, reference_node)
    except BaseException:
        remove_node(scene, node)
        raise
    return node


def node_from_volume(
    scene: "slicer.vtkMRMLScene",
    volume: Volume,
    name: Optional[str] = None,
    reference_node: Optional["slicer.vtkMRMLNode"] = None,
    suffix: Optional[str] = None,
    node_class: Optional[str] = None,
) -> "slicer.vtkMRMLVolumeNode":
    """Add a new volume node holding ``volume`` to ``scene`` and return it.

    Args:
        name: node name (made unique).  Without it: ``"<reference>_<suffix>"`` when a
            suffix is given, else the volume's name.
        reference_node: the input the volume was computed from; the new node is put in the
            same subject-hierarchy folder/study.
        suffix: appended to the reference (or volume) name when ``name`` is not given.
        node_class: defaults to vtkMRMLVectorVolumeNode for vector volumes and
            vtkMRMLScalarVolumeNode otherwise; vtkMRMLLabelMapVolumeNode is accepted too.
    """
    if node_class is None:
        node_class = VECTOR_VOLUME_CLASS if volume.is_vector else SCALAR_VOLUME_CLASS
    if node_class == LABELMAP_VOLUME_CLASS:
        return labelmap_node_from_volume(scene, volume, name=name, reference_node=reference_node, suffix=suffix)
    if node_class not in (SCALAR_VOLUME_CLASS, VECTOR_VOLUME_CLASS):
        raise InputError(f"node_class must be a scalar, labelmap or vector volume class, got {node_class}")
    if volume.is_vector and node_class != VECTOR_VOLUME_CLASS:
        raise InputError(f"'{volume.name}' has {volume.components} components; it needs a {VECTOR_VOLUME_CLASS}")
    array = _vtk_compatible_array(volume.array, volume.name)
    return _new_volume_node(scene, node_class, array, volume, name, reference_node, suffix)


def labelmap_node_from_volume(
    scene: "slicer.vtkMRMLScene",
    label_volume: Volume,
    name: Optional[str] = None,
    reference_node: Optional["slicer.vtkMRMLNode"] = None,
    suffix: Optional[str] = None,
) -> "slicer.vtkMRMLLabelMapVolumeNode":
    """Add a labelmap volume node holding integer labels (float labels must be whole numbers)."""
    array = _label_array(label_volume)
    return _new_volume_node(scene, LABELMAP_VOLUME_CLASS, array, label_volume, name, reference_node, suffix)


def update_node_from_volume(node: "slicer.vtkMRMLVolumeNode", volume: Volume) -> "slicer.vtkMRMLVolumeNode":
    """Replace the voxels and geometry of an existing volume node (for live previews).

    The node keeps its name, display and hierarchy.  If it is under a linear transform,
    its local matrix is set so that its *world* geometry equals ``volume.ijk_to_ras``.
    """
    _require_node(node, "volume node")
    class_name = node.GetClassName()
    if class_name not in SCALAR_CLASSES + VECTOR_CLASSES:
        raise InputError(f"cannot update a {class_name}; expected a scalar, labelmap or vector volume node")
    if volume.is_vector and class_name not in VECTOR_CLASSES:
        raise InputError(
            f"'{volume.name}' has {volume.components} components but '{node.GetName()}' is a {class_name}"
        )
    if class_name == LABELMAP_VOLUME_CLASS:
        array = _label_array(volume)
    else:
        array = _vtk_compatible_array(volume.array, volume.name)
    _write_into_node(node, array, volume.ijk_to_ras)
    return node


# =========================================================================== segmentations
def copy_display(source_node: "slicer.vtkMRMLVolumeNode", target_node: "slicer.vtkMRMLVolumeNode") -> None:
    """Give ``target_node`` the colour table and window/level of ``source_node`` (fixed, not automatic),
    so a result or a preview looks like its input."""
    src, dst = source_node.GetDisplayNode(), target_node.GetDisplayNode()
    if src is None or dst is None or not hasattr(src, "GetWindow"):
        return
    dst.SetAndObserveColorNodeID(src.GetColorNodeID())
    dst.SetAutoWindowLevel(False)
    dst.SetWindowLevel(src.GetWindow(), src.GetLevel())


def update_node_region(
    node: "slicer.vtkMRMLVolumeNode", region: Tuple[slice, ...], values: np.ndarray
) -> "slicer.vtkMRMLVolumeNode":
    """Write ``values`` into the ``[k, j, i]`` ``region`` of a node's voxels, in place, and signal the change.

    For live previews: only the region is copied, the geometry is untouched.
    """
    _require_volume_node(node)
    array = slicer.util.arrayFromVolume(node)  # a view on the node's voxels
    target = array[tuple(region)]
    if target.shape != np.shape(values):
        raise InputError(f"region {target.shape} and values {np.shape(values)} differ in shape")
    target[...] = values
    slicer.util.arrayFromVolumeModified(node)
    return node


def _segments_logic():
    return slicer.vtkSlicerSegmentationsModuleLogic


def _check_colour(colour: Optional[Colour], label: int) -> Optional[Tuple[float, float, float]]:
    if colour is None:
        return None
    rgb = tuple(float(c) for c in colour)
    if len(rgb) != 3 or not all(0.0 <= c <= 1.0 for c in rgb):
        raise InputError(f"colour of label {label} must be three numbers in 0..1, got {tuple(colour)}")
    return rgb  # type: ignore[return-value]


def _check_segments(segments: Optional[SegmentSpec]) -> Dict[int, Tuple[str, Optional[Tuple[float, float, float]]]]:
    checked: Dict[int, Tuple[str, Optional[Tuple[float, float, float]]]] = {}
    for value, spec in (segments or {}).items():
        label = int(value)
        if label != value or label <= 0:
            raise InputError(f"segment label values must be positive integers (0 is background), got {value!r}")
        try:
            segment_name, colour = spec
        except (TypeError, ValueError):
            raise InputError(f"segment {label} must be given as (name, (r, g, b)), got {spec!r}") from None
        checked[label] = (str(segment_name), _check_colour(colour, label))
    return checked


def segmentation_node_from_labels(
    scene: "slicer.vtkMRMLScene",
    label_volume: Volume,
    segments: Optional[SegmentSpec] = None,
    reference_node: Optional["slicer.vtkMRMLVolumeNode"] = None,
    name: Optional[str] = None,
    suffix: Optional[str] = None,
) -> "slicer.vtkMRMLSegmentationNode":
    """Add a segmentation node with one segment per label value.

    Args:
        label_volume: integer labels, 0 = background.
        segments: ``{label value: (segment name, (r, g, b) in 0..1 or None)}``.
            A listed label with no voxels still gets its (empty) named segment, so the
            output always has the segments the caller promised.  Labels present in the
            volume but not listed keep Slicer's default name (``Label_<value>``) and colour.
        reference_node: the volume whose grid becomes the segmentation's reference
            geometry (else the label volume's grid); also the subject-hierarchy sibling.
        name, suffix: as in :func:`node_from_volume`.

    Each segment gets the tag :data:`LABEL_VALUE_TAG` with its label value, which
    :func:`labels_from_segmentation` uses to give back the same values.
    """
    _require_scene(scene)
    spec = _check_segments(segments)
    array = _label_array(label_volume)
    labelmap = slicer.vtkMRMLLabelMapVolumeNode()  # temporary, never added to the scene
    labelmap.SetName(label_volume.name)
    _write_into_node(labelmap, array, label_volume.ijk_to_ras)

    node = scene.AddNewNodeByClass(
        SEGMENTATION_CLASS, _output_name(scene, name, label_volume.name, reference_node, suffix)
    )
    try:
        node.CreateDefaultDisplayNodes()
        geometry_source = reference_node if reference_node is not None else labelmap
        node.SetReferenceImageGeometryParameterFromVolumeNode(geometry_source)
        if np.any(array != 0) and not _segments_logic().ImportLabelmapToSegmentationNode(labelmap, node):
            raise MedSynthError(f"Slicer could not import labels '{label_volume.name}' into a segmentation")
        segmentation = node.GetSegmentation()
        found = set()
        for index in range(segmentation.GetNumberOfSegments()):
            segment = segmentation.GetNthSegment(index)
            value = int(segment.GetLabelValue())
            found.add(value)
            segment.SetTag(LABEL_VALUE_TAG, str(value))
            if value in spec:
                _name_segment(segment, *spec[value])
        for value in sorted(set(spec) - found):
            segment_name, colour = spec[value]
            if colour is None:
                segment_id = segmentation.AddEmptySegment("", segment_name)
            else:
                segment_id = segmentation.AddEmptySegment("", segment_name, list(colour))
            segmentation.GetSegment(segment_id).SetTag(LABEL_VALUE_TAG, str(value))
        place_beside(scene, node, reference_node)
    except BaseException:
        remove_node(scene, node)
        raise
    return node


def _name_segment(segment: "slicer.vtkSegment", segment_name: str, colour: Optional[Colour]) -> None:
    segment.SetName(segment_name)
    if colour is not None:
        segment.SetColor(*colour)


def _segment_ids(segmentation: "slicer.vtkSegmentation") -> List[str]:
    ids = vtk.vtkStringArray()
    segmentation.GetSegmentIDs(ids)
    return [ids.GetValue(i) for i in range(ids.GetNumberOfValues())]


def _tagged_label_value(segment: "slicer.vtkSegment") -> Optional[int]:
    value = vtk.reference("")
    if not segment.GetTag(LABEL_VALUE_TAG, value):
        return None
    try:
        return int(str(value))
    except ValueError:
        return None


def segment_label_values(segmentation_node: "slicer.vtkMRMLSegmentationNode", segment_ids: Sequence[str]) -> List[int]:
    """The label value each segment exports to: its :data:`LABEL_VALUE_TAG`, else the next unused value."""
    segmentation = segmentation_node.GetSegmentation()
    tagged = [_tagged_label_value(segmentation.GetSegment(sid)) for sid in segment_ids]
    used = {v for v in tagged if v is not None}
    values: List[int] = []
    next_value = 1
    for value in tagged:
        if value is None or value in values:
            while next_value in used:
                next_value += 1
            value = next_value
            used.add(value)
        values.append(value)
    return values


def labels_from_segmentation(
    segmentation_node: "slicer.vtkMRMLSegmentationNode",
    reference_volume_node: Optional["slicer.vtkMRMLVolumeNode"] = None,
    segment_ids: Optional[Sequence[str]] = None,
) -> Volume:
    """Export segments as one label :class:`Volume`.

    The grid is ``reference_volume_node``'s when given, else the segmentation's reference
    geometry.  Each segment gets its :data:`LABEL_VALUE_TAG` value (segments without
    one get the next unused value, in segment order); where segments overlap the later
    one wins.  A temporary labelmap node is used and removed again.
    """
    _require_node(segmentation_node, "segmentation node")
    if not segmentation_node.IsA(SEGMENTATION_CLASS):
        raise InputError(f"expected a segmentation node, got {segmentation_node.GetClassName()}")
    scene = segmentation_node.GetScene()
    if scene is None:
        raise InputError(f"segmentation '{segmentation_node.GetName()}' must be in a scene to export labels")
    if reference_volume_node is not None:
        _require_volume_node(reference_volume_node)
    segmentation = segmentation_node.GetSegmentation()
    ids = list(segment_ids) if segment_ids is not None else _segment_ids(segmentation)
    missing = [sid for sid in ids if segmentation.GetSegment(sid) is None]
    if missing:
        raise InputError(f"segmentation '{segmentation_node.GetName()}' has no segment(s) {missing}")
    name = f"{segmentation_node.GetName()}_labels"
    if not ids:
        if reference_volume_node is None:
            raise InputError(f"segmentation '{segmentation_node.GetName()}' has no segments and no reference grid")
        grid = volume_from_node(reference_volume_node)
        return Volume(np.zeros(grid.array.shape[:3], np.int16), grid.ijk_to_ras, name=name)

    values = segment_label_values(segmentation_node, ids)
    exported = _export_labelmap(scene, segmentation_node, ids, reference_volume_node)
    if int(exported.array.max()) > len(ids) or int(exported.array.min()) < 0:
        raise MedSynthError("Slicer exported label values outside the requested segments")
    dtype = np.int16 if max(values) <= np.iinfo(np.int16).max else np.int32
    lookup = np.zeros(len(ids) + 1, dtype=dtype)
    lookup[1:] = values
    return Volume(lookup[exported.array], exported.ijk_to_ras, name=name)


def _export_labelmap(
    scene: "slicer.vtkMRMLScene",
    segmentation_node: "slicer.vtkMRMLSegmentationNode",
    ids: Sequence[str],
    reference_volume_node: Optional["slicer.vtkMRMLVolumeNode"],
) -> Volume:
    """Export ``ids`` (values 1..N in list order) through a temporary labelmap node in the scene.

    The export also adds a colour table node; every non-singleton node it added is removed afterwards.
    """
    id_array = vtk.vtkStringArray()
    for sid in ids:
        id_array.InsertNextValue(sid)
    existing = _node_ids(scene)
    temporary = scene.AddNewNodeByClass(LABELMAP_VOLUME_CLASS, scene.GenerateUniqueName(_TEMPORARY_LABELMAP_NAME))
    try:
        ok = _segments_logic().ExportSegmentsToLabelmapNode(
            segmentation_node,
            id_array,
            temporary,
            reference_volume_node,
            slicer.vtkSegmentation.EXTENT_REFERENCE_GEOMETRY,
        )
        if not ok or temporary.GetImageData() is None:
            raise MedSynthError(f"Slicer could not export segmentation '{segmentation_node.GetName()}' to labels")
        return volume_from_node(temporary)
    finally:
        remove_node(scene, temporary)
        for node_id in _node_ids(scene) - existing:
            node = scene.GetNodeByID(node_id)
            if node is not None and not node.GetSingletonTag():  # keep singletons (subject hierarchy...)
                scene.RemoveNode(node)


def _node_ids(scene: "slicer.vtkMRMLScene") -> Set[str]:
    """IDs of all nodes now in the scene."""
    return {scene.GetNthNode(i).GetID() for i in range(scene.GetNumberOfNodes())}


# =========================================================================== markups
def _require_markups(node: object) -> None:
    _require_node(node, "markups node")
    if not hasattr(node, "IsA") or not node.IsA("vtkMRMLMarkupsNode"):
        raise InputError(f"expected a markups node, got {node.GetClassName()}")


def points_from_markups(markups_node: "slicer.vtkMRMLMarkupsNode") -> np.ndarray:
    """Control point positions as an Nx3 float array of world RAS coordinates (N may be 0)."""
    _require_markups(markups_node)
    count = markups_node.GetNumberOfControlPoints()
    points = np.zeros((count, 3), dtype=float)
    position = [0.0, 0.0, 0.0]
    for index in range(count):
        markups_node.GetNthControlPointPositionWorld(index, position)
        points[index] = position
    return points


def control_point_labels(markups_node: "slicer.vtkMRMLMarkupsNode") -> List[str]:
    """Control point labels, in the order of :func:`points_from_markups`."""
    _require_markups(markups_node)
    return [markups_node.GetNthControlPointLabel(i) for i in range(markups_node.GetNumberOfControlPoints())]


def _check_points(points: np.ndarray) -> np.ndarray:
    array = np.asarray(points, dtype=float)
    if array.ndim == 1 and array.size == 3:
        array = array.reshape(1, 3)
    if array.ndim != 2 or array.shape[1] != 3:
        raise InputError(f"points must be an Nx3 array of RAS coordinates, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise InputError("points must be finite (found NaN or Inf)")
    return array


def markups_from_points(
    scene: "slicer.vtkMRMLScene",
    points: np.ndarray,
    name: str = "points",
    labels: Optional[Sequence[str]] = None,
    reference_node: Optional["slicer.vtkMRMLNode"] = None,
    node_class: str = FIDUCIAL_CLASS,
) -> "slicer.vtkMRMLMarkupsNode":
    """Add a markups node (point list by default) with one control point per RAS row of ``points``."""
    _require_scene(scene)
    array = _check_points(points)
    if labels is not None and len(labels) != len(array):
        raise InputError(f"{len(labels)} labels given for {len(array)} points")
    node = scene.AddNewNodeByClass(node_class, scene.GenerateUniqueName(name))
    if node is None or not node.IsA("vtkMRMLMarkupsNode"):
        remove_node(scene, node)
        raise InputError(f"{node_class} is not a markups node class")
    try:
        node.CreateDefaultDisplayNodes()
        was_modifying = node.StartModify()
        try:
            for index, point in enumerate(array):
                label = labels[index] if labels is not None else ""
                node.AddControlPoint(float(point[0]), float(point[1]), float(point[2]), str(label))
        finally:
            node.EndModify(was_modifying)
        place_beside(scene, node, reference_node)
    except BaseException:
        remove_node(scene, node)
        raise
    return node


def roi_from_bounds(
    scene: "slicer.vtkMRMLScene",
    ras_min: Sequence[float],
    ras_max: Sequence[float],
    name: str = "box",
    reference_node: Optional["slicer.vtkMRMLNode"] = None,
) -> "slicer.vtkMRMLMarkupsROINode":
    """Add an axis-aligned ROI (box) node spanning the RAS corners ``ras_min``..``ras_max``."""
    _require_scene(scene)
    low, high = _check_points(ras_min)[0], _check_points(ras_max)[0]
    if np.any(high < low):
        raise InputError(f"box corners must satisfy min <= max, got {low.tolist()} and {high.tolist()}")
    node = scene.AddNewNodeByClass(ROI_CLASS, scene.GenerateUniqueName(name))
    try:
        node.CreateDefaultDisplayNodes()
        node.SetCenter(*[float(c) for c in (low + high) / 2.0])
        node.SetSize(*[float(s) for s in high - low])
        place_beside(scene, node, reference_node)
    except BaseException:
        remove_node(scene, node)
        raise
    return node


# =========================================================================== tables
TABLE_CLASS = "vtkMRMLTableNode"


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def table_node_from_rows(
    scene: "slicer.vtkMRMLScene",
    rows: Sequence[Mapping[str, object]],
    name: Optional[str] = None,
    reference_node: Optional["slicer.vtkMRMLNode"] = None,
) -> "slicer.vtkMRMLTableNode":
    """Add a table node with one row per mapping of ``rows`` (column name -> value).

    Columns are the keys in order of first appearance.  A column whose values are all numbers
    (``None`` counts as missing) is a double column, missing values NaN; any other column is text
    (``None`` -> empty).  ``name`` defaults to ``"<reference name>_table"`` (or ``"table"``), made
    unique; the node is put beside ``reference_node`` in the subject hierarchy.
    """
    _require_scene(scene)
    if isinstance(rows, Mapping) or isinstance(rows, (str, bytes)):
        raise InputError("rows must be a sequence of mappings (column name -> value), one per row")
    rows = list(rows)
    columns: List[str] = []
    for index, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise InputError(f"row {index} is a {type(row).__name__}, not a mapping (column name -> value)")
        for key in row:
            if not isinstance(key, str) or not key:
                raise InputError(f"row {index}: column names must be non-empty strings, got {key!r}")
            if key not in columns:
                columns.append(key)
    table = vtk.vtkTable()
    for column in columns:
        values = [row.get(column) for row in rows]
        numeric = all(v is None or _is_number(v) for v in values) and any(v is not None for v in values)
        array = vtk.vtkDoubleArray() if numeric else vtk.vtkStringArray()
        array.SetName(column)
        array.SetNumberOfValues(len(rows))
        for r, value in enumerate(values):
            if numeric:
                array.SetValue(r, float("nan") if value is None else float(value))
            else:
                array.SetValue(r, "" if value is None else str(value))
        table.AddColumn(array)
    if not name:
        stem = reference_node.GetName() if reference_node is not None and reference_node.GetName() else ""
        name = f"{stem}_table" if stem else "table"
    node = scene.AddNewNodeByClass(TABLE_CLASS, scene.GenerateUniqueName(name))
    try:
        node.SetAndObserveTable(table)
        node.SetUseColumnNameAsColumnHeader(True)
        place_beside(scene, node, reference_node)
    except BaseException:
        remove_node(scene, node)
        raise
    return node


# =========================================================================== files
def _vector_file(path: Path) -> bool:
    """Whether the image file has more than one component (peeks at the header only)."""
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        raise InputError(f"cannot read the header of {path}") from None
    return reader.GetNumberOfComponents() > 1


def read_node(
    scene: "slicer.vtkMRMLScene",
    path: PathLike,
    name: Optional[str] = None,
    node_class: Optional[str] = None,
) -> "slicer.vtkMRMLVolumeNode":
    """Read a volume file with Slicer's volume storage node into a new node of ``scene``.

    ``node_class`` defaults to a vector volume node for multi-component files and a
    scalar volume node otherwise (pass vtkMRMLLabelMapVolumeNode for labels).  The node
    keeps its storage node, as if Slicer had loaded it.  Nothing is left in the scene when
    reading fails.
    """
    _require_scene(scene)
    target = Path(os.fspath(path)).absolute()
    if not target.is_file():
        raise InputError(f"input not found: {target}")
    if suffix_of(target) not in READ_SUFFIXES:
        suffix = suffix_of(target) or target.name
        raise InputError(f"unsupported format '{suffix}'; supported: {', '.join(READ_SUFFIXES)}")
    if node_class is None:
        node_class = VECTOR_VOLUME_CLASS if _vector_file(target) else SCALAR_VOLUME_CLASS
    if node_class not in SCALAR_CLASSES + VECTOR_CLASSES:
        raise InputError(f"node_class must be a scalar, labelmap or vector volume class, got {node_class}")
    node = scene.AddNewNodeByClass(node_class, scene.GenerateUniqueName(name or stem_of(target)))
    storage = scene.AddNewNodeByClass(STORAGE_CLASS)
    try:
        storage.SetFileName(str(target))
        node.SetAndObserveStorageNodeID(storage.GetID())
        if not storage.ReadData(node) or node.GetImageData() is None:
            raise InputError(f"Slicer could not read {target} as a {node_class}")
        node.CreateDefaultDisplayNodes()
    except BaseException:
        remove_node(scene, node)
        if storage.GetScene() is not None:
            scene.RemoveNode(storage)
        raise
    return node


def write_node(node: "slicer.vtkMRMLVolumeNode", path: PathLike, compress: bool = True) -> Path:
    """Write a volume node with Slicer's volume storage node; returns the path written.

    The file holds the node's own IJKToRAS geometry (a parent transform is not applied,
    as in Slicer).  Writing goes to a temporary file renamed into place, so a failed write
    leaves nothing.  The node's own storage nodes are not changed.
    """
    _require_volume_node(node)
    target = Path(os.fspath(path))
    suffix = suffix_of(target)
    if suffix not in WRITE_SUFFIXES:
        raise InputError(f"cannot write format '{suffix or target.name}'; supported: {', '.join(WRITE_SUFFIXES)}")
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    storage.SetUseCompression(bool(compress))
    with atomic_output(target) as temporary:
        storage.SetFileName(str(temporary))
        if not storage.WriteData(node):
            raise MedSynthError(f"Slicer could not write '{node.GetName()}' to {target}")
    return target
