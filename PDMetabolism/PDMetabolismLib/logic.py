"""PDMetabolism logic over MRML nodes: FDG volume node -> MetaAD anomaly map nodes (the regional-SD z map, shown as a
diverging, thresholded foreground with a colour legend; absolute and signed maps in % of the brain mean) + regional
table node; the views set up for reading (slice layers, a layout with the table, 3D); jump to a region of the table.

From Slicer's Python console::

    from PDMetabolismLib import PDMetabolismLogic
    logic = PDMetabolismLogic(slicer.mrmlScene)
    nodes = logic.detectAnomalies(fdgNode)       # .z, .absolute, .signed, .table; shown in the views
    logic.setZThreshold(nodes.z, 3.0)            # |z| below 3 hidden
    logic.jumpToRegion(nodes.table, 0)           # slice views centred on the first region's centroid

``compute`` (engine only, worker thread, progress and cancel) and ``finish`` (adds the nodes; main thread) are
separate; nothing is added to the scene when the computation fails or is cancelled. ``showResults`` sets up the views
through the scene's own nodes (slice composite nodes, layout node, selection node, slice nodes) and, where one is
given or ``slicer.modules`` has it, the Volume Rendering module logic; never ``slicer.app``.

The z map's display: blue = hypometabolism, red = hypermetabolism, symmetric window +-4 z (wider when the threshold
is 3 z or more: +-(threshold + 1)). A scalar volume display node's threshold keeps one range [lower, upper] visible,
so it cannot hide the band -t < z < t between two visible tails; the band is hidden instead by the map's own colour
table (one per z map, ``<FDG>_anomaly_z_colours``): its entries for |z| < t are transparent, rebuilt when the
threshold changes; the display node's threshold is off. The slice pipeline maps the window onto 256 levels, so the
band's edge is exact to one level (2 x window / 255 = 0.03 z at +-4); a voxel with |z| >= t is never hidden.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

import numpy as np

from medsynth.metaad.params import METAAD_PARAMS
from medsynth.params import validate
from medsynth.progress import CancelToken, ProgressCallback
from medsynth.volume import Volume
from medsynth_mrml import node_from_volume, remove_node, table_node_from_rows, volume_from_node

log = logging.getLogger("medsynth.pdmetabolism")

PARAMS = METAAD_PARAMS  # declared once in medsynth.metaad.params
NODE_REFERENCES = {"fdgVolume": "vtkMRMLScalarVolumeNode"}
NOTE = "MetaAD anomaly map from a model trained on simulated PET only (docs/metaad.md); not for clinical use"
#: colour maps of the absolute map, tried in order (the first present in the scene is used)
ABS_COLOURS = ("vtkMRMLColorTableNodeFileInferno.txt", "vtkMRMLPETProceduralColorNodePET-Heat",
               "vtkMRMLColorTableNodeFileHotToColdRainbow.txt", "vtkMRMLColorTableNodeRed")
SIGNED_COLOURS = ("vtkMRMLColorTableNodeFileColdToHotRainbow.txt", "vtkMRMLColorTableNodeFileDivergingBlueRed.txt",
                  "vtkMRMLColorTableNodeRainbow")
#: the absolute map (% of brain mean; not the foreground any more) keeps its former display threshold
ABS_THRESHOLD = 5.0
#: half-width of the z map's symmetric window (z); +-(threshold + 1) when that is wider
Z_WINDOW = 4.0
Z_LEGEND_TITLE = "z (regional NC SD); blue hypo, red hyper"
#: diverging colours of the z map: (z / window, RGB); blue = hypometabolism, white 0, red = hypermetabolism
#: (ColorBrewer RdBu, reversed)
Z_COLOURS = ((-1.0, (0.020, 0.188, 0.380)), (-0.5, (0.263, 0.576, 0.765)), (0.0, (0.969, 0.969, 0.969)),
             (0.5, (0.839, 0.376, 0.302)), (1.0, (0.404, 0.000, 0.122)))
#: levels of the slice pipeline (window -> 0..255) and so entries of the z colour table
Z_LEVELS = 256
LAYOUT_WITH_TABLE = "SlicerLayoutFourUpTableView"  # axial, 3D, coronal, sagittal + the table below
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


def z_window(threshold: float) -> float:
    """Half-width of the z map's symmetric window for a threshold (z)."""
    return max(Z_WINDOW, float(threshold) + 1.0)


def z_colour(fraction: float) -> Tuple[float, float, float]:
    """RGB of the diverging map at ``z / window`` (clamped to -1..1)."""
    f = min(max(float(fraction), -1.0), 1.0)
    for (x0, c0), (x1, c1) in zip(Z_COLOURS[:-1], Z_COLOURS[1:]):
        if f <= x1:
            w = (f - x0) / (x1 - x0)
            return tuple(float(a + w * (b - a)) for a, b in zip(c0, c1))  # type: ignore[return-value]
    return Z_COLOURS[-1][1]


