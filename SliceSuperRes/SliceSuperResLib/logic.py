"""SliceSuperRes logic over MRML nodes: node -> engine -> new node, and the live slab preview.

Usable from Slicer's Python console without the panel::

    from SliceSuperResLib import SliceSuperResLogic
    out = SliceSuperResLogic(slicer.mrmlScene).process(volumeNode, spacing=1.0, method="sainr")
"""

from __future__ import annotations

import time
from typing import Any, Dict, Optional, Sequence

import numpy as np

from medsynth.params import validate
from medsynth.progress import CancelToken, ProgressCallback
from medsynth.superres import SuperResPreview, SuperResResult, output_grid, output_index_of_ras, superres
from medsynth.superres.geometry import AXIS_NAMES, check_volume
from medsynth.superres.params import SUPERRES_PARAMS
from medsynth.volume import Volume
from medsynth_mrml import copy_display, node_from_volume, update_node_from_volume, volume_from_node

#: node references of the module's parameter node (name -> MRML class name)
NODE_REFERENCES = {"inputVolume": "vtkMRMLScalarVolumeNode"}


class SliceSuperResLogic:
    """Slice super-resolution on volume nodes of ``scene``."""

    PREVIEW_HALF_WIDTH = 1

    def __init__(self, scene: Any) -> None:
        self.scene = scene
        self.lastPreviewMilliseconds = float("nan")
        self._cache_key = None
        self._cache_volume: Optional[Volume] = None
        self._preview_engine: Optional[SuperResPreview] = None  # one per cached volume: encoder features kept

    # ------------------------------------------------------------------ steps (the panel runs compute in a thread)
    def inputVolume(self, node: Any) -> Volume:
        """The engine volume of ``node`` (checked: 3D scalar)."""
        volume = volume_from_node(node)
        check_volume(volume)
        return volume

    @staticmethod
    def compute(
        volume: Volume,
        values: Dict[str, Any],
        progress: Optional[ProgressCallback] = None,
        cancel: Optional[CancelToken] = None,
    ) -> SuperResResult:
        v = validate(SUPERRES_PARAMS, values)
        return superres(volume, v["spacing"], v["axis"], v["method"], progress, cancel, adapt_steps=v["adapt_steps"],
                        gate=v["gate"])

    def finish(self, input_node: Any, result: SuperResResult) -> Any:
        """A new volume node beside the input, with the input's display settings."""
        out = node_from_volume(
            self.scene,
            result.volume,
            reference_node=input_node,
            suffix=f"{result.method}_{result.grid.spacing:.3g}mm",
        )
        copy_display(input_node, out)
        out.SetAttribute("MedSynth.SliceSuperRes", result.describe())
        return out

    def process(
        self,
        input_node: Any,
        spacing: float = 1.0,
        axis: str = "auto",
        method: str = "sainr",
        progress: Optional[ProgressCallback] = None,
        cancel: Optional[CancelToken] = None,
        adapt_steps: int = 0,
        gate: float = 0.0,
    ) -> Any:
        """Blocking: the whole volume into a new node (the input node is never modified). ``adapt_steps`` > 0
        first adapts SA-INR to this volume (needs torch and MONAI); ``gate`` > 0 takes the cubic estimate alone in
        flat regions (:func:`medsynth.superres.superres`)."""
        values = {"spacing": spacing, "axis": axis, "method": method, "adapt_steps": adapt_steps, "gate": gate}
        result = self.compute(self.inputVolume(input_node), values, progress, cancel)
        return self.finish(input_node, result)

    # ------------------------------------------------------------------ panel helpers
    def describe(self, input_node: Any, values: Dict[str, Any]) -> str:
        """The output grid in words (axis, slice counts, exact spacing, factor); raises on bad input."""
        v = validate(SUPERRES_PARAMS, values)
        return output_grid(self._volume_cached(input_node), v["spacing"], v["axis"]).describe()

    def _volume_cached(self, node: Any) -> Volume:
        """The node's volume, converted once per node modification (slider moves reuse it)."""
        key = (node.GetID(), node.GetMTime(), node.GetImageData().GetMTime() if node.GetImageData() else 0)
        if key != self._cache_key:
            self._cache_volume = self.inputVolume(node)
            self._cache_key = key
            self._preview_engine = None
        return self._cache_volume

    @staticmethod
    def view_axis(volume: Volume, normal_ras: Sequence[float]) -> str:
        """The voxel axis (i, j or k) closest to a view's normal."""
        n = np.asarray(normal_ras, float)
        n = n / (np.linalg.norm(n) or 1.0)
        return AXIS_NAMES[int(np.argmax(np.abs(volume.directions.T @ n)))]

    def preview(
        self,
        input_node: Any,
        values: Dict[str, Any],
        ras: Sequence[float],
        preview_node: Any = None,
        normal_ras: Sequence[float] = (0.0, 0.0, 1.0),
    ) -> Any:
        """Compute only a slab of the output around ``ras`` (the slice shown in a view whose normal is
        ``normal_ras``) into ``preview_node`` (made when None). Returns the preview node."""
        t0 = time.perf_counter()
        v = validate(SUPERRES_PARAMS, values)
        volume = self._volume_cached(input_node)
        view_axis = self.view_axis(volume, normal_ras)
        index = output_index_of_ras(volume, v["spacing"], ras, view_axis, v["axis"])
        if self._preview_engine is None or self._preview_engine.volume is not volume:
            # kept while the input node is unchanged: a spacing or slice change re-runs only the decoder.
            # The shipped network: adapting (minutes) is for Apply only
            self._preview_engine = SuperResPreview(volume)
        slab = self._preview_engine.slab(
            v["spacing"], index, view_axis, self.PREVIEW_HALF_WIDTH, v["axis"], v["method"], gate=v["gate"]
        ).volume
        if preview_node is None or self.scene.GetNodeByID(preview_node.GetID()) is None:
            preview_node = node_from_volume(self.scene, slab, reference_node=input_node, suffix="preview")
            preview_node.SetHideFromEditors(True)
            preview_node.SetSaveWithScene(False)
            copy_display(input_node, preview_node)
        else:
            update_node_from_volume(preview_node, slab)
        self.lastPreviewMilliseconds = 1000 * (time.perf_counter() - t0)
        return preview_node
