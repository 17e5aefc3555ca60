"""CrossModality: cross-modality synthesis: FDG -> 11C-CFT brain PET with striatal binding ratios and a PD
classification from the FDG with its synthetic CFT; MR -> CT with a 511 keV attenuation map.

Thin module file: the panel and the Slicer self-test. The logic is in ``CrossModalityLib`` (takes the scene;
usable from the Python console and under the slicer-core wheel), the algorithm in ``medsynth.pet``.
MR part: MR -> synthetic CT and the 511 keV attenuation map (``medsynth.mrct``).
"""

import os
import sys

import slicer
from slicer.ScriptedLoadableModule import ScriptedLoadableModule, ScriptedLoadableModuleTest

# the engine and the shared helpers live in the MedSynthExtension module folder
_EXT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "MedSynthExtension")
if os.path.isdir(_EXT) and _EXT not in sys.path:
    sys.path.append(_EXT)

from medsynth_slicer.widget import MedSynthModuleWidget  # noqa: E402
from CrossModalityLib import NODE_REFERENCES, PARAMS, CrossModalityLogic  # noqa: E402

CITATION = (
    "Synthesis of 11C-CFT (dopamine transporter) PET from 18F-FDG PET for the diagnosis of Parkinson's disease: "
    "a residual U-Net generator trained with paired, adversarial and cycle-consistency losses (EJNMMI, 2025)."
)


