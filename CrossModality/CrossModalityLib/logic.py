"""CrossModality logic over MRML nodes (PET part): FDG volume node -> synthetic CFT volume node; striatal binding
of the synthetic CFT -> table node + segmentation of the striatal and reference regions on the input's grid;
PD classification from the FDG and its synthetic CFT -> one result line (+ report, + the synthetic CFT node).

Usable from Slicer's Python console without the panel::

    from CrossModalityLib import CrossModalityLogic
    logic = CrossModalityLogic(slicer.mrmlScene)
    cftNode = logic.synthesize(fdgNode)                       # new volume node beside the input
    tableNode, segmentationNode = logic.striatalBinding(fdgNode)
    pd = logic.classifyPD(fdgNode)                             # PD probability of [FDG, synthetic CFT]
    print(pd.line)                                            # one sentence; pd.report: the JSON report

Each long step is split in ``compute_*`` (engine only: runs in a worker thread, with progress and cancel) and
``finish_*`` (adds the nodes; main thread). Nothing is added to the scene when the computation fails or is cancelled.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from medsynth.mrct import MRCT_PARAMS
from medsynth.params import validate
from medsynth.pet.sbr import SBR_PARAMS, SBR_REGIONS
from medsynth.progress import CancelToken, ProgressCallback
from medsynth.volume import Volume
from medsynth_mrml import (
    node_from_volume,
    remove_node,
    segmentation_node_from_labels,
    table_node_from_rows,
    volume_from_node,
)

#: parameters of the PET part: reference region of the SBR, and how the input reaches MNI space
PET_PARAMS = tuple(SBR_PARAMS)
#: parameters of the MR part: tile size of the CT synthesis, tube voltage of the mu-map's bone scaling
MR_PARAMS = tuple(MRCT_PARAMS)
PARAMS = PET_PARAMS + MR_PARAMS
#: node references of the module's parameter node (name -> MRML class name)
NODE_REFERENCES = {
    "fdgVolume": "vtkMRMLScalarVolumeNode",
    "mrVolume": "vtkMRMLScalarVolumeNode",
    "ctVolume": "vtkMRMLScalarVolumeNode",
}
#: display of a (synthetic) CT: Slicer's soft-tissue CT window
CT_WINDOW_LEVEL = (400.0, 40.0)

#: segments of the regions segmentation: label value -> (name, colour)
_COLOURS = {
    "caudate": (0.35, 0.65, 0.95),
    "putamen_anterior": (0.95, 0.75, 0.25),
    "putamen_posterior": (0.9, 0.3, 0.25),
    "occipital": (0.55, 0.8, 0.45),
    "cerebellum_gm": (0.7, 0.55, 0.85),
}
NOTE = "synthetic CFT from a generator trained on simulated PET (MedSynth docs/pet.md); not a measurement"


@dataclass
class PDClassification:
    """What :meth:`CrossModalityLogic.classifyPD` returns: the engine's result as the panels show it."""

    line: str  #: one sentence (PD probability, threshold, label, SBR of the synthetic CFT; "not a diagnosis")
    report: Dict[str, Any]  #: the engine's JSON report (``ClassifyResult.report()``; as ``medsynth pd-classify``)
    cftNode: Any  #: the synthetic CFT volume node added beside the input (None when not asked for)
    result: Any  #: the engine's :class:`medsynth.pet.classify.ClassifyResult`

    @property
    def probability(self) -> float:
        return self.result.probability

    @property
    def label(self) -> str:
        return self.result.label


def region_segments(reference: str = "occipital") -> Dict[int, Tuple[str, Tuple[float, float, float]]]:
    """``{label: (segment name, colour)}`` of the striatal subregions and the reference region."""
    from medsynth.pet.atlas import LABEL_OF, REFERENCE_REGIONS, STRIATAL_REGIONS

    names = [f"{p}_{s}" for p in STRIATAL_REGIONS for s in ("L", "R")] + list(REFERENCE_REGIONS[reference])
    out = {}
    for name in names:
        base = name.rsplit("_", 1)[0]
        out[LABEL_OF[name]] = (name, _COLOURS.get(base, (0.8, 0.8, 0.8)))
    return out


