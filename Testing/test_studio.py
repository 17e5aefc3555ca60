"""MedSynth Studio under pytest: the panel interface, the Param -> Vuetify generator, long actions,
and the Volumes panel on the real Slicer core (trame-slicer's SlicerApp with
``DirectViewFactory(do_render_offscreen=True)`` views, rendered off screen).

No server is started: panels get a trame server object whose state is marked ready, so
``@state.change`` listeners run on flush as they do when a browser changes a value.
"""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("trame_slicer", reason="needs trame-slicer (pip install 'trame-slicer[standalone]==2.0.0')")

from medsynth import Volume, make_ijk_to_ras  # noqa: E402
from medsynth.errors import InputError  # noqa: E402
from medsynth.params import Param  # noqa: E402
from medsynth.progress import Reporter  # noqa: E402

from medsynth_studio import controls  # noqa: E402
from medsynth_studio.panel import Action, NodeInput, StudioPanel, load_panel_classes  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "Resources" / "SampleData"
_names = itertools.count()


# =========================================================================== fixtures
@pytest.fixture
def server():
    from trame.app import get_server

    return get_server(f"studio_test_{next(_names)}", client_type="vue3")


@pytest.fixture
def slicer_app():
    """The real Slicer core with off-screen axial/coronal/sagittal/3D views (no browser).

    Views render only when a test takes a snapshot (a direct render on every MRML change
    would re-render the 3D volume rendering hundreds of times on a CPU).
    """
    from trame_slicer.core import SlicerApp
    from trame_slicer.views import DirectViewFactory, ViewLayoutDefinition
    from trame_slicer.views.render_scheduler import NoScheduleRendering

    app = SlicerApp()
    app.view_manager.register_factory(DirectViewFactory(do_render_offscreen=True))
    for definition in (
        ViewLayoutDefinition.axial_view(),
        ViewLayoutDefinition.coronal_view(),
        ViewLayoutDefinition.sagittal_view(),
        ViewLayoutDefinition.threed_view(),
    ):
        view = app.view_manager.create_view(definition)
        view.render_window().SetSize(160, 160)
        view.set_scheduled_render(NoScheduleRendering())
    return app


@pytest.fixture
def context(slicer_app, server):
    """A studio context on the real Slicer core with views."""
    from medsynth_studio.context import StudioContext

    return StudioContext(slicer_app, server)


class _NoViews:
    def get_slice_views(self):
        return []

    def get_threed_views(self):
        return []


@pytest.fixture
def scene_context(server):
    """A studio context on a plain MRML scene without views (fast; for the panel interface tests)."""
    import types

    import slicer

    from medsynth_studio.context import StudioContext

    return StudioContext(types.SimpleNamespace(scene=slicer.vtkMRMLScene(), view_manager=_NoViews()), server)


def make_panel(cls, context):
    panel = cls(context)
    context.add_panel(panel)
    context.state.ready()
    return panel


def run_async(awaitable_factory):
    async def go():
        result = awaitable_factory()
        return await result if result is not None else None

    return asyncio.run(go())


def snapshot(view) -> np.ndarray:
    """The view's pixels (rendered off screen) as an array."""
    import vtk
    from vtkmodules.util.numpy_support import vtk_to_numpy

    view.render()
    grab = vtk.vtkWindowToImageFilter()
    grab.SetInput(view.render_window())
    grab.ReadFrontBufferOff()
    grab.Update()
    image = grab.GetOutput()
    w, h, _ = image.GetDimensions()
    return vtk_to_numpy(image.GetPointData().GetScalars()).reshape(h, w, -1).astype(float)


def axial(context):
    return next(v for v in context.slice_views() if v.get_orientation() == "Axial")


def small_volume(name="small") -> Volume:
    k, j, i = np.meshgrid(np.arange(20), np.arange(24), np.arange(28), indexing="ij")
    return Volume(((i * 5 + j * 3 + k * 7) % 300).astype(np.int16), make_ijk_to_ras((2, 2, 2), (-28, -24, -20)), name=name)


# =========================================================================== toy panel (the interface)
TOY_PARAMS = (
    Param("size", float, 10.0, "Size", minimum=2.0, maximum=30.0, step=0.5, unit="mm", live=True),
    Param("count", int, 3, "Count", minimum=1, maximum=9, live=False),
    Param("mode", str, "soft", "Mode", choices=("soft", "hard"), live=True),
    Param("smooth", bool, False, "Smooth", live=True),
    Param("seed", int, 0, "Seed"),
)


class ToyLib:
    """Stands in for a module's <Module>Lib: built with the scene."""

    def __init__(self, scene):
        self.scene = scene
        self.calls = []


class ToyPanel(StudioPanel):
    id = "toy"
    title = "Toy"
    params = TOY_PARAMS
    inputs = (NodeInput("volume", "Input volume"),)
    actions = (Action("run", "Run"), Action("quick", "Quick"), Action("save", "Save", kind="download"))
    logic_class = ToyLib

    def __init__(self, studio):
        super().__init__(studio)
        self.updates = []
        self.done = []
        self.fail_with = None
        self.steps = 5

    def update(self, values, changed):
        self.updates.append((changed, dict(values)))

    def on_quick(self, values):
        self.logic.calls.append(("quick", values["count"]))

    def on_run(self, values):
        node = self.node("volume")  # read on the event loop ...
        steps, fail = self.steps, self.fail_with

        def compute(progress, cancel):  # ... computed in a worker thread ...
            r = Reporter(progress, cancel)
            for n in range(steps):
                r.step(n / steps, f"step {n}")
                if fail is not None and n == 2:
                    raise fail
            return values["size"] * 2, node.GetName() if node is not None else None

        def on_done(result):  # ... and applied back on the event loop
            self.done.append(result)

        return compute, on_done

    def download_save(self, values):
        return f"toy_{values['count']}.txt", b"hello"


def test_control_spec_maps_each_kind_to_a_vuetify_control():
    by_name = {p.name: controls.control_spec(p, "toy") for p in TOY_PARAMS}
    size = by_name["size"]
    assert size["widget"] == "VSlider" and size["key"] == "toy_size"
    assert size["props"]["v_model"] == ("toy_size", 10.0)
    assert size["props"]["min"] == ("toy_size_min", 2.0) and size["props"]["max"] == ("toy_size_max", 30.0)
    assert size["props"]["step"] == ("toy_size_step", 0.5)
    assert size["props"]["label"] == "Size (mm)"
    assert by_name["count"]["widget"] == "VSlider" and by_name["count"]["props"]["step"] == ("toy_count_step", 1)
    assert by_name["mode"]["widget"] == "VSelect"
    assert by_name["mode"]["props"]["items"] == ("toy_mode_items", ["soft", "hard"])
    assert by_name["smooth"]["widget"] == "VSwitch" and by_name["smooth"]["props"]["v_model"] == ("toy_smooth", False)
    assert by_name["seed"]["widget"] == "VTextField" and by_name["seed"]["props"]["type"] == "number"
    state = controls.initial_state(TOY_PARAMS, "toy")
    assert state["toy_size"] == 10.0 and state["toy_size_max"] == 30.0 and state["toy_mode_items"] == ["soft", "hard"]


def test_float_slider_without_step_gets_one_hundred_steps():
    spec = controls.control_spec(Param("t", float, 0.0, "T", minimum=0.0, maximum=2.0), "p")
    assert spec["props"]["step"] == ("p_t_step", pytest.approx(0.02))


def test_every_module_param_tuple_has_a_control():
    """Each module's declarations (those that have landed) turn into controls without error."""
    import importlib

    from medsynth_studio.volumes import VOLUMES_PARAMS

    tuples = [("volumes", VOLUMES_PARAMS)]
    for module, attr in (("medsynth.superres.params", "SUPERRES_PARAMS"), ("medsynth.nodule.params", "NODULE_PARAMS")):
        try:
            tuples.append((module, getattr(importlib.import_module(module), attr)))
        except (ImportError, AttributeError):
            pass
    for prefix, params in tuples:
        for p in params:
            spec = controls.control_spec(p, "m")
            assert spec["widget"] in ("VSlider", "VSelect", "VSwitch", "VTextField"), (prefix, p.name)


def test_panel_ui_builds_with_generated_controls(scene_context):
    from trame.ui.vuetify3 import SinglePageLayout

    panel = make_panel(ToyPanel, scene_context)
    with SinglePageLayout(scene_context.server) as layout:
        panel.build_ui()
    html = layout.html
    for needle in ("<VSlider", "<VSelect", "<VSwitch", "<VTextField", "toy_size_max", "medsynth-action-run",
                   "medsynth-error-toy", "<VProgressLinear"):
        assert needle in html, needle


