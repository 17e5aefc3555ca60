"""The CytoSynth panel: class-conditional cervical cells (CellGAN): gallery and insertion into an RGB image.

The studio face of the CytoSynth module: the same parameters (``CytoSynthLib.PARAMS``, i.e.
``medsynth.cyto.params.CYTO_PARAMS``) and the same logic class (``CytoSynthLib.CytoSynthLogic``)
as its Slicer panel:

* *Generate*: ``logic.compute_gallery`` (worker thread, progress, Cancel) -> ``logic.finish_gallery``
  (event loop): a new RGB volume node (a row per class for 'all'), shown in the slice views;
* *Insert at point*: ``logic.insert`` pastes one cell of the class into the chosen RGB image at the point
  (RAS fields, *Centre of image*, or *Place*: Slicer's markups placement, the point list the logic labels),
  into a new RGB node beside the input (further insertions into the same input paste into that node);
  the seed then moves on by one, as in the Slicer panel;
* *Smear image*: a small synthetic Pap-smear background (``medsynth.cyto.demo.smear_background``, what the
  module's self-test inserts into) as an RGB host when no cytology image is loaded.
"""

from __future__ import annotations

from typing import Any, Dict, Sequence

from medsynth.errors import InputError
from medsynth.params import Param

from .controls import build_control
from .modules import import_lib
from .panel import Action, NodeInput, StudioPanel
from .points import PointPlacement
from .sheets import TeachingSheet, parse_request

_lib = import_lib("CytoSynth")  # ImportError when the module has not landed: the panel is skipped
CytoSynthLogic = _lib.CytoSynthLogic
CYTO_PARAMS = tuple(_lib.PARAMS)

RGB_CLASS = "vtkMRMLVectorVolumeNode"
SMEAR_PX = 160

POINT_PARAMS = (
    Param("r", float, 0.0, "R", unit="mm", live=True, help="where the cell goes: right (+) / left (-), RAS mm"),
    Param("a", float, 0.0, "A", unit="mm", live=True, help="anterior (+) / posterior (-), RAS mm"),
    Param("s", float, 0.0, "S", unit="mm", live=True, help="superior (+) / inferior (-), RAS mm"),
)
MODULE_NAMES = tuple(p.name for p in CYTO_PARAMS)
POINT_ACTIONS = (
    Action("centre_of_image", "Centre of image", icon="mdi-crosshairs", color="secondary",
           help="the middle of the chosen RGB image"),
    Action("place", "Place", icon="mdi-map-marker-plus", color="secondary",
           help="click in a slice view to place the point (drag it to move it)"),
)