def sbr_rows(result: Any) -> List[Dict[str, Any]]:
    """Table rows of an :class:`medsynth.pet.sbr.SBRResult`: one per region, left/right SBR and SUVR, asymmetry."""
    asym = result.asymmetry()
    rows = []
    for region in SBR_REGIONS:
        rows.append(
            {
                "region": region,
                "SBR_L": round(result.sbr[f"{region}_L"], 4),
                "SBR_R": round(result.sbr[f"{region}_R"], 4),
                "SUVR_L": round(result.suvr[f"{region}_L"], 4),
                "SUVR_R": round(result.suvr[f"{region}_R"], 4),
                "asymmetry_index_percent": asym[region]["index_percent"],
                "lower_side": asym[region]["lower_side"],
            }
        )
    return rows


class CrossModalityLogic:
    """Cross-modality synthesis on volume nodes of ``scene`` (PET part: FDG -> CFT, striatal binding)."""

    def __init__(self, scene: Any) -> None:
        self.scene = scene

    # ------------------------------------------------------------------ input
    def inputVolume(self, node: Any) -> Volume:
        """The engine volume of an FDG ``node`` (checked: a 3D scalar volume that can be a brain PET)."""
        from medsynth.pet.checks import check_pet_volume

        volume = volume_from_node(node)
        check_pet_volume(volume, "FDG")
        return volume

    # ------------------------------------------------------------------ Synthesize CFT
    @staticmethod
    def compute_synthesis(
        volume: Volume,
        values: Optional[Dict[str, Any]] = None,
        progress: Optional[ProgressCallback] = None,
        cancel: Optional[CancelToken] = None,
    ) -> Any:
        """Engine step (worker thread): the synthetic CFT on the input's grid (:class:`SynthesisResult`)."""
        from medsynth.pet.synthesis import synthesize

        v = validate(PARAMS, values or {})
        return synthesize(volume, "fdg2cft", v["space"], progress, cancel)

    def finish_synthesis(self, input_node: Any, result: Any) -> Any:
        """A new volume node beside the input holding the synthetic CFT (SUVR), with a PET colour map."""
        out = node_from_volume(self.scene, result.volume, reference_node=input_node, suffix="synthetic_CFT")
        try:
            out.SetAttribute("DICOM.Modality", "PT")
            out.SetAttribute("MedSynth.CrossModality", json.dumps(result.summary()))
            out.SetAttribute("MedSynth.Note", NOTE)
            self._pet_display(out, result.volume.array)
        except BaseException:
            remove_node(self.scene, out)
            raise
        return out

    def synthesize(
        self,
        input_node: Any,
        space: str = "auto",
        progress: Optional[ProgressCallback] = None,
        cancel: Optional[CancelToken] = None,
    ) -> Any:
        """Blocking: the synthetic CFT of an FDG node into a new volume node (the input node is never modified)."""
        result = self.compute_synthesis(self.inputVolume(input_node), {"space": space}, progress, cancel)
        if cancel is not None:
            cancel.raise_if_cancelled()
        return self.finish_synthesis(input_node, result)

    # ------------------------------------------------------------------ Striatal binding
    @staticmethod
    def compute_binding(
        volume: Volume,
        values: Optional[Dict[str, Any]] = None,
        progress: Optional[ProgressCallback] = None,
        cancel: Optional[CancelToken] = None,
    ) -> Tuple[Any, Any]:
        """Engine step (worker thread): ``(SynthesisResult, SBRResult)`` of the synthetic CFT of an FDG volume;
        ``SBRResult.labels_in_input`` holds the regions on the input's grid."""
        from medsynth.pet.synthesis import synthetic_cft_sbr

        v = validate(PARAMS, values or {})
        return synthetic_cft_sbr(volume, v["reference"], v["space"], progress, cancel)

    def finish_binding(self, input_node: Any, result: Tuple[Any, Any]) -> Tuple[Any, Any]:
        """A table node with the SBRs and a segmentation of the striatal and reference regions, beside the input."""
        syn, res = result
        stem = input_node.GetName() if input_node is not None and input_node.GetName() else "FDG"
        table = table_node_from_rows(
            self.scene, sbr_rows(res), name=f"{stem}_synthetic_CFT_SBR", reference_node=input_node
        )
        seg = None
        try:
            for key, value in (
                ("MedSynth.CrossModality.reference", res.reference),
                ("MedSynth.CrossModality.space", res.space),
                ("MedSynth.CrossModality.definition", "SUVR = mean(region)/mean(reference); SBR = SUVR - 1; "
                 "asymmetry index = 100*|SBR_L - SBR_R| / mean(SBR_L, SBR_R)"),
                ("MedSynth.CrossModality.model", json.dumps(syn.model)),
                ("MedSynth.Note", NOTE),
            ):
                table.SetAttribute(key, str(value))
            labels = res.labels_in_input.with_array(res.labels_in_input.array, name=f"{stem}_striatal_regions")
            seg = segmentation_node_from_labels(
                self.scene, labels, region_segments(res.reference), reference_node=input_node,
                name=f"{stem}_striatal_regions",
            )
        except BaseException:
            remove_node(self.scene, seg)
            remove_node(self.scene, table)
            raise
        return table, seg

    def striatalBinding(
        self,
        input_node: Any,
        reference: str = "occipital",
        space: str = "auto",
        progress: Optional[ProgressCallback] = None,
        cancel: Optional[CancelToken] = None,
    ) -> Tuple[Any, Any]:
        """Blocking: ``(table node, segmentation node)`` of the synthetic CFT of an FDG node."""
        result = self.compute_binding(
            self.inputVolume(input_node), {"reference": reference, "space": space}, progress, cancel
        )
        if cancel is not None:
            cancel.raise_if_cancelled()
        return self.finish_binding(input_node, result)

    # ------------------------------------------------------------------ Classify PD
    @staticmethod
    def classifierEntry() -> Any:
        """The manifest entry of the PD classifier; :class:`~medsynth.errors.ModelError` (naming the shipped
        models) when it is not installed: checked before a long classification starts."""
        from medsynth.pet.classify import MODEL_ID
        from medsynth.runtime import get_entry

        return get_entry(MODEL_ID)

    @staticmethod
    def compute_classification(
        volume: Volume,
        values: Optional[Dict[str, Any]] = None,
        progress: Optional[ProgressCallback] = None,
        cancel: Optional[CancelToken] = None,
    ) -> Any:
        """Engine step (worker thread): :class:`medsynth.pet.classify.ClassifyResult` of an FDG volume (PD
        probability from the FDG and its synthetic CFT; the synthetic CFT on the input's grid)."""
        from medsynth.pet.classify import classify

        v = validate(PARAMS, values or {})
        return classify(volume, v["space"], progress=progress, cancel=cancel)

    def finish_classification(self, input_node: Any, result: Any, addCFT: bool = True) -> PDClassification:
        """The result as the panels show it; with ``addCFT`` a new volume node beside the input holding the
        synthetic CFT the classifier saw (SUVR, PET colour map), the classification in its attributes."""
        report = result.report()
        out = None
        if addCFT:
            out = node_from_volume(self.scene, result.synthetic_cft, reference_node=input_node, suffix="synthetic_CFT")
            try:
                out.SetAttribute("DICOM.Modality", "PT")
                out.SetAttribute("MedSynth.CrossModality.classification", json.dumps(report))
                out.SetAttribute("MedSynth.Note", NOTE)
                self._pet_display(out, result.synthetic_cft.array)
            except BaseException:
                remove_node(self.scene, out)
                raise
        return PDClassification(line=result.line(), report=report, cftNode=out, result=result)

    def classifyPD(
        self,
        input_node: Any,
        space: str = "auto",
        addCFT: bool = True,
        progress: Optional[ProgressCallback] = None,
        cancel: Optional[CancelToken] = None,
    ) -> PDClassification:
        """Blocking: PD probability of an FDG node from the FDG and its synthetic CFT (``.line``, ``.report``;
        ``.cftNode``: the synthetic CFT added beside the input when ``addCFT``). The input node is never modified;
        trained on simulated PET only, not a diagnosis."""
        volume = self.inputVolume(input_node)
        self.classifierEntry()
        result = self.compute_classification(volume, {"space": space}, progress, cancel)
        if cancel is not None:
            cancel.raise_if_cancelled()
        return self.finish_classification(input_node, result, addCFT)

    # ------------------------------------------------------------------ MR -> CT
    @staticmethod
    def mrVolume(node: Any) -> Volume:
        """The engine volume of an MR ``node`` (checked: a 3D scalar volume that looks like MR, not CT or PET)."""
        from medsynth.mrct import check_mr

        volume = volume_from_node(node)
        check_mr(volume)
        return volume

    @staticmethod
    def compute_ct(
        volume: Volume,
        values: Optional[Dict[str, Any]] = None,
        progress: Optional[ProgressCallback] = None,
        cancel: Optional[CancelToken] = None,
    ) -> Volume:
        """Engine step (worker thread): the synthetic CT (HU) on the MR's grid."""
        from medsynth.mrct import synthesize_ct

        v = validate(PARAMS, values or {})
        return synthesize_ct(volume, progress, cancel, tile=v["tile"])

    def finish_ct(self, input_node: Any, ct: Volume) -> Any:
        """A new volume node beside the MR holding the synthetic CT, shown with a CT window."""
        out = node_from_volume(self.scene, ct, reference_node=input_node, suffix="synthetic_CT")
        out.SetAttribute("DICOM.Modality", "CT")
        out.SetAttribute("MedSynth.Note", "synthetic CT from a generator trained on synthetic MR/CT pairs "
                                          "(docs/mrct.md); not a measurement")
        display = out.GetDisplayNode()
        if display is not None:
            display.AutoWindowLevelOff()
            display.SetWindowLevel(*CT_WINDOW_LEVEL)
        return out

    def synthesizeCT(
        self,
        mr_node: Any,
        tile: int = 96,
        progress: Optional[ProgressCallback] = None,
        cancel: Optional[CancelToken] = None,
    ) -> Any:
        """Blocking: the synthetic CT of an MR node into a new volume node (the input node is never modified)."""
        ct = self.compute_ct(self.mrVolume(mr_node), {"tile": tile}, progress, cancel)
        if cancel is not None:
            cancel.raise_if_cancelled()
        return self.finish_ct(mr_node, ct)

    def muMap(self, ct_node: Any, kvp: Any = "120") -> Any:
        """The linear attenuation coefficient at 511 keV (cm^-1) of a CT (or synthetic CT) node, as a new node."""
        from medsynth.mrct import mu_map

        v = validate(PARAMS, {"kvp": kvp})
        mu = mu_map(volume_from_node(ct_node), v["kvp"])
        out = node_from_volume(self.scene, mu, reference_node=ct_node, suffix="mumap_511keV")
        out.SetAttribute("MedSynth.Unit", "cm^-1 at 511 keV")
        display = out.GetDisplayNode()
        if display is not None:
            display.AutoWindowLevelOff()
            display.SetWindowLevelMinMax(0.0, 0.17)
        return out

    # ------------------------------------------------------------------ helpers
    def _pet_display(self, node: Any, array: Any) -> None:
        """A PET colour map and a window of 0 .. the 99.9th percentile (SUVR), where the scene has them."""
        import numpy as np

        display = node.GetDisplayNode()
        if display is None:
            return
        for colour in ("vtkMRMLPETProceduralColorNodePET-Heat", "vtkMRMLColorTableNodeFileHotToColdRainbow.txt"):
            if self.scene.GetNodeByID(colour) is not None:
                display.SetAndObserveColorNodeID(colour)
                break
        arr = np.asarray(array)
        hi = float(np.percentile(arr[arr > 0], 99.9)) if np.any(arr > 0) else 1.0
        display.AutoWindowLevelOff()
        display.SetWindowLevelMinMax(0.0, hi)


__all__ = [
    "CT_WINDOW_LEVEL",
    "MR_PARAMS",
    "NODE_REFERENCES",
    "PARAMS",
    "PET_PARAMS",
    "CrossModalityLogic",
    "PDClassification",
    "region_segments",
    "sbr_rows",
]
