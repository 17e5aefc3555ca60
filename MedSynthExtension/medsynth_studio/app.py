"""MedSynth Studio: the MedSynth panels beside Slicer's own views, in a browser (trame-slicer).

``medsynth studio [--host 127.0.0.1] [--port 8080] [--data FILE ...]`` starts it
(:mod:`medsynth.commands.studio`); :func:`build_studio` builds it without starting a
server (tests, notebooks).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import List, Optional, Sequence

from .context import StudioContext
from .panel import load_panel_classes

log = logging.getLogger("medsynth.studio")

TITLE = "MedSynth Studio"
DEFAULT_LAYOUT = "Quad View"
#: Shipped sample data loaded when no file is given (the first one is shown).
SAMPLE_FILES = ("mni_t1_2mm.nii.gz", "head_ct_2mm.nii.gz")
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


def sample_files() -> List[Path]:
    from medsynth.runtime import resources_dir

    folder = resources_dir() / "SampleData"
    return [folder / name for name in SAMPLE_FILES if (folder / name).is_file()]


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
        register_rca_factories(self.slicer_app.view_manager, self.server)
        self.layout_manager = LayoutManager(self.slicer_app.scene, self.slicer_app.view_manager, self.server)
        self.layout_manager.register_layout_dict(LayoutManager.default_grid_configuration())
        self.context = StudioContext(self.slicer_app, self.server)
        self.token: Optional[str] = None
        self.url = ""
        self.refused: List[str] = []  # connections the guard refused (why), for the log and tests
        self.panels = []
        for cls in load_panel_classes() if panel_classes is None else panel_classes:
            self.panels.append(cls(self.context))
        self.state.setdefault("studio_layout", layout)
        self.state.setdefault("studio_layouts", self.layout_manager.get_layout_ids())
        self.state.setdefault("studio_panel", [self.panels[0].id] if self.panels else [])
        self.state.setdefault("studio_ready", False)
        self.state.trame__title = TITLE
        self.state.change("studio_layout")(self._on_layout)
        self.ui = self._build_ui()
        self.layout_manager.set_layout(layout)
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
        if nodes:
            if volumes is not None:
                volumes.select_node("volume", nodes[0])
                volumes.on_scene_changed()
            else:
                self.context.show_volume(nodes[0])
        return nodes

    def panel(self, panel_id: str):
        return next((p for p in self.panels if p.id == panel_id), None)

    # ------------------------------------------------------------------ UI
    def _on_layout(self, studio_layout, **_kwargs) -> None:
        if studio_layout in self.layout_manager.get_layout_ids():
            self.layout_manager.set_layout(studio_layout)

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
                with v3.VExpansionPanels(v_model=("studio_panel",), multiple=True, variant="accordion"):
                    for panel in self.panels:
                        with v3.VExpansionPanel(value=panel.id, classes=f"medsynth-studio-panel-{panel.id}"):
                            v3.VExpansionPanelTitle(panel.title, prepend_icon=panel.icon)
                            with v3.VExpansionPanelText():
                                panel.build_ui()
            with layout.content:
                with html.Div(classes="medsynth-views", style="position: relative; height: 100%; width: 100%;"):
                    self.layout_manager.initialize_layout_grid(layout)
        return layout

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
    """A studio with ``data`` loaded (the sample data when empty)."""
    studio = Studio(server=server, **kwargs)
    files = list(data) or sample_files()
    if files:
        studio.load(files)
    return studio


def main(host: str = "127.0.0.1", port: int = 8080, data: Sequence[os.PathLike] = (), open_browser: bool = False,
         max_upload_mb: Optional[float] = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    log.setLevel(logging.INFO)
    studio = build_studio(data)
    if max_upload_mb is not None:
        studio.context.max_upload_bytes = int(max_upload_mb * 1024 * 1024)
    names = ", ".join(p.GetName() for p in studio.context.volume_nodes())
    print(f"MedSynth Studio: loaded {names or 'no volume'}; panels: {', '.join(p.title for p in studio.panels)}", flush=True)
    studio.start(host=host, port=port, open_browser=open_browser)
    return 0
