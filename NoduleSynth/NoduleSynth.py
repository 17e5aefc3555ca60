"""NoduleSynth: controllable lung nodules on chest CT and chest radiographs, live in the viewer.

Thin module file: the panel and the Slicer self-test. The logic is in
``NoduleSynthLib`` (takes the scene; usable from the Python console and under the
slicer-core wheel), the algorithm in ``medsynth.nodule``.
"""

import os
import sys

import slicer
from slicer.ScriptedLoadableModule import ScriptedLoadableModule, ScriptedLoadableModuleTest

_EXT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "MedSynthExtension")
if os.path.isdir(_EXT) and _EXT not in sys.path:
    sys.path.append(_EXT)

from medsynth_slicer.widget import MedSynthModuleWidget  # noqa: E402
from NoduleSynthLib import NODE_REFERENCES, PARAMS, NoduleSynthLogic  # noqa: E402

CITATION = (
    "Image synthesis with disentangled attributes for chest X-ray nodule augmentation and detection, "
    "Medical Image Analysis 2023; Nodule synthesis and selection for augmenting chest X-ray nodule detection, "
    "PRCV 2021."
)


class NoduleSynth(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "Nodule Synthesis"
        self.parent.categories = ["MedSynth"]
        self.parent.dependencies = ["MedSynthExtension"]
        self.parent.contributors = ["MedSynth developers"]
        self.parent.helpText = (
            "Inserts synthetic lung nodules into a chest CT (in HU) or a chest radiograph (in the Beer-Lambert "
            "log domain), with sliders for diameter, texture (solid, part-solid, ground glass), and shape "
            "(sphericity, lobulation, spiculation from a shape model learned on LIDC-IDRI reader outlines). "
            "Place a point (or press <i>Suggest a lung point</i>), move the sliders (with <i>Live</i> on the output "
            "updates at once), press "
            "<i>Add nodule</i> to keep it; <i>Undo</i> removes the last one. The input volume is never "
            "modified. A centre outside the lung fields (estimated from the image) is shown with a warning."
            "<br><br>" + CITATION
        )
        self.parent.acknowledgementText = "MedSynth. LIDC-IDRI annotations (CC BY 3.0). Method: " + CITATION


class NoduleSynthWidget(MedSynthModuleWidget):
    PARAMS = PARAMS
    NODE_REFERENCES = NODE_REFERENCES
    LOGIC_CLASS = NoduleSynthLogic
    APPLY_TEXT = "Add nodule"

    def setupModule(self):
        self._observedPointList = None
        self._suggestions = 0
        self.ui.undoButton.connect("clicked(bool)", self.onUndo)
        self.ui.suggestButton.connect("clicked(bool)", self.onSuggest)
        self.ui.sheetButton.connect("clicked(bool)", self.onMakeSheet)
        self.ui.progressBar.hide()

    def canApply(self):
        return self.logic.session is not None

    def _centre(self):
        from medsynth_mrml import points_from_markups

        pointList = self._parameterNode.pointList if self._parameterNode else None
        if pointList is None or pointList.GetNumberOfControlPoints() == 0:
            return None
        return points_from_markups(pointList)[-1]

    def updateGUIFromParameterNode(self):
        pointList = self._parameterNode.pointList if self._parameterNode else None
        self.ui.pointPlaceWidget.setCurrentNode(pointList)
        if pointList is not self._observedPointList:
            if self._observedPointList is not None:
                self.removeObserver(self._observedPointList, slicer.vtkMRMLMarkupsNode.PointModifiedEvent,
                                    self.onPointMoved)
                self.removeObserver(self._observedPointList, slicer.vtkMRMLMarkupsNode.PointPositionDefinedEvent,
                                    self.onPointMoved)
            if pointList is not None:
                self.addObserver(pointList, slicer.vtkMRMLMarkupsNode.PointModifiedEvent, self.onPointMoved)
                self.addObserver(pointList, slicer.vtkMRMLMarkupsNode.PointPositionDefinedEvent, self.onPointMoved)
            self._observedPointList = pointList
        if self.ui.liveCheckBox.checked:
            self.updateNodule()

    def onPointMoved(self, caller=None, event=None):
        if self.ui.liveCheckBox.checked:
            self.updateNodule()

    def updateNodule(self):
        """Recompute the pending nodule (only its region) for the current sliders and point."""
        inputNode = self._parameterNode.inputVolume if self._parameterNode else None
        centre = self._centre()
        if inputNode is None or centre is None:
            return
        with slicer.util.tryWithErrorDisplay("Nodule update failed.", waitCursor=False):
            if self.logic.session is None or self.logic.input_node is not inputNode:
                output = self.logic.start(inputNode)
                slicer.util.setSliceViewerLayers(background=output, fit=False)
            info = self.logic.update(self.values(), centre)
            warnings = "; ".join(info.get("warnings", []))
            self.ui.statusLabel.text = (
                f"{len(self.logic.nodules)} kept; updated in {self.logic.lastUpdateMilliseconds:.0f} ms"
                + (f". Warning: {warnings}" if warnings else "")
            )
            self.ui.applyButton.enabled = True

    def onSuggest(self):
        """Move the nodule's centre to a lung point (the logic's suggestion; again: another one)."""
        with slicer.util.tryWithErrorDisplay("Could not suggest a lung point.", waitCursor=True):
            inputNode = self._parameterNode.inputVolume if self._parameterNode else None
            if inputNode is None:
                self.ui.statusLabel.text = "Choose an image first."
                return
            pointList = self._parameterNode.pointList
            if pointList is None:
                pointList = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "NoduleCentre")
                self._parameterNode.pointList = pointList  # observed from here on (updateGUIFromParameterNode)
            added = pointList.GetNumberOfControlPoints() == 0
            ras = self.logic.suggestLungPoint(inputNode, self.values()["diameter_mm"], seed=self._suggestions,
                                              point_list=pointList)  # moving a point updates the nodule (Live)
            self._suggestions += 1
            slicer.modules.markups.logic().JumpSlicesToLocation(*ras, True)
            if not self.ui.liveCheckBox.checked:
                self.ui.statusLabel.text = f"Lung point RAS ({ras[0]:.1f}, {ras[1]:.1f}, {ras[2]:.1f})."
            elif added:
                self.updateNodule()

    def onMakeSheet(self):
        """Make teaching sheet: the logic writes the sheet file (PNG or PDF) of the nodule at each setting."""
        with slicer.util.tryWithErrorDisplay("Could not make the teaching sheet.", waitCursor=True):
            inputNode = self._parameterNode.inputVolume if self._parameterNode else None
            path = self.ui.sheetPathLineEdit.currentPath
            vary = [self.ui.sheetColumnsLineEdit.text, self.ui.sheetRowsLineEdit.text]
            facts = self.logic.makeTeachingSheet(inputNode, path, vary, self.values(), ras=self._centre())
            self.ui.statusLabel.text = f"Teaching sheet: {len(facts['tiles'])} tiles written to {facts['out']}"

    def onApplyOrCancel(self):
        """Add nodule: keep the pending nodule and add its segment (fast: no background task)."""
        with slicer.util.tryWithErrorDisplay("Could not add the nodule.", waitCursor=True):
            if not self.ui.liveCheckBox.checked:
                self.updateNodule()
            info = self.logic.add()
            self.ui.statusLabel.text = (
                f"Nodule {info['label']} added ({len(self.logic.nodules)} in all)." if info else "No nodule to add."
            )
            if self.logic.segmentation_node is not None:
                self.logic.segmentation_node.CreateClosedSurfaceRepresentation()

    def onUndo(self):
        with slicer.util.tryWithErrorDisplay("Undo failed.", waitCursor=True):
            if self.logic.session is None:
                return
            info = self.logic.undo()
            self.ui.statusLabel.text = (
                f"Removed nodule {info['label']}; {len(self.logic.nodules)} left." if info else "Nothing to undo."
            )


