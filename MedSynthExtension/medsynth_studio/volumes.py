"""The "Volumes" panel: choose the active volume and an overlay, window/level, load and save.

:class:`VolumesLib` is the logic (takes the scene, no trame: tested under pytest with the
real SlicerApp); :class:`VolumesPanel` is its studio face, built from :data:`VOLUMES_PARAMS`
by the generic control generator.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from medsynth.errors import InputError, MedSynthError
from medsynth.io import suffix_of
from medsynth.params import Param
from medsynth.progress import CancelToken, Reporter
from medsynth.volume import Volume

from .panel import Action, NodeInput, StudioPanel
from .tasks import error_text

#: Slicer's window/level presets (Volumes module), (window, level).
PRESETS: Dict[str, Tuple[float, float]] = {
    "ct-abdomen": (350.0, 40.0),
    "ct-brain": (100.0, 50.0),
    "ct-bone": (1000.0, 400.0),
    "ct-lung": (1400.0, -500.0),
    "ct-air": (1000.0, -426.0),
}
PRESET_CHOICES = ("auto", "custom") + tuple(PRESETS)

#: Files the studio loads: volumes (read by the engine) and Slicer scenes.
VOLUME_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")
SCENE_SUFFIXES = (".mrb",)

VOLUMES_PARAMS = (
    Param("preset", str, "auto", "Window/level preset", choices=PRESET_CHOICES, live=True,
          help="auto = Slicer's automatic window/level from the histogram; CT presets as in Slicer"),
    Param("window", float, 400.0, "Window", minimum=1e-6, maximum=1e9, step=1.0, live=True,
          help="display window width (the slider range follows the active volume)"),
    Param("level", float, 40.0, "Level", minimum=-1e9, maximum=1e9, step=1.0, live=True,
          help="display window centre"),
    Param("overlay_opacity", float, 0.5, "Overlay opacity", minimum=0.0, maximum=1.0, step=0.05, live=True,
          help="opacity of the foreground volume in the slice views"),
    Param("show_3d", bool, True, "Volume rendering in 3D", live=True, help="show the active volume rendered in 3D"),
)


class VolumesLib:
    """Loading, display and saving of volumes in a scene (no trame; usable from Python and tests)."""

    def __init__(self, scene) -> None:
        self.scene = scene

    # ------------------------------------------------------------------ loading
    @staticmethod
    def check_loadable(name: str) -> str:
        """The file's suffix, or :class:`InputError` naming what is accepted."""
        suffix = suffix_of(name)
        if suffix not in VOLUME_SUFFIXES + SCENE_SUFFIXES:
            raise InputError(
                f"cannot load '{name}': unsupported format '{suffix or name}'; "
                f"supported: {', '.join(VOLUME_SUFFIXES + SCENE_SUFFIXES)}"
            )
        return suffix

    @staticmethod
    def read(path: os.PathLike, name: Optional[str] = None, reporter: Optional[Reporter] = None) -> Volume:
        """Read a volume file with the engine (thread-safe: no MRML).  Errors name ``name``, not a temp path."""
        from medsynth.io import read_volume

        shown = name or Path(path).name
        reporter = reporter or Reporter()
        reporter.step(0.1, f"reading {shown}")
        try:
            volume = read_volume(path, name=_stem(shown))
        except MedSynthError as exc:
            raise InputError(f"cannot load '{shown}': {str(exc).replace(str(path), shown)}") from None
        reporter.step(0.9, f"read {shown} {volume.shape_ijk}")
        return volume

    def add_volume(self, volume: Volume, name: Optional[str] = None):
        """A new scalar volume node (through the MRML bridge) with Slicer's default display."""
        from medsynth_mrml import node_from_volume

        return node_from_volume(self.scene, volume, name=name or volume.name)

    def load_file(self, path: os.PathLike) -> list:
        """Load a volume file or a .mrb scene (on the thread that owns the scene); returns the new volume nodes."""
        path = Path(path)
        if path.is_dir():
            return [self.add_volume(self.read(path))]
        if self.check_loadable(path.name) in SCENE_SUFFIXES:
            return self.load_scene(path)
        return [self.add_volume(self.read(path))]

    @staticmethod
    def unpack_scene(path: os.PathLike, shown_name: Optional[str] = None, max_bytes: Optional[int] = None,
                     confine: bool = True) -> Path:
        """Unpack a Slicer .mrb into a new temporary folder; returns its .mrml (no MRML: any thread).

        ``confine``: refuse a scene whose nodes (or whose headers) name files outside the bundle
        (:func:`medsynth.references.check_upload_folder`) - for files that come from outside.
        ``max_bytes``: refuse a bundle that unpacks to more than this.  On error nothing is left.
        """
        import zipfile

        from medsynth.references import check_upload_folder

        shown = shown_name or Path(path).name
        tmp = tempfile.mkdtemp(prefix="medsynth-mrb-")
        try:
            with zipfile.ZipFile(path) as archive:
                members = archive.infolist()
                size = sum(m.file_size for m in members)
                if max_bytes is not None and (size > max_bytes or len(members) > 100_000):
                    raise InputError(f"cannot load '{shown}': it unpacks to {size / 1024 ** 2:.0f} MB, "
                                     f"more than {max_bytes / 1024 ** 2:.0f} MB")
                archive.extractall(tmp)  # zipfile drops absolute and '..' parts of member names
            mrml = next(iter(sorted(Path(tmp).rglob("*.mrml"))), None)
            if mrml is None:
                raise InputError(f"cannot load '{shown}': no .mrml scene inside the .mrb")
            if confine:
                check_upload_folder(tmp, shown=shown)
            return mrml
        except zipfile.BadZipFile:
            _remove_tree(tmp)
            raise InputError(f"cannot load '{shown}': not a readable Slicer scene (.mrb is a zip file)") from None
        except BaseException:
            _remove_tree(tmp)
            raise

    def load_scene(self, path: os.PathLike, shown_name: Optional[str] = None) -> list:
        """Add the nodes of a Slicer scene to this scene; returns its new scalar volume nodes.

        ``path``: a .mrb file (unpacked here), or a .mrml that :meth:`unpack_scene` made (its
        temporary folder is removed afterwards).
        """
        shown = shown_name or Path(path).name
        mrml = Path(path) if suffix_of(str(path)) == ".mrml" else self.unpack_scene(path, shown, confine=False)
        before = {n.GetID() for n in self._scalar_volumes()}
        count = self.scene.GetNumberOfNodes()
        url = self.scene.GetURL()
        # the folder unpack_scene made (only that one is removed: a user's own .mrml folder never is)
        tmp = next((p for p in mrml.parents if p.name.startswith("medsynth-mrb-")
                    and p.parent == Path(tempfile.gettempdir())), None)
        try:
            self.scene.SetURL(str(mrml))
            # Import() reports 0 for a scene without Slicer's IO logics even when the nodes came in
            if not self.scene.Import() and self.scene.GetNumberOfNodes() == count:
                raise InputError(f"cannot load '{shown}': Slicer could not import the scene")
        finally:
            self.scene.SetURL(url or "")
            if tmp is not None:
                _remove_tree(str(tmp))
        return [n for n in self._scalar_volumes() if n.GetID() not in before]

    def _scalar_volumes(self) -> list:
        nodes = self.scene.GetNodesByClass("vtkMRMLScalarVolumeNode")
        return [nodes.GetItemAsObject(i) for i in range(nodes.GetNumberOfItems())
                if nodes.GetItemAsObject(i).GetClassName() == "vtkMRMLScalarVolumeNode"]

    # ------------------------------------------------------------------ window / level
    @staticmethod
    def display(node):
        if node.GetDisplayNode() is None:
            node.CreateDefaultDisplayNodes()
        return node.GetDisplayNode()

    @staticmethod
    def scalar_range(node) -> Tuple[float, float]:
        lo, hi = node.GetImageData().GetScalarRange()
        return float(lo), float(hi)

    def window_level(self, node) -> Tuple[float, float]:
        d = self.display(node)
        return float(d.GetWindow()), float(d.GetLevel())

    def set_window_level(self, node, window: float, level: float) -> bool:
        """Set a fixed window/level; False when it already had these values."""
        d = self.display(node)
        if abs(d.GetWindow() - window) < 1e-6 and abs(d.GetLevel() - level) < 1e-6:
            return False  # unchanged (an automatic window/level stays automatic)
        was = d.StartModify()
        d.AutoWindowLevelOff()
        d.SetWindowLevel(float(window), float(level))
        d.EndModify(was)
        return True

    def auto_window_level(self, node) -> Tuple[float, float]:
        """Slicer's automatic window/level (histogram-based); returns the values it chose."""
        d = self.display(node)
        d.AutoWindowLevelOn()
        return self.window_level(node)

    def apply_preset(self, node, preset: str) -> Tuple[float, float]:
        if preset == "auto":
            return self.auto_window_level(node)
        if preset in PRESETS:
            self.set_window_level(node, *PRESETS[preset])
            return PRESETS[preset]
        if preset == "custom":
            return self.window_level(node)
        raise InputError(f"unknown window/level preset '{preset}'; known: {', '.join(PRESET_CHOICES)}")

    def slider_ranges(self, node) -> Dict[str, Tuple[float, float, float]]:
        """Window and level slider (min, max, step) fitted to a volume's scalar range."""
        lo, hi = self.scalar_range(node)
        width = max(hi - lo, 1e-3)
        step = 1.0 if width > 50 else (0.01 if width > 0.5 else width / 100.0)
        return {
            "window": (step, 2.0 * width, step),
            "level": (lo - width / 2.0, hi + width / 2.0, step),
        }

    # ------------------------------------------------------------------ saving
    def volume_bytes(self, node, suffix: str) -> Tuple[str, bytes]:
        """The volume written as ``suffix`` (.nii.gz, .nrrd...): (file name, bytes)."""
        from medsynth_mrml import write_node

        if node is None:
            raise InputError("no volume to save: load or choose a volume first")
        filename = _safe_name(node.GetName()) + suffix
        with tempfile.TemporaryDirectory(prefix="medsynth-studio-") as tmp:
            path = write_node(node, Path(tmp) / filename)
            return filename, path.read_bytes()

    def scene_bytes(self, name: str = "MedSynthScene") -> Tuple[str, bytes]:
        """The whole scene as a Slicer .mrb bundle: (file name, bytes)."""
        filename = _safe_name(name) + ".mrb"
        with tempfile.TemporaryDirectory(prefix="medsynth-studio-") as tmp:
            path = Path(tmp) / filename
            url, root = self.scene.GetURL(), self.scene.GetRootDirectory()
            try:
                self.scene.SetRootDirectory(tmp)
                self.scene.SetURL(str(Path(tmp) / "scene.mrml"))
                if not self.scene.WriteToMRB(str(path)) or not path.is_file():
                    raise MedSynthError("Slicer could not write the scene as .mrb")
            finally:
                self.scene.SetURL(url or "")
                self.scene.SetRootDirectory(root or "")
            return filename, path.read_bytes()


