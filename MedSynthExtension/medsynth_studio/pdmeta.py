"""The PDMetabolism panel: MetaAD anomaly maps of an FDG brain PET, a regional table, jump to a region.

The studio face of the PDMetabolism module: the same parameters (``PDMetabolismLib.PARAMS``: input
space; map threshold and opacity, live) and the same logic class (``PDMetabolismLogic``) as its Slicer panel:

* *Detect anomalies*: ``logic.inputVolume`` -> ``logic.compute`` (worker thread, progress, Cancel) ->
  ``logic.finish``: the absolute anomaly map over the FDG (thresholded colour foreground), the signed map and
  the regional table (its rows in the panel, largest |z| first);
* live: *Map threshold* calls ``logic.setMapThreshold``, *Map opacity* sets the foreground opacity;
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
        self.map_node = None
        self.table_node = None
        for key, value in (("status", ""), ("score", ""), ("output", ""), ("output_id", ""), ("rows", []),
                           ("columns", list(TABLE_COLUMNS))):
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

    # ------------------------------------------------------------------ live
    def update(self, values: Dict[str, Any], changed: str) -> None:
        if not self._map_shown():
            return
        if changed == "threshold":
            self.logic.setMapThreshold(self.map_node, values["threshold"])
        elif changed == "opacity":
            for view in self.studio.slice_views():
                view.set_foreground_opacity(float(values["opacity"]))
        self.studio.render(threed=False)

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
            map_node, _signed, table = logic.finish(node, result, current)
            self.map_node, self.table_node = map_node, table
            self.studio.flush_scene_changes()
            self.studio.show_result(node)
            self.studio.set_foreground(map_node, current["opacity"])
            rows = [{c: table.GetCellText(r, table.GetColumnIndex(c)) for c in TABLE_COLUMNS}
                    for r in range(table.GetNumberOfRows())]
            s = result.report()["subject_score"]
            self._set(rows=rows, output=map_node.GetName(), output_id=map_node.GetID(),
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
                    html.Td("{{ row[c] }}", v_for=f"c in {columns}", key="c")
