"""The SliceSuperRes panel: arbitrary reduction of slice spacing, with a live slab preview in the axial view.

The studio face of the SliceSuperRes module: the same parameters
(``medsynth.superres.params.SUPERRES_PARAMS``) and the same logic class
(``SliceSuperResLib.SliceSuperResLogic``) as its Slicer panel:

* live: a spacing / axis / method change (or scrolling the axial view) recomputes a slab of the output
  around the axial view's slice with ``logic.preview`` and shows it as the axial view's foreground
  (as the Slicer panel does in the red view) - only while the panel is open and *Live preview* is on;
* *Apply*: ``logic.inputVolume`` (event loop) -> ``logic.compute`` (worker thread, progress, Cancel)
  -> ``logic.finish`` (event loop): a new volume node, shown in the views;
* *Thick-slice copy*: a demo input from a fine volume (``medsynth.superres.degrade.degrade_volume``, the
  slice-profile model the method is trained and evaluated with), for the sample data, which are isotropic.
"""

from __future__ import annotations

import asyncio
from typing import Any, Dict, Optional

from medsynth.errors import InputError
from medsynth.params import Param
from medsynth.superres.params import SUPERRES_PARAMS

from .modules import import_lib, model_available
from .panel import Action, NodeInput, StudioPanel
from .sheets import TeachingSheet, parse_request

_lib = import_lib("SliceSuperRes")  # ImportError when the module has not landed: the panel is skipped
SliceSuperResLogic = _lib.SliceSuperResLogic

SAINR_MODEL = "sainr"
#: Thick-slice copy: slice spacing = this factor x the input's spacing along the axis.
THICK_FACTOR = 3
#: Scrolling the axial view: wait this long after the last slice move before recomputing (as the Slicer panel).
PREVIEW_DELAY_S = 0.06

PANEL_PARAMS = (
    Param("live_preview", bool, True, "Live preview (axial view)", live=True,
          help="recompute a slab of the output around the axial view's slice on every change"),
)
MODULE_NAMES = tuple(p.name for p in SUPERRES_PARAMS)


