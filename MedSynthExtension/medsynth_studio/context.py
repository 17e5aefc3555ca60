"""What every studio panel gets: the Slicer core app (scene, views, IO), the trame state, helpers.

Panels show results through these helpers so every module displays nodes the same way
(as Slicer would): volumes in the slice backgrounds and volume-rendered in 3D, overlays
in the slice foregrounds, segmentations as outlines/fill in 2D and surfaces in 3D.
"""

from __future__ import annotations

import logging
from typing import Callable, List, Optional

log = logging.getLogger("medsynth.studio")

#: Node classes listed in volume selectors (labelmaps are shown as overlays, not chosen as inputs).
VOLUME_CLASS = "vtkMRMLScalarVolumeNode"
SEGMENTATION_CLASS = "vtkMRMLSegmentationNode"


#: Default upload limit: 2 GiB (a large CT is a few hundred MB).  Uploads go to disk piece by piece.
DEFAULT_MAX_UPLOAD_BYTES = 2 * 1024 ** 3


class StudioContext:
    """The Slicer core app and the trame server shared by the panels.

    Args:
        slicer_app: a ``trame_slicer.core.SlicerApp`` (views registered by the caller:
            RCA views in the web app, ``DirectViewFactory`` in tests).
        server: the trame server (its ``state`` is the panels' state).
    """

    def __init__(self, slicer_app, server) -> None:
        self.slicer_app = slicer_app
        self.server = server
        self.state = server.state
        self.scene = slicer_app.scene
        self.panels: list = []
        #: Largest upload accepted (all files of one upload together); ``medsynth studio --max-upload-mb``.
        self.max_upload_bytes = DEFAULT_MAX_UPLOAD_BYTES
        self._scene_listeners: List[Callable[[], None]] = []
        self._pending = False
        self._scheduled = False
        import slicer

        for event in (slicer.vtkMRMLScene.NodeAddedEvent, slicer.vtkMRMLScene.NodeRemovedEvent):
            self.scene.AddObserver(event, self._on_node_event)
        self.scene.AddObserver(slicer.vtkMRMLScene.EndBatchProcessEvent, self._on_batch_end)
        self.scene.AddObserver(slicer.vtkMRMLScene.EndCloseEvent, self._on_batch_end)

    # ------------------------------------------------------------------ scene events
    def add_scene_listener(self, listener: Callable[[], None]) -> None:
        self._scene_listeners.append(listener)

    def _on_node_event(self, *_args) -> None:
        # A node is announced before its voxels are set: refresh the panels later, once.
        self._pending = True
        if self._scheduled:
            return
        try:
            import asyncio

            asyncio.get_running_loop().call_soon(self.flush_scene_changes)
            self._scheduled = True
        except RuntimeError:  # no event loop (building, tests): flush_scene_changes() is called explicitly
            pass

    def _on_batch_end(self, *_args) -> None:
        self._on_node_event()

    def flush_scene_changes(self) -> None:
        """Tell the panels about nodes added or removed since the last call (no-op when none)."""
        self._scheduled = False
        if not self._pending:
            return
        if self.scene.IsBatchProcessing() or self.scene.IsClosing():
            return  # the batch end will call again
        self._pending = False
        self.notify_scene_changed()

    def notify_scene_changed(self) -> None:
        for listener in list(self._scene_listeners):
            try:
                listener()
            except Exception:  # noqa: BLE001 - one panel must not break the others
                log.exception("scene listener failed")

    def add_panel(self, panel) -> None:
        self.panels.append(panel)
        self.add_scene_listener(panel.on_scene_changed)
        panel.on_scene_changed()

    def panel(self, panel_id: str):
        return next((p for p in self.panels if p.id == panel_id), None)

    # ------------------------------------------------------------------ nodes
    def nodes_of_class(self, node_class: str) -> list:
        """Nodes of exactly this class (a labelmap is not listed as a scalar volume), hidden ones left out."""
        nodes = []
        collection = self.scene.GetNodesByClass(node_class)
        for i in range(collection.GetNumberOfItems()):
            node = collection.GetItemAsObject(i)
            if node.GetClassName() != node_class or node.GetHideFromEditors():
                continue
            if node.IsA("vtkMRMLVolumeNode") and node.GetImageData() is None:
                continue  # being created, or failed to load
            nodes.append(node)
        return nodes

    def volume_nodes(self) -> list:
        return self.nodes_of_class(VOLUME_CLASS)

    # ------------------------------------------------------------------ views
    def slice_views(self) -> list:
        return list(self.slicer_app.view_manager.get_slice_views())

    def threed_views(self) -> list:
        return list(self.slicer_app.view_manager.get_threed_views())

    def background_volume(self):
        for view in self.slice_views():
            node_id = view.get_background_volume_id()
            if node_id:
                return self.scene.GetNodeByID(node_id)
        return None

    def show_volume(self, node, reset_views: bool = True) -> None:
        """Show ``node`` as Slicer does after loading: slice backgrounds and a 3D volume rendering."""
        if node is None:
            return
        views = self.slice_views()
        foregrounds = [view.get_foreground_volume_id() for view in views]
        opacities = [view.get_foreground_opacity() for view in views]
        self.slicer_app.display_manager.show_volume(node, do_reset_views=reset_views)
        # show_volume clears the foreground; keep each view's overlay (a module's preview may be in one view only)
        for view, fg, opacity in zip(views, foregrounds, opacities):
            if fg and fg != node.GetID() and self.scene.GetNodeByID(fg) is not None:
                view.set_foreground_volume_id(fg)
                view.set_foreground_opacity(opacity)
        # keep only one volume rendered in 3D
        vr = self.slicer_app.volume_rendering
        for other in self.volume_nodes():
            if other is not node and vr.has_vr_display_node(other):
                vr.get_vr_display_node(other).SetVisibility(False)
        self.render()

    def foreground_volume(self):
        for view in self.slice_views():
            node_id = view.get_foreground_volume_id()
            if node_id:
                return self.scene.GetNodeByID(node_id)
        return None

    def set_foreground(self, node, opacity: Optional[float] = None) -> None:
        """Overlay ``node`` in the slice foregrounds (None removes it), optionally with an opacity 0..1."""
        self.slicer_app.display_manager.show_volume_in_slice_foreground(node)
        if opacity is not None:
            for view in self.slice_views():
                view.set_foreground_opacity(float(opacity))
        self.render(threed=False)

    def axial_view(self):
        """The axial (red) slice view, or None."""
        return next((v for v in self.slice_views() if v.get_orientation() == "Axial"), None)

    @staticmethod
    def slice_plane(view):
        """(centre RAS, normal RAS) of the slice a slice view shows (its SliceToRAS matrix)."""
        m = view._logic.GetSliceNode().GetSliceToRAS()  # noqa: SLF001 - trame-slicer has no public getter
        return [m.GetElement(r, 3) for r in range(3)], [m.GetElement(r, 2) for r in range(3)]

    def jump_slices_to(self, ras) -> None:
        """Move every slice view's plane through ``ras`` (no panning), as Slicer's "jump to point"."""
        for view in self.slice_views():
            view._logic.GetSliceNode().JumpSliceByOffsetting(*[float(x) for x in ras])  # noqa: SLF001
        self.render()

    def show_result(self, node, reset_views: bool = False) -> None:
        """Make a module's new volume the active one (the Volumes panel's selector follows), keeping the views."""
        volumes = self.panel("volumes")
        if volumes is not None and hasattr(volumes, "activate"):
            volumes.activate(node, reset_views=reset_views)
        else:
            self.show_volume(node, reset_views=reset_views)

    def show_labelmap(self, node, opacity: float = 0.5) -> None:
        """Show a labelmap volume in Slicer's label layer of the slice views (None removes it)."""
        for view in self.slice_views():
            composite = view._logic.GetSliceCompositeNode()  # noqa: SLF001 - trame-slicer has no public getter
            composite.SetLabelVolumeID(node.GetID() if node is not None else None)
            composite.SetLabelOpacity(float(opacity))
        self.render(threed=False)

    def show_segmentation(self, node, surfaces_in_3d: bool = True) -> None:
        """Show a segmentation node: filled outlines in the slice views and, optionally, surfaces in 3D."""
        if node is None:
            return
        if node.GetDisplayNode() is None:
            node.CreateDefaultDisplayNodes()
        display = node.GetDisplayNode()
        display.SetVisibility(True)
        display.SetVisibility2DFill(True)
        display.SetVisibility2DOutline(True)
        if surfaces_in_3d:
            node.CreateClosedSurfaceRepresentation()
            display.SetVisibility3D(True)
        self.render()

    def reset_views(self) -> None:
        self.slicer_app.display_manager.reset_views()
        self.render()

    def render(self, threed: bool = True) -> None:
        """Ask the views to redraw (RCA views push a new image to the page).

        ``threed=False`` redraws only the slice views: on a server without a GPU a 3D volume
        rendering frame costs far more than a slice, so display-only 2D changes (window/level,
        overlays) leave the 3D view alone.
        """
        views = self.slice_views() + (self.threed_views() if threed else [])
        for view in views:
            try:
                view.schedule_render()
            except Exception:  # noqa: BLE001 - a view being torn down
                log.debug("render of a view failed", exc_info=True)