def _stem(name: str) -> str:
    suffix = suffix_of(name)
    return name[: -len(suffix)] if suffix and name.endswith(suffix) else name


def _safe_name(name: str) -> str:
    keep = "".join(c if c.isalnum() or c in "-_." else "_" for c in (name or "volume"))
    return keep.strip("._") or "volume"


class VolumesPanel(StudioPanel):
    """Active volume and overlay, window/level presets, upload and download."""

    id = "volumes"
    title = "Volumes"
    icon = "mdi-cube-outline"
    params = VOLUMES_PARAMS
    inputs = (
        NodeInput("volume", "Active volume", help="shown in the slice backgrounds and rendered in 3D"),
        NodeInput("overlay", "Overlay (foreground)", none_allowed=True, help="shown over the active volume"),
    )
    actions = (
        Action("reset_views", "Reset views", icon="mdi-fit-to-screen-outline", color="secondary"),
        Action("save_nifti", "NIfTI", icon="mdi-download", kind="download", help="download the active volume as .nii.gz"),
        Action("save_nrrd", "NRRD", icon="mdi-download", kind="download", help="download the active volume as .nrrd"),
        Action("save_scene", "Scene .mrb", icon="mdi-download", kind="download", help="download the whole scene"),
    )
    logic_class = VolumesLib

    def __init__(self, studio) -> None:
        super().__init__(studio)
        self._upload: Optional[dict] = None
        self._shown_volume_id = ""

    # ------------------------------------------------------------------ live
    def update(self, values: Dict[str, Any], changed: str) -> None:
        lib: VolumesLib = self.logic
        node = self.node("volume")
        if changed == "volume":
            self._show_active(node)
            return
        if changed in ("overlay", "overlay_opacity"):
            self.studio.set_foreground(self.node("overlay"), values["overlay_opacity"])
            return
        if changed == "show_3d":
            self._show_3d(node, values["show_3d"])
            return
        if node is None:
            return
        if changed == "preset":
            if values["preset"] == "custom":
                return
            window, level = lib.apply_preset(node, values["preset"])
            self.set_values(window=window, level=level)
        elif changed in ("window", "level"):
            if lib.set_window_level(node, values["window"], values["level"]):
                preset = values["preset"]
                if preset == "auto" or (preset in PRESETS and PRESETS[preset] != (values["window"], values["level"])):
                    self.set_values(preset="custom")
        self.studio.render(threed=False)  # window/level is a 2D display setting

    def activate(self, node, reset_views: bool = False) -> None:
        """Select ``node`` as the active volume (a module's result), resetting the views only if asked."""
        if node is None:
            return
        if not reset_views:
            self._shown_volume_id = node.GetID()  # _show_active then keeps the slice positions
        if self.state[self.key("volume")] == node.GetID():
            self._show_active(node, force=True)
        else:
            self.select_node("volume", node)

    def _show_active(self, node, force: bool = False) -> None:
        if node is None or node.GetImageData() is None:
            self._shown_volume_id = ""
            return
        lib: VolumesLib = self.logic
        new = node.GetID() != self._shown_volume_id
        self._shown_volume_id = node.GetID()
        self.studio.show_volume(node, reset_views=new and not force)
        self._show_3d(node, bool(self.state[self.key("show_3d")]))
        ranges = lib.slider_ranges(node)
        for name, (lo, hi, step) in ranges.items():
            self.set_range(name, lo, hi, step)
        window, level = lib.window_level(node)
        auto = bool(lib.display(node).GetAutoWindowLevel())
        self.set_values(window=window, level=level, preset="auto" if auto else "custom")

    def _show_3d(self, node, visible: bool) -> None:
        if node is None:
            return
        vr = self.studio.slicer_app.volume_rendering
        if vr.has_vr_display_node(node):
            vr.get_vr_display_node(node).SetVisibility(bool(visible))
        self.studio.render()

    def on_scene_changed(self) -> None:
        before = self.state[self.key("volume")]
        self.refresh_inputs()
        if self.state[self.key("volume")] != before or self._shown_volume_id != self.state[self.key("volume")]:
            self._show_active(self.node("volume"))

    # ------------------------------------------------------------------ actions
    def on_reset_views(self, values: Dict[str, Any]) -> None:
        self.studio.reset_views()

    def download_save_nifti(self, values: Dict[str, Any]) -> Tuple[str, bytes]:
        return self.logic.volume_bytes(self.node("volume"), ".nii.gz")

    def download_save_nrrd(self, values: Dict[str, Any]) -> Tuple[str, bytes]:
        return self.logic.volume_bytes(self.node("volume"), ".nrrd")

    def download_save_scene(self, values: Dict[str, Any]) -> Tuple[str, bytes]:
        return self.logic.scene_bytes()

    # ------------------------------------------------------------------ upload
    def load_task(self, files: Sequence[dict]) -> Tuple[Callable, Callable]:
        """The long action for files given in memory (dicts with ``name`` and ``content``): compute + on_done."""
        from trame.app.file_upload import ClientFile

        uploads = [ClientFile(f) for f in files]
        entries = check_upload_names([(u.name or "", len(u.content or b"")) for u in uploads],
                                     self.studio.max_upload_bytes)
        tmp = tempfile.mkdtemp(prefix="medsynth-upload-")

        def write() -> None:
            for (_name, safe), upload in zip(entries, uploads):
                (Path(tmp) / safe).write_bytes(upload.content)

        return self.folder_task(tmp, entries, prepare=write)

    def folder_task(self, folder: str, entries: Sequence[Tuple[str, str]],
                    prepare: Optional[Callable[[], None]] = None) -> Tuple[Callable, Callable]:
        """Load received files from ``folder`` (``entries``: (name as sent, file name in the folder)).

        Every header and scene must be self-contained (:func:`medsynth.references.check_upload_folder`);
        the folder is removed afterwards, whatever happens.
        """
        from medsynth.references import check_upload_folder

        limit = self.studio.max_upload_bytes

        def compute(progress, cancel: CancelToken):
            reporter = Reporter(progress, cancel)
            if prepare is not None:
                prepare()
            check_upload_folder(folder)
            loadable = [(name, safe) for name, safe in entries if suffix_of(name) in VOLUME_SUFFIXES + SCENE_SUFFIXES]
            out = []
            for n, (name, safe) in enumerate(loadable):
                sub = reporter.sub(n / len(loadable), (n + 1) / len(loadable))
                path = Path(folder) / safe
                if suffix_of(name) in SCENE_SUFFIXES:
                    out.append((name, self.logic.unpack_scene(path, name, max_bytes=4 * limit)))  # read on the main thread
                else:
                    out.append((name, VolumesLib.read(path, name, sub)))
                sub.step(1.0, f"loaded {name}")
            return out

        def on_done(results) -> None:
            try:
                nodes = []
                for name, item in results:
                    if isinstance(item, Volume):
                        nodes.append(self.logic.add_volume(item))
                    else:
                        nodes.extend(self.logic.load_scene(item, shown_name=name))
                if nodes:
                    self.select_node("volume", nodes[-1])
            finally:
                _remove_tree(folder)

        def compute_and_clean(progress, cancel):
            try:
                return compute(progress, cancel)
            except BaseException:
                _remove_tree(folder)
                raise

        return compute_and_clean, on_done

    def load_uploads(self, files: Sequence[dict]):
        """Start loading files given in memory as a long action; a bad file shows an error in the panel."""
        self.show_error("")
        try:
            compute, on_done = self.load_task(files)
        except Exception as exc:  # noqa: BLE001 - shown in the page
            self.show_error(error_text(exc))
            return None
        names = ", ".join(f.get("name", "?") for f in files)
        return self.tasks.start(compute, on_done, f"Loading {names}")

    # The browser sends an upload in pieces (www/upload.js): begin -> chunk ... -> end.  Each piece is
    # written to disk at once, so the server's memory does not grow with the file; the sizes announced
    # at the start are checked against the limit before any byte is sent, and again as pieces arrive.
    def upload_begin(self, meta: Sequence[dict]) -> dict:
        """Start an upload of files announced as ``[{name, size}]``: ``{id, chunk}`` or ``{error}``."""
        self.show_error("")
        self.upload_abort()
        try:
            if not isinstance(meta, (list, tuple)):
                raise InputError("no file received")
            announced = [(str(m.get("name", "")), m.get("size")) for m in meta if isinstance(m, dict)]
            if len(announced) != len(meta):
                raise InputError("no file received")
            entries = check_upload_names(announced, self.studio.max_upload_bytes)
        except InputError as exc:
            self.show_error(error_text(exc))
            return {"error": error_text(exc)}
        folder = tempfile.mkdtemp(prefix="medsynth-upload-")
        self._upload = {
            "id": uuid.uuid4().hex,
            "folder": folder,
            "entries": entries,
            "sizes": [int(size) for _name, size in announced],
            "written": [0] * len(entries),
        }
        for _name, safe in entries:
            (Path(folder) / safe).touch()
        return {"id": self._upload["id"], "chunk": UPLOAD_CHUNK_BYTES}

    def upload_chunk(self, upload_id: str, index: int, offset: int, piece: Any) -> Any:
        """Append one piece (a browser File or bytes) at ``offset`` of file ``index``: True or ``{error}``."""
        up = self._upload
        try:
            if up is None or upload_id != up["id"]:
                raise InputError("upload refused: no upload in progress (start again)")
            content = piece.get("content") if isinstance(piece, dict) else piece
            if isinstance(content, list):
                content = b"".join(content)
            if not isinstance(content, (bytes, bytearray)) or not isinstance(index, int) or not isinstance(offset, int):
                raise InputError("upload refused: malformed piece")
            if not 0 <= index < len(up["entries"]) or offset != up["written"][index]:
                raise InputError("upload refused: pieces out of order")
            if up["written"][index] + len(content) > up["sizes"][index] or len(content) > UPLOAD_CHUNK_BYTES:
                raise InputError(f"upload refused: '{up['entries'][index][0]}' is larger than announced")
            with open(Path(up["folder"]) / up["entries"][index][1], "ab") as f:
                f.write(content)
            up["written"][index] += len(content)
            return True
        except InputError as exc:
            self.upload_abort()
            self.show_error(error_text(exc))
            return {"error": error_text(exc)}

    def upload_end(self, upload_id: str):
        """All pieces sent: check the files and load them (a long action)."""
        up = self._upload
        if up is None or upload_id != up["id"]:
            self.show_error("upload refused: no upload in progress (start again)")
            return None
        self._upload = None
        missing = [name for (name, _safe), size, got in zip(up["entries"], up["sizes"], up["written"]) if got != size]
        if missing:
            _remove_tree(up["folder"])
            self.show_error(f"upload incomplete: {', '.join(missing)}")
            return None
        compute, on_done = self.folder_task(up["folder"], up["entries"])
        names = ", ".join(name for name, _safe in up["entries"])
        return self.tasks.start(compute, on_done, f"Loading {names}")

    def upload_abort(self, upload_id: Optional[str] = None) -> None:
        """Drop the upload in progress and what it wrote."""
        up = self._upload
        if up is not None and (upload_id is None or upload_id == up["id"]):
            self._upload = None
            _remove_tree(up["folder"])

    async def _on_upload_end(self, upload_id: str) -> None:
        task = self.upload_end(upload_id)
        if task is not None:
            await task

    def _on_upload_done(self, status: str, message: Optional[str] = None) -> None:
        if status != "success" and message:
            self.show_error(f"upload failed: {message}")

    def build_extra(self) -> None:
        from trame.widgets import vuetify3 as v3

        ctrl = self.studio.server.controller
        triggers = {
            "begin": ctrl.trigger_name(self.upload_begin),
            "chunk": ctrl.trigger_name(self.upload_chunk),
            "end": ctrl.trigger_name(self._on_upload_end),
            "abort": ctrl.trigger_name(self.upload_abort),
        }
        done = ctrl.trigger_name(self._on_upload_done)
        js_triggers = "{ " + ", ".join(f"{k}: '{v}'" for k, v in triggers.items()) + " }"
        v3.VFileInput(
            label="Load a volume (.nii.gz .nrrd .mha .mrb)",
            multiple=True,
            density="compact",
            prepend_icon="mdi-file-upload",
            hide_details="auto",
            show_size=True,
            disabled=(self.key("busy"),),
            classes="mt-2 medsynth-upload",
            change=(
                f"window.medsynth_upload($event.target.files, {js_triggers})"
                f".then(({{ status, errorMsg }}) => trigger('{done}', [status ? 'success' : 'failure', errorMsg]))"
            ),
        )


