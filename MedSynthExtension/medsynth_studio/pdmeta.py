"""The PDMetabolism panel: MetaAD anomaly maps of an FDG brain PET, a regional table, jump to a region.

The studio face of the PDMetabolism module: the same parameters (``PDMetabolismLib.PARAMS``: input
space; map threshold |z| and opacity, live) and the same logic class (``PDMetabolismLogic``) as its Slicer panel:

* *Detect anomalies*: ``logic.inputVolume`` -> ``logic.compute`` (worker thread, progress, Cancel) ->
  ``logic.finish``: the regional-SD z map over the FDG as the slice foreground (the logic's diverging colour table:
  blue = hypo-, red = hypermetabolism, +-4 z, |z| below the threshold hidden), ``logic.show3D``: its volume
  rendering in the 3D view (the studio's Volume Rendering logic; the FDG's rendering is hidden, one volume in 3D as
  elsewhere in the studio); the absolute and signed maps as further nodes; the regional table (its rows in the
  panel, largest |z| first, z coloured by sign) and the colour legend (``z_legend``: the logic's title, window,
  threshold and colours) in the panel;
* live: *Map threshold |z|* calls ``logic.setZThreshold`` (slices and 3D), *Map opacity* sets the foreground opacity;
* a click on a table row calls ``logic.jumpToRegion`` (the slice views centred on the region's centroid);
* *Simulated FDG*: one simulated subject (as the module's self-test), so the panel works without PET data.
"""

from __future__ import annotations

from typing import Any, Dict

from medsynth.errors import InputError
from medsynth.params import Param

from .crossmod import simulated_fdg_task
from .modules import import_lib
from .panel import Action, NodeInput, StudioPanel

_lib = import_lib("PDMetabolism")  # ImportError when the module has not landed: the panel is skipped
PDMetabolismLogic = _lib.PDMetabolismLogic
z_legend = _lib.z_legend
MODULE_PARAMS = tuple(_lib.PARAMS)
MODULE_NAMES = tuple(p.name for p in MODULE_PARAMS)
#: columns of the regional table shown in the panel
TABLE_COLUMNS = ("region", "z", "residual_percent", "direction", "abnormal")

DEMO_PARAMS = (
    Param("sim_group", str, "PD", "Simulated subject", choices=("NC", "PD"),
          help="group of the simulated FDG subject: healthy control (NC) or Parkinson's disease (PD)"),
    Param("sim_seed", int, 11, "Simulation seed", 0, 999, 1, help="seed of the simulated subject"),
)


