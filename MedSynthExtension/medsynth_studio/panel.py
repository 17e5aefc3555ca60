"""The studio's panel plug-in interface.

A module panel is a subclass of :class:`StudioPanel` that declares, as class attributes:

* ``id`` (state-key prefix, a JavaScript identifier), ``title``, ``icon`` (mdi name);
* ``params``: the module's :class:`~medsynth.params.Param` tuple (``medsynth.<module>.params``),
  from which the controls are generated (:mod:`medsynth_studio.controls`);
* ``inputs``: :class:`NodeInput` selectors (input volume, segmentation...), like the
  Slicer widget's ``NODE_REFERENCES``;
* ``actions``: :class:`Action` buttons;
* ``logic_class``: the module's ``<Module>Lib`` logic (the same class the Slicer module
  uses); it is built as ``logic_class(scene)`` into ``self.logic``;
* ``models`` (optional): the ids of the models it runs; the studio links each one's model card
  under the panel (default: :data:`medsynth_studio.cards.PANEL_MODELS` by panel id).

and implements

* ``update(values, changed)`` - called when a ``live`` param (or a live input) changes, no
  button press (e.g. ``self.logic.preview(...)``);
* ``on_<action name>(values)`` for each button: return ``None`` when done, or a
  ``(compute(progress, cancel), on_done(result))`` pair - the same pair a Slicer
  module's ``startTask`` returns - to run it as a long action with progress and Cancel;
* ``download_<action name>(values) -> (file name, bytes)`` for ``Action(kind="download")``;
* optionally ``build_extra()`` for widgets the declarations do not cover (``build_params()``
  to arrange the generated controls differently, ``build_footer(busy)`` for widgets after the
  buttons), ``on_scene_changed()`` and
  ``on_visibility_changed(visible)`` (the panel was opened or closed in the page: a module
  that borrows a view, like a live preview, gives it back while closed; see ``visible()``).

Register it by appending ``"package.module:ClassName"`` to :data:`PANELS`; a panel whose
import fails (its module has not landed) is skipped with a log line.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from medsynth.errors import InputError
from medsynth.params import Param, validate

from .controls import build_control, initial_state, state_key
from .tasks import TaskRunner, error_text

log = logging.getLogger("medsynth.studio")

#: Panels shown by ``medsynth studio``, in order, as ``"module:Class"``.  A module issue
#: appends its own (e.g. ``"medsynth_studio.nodule:NoduleSynthPanel"``).
PANELS: List[str] = [
    "medsynth_studio.volumes:VolumesPanel",
    "medsynth_studio.superres:SliceSuperResPanel",
    "medsynth_studio.nodule:NoduleSynthPanel",
    "medsynth_studio.cyto:CytoSynthPanel",
    "medsynth_studio.crossmod:CrossModalityPanel",
    "medsynth_studio.pdmeta:PDMetabolismPanel",
]


@dataclass(frozen=True)
class NodeInput:
    """A node selector: state key ``<panel id>_<name>`` holds the node ID ('' = none)."""

    name: str
    label: str
    node_class: str = "vtkMRMLScalarVolumeNode"
    none_allowed: bool = False
    live: bool = True
    help: str = ""


@dataclass(frozen=True)
class Action:
    """A button.  ``kind``: ``"button"`` calls ``on_<name>``; ``"download"`` calls ``download_<name>``."""

    name: str
    label: str
    icon: str = ""
    kind: str = "button"
    color: str = "primary"
    help: str = ""


def load_panel_classes(names: Optional[Sequence[str]] = None) -> List[type]:
    """Import the panel classes named in :data:`PANELS` (or ``names``); skip those that fail."""
    classes = []
    for spec in PANELS if names is None else names:
        module_name, _, class_name = spec.partition(":")
        try:
            classes.append(getattr(importlib.import_module(module_name), class_name))
        except Exception as exc:  # noqa: BLE001 - a module not landed yet must not stop the studio
            log.warning("studio panel %s skipped: %s", spec, error_text(exc))
    return classes


def _same(a: Any, b: Any) -> bool:
    try:
        return type(a) is type(b) and bool(a == b)
    except Exception:  # noqa: BLE001 - values that do not compare are treated as changed
        return False


class StudioPanel:
    """Base class of studio panels (see the module docstring for the interface)."""

    id: str = "panel"
    title: str = "Panel"
    icon: str = "mdi-puzzle"
    params: Tuple[Param, ...] = ()
    inputs: Tuple[NodeInput, ...] = ()
    actions: Tuple[Action, ...] = ()
    logic_class: Any = None
    models: Tuple[str, ...] = ()

    def __init__(self, studio) -> None:
        """``studio``: the :class:`~medsynth_studio.context.StudioContext` (scene, views, state)."""
        self.studio = studio
        self.state = studio.state
        self.logic = self.logic_class(studio.scene) if self.logic_class is not None else None
        self.tasks = TaskRunner(self.state, self.id)
        self.last_update_s = 0.0
        for key, value in initial_state(self.params, self.id).items():
            self.state.setdefault(key, value)
        for node_input in self.inputs:
            self.state.setdefault(self.key(node_input.name), "")
            self.state.setdefault(self.key(node_input.name) + "_items", [])
        self._watch()
        self._was_visible: Optional[bool] = None
        self.state.change(self.OPEN_KEY)(self._on_open_panels)

    def _on_open_panels(self, **_kwargs: Any) -> None:
        visible = self.visible()
        if visible != self._was_visible:
            self._was_visible = visible
            try:
                self.on_visibility_changed(visible)
            except Exception as exc:  # noqa: BLE001 - shown in the page
                log.exception("%s: open/close failed", self.id)
                self.show_error(error_text(exc))

    # ------------------------------------------------------------------ state
    def key(self, name: str) -> str:
        return state_key(self.id, name)

    def raw_values(self) -> Dict[str, Any]:
        return {p.name: self.state[self.key(p.name)] for p in self.params}

    def values(self) -> Dict[str, Any]:
        """The params' current values, converted and range-checked (:class:`InputError` otherwise)."""
        return validate(self.params, self.raw_values())

    def set_values(self, **values: Any) -> None:
        """Set params (as the page would); live ones call :meth:`update` once the state is flushed."""
        with self.state:
            for name, value in values.items():
                self.state[self.key(name)] = value

    def set_range(self, name: str, minimum: float, maximum: float, step: Optional[float] = None) -> None:
        """Fit a slider's bounds (within the Param's declared range) to the data, e.g. window/level."""
        with self.state:
            self.state[self.key(name) + "_min"] = minimum
            self.state[self.key(name) + "_max"] = maximum
            if step is not None:
                self.state[self.key(name) + "_step"] = step

    def node(self, name: str):
        """The node chosen in the :class:`NodeInput` ``name`` (None when none)."""
        node_id = self.state[self.key(name)]
        return self.studio.scene.GetNodeByID(node_id) if node_id else None

    def select_node(self, name: str, node) -> None:
        with self.state:
            self.state[self.key(name)] = node.GetID() if node is not None else ""

    def show_error(self, message: str) -> None:
        with self.state:
            self.state[self.key("error")] = message

    def show_message(self, message: str) -> None:
        with self.state:
            self.state[self.key("message")] = message

    # ------------------------------------------------------------------ scene
    def refresh_inputs(self) -> None:
        """Refill node selectors from the scene; keep a choice that still exists, else pick the first."""
        with self.state:
            for node_input in self.inputs:
                nodes = self.studio.nodes_of_class(node_input.node_class)
                items = [{"title": n.GetName(), "value": n.GetID()} for n in nodes]
                if node_input.none_allowed:
                    items.insert(0, {"title": "None", "value": ""})
                key = self.key(node_input.name)
                self.state[key + "_items"] = items
                ids = [n.GetID() for n in nodes]
                if self.state[key] not in ids and not (node_input.none_allowed and self.state[key] == ""):
                    self.state[key] = "" if node_input.none_allowed or not ids else ids[0]

    def on_scene_changed(self) -> None:
        """Nodes were added or removed (override to do more than refreshing the selectors)."""
        self.refresh_inputs()

    # ------------------------------------------------------------------ open / closed in the page
    #: State key of the studio's open panels (a list of panel ids; absent outside the app: all open).
    OPEN_KEY = "studio_panel"

    def visible(self) -> bool:
        """Whether the panel is open in the page (always True when no studio page tracks it)."""
        if not self.state.has(self.OPEN_KEY):
            return True
        return self.id in (self.state[self.OPEN_KEY] or [])

    def on_visibility_changed(self, visible: bool) -> None:
        """The panel was opened or closed in the page (override)."""

    # ------------------------------------------------------------------ live updates
    def update(self, values: Dict[str, Any], changed: str) -> None:
        """A live param or input changed (override).  Runs on the event loop; may touch MRML."""

    def _watch(self) -> None:
        live = [p.name for p in self.params if p.live] + [i.name for i in self.inputs if i.live]
        self._seen: Dict[str, Any] = {}
        for name in live:
            self._seen[name] = self.state[self.key(name)]
            self.state.change(self.key(name))(self._make_listener(name))

    def _make_listener(self, name: str) -> Callable[..., None]:
        def listener(**_kwargs: Any) -> None:
            # trame also calls listeners for keys flushed unchanged (the first flush when the server
            # becomes ready sends every default): only a value the panel has not seen is a change
            value = self.state[self.key(name)]
            if name in self._seen and _same(self._seen[name], value):
                return
            self._seen[name] = value
            self.apply_live(name)

        return listener

    def apply_live(self, changed: str) -> bool:
        """Validate and call :meth:`update`; an error is shown in the panel.  True when it ran."""
        import time

        if self.tasks.busy:
            return False
        try:
            values = self.values()
        except InputError as exc:
            self.show_error(str(exc))
            return False
        start = time.perf_counter()
        try:
            self.update(values, changed)
        except Exception as exc:  # noqa: BLE001 - shown in the page
            log.exception("%s: update failed", self.id)
            self.show_error(error_text(exc))
            return False
        self.last_update_s = time.perf_counter() - start
        if self.state[self.key("error")]:
            self.show_error("")
        return True

    # ------------------------------------------------------------------ actions
    def run_action(self, name: str):
        """What a button press does (also callable from tests).  Returns the task for long actions."""
        handler = getattr(self, f"on_{name}")
        self.show_error("")
        try:
            result = handler(self.values())
        except Exception as exc:  # noqa: BLE001 - shown in the page
            log.exception("%s: %s failed", self.id, name)
            self.show_error(error_text(exc))
            return None
        if result is None:
            return None
        compute, on_done = result
        label = next((a.label for a in self.actions if a.name == name), name)
        return self.tasks.start(compute, on_done, label)

    def run_download(self, name: str) -> Optional[Dict[str, Any]]:
        """``{"name", "content", "type"}`` for the page to save, or None (error shown)."""
        self.show_error("")
        try:
            filename, content = getattr(self, f"download_{name}")(self.values())
        except Exception as exc:  # noqa: BLE001 - shown in the page
            log.exception("%s: download %s failed", self.id, name)
            self.show_error(error_text(exc))
            return None
        return {"name": filename, "content": content, "type": "application/octet-stream"}

    def cancel(self) -> None:
        self.tasks.cancel()

    # ------------------------------------------------------------------ UI
    def build_ui(self) -> None:
        """The panel's widgets: selectors, generated controls, buttons, progress, error.  Call inside a layout."""
        from trame.widgets import html
        from trame.widgets import vuetify3 as v3

        busy = self.key("busy")
        with html.Div(classes=f"medsynth-panel medsynth-panel-{self.id} pa-2"):
            for node_input in self.inputs:
                key = self.key(node_input.name)
                v3.VSelect(
                    label=node_input.label,
                    v_model=(key, ""),
                    items=(key + "_items", []),
                    density="compact",
                    hide_details="auto",
                    classes=f"mb-2 medsynth-input medsynth-input-{node_input.name}",
                    title=node_input.help or None,
                    disabled=(busy,),
                )
            self.build_params(busy)
            self.build_extra()
            if self.actions:
                with html.Div(classes="d-flex flex-wrap ga-2 mt-2"):
                    for action in self.actions:
                        self._build_action(action, busy)
            self.build_footer(busy)
            with html.Div(v_if=(busy,), classes="mt-2 medsynth-progress"):
                v3.VProgressLinear(model_value=(self.key("progress"),), color="primary", height=6)
                with html.Div(classes="d-flex align-center"):
                    html.Div("{{ %s }}" % self.key("message"), classes="text-caption flex-grow-1")
                    v3.VBtn(
                        "Cancel",
                        click=self.cancel,
                        size="small",
                        variant="tonal",
                        color="warning",
                        classes=f"medsynth-cancel-{self.id}",
                    )
            html.Div(
                "{{ %s }}" % self.key("message"),
                v_if=(f"!{busy} && {self.key('message')}",),
                classes="text-caption mt-2 medsynth-message",
            )
            v3.VAlert(
                text=("%s" % self.key("error"),),
                v_if=(self.key("error"),),
                type="error",
                density="compact",
                closable=True,
                click_close=f"{self.key('error')} = ''",
                classes=f"mt-2 medsynth-error medsynth-error-{self.id}",
            )

    def build_params(self, busy: str) -> None:
        """One generated control per param, in declaration order (override to arrange them)."""
        for param in self.params:
            build_control(param, self.id, disabled=busy)

    def build_extra(self) -> None:
        """Widgets beyond the declarations (override; called inside the panel's layout)."""

    def build_footer(self, busy: str) -> None:
        """Widgets after the action buttons, above the progress bar and errors (override; e.g. the teaching sheet
        area of :class:`medsynth_studio.sheets.TeachingSheet`)."""

    def _build_action(self, action: Action, busy: str) -> None:
        from trame.widgets import vuetify3 as v3

        common = dict(
            prepend_icon=action.icon or None,
            color=action.color,
            size="small",
            variant="flat",
            disabled=(busy,),
            classes=f"medsynth-action medsynth-action-{action.name}",
            title=action.help or None,
        )
        if action.kind == "download":
            trigger = self.studio.server.controller.trigger_name(self._download_callback(action.name))
            v3.VBtn(
                action.label,
                click=(
                    f"trigger('{trigger}', []).then((r) => {{ if (r) {{ utils.download(r.name, r.content, r.type); }} }})"
                ),
                **common,
            )
        else:
            v3.VBtn(action.label, click=self._click_callback(action.name), **common)

    def _click_callback(self, name: str) -> Callable[[], None]:
        def click() -> None:
            self.run_action(name)

        return click

    def _download_callback(self, name: str) -> Callable[[], Optional[Dict[str, Any]]]:
        def download() -> Optional[Dict[str, Any]]:
            return self.run_download(name)

        download.__name__ = f"{self.id}_download_{name}"
        return download
