"""MedSynth settings module: device, user model folder, dependency check, model list.

Also applies the saved settings when Slicer starts and registers MedSynth's sample
data.  The engine (``medsynth``) and the helpers (``medsynth_slicer``) live beside
this file, so Slicer's module path puts them on ``sys.path``.
"""

import logging
import os

import qt
import slicer
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

DEVICE_LABELS = (("auto", "Automatic (GPU when present)"), ("cpu", "CPU"), ("gpu", "GPU (CUDA)"))

SAMPLE_DATA = (
    # (name, file in Resources/SampleData, node name): as medsynth.sample_data.SAMPLES (the tests check they agree);
    # what each file is and its terms: Resources/SampleData/README.md.  "simulated" ones have no patient behind them.
    ("MedSynth chest CT phantom (simulated)", "chest_ct_phantom_simulated.nii.gz", "chest_ct_phantom_simulated"),
    ("MedSynth chest radiograph RG1", "chest_xray_rg1_half.nrrd", "chest_xray_rg1_half"),
    ("MedSynth Pap smear field (simulated)", "pap_smear_field_simulated.nrrd", "pap_smear_field_simulated"),
    ("MedSynth FDG PET, Parkinson's disease (simulated)", "fdg_pet_pd_simulated.nii.gz", "fdg_pet_pd_simulated"),
    ("MedSynth MNI T1 2 mm", "mni_t1_2mm.nii.gz", "mni_t1_2mm"),
    ("MedSynth head CT 2 mm", "head_ct_2mm.nii.gz", "head_ct_2mm"),
)


