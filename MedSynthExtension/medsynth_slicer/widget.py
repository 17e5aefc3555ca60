"""A base for MedSynth module panels (Slicer only): parameter node from the module's
declarations, Apply that turns into Cancel while a background task runs, a progress
bar, and errors shown with ``slicer.util.tryWithErrorDisplay``.

A module widget sets ``PARAMS``, ``NODE_REFERENCES``, ``LOGIC_CLASS`` and implements
``startTask`` (return a ``(compute, onDone)`` pair) and, optionally, ``updateGUIFromParameterNode``.
The .ui file must have ``applyButton``, ``progressBar`` and ``statusLabel``.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, Optional, Tuple

import qt
import slicer
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleWidget
from slicer.util import VTKObservationMixin

from .parameters import parameter_node_class, values_of
from .worker import BackgroundTask


class MedSynthModuleWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    PARAMS: Tuple = ()
    NODE_REFERENCES: Dict[str, Any] = {}
    LOGIC_CLASS: Any = None
    APPLY_TEXT = "Apply"

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._task: Optional[BackgroundTask] = None
        self._wrapper = None

    # ------------------------------------------------------------------ setup
    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath(f"UI/{self.moduleName}.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = self.LOGIC_CLASS(slicer.mrmlScene)
        self._wrapper = parameter_node_class(f"{self.moduleName}Parameters", self.PARAMS, self.NODE_REFERENCES)
        self.ui.progressBar.hide()
        self.ui.applyButton.connect("clicked(bool)", self.onApplyOrCancel)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.setupModule()
        self.initializeParameterNode()

    def setupModule(self) -> None:
        """Module-specific connections (override)."""

    def cleanup(self) -> None:
        self.cancelTask()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtkModifiedEvent(), self._onParameterNodeModified)

    def onSceneStartClose(self, caller, event) -> None:
        self.cancelTask()
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    # ------------------------------------------------------------------ parameter node
    def initializeParameterNode(self) -> None:
        node = self._wrapper(self._scriptedModuleNode())
        for name, cls in self.NODE_REFERENCES.items():
            if getattr(node, name) is None:
                first = slicer.mrmlScene.GetFirstNodeByClass(cls if isinstance(cls, str) else cls.__name__)
                if first:
                    setattr(node, name, first)
        self.setParameterNode(node)

    def _scriptedModuleNode(self):
        """The module's singleton parameter node (what ScriptedLoadableModuleLogic.getParameterNode gives)."""
        node = slicer.mrmlScene.GetSingletonNode(self.moduleName, "vtkMRMLScriptedModuleNode")
        if node is None:
            node = slicer.mrmlScene.CreateNodeByClass("vtkMRMLScriptedModuleNode")
            node.UnRegister(None)
            node.SetSingletonTag(self.moduleName)
            node.SetAttribute("ModuleName", self.moduleName)
            node.SetName(slicer.mrmlScene.GenerateUniqueName(self.moduleName))
            node = slicer.mrmlScene.AddNode(node)
        return node

    def setParameterNode(self, node) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtkModifiedEvent(), self._onParameterNodeModified)
        self._parameterNode = node
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtkModifiedEvent(), self._onParameterNodeModified)
            self._onParameterNodeModified()

    def values(self) -> Dict[str, Any]:
        return values_of(self._parameterNode, self.PARAMS)

    def _onParameterNodeModified(self, caller=None, event=None) -> None:
        if self._task is None:
            self.ui.applyButton.enabled = self.canApply()
        self.updateGUIFromParameterNode()

    def canApply(self) -> bool:
        return all(getattr(self._parameterNode, n) is not None for n in self.NODE_REFERENCES)

    def updateGUIFromParameterNode(self) -> None:
        """Module-specific display updates (override)."""

    # ------------------------------------------------------------------ running
    def startTask(self):
        """Return ``(compute(progress, cancel) -> result, onDone(result))`` (override)."""
        raise NotImplementedError

    def onApplyOrCancel(self) -> None:
        if self._task is not None:
            self.cancelTask()
            return
        with slicer.util.tryWithErrorDisplay(f"{self.moduleName} failed to start.", waitCursor=True):
            self.runTask(*self.startTask())

    def runTask(self, compute, onDone) -> None:
        """Run ``compute(progress, cancel)`` in the background, then ``onDone(result)`` on the main thread.

        Any button of the panel may start one (one at a time); Apply turns into Cancel meanwhile.
        """
        if self._task is not None:
            raise RuntimeError(f"{self.moduleName} is busy; cancel the running task first")
        self._task = BackgroundTask(
            compute,
            on_done=lambda result: self._finishTask(onDone, result),
            on_error=self._onTaskError,
            on_progress=self._onTaskProgress,
            on_finished=self._onTaskFinished,
        )
        self.ui.applyButton.text = "Cancel"
        self.ui.applyButton.enabled = True
        self.ui.progressBar.value = 0
        self.ui.progressBar.show()
        self._task.start()
        self.updateGUIFromParameterNode()

    def cancelTask(self) -> None:
        if self._task is not None:
            self.ui.statusLabel.text = "Cancelling..."
            self._task.cancel()

    def _finishTask(self, onDone, result) -> None:
        with slicer.util.tryWithErrorDisplay(f"{self.moduleName} failed.", waitCursor=True):
            onDone(result)

    def _onTaskError(self, exc: BaseException) -> None:
        logging.error(f"{self.moduleName}: {exc}")
        self.ui.statusLabel.text = f"Error: {exc}"
        slicer.util.errorDisplay(f"{self.moduleName} failed:\n{exc}")

    def _onTaskProgress(self, fraction: float, message: str) -> None:
        self.ui.progressBar.value = int(round(100 * fraction))
        self.ui.statusLabel.text = message

    def _onTaskFinished(self, cancelled: bool) -> None:
        self._task = None
        self.ui.applyButton.text = self.APPLY_TEXT
        self.ui.applyButton.enabled = self.canApply()
        self.ui.progressBar.hide()
        if cancelled:
            self.ui.statusLabel.text = "Cancelled; nothing was added."


def vtkModifiedEvent() -> int:
    import vtk

    return vtk.vtkCommand.ModifiedEvent
