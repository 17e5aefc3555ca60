"""MedSynth Studio: the MedSynth panels beside Slicer's own views, in a browser (trame-slicer).

``medsynth studio [--host 127.0.0.1] [--port 8080] [--data FILE ...]`` starts it
(:mod:`medsynth.commands.studio`); :func:`build_studio` builds it without starting a
server (tests, notebooks).  Without ``--data`` it opens on the simulated chest CT sample with
the Nodule synthesis panel open (:data:`DEFAULT_SAMPLE`); the toolbar's *Load sample* menu loads any
shipped sample (:meth:`Studio.load_sample`, the catalogue is :mod:`medsynth.sample_data`).  One panel
is open at a time; each module panel links to its models' cards (:mod:`medsynth_studio.cards`).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import List, Optional, Sequence

from medsynth.errors import InputError

from .cards import all_panel_models
from .context import VOLUME_CLASS, StudioContext
from .panel import load_panel_classes

OPEN_KEY = "studio_panel"  # the open panel, as a list of at most one id (StudioPanel.OPEN_KEY)

log = logging.getLogger("medsynth.studio")

TITLE = "MedSynth Studio"
DEFAULT_LAYOUT = "Quad View"
#: The shipped sample the studio opens on when no file is given (medsynth.sample_data key).
DEFAULT_SAMPLE = "chest_ct"
#: What loading a sample gets ready: sample key -> (panel opened, {panel id: its input set to the sample}).
SAMPLE_PANELS = {
    "chest_ct": ("nodule", {"nodule": "volume"}),
    "chest_xray": ("nodule", {"nodule": "volume"}),
    "cytology": ("cyto", {"cyto": "image"}),
    "fdg_pet": ("crossmod", {"crossmod": "fdg", "pdmeta": "fdg"}),
    "brain_mri": ("superres", {"superres": "volume", "crossmod": "mr"}),
    "head_ct": ("volumes", {"crossmod": "ct"}),
}
#: Window/level of a loaded sample (the others get Slicer's automatic one): the chest CT in the lung window.
SAMPLE_WINDOW_LEVEL = {"chest_ct": (1400.0, -500.0)}
#: Volume rendering method.  The server renders with whatever OpenGL it has - often Mesa's
#: software rasteriser, where GPU ray casting takes seconds a frame and CPU ray casting about
#: 0.15 s (the 3D view of the sample MRI, 518x406).  MEDSYNTH_STUDIO_VR=gpu when the server has a GPU.
#: The websocket route (wslink's default); the only route that can drive the scene.
WS_PATH = "ws"
#: The most one websocket message may allocate on the server (uploads come in pieces of UPLOAD_CHUNK_BYTES).
MAX_WS_MESSAGE_BYTES = 16 * 1024 * 1024
#: The studio's own browser code (a trame module: served folder + scripts).
WWW_MODULE = {
    "serve": {"medsynth_studio": str(Path(__file__).with_name("www").resolve())},
    "scripts": ["medsynth_studio/upload.js"],
}
#: JPEG quality of the views' images, while interacting and still.  trame-rca sends an image at interactive
#: quality at once and, when no other change came for 5 frame periods (0.5 s for views the mouse is not over,
#: i.e. while a panel slider is dragged), renders and sends the view again at still quality (its default 90).
#: Equal qualities make that one image per change, at full quality (issue #22: the still image came 0.5 s after
#: the change); about 13 kB instead of 8 kB for a 406x518 slice view, one render instead of two.
VIEW_QUALITY = 90
#: Frame rate cap of the views, with the mouse over them and not (trame-slicer's default for views the mouse
#: is not over is 10 frames per second, and a panel slider is dragged with the mouse off the views).
VIEW_FPS = 30.0
VR_METHODS = {
    "cpu": "vtkMRMLCPURayCastVolumeRenderingDisplayNode",
    "gpu": "vtkMRMLGPURayCastVolumeRenderingDisplayNode",
}


def volume_rendering_method() -> str:
    choice = os.environ.get("MEDSYNTH_STUDIO_VR", "cpu").strip().lower()
    if choice not in VR_METHODS:
        log.warning("MEDSYNTH_STUDIO_VR=%s is not one of %s; using cpu", choice, ", ".join(VR_METHODS))
        choice = "cpu"
    return VR_METHODS[choice]


def sample_choices() -> List[dict]:
    """The Load sample menu: ``[{key, title, subtitle}]`` of the shipped samples that are installed."""
    from medsynth.sample_data import SAMPLES, sample_folder

    folder = sample_folder()
    return [{"key": s.key, "title": s.label, "subtitle": s.file} for s in SAMPLES if (folder / s.file).is_file()]


class Studio:
    """The web app: a trame server, the Slicer core app with its views, and the panels.

    Args:
        server: a trame server (``trame.app.get_server``); a new one when None.
        panel_classes: panels to show (default: :data:`medsynth_studio.panel.PANELS`).
        layout: trame-slicer layout name ("Quad View", "Axial Primary", ...).
    """

    def __init__(self, server=None, panel_classes: Optional[Sequence[type]] = None, layout: str = DEFAULT_LAYOUT):
        from trame.app import get_server
        from trame_slicer import module as trame_slicer_module
        from trame_slicer.core import LayoutManager, SlicerApp
        from trame_slicer.rca_view import register_rca_factories

        self.server = server or get_server(None, client_type="vue3")
        self.server.enable_module(trame_slicer_module)
        self.server.enable_module(WWW_MODULE)  # window.medsynth_upload: uploads in pieces, written to disk
        self.state = self.server.state
        self.slicer_app = SlicerApp()
        vr_logic = self.slicer_app.app_logic.GetModuleLogic("VolumeRendering")
        if vr_logic is not None:
            vr_logic.SetDefaultRenderingMethod(volume_rendering_method())
        register_rca_factories(self.slicer_app.view_manager, self.server, target_fps=VIEW_FPS, blur_fps=VIEW_FPS,
                               interactive_quality=VIEW_QUALITY)
        self.layout_manager = LayoutManager(self.slicer_app.scene, self.slicer_app.view_manager, self.server)
        self.layout_manager.register_layout_dict(LayoutManager.default_grid_configuration())
        self.context = StudioContext(self.slicer_app, self.server)
        self.token: Optional[str] = None
        self.url = ""
        self.refused: List[str] = []  # connections the guard refused (why), for the log and tests
        self.panels = []
        self.state.change(OPEN_KEY)(self._one_panel)  # before the panels' own listeners on the same key
        for cls in load_panel_classes() if panel_classes is None else panel_classes:
            self.panels.append(cls(self.context))
        self.state.setdefault("studio_layout", layout)
        self.state.setdefault("studio_layouts", self.layout_manager.get_layout_ids())
        self.state.setdefault(OPEN_KEY, [self.panels[0].id] if self.panels else [])
        self.state.setdefault("studio_ready", False)
        self.state.setdefault("studio_samples", sample_choices())
        self.state.setdefault("studio_error", "")
        self.state.setdefault("studio_message", "")
        self.state.setdefault("studio_card_open", False)
        self.state.setdefault("studio_card", {})
        self._card_models = all_panel_models(self.panels)
        self.state.trame__title = TITLE
        self.state.change("studio_layout")(self._on_layout)
        self.ui = self._build_ui()
        self.layout_manager.set_layout(layout)
        self._tune_views()
        for panel in self.panels:
            self.context.add_panel(panel)
        self.server.controller.on_server_ready.add(self._on_ready)

    # ------------------------------------------------------------------ data
    def load(self, paths: Sequence[os.PathLike]) -> list:
        """Load files into the scene (volumes, DICOM folders, .mrb); the first volume becomes active."""
        volumes = self.panel("volumes")
        lib = volumes.logic if volumes is not None else None
        if lib is None:
            from .volumes import VolumesLib

            lib = VolumesLib(self.slicer_app.scene)
        nodes = []
        for path in paths:
            nodes.extend(lib.load_file(path))
        self.context.flush_scene_changes()
        scalars = [n for n in nodes if n.GetClassName() == VOLUME_CLASS]
        if scalars:
            if volumes is not None:
                volumes.select_node("volume", scalars[0])
                volumes.on_scene_changed()
            else:
                self.context.show_volume(scalars[0])
        if nodes and nodes[0] not in scalars:  # an RGB image first: in the slice backgrounds (no volume rendering)
            display = self.slicer_app.display_manager
            display.show_volume_in_slice_background(nodes[0])
            display.show_volume_in_slice_foreground(None)
            vr = self.slicer_app.volume_rendering  # the 3D view no longer shows an earlier volume
            for other in self.context.volume_nodes():
                if vr.has_vr_display_node(other):
                    vr.get_vr_display_node(other).SetVisibility(False)
            self.context.reset_views()
        return nodes

    def load_sample(self, key: str) -> list:
        """Load a shipped sample (:mod:`medsynth.sample_data`) and get its panel ready: the sample chosen as the
        panel's input (and as the input of the other panels it is meant for, :data:`SAMPLE_PANELS`), that panel
        open.  Returns the new nodes; :class:`~medsynth.errors.InputError` for an unknown or missing sample."""
        from medsynth.sample_data import get_sample, sample_path

        sample = get_sample(key)
        nodes = self.load([sample_path(key)])
        if not nodes:
            return nodes
        node = nodes[0]
        node.SetAttribute("DICOM.Modality", sample.modality)
        node.SetAttribute("MedSynth.SampleData", sample.key)
        if sample.simulated:
            node.SetAttribute("MedSynth.Note", f"simulated sample data ({sample.file}; Resources/SampleData/README.md),"
                                               " not a measurement")
        if key in SAMPLE_WINDOW_LEVEL:
            window, level = SAMPLE_WINDOW_LEVEL[key]
            volumes = self.panel("volumes")
            if volumes is not None and volumes.state[volumes.key("volume")] == node.GetID():
                volumes.logic.set_window_level(node, window, level)
                volumes.set_values(preset="custom", window=window, level=level)  # the sliders follow
            elif node.GetDisplayNode() is not None:
                node.GetDisplayNode().AutoWindowLevelOff()
                node.GetDisplayNode().SetWindowLevel(window, level)
        open_id, inputs = SAMPLE_PANELS.get(key, ("volumes", {}))
        for panel_id, input_name in inputs.items():
            panel = self.panel(panel_id)
            node_input = next((i for i in getattr(panel, "inputs", ()) if i.name == input_name), None)
            if node_input is not None and node.GetClassName() == node_input.node_class:
                panel.refresh_inputs()
                panel.select_node(input_name, node)
        self.open_panel(open_id if self.panel(open_id) is not None else "volumes")
        with self.state:
            self.state.studio_error = ""
            self.state.studio_message = f"Loaded {sample.label}: {node.GetName()}" + (
                " (simulated: no patient behind it)" if sample.simulated else "")
        return nodes

    def panel(self, panel_id: str):
        return next((p for p in self.panels if p.id == panel_id), None)

    # ------------------------------------------------------------------ panels: one open at a time
    def open_panel(self, panel_id: Optional[str]) -> None:
        """Open one panel (closing the open one); None closes every panel."""
        with self.state:
            self.state[OPEN_KEY] = [panel_id] if panel_id else []

    def open_panels(self) -> List[str]:
        return list(self.state[OPEN_KEY] or [])

    def _one_panel(self, **_kwargs) -> None:
        # the page sends at most one id (the drawer is a single-choice accordion); anything else (an old page,
        # a script) is brought back to one panel: the last one named
        value = self.state[OPEN_KEY]
        fixed = None
        if value is None or value == "":
            fixed = []
        elif isinstance(value, str):
            fixed = [value]
        elif isinstance(value, (list, tuple)) and len(value) > 1:
            fixed = [value[-1]]
        if fixed is not None:
            self.state[OPEN_KEY] = fixed
            for panel in self.panels:
                panel._on_open_panels()  # noqa: SLF001 - the listeners may have run on the value before the fix

    # ------------------------------------------------------------------ model cards
    def show_card(self, model_id: str) -> None:
        """Show a model's card in the page's dialog (the card text is sent as text; no route is served)."""
        from .cards import card_text
        from .tasks import error_text

        try:
            card = card_text(model_id, allowed=self._card_models)
        except Exception as exc:  # noqa: BLE001 - shown in the page
            with self.state:
                self.state.studio_error = error_text(exc)
            return
        with self.state:
            self.state.studio_card = card
            self.state.studio_card_open = True

    def _on_sample_menu(self, key: str) -> None:
        from .tasks import error_text

        try:
            self.load_sample(key)
        except Exception as exc:  # noqa: BLE001 - shown in the page
            log.exception("loading sample %s failed", key)
            with self.state:
                self.state.studio_error = error_text(exc)

    # ------------------------------------------------------------------ UI
    def _on_layout(self, studio_layout, **_kwargs) -> None:
        if studio_layout in self.layout_manager.get_layout_ids():
            self.layout_manager.set_layout(studio_layout)
            self._tune_views()

    def _tune_views(self) -> None:
        """No multisampling in the slice views (trame-slicer asks 8 samples of every view): they draw an image and
        a few lines, and with Mesa's software rasteriser 8 samples make a slice frame about 5 ms slower."""
        for view in self.context.slice_views():
            window = view.render_window()
            if window.GetMultiSamples() != 0:
                window.SetMultiSamples(0)

    def _on_ready(self, **_kwargs) -> None:
        self.context.flush_scene_changes()
        self.state.studio_ready = True

    def _build_ui(self):
        from trame.ui.vuetify3 import SinglePageWithDrawerLayout
        from trame.widgets import html
        from trame.widgets import vuetify3 as v3

        with SinglePageWithDrawerLayout(self.server, theme="dark") as layout:
            layout.title.set_text(TITLE)
            layout.drawer.width = 360
            with layout.toolbar:
                v3.VSpacer()
                with v3.VMenu(location="bottom end"):
                    with v3.Template(v_slot_activator="{ props }"):
                        v3.VBtn("Load sample", v_bind="props", prepend_icon="mdi-database-import-outline",
                                variant="tonal", size="small", classes="mr-2 medsynth-load-sample")
                    with v3.VList(density="compact", classes="medsynth-samples"):
                        v3.VListItem(
                            v_for="s in studio_samples", key="s.key", title=("s.title",), subtitle=("s.subtitle",),
                            click=(self._on_sample_menu, "[s.key]"),
                            classes=("'medsynth-sample medsynth-sample-' + s.key",),
                        )
                v3.VSelect(
                    v_model=("studio_layout",),
                    items=("studio_layouts",),
                    density="compact",
                    hide_details=True,
                    variant="outlined",
                    style="max-width: 220px;",
                    classes="mr-2 medsynth-layout",
                    prepend_inner_icon="mdi-view-dashboard-outline",
                )
                v3.VProgressCircular(indeterminate=("!!trame__busy",), size=20, width=2, classes="mr-4")
            with layout.drawer:
                v3.VAlert(text=("studio_error",), v_if=("studio_error",), type="error", density="compact",
                          closable=True, click_close="studio_error = ''", classes="ma-2 medsynth-studio-error")
                html.Div("{{ studio_message }}", v_if=("studio_message",),
                         classes="text-caption px-3 pt-2 medsynth-studio-message")
                # one panel open at a time: a single-choice accordion; the state keeps a list of at most one id
                with v3.VExpansionPanels(
                    model_value=(f"{OPEN_KEY} && {OPEN_KEY}.length ? {OPEN_KEY}[{OPEN_KEY}.length - 1] : null",),
                    update_modelValue=f"{OPEN_KEY} = ($event === undefined || $event === null) ? [] : [$event]",
                    variant="accordion",
                    classes="medsynth-studio-panels",
                ):
                    for panel in self.panels:
                        with v3.VExpansionPanel(value=panel.id, classes=f"medsynth-studio-panel-{panel.id}"):
                            v3.VExpansionPanelTitle(panel.title, prepend_icon=panel.icon)
                            with v3.VExpansionPanelText():
                                panel.build_ui()
                                self._build_card_links(panel)
            self._build_card_dialog()
            with layout.content:
                with html.Div(classes="medsynth-views", style="position: relative; height: 100%; width: 100%;"):
                    self.layout_manager.initialize_layout_grid(layout)
        return layout

    def _build_card_links(self, panel) -> None:
        from trame.widgets import html
        from trame.widgets import vuetify3 as v3

        from .cards import panel_cards

        links = panel_cards(panel)
        if not links:
            return
        with html.Div(classes=f"px-2 pb-2 medsynth-cards medsynth-cards-{panel.id}"):
            for link in links:
                v3.VBtn(
                    link.label,
                    click=(self.show_card, f"['{link.model_id}']"),
                    disabled=not link.installed,
                    variant="text",
                    size="x-small",
                    prepend_icon="mdi-file-document-outline",
                    color="warning" if link.simulated else "info",
                    classes=f"text-none medsynth-card-link medsynth-card-{link.model_id}",
                    title=f"the model card of {link.model_id}" + (
                        ": this model was trained on simulated data only" if link.simulated else ""),
                )

    def _build_card_dialog(self) -> None:
        from trame.widgets import html
        from trame.widgets import vuetify3 as v3

        with v3.VDialog(v_model=("studio_card_open",), max_width=900, scrollable=True):
            with v3.VCard(classes="medsynth-card-dialog"):
                v3.VCardTitle("{{ studio_card.title }}", classes="text-wrap")
                v3.VCardSubtitle("Trained on simulated data: numbers in this card say nothing about patients.",
                                 v_if=("studio_card.simulated",), classes="text-warning medsynth-card-simulated")
                with v3.VCardText(style="max-height: 70vh;"):
                    # plain text: the card is shown as text (Vue escapes it), never rendered as HTML
                    html.Div("{{ studio_card.text }}", classes="medsynth-card-text text-body-2",
                             style="white-space: pre-wrap; font-family: monospace;")
                with v3.VCardActions():
                    v3.VSpacer()
                    v3.VBtn("Close", click="studio_card_open = false", classes="medsynth-card-close")

    # ------------------------------------------------------------------ serving
    def start(self, host: str = "127.0.0.1", port: int = 8080, open_browser: bool = False,
              token: Optional[str] = None, **kwargs) -> None:
        """Serve the studio; only a page from the printed address (with its token) may connect.

        ``token``: the launch's secret (a new random one when None); it is in the printed address.
        """
        from .security import cap_message_size, guard_middleware, host_warning, new_token

        self.token = token or new_token()
        url_host = "localhost" if host in ("0.0.0.0", "::", "") else host
        if ":" in url_host and not url_host.startswith("["):
            url_host = f"[{url_host}]"
        self.url = f"http://{url_host}:{port}/?secret={self.token}"

        def bind(wslink_server) -> None:
            wslink_server.app.middlewares.append(guard_middleware(host, [WS_PATH], refused=self._on_refused))
            cap_message_size(wslink_server, MAX_WS_MESSAGE_BYTES)

        def announce(**_kwargs) -> None:
            print(f"MedSynth Studio running at {self.url}  (Ctrl+C to stop)", flush=True)
            print("  the address holds this launch's token: share it only with whom may use the studio", flush=True)
            if open_browser:
                import webbrowser

                webbrowser.open(self.url)

        warning = host_warning(host)
        if warning:
            sys.stderr.write(warning + "\n")
            sys.stderr.flush()
        self.server.controller.on_server_bind.add(bind)
        self.server.controller.on_server_ready.add(announce)
        argv = sys.argv
        # trame parses sys.argv for its own options; ours are already applied.  The token goes to wslink
        # as its secret (--authKey) this way: it never appears in the process list.
        sys.argv = argv[:1] + ["--authKey", self.token, "--ws-endpoint", WS_PATH]
        try:
            self.server.start(
                host=host, port=port, open_browser=False, show_connection_info=False, timeout=0, **kwargs
            )
        finally:
            sys.argv = argv

    def _on_refused(self, why: str) -> None:
        self.refused.append(why)


