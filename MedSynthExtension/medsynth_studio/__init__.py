"""MedSynth Studio: the MedSynth modules in a browser, beside Slicer's own views (trame-slicer).

A face of the engine, like the Slicer modules and the command line: it imports trame,
trame-slicer and slicer-core; the engine (``medsynth``) never imports it.  Panels plug
in through :class:`medsynth_studio.panel.StudioPanel` (see that module).
"""

from .panel import PANELS, Action, NodeInput, StudioPanel, load_panel_classes

__all__ = ["PANELS", "Action", "NodeInput", "StudioPanel", "load_panel_classes"]
