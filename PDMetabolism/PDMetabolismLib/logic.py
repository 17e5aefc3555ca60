"""PDMetabolism logic over MRML nodes: FDG volume node -> MetaAD anomaly map nodes (absolute, shown as a coloured
foreground with a threshold; signed) + regional table node; jump the slice views to a region of the table.

From Slicer's Python console::

    from PDMetabolismLib import PDMetabolismLogic
    logic = PDMetabolismLogic(slicer.mrmlScene)
    mapNode, signedNode, tableNode = logic.detectAnomalies(fdgNode)
    logic.setMapThreshold(mapNode, 8.0)          # % of the brain mean
    logic.jumpToRegion(tableNode, 0)             # slice views centred on the first region's centroid

``compute`` (engine only, worker thread, progress and cancel) and ``finish`` (adds the nodes; main thread) are
separate; nothing is added to the scene when the computation fails or is cancelled.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from medsynth.params import Param, validate
from medsynth.progress import CancelToken, ProgressCallback
from medsynth.volume import Volume
from medsynth_mrml import node_from_volume, remove_node, table_node_from_rows, volume_from_node

PARAMS = (
    Param("space", str, "auto", "Input space", choices=("auto", "mni", "native"),
          help="auto: as is on the MNI 2 mm atlas grid, else registered to the FDG template"),
    Param("threshold", float, 5.0, "Map threshold", minimum=0.0, maximum=30.0, step=0.5, unit="%", live=True,
          help="voxels of the absolute anomaly map below this (% of the brain mean) are not shown"),
    Param("opacity", float, 0.6, "Map opacity", minimum=0.0, maximum=1.0, step=0.05, live=True,
          help="opacity of the anomaly map over the FDG"),
)
NODE_REFERENCES = {"fdgVolume": "vtkMRMLScalarVolumeNode"}
NOTE = "MetaAD anomaly map from a model trained on simulated PET only (docs/metaad.md); not for clinical use"
#: colour maps tried in order (the first present in the scene is used)
ABS_COLOURS = ("vtkMRMLColorTableNodeFileInferno.txt", "vtkMRMLPETProceduralColorNodePET-Heat",
               "vtkMRMLColorTableNodeFileHotToColdRainbow.txt", "vtkMRMLColorTableNodeRed")
SIGNED_COLOURS = ("vtkMRMLColorTableNodeFileColdToHotRainbow.txt", "vtkMRMLColorTableNodeFileDivergingBlueRed.txt",
                  "vtkMRMLColorTableNodeRainbow")
TABLE_COLUMNS = ("region", "z", "residual_percent", "nc_mean_percent", "nc_sd_percent", "direction", "abnormal",
                 "R", "A", "S")


def table_rows(result: Any) -> List[Dict[str, Any]]:
    """Regional table rows sorted by |z| (largest first), with the centroid in the input's RAS space."""
    rows = []
    for r in sorted(result.table, key=lambda r: -abs(r["z"])):
        rows.append({"region": r["region"], "z": r["z"], "residual_percent": r["residual_percent"],
                     "nc_mean_percent": r["nc_mean_percent"], "nc_sd_percent": r["nc_sd_percent"],
                     "direction": r["direction"], "abnormal": "yes" if r["abnormal_abs_z_gt_2"] else "no",
                     "R": r["centroid_ras"][0], "A": r["centroid_ras"][1], "S": r["centroid_ras"][2]})
    return rows


