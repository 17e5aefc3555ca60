"""Click-to-place one point in a slice view (Slicer's markups placement), kept in step with a panel's fields."""

from __future__ import annotations

from typing import Any, Dict, Sequence, Tuple

from medsynth.errors import InputError


class PointPlacement:
    """Mixin for a :class:`~medsynth_studio.panel.StudioPanel` with a "Place" action.

    The panel sets :attr:`POINT_NAME` and :attr:`PLACE_STATUS` and implements :meth:`point_placed`, called with
    the RAS point when the user places or drags it; :meth:`_move_point` moves the point when the panel's own
    fields change (without calling back).
    """

    POINT_NAME = "point"
    PLACE_STATUS = "Click in a slice view to place the point."
    #: markups events that report a new position
    POINT_EVENTS: Tuple[str, ...] = ("PointPositionDefinedEvent", "PointEndInteractionEvent")
    point_node: Any = None
    _quiet = False

    def point_placed(self, ras: Sequence[float]) -> None:  # pragma: no cover - each panel implements it
        raise NotImplementedError

    def on_place(self, values: Dict[str, Any]) -> None:
        markups = getattr(self.studio.slicer_app, "markups_logic", None)
        if markups is None:
            raise InputError("placing points needs Slicer's markups logic (not in this app)")
        point_list = self._point_list()
        point_list.RemoveAllControlPoints()
        markups.place_node(point_list, False)
        self._set(status=self.PLACE_STATUS)

    def _point_list(self):
        scene = self.studio.scene
        if self.point_node is None or scene.GetNodeByID(self.point_node.GetID()) is None:
            import slicer

            node = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", self.POINT_NAME)
            node.SetMaximumNumberOfControlPoints(1)
            node.SetSaveWithScene(False)
            if node.GetDisplayNode() is None:
                node.CreateDefaultDisplayNodes()
            for event in self.POINT_EVENTS:
                node.AddObserver(getattr(slicer.vtkMRMLMarkupsNode, event), self._on_point_event)
            self.point_node = node
        return self.point_node

    def _on_point_event(self, caller, _event) -> None:
        import slicer

        if self._quiet or caller.GetNumberOfControlPoints() == 0:
            return
        if caller.GetNthControlPointPositionStatus(0) != slicer.vtkMRMLMarkupsNode.PositionDefined:
            return  # still following the mouse while placing
        ras = [0.0, 0.0, 0.0]
        caller.GetNthControlPointPositionWorld(0, ras)
        self.point_placed(ras)

    def _move_point(self, ras: Sequence[float]) -> None:
        """Keep the placed point on the position typed in the panel's fields."""
        node = self.point_node
        if node is None or self.studio.scene.GetNodeByID(node.GetID()) is None or node.GetNumberOfControlPoints() == 0:
            return
        now = [0.0, 0.0, 0.0]
        node.GetNthControlPointPositionWorld(0, now)
        if all(abs(a - float(b)) < 1e-3 for a, b in zip(now, ras)):
            return
        self._quiet = True
        try:
            node.SetNthControlPointPositionWorld(0, *[float(x) for x in ras])
        finally:
            self._quiet = False