def test_live_param_change_calls_update_without_a_button(scene_context):
    panel = make_panel(ToyPanel, scene_context)
    panel.updates.clear()
    panel.set_values(size=12.5)
    assert panel.updates == [("size", panel.values())]
    assert panel.updates[0][1]["size"] == 12.5
    panel.set_values(smooth=True)
    assert panel.updates[-1][0] == "smooth"
    n = len(panel.updates)
    panel.set_values(count=5)  # not live: waits for a button
    assert len(panel.updates) == n


def test_out_of_range_value_shows_an_error_and_skips_update(scene_context):
    panel = make_panel(ToyPanel, scene_context)
    panel.updates.clear()
    panel.set_values(size=99.0)
    assert panel.updates == []
    assert "size" in scene_context.state["toy_error"] and "maximum" in scene_context.state["toy_error"]
    panel.set_values(size=3.0)
    assert scene_context.state["toy_error"] == ""
    assert panel.updates[-1][1]["size"] == 3.0


def test_node_input_lists_volumes_and_is_live(scene_context):
    from medsynth_mrml import node_from_volume

    panel = make_panel(ToyPanel, scene_context)
    a = node_from_volume(scene_context.scene, small_volume("a"))
    b = node_from_volume(scene_context.scene, small_volume("b"))
    scene_context.flush_scene_changes()
    titles = [item["title"] for item in scene_context.state["toy_volume_items"]]
    assert titles == ["a", "b"]
    assert panel.node("volume") is a  # first one chosen
    panel.updates.clear()
    panel.select_node("volume", b)
    assert panel.updates and panel.updates[-1][0] == "volume"
    assert panel.node("volume") is b


def test_short_action_runs_the_logic(scene_context):
    panel = make_panel(ToyPanel, scene_context)
    assert panel.run_action("quick") is None
    assert panel.logic.calls == [("quick", 3)]


def test_long_action_reports_progress_and_applies_on_the_loop(scene_context):
    from medsynth_mrml import node_from_volume

    panel = make_panel(ToyPanel, scene_context)
    node_from_volume(scene_context.scene, small_volume("input"))
    scene_context.flush_scene_changes()
    seen = []
    scene_context.state.change("toy_progress")(lambda toy_progress, **_: seen.append(toy_progress))
    run_async(lambda: panel.run_action("run"))
    assert panel.done == [(20.0, "input")]
    assert panel.tasks.last_outcome == "done"
    assert scene_context.state["toy_busy"] is False and scene_context.state["toy_error"] == ""
    assert scene_context.state["toy_progress"] == 100 and seen[-1] == 100


def test_long_action_cancel_adds_nothing(scene_context):
    panel = make_panel(ToyPanel, scene_context)
    panel.steps = 10_000_000

    async def go():
        task = panel.run_action("run")
        await asyncio.sleep(0.15)
        assert scene_context.state["toy_busy"] is True
        panel.cancel()
        return await task

    assert asyncio.run(go()) == "cancelled"
    assert panel.done == []
    assert "Cancelled" in scene_context.state["toy_message"] and scene_context.state["toy_busy"] is False


def test_long_action_error_is_shown_in_the_panel(scene_context):
    panel = make_panel(ToyPanel, scene_context)
    panel.fail_with = InputError("input volume is empty")
    run_async(lambda: panel.run_action("run"))
    assert panel.tasks.last_outcome == "error"
    assert scene_context.state["toy_error"] == "input volume is empty"
    assert panel.done == []


def test_download_action_returns_name_and_bytes(scene_context):
    panel = make_panel(ToyPanel, scene_context)
    out = panel.run_download("save")
    assert out["name"] == "toy_3.txt" and out["content"] == b"hello"


def test_missing_module_panel_is_skipped():
    classes = load_panel_classes(["medsynth_studio.volumes:VolumesPanel", "medsynth_studio.not_landed:Panel"])
    assert [c.__name__ for c in classes] == ["VolumesPanel"]


# =========================================================================== VolumesLib (logic)
def test_lib_loads_presets_and_saves(slicer_app, tmp_path):
    from medsynth.io import read_volume
    from medsynth_studio.volumes import PRESETS, VolumesLib

    lib = VolumesLib(slicer_app.scene)
    (node,) = lib.load_file(SAMPLES / "head_ct_2mm.nii.gz")
    assert node.GetName() == "head_ct_2mm"
    assert lib.apply_preset(node, "ct-bone") == PRESETS["ct-bone"]
    assert lib.window_level(node) == PRESETS["ct-bone"]
    assert not lib.display(node).GetAutoWindowLevel()
    w, l = lib.auto_window_level(node)
    assert lib.display(node).GetAutoWindowLevel() and w > 0
    assert lib.set_window_level(node, w, l) is False  # unchanged: auto stays on
    ranges = lib.slider_ranges(node)
    lo, hi = lib.scalar_range(node)
    assert ranges["level"][0] < lo and ranges["level"][1] > hi and ranges["window"][1] >= hi - lo
    with pytest.raises(InputError, match="unknown window/level preset"):
        lib.apply_preset(node, "ct-heart")
    for suffix in (".nii.gz", ".nrrd"):
        name, data = lib.volume_bytes(node, suffix)
        assert name == "head_ct_2mm" + suffix
        (tmp_path / name).write_bytes(data)
        back = read_volume(tmp_path / name)
        original = read_volume(SAMPLES / "head_ct_2mm.nii.gz")
        np.testing.assert_array_equal(back.array, original.array)
        np.testing.assert_allclose(back.ijk_to_ras, original.ijk_to_ras, atol=1e-4)


def test_lib_scene_round_trip_as_mrb(slicer_app, tmp_path):
    from trame_slicer.core import SlicerApp

    from medsynth_studio.volumes import VolumesLib

    lib = VolumesLib(slicer_app.scene)
    lib.load_file(SAMPLES / "mni_t1_2mm.nii.gz")
    name, data = lib.scene_bytes()
    assert name == "MedSynthScene.mrb" and data[:2] == b"PK"
    (tmp_path / name).write_bytes(data)
    other = VolumesLib(SlicerApp().scene)
    nodes = other.load_scene(tmp_path / name)
    assert [n.GetName() for n in nodes] == ["mni_t1_2mm"]
    assert nodes[0].GetImageData().GetDimensions() == slicer_app.scene.GetFirstNodeByName(
        "mni_t1_2mm").GetImageData().GetDimensions()
    (tmp_path / "fake.mrb").write_bytes(b"not a zip")
    with pytest.raises(InputError, match="cannot load 'fake.mrb'"):
        other.load_scene(tmp_path / "fake.mrb")


def test_lib_rejects_bad_files_naming_them(tmp_path):
    from medsynth_studio.volumes import VolumesLib

    with pytest.raises(InputError, match=r"cannot load 'notes.txt': unsupported format '.txt'"):
        VolumesLib.check_loadable("notes.txt")
    bad = tmp_path / "upload-tmp-broken.nii.gz"
    bad.write_bytes(b"not an image" * 10)
    with pytest.raises(InputError) as info:
        VolumesLib.read(bad, name="broken.nii.gz")
    assert "cannot load 'broken.nii.gz'" in str(info.value)
    assert str(tmp_path) not in str(info.value)


# =========================================================================== Volumes panel on the real views
def volumes_panel(context):
    from medsynth_studio.volumes import VolumesLib, VolumesPanel

    lib = VolumesLib(context.scene)
    nodes = lib.load_file(SAMPLES / "mni_t1_2mm.nii.gz") + lib.load_file(SAMPLES / "head_ct_2mm.nii.gz")
    panel = make_panel(VolumesPanel, context)
    context.flush_scene_changes()
    return panel, nodes


def test_volumes_panel_shows_the_active_volume_in_every_view(context):
    panel, (mri, ct) = volumes_panel(context)
    assert panel.node("volume") is mri
    assert all(v.get_background_volume_id() == mri.GetID() for v in context.slice_views())
    image = snapshot(axial(context))
    assert image.std() > 10, "axial view is blank"
    assert snapshot(context.threed_views()[0]).std() > 5, "3D view is blank"
    panel.select_node("volume", ct)
    assert all(v.get_background_volume_id() == ct.GetID() for v in context.slice_views())
    lo, hi, _step = panel.logic.slider_ranges(ct)["level"]
    assert (context.state["volumes_level_min"], context.state["volumes_level_max"]) == (lo, hi)  # fitted to the CT
    assert (lo, hi) != panel.logic.slider_ranges(mri)["level"]


