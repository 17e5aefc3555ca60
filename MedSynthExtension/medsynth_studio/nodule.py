"""The NoduleSynth panel: controllable lung nodules on a chest CT or radiograph, live in the views.

The studio face of the NoduleSynth module: the same parameters
(``medsynth.nodule.params.NODULE_PARAMS``) and the same logic class
(``NoduleSynthLib.NoduleSynthLogic``) as its Slicer panel:

* the centre is a RAS point: three number fields, *Centre of view* (the middle of the axial view),
  *Suggest* (a point inside the lung, ``logic.suggestLungPoint``) or *Place* (click in a view:
  Slicer's markups placement, the same point list the Slicer panel uses; the point can be dragged);
* live: any parameter or centre change calls ``logic.update`` (the first one ``logic.start``), which
  rewrites only the nodule's region of the output volume node - the views show it at once;
* *Add nodule* (``logic.add``) keeps it and shows the "Nodules" segmentation; *Undo* (``logic.undo``);
* a centre outside the estimated lung fields shows the engine's warning in the status line.

The shape model (``nodule-shape-vae``) is installed separately: without it the panel says so and
every attempt shows the error from the engine, nothing else breaks.
"""

from __future__ import annotations

from typing import Any, Dict, Sequence

from medsynth.errors import InputError, MedSynthError, ModelError
from medsynth.nodule.params import NODULE_PARAMS
from medsynth.params import Param

from .controls import build_control
from .modules import import_lib, model_available
from .panel import Action, NodeInput, StudioPanel
from .points import PointPlacement
from .sheets import TeachingSheet, parse_request

_lib = import_lib("NoduleSynth")  # ImportError when the module has not landed: the panel is skipped
NoduleSynthLogic = _lib.NoduleSynthLogic

SHAPE_MODEL = "nodule-shape-vae"
#: Lung window for the chest phantom (Slicer's CT-lung preset).
LUNG_WINDOW_LEVEL = (1400.0, -500.0)

CENTRE_PARAMS = (
    Param("r", float, 0.0, "R", unit="mm", live=True, help="nodule centre, right (+) / left (-), RAS mm"),
    Param("a", float, 0.0, "A", unit="mm", live=True, help="nodule centre, anterior (+) / posterior (-), RAS mm"),
    Param("s", float, 0.0, "S", unit="mm", live=True, help="nodule centre, superior (+) / inferior (-), RAS mm"),
)
MODULE_NAMES = tuple(p.name for p in NODULE_PARAMS)
CENTRE_ACTIONS = (
    Action("centre_of_view", "Centre of view", icon="mdi-crosshairs", color="secondary", help="the middle of the axial view"),
    Action("suggest", "Suggest", icon="mdi-lungs", color="secondary", help="a point inside the lung where the nodule fits (again: another one)"),
    Action("place", "Place", icon="mdi-map-marker-plus", color="secondary",
           help="click in a slice view to place the centre (drag the point to move it)"),
)