class CytoSynthPanel(TeachingSheet, PointPlacement, StudioPanel):
    """Cell gallery (long action) and insertion of one cell at a point into an RGB cytology image."""

    id = "cyto"
    title = "Cell synthesis"
    POINT_NAME = "CytoSynth point"
    PLACE_STATUS = "Click in a slice view to place the cell."
    icon = "mdi-microscope"
    params = CYTO_PARAMS + POINT_PARAMS
    inputs = (NodeInput("image", "RGB cytology image (Insert at point)", node_class=RGB_CLASS,
                        help="never modified: cells go into a copy beside it"),)
    actions = (
        Action("generate", "Generate", icon="mdi-view-grid-plus", help="a gallery of generated cells (a row per class for 'all')"),
        Action("insert", "Insert at point", icon="mdi-plus", help="paste one cell of the class at the point"),
        Action("smear", "Smear image", icon="mdi-image-filter-hdr", color="secondary",
               help=f"add a synthetic {SMEAR_PX} px Pap-smear background (no data needed) and choose it"),
    )
    logic_class = CytoSynthLogic
    SHEET_EXAMPLES = ("cell_class=all", "seed=0,1,2")

    def __init__(self, studio) -> None:
        super().__init__(studio)
        self.outputs: Dict[str, Any] = {}  # input node ID -> the node its insertions go into
        self.point_node = None
        self._quiet = False
        for key, value in (("status", ""), ("result", ""), ("output", ""), ("output_id", ""), ("inserted", 0)):
            self.state.setdefault(self.key(key), value)
        # the module's params are not live (nothing is recomputed on a change) but the status line follows them
        for name in ("cell_class", "seed"):
            self._seen[name] = self.state[self.key(name)]
            self.state.change(self.key(name))(self._make_listener(name))

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def module_values(values: Dict[str, Any]) -> Dict[str, Any]:
        return {k: values[k] for k in MODULE_NAMES}

    @staticmethod
    def point(values: Dict[str, Any]):
        return [values["r"], values["a"], values["s"]]

    def _set(self, **values: Any) -> None:
        with self.state:
            for name, value in values.items():
                self.state[self.key(name)] = value

    def show_rgb(self, node, reset_views: bool = True) -> None:
        """An RGB image in the slice backgrounds (as ``setSliceViewerLayers(background=node)``); no 3D rendering."""
        display = self.studio.slicer_app.display_manager
        display.show_volume_in_slice_background(node)
        display.show_volume_in_slice_foreground(None)
        if reset_views:
            self.studio.reset_views()
        self.studio.render()

    def set_point(self, ras: Sequence[float]) -> None:
        ras = [round(float(x), 2) for x in ras]
        self.set_values(r=ras[0], a=ras[1], s=ras[2])
        self.apply_live("point")

    @staticmethod
    def image_centre(node):
        bounds = [0.0] * 6
        node.GetRASBounds(bounds)
        return [(bounds[0] + bounds[1]) / 2.0, (bounds[2] + bounds[3]) / 2.0, (bounds[4] + bounds[5]) / 2.0]

    # ------------------------------------------------------------------ live: the status line says whether Insert can run
    def update(self, values: Dict[str, Any], changed: str) -> None:
        host = self.node("image")
        if changed == "image" and host is not None and self.logic.check_insertion(host, self.point(values)):
            self.set_point(self.image_centre(host))  # a point outside the new image: its centre instead
            return
        problem = self.logic.check_insertion(host, self.point(values))
        if not problem and values["cell_class"] == "all":
            problem = "Choose one class to insert."
        if changed in ("r", "a", "s", "point"):
            self._move_point(self.point(values))
        self._set(status=problem or f"Ready to insert a {values['cell_class']} cell (seed {values['seed']}).")

    # ------------------------------------------------------------------ actions
    def on_generate(self, values: Dict[str, Any]):
        module_values = self.module_values(values)
        logic = self.logic

        def compute(progress, cancel):
            return logic.compute_gallery(module_values, progress, cancel)

        def on_done(result) -> None:
            node = logic.finish_gallery(result, module_values)
            self.show_rgb(node)
            self._set(output=node.GetName(), output_id=node.GetID(),
                      result=f"Gallery {node.GetName()}: {node.GetAttribute('MedSynth.CytoSynth.rows')}")

        return compute, on_done

    def on_insert(self, values: Dict[str, Any]) -> None:
        host = self.node("image")
        if host is None:
            raise InputError("no RGB image: load one or press Smear image first")
        previous = self.outputs.get(host.GetID())
        if previous is not None and self.studio.scene.GetNodeByID(previous.GetID()) is None:
            previous = None
        record = self.logic.insert(host, self._where(values), self.module_values(values), output_node=previous)
        output = record["output"]
        self.outputs[host.GetID()] = output
        self.show_rgb(output, reset_views=previous is None and self.studio.background_volume() is not host)
        self._set(output=output.GetName(), output_id=output.GetID(),
                  inserted=int(self.state[self.key("inserted")] or 0) + 1,
                  result=(f"{record['class']} cell (seed {record['seed']}) inserted into {output.GetName()} in "
                          f"{self.logic.lastInsertMilliseconds:.0f} ms; recorded in "
                          f"'{self.logic.table_node.GetName()}'."))
        self.set_values(seed=int(record["seed"]) + 1)  # the next press inserts a different cell

    def _where(self, values: Dict[str, Any]):
        """The placed point list when it is on the fields' point (the logic labels it), else the RAS point."""
        ras = self.point(values)
        node = self.point_node
        if node is not None and self.studio.scene.GetNodeByID(node.GetID()) is not None \
                and node.GetNumberOfControlPoints() > 0:
            now = [0.0, 0.0, 0.0]
            node.GetNthControlPointPositionWorld(0, now)
            if all(abs(a - b) < 1e-2 for a, b in zip(now, ras)):
                return node
        return ras

    def on_smear(self, values: Dict[str, Any]) -> None:
        import numpy as np

        from medsynth.cyto.demo import smear_background
        from medsynth.volume import Volume, make_ijk_to_ras
        from medsynth_mrml import node_from_volume

        from CytoSynthLib.logic import IMAGE_DIRECTIONS  # an image upright in the axial view, as the logic's gallery

        image = Volume(smear_background(SMEAR_PX)[np.newaxis], make_ijk_to_ras(directions=IMAGE_DIRECTIONS),
                       name="smear")
        node = node_from_volume(self.studio.scene, image)
        self.studio.flush_scene_changes()
        self.refresh_inputs()
        self.select_node("image", node)
        self.show_rgb(node)
        self.set_point(self.image_centre(node))
        if values["cell_class"] == "all":
            self.set_values(cell_class="HSIL")  # Insert needs one class
            self.apply_live("cell_class")

    def sheet_job(self, values: Dict[str, Any], texts: Sequence[str]):
        """Teaching sheet (:class:`~medsynth_studio.sheets.TeachingSheet`): generated cells
        (:func:`medsynth.cyto.sheet.cells_sheet`, as ``medsynth sheet cells``) with the panel's class, naming and
        seed for what does not vary."""
        from medsynth.cyto.sheet import ALIASES, SHEET_PARAMS, cells_sheet

        fixed = {p.name: values[p.name] for p in SHEET_PARAMS}
        items = parse_request(texts, SHEET_PARAMS, ALIASES, fixed)
        varied = {name for name, _ in items}
        fixed = {k: v for k, v in fixed.items() if k not in varied}
        if "cell_class" not in varied and fixed["cell_class"] == "all":
            raise InputError("Teaching sheet: choose one class in the panel, or vary cell_class (all = every class "
                             "of the naming)")

        def write(path, progress):
            return cells_sheet(path, items, fixed, progress=progress)

        return f"cells_sheet_{fixed.get('naming', values['naming'])}", write

    def on_centre_of_image(self, values: Dict[str, Any]) -> None:
        host = self.node("image")
        if host is None:
            raise InputError("no RGB image: load one or press Smear image first")
        self.set_point(self.image_centre(host))

    # ------------------------------------------------------------------ click to place (PointPlacement)
    def point_placed(self, ras) -> None:
        self.set_point(ras)

    # ------------------------------------------------------------------ UI
    def build_params(self, busy: str) -> None:
        from trame.widgets import html

        for param in CYTO_PARAMS:
            build_control(param, self.id, disabled=busy)
        html.Div("Insertion point (RAS, mm)", classes="text-caption mt-2")
        with html.Div(classes="d-flex ga-1 medsynth-cyto-point"):
            for param in POINT_PARAMS:
                build_control(param, self.id, disabled=busy)
        with html.Div(classes="d-flex flex-wrap ga-1 mt-1 mb-2"):
            for action in POINT_ACTIONS:
                self._build_action(action, busy)

    def build_extra(self) -> None:
        from trame.widgets import html

        html.Div("{{ %s }}" % self.key("status"), v_if=(self.key("status"),),
                 classes="text-caption mt-1 medsynth-cyto-status")
        html.Div("{{ %s }}" % self.key("result"), v_if=(self.key("result"),),
                 classes="text-caption mt-1 medsynth-cyto-result")