class SliceSuperResPanel(TeachingSheet, StudioPanel):
    """Slice super-resolution (SA-INR, B-spline, linear) with a live slab preview."""

    id = "superres"
    title = "Slice super-resolution"
    icon = "mdi-layers-triple-outline"
    params = SUPERRES_PARAMS + PANEL_PARAMS
    inputs = (NodeInput("volume", "Input volume (thick slices)", help="the volume whose slice spacing is reduced"),)
    actions = (
        Action("apply", "Apply", icon="mdi-play", help="compute the whole volume into a new volume node"),
        Action("thick", "Thick-slice copy", icon="mdi-layers-minus", color="secondary",
               help=f"demo input: a copy of the input with {THICK_FACTOR}x thicker slices along the axis "
                    "(k when auto), made with the slice-profile model"),
    )
    logic_class = SliceSuperResLogic
    SHEET_EXAMPLES = ("spacing=3,1.5", "method=sainr,bspline")

    def __init__(self, studio) -> None:
        super().__init__(studio)
        self.preview_node = None
        self.output_node = None
        self.preview_count = 0
        self._observed_slice = None
        self._observer_tag = None
        self._pending_preview = None
        self._last_plane = None
        for key, value in (("grid", ""), ("output", ""), ("output_id", ""), ("preview", ""), ("preview_n", 0),
                           ("model_note", "")):
            self.state.setdefault(self.key(key), value)
        if not model_available(SAINR_MODEL):
            # same parameters as the Slicer panel; its default method needs a model that is not installed here
            self.state[self.key("method")] = "bspline"
            self.state[self.key("model_note")] = (
                "SA-INR model not installed here: B-spline selected (choosing sainr shows what is missing).")

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def module_values(values: Dict[str, Any]) -> Dict[str, Any]:
        """The values the logic takes (the panel's own switches left out)."""
        return {k: values[k] for k in MODULE_NAMES}

    def _set(self, **values: Any) -> None:
        with self.state:
            for name, value in values.items():
                self.state[self.key(name)] = value

    # ------------------------------------------------------------------ live
    def update(self, values: Dict[str, Any], changed: str) -> None:
        node = self.node("volume")
        if node is None:
            self._set(grid="Select an input volume.")
            self.hide_preview()
            return
        try:
            self._set(grid=self.logic.describe(node, self.module_values(values)))
        except InputError as exc:  # the grid line says what is wrong with the input or the spacing
            self._set(grid=str(exc))
            self.hide_preview()
            return
        if values["live_preview"] and self.visible():
            self.update_preview(values)
        else:
            self.hide_preview()

    def update_preview(self, values: Optional[Dict[str, Any]] = None) -> None:
        """Recompute the slab around the axial view's slice and show it in that view's foreground."""
        node = self.node("volume")
        view = self.studio.axial_view()
        if node is None or view is None:
            return
        values = values if values is not None else self.values()
        ras, normal = self.studio.slice_plane(view)
        self.preview_node = self.logic.preview(node, self.module_values(values), ras, self.preview_node, normal)
        _copy_display(node, self.preview_node, fixed=True)  # the input's current window/level, kept in step
        self._last_plane = (tuple(round(x, 3) for x in ras), tuple(round(x, 4) for x in normal))
        if view.get_foreground_volume_id() != self.preview_node.GetID():
            view.set_foreground_volume_id(self.preview_node.GetID())
        view.set_foreground_opacity(1.0)
        self._observe_axial(view)
        self.preview_count += 1
        view.schedule_render()
        self._set(preview=f"Preview: {self.logic.lastPreviewMilliseconds:.0f} ms", preview_n=self.preview_count)

    def hide_preview(self) -> None:
        """Give the axial view back and drop the preview node."""
        self._observe_axial(None)
        node, self.preview_node = self.preview_node, None
        if node is None:
            return
        for view in self.studio.slice_views():
            if view.get_foreground_volume_id() == node.GetID():
                view.set_foreground_volume_id(None)
                view.schedule_render()
        if self.studio.scene.GetNodeByID(node.GetID()) is not None:
            self.studio.scene.RemoveNode(node)
        self._set(preview="")

    def on_visibility_changed(self, visible: bool) -> None:
        if visible:
            self.apply_live("visible")
        else:
            self.hide_preview()

    # following the axial view: scrolling its slices moves the slab (coalesced)
    def _observe_axial(self, view) -> None:
        slice_node = view._logic.GetSliceNode() if view is not None else None  # noqa: SLF001
        if slice_node is self._observed_slice:
            return
        if self._observed_slice is not None and self._observer_tag is not None:
            self._observed_slice.RemoveObserver(self._observer_tag)
        self._observed_slice, self._observer_tag = slice_node, None
        if slice_node is not None:
            import vtk

            self._observer_tag = slice_node.AddObserver(vtk.vtkCommand.ModifiedEvent, self._on_slice_moved)

    def _on_slice_moved(self, *_args) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no server loop (tests): call update_preview() explicitly
        if self._pending_preview is not None:
            self._pending_preview.cancel()
        self._pending_preview = loop.call_later(PREVIEW_DELAY_S, self._slice_moved_later)

    def _slice_moved_later(self) -> None:
        self._pending_preview = None
        view = self.studio.axial_view()
        if self.preview_node is None or self.tasks.busy or view is None:
            return
        ras, normal = self.studio.slice_plane(view)
        if (tuple(round(x, 3) for x in ras), tuple(round(x, 4) for x in normal)) != self._last_plane:
            self.apply_live("slice")

    # ------------------------------------------------------------------ actions
    def on_apply(self, values: Dict[str, Any]):
        node = self.node("volume")
        if node is None:
            raise InputError("no input volume: load or choose a volume first")
        module_values = self.module_values(values)
        volume = self.logic.inputVolume(node)  # MRML read on the event loop
        self.logic.describe(node, module_values)  # a bad spacing/axis is reported before the thread starts
        logic = self.logic

        def compute(progress, cancel):
            return logic.compute(volume, module_values, progress, cancel)

        def on_done(result) -> None:
            out = logic.finish(node, result)
            self.output_node = out
            self.hide_preview()
            self.studio.show_result(out)
            self._set(output=out.GetName(), output_id=out.GetID(), grid=f"Done: {out.GetName()} ({result.grid.describe()})")

        return compute, on_done

    def sheet_job(self, values: Dict[str, Any], texts):
        """Teaching sheet (:class:`~medsynth_studio.sheets.TeachingSheet`): a region of the input at each setting
        beside the input as acquired (:func:`medsynth.superres.sheet.superres_sheet`, as ``medsynth sheet
        superres``), with the panel's spacing, axis, method and gate for what does not vary, around the centre of
        the axial view (the volume's centre when the view is outside it), in the input's window/level when one was
        chosen (else the sheet's own)."""
        import numpy as np

        from medsynth.superres.sheet import SHEET_PARAMS, superres_sheet

        node = self.node("volume")
        if node is None:
            raise InputError("no input volume: load or choose a volume first")
        fixed = {p.name: values[p.name] for p in SHEET_PARAMS}
        items = parse_request(texts, SHEET_PARAMS, None, fixed)
        varied = {name for name, _ in items}
        fixed = {k: v for k, v in fixed.items() if k not in varied}
        volume = self.logic.inputVolume(node)  # MRML read on the event loop
        ras = None
        view = self.studio.axial_view()
        if view is not None:
            centre = np.asarray(self.studio.slice_plane(view)[0], float)
            ijk = volume.ras_to_ijk_points(centre[None])[0]
            if all(0 <= ijk[a] <= volume.shape_ijk[a] - 1 for a in range(3)):
                ras = [float(x) for x in centre]
        window = None  # automatic window/level: the sheet's own (percentiles of the input's region)
        display = node.GetDisplayNode()
        if display is not None and not display.GetAutoWindowLevel() and display.GetWindow() > 0:  # one chosen
            window = (display.GetLevel() - display.GetWindow() / 2.0, display.GetLevel() + display.GetWindow() / 2.0)

        def write(path, progress):
            return superres_sheet(volume, path, items, fixed, ras=ras, window=window, progress=progress)

        return f"{node.GetName()}_superres_sheet", write

    def on_thick(self, values: Dict[str, Any]) -> None:
        from medsynth.superres.degrade import degrade_volume
        from medsynth_mrml import node_from_volume

        node = self.node("volume")
        if node is None:
            raise InputError("no input volume: load or choose a volume first")
        axis = values["axis"] if values["axis"] != "auto" else "k"
        thick, _span = degrade_volume(self.logic.inputVolume(node), axis, THICK_FACTOR)
        out = node_from_volume(self.studio.scene, thick, reference_node=node)
        _copy_display(node, out)
        self.studio.flush_scene_changes()
        self.refresh_inputs()
        self.select_node("volume", out)
        self.studio.show_result(out)
        self._set(output=out.GetName(), output_id=out.GetID())

    # ------------------------------------------------------------------ UI
    def build_extra(self) -> None:
        from trame.widgets import html
        from trame.widgets import vuetify3 as v3

        html.Div("{{ %s }}" % self.key("grid"), classes="text-caption mt-1 medsynth-superres-grid")
        html.Div("{{ %s }}" % self.key("preview"), v_if=(self.key("preview"),),
                 classes="text-caption medsynth-superres-preview")
        v3.VAlert(text=(self.key("model_note"),), v_if=(self.key("model_note"),), type="info", density="compact",
                  variant="tonal", classes="mt-1 text-caption medsynth-model-note")


def _copy_display(src_node, dst_node, fixed: bool = False) -> None:
    """Show ``dst_node`` with ``src_node``'s colours and window/level (as the logic's finish() does).

    ``fixed``: copy the window/level now shown even when the source's is automatic (a preview slab
    must look like the volume under it, not get its own automatic window/level).
    """
    src, dst = src_node.GetDisplayNode(), dst_node.GetDisplayNode()
    if dst is None:
        dst_node.CreateDefaultDisplayNodes()
        dst = dst_node.GetDisplayNode()
    if src is None or dst is None:
        return
    was = dst.StartModify()
    if dst.GetColorNodeID() != src.GetColorNodeID():
        dst.SetAndObserveColorNodeID(src.GetColorNodeID())
    auto = bool(src.GetAutoWindowLevel()) and not fixed
    dst.SetAutoWindowLevel(auto)
    if not auto:
        dst.SetWindowLevel(src.GetWindow(), src.GetLevel())
    dst.EndModify(was)