class NoduleSynthTest(ScriptedLoadableModuleTest):
    """Runs in Slicer (Reload and Test): live update, add, undo on a synthetic lung-like CT."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_live_add_undo()

    def test_live_add_undo(self):
        import numpy as np
        from medsynth import Volume, make_ijk_to_ras
        from medsynth_mrml import node_from_volume

        arr = (-850 + 15 * np.random.default_rng(0).standard_normal((40, 48, 48))).astype(np.int16)
        node = node_from_volume(slicer.mrmlScene, Volume(arr, make_ijk_to_ras((0.8, 0.8, 1.25), (-20, -20, -25))))
        before = slicer.util.arrayFromVolume(node).copy()
        logic = NoduleSynthLogic(slicer.mrmlScene)
        out = logic.start(node)
        ras = logic.suggestLungPoint(node, 18.0)  # "Suggest a lung point": all of this block is lung
        for diameter in (6, 9, 12, 15, 18):  # the same nodule at five sizes
            info = logic.update({"diameter_mm": diameter}, ras)
            self.assertFalse([w for w in info["warnings"] if "outside the lung fields" in w])
        self.assertTrue((slicer.util.arrayFromVolume(out) != before).any())
        logic.add()
        self.assertEqual(logic.segmentation_node.GetSegmentation().GetNumberOfSegments(), 1)
        logic.undo()
        np.testing.assert_array_equal(slicer.util.arrayFromVolume(out), before)
        np.testing.assert_array_equal(slicer.util.arrayFromVolume(node), before)
        import os
        import tempfile

        sheet = os.path.join(tempfile.mkdtemp(), "sheet.png")  # "Make teaching sheet"
        facts = logic.makeTeachingSheet(node, sheet, ["diameter_mm=6,12", "texture=solid,ggo"], ras=ras)
        self.assertEqual(len(facts["tiles"]), 4)
        self.assertTrue(os.path.getsize(sheet) > 0)
        self.delayDisplay("NoduleSynth self-test passed")