def test_volumes_preset_is_live_and_changes_pixels(context):
    panel, (mri, ct) = volumes_panel(context)
    panel.select_node("volume", ct)
    before = snapshot(axial(context))
    panel.set_values(preset="ct-bone")
    assert panel.logic.window_level(ct) == (1000.0, 400.0)
    assert context.state["volumes_window"] == 1000.0
    after = snapshot(axial(context))
    assert np.abs(after - before).mean() > 2.0
    panel.set_values(window=300.0)  # moving a slider leaves the preset
    assert panel.logic.window_level(ct) == (300.0, 400.0)
    assert context.state["volumes_preset"] == "custom"


def test_volumes_overlay_goes_to_the_foreground(context):
    panel, (mri, ct) = volumes_panel(context)
    panel.set_values(overlay_opacity=0.3)
    panel.select_node("overlay", ct)
    for view in context.slice_views():
        assert view.get_foreground_volume_id() == ct.GetID()
        assert view.get_foreground_opacity() == pytest.approx(0.3)
    panel.select_node("overlay", None)
    assert all(not v.get_foreground_volume_id() for v in context.slice_views())


def test_segmentation_is_shown_in_the_slice_views(context):
    from medsynth_mrml import segmentation_node_from_labels, volume_from_node

    panel, (mri, _ct) = volumes_panel(context)
    before = snapshot(axial(context))
    volume = volume_from_node(mri)
    labels = np.zeros(volume.array.shape, dtype=np.uint8)
    k, j, i = (s // 2 for s in labels.shape)
    labels[k - 6:k + 6, j - 15:j + 15, i - 15:i + 15] = 1
    seg = segmentation_node_from_labels(context.scene, volume.with_array(labels, name="box"),
                                        {1: ("box", (1.0, 0.2, 0.2))}, reference_node=mri)
    context.show_segmentation(seg)
    after = snapshot(axial(context))
    red = (after[..., 0] - after[..., 1]) > 60
    assert red.sum() > 50, "no red segment pixels in the axial view"
    assert not ((before[..., 0] - before[..., 1]) > 60).any()


def test_volumes_upload_task_loads_a_good_file_and_rejects_a_bad_one(context, tmp_path):
    from medsynth.io import write_volume

    panel, _nodes = volumes_panel(context)
    path = write_volume(small_volume("uploaded"), tmp_path / "uploaded.nrrd")
    files = [{"name": "uploaded.nrrd", "size": path.stat().st_size, "type": "", "content": path.read_bytes()}]
    run_async(lambda: panel.load_uploads(files))
    assert panel.tasks.last_outcome == "done", context.state["volumes_error"]
    assert panel.node("volume").GetName() == "uploaded"
    assert "uploaded" in [i["title"] for i in context.state["volumes_volume_items"]]

    n_before = context.scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode")
    bad = [{"name": "broken.nii.gz", "size": 12, "type": "", "content": b"not a volume"}]
    run_async(lambda: panel.load_uploads(bad))
    assert panel.tasks.last_outcome == "error"
    assert context.state["volumes_error"].startswith("cannot load 'broken.nii.gz'")
    assert context.scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode") == n_before
    assert panel.load_uploads([{"name": "notes.txt", "content": b"x"}]) is None
    assert "unsupported format" in context.state["volumes_error"]


def upload_in_pieces(panel, files, chunk=None):
    """What www/upload.js does: begin, the pieces, end (awaited).  Returns begin's answer."""
    started = panel.upload_begin([{"name": name, "size": len(data)} for name, data in files])
    if "error" in started:
        return started
    step = chunk or started["chunk"]
    for index, (name, data) in enumerate(files):
        for offset in range(0, len(data), step):
            piece = {"name": name, "size": len(data[offset:offset + step]), "content": data[offset:offset + step]}
            ok = panel.upload_chunk(started["id"], index, offset, piece)
            if ok is not True:
                return ok
    run_async(lambda: panel.upload_end(started["id"]))
    return started


def upload_folders():
    import tempfile

    return sorted(Path(tempfile.gettempdir()).glob("medsynth-upload-*")) + sorted(
        Path(tempfile.gettempdir()).glob("medsynth-mrb-*"))


def test_upload_in_pieces_loads_a_file_larger_than_a_piece(context, tmp_path, monkeypatch):
    from medsynth.io import write_volume
    from medsynth_studio import volumes

    monkeypatch.setattr(volumes, "UPLOAD_CHUNK_BYTES", 4096)
    panel, _nodes = volumes_panel(context)
    before = upload_folders()
    data = write_volume(small_volume("pieces"), tmp_path / "pieces.nrrd", compress=False).read_bytes()
    assert len(data) > 3 * 4096
    started = upload_in_pieces(panel, [("pieces.nrrd", data)])
    assert started.get("chunk") == 4096 and panel.tasks.last_outcome == "done", context.state["volumes_error"]
    assert panel.node("volume").GetName() == "pieces"
    from medsynth_mrml import volume_from_node

    np.testing.assert_array_equal(volume_from_node(panel.node("volume")).array, small_volume().array)
    assert upload_folders() == before  # the received files are removed once loaded


def test_upload_limits_and_malformed_pieces_are_refused_and_leave_nothing(context, tmp_path):
    panel, _nodes = volumes_panel(context)
    n_before = context.scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode")
    folders = upload_folders()
    context.max_upload_bytes = 1000
    answer = panel.upload_begin([{"name": "big.nii.gz", "size": 600}, {"name": "big2.nii.gz", "size": 600}])
    assert "more than this studio accepts" in answer["error"]
    assert "upload refused" in context.state["volumes_error"]
    assert upload_folders() == folders  # refused before any byte was sent: no folder made
    for meta, why in (
        ([{"name": "notes.txt", "size": 10}], "unsupported format"),
        ([{"name": "a.nrrd", "size": 0}], "empty"),
        ([{"name": "a.nrrd"}], "size is unknown"),
        ([{"name": "a.nrrd", "size": 5}, {"name": "a.nrrd", "size": 5}], "two files named"),
        ([{"name": "data.raw", "size": 5}], "unsupported format"),  # a data file alone loads nothing
        ("not a list", "no file received"),
    ):
        assert why in panel.upload_begin(meta)["error"], (meta, context.state["volumes_error"])
    context.max_upload_bytes = 10 ** 6
    started = panel.upload_begin([{"name": "a.nrrd", "size": 10}])
    assert panel.upload_chunk("forged-id", 0, 0, b"x" * 10)["error"].startswith("upload refused")
    started = panel.upload_begin([{"name": "a.nrrd", "size": 10}])
    assert "out of order" in panel.upload_chunk(started["id"], 0, 5, b"x" * 5)["error"]
    started = panel.upload_begin([{"name": "a.nrrd", "size": 10}])
    assert "larger than announced" in panel.upload_chunk(started["id"], 0, 0, b"x" * 11)["error"]
    started = panel.upload_begin([{"name": "a.nrrd", "size": 10}])
    assert panel.upload_chunk(started["id"], 0, 0, b"x" * 4) is True
    assert panel.upload_end(started["id"]) is None and "incomplete" in context.state["volumes_error"]
    assert upload_folders() == folders
    assert context.scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode") == n_before


def test_upload_of_a_header_naming_a_server_file_is_refused(context, tmp_path):
    from medsynth.io import write_volume

    panel, _nodes = volumes_panel(context)
    n_before = context.scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode")
    folders = upload_folders()
    secret = write_volume(small_volume("secret"), tmp_path / "secret.nrrd", compress=False)
    header, _sep, _data = secret.read_bytes().partition(b"\n\n")
    # the header alone, naming the server's file: Slicer/ITK would read it
    bad_nhdr = header + f"\ndata file: {tmp_path / 'secret.raw'}\n\n".encode()
    (tmp_path / "secret.raw").write_bytes(_data)
    bad_mhd = (b"ObjectType = Image\nNDims = 3\nDimSize = 4 1 1\nElementType = MET_UCHAR\n"
               b"ElementDataFile = /etc/hostname\n")
    for name, data in (("evil.nhdr", bad_nhdr), ("evil.mhd", bad_mhd), ("evil.nrrd", bad_nhdr)):
        upload_in_pieces(panel, [(name, data)])
        error = context.state["volumes_error"]
        assert panel.tasks.last_outcome == "error" and "outside its own folder" in error, (name, error)
        assert str(tmp_path) not in error and "/etc" not in error and "/tmp" not in error, error
    assert context.scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode") == n_before
    # a header with its data file, sent together, is self-contained and loads
    mhd = write_volume(small_volume("pair"), tmp_path / "pair.mhd")
    raw = next(p for p in tmp_path.iterdir() if p.name.startswith("pair") and p.suffix != ".mhd")
    upload_in_pieces(panel, [("pair.mhd", mhd.read_bytes()), (raw.name, raw.read_bytes())])
    assert panel.tasks.last_outcome == "done", context.state["volumes_error"]
    assert panel.node("volume").GetName() == "pair"
    assert upload_folders() == folders


def test_upload_of_a_scene_naming_a_file_outside_the_bundle_is_refused(context, tmp_path):
    import zipfile

    from medsynth.io import write_volume

    panel, _nodes = volumes_panel(context)
    outside = write_volume(small_volume("outside_file"), tmp_path / "outside_file.nrrd")
    name, good = panel.logic.scene_bytes()
    with zipfile.ZipFile(__import__("io").BytesIO(good)) as z:
        members = {m: z.read(m) for m in z.namelist()}
    mrml = next(m for m in members if m.endswith(".mrml"))
    import re

    text = members[mrml].decode()
    first = re.search(r'fileName="([^"]+)"', text).group(1)
    evil = dict(members)
    evil[mrml] = text.replace(f'fileName="{first}"', f'fileName="{outside}"', 1).encode()
    bad = tmp_path / "evil.mrb"
    with zipfile.ZipFile(bad, "w") as z:
        for member, data in evil.items():
            z.writestr(member, data)
    # proof that the vector is real: the same scene, loaded as a trusted local file, reads the outside file
    from medsynth_mrml import volume_from_node

    lib_nodes = panel.logic.load_scene(bad)
    read = [volume_from_node(n).array for n in lib_nodes if n.GetImageData() is not None]
    assert any(a.shape == small_volume().array.shape and np.array_equal(a, small_volume().array) for a in read)
    n_before = context.scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode")
    folders = upload_folders()
    upload_in_pieces(panel, [("evil.mrb", bad.read_bytes())])
    error = context.state["volumes_error"]
    assert panel.tasks.last_outcome == "error" and "outside the scene bundle" in error, error
    assert str(tmp_path) not in error
    assert context.scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode") == n_before
    assert upload_folders() == folders
    # the untouched scene uploads and loads
    good_path = tmp_path / "good.mrb"
    good_path.write_bytes(good)
    upload_in_pieces(panel, [("good.mrb", good)])
    assert panel.tasks.last_outcome == "done", context.state["volumes_error"]
    assert context.scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode") > n_before
    assert upload_folders() == folders


def test_volumes_downloads(context):
    panel, (mri, _ct) = volumes_panel(context)
    nii = panel.run_download("save_nifti")
    assert nii["name"] == "mni_t1_2mm.nii.gz" and nii["content"][:2] == b"\x1f\x8b"
    assert panel.run_download("save_nrrd")["content"].startswith(b"NRRD")
    assert panel.run_download("save_scene")["content"][:2] == b"PK"


# =========================================================================== the whole app (no server start)
def test_studio_builds_with_layouts_and_data_files(server):
    from medsynth_studio.app import build_studio

    studio = build_studio(data=[SAMPLES / "mni_t1_2mm.nii.gz", SAMPLES / "head_ct_2mm.nii.gz"], server=server)  # --data
    assert [p.id for p in studio.panels][0] == "volumes"
    assert {n.GetName() for n in studio.context.volume_nodes()} == {"mni_t1_2mm", "head_ct_2mm"}
    assert studio.panel("volumes").node("volume").GetName() == "mni_t1_2mm"
    assert studio.open_panels() == ["volumes"]  # your own files: the Volumes panel is the one open
    assert {"Quad View", "Axial Primary", "3D Only"} <= set(server.state["studio_layouts"])
    assert len(studio.context.slice_views()) == 3 and len(studio.context.threed_views()) == 1
    # issue #22: one full-quality image per change (no still re-render 0.5 s later), slice views without MSAA
    for view in studio.context.slice_views() + studio.context.threed_views():
        scheduler = view._scheduled_render._scheduler  # noqa: SLF001 - trame-slicer's RcaRenderStrategy
        assert scheduler._interactive_quality == scheduler._still_quality  # noqa: SLF001
    assert all(v.render_window().GetMultiSamples() == 0 for v in studio.context.slice_views())
    html = studio.ui.html
    assert "medsynth-panel-volumes" in html and "medsynth-upload" in html
    server.state.ready()
    with server.state:
        server.state["studio_layout"] = "Axial Primary"
    assert studio.layout_manager.layout_id == "Axial Primary"
    assert all(v.render_window().GetMultiSamples() == 0 for v in studio.context.slice_views())


# --------------------------------------------------------------------------- samples, the default, one panel, model cards
def test_studio_opens_on_the_simulated_chest_ct_with_the_nodule_panel_ready(server):
    from medsynth.nodule.phantom import chest_ct_phantom

    from medsynth_studio.app import build_studio

    studio = build_studio(server=server)  # no --data
    (node,) = studio.context.volume_nodes()
    assert node.GetName() == "chest_ct_phantom_simulated"
    assert studio.open_panels() == ["nodule"] and server.state["studio_panel"] == ["nodule"]
    nodule, volumes = studio.panel("nodule"), studio.panel("volumes")
    assert nodule.node("volume").GetID() == node.GetID() == volumes.node("volume").GetID()
    assert nodule.visible() and not volumes.visible()
    display = node.GetDisplayNode()
    assert not display.GetAutoWindowLevel() and (display.GetWindow(), display.GetLevel()) == (1400.0, -500.0)  # lungs
    assert node.GetAttribute("MedSynth.Note").startswith("simulated") and "simulated" in server.state["studio_message"]
    # the very phantom the panel's Chest phantom button makes
    np.testing.assert_array_equal(voxels(node), chest_ct_phantom().array)
    assert "Nodule synthesis" in server.state["studio_message"] or "Chest CT" in server.state["studio_message"]


SAMPLE_SETUP = {  # key -> (panel opened, (panel, input) set to it, node class)
    "chest_ct": ("nodule", [("nodule", "volume")], "vtkMRMLScalarVolumeNode"),
    "chest_xray": ("nodule", [("nodule", "volume")], "vtkMRMLScalarVolumeNode"),
    "cytology": ("cyto", [("cyto", "image")], "vtkMRMLVectorVolumeNode"),
    "fdg_pet": ("crossmod", [("crossmod", "fdg"), ("pdmeta", "fdg")], "vtkMRMLScalarVolumeNode"),
    "brain_mri": ("superres", [("superres", "volume"), ("crossmod", "mr")], "vtkMRMLScalarVolumeNode"),
    "head_ct": ("volumes", [("volumes", "volume"), ("crossmod", "ct")], "vtkMRMLScalarVolumeNode"),
}


def test_every_sample_loads_through_the_one_loading_function(server):
    from medsynth.pet.checks import check_pet_volume
    from medsynth.sample_data import SAMPLES
    from medsynth_mrml import volume_from_node

    from medsynth_studio.app import SAMPLE_PANELS, build_studio

    assert set(SAMPLE_SETUP) == {s.key for s in SAMPLES} == set(SAMPLE_PANELS)
    studio = build_studio(server=server)
    server.state.ready()
    menu = server.state["studio_samples"]
    assert [m["key"] for m in menu] == [s.key for s in SAMPLES]  # the Load sample menu: every sample, installed
    assert "Chest CT (simulated phantom)" in [m["title"] for m in menu]
    for sample in SAMPLES:
        opened, inputs, node_class = SAMPLE_SETUP[sample.key]
        studio._on_sample_menu(sample.key)  # what the menu item calls
        assert server.state["studio_error"] == "", server.state["studio_error"]
        node = studio.context.scene.GetNodeByID(server.state[f"{inputs[0][0]}_{inputs[0][1]}"])
        assert node is not None and node.GetClassName() == node_class, sample.key
        assert node.GetName().startswith(sample.node_name)
        assert node.GetAttribute("MedSynth.SampleData") == sample.key
        assert node.GetAttribute("DICOM.Modality") == sample.modality
        assert studio.open_panels() == [opened], sample.key
        for panel_id, input_name in inputs:
            assert server.state[f"{panel_id}_{input_name}"] == node.GetID(), (sample.key, panel_id)
        assert (node.GetAttribute("MedSynth.Note") or "").startswith("simulated") == sample.simulated
        assert ("simulated" in server.state["studio_message"]) == sample.simulated
        if sample.key == "chest_xray":
            volume = volume_from_node(node)
            assert volume.array.shape == (1, 977, 920) and volume.array.dtype == np.uint16
            assert volume.spacing[:2] == pytest.approx([370.0 / 1841 * 2] * 2, abs=1e-4)  # kept in the file
        if sample.key == "cytology":
            assert volume_from_node(node).components == 3
            assert studio.context.background_volume().GetID() == node.GetID()  # shown in the slice views
            assert "Ready to insert" in server.state["cyto_status"] or server.state["cyto_status"] == "Choose one class to insert."
        if sample.key == "fdg_pet":
            check_pet_volume(volume_from_node(node), "FDG")  # a brain PET the PET panels accept
        if sample.key == "brain_mri":
            assert "isotropic" in server.state["superres_grid"]  # the super-resolution panel, ready
    with pytest.raises(InputError, match="unknown sample 'nope'"):
        studio.load_sample("nope")
    studio._on_sample_menu("nope")  # from the page: an error in the drawer, nothing breaks
    assert "unknown sample" in server.state["studio_error"]


def test_one_panel_is_open_at_a_time(server):
    from medsynth_studio.app import build_studio

    studio = build_studio(server=server)
    server.state.ready()
    superres, nodule = studio.panel("superres"), studio.panel("nodule")
    studio.open_panel("superres")
    assert server.state["studio_panel"] == ["superres"] and superres.visible() and not nodule.visible()
    with server.state:
        server.state["studio_panel"] = ["nodule", "cyto"]  # two at once (an old page, a script): the last one stays
    assert server.state["studio_panel"] == ["cyto"] and not nodule.visible() and not superres.visible()
    with server.state:
        server.state["studio_panel"] = "pdmeta"  # what a single-choice accordion emits, unwrapped
    assert server.state["studio_panel"] == ["pdmeta"]
    with server.state:
        server.state["studio_panel"] = None  # every panel closed
    assert server.state["studio_panel"] == [] and not any(p.visible() for p in studio.panels)
    html = studio.ui.html
    accordion = html[html.index("<VExpansionPanels"):].split(">", 1)[0]
    assert "multiple" not in accordion  # the drawer is a single-choice accordion, kept as a list of one id
    assert '@update:modelValue="studio_panel = ($event === undefined || $event === null) ? [] : [$event]"' in accordion


def test_each_module_panel_links_its_model_cards_saying_simulated(server):
    from medsynth_studio import cards
    from medsynth_studio.app import build_studio

    studio = build_studio(server=server)
    html = studio.ui.html
    simulated = {}
    for panel in studio.panels:
        links = cards.panel_cards(panel)
        assert bool(links) == (panel.id != "volumes"), panel.id
        for link in links:
            assert link.installed and f"medsynth-card-{link.model_id}" in html and link.label in html
            simulated[link.model_id] = link.simulated
    assert simulated == {"sainr": False, "nodule-shape-vae": False, "cellgan": False, "fdg2cft": True,
                         "pd-classifier": True, "mr2ct": True, "metaad-cycle": True}
    assert "Model card: fdg2cft 1.0.0 - trained on simulated data" in html
    assert "{{ studio_card.text }}" in html and "v-html" not in html  # the card is shown as text, never as HTML
    server.state.ready()
    studio.show_card("fdg2cft")
    card = server.state["studio_card"]
    assert server.state["studio_card_open"] is True and card["simulated"] is True
    assert card["text"] == (REPO / "Resources" / "Models" / "fdg2cft.md").read_text(encoding="utf-8")
    assert card["title"].startswith("fdg2cft") and "Trained only on simulated PET" in card["text"]
    studio.show_card("cellgan")
    assert server.state["studio_card"]["simulated"] is False and "Herlev" in server.state["studio_card"]["text"]
    for refused in ("cellgan-baseline", "../../etc/passwd", "nope"):  # only the cards the page links to
        with server.state:
            server.state["studio_error"] = ""
        studio.show_card(refused)
        assert "no model card" in server.state["studio_error"], refused


def test_a_card_file_outside_its_model_folder_is_refused(tmp_path):
    from medsynth.runtime import ModelEntry

    from medsynth_studio.cards import card_path

    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "ok.md").write_text("# ok\n")
    (tmp_path / "secret.md").write_text("not a card\n")
    (folder / "link.md").symlink_to(tmp_path / "secret.md")
    (folder / "notes.txt").write_text("text\n")

    def entry(card):
        return ModelEntry(id="m", version="1", file="m.onnx", sha256="0" * 64, inputs=[], outputs=[], card=card,
                          folder=folder)

    assert card_path(entry("ok.md")) == (folder / "ok.md").resolve()
    for bad, why in (("../secret.md", "refused"), (str(tmp_path / "secret.md"), "refused"), ("link.md", "out of"),
                     ("notes.txt", "refused"), ("", "no model card"), ("missing.md", "not found")):
        with pytest.raises(InputError, match=why):
            card_path(entry(bad))