def z_colour_entries(threshold: float, window: Optional[float] = None) -> List[Tuple[float, float, float, float]]:
    """RGBA of the :data:`Z_LEVELS` entries of a z map's colour table.

    The slice pipeline maps a value ``v`` to the level ``floor((v + W) * 255 / (2 W))`` (clamped to 0..255) and the
    level to the entry of the same index; entry ``b`` thus holds ``[-W + b s, -W + (b + 1) s)`` with ``s = 2 W / 255``
    (entry 0 also everything below -W, entry 255 everything from W). An entry is transparent when all its values
    have |z| < threshold."""
    t = float(threshold)
    w = z_window(t) if window is None else float(window)
    step = 2.0 * w / 255.0
    out = []
    for b in range(Z_LEVELS):
        lo = -np.inf if b == 0 else -w + b * step
        hi = np.inf if b == Z_LEVELS - 1 else -w + (b + 1) * step
        centre = -w + (b + 0.5) * step
        visible = hi > t or lo <= -t
        out.append(z_colour(centre / w) + (1.0 if visible else 0.0,))
    return out


def z_legend(threshold: float) -> Dict[str, Any]:
    """What a face shows as the z map's legend: title, window, threshold and colour stops (value, ``#rrggbb``) of
    the visible tails (the band |z| < threshold is hidden)."""
    t = float(threshold)
    w = z_window(t)

    def hexof(v: float) -> str:
        return "#" + "".join(f"{int(round(255 * c)):02x}" for c in z_colour(v / w))

    tail = [x * w for x, _ in Z_COLOURS]
    neg = [-w] + [v for v in tail if -w < v < -t] + [-t]
    pos = [t] + [v for v in tail if t < v < w] + [w]
    return {"title": Z_LEGEND_TITLE, "min": -w, "max": w, "threshold": t,
            "hypo": [(round(v, 3), hexof(v)) for v in neg], "hyper": [(round(v, 3), hexof(v)) for v in pos]}


class AnomalyNodes(NamedTuple):
    """The nodes one detection adds: the z map (the foreground), the absolute and signed maps, the regional table."""

    z: Any
    absolute: Any
    signed: Any
    table: Any


