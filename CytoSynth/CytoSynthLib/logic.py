"""CytoSynth logic over MRML nodes: cell galleries, cells pasted into RGB cytology images, training sets.

From Slicer's Python console::

    from CytoSynthLib import CytoSynthLogic
    logic = CytoSynthLogic(slicer.mrmlScene)
    gallery = logic.gallery(cell_class="all", count=8, seed=0, naming="bethesda")   # a row per class
    info = logic.insert(rgbNode, pointListNode, cell_class="HSIL", seed=3)          # new node with the cell
    logic.write_folder("/tmp/cells", cell_class="all", count=100)                   # PNGs + cells.csv

The input image node is never modified: the first insertion makes a new RGB node beside it; further
insertions for the same input (``output_node=info["output"]``) paste into that node. Each insertion labels
the placed point with the cell's class and adds a row (class, seed, position, box) to the "CytoSynth cells"
table node.
"""

from __future__ import annotations

import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from medsynth.cyto.blend import check_host, insert_cell, point_to_pixel
from medsynth.cyto.classes import canonical_class
from medsynth.cyto.generate import gallery as make_gallery
from medsynth.cyto.generate import generate_cells, get_generator, write_cells
from medsynth.cyto.params import ALL, CYTO_PARAMS
from medsynth.errors import InputError
from medsynth.params import validate
from medsynth.progress import CancelToken, ProgressCallback
from medsynth.volume import Volume, make_ijk_to_ras
from medsynth_mrml import markups_from_points, node_from_volume, points_from_markups, update_node_region, volume_from_node

#: node references of the module's parameter node (name -> MRML class name)
NODE_REFERENCES = {"inputVolume": "vtkMRMLVectorVolumeNode", "pointList": "vtkMRMLMarkupsFiducialNode"}

#: columns of the insertion record table (all text; numbers written with fixed decimals)
TABLE_COLUMNS = (
    "image", "class", "herlev_class", "naming", "seed", "model", "blend", "size_px",
    "R", "A", "S", "i", "j", "k", "box_i0", "box_j0", "box_i1", "box_j1",
    "box_R_min", "box_A_min", "box_S_min", "box_R_max", "box_A_max", "box_S_max",
)
TABLE_NAME = "CytoSynth cells"
#: an image shown upright in Slicer's axial view (what reading a PNG/JPEG gives: LPS identity)
IMAGE_DIRECTIONS = np.diag([-1.0, -1.0, 1.0])