def test_studio_reports_a_missing_data_file(server, tmp_path):
    from medsynth_studio.app import build_studio

    with pytest.raises(InputError, match="input not found"):
        build_studio(data=[tmp_path / "missing.nii.gz"], server=server)


def test_command_is_registered_and_engine_does_not_import_the_studio():
    code = (
        "import sys; from medsynth.cli import build_parser; p = build_parser();"
        "a = p.parse_args(['studio', '--port', '9999', '--data', 'x.nii.gz']);"
        "assert (a.host, a.port, a.data) == ('127.0.0.1', 9999, ['x.nii.gz']), a;"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('medsynth_studio', 'trame', 'trame_slicer')];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# =========================================================================== module panels (the modules' own Lib logic)
def _model_available(model_id):
    from medsynth.runtime import list_models

    return model_id in list_models()


class SphereShapeModel:
    """A stand-in for the nodule shape model while it is not installed: a sphere's distance field.

    Only the panel's plumbing is tested with it (start/update/add/undo through NoduleSynthLogic, the
    views); what the learned shapes look like is tested with the shipped model (skipped without it).
    """

    unit_voxels = 16.0
    sdf_clip = 8.0
    grid = 32

    def __init__(self):
        import types

        self.entry = types.SimpleNamespace(id="sphere-stand-in", version="0")
        g = np.arange(self.grid) - (self.grid - 1) / 2.0
        r = np.sqrt(g[:, None, None] ** 2 + g[None, :, None] ** 2 + g[None, None, :] ** 2)
        self._field = np.clip((r - self.unit_voxels / 2.0) / self.sdf_clip, -1.0, 1.0).astype(np.float32)

    def field(self, seed, sphericity=0.0, lobulation=0.0, spiculation=0.0):
        return self._field


