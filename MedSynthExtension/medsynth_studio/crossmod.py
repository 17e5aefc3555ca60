"""The CrossModality panel: FDG -> synthetic CFT PET with striatal binding ratios and a PD classification; MR -> CT
with a 511 keV mu-map.

The studio face of the CrossModality module: the same parameters (``CrossModalityLib.PARAMS``: the PET
part's reference region and input space, the MR part's tile size and tube voltage), the same node
inputs (``NODE_REFERENCES``: FDG, MR, CT) and the same logic class (``CrossModalityLogic``) as its
Slicer panel.  Every engine step is a long action (progress, Cancel; nothing added when cancelled):

* *Synthesize CFT*: ``logic.inputVolume`` -> ``compute_synthesis`` (thread) -> ``finish_synthesis``: the FDG
  in the slice backgrounds, the synthetic CFT over it (opacity 0.5), as the Slicer panel;
* *Striatal binding*: ``compute_binding`` -> ``finish_binding``: the SBR table node (its rows shown in the
  panel) and the regions segmentation, shown in the views;
* *Classify PD (FDG + synthetic CFT)*: ``logic.classifierEntry`` (a missing model is said before the thread) ->
  ``compute_classification`` -> ``finish_classification``: the result line in the panel, the synthetic CFT the
  classifier saw over the FDG, as the Slicer panel;
* *Synthesize CT*: ``logic.mrVolume`` -> ``compute_ct`` -> ``finish_ct`` (CT window), chosen as the CT input;
* *mu-map (511 keV)*: ``logic.muMap`` (fast, on the event loop).

*Simulated FDG* adds one simulated subject's FDG PET (``medsynth.pet.simulate``, as the module's self-test
does) so the PET part works without PET data; the sample MNI T1 serves as the MR.
"""

from __future__ import annotations

from typing import Any, Dict, List

from medsynth.errors import InputError
from medsynth.params import Param

from .controls import build_control
from .modules import import_lib
from .panel import Action, NodeInput, StudioPanel

_lib = import_lib("CrossModality")  # ImportError when the module has not landed: the panel is skipped
CrossModalityLogic = _lib.CrossModalityLogic
MODULE_PARAMS = tuple(_lib.PARAMS)
PET_PARAMS = tuple(_lib.PET_PARAMS)
MR_PARAMS = tuple(_lib.MR_PARAMS)

#: the sample MR the studio loads at start (preferred as the MR input)
SAMPLE_MR = "mni_t1_2mm"
#: the CFT over the FDG, as the Slicer panel shows it
OVERLAY_OPACITY = 0.5
#: columns of the SBR table shown in the panel (``CrossModalityLib.logic.sbr_rows``)
SBR_COLUMNS = ("region", "SBR_L", "SBR_R", "SUVR_L", "SUVR_R", "asymmetry_index_percent", "lower_side")

DEMO_PARAMS = (
    Param("sim_group", str, "PD", "Simulated subject", choices=("NC", "PD"),
          help="group of the simulated FDG subject: healthy control (NC) or Parkinson's disease (PD)"),
    Param("sim_seed", int, 3, "Simulation seed", 0, 999, 1, help="seed of the simulated subject"),
)
MODULE_NAMES = tuple(p.name for p in MODULE_PARAMS)


