"""NoduleSynth logic over MRML nodes: live nodule editing on a CT or radiograph node.

From Slicer's Python console::

    from NoduleSynthLib import NoduleSynthLogic
    logic = NoduleSynthLogic(slicer.mrmlScene)
    out, seg = logic.process(ctNode, ras=(-80, 20, -150), diameter_mm=12, texture="part-solid")

Live editing (what the panel does)::

    logic.start(ctNode)               # output volume node + "Nodules" segmentation beside the input
    logic.update(values, ras)         # rewrites only the nodule's region of the output node
    logic.add()                       # keeps it, adds segment "Nodule 1"
    logic.undo()                      # removes the last kept nodule
    ras = logic.suggestLungPoint(ctNode, diameter_mm=12, point_list=pointNode)  # a lung point; moves the point
    logic.makeTeachingSheet(ctNode, "/tmp/sheet.png", ["diameter_mm=5,10,20", "texture=solid,ggo"])

A centre outside the estimated lung fields (a radiograph's shoulder, a CT's chest wall) is kept, and the info
``update`` returns carries a warning saying how far from the lung it lies.
"""

from __future__ import annotations

import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from medsynth.errors import InputError
from medsynth.nodule import NoduleSession, NoduleSpec
from medsynth_mrml import (
    copy_display,
    node_from_volume,
    remove_node,
    segmentation_node_from_labels,
    update_node_region,
    volume_from_node,
)

#: node references of the module's parameter node (name -> MRML class name)
NODE_REFERENCES = {"inputVolume": "vtkMRMLScalarVolumeNode", "pointList": "vtkMRMLMarkupsFiducialNode"}

NODULE_COLOURS = ((0.95, 0.3, 0.25), (0.25, 0.6, 0.95), (0.3, 0.85, 0.4), (0.95, 0.75, 0.2), (0.75, 0.4, 0.9))


def photometric_of(node: Any) -> str:
    """The photometric interpretation of the node's voxel array: the file's (DICOM attribute) as ITK's reader
    leaves it (ITK turns MONOCHROME1 pixel data into MONOCHROME2 when it reads), else MONOCHROME2."""
    from medsynth.nodule.images import array_photometric

    for key in ("DICOM.PhotometricInterpretation", "MedSynth.PhotometricInterpretation"):
        value = node.GetAttribute(key)
        if value:
            return array_photometric(str(value))
    return "MONOCHROME2"