@pytest.fixture
def shape_model(monkeypatch):
    """The shipped nodule shape model when installed, else the sphere stand-in (said in the test id)."""
    if _model_available("nodule-shape-vae"):
        return "shipped"
    import medsynth.nodule.shape as shape

    monkeypatch.setattr(shape, "default_shape_model", SphereShapeModel)
    return "stand-in"


def module_studio(context):
    """The Volumes panel with the sample MRI, then both module panels (as the app registers them)."""
    from medsynth_studio.nodule import NoduleSynthPanel
    from medsynth_studio.superres import SliceSuperResPanel
    from medsynth_studio.volumes import VolumesLib, VolumesPanel

    VolumesLib(context.scene).load_file(SAMPLES / "mni_t1_2mm.nii.gz")
    volumes = make_panel(VolumesPanel, context)
    superres = make_panel(SliceSuperResPanel, context)
    nodule = make_panel(NoduleSynthPanel, context)
    context.flush_scene_changes()
    return volumes, superres, nodule


def voxels(node):
    import slicer

    return slicer.util.arrayFromVolume(node).copy()


def test_module_panels_are_registered_and_find_their_lib():
    from medsynth_studio import modules
    from medsynth_studio.panel import PANELS

    classes = load_panel_classes()
    assert [c.id for c in classes] == ["volumes", "superres", "nodule", "cyto", "crossmod", "pdmeta"]
    assert "medsynth_studio.superres:SliceSuperResPanel" in PANELS
    assert modules.module_folder("SliceSuperRes") == REPO / "SliceSuperRes"
    assert modules.module_folder("NoduleSynth") == REPO / "NoduleSynth"
    # the panels call the very classes the Slicer modules use
    import CrossModalityLib
    import CytoSynthLib
    import NoduleSynthLib
    import SliceSuperResLib

    by_id = {c.id: c for c in classes}
    assert by_id["superres"].logic_class is SliceSuperResLib.SliceSuperResLogic
    assert by_id["nodule"].logic_class is NoduleSynthLib.NoduleSynthLogic
    assert by_id["cyto"].logic_class is CytoSynthLib.CytoSynthLogic
    assert by_id["crossmod"].logic_class is CrossModalityLib.CrossModalityLogic
    # the module's own declarations feed the controls (no second copy)
    assert set(CytoSynthLib.PARAMS) <= set(by_id["cyto"].params)
    assert set(CrossModalityLib.PARAMS) <= set(by_id["crossmod"].params)
    import PDMetabolismLib

    assert by_id["pdmeta"].logic_class is PDMetabolismLib.PDMetabolismLogic
    assert set(PDMetabolismLib.PARAMS) <= set(by_id["pdmeta"].params)
    with pytest.raises(ImportError, match="NotAModuleLib not found"):
        modules.module_folder("NotAModule")