class NoduleSynthPanel(TeachingSheet, PointPlacement, StudioPanel):
    """Nodule insertion with live sliders, add and undo."""

    id = "nodule"
    title = "Nodule synthesis"
    POINT_NAME = "Nodule centre"
    PLACE_STATUS = "Click in a slice view to place the nodule centre."
    POINT_EVENTS = ("PointPositionDefinedEvent", "PointModifiedEvent", "PointEndInteractionEvent")
    icon = "mdi-circle-opacity"
    params = NODULE_PARAMS + CENTRE_PARAMS
    inputs = (NodeInput("volume", "Input volume (chest CT or radiograph)", help="never modified: nodules go into a copy"),)
    actions = (
        Action("add", "Add nodule", icon="mdi-plus", help="keep the nodule and add its segment"),
        Action("undo", "Undo", icon="mdi-undo", color="secondary", help="remove the last kept nodule"),
        Action("phantom", "Chest phantom", icon="mdi-human", color="secondary",
               help="add a small synthetic chest CT (no data needed) and choose it as the input"),
    )
    logic_class = NoduleSynthLogic
    SHEET_EXAMPLES = ("diameter_mm=5,10,15,20,25", "texture=solid,part-solid,ggo")

    def __init__(self, studio) -> None:
        super().__init__(studio)
        self.point_node = None
        self._quiet = False
        self._last_update = None
        self._suggestions = 0
        for key, value in (("status", ""), ("output", ""), ("output_id", ""), ("segmentation", ""), ("kept", 0),
                           ("updates", 0), ("model_note", "")):
            self.state.setdefault(self.key(key), value)
        if not model_available(SHAPE_MODEL):
            self.state[self.key("model_note")] = (
                f"The nodule shape model '{SHAPE_MODEL}' is not installed here: nodules cannot be made until it "
                "is (Resources/Models or a user model folder).")

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def module_values(values: Dict[str, Any]) -> Dict[str, Any]:
        return {k: values[k] for k in MODULE_NAMES}

    @staticmethod
    def centre(values: Dict[str, Any]):
        return (values["r"], values["a"], values["s"])

    def _set(self, **values: Any) -> None:
        with self.state:
            for name, value in values.items():
                self.state[self.key(name)] = value

    def set_centre(self, ras: Sequence[float], jump: bool = True) -> bool:
        """Set the centre fields (one nodule update, not three); ``jump`` moves the slice views through it."""
        ras = [round(float(x), 2) for x in ras]
        if jump:
            self.studio.jump_slices_to(ras)
        self.set_values(r=ras[0], a=ras[1], s=ras[2])  # the first of the three changes updates the nodule ...
        return self.apply_live("centre")  # ... (or this one, when the values were not new); the others are no-ops

    def ensure_session(self, node) -> None:
        """Start a session on ``node`` (output volume node beside it, shown in the views) unless one runs on it."""
        if self.logic.session is not None and self.logic.input_node is node:
            return
        try:
            out = self.logic.start(node)
        except ModelError as exc:
            raise MedSynthError(
                f"NoduleSynth needs its shape model '{SHAPE_MODEL}', which is not available here ({exc})") from None
        self.studio.show_result(out)
        # As the Slicer panel: the output in the slice views, the nodules' segment surfaces in 3D - not a
        # volume rendering, which a CPU renderer redraws in ~0.3 s on every slider move (the Volumes
        # panel's switch turns it back on).
        volumes = self.studio.panel("volumes")
        if volumes is not None and self.state[volumes.key("show_3d")]:
            volumes.set_values(show_3d=False)
        self._set(output=out.GetName(), output_id=out.GetID(), kept=0, segmentation="")

    # ------------------------------------------------------------------ live
    def update(self, values: Dict[str, Any], changed: str) -> None:
        if changed in ("volume", "visible"):
            return  # a new input starts its session at the next change (as the Slicer panel does)
        node = self.node("volume")
        if node is None:
            raise InputError("no input volume: load or choose a chest CT or radiograph first")
        self.ensure_session(node)
        module_values, centre = self.module_values(values), self.centre(values)
        key = (id(self.logic.session), tuple(sorted(module_values.items())), centre)
        if key == self._last_update:
            return  # nothing new (one centre move sets three fields)
        info = self.logic.update(module_values, centre)
        self._last_update = key
        if changed in ("r", "a", "s", "centre"):
            self._move_point(self.centre(values))
        self.studio.render()
        warnings = "; ".join(info.get("warnings", []) or [])
        self._set(
            status=f"{len(self.logic.nodules)} kept; updated in {self.logic.lastUpdateMilliseconds:.0f} ms"
            + (f". Warning: {warnings}" if warnings else ""),
            updates=int(self.state[self.key("updates")] or 0) + 1,
        )

    # ------------------------------------------------------------------ actions
    def on_add(self, values: Dict[str, Any]) -> None:
        node = self.node("volume")
        if node is None:
            raise InputError("no input volume: load or choose a chest CT or radiograph first")
        if self.logic.session is None or self.logic.input_node is not node:
            self.ensure_session(node)
            self.logic.update(self.module_values(values), self.centre(values))
        info = self.logic.add()
        self._last_update = None
        if info is None:
            self._set(status="No nodule to add: move a slider or the centre to make one.")
            return
        self._show_segmentation()
        self._set(status=f"Nodule {info['label']} added ({len(self.logic.nodules)} in all).")

    def on_undo(self, values: Dict[str, Any]) -> None:
        if self.logic.session is None:
            self._set(status="Nothing to undo.")
            return
        info = self.logic.undo()
        self._last_update = None
        self._show_segmentation()
        self.studio.render()
        self._set(status=f"Removed nodule {info['label']}; {len(self.logic.nodules)} left." if info
                  else "Nothing to undo.")

    def _show_segmentation(self) -> None:
        seg = self.logic.segmentation_node
        if seg is not None:
            self.studio.show_segmentation(seg)
        self._set(segmentation=seg.GetName() if seg is not None else "", kept=len(self.logic.nodules))

    def on_phantom(self, values: Dict[str, Any]) -> None:
        from medsynth.nodule.phantom import chest_ct_phantom
        from medsynth_mrml import node_from_volume

        node = node_from_volume(self.studio.scene, chest_ct_phantom(), name="chest_phantom")
        display = node.GetDisplayNode()
        if display is not None:
            display.AutoWindowLevelOff()
            display.SetWindowLevel(*LUNG_WINDOW_LEVEL)
        self.studio.flush_scene_changes()
        self.refresh_inputs()
        self.select_node("volume", node)
        self.studio.show_result(node, reset_views=True)

    def on_centre_of_view(self, values: Dict[str, Any]) -> None:
        view = self.studio.axial_view()
        if view is None:
            raise InputError("no axial view in this layout")
        ras, _normal = self.studio.slice_plane(view)
        self.set_centre(ras, jump=False)

    def on_suggest(self, values: Dict[str, Any]) -> None:
        """A lung point from the logic (the Slicer panel's *Suggest a lung point*): the first near the middle,
        each press after it another one."""
        node = self.node("volume")
        if node is None:
            raise InputError("no input volume: load or choose a chest CT or radiograph first")
        ras = self.logic.suggestLungPoint(node, values["diameter_mm"], seed=self._suggestions)
        self._suggestions += 1
        self.set_centre(ras, jump=True)

    def sheet_job(self, values: Dict[str, Any], texts: Sequence[str]):
        """Teaching sheet (:class:`~medsynth_studio.sheets.TeachingSheet`): ``logic.makeTeachingSheet`` on the input's
        image (read here) with the panel's sliders, at the panel's centre once a nodule has been made on this input
        (else the logic's lung point near the middle, as the Slicer panel without a point)."""
        from medsynth.nodule.sheet import ALIASES

        node = self.node("volume")
        if node is None:
            raise InputError("no input volume: load or choose a chest CT or radiograph first")
        fixed = self.module_values(values)
        parse_request(texts, NODULE_PARAMS, ALIASES, fixed)
        host = self.logic.teachingSheetHost(node)  # MRML read on the event loop; the writer touches no node
        ras = self.centre(values) if self.logic.session is not None and self.logic.input_node is node else None
        logic, texts = self.logic, [t for t in texts if str(t or "").strip()]

        def write(path, progress):
            facts = logic.makeTeachingSheet(host, str(path), texts, fixed, ras=ras, progress=progress)
            where = "the panel's centre" if ras is not None else "a lung point"
            facts["note"] = f"{where}, RAS ({', '.join(f'{v:.0f}' for v in facts['ras'])})"
            return facts

        return f"{node.GetName()}_nodule_sheet", write

    # ------------------------------------------------------------------ click to place (PointPlacement)
    def point_placed(self, ras) -> None:
        if all(abs(a - b) < 1e-3 for a, b in zip(ras, self._field_centre())):
            return
        self.set_centre(ras, jump=False)

    def _field_centre(self):
        try:
            return [float(self.state[self.key(n)]) for n in ("r", "a", "s")]
        except (TypeError, ValueError):
            return [float("nan")] * 3

    # ------------------------------------------------------------------ UI
    def build_params(self, busy: str) -> None:
        from trame.widgets import html

        html.Div("Nodule centre (RAS, mm)", classes="text-caption")
        with html.Div(classes="d-flex ga-1 medsynth-nodule-centre"):
            for param in CENTRE_PARAMS:
                build_control(param, self.id, disabled=busy)
        with html.Div(classes="d-flex flex-wrap ga-1 mt-1 mb-2"):
            for action in CENTRE_ACTIONS:
                self._build_action(action, busy)
        for param in NODULE_PARAMS:
            build_control(param, self.id, disabled=busy)

    def build_extra(self) -> None:
        from trame.widgets import html
        from trame.widgets import vuetify3 as v3

        html.Div("{{ %s }}" % self.key("status"), v_if=(self.key("status"),),
                 classes="text-caption mt-1 medsynth-nodule-status")
        v3.VAlert(text=(self.key("model_note"),), v_if=(self.key("model_note"),), type="warning", density="compact",
                  variant="tonal", classes="mt-1 text-caption medsynth-model-note")
