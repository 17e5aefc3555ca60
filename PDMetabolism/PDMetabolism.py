"""PDMetabolism: MetaAD anomaly detection in brain FDG PET (healthy FDG -> CFT -> FDG cycle; anomaly maps).

Thin module file: the panel and the Slicer self-test. The logic is in ``PDMetabolismLib`` (takes the scene;
usable from the Python console and under the slicer-core wheel), the algorithm in ``medsynth.metaad``.
"""

import os
import sys

import slicer
from slicer.ScriptedLoadableModule import ScriptedLoadableModule, ScriptedLoadableModuleTest

_EXT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "MedSynthExtension")
if os.path.isdir(_EXT) and _EXT not in sys.path:
    sys.path.append(_EXT)

from medsynth_slicer.widget import MedSynthModuleWidget  # noqa: E402
from PDMetabolismLib import NODE_REFERENCES, PARAMS, Z_LEGEND_TITLE, PDMetabolismLogic  # noqa: E402

CITATION = (
    "MetaAD (MICCAI 2024): metabolic anomaly detection in FDG PET by a cyclic FDG -> CFT -> FDG translation trained "
    "on normal controls; the residual between the scan and its healthy reconstruction is the anomaly map."
)


class PDMetabolism(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "PD Metabolism (anomaly detection)"
        self.parent.categories = ["MedSynth"]
        self.parent.dependencies = ["MedSynthExtension"]
        self.parent.contributors = ["MedSynth developers"]
        self.parent.helpText = (
            "<i>Detect anomalies</i> reconstructs a healthy version of an 18F-FDG brain PET (FDG -> synthetic CFT -> "
            "FDG, learned from normal controls) and shows the residual FDG - reconstruction over the FDG as a "
            "<b>z map</b>: the residual divided by the normal controls' SD of the residual in the voxel's atlas "
            "region (regional-SD z, not a voxel-wise z). Blue = hypometabolism, red = hypermetabolism, window "
            "+-4 z, voxels with |z| below the threshold hidden, with a colour legend; in 3D a volume rendering of "
            "the z map (or the slice planes). The absolute and signed maps (% of the brain mean) are further nodes. "
            "The regional table (shown beside the views) gives z-scores of the mean residual per atlas region "
            "against normal controls; click a row to centre the views on that region. The subject score is "
            "compared with its threshold (95th percentile of normal controls).<br><br>Trained and calibrated on "
            "<b>simulated</b> PET only; not for clinical use.<br><br>" + CITATION
        )
        self.parent.acknowledgementText = "MedSynth. Atlas from MNI ICBM152 2009a and AAL. Method: " + CITATION


class PDMetabolismWidget(MedSynthModuleWidget):
    PARAMS = PARAMS
    NODE_REFERENCES = NODE_REFERENCES
    LOGIC_CLASS = PDMetabolismLogic
    APPLY_TEXT = "Detect anomalies"

    def setupModule(self):
        self._zNode = None
        self._tableNode = None
        self.ui.legendLabel.text = f"Map: {Z_LEGEND_TITLE}"
        self.ui.zThresholdSliderWidget.connect("valueChanged(double)", self.onThresholdChanged)
        self.ui.opacitySliderWidget.connect("valueChanged(double)", self.onOpacityChanged)
        self.ui.regionTableView.connect("clicked(QModelIndex)", self.onRegionClicked)

    def updateGUIFromParameterNode(self):
        if self._task is None and (self._parameterNode is None or self._parameterNode.fdgVolume is None):
            self.ui.statusLabel.text = "Select an FDG PET volume."

    def onThresholdChanged(self, value):
        if self._zNode is not None and self._zNode.GetScene() is not None:
            self.logic.setZThreshold(self._zNode, value)

    def onOpacityChanged(self, value):
        self.logic.setMapOpacity(value)

    def onRegionClicked(self, index):
        if self._tableNode is not None and index.isValid():
            ras = self.logic.jumpToRegion(self._tableNode, index.row())
            self.ui.statusLabel.text = f"Region centroid R {ras[0]:.0f}, A {ras[1]:.0f}, S {ras[2]:.0f} mm"

    def startTask(self):
        inputNode = self._parameterNode.fdgVolume
        values = self.values()
        volume = self.logic.inputVolume(inputNode)

        def compute(progress, cancel):
            return self.logic.compute(volume, values, progress, cancel)

        def onDone(result):
            current = self.values()  # threshold/opacity may have moved while it ran
            nodes = self.logic.finish(inputNode, result, current)
            self._zNode, self._tableNode = nodes.z, nodes.table
            shown3d = self.logic.showResults(inputNode, nodes, current)  # slice layers, table layout, 3D
            slicer.app.applicationLogic().PropagateTableSelection()  # the layout's table view shows the table
            slicer.util.resetSliceViews()
            if shown3d == "volume rendering":
                slicer.util.resetThreeDViews()
            self.ui.regionTableView.setMRMLTableNode(nodes.table)
            s = result.report()["subject_score"]
            self.ui.scoreLabel.text = (
                f"Score ({s['name']}): {s['value']:.2f}; threshold {s['threshold']:.2f} "
                f"({'ABOVE' if s['abnormal'] else 'below'}; {s['threshold_rule']})"
            )
            self.ui.statusLabel.text = f"Done in {result.seconds:.1f} s (input {result.space}). Simulated-data model."

        return compute, onDone


class PDMetabolismTest(ScriptedLoadableModuleTest):
    """Runs in Slicer (Reload and Test): NC vs PD simulated FDG, maps, table, jump, bad input."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_detect_nc_vs_pd()
        self.test_bad_input_adds_nothing()

    def _fdgNode(self, group):
        from medsynth.pet.simulate import example_subject
        from medsynth_mrml import node_from_volume

        sub = example_subject(group)  # PD: an advanced subject
        return node_from_volume(slicer.mrmlScene, sub.fdg, name=f"FDG_{group}")

    def test_detect_nc_vs_pd(self):
        logic = PDMetabolismLogic(slicer.mrmlScene)
        score = {}
        for group in ("NC", "PD"):
            fdg = self._fdgNode(group)
            nodes = logic.detectAnomalies(fdg)
            self.assertEqual(nodes.table.GetNumberOfRows(), 21)
            ras = logic.jumpToRegion(nodes.table, 0)
            self.assertEqual(len(ras), 3)
            logic.setZThreshold(nodes.z, 3.0)
            self.assertEqual(nodes.z.GetAttribute("MedSynth.PDMetabolism.threshold"), "3.0")
            import json

            score[group] = json.loads(nodes.z.GetAttribute("MedSynth.PDMetabolism.score"))["value"]
        self.assertGreater(score["PD"], score["NC"])
        self.delayDisplay("PDMetabolism: z map, anomaly maps, table layout and jump passed")

    def test_bad_input_adds_nothing(self):
        import numpy as np
        from medsynth import InputError, Volume, make_ijk_to_ras
        from medsynth_mrml import node_from_volume

        flat = node_from_volume(slicer.mrmlScene, Volume(np.zeros((1, 64, 64), np.float32), make_ijk_to_ras((2, 2, 2)),
                                                         name="flat"))
        count = slicer.mrmlScene.GetNumberOfNodes()
        with self.assertRaises(InputError):
            PDMetabolismLogic(slicer.mrmlScene).detectAnomalies(flat)
        self.assertEqual(slicer.mrmlScene.GetNumberOfNodes(), count)
        self.delayDisplay("PDMetabolism: bad input refused")