def test_superres_isotropic_input_explains_itself(context):
    _volumes, superres, _nodule = module_studio(context)
    assert superres.node("volume").GetName() == "mni_t1_2mm"
    superres.apply_live("volume")
    assert "isotropic" in context.state["superres_grid"]
    assert superres.preview_node is None and not axial(context).get_foreground_volume_id()


def test_superres_spacing_slider_updates_the_preview_in_the_axial_view(context):
    volumes, superres, _nodule = module_studio(context)
    mri = superres.node("volume")
    superres.set_values(method="bspline")
    assert superres.run_action("thick") is None, context.state["superres_error"]
    thick = superres.node("volume")
    assert thick is not mri and thick.GetName() == "mni_t1_2mm_thick3k"
    assert thick.GetSpacing() == pytest.approx((2.0, 2.0, 6.0))
    assert volumes.node("volume") is thick  # shown as the active volume
    assert "6 mm" in context.state["superres_grid"] and "1 mm" in context.state["superres_grid"]
    red = axial(context)
    preview = superres.preview_node
    assert preview is not None and red.get_foreground_volume_id() == preview.GetID()
    assert red.get_foreground_opacity() == pytest.approx(1.0)
    assert all(not v.get_foreground_volume_id() for v in context.slice_views() if v is not red)
    first = voxels(preview)
    n = superres.preview_count
    superres.set_values(spacing=2.5)  # a slider move: no button
    assert superres.preview_count == n + 1 and superres.preview_node is preview
    assert context.state["superres_preview"].startswith("Preview:")
    assert not np.array_equal(voxels(preview), first) or voxels(preview).shape != first.shape
    with_preview = snapshot(red)
    superres.set_values(live_preview=False)
    assert not red.get_foreground_volume_id() and context.scene.GetNodeByID(preview.GetID()) is None
    assert np.abs(snapshot(red) - with_preview).mean() > 0.2  # the preview slab is what the view showed
    superres.set_values(live_preview=True)
    assert red.get_foreground_volume_id() == superres.preview_node.GetID()


def test_superres_preview_only_while_the_panel_is_open(context):
    _volumes, superres, _nodule = module_studio(context)
    superres.set_values(method="linear")
    superres.run_action("thick")
    assert superres.preview_node is not None
    with context.state:
        context.state["studio_panel"] = ["volumes"]  # closed in the page: the axial view is given back
    assert superres.preview_node is None and not axial(context).get_foreground_volume_id()
    superres.set_values(spacing=2.0)
    assert superres.preview_node is None
    with context.state:
        context.state["studio_panel"] = ["volumes", "superres"]
    assert axial(context).get_foreground_volume_id() == superres.preview_node.GetID()


def test_superres_apply_is_a_long_action_that_adds_a_shown_volume(context):
    _volumes, superres, _nodule = module_studio(context)
    superres.set_values(method="bspline")
    superres.run_action("thick")
    thick = superres.node("volume")
    sagittal = next(v for v in context.slice_views() if v.get_orientation() == "Sagittal")
    before = snapshot(sagittal)
    n_before = context.scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode")
    seen = []
    context.state.change("superres_progress")(lambda superres_progress, **_: seen.append(superres_progress))
    run_async(lambda: superres.run_action("apply"))
    assert superres.tasks.last_outcome == "done", context.state["superres_error"]
    out = context.scene.GetNodeByID(context.state["superres_output_id"])
    assert out is superres.output_node and out.GetName() == "mni_t1_2mm_thick3k_bspline_1mm"
    assert out.GetImageData().GetDimensions()[2] == 187 and out.GetSpacing()[2] == pytest.approx(1.0)
    assert context.scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode") == n_before  # +output, -preview
    assert all(v.get_background_volume_id() == out.GetID() for v in context.slice_views())
    assert superres.preview_node is None and seen and seen[-1] == 100
    np.testing.assert_array_equal(voxels(thick).shape, (32, 117, 99))  # the input is untouched
    assert np.abs(snapshot(sagittal) - before).mean() > 0.5  # thick blocks -> 1 mm slices in the sagittal view


def test_superres_apply_can_be_cancelled(context):
    _volumes, superres, _nodule = module_studio(context)
    superres.set_values(method="bspline", spacing=0.3)
    superres.run_action("thick")
    n_before = context.scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode")

    async def go():
        task = superres.run_action("apply")
        await asyncio.sleep(0.05)
        assert context.state["superres_busy"] is True
        superres.cancel()
        return await task

    assert asyncio.run(go()) == "cancelled"
    assert superres.output_node is None
    assert context.scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode") == n_before


def test_superres_without_the_sainr_model_shows_why(context, monkeypatch):
    from medsynth import runtime

    shipped = runtime.list_models
    monkeypatch.setattr(runtime, "list_models", lambda: {k: v for k, v in shipped().items() if not k.startswith("sainr")})
    runtime.clear_cache()
    _volumes, superres, _nodule = module_studio(context)
    assert context.state["superres_method"] == "bspline" and "SA-INR model not installed" in context.state[
        "superres_model_note"]
    superres.run_action("thick")
    superres.set_values(method="sainr")
    assert "SA-INR model 'sainr' not found" in context.state["superres_error"]
    run_async(lambda: superres.run_action("apply"))
    assert superres.tasks.last_outcome == "error" and "sainr" in context.state["superres_error"]
    assert superres.output_node is None


def nodule_ready(context):
    volumes, _superres, nodule = module_studio(context)
    assert nodule.run_action("phantom") is None, context.state["nodule_error"]
    phantom = nodule.node("volume")
    assert phantom.GetName() == "chest_phantom" and volumes.node("volume") is phantom
    return volumes, nodule, phantom


def test_nodule_diameter_slider_rewrites_only_the_nodule_region(context, shape_model):
    volumes, nodule, phantom = nodule_ready(context)
    original = voxels(phantom)
    red = axial(context)
    before = snapshot(red)
    assert nodule.run_action("suggest") is None, context.state["nodule_error"]  # a lung point: one live update
    out = context.scene.GetNodeByID(context.state["nodule_output_id"])
    assert out is nodule.logic.output_node and out.GetName() == "chest_phantom_nodules"
    assert volumes.node("volume") is out and red.get_background_volume_id() == out.GetID()
    assert context.state["nodule_updates"] == 1 and "updated in" in context.state["nodule_status"]
    assert context.state["volumes_show_3d"] is False  # as the Slicer panel: slice views + segment surfaces
    ras = [context.state[f"nodule_{n}"] for n in "ras"]
    assert red.get_slice_value() == pytest.approx(ras[2], abs=1.5)  # the views jumped to the centre
    small = voxels(out)
    changed = np.argwhere(small != original)
    assert len(changed) > 0
    nodule.set_values(diameter_mm=24.0)  # a slider move: no button
    big = voxels(out)
    assert context.state["nodule_updates"] == 2
    diff = np.argwhere(big != small)
    assert len(diff) > len(changed)
    centre_kji = np.round(phantom_ijk(phantom, ras))[::-1]
    extent = np.abs(diff - centre_kji).max(axis=0)
    assert (extent * np.array(phantom.GetSpacing())[::-1] <= 24.0 + 6.0).all(), extent  # only around the nodule
    np.testing.assert_array_equal(voxels(phantom), original)  # the input is never modified
    after = snapshot(red)
    assert np.abs(after - before).max() > 50  # the axial view shows it