class PDMetabolismLogic:
    """MetaAD anomaly detection on volume nodes of ``scene``."""

    def __init__(self, scene: Any) -> None:
        self.scene = scene

    def inputVolume(self, node: Any) -> Volume:
        from medsynth.pet.checks import check_pet_volume

        volume = volume_from_node(node)
        check_pet_volume(volume, "FDG")
        return volume

    @staticmethod
    def compute(volume: Volume, values: Optional[Dict[str, Any]] = None, progress: Optional[ProgressCallback] = None,
                cancel: Optional[CancelToken] = None) -> Any:
        """Engine step (worker thread): :class:`medsynth.metaad.detect.AnomalyResult`."""
        from medsynth.metaad.detect import detect

        v = validate(PARAMS, values or {})
        return detect(volume, v["space"], progress, cancel)

    def finish(self, input_node: Any, result: Any, values: Optional[Dict[str, Any]] = None) -> Tuple[Any, Any, Any]:
        """``(absolute map node, signed map node, table node)`` beside the input; the absolute map is set up for
        display as a coloured, thresholded foreground with a colour legend."""
        v = validate(PARAMS, values or {})
        stem = input_node.GetName() if input_node is not None and input_node.GetName() else "FDG"
        added: List[Any] = []
        try:
            abs_node = node_from_volume(self.scene, result.absolute, reference_node=input_node, name=f"{stem}_anomaly")
            added.append(abs_node)
            signed_node = node_from_volume(self.scene, result.signed, reference_node=input_node,
                                           name=f"{stem}_anomaly_signed")
            added.append(signed_node)
            table = table_node_from_rows(self.scene, table_rows(result), name=f"{stem}_anomaly_regions",
                                         reference_node=input_node)
            added.append(table)
            rep = result.report()
            s = rep["subject_score"]
            for node in (abs_node, signed_node, table):
                node.SetAttribute("MedSynth.Note", NOTE)
                node.SetAttribute("MedSynth.PDMetabolism.score", json.dumps(s))
            abs_node.SetAttribute("MedSynth.PDMetabolism.map", "|FDG - healthy reconstruction|, % of brain mean")
            signed_node.SetAttribute("MedSynth.PDMetabolism.map", rep["map"])
            table.SetAttribute("MedSynth.PDMetabolism.definition",
                               "z = (mean signed residual in region - NC mean) / NC SD; R/A/S = region centroid (RAS)")
            self._abs_display(abs_node, result.absolute.array, v["threshold"])
            self._signed_display(signed_node, result.signed.array)
            legend = self._legend(abs_node, "Anomaly |%|")
            if legend is not None:
                added.append(legend)
        except BaseException:
            for n in reversed(added):
                remove_node(self.scene, n)
            raise
        return abs_node, signed_node, table

    def detectAnomalies(self, input_node: Any, space: str = "auto", threshold: float = 5.0,
                        progress: Optional[ProgressCallback] = None,
                        cancel: Optional[CancelToken] = None) -> Tuple[Any, Any, Any]:
        """Blocking: MetaAD of an FDG node (the input node is never modified)."""
        values = {"space": space, "threshold": threshold}
        result = self.compute(self.inputVolume(input_node), values, progress, cancel)
        if cancel is not None:
            cancel.raise_if_cancelled()
        return self.finish(input_node, result, values)

    # ------------------------------------------------------------------ display
    def _colour(self, ids: Tuple[str, ...]) -> Optional[str]:
        for c in ids:
            if self.scene.GetNodeByID(c) is not None:
                return c
        return None

    def _abs_display(self, node: Any, array: np.ndarray, threshold: float) -> None:
        d = node.GetDisplayNode()
        if d is None:
            return
        c = self._colour(ABS_COLOURS)
        if c:
            d.SetAndObserveColorNodeID(c)
        a = np.asarray(array)
        hi = float(np.percentile(a[a > 0], 99.5)) if np.any(a > 0) else 1.0
        d.AutoWindowLevelOff()
        d.SetWindowLevelMinMax(0.0, max(hi, 2.0 * threshold, 1.0))
        self.setMapThreshold(node, threshold)

    def _signed_display(self, node: Any, array: np.ndarray) -> None:
        d = node.GetDisplayNode()
        if d is None:
            return
        c = self._colour(SIGNED_COLOURS)
        if c:
            d.SetAndObserveColorNodeID(c)
        a = np.abs(np.asarray(array))
        hi = float(np.percentile(a[a > 0], 99.5)) if np.any(a > 0) else 1.0
        d.AutoWindowLevelOff()
        d.SetWindowLevelMinMax(-hi, hi)  # symmetric: 0 in the middle of the colour map

    def setMapThreshold(self, map_node: Any, threshold: float) -> None:
        """Hide voxels of the absolute map below ``threshold`` (% of brain mean)."""
        d = map_node.GetDisplayNode()
        if d is None:
            return
        d.SetLowerThreshold(float(threshold))
        d.SetUpperThreshold(1e6)
        d.SetApplyThreshold(1)
        map_node.SetAttribute("MedSynth.PDMetabolism.threshold", str(float(threshold)))

    def _legend(self, node: Any, title: str) -> Any:
        import slicer

        if node.GetDisplayNode() is None or not node.GetDisplayNode().GetColorNodeID():
            return None  # a legend needs the map's colour table (a bare MRML scene may have none)
        modules = getattr(slicer, "modules", None)
        colors = getattr(modules, "colors", None) if modules is not None else None
        if colors is not None and hasattr(colors.logic(), "AddDefaultColorLegendDisplayNode"):
            legend = colors.logic().AddDefaultColorLegendDisplayNode(node)  # in Slicer: the standard legend
        else:  # MRML only (slicer-core): register the legend class where the Colors module logic did not
            cls = getattr(slicer, "vtkMRMLColorLegendDisplayNode", None)
            if cls is None:
                return None
            if not self.scene.IsNodeClassRegistered("vtkMRMLColorLegendDisplayNode"):
                self.scene.RegisterNodeClass(cls())
            legend = self.scene.AddNewNodeByClass("vtkMRMLColorLegendDisplayNode", f"{node.GetName()}_legend")
        if legend is None:
            return None
        legend.SetAndObservePrimaryDisplayNode(node.GetDisplayNode())
        legend.SetTitleText(title)
        legend.SetVisibility(True)
        node.AddAndObserveDisplayNodeID(legend.GetID())
        return legend

    # ------------------------------------------------------------------ navigation
    @staticmethod
    def regionCentroid(table_node: Any, row: int) -> List[float]:
        t = table_node.GetTable()
        cols = [t.GetColumnName(c) for c in range(t.GetNumberOfColumns())]
        return [float(t.GetValue(int(row), cols.index(k)).ToDouble()) for k in ("R", "A", "S")]

    def jumpToRegion(self, table_node: Any, row: int) -> List[float]:
        """Centre every slice view of the scene on the centroid (RAS) of the table's ``row``; returns it."""
        ras = self.regionCentroid(table_node, row)
        for i in range(self.scene.GetNumberOfNodesByClass("vtkMRMLSliceNode")):
            self.scene.GetNthNodeByClass(i, "vtkMRMLSliceNode").JumpSliceByCentering(*ras)
        return ras


__all__ = ["NODE_REFERENCES", "PARAMS", "PDMetabolismLogic", "table_rows"]