#: Size of the pieces the browser sends an upload in.
UPLOAD_CHUNK_BYTES = 2 * 1024 * 1024
#: Files that may come with a header (.mhd/.nhdr name them); they are not loaded on their own.
DATA_FILE_SUFFIXES = (".raw", ".zraw", ".raw.gz", ".img", ".dat")


def check_upload_names(files: Sequence[Tuple[str, Any]], max_bytes: int) -> List[Tuple[str, str]]:
    """Check the names and sizes of files about to be received: [(name, file name on disk)].

    At least one loadable file; the others may be data files of a header; no two files with the
    same name on disk; every size known, none empty, all together at most ``max_bytes``.
    """
    if not files:
        raise InputError("no file received")
    entries: List[Tuple[str, str]] = []
    total = 0
    for name, size in files:
        name = os.path.basename(str(name or "").replace("\\", "/"))
        suffix = suffix_of(name)
        if suffix not in VOLUME_SUFFIXES + SCENE_SUFFIXES + DATA_FILE_SUFFIXES:
            VolumesLib.check_loadable(name)  # raises, naming what is supported
        if not isinstance(size, (int, float)) or size != size or size < 0:
            raise InputError(f"cannot load '{name}': its size is unknown")
        if size == 0:
            raise InputError(f"cannot load '{name}': the file is empty")
        total += int(size)
        safe = _safe_name(name)
        if any(safe == other for _n, other in entries):
            raise InputError(f"cannot load two files named '{name}' at once")
        entries.append((name, safe))
    if total > max_bytes:
        raise InputError(
            f"upload refused: {total / 1024 ** 2:.1f} MB is more than this studio accepts "
            f"({max_bytes / 1024 ** 2:.0f} MB; medsynth studio --max-upload-mb)"
        )
    if not any(suffix_of(name) in VOLUME_SUFFIXES + SCENE_SUFFIXES for name, _safe in entries):
        VolumesLib.check_loadable(entries[0][0])
    return entries


def _remove_tree(path: str) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