class NoduleSynthLogic:
    """Nodule insertion on volume nodes of ``scene``; the input node is never modified."""

    def __init__(self, scene: Any) -> None:
        self.scene = scene
        self.session: Optional[NoduleSession] = None
        self.input_node = None
        self.output_node = None
        self.segmentation_node = None
        self.lastUpdateMilliseconds = float("nan")
        self._last_region = None

    # ------------------------------------------------------------------ live session
    def start(self, input_node: Any, photometric: Optional[str] = None, model: Any = None) -> Any:
        """Begin editing ``input_node``: an output volume node (a copy) beside it. Returns the output node.

        ``model``: a shape model other than the shipped one (as :class:`medsynth.nodule.NoduleSession` takes).
        """
        volume = volume_from_node(input_node)
        self.session = NoduleSession(volume, model=model, photometric=photometric or photometric_of(input_node))
        self.input_node = input_node
        self.output_node = node_from_volume(self.scene, self.session.output_volume(), reference_node=input_node,
                                            suffix="nodules")
        copy_display(input_node, self.output_node)
        self.segmentation_node = None
        self._last_region = None
        return self.output_node

    def _require_session(self) -> NoduleSession:
        if self.session is None:
            raise InputError("no nodule session: call start(input_node) first")
        return self.session

    def update(self, values: Dict[str, Any], ras: Optional[Sequence[float]] = None) -> Dict[str, Any]:
        """Recompute the pending nodule and write only the changed region into the output node."""
        session = self._require_session()
        t0 = time.perf_counter()
        result = session.update(NoduleSpec.from_values(values), ras)
        region = session.region_union(self._last_region, result.roi)
        update_node_region(self.output_node, region, session.output[region])
        self._last_region = result.roi
        self.lastUpdateMilliseconds = 1000 * (time.perf_counter() - t0)
        return result.info

    def add(self) -> Optional[Dict[str, Any]]:
        """Keep the pending nodule and add its segment. Returns its info (None when none is pending)."""
        info = self._require_session().commit()
        if info is not None:
            self._last_region = None
            self._refresh_segmentation()
        return info

    def undo(self) -> Optional[Dict[str, Any]]:
        """Remove the last kept nodule (and a pending one) from the output and the segmentation."""
        session = self._require_session()
        info = session.undo()
        # a click, not a slider: refreshing the whole output is cheap enough and always right
        update_node_region(self.output_node, (slice(None),) * 3, session.output)
        self._last_region = None
        self._refresh_segmentation()
        return info

    @property
    def nodules(self) -> List[Dict[str, Any]]:
        return self.session.nodules if self.session is not None else []

    def _refresh_segmentation(self) -> None:
        """One "Nodule N" segment per kept nodule (the segmentation node is rebuilt from the labels)."""
        session = self._require_session()
        old = self.segmentation_node
        segments = {n["label"]: (f"Nodule {n['label']}", NODULE_COLOURS[(n["label"] - 1) % len(NODULE_COLOURS)])
                    for n in session.nodules}
        labels = session.mask_volume()
        name = old.GetName() if old is not None else None
        if old is not None:
            remove_node(self.scene, old)
        if segments:
            self.segmentation_node = segmentation_node_from_labels(
                self.scene, labels, segments,
                reference_node=self.output_node, name=name, suffix=None if name else "segmentation")
        else:
            self.segmentation_node = None

    # ------------------------------------------------------------------ where
    def suggestLungPoint(self, input_node: Any, diameter_mm: float = 10.0, seed: int = 0,
                         point_list: Any = None) -> Tuple[float, float, float]:
        """A RAS point inside the lung (CT) or lung fields (radiograph) of ``input_node`` where a nodule of
        ``diameter_mm`` fits (:func:`medsynth.nodule.candidates.suggest_lung_point`): seed 0 the one nearest the
        middle of the image / of the right lung field, other seeds random ones.  With ``point_list`` (a markups
        point list) its last control point moves there (one is added when it has none).  The lung found by a
        running session on the same node is reused."""
        from medsynth.nodule.candidates import suggest_lung_point

        if input_node is None:
            raise InputError("no input volume: choose a chest CT or radiograph first")
        if self.session is not None and self.input_node is input_node:
            volume, places = self.session.volume, self.session.context.lung_places
        else:
            volume, places = volume_from_node(input_node), None
        ras = suggest_lung_point(volume, diameter_mm, photometric_of(input_node), seed=seed, places=places)
        ras = tuple(float(v) for v in ras)
        if point_list is not None:
            n = point_list.GetNumberOfControlPoints()
            if n == 0:
                point_list.AddControlPoint(*ras)
            else:
                point_list.SetNthControlPointPositionWorld(n - 1, *ras)
        return ras

    # ------------------------------------------------------------------ teaching sheet
    def teachingSheetHost(self, input_node: Any) -> Any:
        """The image a teaching sheet is made on, read from ``input_node`` (a
        :class:`medsynth.nodule.images.Host`): read it on the thread that owns MRML and give it to
        :meth:`makeTeachingSheet` in a worker thread, which then touches no node (the studio does so)."""
        from medsynth.nodule.images import host_from_volume

        if input_node is None:
            raise InputError("no input volume: choose a chest CT or radiograph first")
        return host_from_volume(volume_from_node(input_node), photometric_of(input_node), source=input_node.GetName())

    def makeTeachingSheet(self, input_node: Any, out_path: str, vary: Sequence[str], fixed: Optional[Dict[str, Any]] = None,
                          ras: Optional[Sequence[float]] = None, window: Optional[Sequence[float]] = None,
                          progress: Any = None) -> Dict[str, Any]:
        """Write a teaching sheet (PNG or PDF) of one nodule at several settings on ``input_node``'s image
        (:func:`medsynth.nodule.sheet.nodule_sheet`, as ``medsynth sheet nodule``): ``vary`` holds one or two
        ``"NAME=v1,v2,..."`` texts (columns, then rows), ``fixed`` the other parameters' values (default: their
        defaults), ``ras`` the centre (default: a lung point near the middle). Returns the sheet's facts.
        ``input_node``: a volume node, or the image :meth:`teachingSheetHost` read from one."""
        from medsynth.nodule.images import Host
        from medsynth.nodule.sheet import nodule_sheet, parse_vary
        from medsynth.outputs import OutputPlan

        if input_node is None:
            raise InputError("no input volume: choose a chest CT or radiograph first")
        if not out_path:
            raise InputError("choose where to save the sheet (.png or .pdf)")
        items = [parse_vary(text) for text in vary if str(text).strip()]
        varied = {name for name, _ in items}
        fixed = {k: v for k, v in (fixed or {}).items() if k not in varied}  # the panel's other values
        host = input_node if isinstance(input_node, Host) else self.teachingSheetHost(input_node)
        plan = OutputPlan()
        plan.file(out_path, "sheet", (".png", ".pdf"))
        with plan:
            return nodule_sheet(host, out_path, items, fixed, ras=ras, window=window, progress=progress)

    # ------------------------------------------------------------------ one call
    def process(self, input_node: Any, ras: Sequence[float], photometric: Optional[str] = None,
                **values: Any) -> Tuple[Any, Any]:
        """Blocking: insert one nodule at ``ras``; returns (output volume node, segmentation node)."""
        self.start(input_node, photometric)
        self.update(values, ras)
        self.add()
        return self.output_node, self.segmentation_node
