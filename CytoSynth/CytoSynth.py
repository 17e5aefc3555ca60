"""CytoSynth: class-conditional cervical cell synthesis (CellGAN) for augmentation and teaching.

Thin module file: the panel and the Slicer self-test. The logic is in
``CytoSynthLib`` (takes the scene; usable from the Python console and under the
slicer-core wheel), the algorithm in ``medsynth.cyto``.
"""

import os
import sys

import slicer
from slicer.ScriptedLoadableModule import ScriptedLoadableModule, ScriptedLoadableModuleTest

_EXT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "MedSynthExtension")
if os.path.isdir(_EXT) and _EXT not in sys.path:
    sys.path.append(_EXT)

from medsynth_slicer.widget import MedSynthModuleWidget  # noqa: E402
from CytoSynthLib import NODE_REFERENCES, PARAMS, CytoSynthLogic  # noqa: E402

CITATION = (
    "Shen Z, et al. CellGAN: Conditional cervical cell synthesis for augmenting cytopathological image "
    "classification. MICCAI 2023."
)


class CytoSynth(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "Cell Synthesis"
        self.parent.categories = ["MedSynth"]
        self.parent.dependencies = ["MedSynthExtension"]
        self.parent.contributors = ["MedSynth developers"]
        self.parent.helpText = (
            "Generates cervical Pap-smear cells of a chosen class (Herlev classes or Bethesda categories NILM, "
            "LSIL, HSIL, carcinoma) with a CellGAN generator trained on the Herlev data. <i>Generate</i> shows a "
            "gallery (a row per class for 'all'); <i>Insert at point</i> pastes one cell into an RGB cytology "
            "image at the last placed point with seamless (Poisson) blending, into a new image node, labels the "
            "point with the class and adds a row to the 'CytoSynth cells' table; <i>Write to folder</i> makes a "
            "class-balanced training set (PNG + CSV). Cells are synthetic: for augmentation and teaching, never "
            "for diagnosis.<br><br>" + CITATION
        )
        self.parent.acknowledgementText = "MedSynth. Herlev Pap smear data (Jantzen et al. 2005). Method: " + CITATION


class CytoSynthWidget(MedSynthModuleWidget):
    PARAMS = PARAMS
    NODE_REFERENCES = NODE_REFERENCES
    LOGIC_CLASS = CytoSynthLogic
    APPLY_TEXT = "Generate"

    def setupModule(self):
        self._outputs = {}  # input node ID -> output node of its insertions
        self._observedPointList = None
        self.ui.insertButton.connect("clicked(bool)", self.onInsert)
        self.ui.writeButton.connect("clicked(bool)", self.onWriteFolder)
        self.ui.outputDirectoryButton.connect("directoryChanged(QString)", lambda path: self.updateGUIFromParameterNode())

    def canApply(self):
        return True  # a gallery needs no input

    def _ras(self):
        from medsynth_mrml import points_from_markups

        pointList = self._parameterNode.pointList if self._parameterNode else None
        if pointList is None or pointList.GetNumberOfControlPoints() == 0:
            return None
        return points_from_markups(pointList)[-1]

    def updateGUIFromParameterNode(self):
        if self._parameterNode is None:
            return
        pointList = self._parameterNode.pointList
        self.ui.pointPlaceWidget.setCurrentNode(pointList)
        if pointList is not self._observedPointList:
            for event in (slicer.vtkMRMLMarkupsNode.PointModifiedEvent, slicer.vtkMRMLMarkupsNode.PointPositionDefinedEvent,
                          slicer.vtkMRMLMarkupsNode.PointRemovedEvent):
                if self._observedPointList is not None:
                    self.removeObserver(self._observedPointList, event, self.onPointMoved)
                if pointList is not None:
                    self.addObserver(pointList, event, self.onPointMoved)
            self._observedPointList = pointList
        values = self.values()
        problem = self.logic.check_insertion(self._parameterNode.inputVolume, self._ras())
        if not problem and values["cell_class"] == "all":
            problem = "Choose one class to insert."
        self.ui.insertButton.enabled = self._task is None and not problem
        self.ui.insertButton.toolTip = problem or "Paste one cell of the class (seed shown) at the last placed point."
        self.ui.writeButton.enabled = self._task is None and bool(self.ui.outputDirectoryButton.directory)

    def onPointMoved(self, caller=None, event=None):
        self.updateGUIFromParameterNode()

    def _onTaskFinished(self, cancelled):
        MedSynthModuleWidget._onTaskFinished(self, cancelled)
        self.updateGUIFromParameterNode()  # re-enable Insert / Write to folder

    # ------------------------------------------------------------------ Generate (background task)
    def startTask(self):
        values = self.values()

        def compute(progress, cancel):
            return self.logic.compute_gallery(values, progress, cancel)

        def onDone(result):
            node = self.logic.finish_gallery(result, values)
            slicer.util.setSliceViewerLayers(background=node, foreground=None, fit=True)
            self.ui.statusLabel.text = f"Gallery {node.GetName()}: {node.GetAttribute('MedSynth.CytoSynth.rows')}"

        return compute, onDone

    # ------------------------------------------------------------------ Insert at point (fast: no background task)
    def onInsert(self):
        inputNode = self._parameterNode.inputVolume
        with slicer.util.tryWithErrorDisplay("Could not insert the cell.", waitCursor=True):
            previous = self._outputs.get(inputNode.GetID()) if inputNode is not None else None
            record = self.logic.insert(inputNode, self._parameterNode.pointList, self.values(), output_node=previous)
            output = record["output"]
            self._outputs[inputNode.GetID()] = output
            if previous is None:
                slicer.util.setSliceViewerLayers(background=output, fit=False)
            self.ui.statusLabel.text = (
                f"{record['class']} cell (seed {record['seed']}) inserted into {output.GetName()} in "
                f"{self.logic.lastInsertMilliseconds:.0f} ms; recorded in '{self.logic.table_node.GetName()}'."
            )
            self._parameterNode.seed = int(record["seed"]) + 1  # the next click inserts a different cell

    # ------------------------------------------------------------------ Write to folder (background task)
    def onWriteFolder(self):
        folder = self.ui.outputDirectoryButton.directory
        values = self.values()
        if self._task is not None:
            return
        from medsynth_slicer.worker import BackgroundTask

        def onDone(result):
            written, csvPath = result
            self.ui.statusLabel.text = f"Wrote {len(written)} cells to {folder} (classes and seeds in {csvPath})."

        with slicer.util.tryWithErrorDisplay("Could not write the cells.", waitCursor=True):
            self._task = BackgroundTask(
                lambda progress, cancel: self.logic.write_folder(folder, values, progress, cancel),
                on_done=lambda result: self._finishTask(onDone, result),
                on_error=self._onTaskError,
                on_progress=self._onTaskProgress,
                on_finished=self._onTaskFinished,
            )
            self.ui.applyButton.text = "Cancel"
            self.ui.progressBar.value = 0
            self.ui.progressBar.show()
            self._task.start()


class CytoSynthTest(ScriptedLoadableModuleTest):
    """Runs in Slicer (Reload and Test): gallery, insertion into a synthetic RGB smear, records, bad input."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_gallery_insert_records()

    def test_gallery_insert_records(self):
        import numpy as np
        from medsynth import InputError, Volume, make_ijk_to_ras
        from medsynth.cyto.demo import smear_background
        from medsynth_mrml import markups_from_points, node_from_volume

        logic = CytoSynthLogic(slicer.mrmlScene)
        gallery = logic.gallery(cell_class="all", count=4, seed=0, naming="bethesda")
        self.assertEqual(slicer.util.arrayFromVolume(gallery).shape[-1], 3)
        host = node_from_volume(slicer.mrmlScene, Volume(smear_background(160)[np.newaxis],
                                                         make_ijk_to_ras(directions=np.diag([-1.0, -1.0, 1.0])),
                                                         name="smear"))
        before = slicer.util.arrayFromVolume(host).copy()
        points = markups_from_points(slicer.mrmlScene, [[-80.0, -80.0, 0.0]], name="CellPoint")
        record = logic.insert(host, points, cell_class="HSIL", seed=3)
        self.assertTrue((slicer.util.arrayFromVolume(record["output"]) != before).any())
        np.testing.assert_array_equal(slicer.util.arrayFromVolume(host), before)
        self.assertTrue(points.GetNthControlPointLabel(0).startswith("HSIL"))
        self.assertEqual(logic.table_node.GetNumberOfRows(), 1)
        with self.assertRaises(InputError):
            logic.insert(host, [500.0, 0.0, 0.0], cell_class="HSIL")
        self.delayDisplay("CytoSynth self-test passed")