def phantom_ijk(node, ras):
    import vtk

    m = vtk.vtkMatrix4x4()
    node.GetRASToIJKMatrix(m)
    return np.array(m.MultiplyPoint(list(ras) + [1.0])[:3])


def test_nodule_add_shows_the_segmentation_and_undo_removes_it(context, shape_model):
    _volumes, nodule, phantom = nodule_ready(context)
    nodule.run_action("suggest")
    nodule.set_values(diameter_mm=20.0)
    out = nodule.logic.output_node
    red = axial(context)
    without = snapshot(red)
    nodule.run_action("add")
    seg = nodule.logic.segmentation_node
    assert seg is not None and seg.GetSegmentation().GetNumberOfSegments() == 1
    assert context.state["nodule_kept"] == 1 and context.state["nodule_segmentation"] == seg.GetName()
    assert "Nodule 1 added" in context.state["nodule_status"]
    with_seg = snapshot(red)
    redness = (with_seg[..., 0] - with_seg[..., 2]) - (without[..., 0] - without[..., 2])
    assert (redness > 40).sum() > 20, "no segment colour in the axial view"
    nodule.run_action("undo")
    assert nodule.logic.segmentation_node is None and context.state["nodule_kept"] == 0
    np.testing.assert_array_equal(voxels(out), voxels(phantom))
    assert "Removed nodule 1" in context.state["nodule_status"]
    nodule.run_action("undo")
    assert context.state["nodule_status"] == "Nothing to undo."


def test_nodule_centre_fields_and_placed_point_follow_each_other(context, shape_model):
    _volumes, nodule, phantom = nodule_ready(context)
    nodule.run_action("suggest")
    ras = [context.state[f"nodule_{n}"] for n in "ras"]
    nodule.run_action("place")
    interaction = context.scene.GetNodeByID("vtkMRMLInteractionNodeSingleton")
    assert interaction.GetCurrentInteractionMode() == interaction.Place
    point = nodule.point_node
    n = context.state["nodule_updates"]
    point.AddControlPointWorld(ras[0] + 4.0, ras[1], ras[2])  # what a click in a view does
    assert context.state["nodule_r"] == pytest.approx(ras[0] + 4.0)
    assert context.state["nodule_updates"] == n + 1
    nodule.set_values(s=ras[2] + 2.5)  # typing in a field moves the point
    moved = [0.0, 0.0, 0.0]
    point.GetNthControlPointPositionWorld(0, moved)
    assert moved[2] == pytest.approx(ras[2] + 2.5)
    nodule.run_action("centre_of_view")
    centre, _normal = context.slice_plane(axial(context))
    assert [context.state[f"nodule_{n}"] for n in "ras"] == pytest.approx(centre, abs=0.01)
    nodule.set_values(r="left")
    assert "r: 'left' is not a valid float" in context.state["nodule_error"]


def test_nodule_without_the_shape_model_shows_a_clear_error(context, monkeypatch):
    import medsynth.nodule.shape as shape
    from medsynth.errors import ModelError

    def missing():
        raise ModelError("model 'nodule-shape-vae' is in no manifest (searched X); known: none")

    monkeypatch.setattr(shape, "default_shape_model", missing)
    _volumes, nodule, phantom = nodule_ready(context)
    n_nodes = context.scene.GetNumberOfNodes()
    assert nodule.run_action("suggest") is None
    error = context.state["nodule_error"]
    assert error.startswith("NoduleSynth needs its shape model 'nodule-shape-vae'"), error
    assert nodule.logic.session is None and context.scene.GetNumberOfNodes() == n_nodes + 0
    nodule.run_action("add")
    assert "shape model" in context.state["nodule_error"]


def test_nodule_shapes_follow_the_shipped_model(context):
    if not _model_available("nodule-shape-vae"):
        pytest.skip("the nodule shape model 'nodule-shape-vae' is not installed (Resources/Models)")
    _volumes, nodule, phantom = nodule_ready(context)
    nodule.run_action("suggest")
    out = nodule.logic.output_node
    nodule.set_values(diameter_mm=16.0)
    round_ = voxels(out)
    nodule.set_values(spiculation=3.0)
    assert (voxels(out) != round_).sum() > 10
    assert context.state["nodule_error"] == ""


# =========================================================================== CytoSynth panel
def cyto_studio(context):
    from medsynth_studio.cyto import CytoSynthPanel

    volumes, _superres, _nodule = module_studio(context)
    return volumes, make_panel(CytoSynthPanel, context)


def test_cyto_generate_is_a_long_action_that_shows_the_gallery(context):
    _volumes, cyto = cyto_studio(context)
    red = axial(context)
    before = snapshot(red)
    cyto.set_values(count=2, cell_class="all", naming="bethesda")
    seen = []
    context.state.change("cyto_progress")(lambda cyto_progress, **_: seen.append(cyto_progress))
    run_async(lambda: cyto.run_action("generate"))
    assert cyto.tasks.last_outcome == "done", context.state["cyto_error"]
    gallery = context.scene.GetNodeByID(context.state["cyto_output_id"])
    assert gallery is cyto.logic.gallery_node and gallery.GetName() == "CellGallery_all"
    assert gallery.IsA("vtkMRMLVectorVolumeNode") and voxels(gallery).shape[-1] == 3
    assert all(v.get_background_volume_id() == gallery.GetID() for v in context.slice_views())
    assert "NILM" in context.state["cyto_result"] and seen and seen[-1] == 100
    after = snapshot(red)
    assert np.abs(after - before).mean() > 2.0  # the axial view shows the gallery, not the MRI


def test_cyto_insert_at_point_into_the_smear_image(context):
    _volumes, cyto = cyto_studio(context)
    assert cyto.run_action("smear") is None, context.state["cyto_error"]
    smear = cyto.node("image")
    assert smear.GetName() == "smear" and smear.IsA("vtkMRMLVectorVolumeNode")
    assert [context.state[f"cyto_{n}"] for n in "ras"] == pytest.approx([-79.5, -79.5, 0.0], abs=0.6)
    assert context.state["cyto_cell_class"] == "HSIL" and context.state["cyto_status"].startswith("Ready")
    original = voxels(smear)
    red = axial(context)
    before = snapshot(red)
    assert cyto.run_action("insert") is None, context.state["cyto_error"]
    out = context.scene.GetNodeByID(context.state["cyto_output_id"])
    assert out is not smear and out.IsA("vtkMRMLVectorVolumeNode") and out.GetName().startswith("smear")
    assert (voxels(out) != original).any()
    np.testing.assert_array_equal(voxels(smear), original)  # the input is never modified
    assert red.get_background_volume_id() == out.GetID()
    assert np.abs(snapshot(red) - before).max() > 30  # the cell shows in the axial view
    assert cyto.logic.table_node.GetNumberOfRows() == 1 and "HSIL cell (seed 0)" in context.state["cyto_result"]
    assert context.state["cyto_seed"] == 1  # the next press inserts another cell
    # a placed point (what a click in a view does): the fields follow, the logic labels the point
    cyto.run_action("place")
    cyto.point_node.AddControlPointWorld(-40.0, -50.0, 0.0)
    assert [context.state[f"cyto_{n}"] for n in "ras"] == pytest.approx([-40.0, -50.0, 0.0])
    first = voxels(out)
    cyto.run_action("insert")
    assert context.state["cyto_output_id"] == out.GetID()  # further insertions paste into the same node
    assert (voxels(out) != first).any() and cyto.logic.table_node.GetNumberOfRows() == 2
    assert cyto.point_node.GetNthControlPointLabel(0).startswith("HSIL")


def test_cyto_params_and_point_are_validated(context):
    _volumes, cyto = cyto_studio(context)
    cyto.run_action("insert")
    assert "no RGB image" in context.state["cyto_error"]
    cyto.run_action("smear")
    n_nodes = context.scene.GetNumberOfNodes()
    cyto.set_values(cell_class="all")
    assert context.state["cyto_status"] == "Choose one class to insert."
    cyto.run_action("insert")
    assert "choose one class" in context.state["cyto_error"]
    cyto.set_values(cell_class="LSIL", r=500.0)
    assert "outside" in context.state["cyto_status"] or "outside" in cyto.logic.check_insertion(
        cyto.node("image"), [500.0, context.state["cyto_a"], 0.0])
    cyto.run_action("insert")
    assert context.state["cyto_error"] and context.scene.GetNumberOfNodes() == n_nodes
    cyto.set_values(count=0)
    assert cyto.run_action("generate") is None
    assert "count" in context.state["cyto_error"] and "minimum" in context.state["cyto_error"]
    cyto.set_values(count=2, r="left")
    assert "'left' is not a valid float" in context.state["cyto_error"]