def build_studio(data: Sequence[os.PathLike] = (), server=None, **kwargs) -> Studio:
    """A studio with ``data`` loaded (the Volumes panel open), or, when empty, the :data:`DEFAULT_SAMPLE`
    (the simulated chest CT) with the panel it is meant for open and ready (Nodule synthesis)."""
    studio = Studio(server=server, **kwargs)
    if data:
        studio.load(list(data))
        return studio
    try:
        studio.load_sample(DEFAULT_SAMPLE)
    except InputError as exc:  # an install without sample data still opens, empty
        log.warning("studio: %s", exc)
    return studio


def main(host: str = "127.0.0.1", port: int = 8080, data: Sequence[os.PathLike] = (), open_browser: bool = False,
         max_upload_mb: Optional[float] = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    log.setLevel(logging.INFO)
    studio = build_studio(data)
    if max_upload_mb is not None:
        studio.context.max_upload_bytes = int(max_upload_mb * 1024 * 1024)
    names = ", ".join(p.GetName() for p in studio.context.volume_nodes())
    shown = ", ".join(p.title for p in studio.panels if p.id in studio.open_panels())
    print(f"MedSynth Studio: loaded {names or 'no volume'}; panels: {', '.join(p.title for p in studio.panels)}"
          f"{f' ({shown} open)' if shown else ''}", flush=True)
    studio.start(host=host, port=port, open_browser=open_browser)
    return 0