class CytoSynthLogic:
    """Cell generation and insertion on nodes of ``scene``."""

    def __init__(self, scene: Any) -> None:
        self.scene = scene
        self.gallery_node = None
        self.gallery_labels_node = None
        self.table_node = None
        self.insertions: List[Dict[str, Any]] = []
        self.lastInsertMilliseconds = float("nan")

    # ------------------------------------------------------------------ values
    @staticmethod
    def _values(values: Optional[Dict[str, Any]], extra: Dict[str, Any]) -> Dict[str, Any]:
        merged = dict(values or {})
        merged.update(extra)
        cls = merged.get("cell_class")
        if cls is not None and str(cls).strip().lower() != ALL:
            merged["cell_class"] = canonical_class(cls)  # any spelling of a class; a clear error when unknown
        return validate(CYTO_PARAMS, merged)

    # ------------------------------------------------------------------ gallery (the panel runs compute in a thread)
    @staticmethod
    def compute_gallery(
        values: Dict[str, Any],
        progress: Optional[ProgressCallback] = None,
        cancel: Optional[CancelToken] = None,
    ) -> Tuple[np.ndarray, List[Tuple[str, int]], list]:
        """(grid image, [(row label, first row)], cells): a row per class for ``all``, else rows of one class."""
        v = validate(CYTO_PARAMS, values)
        return make_gallery(v["cell_class"], v["count"], v["seed"], v["naming"], progress=progress, cancel=cancel)

    def finish_gallery(self, result: Tuple[np.ndarray, List[Tuple[str, int]], list], values: Dict[str, Any]) -> Any:
        """A new RGB vector volume node (one slice, 1 mm pixels) holding the grid, plus a point list whose
        points label the rows. Returns the volume node."""
        v = validate(CYTO_PARAMS, values)
        grid, rows, cells = result
        volume = Volume(grid[np.newaxis], make_ijk_to_ras((1.0, 1.0, 1.0), (0.0, 0.0, 0.0), IMAGE_DIRECTIONS),
                        name=f"CellGallery_{v['cell_class']}")
        node = node_from_volume(self.scene, volume)
        gen = get_generator()
        node.SetAttribute("MedSynth.CytoSynth.rows", "; ".join(f"{label} (row {r + 1})" for label, r in rows))
        node.SetAttribute("MedSynth.CytoSynth.seeds", f"{v['seed']}-{v['seed'] + v['count'] - 1} per class")
        node.SetAttribute("MedSynth.CytoSynth.naming", v["naming"])
        node.SetAttribute("MedSynth.CytoSynth.model", f"{gen.model_id} {gen.version}")
        node.SetAttribute("MedSynth.CytoSynth.classes", ",".join(c.label for c in cells))
        # row labels: a point just left of the first cell of each labelled row
        s, gap = gen.patch_px, 2
        ijk = np.array([[-0.5 * s, gap + r * (s + gap) + s / 2.0, 0.0] for _, r in rows])
        points = volume.ijk_to_ras_points(ijk)
        labels = [label for label, _ in rows]
        self.gallery_labels_node = markups_from_points(self.scene, points, name=f"{node.GetName()}_rows",
                                                       labels=labels, reference_node=node)
        display = self.gallery_labels_node.GetDisplayNode()
        if display is not None:
            display.SetGlyphScale(0.5)
        self.gallery_labels_node.SetLocked(True)
        self.gallery_node = node
        return node

    def gallery(self, values: Optional[Dict[str, Any]] = None, progress: Optional[ProgressCallback] = None,
                cancel: Optional[CancelToken] = None, **kw: Any) -> Any:
        """Blocking: generate the gallery into a new RGB volume node (returned)."""
        v = self._values(values, kw)
        return self.finish_gallery(self.compute_gallery(v, progress, cancel), v)

    # ------------------------------------------------------------------ training sets
    @staticmethod
    def write_folder(folder: str, values: Optional[Dict[str, Any]] = None, progress: Optional[ProgressCallback] = None,
                     cancel: Optional[CancelToken] = None, **kw: Any) -> Tuple[list, Any]:
        """PNG patches and ``cells.csv`` in ``folder`` (what ``medsynth cells`` writes); ``all`` writes
        ``count`` cells of every class of the naming (class-balanced)."""
        if not folder:
            raise InputError("choose an output folder")
        v = CytoSynthLogic._values(values, kw)
        return write_cells(folder, v["cell_class"], v["count"], v["seed"], v["naming"], progress=progress,
                           cancel=cancel)

    # ------------------------------------------------------------------ insertion
    @staticmethod
    def _point(where: Any) -> Tuple[np.ndarray, Any, int]:
        """(RAS, point list or None, control point index) of a point list (its last point) or RAS triple."""
        if hasattr(where, "IsA") and where.IsA("vtkMRMLMarkupsNode"):
            points = points_from_markups(where)
            if len(points) == 0:
                raise InputError(f"'{where.GetName()}' has no point: place a point on the image first")
            return points[-1], where, len(points) - 1
        if where is None:
            raise InputError("place a point on the image first")
        ras = np.asarray(where, dtype=float).reshape(-1)
        if ras.size != 3:
            raise InputError(f"the position must be a point list or 3 RAS coordinates, got {where!r}")
        return ras, None, -1

    def insert(self, host_node: Any, where: Any, values: Optional[Dict[str, Any]] = None, output_node: Any = None,
               **kw: Any) -> Dict[str, Any]:
        """Paste one generated cell (class, seed, naming, inserted size and blending from ``values``/keywords)
        into the RGB image of ``host_node`` at ``where`` (a point list: its last point; or RAS).

        Without ``output_node`` the result is a new RGB node beside the input; with one (a node made by an
        earlier insertion) the cell is pasted into it. The input node is never modified. Raises
        :class:`InputError` for 'all' as class, a non-RGB image, a point outside it, or bad values.
        Returns a record (also added to :attr:`insertions` and the table node) with ``output`` the node.
        """
        t0 = time.perf_counter()
        v = self._values(values, kw)
        if v["cell_class"] == ALL:
            raise InputError("choose one class to insert ('all' is for galleries and training sets)")
        if host_node is None:
            raise InputError("choose an RGB cytology image")
        ras, point_list, index = self._point(where)
        if output_node is not None and (output_node.GetScene() is not self.scene or output_node is host_node):
            output_node = None
        host = volume_from_node(output_node if output_node is not None else host_node)
        check_host(host)
        point_to_pixel(host, ras)  # a point outside the image fails before any generation
        cell = generate_cells(v["cell_class"], 1, seed=v["seed"], naming=v["naming"])[0]
        res = insert_cell(host, cell.image, ras, size_px=v["patch_px"], method=v["blend"])
        if output_node is None:
            output_node = node_from_volume(self.scene, res.volume.with_array(res.volume.array, name=host_node.GetName()),
                                           reference_node=host_node, suffix="cells")
            output_node.SetAttribute("MedSynth.CytoSynth.source", host_node.GetID() or "")
        else:
            update_node_region(output_node, res.region, res.volume.array[res.region])
        gen = get_generator()
        lo, hi = res.box_ras()
        record: Dict[str, Any] = {
            "image": output_node.GetName(),
            "class": cell.label,
            "herlev_class": cell.herlev_class,
            "naming": v["naming"],
            "seed": cell.seed,
            "model": f"{gen.model_id} {gen.version}",
            "blend": v["blend"],
            "size_px": v["patch_px"],
            "ras": [float(x) for x in ras],
            "center_ijk": list(res.center_ijk),
            "box_ijk": list(res.box_ijk),
            "box_ras_min": [float(x) for x in lo],
            "box_ras_max": [float(x) for x in hi],
            "output": output_node,
        }
        if point_list is not None:
            n = sum(1 for r in self.insertions if r["image"] == record["image"]) + 1
            point_list.SetNthControlPointLabel(index, f"{cell.label} {n}")
            point_list.SetNthControlPointDescription(
                index, f"{cell.herlev_class}, seed {cell.seed}, {v['blend']} blend, {v['patch_px']} px")
        self.insertions.append(record)
        self._add_table_row(record)
        self.lastInsertMilliseconds = 1000 * (time.perf_counter() - t0)
        return record

    # ------------------------------------------------------------------ records
    def _table(self) -> Any:
        node = self.table_node
        if node is None or node.GetScene() is not self.scene:
            node = self.scene.GetFirstNodeByName(TABLE_NAME)
            if node is None or not node.IsA("vtkMRMLTableNode"):
                node = self.scene.AddNewNodeByClass("vtkMRMLTableNode", TABLE_NAME)
                for name in TABLE_COLUMNS:
                    col = node.AddColumn()
                    col.SetName(name)
            self.table_node = node
        return node

    def _add_table_row(self, record: Dict[str, Any]) -> None:
        table = self._table()
        texts = {
            "image": record["image"], "class": record["class"], "herlev_class": record["herlev_class"],
            "naming": record["naming"], "seed": str(record["seed"]), "model": record["model"],
            "blend": record["blend"], "size_px": str(record["size_px"]),
        }
        for key, value in zip(("R", "A", "S"), record["ras"]):
            texts[key] = f"{value:.3f}"
        for key, value in zip(("i", "j", "k"), record["center_ijk"]):
            texts[key] = str(value)
        for key, value in zip(("box_i0", "box_j0", "box_i1", "box_j1"), record["box_ijk"]):
            texts[key] = str(value)
        for key, value in zip(("box_R_min", "box_A_min", "box_S_min"), record["box_ras_min"]):
            texts[key] = f"{value:.3f}"
        for key, value in zip(("box_R_max", "box_A_max", "box_S_max"), record["box_ras_max"]):
            texts[key] = f"{value:.3f}"
        row = table.AddEmptyRow()
        for c in range(table.GetNumberOfColumns()):
            name = table.GetColumnName(c)
            if name in texts:
                table.SetCellText(row, c, texts[name])

    @staticmethod
    def table_rows(table_node: Any) -> List[Dict[str, str]]:
        """The rows of a record table as dicts (column name -> text)."""
        names = [table_node.GetColumnName(c) for c in range(table_node.GetNumberOfColumns())]
        return [{n: table_node.GetCellText(r, c) for c, n in enumerate(names)} for r in range(table_node.GetNumberOfRows())]

    # ------------------------------------------------------------------ panel helpers
    @staticmethod
    def check_insertion(host_node: Any, ras: Optional[Sequence[float]]) -> str:
        """'' when a cell can be inserted at ``ras`` into ``host_node``, else why not (for the status line)."""
        try:
            if host_node is None:
                return "Choose an RGB cytology image."
            host = volume_from_node(host_node)
            check_host(host)
            if ras is None:
                return "Place a point on the image."
            point_to_pixel(host, ras)
        except InputError as exc:
            return str(exc)
        return ""
