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


def test_volumes_downloads(context):
    panel, (mri, _ct) = volumes_panel(context)
    nii = panel.run_download("save_nifti")
    assert nii["name"] == "mni_t1_2mm.nii.gz" and nii["content"][:2] == b"\x1f\x8b"
    assert panel.run_download("save_nrrd")["content"].startswith(b"NRRD")
    assert panel.run_download("save_scene")["content"][:2] == b"PK"


# =========================================================================== the whole app (no server start)
def test_studio_builds_with_layouts_and_sample_data(server):
    from medsynth_studio.app import build_studio

    studio = build_studio(server=server)
    assert [p.id for p in studio.panels][0] == "volumes"
    assert {n.GetName() for n in studio.context.volume_nodes()} == {"mni_t1_2mm", "head_ct_2mm"}
    assert studio.panel("volumes").node("volume").GetName() == "mni_t1_2mm"
    assert {"Quad View", "Axial Primary", "3D Only"} <= set(server.state["studio_layouts"])
    assert len(studio.context.slice_views()) == 3 and len(studio.context.threed_views()) == 1
    html = studio.ui.html
    assert "medsynth-panel-volumes" in html and "medsynth-upload" in html
    server.state.ready()
    with server.state:
        server.state["studio_layout"] = "Axial Primary"
    assert studio.layout_manager.layout_id == "Axial Primary"


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