class PDMetabolismPanel(StudioPanel):
    """MetaAD anomaly detection in FDG PET with a live threshold and a regional table."""

    id = "pdmeta"
    title = "PD metabolism (anomaly maps)"
    icon = "mdi-head-snowflake-outline"
    params = MODULE_PARAMS + DEMO_PARAMS
    inputs = (NodeInput("fdg", "FDG PET", none_allowed=True, live=False,
                        help="an 18F-FDG brain PET (MNI or native space); Simulated FDG adds one"),)
    actions = (
        Action("detect", "Detect anomalies", icon="mdi-play", help="MetaAD: anomaly maps and regional table"),
        Action("simulate", "Simulated FDG", icon="mdi-flask-outline", color="secondary",
               help="add a simulated subject's FDG PET (no PET data needed) and choose it"),
    )
    logic_class = PDMetabolismLogic

    def __init__(self, studio) -> None:
        super().__init__(studio)
        self.map_node = None  # the z map (the foreground)
        self.table_node = None
        self.shown_3d = ""
        app_logic = getattr(getattr(studio, "slicer_app", None), "app_logic", None)
        if app_logic is not None and self.logic is not None:  # the studio's own Volume Rendering logic
            self.logic.volumeRenderingLogic = app_logic.GetModuleLogic("VolumeRendering")
        for key, value in (("status", ""), ("score", ""), ("output", ""), ("output_id", ""), ("rows", []),
                           ("columns", list(TABLE_COLUMNS)), ("legend", {}), ("legend_css", "")):
            self.state.setdefault(self.key(key), value)

    @staticmethod
    def module_values(values: Dict[str, Any]) -> Dict[str, Any]:
        return {k: values[k] for k in MODULE_NAMES}

    def _set(self, **values: Any) -> None:
        with self.state:
            for name, value in values.items():
                self.state[self.key(name)] = value

    def _map_shown(self) -> bool:
        return self.map_node is not None and self.studio.scene.GetNodeByID(self.map_node.GetID()) is not None

    def _show_legend(self, threshold: float) -> None:
        """The logic's legend (title, window, threshold, colours) as panel state and a CSS gradient: the two
        coloured tails, the hidden band |z| < threshold left blank."""
        legend = z_legend(threshold)
        lo, hi = legend["min"], legend["max"]

        def pos(v: float) -> str:
            return f"{100.0 * (v - lo) / (hi - lo):.2f}%"

        stops = [f"{c} {pos(v)}" for v, c in legend["hypo"]]
        stops += [f"transparent {pos(legend['hypo'][-1][0])}", f"transparent {pos(legend['hyper'][0][0])}"]
        stops += [f"{c} {pos(v)}" for v, c in legend["hyper"]]
        self._set(legend=legend, legend_css=f"linear-gradient(to right, {', '.join(stops)})")

    # ------------------------------------------------------------------ live
    def update(self, values: Dict[str, Any], changed: str) -> None:
        if not self._map_shown():
            return
        if changed == "z_threshold":
            self.logic.setZThreshold(self.map_node, values["z_threshold"])
            self._show_legend(values["z_threshold"])
            self.studio.render(threed=self.shown_3d == "volume rendering")
            return
        if changed == "opacity":
            for view in self.studio.slice_views():
                view.set_foreground_opacity(float(values["opacity"]))
        self.studio.render(threed=False)

    def _show_3d(self, fdg, z_node, threshold: float) -> None:
        """``logic.show3D``; with a volume rendering of the z map, the FDG's own rendering is hidden."""
        self.shown_3d = self.logic.show3D(z_node, threshold)
        if self.shown_3d == "volume rendering":
            vr = getattr(getattr(self.studio, "slicer_app", None), "volume_rendering", None)
            if vr is not None and vr.has_vr_display_node(fdg):
                vr.get_vr_display_node(fdg).SetVisibility(False)

    # ------------------------------------------------------------------ actions
    def on_simulate(self, values: Dict[str, Any]):
        def chosen(node) -> None:
            self.studio.flush_scene_changes()
            self.refresh_inputs()
            self.select_node("fdg", node)
            self.studio.show_result(node, reset_views=True)
            self._set(status=f"Simulated FDG {node.GetName()} added and chosen as the input.")

        return simulated_fdg_task(self.studio, values["sim_group"], values["sim_seed"], chosen)

    def on_detect(self, values: Dict[str, Any]):
        node = self.node("fdg")
        if node is None:
            raise InputError("no FDG PET volume: choose one first (or press Simulated FDG)")
        module_values = self.module_values(values)
        volume = self.logic.inputVolume(node)
        logic = self.logic

        def compute(progress, cancel):
            return logic.compute(volume, module_values, progress, cancel)

        def on_done(result) -> None:
            current = self.module_values(self.values())  # threshold/opacity may have moved while it ran
            nodes = logic.finish(node, result, current)
            self.map_node, self.table_node = nodes.z, nodes.table
            self.studio.flush_scene_changes()
            self.studio.show_result(node)
            self.studio.set_foreground(nodes.z, current["opacity"])
            self._show_3d(node, nodes.z, current["z_threshold"])
            self._show_legend(current["z_threshold"])
            self.studio.render()
            table = nodes.table
            rows = [{c: table.GetCellText(r, table.GetColumnIndex(c)) for c in TABLE_COLUMNS}
                    for r in range(table.GetNumberOfRows())]
            s = result.report()["subject_score"]
            self._set(rows=rows, output=nodes.z.GetName(), output_id=nodes.z.GetID(),
                      score=(f"Score ({s['name']}): {s['value']:.2f}; threshold {s['threshold']:.2f} "
                             f"({'ABOVE' if s['abnormal'] else 'below'}; {s['threshold_rule']})"),
                      status=f"Done in {result.seconds:.1f} s (input {result.space}). Simulated-data model.")

        return compute, on_done

    def jump_to_region(self, row: int) -> None:
        """A click on a table row: the slice views centred on that region (``logic.jumpToRegion``)."""
        if self.table_node is None:
            return
        try:
            ras = self.logic.jumpToRegion(self.table_node, int(row))
        except Exception as exc:  # noqa: BLE001 - shown in the page
            from .tasks import error_text

            self.show_error(error_text(exc))
            return
        self.studio.render()
        self._set(status=f"Region centroid R {ras[0]:.0f}, A {ras[1]:.0f}, S {ras[2]:.0f} mm")

    # ------------------------------------------------------------------ UI
    def build_extra(self) -> None:
        from trame.widgets import html
        from trame.widgets import vuetify3 as v3

        html.Div("{{ %s }}" % self.key("score"), v_if=(self.key("score"),),
                 classes="text-caption mt-1 medsynth-pdmeta-score")
        html.Div("{{ %s }}" % self.key("status"), v_if=(self.key("status"),),
                 classes="text-caption mt-1 medsynth-pdmeta-status")
        legend, css = self.key("legend"), self.key("legend_css")
        with html.Div(v_if=(f"{legend} && {legend}.title",), classes="mt-1 text-caption medsynth-pdmeta-legend"):
            html.Div("{{ %s.title }}" % legend, classes="medsynth-pdmeta-legend-title")
            html.Div(style=(f"{{ background: {css}, height: '12px', border: '1px solid #888' }}",),
                     classes="medsynth-pdmeta-legend-bar")
            with html.Div(classes="d-flex justify-space-between"):
                html.Span("{{ %s.min }}" % legend)
                html.Span("hidden: |z| < {{ %s.threshold }}" % legend)
                html.Span("+{{ %s.max }}" % legend)
        rows, columns = self.key("rows"), self.key("columns")
        with v3.VTable(v_if=(f"{rows}.length",), density="compact", height=240, fixed_header=True,
                       classes="mt-1 text-caption medsynth-pdmeta-table"):
            with html.Thead():
                with html.Tr():
                    html.Th("{{ c.replace('_percent', ' %').replace('_', ' ') }}", v_for=f"c in {columns}", key="c")
            with html.Tbody():
                with html.Tr(v_for=f"(row, i) in {rows}", key="i", click=(self.jump_to_region, "[i]"),
                             style="cursor: pointer;", classes="medsynth-pdmeta-row",
                             title="centre the slice views on this region"):
                    html.Td("{{ row[c] }}", v_for=f"c in {columns}", key="c",
                            style=("c === 'z' && row.abnormal === 'yes' ? { color: row.direction === 'hypo' ? "
                                   "'#2166ac' : '#b2182b', fontWeight: 600 } : {}",))