class CrossModalityPanel(StudioPanel):
    """Synthetic CFT and striatal binding from FDG PET; synthetic CT and mu-map from MR."""

    id = "crossmod"
    title = "Cross-modality synthesis"
    icon = "mdi-swap-horizontal-bold"
    params = MODULE_PARAMS + DEMO_PARAMS
    inputs = (
        NodeInput("fdg", "FDG PET (Synthesize CFT, Striatal binding)", none_allowed=True, live=False,
                  help="an 18F-FDG brain PET (MNI or native space); Simulated FDG adds one"),
        NodeInput("mr", "MR (Synthesize CT)", none_allowed=True, live=False, help="a head MR (T1)"),
        NodeInput("ct", "CT (mu-map 511 keV)", none_allowed=True, live=False,
                  help="a CT or synthetic CT (Synthesize CT chooses its output)"),
    )
    actions = (
        Action("synthesize", "Synthesize CFT", icon="mdi-play", help="synthetic 11C-CFT PET from the FDG"),
        Action("binding", "Striatal binding", icon="mdi-table", help="SBRs of the synthetic CFT: table + regions"),
        Action("classify", "Classify PD (FDG + synthetic CFT)", icon="mdi-brain",
               help="PD probability from the FDG and its synthetic CFT (trained on simulated PET; not a diagnosis)"),
        Action("ct", "Synthesize CT", icon="mdi-skull", help="synthetic CT (HU) from the MR"),
        Action("mumap", "mu-map 511 keV", icon="mdi-radioactive", help="linear attenuation at 511 keV of the CT"),
        Action("simulate", "Simulated FDG", icon="mdi-flask-outline", color="secondary",
               help="add a simulated subject's FDG PET (no PET data needed) and choose it"),
    )
    logic_class = CrossModalityLogic

    def __init__(self, studio) -> None:
        self._mr_defaulted = False
        super().__init__(studio)
        for key, value in (("status", ""), ("classification", ""), ("output", ""), ("output_id", ""), ("sbr_rows", []),
                           ("sbr_columns", list(SBR_COLUMNS)), ("table", ""), ("segmentation", "")):
            self.state.setdefault(self.key(key), value)

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def module_values(values: Dict[str, Any]) -> Dict[str, Any]:
        return {k: values[k] for k in MODULE_NAMES}

    @staticmethod
    def pet_values(values: Dict[str, Any]) -> Dict[str, Any]:
        """The PET part's values only: ``compute_synthesis`` / ``compute_binding`` validate against
        ``PET_PARAMS`` and refuse the MR part's keys (``compute_ct`` takes all of ``PARAMS``)."""
        return {p.name: values[p.name] for p in PET_PARAMS}

    def _set(self, **values: Any) -> None:
        with self.state:
            for name, value in values.items():
                self.state[self.key(name)] = value

    def _require(self, name: str, what: str):
        node = self.node(name)
        if node is None:
            raise InputError(f"no {what} volume: choose one first")
        return node

    def _added(self, node, input_name: str = "") -> None:
        """A node the logic added: selectors refreshed now (not at the next scene flush), optionally chosen."""
        self.studio.flush_scene_changes()
        self.refresh_inputs()
        if input_name:
            self.select_node(input_name, node)

    def on_scene_changed(self) -> None:
        self.refresh_inputs()
        if not self._mr_defaulted and not self.state[self.key("mr")]:
            sample = next((n for n in self.studio.volume_nodes() if n.GetName() == SAMPLE_MR), None)
            if sample is not None:
                self._mr_defaulted = True
                self.select_node("mr", sample)  # the sample MNI T1 is the demo MR (once: "None" stays chosen)

    def _show_with_overlay(self, background, overlay) -> None:
        """``background`` as the active volume and ``overlay`` over it (the Volumes panel's overlay when present)."""
        self.studio.show_result(background)
        volumes = self.studio.panel("volumes")
        if volumes is not None:
            volumes.set_values(overlay_opacity=OVERLAY_OPACITY)
            volumes.select_node("overlay", overlay)
        else:
            self.studio.set_foreground(overlay, OVERLAY_OPACITY)

    # ------------------------------------------------------------------ actions
    def on_simulate(self, values: Dict[str, Any]):
        def chosen(node) -> None:
            self._added(node, "fdg")
            self.studio.show_result(node, reset_views=True)
            self._set(status=f"Simulated FDG {node.GetName()} added and chosen as the FDG input.")

        return simulated_fdg_task(self.studio, values["sim_group"], values["sim_seed"], chosen)

    def on_synthesize(self, values: Dict[str, Any]):
        node = self._require("fdg", "FDG PET")
        module_values = self.pet_values(values)
        volume = self.logic.inputVolume(node)  # MRML read and checks on the event loop: bad input before the thread
        logic = self.logic

        def compute(progress, cancel):
            return logic.compute_synthesis(volume, module_values, progress, cancel)

        def on_done(result) -> None:
            out = logic.finish_synthesis(node, result)
            self._added(out)
            self._show_with_overlay(node, out)
            self._set(output=out.GetName(), output_id=out.GetID(),
                      status=(f"Done: {out.GetName()} (SUVR; input {result.space}) in {result.seconds:.1f} s. "
                              "Synthetic, from a generator trained on simulated PET."))

        return compute, on_done

    def on_binding(self, values: Dict[str, Any]):
        node = self._require("fdg", "FDG PET")
        module_values = self.pet_values(values)
        volume = self.logic.inputVolume(node)
        logic = self.logic

        def compute(progress, cancel):
            return logic.compute_binding(volume, module_values, progress, cancel)

        def on_done(result) -> None:
            table, segmentation = logic.finish_binding(node, result)
            self._added(table)
            self.studio.show_result(node)
            self.studio.show_segmentation(segmentation, surfaces_in_3d=False)
            rows = self.table_rows(table)
            pp = next((r for r in rows if r.get("region") == "putamen_posterior"), {})
            self._set(sbr_rows=rows, table=table.GetName(), segmentation=segmentation.GetName(),
                      output=table.GetName(), output_id=table.GetID(),
                      status=(f"Posterior putamen SBR (synthetic CFT): L {pp.get('SBR_L', '?')}, "
                              f"R {pp.get('SBR_R', '?')}; table '{table.GetName()}', regions "
                              f"'{segmentation.GetName()}'."))

        return compute, on_done

    def on_classify(self, values: Dict[str, Any]):
        node = self._require("fdg", "FDG PET")
        module_values = self.pet_values(values)
        volume = self.logic.inputVolume(node)
        self.logic.classifierEntry()  # a missing classifier model is said now, not after the synthesis
        logic = self.logic
        self._set(classification="")

        def compute(progress, cancel):
            return logic.compute_classification(volume, module_values, progress, cancel)

        def on_done(result) -> None:
            classification = logic.finish_classification(node, result)
            out = classification.cftNode
            self._added(out)
            self._show_with_overlay(node, out)
            self._set(classification=classification.line, output=out.GetName(), output_id=out.GetID(),
                      status=(f"Classified in {result.seconds:.1f} s (input {result.space}); synthetic CFT "
                              f"'{out.GetName()}' over the FDG."))

        return compute, on_done

    @staticmethod
    def table_rows(table) -> List[Dict[str, str]]:
        """The table node's rows as dicts of text (column name -> cell text), for the page."""
        names = [table.GetColumnName(c) for c in range(table.GetNumberOfColumns())]
        return [{n: table.GetCellText(r, c) for c, n in enumerate(names)} for r in range(table.GetNumberOfRows())]

    def on_ct(self, values: Dict[str, Any]):
        node = self._require("mr", "MR")
        module_values = self.module_values(values)
        volume = self.logic.mrVolume(node)
        logic = self.logic

        def compute(progress, cancel):
            return logic.compute_ct(volume, module_values, progress, cancel)

        def on_done(ct) -> None:
            out = logic.finish_ct(node, ct)
            self._added(out, "ct")
            self.studio.show_result(out)
            self._set(output=out.GetName(), output_id=out.GetID(),
                      status=f"Done: {out.GetName()} (synthetic CT, HU, CT window).")

        return compute, on_done

    def on_mumap(self, values: Dict[str, Any]) -> None:
        node = self._require("ct", "CT")
        out = self.logic.muMap(node, kvp=values["kvp"])
        self._added(out)
        self.studio.show_result(out)
        self._set(output=out.GetName(), output_id=out.GetID(),
                  status=f"Done: {out.GetName()} (linear attenuation at 511 keV, cm^-1).")

    # ------------------------------------------------------------------ UI
    def build_params(self, busy: str) -> None:
        from trame.widgets import html

        html.Div("PET: FDG -> CFT", classes="text-subtitle-2")
        for param in PET_PARAMS:
            build_control(param, self.id, disabled=busy)
        html.Div("MR -> CT", classes="text-subtitle-2 mt-2")
        for param in MR_PARAMS:
            build_control(param, self.id, disabled=busy)
        html.Div("Demo data", classes="text-subtitle-2 mt-2")
        with html.Div(classes="d-flex ga-1"):
            for param in DEMO_PARAMS:
                build_control(param, self.id, disabled=busy)

    def build_extra(self) -> None:
        from trame.widgets import html
        from trame.widgets import vuetify3 as v3

        html.Div("{{ %s }}" % self.key("status"), v_if=(self.key("status"),),
                 classes="text-caption mt-1 medsynth-crossmod-status")
        html.Div("{{ %s }}" % self.key("classification"), v_if=(self.key("classification"),),
                 classes="text-body-2 mt-1 medsynth-crossmod-classification")
        rows, columns = self.key("sbr_rows"), self.key("sbr_columns")
        with v3.VTable(v_if=(f"{rows}.length",), density="compact", classes="mt-1 text-caption medsynth-crossmod-sbr"):
            with html.Thead():
                with html.Tr():
                    html.Th("{{ c.replace('_index_percent', ' %').replace('_', ' ') }}", v_for=f"c in {columns}",
                            key="c")
            with html.Tbody():
                with html.Tr(v_for=f"row in {rows}", key="row.region", classes="medsynth-crossmod-sbr-row"):
                    html.Td("{{ row[c] }}", v_for=f"c in {columns}", key="c")


def simulated_fdg_task(studio, group: str, seed: int, on_node):
    """The long action that adds one simulated subject's FDG PET (``medsynth.pet.simulate``, as the PET modules'
    self-tests do) as a volume node: ``(compute, on_done)``; ``on_node(node)`` then chooses and shows it."""

    def compute(progress, cancel):
        from medsynth.pet.simulate import simulated_subject

        progress(0.1, f"simulating a {group} subject")
        subject = simulated_subject(group, seed)
        cancel.raise_if_cancelled()
        return subject.fdg

    def on_done(fdg) -> None:
        from medsynth_mrml import node_from_volume

        node = node_from_volume(studio.scene, fdg, name=f"FDG_{group}_sim{seed}")
        node.SetAttribute("DICOM.Modality", "PT")
        node.SetAttribute("MedSynth.Note", "simulated FDG PET (medsynth.pet.simulate), not a measurement")
        on_node(node)

    return compute, on_done
