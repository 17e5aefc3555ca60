"""Helpers shared by MedSynth's Slicer modules (the face floor).

Nothing here holds an algorithm: parameter nodes derived from the engine's
parameter declarations, a background runner with progress and cancel for Qt
panels, the dependency check, and the user settings.  Qt/Slicer imports happen
inside functions so that the pure parts are testable outside Slicer.
"""