# =========================================================================== CrossModality panel
def crossmod_studio(context):
    from medsynth_studio.crossmod import CrossModalityPanel

    volumes, _superres, _nodule = module_studio(context)
    return volumes, make_panel(CrossModalityPanel, context)


def test_crossmod_simulated_fdg_synthesis_and_striatal_binding(context):
    volumes, cm = crossmod_studio(context)
    assert cm.node("fdg") is None and cm.node("mr").GetName() == "mni_t1_2mm"  # the sample MRI is the demo MR
    run_async(lambda: cm.run_action("simulate"))
    assert cm.tasks.last_outcome == "done", context.state["crossmod_error"]
    fdg = cm.node("fdg")
    assert fdg.GetName() == "FDG_PD_sim3" and volumes.node("volume") is fdg
    original = voxels(fdg)
    red = axial(context)
    before = snapshot(red)
    seen = []
    context.state.change("crossmod_progress")(lambda crossmod_progress, **_: seen.append(crossmod_progress))
    run_async(lambda: cm.run_action("synthesize"))
    assert cm.tasks.last_outcome == "done", context.state["crossmod_error"]
    cft = context.scene.GetNodeByID(context.state["crossmod_output_id"])
    assert cft.GetName() == "FDG_PD_sim3_synthetic_CFT" and voxels(cft).shape == original.shape
    assert all(v.get_foreground_volume_id() == cft.GetID() for v in context.slice_views())
    assert volumes.node("overlay") is cft and seen and seen[-1] == 100
    assert np.abs(snapshot(red) - before).mean() > 1.0  # the CFT over the FDG
    run_async(lambda: cm.run_action("binding"))
    assert cm.tasks.last_outcome == "done", context.state["crossmod_error"]
    rows = context.state["crossmod_sbr_rows"]
    assert [r["region"] for r in rows][:3] == ["caudate", "putamen_anterior", "putamen_posterior"] and len(rows) == 5
    assert float(rows[2]["SBR_L"]) > 0 and "Posterior putamen SBR" in context.state["crossmod_status"]
    table = context.scene.GetFirstNodeByName(context.state["crossmod_table"])
    assert table is not None and table.GetNumberOfRows() == 5
    seg = context.scene.GetFirstNodeByName(context.state["crossmod_segmentation"])
    assert seg.GetSegmentation().GetNumberOfSegments() >= 8
    np.testing.assert_array_equal(voxels(fdg), original)


def test_crossmod_ct_and_mumap_from_the_sample_mr(context):
    volumes, cm = crossmod_studio(context)
    mr = cm.node("mr")
    run_async(lambda: cm.run_action("ct"))
    assert cm.tasks.last_outcome == "done", context.state["crossmod_error"]
    ct = cm.node("ct")
    assert ct is not None and ct.GetName() == "mni_t1_2mm_synthetic_CT" and volumes.node("volume") is ct
    assert ct.GetDisplayNode().GetWindow() == pytest.approx(400.0)
    assert voxels(ct).min() < -500 and voxels(ct).max() > 300  # air and bone in HU
    assert cm.run_action("mumap") is None, context.state["crossmod_error"]
    mu = context.scene.GetNodeByID(context.state["crossmod_output_id"])
    assert mu.GetName() == "mni_t1_2mm_synthetic_CT_mumap_511keV" and volumes.node("volume") is mu
    assert 0.0 <= voxels(mu).min() and voxels(mu).max() < 0.3
    assert cm.node("mr") is mr


def test_crossmod_bad_input_params_and_cancel_add_nothing(context):
    _volumes, cm = crossmod_studio(context)
    count = context.scene.GetNumberOfNodes()
    cm.run_action("synthesize")
    assert "no FDG PET volume" in context.state["crossmod_error"]
    cm.select_node("fdg", cm.node("mr"))  # an MR given as FDG is refused (with the reason), nothing added
    run_async(lambda: cm.run_action("synthesize"))
    assert cm.tasks.last_outcome != "done" and context.state["crossmod_error"]
    assert context.scene.GetNumberOfNodes() == count
    cm.set_values(tile=8)
    assert cm.run_action("ct") is None
    assert "tile" in context.state["crossmod_error"] and "minimum" in context.state["crossmod_error"]
    cm.set_values(tile=96, reference="pons")
    cm.run_action("binding")
    assert "reference" in context.state["crossmod_error"]
    cm.set_values(reference="occipital")

    async def go():
        task = cm.run_action("ct")
        await asyncio.sleep(0.3)
        assert context.state["crossmod_busy"] is True
        cm.cancel()
        return await task

    assert asyncio.run(go()) == "cancelled"
    assert cm.node("ct") is None and context.scene.GetNumberOfNodes() == count


def test_crossmod_classify_pd_shows_the_result_line(context):
    from medsynth.pet.classify import FDG_ONLY_MODEL_ID, MODEL_ID

    if not (_model_available(MODEL_ID) and _model_available(FDG_ONLY_MODEL_ID)):
        pytest.skip("the pd-classifier models are not in Resources/Models")
    from medsynth.pet.simulate import example_subject
    from medsynth_mrml import node_from_volume

    volumes, cm = crossmod_studio(context)
    cm.run_action("classify")
    assert "no FDG PET volume" in context.state["crossmod_error"]
    fdg = node_from_volume(context.scene, example_subject("PD").fdg, name="FDG_example_PD")
    context.flush_scene_changes()
    cm.select_node("fdg", fdg)
    original = voxels(fdg)
    seen = []
    context.state.change("crossmod_progress")(lambda crossmod_progress, **_: seen.append(crossmod_progress))
    run_async(lambda: cm.run_action("classify"))
    assert cm.tasks.last_outcome == "done", context.state["crossmod_error"]
    line = context.state["crossmod_classification"]
    assert "PD probability" in line and line.endswith("not a diagnosis.")
    cft = context.scene.GetNodeByID(context.state["crossmod_output_id"])
    assert cft.GetName() == "FDG_example_PD_synthetic_CFT" and voxels(cft).shape == original.shape
    assert volumes.node("volume") is fdg and volumes.node("overlay") is cft and seen and seen[-1] == 100
    assert "Classified" in context.state["crossmod_status"]
    np.testing.assert_array_equal(voxels(fdg), original)


# =========================================================================== PDMetabolism panel
def test_pdmeta_detect_live_threshold_and_jump_to_region(context):
    from medsynth_studio.pdmeta import PDMetabolismPanel

    volumes, _superres, _nodule = module_studio(context)
    pd = make_panel(PDMetabolismPanel, context)
    pd.run_action("detect")
    assert "no FDG PET volume" in context.state["pdmeta_error"]
    run_async(lambda: pd.run_action("simulate"))
    assert pd.tasks.last_outcome == "done", context.state["pdmeta_error"]
    fdg = pd.node("fdg")
    assert fdg.GetName() == "FDG_PD_sim11" and volumes.node("volume") is fdg
    red = axial(context)
    before = snapshot(red)
    run_async(lambda: pd.run_action("detect"))
    assert pd.tasks.last_outcome == "done", context.state["pdmeta_error"]
    anomaly = context.scene.GetNodeByID(context.state["pdmeta_output_id"])
    assert anomaly is pd.map_node and anomaly.GetName() == "FDG_PD_sim11_anomaly_z"
    assert all(v.get_foreground_volume_id() == anomaly.GetID() for v in context.slice_views())
    assert red.get_foreground_opacity() == pytest.approx(0.6)
    rows = context.state["pdmeta_rows"]
    assert len(rows) == pd.table_node.GetNumberOfRows() > 5 and {"region", "z"} <= set(rows[0])
    assert context.state["pdmeta_score"].startswith("Score")
    with_map = snapshot(red)
    assert np.abs(with_map - before).mean() > 0.2
    pd.set_values(z_threshold=3.0)  # live: no button
    assert anomaly.GetAttribute("MedSynth.PDMetabolism.threshold") == "3.0"
    pd.set_values(opacity=0.2)
    assert red.get_foreground_opacity() == pytest.approx(0.2)
    pd.jump_to_region(0)
    assert context.state["pdmeta_status"].startswith("Region centroid")
    pd.set_values(z_threshold=99.0)
    assert "threshold" in context.state["pdmeta_error"] and "maximum" in context.state["pdmeta_error"]