class MedSynthExtension(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "MedSynth Settings"
        self.parent.categories = ["MedSynth"]
        self.parent.dependencies = []
        self.parent.contributors = ["MedSynth developers"]
        self.parent.helpText = (
            "Settings shared by the MedSynth modules: where models run (CPU or GPU), a folder of your own "
            "models (same manifest format as the shipped ones), and a check of the Python packages MedSynth needs."
        )
        self.parent.acknowledgementText = "MedSynth: controllable medical image synthesis for 3D Slicer."
        slicer.app.connect("startupCompleted()", onStartupCompleted)


def onStartupCompleted():
    """Apply saved settings and register sample data (never installs anything)."""
    try:
        from medsynth_slicer.settings import QSettingsStore, Settings

        Settings.load(QSettingsStore()).apply()
    except Exception as exc:  # a missing optional package must not break Slicer's start
        logging.warning(f"MedSynth: settings not applied: {exc}")
    try:
        registerSampleData()
    except Exception as exc:
        logging.warning(f"MedSynth: sample data not registered: {exc}")


def registerSampleData():
    import SampleData
    from medsynth.runtime import resources_dir, sha256_of

    folder = resources_dir() / "SampleData"
    for title, fileName, nodeName in SAMPLE_DATA:
        path = folder / fileName
        if not path.is_file():
            continue
        SampleData.SampleDataLogic.registerCustomSampleDataSource(
            category="MedSynth",
            sampleName=title,
            uris=path.as_uri(),
            fileNames=fileName,
            nodeNames=nodeName,
            checksums=f"SHA256:{sha256_of(path)}",
            thumbnailFileName=os.path.join(os.path.dirname(__file__), "Resources", "Icons", "MedSynthExtension.png"),
        )


class MedSynthExtensionWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/MedSynthExtension.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        self.logic = MedSynthExtensionLogic()

        for value, label in DEVICE_LABELS:
            self.ui.deviceComboBox.addItem(label, value)
        settings = self.logic.settings()
        self.ui.deviceComboBox.setCurrentIndex(max(0, [v for v, _ in DEVICE_LABELS].index(settings.device)))
        self.ui.userModelFolderPathLineEdit.currentPath = settings.user_model_folder

        self.ui.deviceComboBox.connect("currentIndexChanged(int)", self.onSettingsChanged)
        self.ui.userModelFolderPathLineEdit.connect("currentPathChanged(QString)", self.onSettingsChanged)
        self.ui.checkDependenciesButton.connect("clicked(bool)", self.onCheckDependencies)
        self.ui.refreshModelsButton.connect("clicked(bool)", self.refreshModels)
        self.refreshModels()

    def onSettingsChanged(self, *_):
        with slicer.util.tryWithErrorDisplay("Failed to apply MedSynth settings.", waitCursor=True):
            self.logic.saveSettings(
                device=self.ui.deviceComboBox.currentData, userModelFolder=self.ui.userModelFolderPathLineEdit.currentPath
            )
            self.refreshModels()

    def onCheckDependencies(self):
        with slicer.util.tryWithErrorDisplay("Failed to install MedSynth's dependencies.", waitCursor=True):
            installed = self.logic.installMissingDependencies(confirm=slicer.util.confirmOkCancelDisplay)
            self.ui.dependencyStatusLabel.text = (
                "Installed: " + ", ".join(installed) if installed else self.logic.dependencyStatus()
            )

    def refreshModels(self):
        rows = self.logic.modelRows()
        table = self.ui.modelsTableWidget
        columns = ("id", "version", "task", "checksum", "folder")
        table.setColumnCount(len(columns))
        table.setHorizontalHeaderLabels([c.capitalize() for c in columns])
        table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, key in enumerate(columns):
                table.setItem(r, c, qt.QTableWidgetItem(str(row[key])))
        self.ui.dependencyStatusLabel.text = self.logic.dependencyStatus()


class MedSynthExtensionLogic(ScriptedLoadableModuleLogic):
    """Settings logic, usable from the Python console:

    >>> logic = slicer.util.getModuleLogic("MedSynthExtension")
    >>> logic.saveSettings(device="cpu")
    """

    def settings(self):
        from medsynth_slicer.settings import QSettingsStore, Settings

        return Settings.load(QSettingsStore())

    def saveSettings(self, device=None, userModelFolder=None):
        from medsynth_slicer.settings import QSettingsStore

        store = QSettingsStore()
        settings = self.settings()
        if device is not None:
            settings.device = device
        if userModelFolder is not None:
            settings.user_model_folder = userModelFolder
        settings.apply()
        settings.save(store)
        return settings

    def modelRows(self):
        from medsynth_slicer.settings import model_rows

        return model_rows()

    def dependencyStatus(self):
        from medsynth_slicer.dependencies import missing_packages

        missing = missing_packages()
        return "All required packages present." if not missing else "Missing: " + ", ".join(missing)

    def installMissingDependencies(self, confirm):
        from medsynth_slicer.dependencies import install_missing

        return install_missing(confirm=confirm, pip_install=slicer.util.pip_install)


class MedSynthExtensionTest(ScriptedLoadableModuleTest):
    """Self-test for users who run it in Slicer (Reload and Test)."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_settings_apply_to_runtime()
        self.test_volume_round_trip_through_bridge()

    def test_settings_apply_to_runtime(self):
        from medsynth import runtime

        logic = MedSynthExtensionLogic()
        before = logic.settings()
        try:
            logic.saveSettings(device="cpu")
            self.assertEqual(runtime.get_device(), "cpu")
            self.assertEqual(runtime.providers_for(), ["CPUExecutionProvider"])
        finally:
            logic.saveSettings(device=before.device, userModelFolder=before.user_model_folder)

    def test_volume_round_trip_through_bridge(self):
        import numpy as np
        from medsynth import Volume, make_ijk_to_ras
        from medsynth_mrml import node_from_volume, volume_from_node

        arr = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
        vol = Volume(arr, make_ijk_to_ras((0.5, 1.0, 3.0), (10, -5, 2)), name="selftest")
        node = node_from_volume(slicer.mrmlScene, vol)
        back = volume_from_node(node)
        np.testing.assert_array_equal(back.array, arr)
        np.testing.assert_allclose(back.ijk_to_ras, vol.ijk_to_ras, atol=1e-12)
        self.delayDisplay("MedSynth settings self-test passed")