class CrossModality(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "Cross-Modality Synthesis"
        self.parent.categories = ["MedSynth"]
        self.parent.dependencies = ["MedSynthExtension"]
        self.parent.contributors = ["MedSynth developers"]
        self.parent.helpText = (
            "Brain PET: <i>Synthesize CFT</i> makes a dopamine-transporter (11C-CFT-like) PET from an 18F-FDG PET "
            "into a new volume node on the FDG's grid (SUVR, occipital cortex = 1). A native-space FDG is "
            "registered affinely to the FDG template first; a registration that does not converge, or an MR/CT "
            "given as PET, is refused with the reason. <i>Striatal binding</i> measures the striatal binding "
            "ratios (caudate, anterior and posterior putamen, left and right, and the asymmetry index) of the "
            "synthetic CFT into a table and adds the regions as a segmentation on the FDG's grid. "
            "<i>Classify PD (FDG + synthetic CFT)</i> gives the probability of Parkinson's disease from the FDG "
            "together with its synthetic CFT (a 3D CNN, the paper's second stage; the threshold was set on "
            "validation subjects), with the posterior-putamen SBR of the synthetic CFT beside it, and adds the "
            "synthetic CFT as a new volume node.<br><br>"
            "The generator and the classifier were trained on <b>simulated</b> PET only (MedSynth's simulator); "
            "the output is not a measurement, not a diagnosis and not for clinical use.<br><br>"
            "MR -> CT: <i>Synthesize CT</i> makes a CT in HU from a head MR (structure-guided generator trained on "
            "synthetic MR/CT pairs made by the project; see its model card for its measured error); "
            "<i>mu-map (511 keV)</i> turns any CT or synthetic CT into linear attenuation coefficients at 511 keV "
            "(cm^-1, bilinear scaling of Carney et al. 2006) for PET attenuation correction.<br><br>" + CITATION
        )
        self.parent.acknowledgementText = (
            "MedSynth. Atlas from the MNI ICBM152 2009a tissue maps and AAL regions. Method: " + CITATION
        )


class CrossModalityWidget(MedSynthModuleWidget):
    PARAMS = PARAMS
    NODE_REFERENCES = NODE_REFERENCES
    LOGIC_CLASS = CrossModalityLogic
    APPLY_TEXT = "Synthesize CFT"

    def setupModule(self):
        self.ui.bindingButton.connect("clicked(bool)", self.onStriatalBinding)
        self.ui.classifyButton.connect("clicked(bool)", self.onClassifyPD)
        self.ui.synthesizeCTButton.connect("clicked(bool)", self.onSynthesizeCT)
        self.ui.muMapButton.connect("clicked(bool)", self.onMuMap)

    def canApply(self):
        return self._parameterNode is not None and self._parameterNode.fdgVolume is not None

    def updateGUIFromParameterNode(self):
        p = self._parameterNode
        idle = self._task is None
        self.ui.bindingButton.enabled = idle and p is not None and p.fdgVolume is not None
        self.ui.classifyButton.enabled = idle and p is not None and p.fdgVolume is not None
        self.ui.synthesizeCTButton.enabled = idle and p is not None and p.mrVolume is not None
        self.ui.muMapButton.enabled = idle and p is not None and p.ctVolume is not None
        if idle and p is not None and p.fdgVolume is None and p.mrVolume is None:
            self.ui.statusLabel.text = "Select an FDG PET volume (PET) or an MR volume (MR -> CT)."

    def _onTaskFinished(self, cancelled):
        MedSynthModuleWidget._onTaskFinished(self, cancelled)
        self.updateGUIFromParameterNode()

    # ------------------------------------------------------------------ Synthesize CFT (Apply)
    def startTask(self):
        inputNode = self._parameterNode.fdgVolume
        values = self.values()
        volume = self.logic.inputVolume(inputNode)
        self.ui.bindingButton.enabled = False
        self.ui.classifyButton.enabled = False

        def compute(progress, cancel):
            return self.logic.compute_synthesis(volume, values, progress, cancel)

        def onDone(result):
            outputNode = self.logic.finish_synthesis(inputNode, result)
            slicer.util.setSliceViewerLayers(background=inputNode, foreground=outputNode, foregroundOpacity=0.5,
                                             fit=True)
            self.ui.statusLabel.text = (
                f"Done: {outputNode.GetName()} (SUVR; input {result.space}) in {result.seconds:.1f} s. "
                "Synthetic, from a generator trained on simulated PET."
            )

        return compute, onDone

    # ------------------------------------------------------------------ Striatal binding (second long action)
    def onStriatalBinding(self):
        inputNode = self._parameterNode.fdgVolume
        values = self.values()

        def onDone(result):
            table, segmentation = self.logic.finish_binding(inputNode, result)
            slicer.util.setSliceViewerLayers(background=inputNode, fit=True)
            layoutManager = slicer.app.layoutManager()
            if layoutManager is not None:
                layoutManager.setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpTableView)
                slicer.app.applicationLogic().GetSelectionNode().SetActiveTableID(table.GetID())
                slicer.app.applicationLogic().PropagateTableSelection()
            pp = [table.GetCellText(2, c) for c in (1, 2)]
            self.ui.statusLabel.text = (
                f"Posterior putamen SBR (synthetic CFT): L {pp[0]}, R {pp[1]}; table '{table.GetName()}', "
                f"regions '{segmentation.GetName()}'."
            )

        with slicer.util.tryWithErrorDisplay("Striatal binding failed to start.", waitCursor=True):
            volume = self.logic.inputVolume(inputNode)
            self.runTask(lambda progress, cancel: self.logic.compute_binding(volume, values, progress, cancel), onDone)

    # ------------------------------------------------------------------ Classify PD (third long action)
    def onClassifyPD(self):
        inputNode = self._parameterNode.fdgVolume
        values = self.values()

        def onDone(result):
            classification = self.logic.finish_classification(inputNode, result)
            cftNode = classification.cftNode
            slicer.util.setSliceViewerLayers(background=inputNode, foreground=cftNode, foregroundOpacity=0.5,
                                             fit=True)
            self.ui.classifyResultLabel.text = classification.line
            self.ui.statusLabel.text = (
                f"Classified in {result.seconds:.1f} s (input {result.space}); synthetic CFT '{cftNode.GetName()}' "
                "over the FDG."
            )

        with slicer.util.tryWithErrorDisplay("PD classification failed to start.", waitCursor=True):
            volume = self.logic.inputVolume(inputNode)
            self.logic.classifierEntry()  # a missing classifier model is said now, not after the synthesis
            self.ui.classifyResultLabel.text = ""
            self.runTask(
                lambda progress, cancel: self.logic.compute_classification(volume, values, progress, cancel), onDone
            )

    # ------------------------------------------------------------------ MR -> CT and the 511 keV mu-map
    def onSynthesizeCT(self):
        inputNode = self._parameterNode.mrVolume
        values = self.values()

        def onDone(ct):
            ctNode = self.logic.finish_ct(inputNode, ct)
            self._parameterNode.ctVolume = ctNode
            slicer.util.setSliceViewerLayers(background=ctNode, foreground=None, fit=True)
            self.ui.statusLabel.text = f"Done: {ctNode.GetName()} (synthetic CT, HU, CT window)."

        with slicer.util.tryWithErrorDisplay("CT synthesis failed to start.", waitCursor=True):
            volume = self.logic.mrVolume(inputNode)
            self.runTask(lambda progress, cancel: self.logic.compute_ct(volume, values, progress, cancel), onDone)

    def onMuMap(self):
        ctNode = self._parameterNode.ctVolume
        with slicer.util.tryWithErrorDisplay("mu-map failed.", waitCursor=True):
            muNode = self.logic.muMap(ctNode, kvp=self.values()["kvp"])
            slicer.util.setSliceViewerLayers(background=muNode, foreground=None, fit=True)
            self.ui.statusLabel.text = f"Done: {muNode.GetName()} (linear attenuation at 511 keV, cm^-1)."