class PDMetabolismLogic:
    """MetaAD anomaly detection on volume nodes of ``scene``.

    ``volumeRenderingLogic``: a Volume Rendering module logic for the 3D view (the studio passes its own); None:
    ``slicer.modules.volumerendering`` where it exists, else the slice planes are shown in 3D.
    """

    def __init__(self, scene: Any, volumeRenderingLogic: Any = None) -> None:
        self.scene = scene
        self.volumeRenderingLogic = volumeRenderingLogic

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

    def finish(self, input_node: Any, result: Any, values: Optional[Dict[str, Any]] = None) -> AnomalyNodes:
        """Add the nodes beside the input (:class:`AnomalyNodes`): the z map set up for display as a diverging,
        thresholded foreground with a colour legend (its own colour table), the absolute map (% of the brain mean,
        Inferno, threshold :data:`ABS_THRESHOLD`), the signed map and the regional table. Views: :meth:`showResults`."""
        v = validate(PARAMS, values or {})
        stem = input_node.GetName() if input_node is not None and input_node.GetName() else "FDG"
        if getattr(result, "z", None) is None:
            raise ValueError("the MetaAD result has no z map (an engine older than this module?)")
        added: List[Any] = []
        try:
            abs_node = node_from_volume(self.scene, result.absolute, reference_node=input_node, name=f"{stem}_anomaly")
            added.append(abs_node)
            signed_node = node_from_volume(self.scene, result.signed, reference_node=input_node,
                                           name=f"{stem}_anomaly_signed")
            added.append(signed_node)
            z_node = node_from_volume(self.scene, result.z, reference_node=input_node, name=f"{stem}_anomaly_z")
            added.append(z_node)
            table = table_node_from_rows(self.scene, table_rows(result), name=f"{stem}_anomaly_regions",
                                         reference_node=input_node)
            added.append(table)
            rep = result.report()
            s = rep["subject_score"]
            for node in (z_node, abs_node, signed_node, table):
                node.SetAttribute("MedSynth.Note", NOTE)
                node.SetAttribute("MedSynth.PDMetabolism.score", json.dumps(s))
            abs_node.SetAttribute("MedSynth.PDMetabolism.map", "|FDG - healthy reconstruction|, % of brain mean")
            signed_node.SetAttribute("MedSynth.PDMetabolism.map", rep["map"])
            z_node.SetAttribute("MedSynth.PDMetabolism.map", (rep.get("z_map") or {}).get("definition", ""))
            table.SetAttribute("MedSynth.PDMetabolism.definition",
                               "z = (mean signed residual in region - NC mean) / NC SD; R/A/S = region centroid (RAS)")
            self._abs_display(abs_node, result.absolute.array, ABS_THRESHOLD)
            self._signed_display(signed_node, result.signed.array)
            colours = self._z_display(z_node)
            if colours is not None:
                added.append(colours)
            self.setZThreshold(z_node, v["z_threshold"])
            legend = self._legend(z_node, Z_LEGEND_TITLE)
            if legend is not None:
                added.append(legend)
        except BaseException:
            for n in reversed(added):
                remove_node(self.scene, n)
            raise
        return AnomalyNodes(z_node, abs_node, signed_node, table)

    def detectAnomalies(self, input_node: Any, space: str = "auto", z_threshold: float = 2.0,
                        progress: Optional[ProgressCallback] = None, cancel: Optional[CancelToken] = None,
                        opacity: float = 0.6, show: bool = True) -> AnomalyNodes:
        """Blocking: MetaAD of an FDG node (the input node is never modified); ``show``: :meth:`showResults`."""
        values = {"space": space, "z_threshold": z_threshold, "opacity": opacity}
        result = self.compute(self.inputVolume(input_node), values, progress, cancel)
        if cancel is not None:
            cancel.raise_if_cancelled()
        nodes = self.finish(input_node, result, values)
        if show:
            self.showResults(input_node, nodes, values)
        return nodes

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

    def _z_display(self, node: Any) -> Any:
        """The z map's own colour table (diverging, :data:`Z_LEVELS` entries; filled by :meth:`setZThreshold`)."""
        d = node.GetDisplayNode()
        if d is None:
            return None
        colours = self.scene.AddNewNodeByClass("vtkMRMLColorTableNode", f"{node.GetName()}_colours")
        colours.SetTypeToUser()
        colours.SetNumberOfColors(Z_LEVELS)
        colours.SetAttribute("MedSynth.PDMetabolism.zColours", "1")
        colours.SetAttribute("Category", "MedSynth")
        d.SetAndObserveColorNodeID(colours.GetID())
        d.AutoWindowLevelOff()
        d.SetApplyThreshold(0)  # the colour table hides |z| < threshold (module docstring)
        return colours

    def zColourNode(self, z_node: Any) -> Any:
        d = z_node.GetDisplayNode() if z_node is not None else None
        c = self.scene.GetNodeByID(d.GetColorNodeID()) if d is not None and d.GetColorNodeID() else None
        return c if c is not None and c.GetAttribute("MedSynth.PDMetabolism.zColours") else None

    def setZThreshold(self, z_node: Any, threshold: float) -> None:
        """Hide the voxels of the z map with |z| < ``threshold`` (slice views through its colour table; the 3D
        volume rendering through its opacity), window +-:func:`z_window`."""
        t = next(p for p in PARAMS if p.name == "z_threshold").check(threshold)
        w = z_window(t)
        d = z_node.GetDisplayNode()
        colours = self.zColourNode(z_node)
        if d is not None:
            if colours is not None:
                was = colours.StartModify()
                for i, (r, g, b, a) in enumerate(z_colour_entries(t, w)):
                    colours.SetColor(i, r, g, b, a)
                colours.EndModify(was)
            d.AutoWindowLevelOff()
            d.SetWindowLevelMinMax(-w, w)
        for vr in self._vr_display_nodes(z_node):
            self._vr_transfer(vr, t)
        z_node.SetAttribute("MedSynth.PDMetabolism.threshold", str(t))

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

    # ------------------------------------------------------------------ views
    def _nodes(self, cls: str) -> List[Any]:
        return [self.scene.GetNthNodeByClass(i, cls) for i in range(self.scene.GetNumberOfNodesByClass(cls))]

    def showResults(self, input_node: Any, nodes: AnomalyNodes, values: Optional[Dict[str, Any]] = None) -> str:
        """Set the views up for reading: the FDG as the background and the z map as the foreground of every slice
        view (opacity), the table in a layout with a table view (:meth:`showTable`), the 3D view (:meth:`show3D`).
        Returns how the 3D view shows the map ("volume rendering", "slice planes" or "" when the scene has no
        view)."""
        v = validate(PARAMS, values or {})
        for c in self._nodes("vtkMRMLSliceCompositeNode"):
            c.SetBackgroundVolumeID(input_node.GetID() if input_node is not None else None)
            c.SetForegroundVolumeID(nodes.z.GetID())
            c.SetForegroundOpacity(float(v["opacity"]))
        self.showTable(nodes.table)
        return self.show3D(nodes.z, v["z_threshold"])

    def setMapOpacity(self, opacity: float) -> None:
        """Foreground opacity of every slice view."""
        o = next(p for p in PARAMS if p.name == "opacity").check(opacity)
        for c in self._nodes("vtkMRMLSliceCompositeNode"):
            c.SetForegroundOpacity(float(o))

    def showTable(self, table_node: Any) -> bool:
        """Show ``table_node`` beside the views: the scene's layout node switched to a layout with a table view
        (:data:`LAYOUT_WITH_TABLE`, unless the current one has one), the table made the active table of the selection
        node and put in every table view node. False when the scene has no layout node (slicer-core, the studio)."""
        for sel in self._nodes("vtkMRMLSelectionNode"):
            sel.SetActiveTableID(table_node.GetID())
        layouts = self._nodes("vtkMRMLLayoutNode")
        if not layouts:
            return False
        import slicer

        cls = slicer.vtkMRMLLayoutNode
        with_table = {getattr(cls, n) for n in ("SlicerLayoutFourUpTableView", "SlicerLayout3DTableView",
                                                "SlicerLayoutFourUpPlotTableView") if hasattr(cls, n)}
        layout = layouts[0]
        if layout.GetViewArrangement() not in with_table:
            layout.SetViewArrangement(getattr(cls, LAYOUT_WITH_TABLE))
        for view in self._nodes("vtkMRMLTableViewNode"):  # created by the layout logic for the new layout
            view.SetTableNodeID(table_node.GetID())
        return True

    def _vr_logic(self) -> Any:
        if self.volumeRenderingLogic is not None:
            return self.volumeRenderingLogic
        try:
            import slicer

            return slicer.modules.volumerendering.logic()
        except Exception:  # noqa: BLE001 - no Volume Rendering module here (slicer-core): the slice planes instead
            return None

    def _vr_display_nodes(self, node: Any) -> List[Any]:
        out = []
        for i in range(node.GetNumberOfDisplayNodes()):
            d = node.GetNthDisplayNode(i)
            if d is not None and d.IsA("vtkMRMLVolumeRenderingDisplayNode"):
                out.append(d)
        return out

    @staticmethod
    def _vr_transfer(display: Any, threshold: float) -> None:
        """Colours and opacity of the z map's volume rendering: the diverging map, |z| < threshold transparent."""
        prop = display.GetVolumePropertyNode() if display is not None else None
        if prop is None:
            return
        if hasattr(display, "SetFollowVolumeDisplayNode"):
            display.SetFollowVolumeDisplayNode(0)  # keep these transfer functions
        w, t = z_window(threshold), float(threshold)
        colour, opacity = prop.GetColor(), prop.GetScalarOpacity()
        colour.RemoveAllPoints()
        for x, rgb in Z_COLOURS:
            colour.AddRGBPoint(x * w, *rgb)
        opacity.RemoveAllPoints()
        eps = 1e-3
        if t > eps:
            for z, a in ((-w, 0.5), (-t, 0.1), (-t + eps, 0.0), (t - eps, 0.0), (t, 0.1), (w, 0.5)):
                opacity.AddPoint(z, a)
        else:
            for z, a in ((-w, 0.5), (0.0, 0.0), (w, 0.5)):
                opacity.AddPoint(z, a)
        prop.Modified()

    def show3D(self, z_node: Any, threshold: float) -> str:
        """The z map in the 3D view: a volume rendering (thresholded like the slices) where a Volume Rendering
        logic is available, else the slice planes made visible in 3D; never raises for a missing module."""
        vr = self._vr_logic()
        if vr is not None:
            try:
                d = vr.GetFirstVolumeRenderingDisplayNode(z_node) or vr.CreateDefaultVolumeRenderingNodes(z_node)
                if d is not None:
                    self._vr_transfer(d, threshold)
                    d.SetVisibility(True)
                    return "volume rendering"
            except Exception:  # noqa: BLE001 - a Volume Rendering logic without a scene, ...: the planes instead
                log.warning("volume rendering of %s failed; showing the slice planes in 3D", z_node.GetName(),
                            exc_info=True)
        slices = self._nodes("vtkMRMLSliceNode")
        for s in slices:
            s.SetSliceVisible(1)
        return "slice planes" if slices else ""

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


__all__ = ["AnomalyNodes", "NODE_REFERENCES", "PARAMS", "PDMetabolismLogic", "Z_LEGEND_TITLE", "table_rows", "z_colour",
           "z_colour_entries", "z_legend", "z_window"]
