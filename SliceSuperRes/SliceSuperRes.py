"""SliceSuperRes: arbitrary reduction of MRI slice spacing (SA-INR, B-spline, linear), live in the viewer.

Thin module file: the panel and the Slicer self-test. The logic is in
``SliceSuperResLib`` (takes the scene; usable from the Python console and under
the slicer-core wheel), the algorithm in ``medsynth.superres``.
"""

import os
import sys

import qt
import slicer
import vtk
from slicer.ScriptedLoadableModule import ScriptedLoadableModule, ScriptedLoadableModuleTest

# the engine and the shared helpers live in the MedSynthExtension module folder
_EXT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "MedSynthExtension")
if os.path.isdir(_EXT) and _EXT not in sys.path:
    sys.path.append(_EXT)

from medsynth_slicer.widget import MedSynthModuleWidget  # noqa: E402
from SliceSuperResLib import NODE_REFERENCES, PARAMS, SliceSuperResLogic  # noqa: E402

CITATION = (
    "Wang X, et al. Spatial attention-based implicit neural representation for arbitrary reduction of MRI slice "
    "spacing. Medical Image Analysis, 2024."
)


class SliceSuperRes(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "Slice Super-Resolution"
        self.parent.categories = ["MedSynth"]
        self.parent.dependencies = ["MedSynthExtension"]
        self.parent.contributors = ["MedSynth developers"]
        self.parent.helpText = (
            "Makes any smaller slice spacing from an MRI acquired with thick slices, along any voxel axis. "
            "SA-INR is a learned spatial-attention implicit representation trained by this project on "
            "high-resolution MRI degraded into thick slices; B-spline and linear resampling are the baselines. "
            "Move the spacing slider with <i>Live preview</i> on to see a slab around the slice in the red view; "
            "<i>Apply</i> computes the whole volume into a new volume node. <i>Adapt to this volume</i> (SA-INR, "
            "Apply only, needs torch and MONAI) first fine-tunes the network on the volume's own in-plane detail, for scans "
            "unlike its training data.<br><br>" + CITATION
        )
        self.parent.acknowledgementText = "MedSynth. Method: " + CITATION


class SliceSuperResWidget(MedSynthModuleWidget):
    PARAMS = PARAMS
    NODE_REFERENCES = NODE_REFERENCES
    LOGIC_CLASS = SliceSuperResLogic
    PREVIEW_DELAY_MS = 60

    def setupModule(self):
        self._previewNode = None
        self._previewTimer = qt.QTimer()
        self._previewTimer.setSingleShot(True)
        self._previewTimer.setInterval(self.PREVIEW_DELAY_MS)
        self._previewTimer.timeout.connect(self.updatePreview)
        self.ui.livePreviewCheckBox.connect("toggled(bool)", self.onLivePreviewToggled)

    def updateGUIFromParameterNode(self):
        node = self._parameterNode.inputVolume if self._parameterNode else None
        if node is None:
            self.ui.gridLabel.text = "Select an input volume."
            return
        try:
            self.ui.gridLabel.text = self.logic.describe(node, self.values())
        except Exception as exc:  # the label explains what is wrong with the input or the spacing
            self.ui.gridLabel.text = f"<span style='color:#c33'>{exc}</span>"
            return
        if self.ui.livePreviewCheckBox.checked:
            self._previewTimer.start()  # coalesce fast slider moves

    def onLivePreviewToggled(self, on):
        redSliceNode = slicer.app.layoutManager().sliceWidget("Red").mrmlSliceNode()
        if on:
            # follow the red view too: scrolling through slices updates the slab
            self.addObserver(redSliceNode, vtk.vtkCommand.ModifiedEvent, self.onRedSliceModified)
            self._previewTimer.start()
        else:
            self.removeObserver(redSliceNode, vtk.vtkCommand.ModifiedEvent, self.onRedSliceModified)
            self._restoreRedView()

    def onRedSliceModified(self, caller=None, event=None):
        self._previewTimer.start()

    def _redSlicePlane(self):
        """(centre RAS, normal RAS) of the slice shown in the red view."""
        m = slicer.app.layoutManager().sliceWidget("Red").mrmlSliceNode().GetSliceToRAS()
        return [m.GetElement(r, 3) for r in range(3)], [m.GetElement(r, 2) for r in range(3)]

    def updatePreview(self):
        node = self._parameterNode.inputVolume
        if node is None or self._task is not None:
            return
        with slicer.util.tryWithErrorDisplay("Preview failed.", waitCursor=False):
            ras, normal = self._redSlicePlane()
            self._previewNode = self.logic.preview(node, self.values(), ras, self._previewNode, normal)
            composite = slicer.app.layoutManager().sliceWidget("Red").mrmlSliceCompositeNode()
            composite.SetForegroundVolumeID(self._previewNode.GetID())
            composite.SetForegroundOpacity(1.0)
            self.ui.statusLabel.text = f"Preview: {self.logic.lastPreviewMilliseconds:.0f} ms"

    def _restoreRedView(self):
        if self._previewNode is not None:
            composite = slicer.app.layoutManager().sliceWidget("Red").mrmlSliceCompositeNode()
            if composite.GetForegroundVolumeID() == self._previewNode.GetID():
                composite.SetForegroundVolumeID(None)
            slicer.mrmlScene.RemoveNode(self._previewNode)
            self._previewNode = None

    def cleanup(self):
        self._restoreRedView()
        MedSynthModuleWidget.cleanup(self)

    def startTask(self):
        inputNode = self._parameterNode.inputVolume
        values = self.values()
        volume = self.logic.inputVolume(inputNode)

        def compute(progress, cancel):
            return self.logic.compute(volume, values, progress, cancel)

        def onDone(result):
            outputNode = self.logic.finish(inputNode, result)
            slicer.util.setSliceViewerLayers(background=outputNode, foreground=None, fit=True)
            self.ui.statusLabel.text = f"Done: {outputNode.GetName()} ({result.grid.describe()})"

        return compute, onDone


class SliceSuperResTest(ScriptedLoadableModuleTest):
    """Runs in Slicer (Reload and Test): the logic on a synthetic thick-slice volume, with each method."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_process_all_methods()
        self.test_bad_input_leaves_node_untouched()

    def _thickVolume(self):
        import numpy as np
        from medsynth import Volume, make_ijk_to_ras
        from medsynth_mrml import node_from_volume

        k, j, i = np.mgrid[0:12, 0:40, 0:40].astype(np.float32)
        arr = 100 + 50 * np.sin(i / 5.0) * np.cos(j / 7.0) + 4 * k
        return node_from_volume(slicer.mrmlScene, Volume(arr, make_ijk_to_ras((1, 1, 4)), name="thick"))

    def test_process_all_methods(self):
        import numpy as np

        node = self._thickVolume()
        before = slicer.util.arrayFromVolume(node).copy()
        logic = SliceSuperResLogic(slicer.mrmlScene)
        for method in ("linear", "bspline", "sainr"):
            out = logic.process(node, spacing=1.0, axis="auto", method=method)
            arr = slicer.util.arrayFromVolume(out)
            self.assertEqual(arr.shape, (45, 40, 40))
            self.assertAlmostEqual(out.GetSpacing()[2], 1.0, places=6)
        np.testing.assert_array_equal(slicer.util.arrayFromVolume(node), before)
        self.delayDisplay("SliceSuperRes: all methods passed")

    def test_bad_input_leaves_node_untouched(self):
        from medsynth import InputError

        node = self._thickVolume()
        logic = SliceSuperResLogic(slicer.mrmlScene)
        with self.assertRaises(InputError):
            logic.process(node, spacing=5.0)  # not smaller than the current 4 mm
        self.delayDisplay("SliceSuperRes: bad input refused")