class CrossModalityTest(ScriptedLoadableModuleTest):
    """Runs in Slicer (Reload and Test): a simulated FDG -> synthetic CFT node, SBR table and regions, PD
    classification (when the classifier is installed), bad input."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_synthesis_and_binding()
        self.test_classify_pd()
        self.test_bad_input_adds_nothing()

    def _fdgNode(self, group):
        from medsynth.pet.simulate import simulated_subject
        from medsynth_mrml import node_from_volume

        sub = simulated_subject(group, 3)
        return node_from_volume(slicer.mrmlScene, sub.fdg, name=f"FDG_{group}")

    def test_synthesis_and_binding(self):
        import numpy as np

        logic = CrossModalityLogic(slicer.mrmlScene)
        pp = {}
        for group in ("NC", "PD"):
            fdg = self._fdgNode(group)
            before = slicer.util.arrayFromVolume(fdg).copy()
            cft = logic.synthesize(fdg)
            self.assertEqual(slicer.util.arrayFromVolume(cft).shape, before.shape)
            table, segmentation = logic.striatalBinding(fdg)
            self.assertEqual(table.GetNumberOfRows(), 5)
            self.assertGreaterEqual(segmentation.GetSegmentation().GetNumberOfSegments(), 8)
            pp[group] = min(float(table.GetCellText(2, 1)), float(table.GetCellText(2, 2)))
            np.testing.assert_array_equal(slicer.util.arrayFromVolume(fdg), before)
        self.assertLess(pp["PD"], pp["NC"])
        self.delayDisplay("CrossModality: synthetic CFT and striatal binding passed")

    def test_classify_pd(self):
        from medsynth.pet.classify import MODEL_ID
        from medsynth.pet.simulate import example_subject
        from medsynth.runtime import list_models
        from medsynth_mrml import node_from_volume

        if MODEL_ID not in list_models():
            self.delayDisplay(f"CrossModality: PD classification skipped ({MODEL_ID} is not installed)")
            return
        logic = CrossModalityLogic(slicer.mrmlScene)
        probability = {}
        for group in ("NC", "PD"):
            fdg = node_from_volume(slicer.mrmlScene, example_subject(group).fdg, name=f"FDG_example_{group}")
            result = logic.classifyPD(fdg)
            self.assertIn("PD probability", result.line)
            self.assertEqual(slicer.util.arrayFromVolume(result.cftNode).shape,
                             slicer.util.arrayFromVolume(fdg).shape)
            probability[group] = result.probability
        self.assertGreater(probability["PD"], probability["NC"])
        self.delayDisplay("CrossModality: PD classification passed")

    def test_bad_input_adds_nothing(self):
        import numpy as np
        from medsynth import InputError, Volume, make_ijk_to_ras
        from medsynth_mrml import node_from_volume

        flat = node_from_volume(slicer.mrmlScene, Volume(np.zeros((1, 64, 64), np.float32), make_ijk_to_ras((2, 2, 2)),
                                                         name="flat"))
        count = slicer.mrmlScene.GetNumberOfNodes()
        with self.assertRaises(InputError):
            CrossModalityLogic(slicer.mrmlScene).synthesize(flat)
        self.assertEqual(slicer.mrmlScene.GetNumberOfNodes(), count)
        self.delayDisplay("CrossModality: bad input refused")
