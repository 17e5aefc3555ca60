"""Teaching sheets downloaded from the studio (issue #22): the Nodule, Cell synthesis and Slice super-resolution
panels' "Download teaching sheet" (``medsynth_studio.sheets.TeachingSheet``).

Without a browser the panels are driven as in Testing/test_studio.py (the real Slicer core, off-screen views, no
server): the button's method starts a background task, the sheet the page would fetch is checked (PNG bytes, the
tiles asked for, the panel's settings used) and bad requests show an error and produce nothing.  One browser test
(marked ``heavy``; skipped without Chromium or Playwright, as Testing/test_studio_browser.py) clicks the Nodule
panel's button on the default chest phantom and receives the PNG as a download.
"""

from __future__ import annotations

import io

import numpy as np
import pytest

pytest.importorskip("trame_slicer", reason="needs trame-slicer (pip install 'trame-slicer[standalone]==2.0.0')")

from medsynth_studio import browser  # noqa: E402
from test_studio import (  # noqa: E402,F401 - fixtures and helpers of the studio tests
    SAMPLES,
    context,
    make_panel,
    server,
    shape_model,
    slicer_app,
    voxels,
)

PNG = b"\x89PNG\r\n\x1a\n"


def png_size(content: bytes):
    from PIL import Image

    assert content[:8] == PNG
    with Image.open(io.BytesIO(content)) as im:
        return im.size


def make_sheet(panel, columns=None, rows=None, fmt=None):
    """Press the panel's Download teaching sheet (with these fields) and wait for the task; returns what the page
    would fetch (None when refused or failed)."""
    values = {k: v for k, v in (("sheet_columns", columns), ("sheet_rows", rows), ("sheet_format", fmt))
              if v is not None}
    with panel.state:
        for name, value in values.items():
            panel.state[panel.key(name)] = value
    ready = panel.state[panel.key("sheet_ready")]

    async def go():
        task = panel.start_sheet()
        return await task if task is not None else None

    import asyncio

    outcome = asyncio.run(go())
    sheet = panel.fetch_sheet()
    if outcome == "done":
        assert panel.state[panel.key("sheet_ready")] == ready + 1  # the page's cue to fetch it
        assert sheet is not None and panel.fetch_sheet() is None  # handed out once
    else:
        assert sheet is None and panel.state[panel.key("sheet_ready")] == ready
        assert panel.state[panel.key("error")], "a refused sheet says why in the panel"
    return sheet


def nodule_panel(context):
    from medsynth_studio.nodule import NoduleSynthPanel
    from medsynth_studio.volumes import VolumesPanel

    make_panel(VolumesPanel, context)
    nodule = make_panel(NoduleSynthPanel, context)
    assert nodule.run_action("phantom") is None, context.state["nodule_error"]
    return nodule


# =========================================================================== Nodule synthesis
def test_nodule_sheet_is_a_png_of_the_requested_tiles_at_the_panels_point(context, shape_model):
    nodule = nodule_panel(context)
    phantom = nodule.node("volume")
    before = voxels(phantom)
    assert context.state["nodule_sheet_columns"] == "diameter_mm=5,10,15,20,25"  # the prefilled example
    assert context.state["nodule_sheet_rows"] == "texture=solid,part-solid,ggo"
    assert nodule.run_action("suggest") is None, context.state["nodule_error"]  # a centre (and a live nodule)
    centre = [context.state[f"nodule_{k}"] for k in "ras"]
    nodule.set_values(spiculation=0.6)  # one of the panel's other settings
    n_nodes = context.scene.GetNumberOfNodes()

    sheet = make_sheet(nodule)
    assert nodule.tasks.last_outcome == "done", context.state["nodule_error"]
    assert sheet["name"] == "chest_phantom_nodule_sheet.png" and sheet["type"] == "image/png"
    w, h = png_size(sheet["content"])
    assert w > h  # 5 columns by 3 rows
    facts = nodule.last_sheet
    assert len(facts["tiles"]) == 15 and facts["kind"] == "ct"
    assert {t["diameter_mm"] for t in facts["tiles"]} == {5.0, 10.0, 15.0, 20.0, 25.0}
    assert {t["texture"] for t in facts["tiles"]} == {"solid", "part-solid", "ggo"}
    assert facts["ras"] == pytest.approx(centre)  # the panel's point
    assert "15 tiles" in context.state["nodule_sheet_status"]
    assert context.state["nodule_error"] == "" and context.state["nodule_busy"] is False
    assert context.scene.GetNumberOfNodes() == n_nodes  # a sheet adds nothing to the scene
    np.testing.assert_array_equal(voxels(phantom), before)

    # PDF as an option, one varied parameter
    pdf = make_sheet(nodule, columns="spiculation=0,0.5,1", rows="", fmt="pdf")
    assert pdf["name"].endswith(".pdf") and pdf["type"] == "application/pdf" and pdf["content"][:5] == b"%PDF-"
    assert len(nodule.last_sheet["tiles"]) == 3


def test_nodule_sheet_without_a_point_takes_a_lung_point(context, shape_model):
    nodule = nodule_panel(context)  # nothing made on this input yet: the fields' 0,0,0 was never chosen
    sheet = make_sheet(nodule, columns="diameter=6,12", rows="")
    assert png_size(sheet["content"])[0] > 0 and len(nodule.last_sheet["tiles"]) == 2
    assert "lung point" in context.state["nodule_sheet_status"]
    assert nodule.last_sheet["ras"] != [0.0, 0.0, 0.0]


@pytest.mark.parametrize("columns, rows, fmt, message", [
    ("size=6,10", "", "png", "unknown parameter 'size'"),
    ("diameter_mm=6,500", "", "png", "diameter_mm"),
    ("texture=solid,rubbery", "", "png", "rubbery"),
    ("", "", "png", "give NAME=v1,v2"),
    ("diameter_mm=6,10", "diameter_mm=12", "png", "twice"),
    ("diameter_mm=" + ",".join(str(5 + i % 20) for i in range(61)), "", "png", "at most"),
    ("diameter_mm=6,10", "", "jpg", "format 'jpg'"),
])
def test_nodule_bad_sheet_requests_show_an_error_and_produce_nothing(context, columns, rows, fmt, message):
    nodule = nodule_panel(context)
    assert make_sheet(nodule, columns, rows, fmt) is None
    assert message in context.state["nodule_error"], context.state["nodule_error"]
    assert context.state["nodule_busy"] is False and not context.state["nodule_sheet_status"]


def test_nodule_sheet_needs_an_input_volume(context):
    from medsynth_studio.nodule import NoduleSynthPanel

    nodule = make_panel(NoduleSynthPanel, context)  # an empty scene
    assert make_sheet(nodule) is None
    assert "no input volume" in context.state["nodule_error"]


def test_nodule_sheet_writes_through_the_module_logic_on_its_image(context, shape_model, tmp_path, monkeypatch):
    """The panel's sheet is NoduleSynthLogic.makeTeachingSheet's (the Slicer panel's), given the image read from
    the node on the event loop (the worker thread touches no node)."""
    import NoduleSynthLib

    nodule = nodule_panel(context)
    calls = []
    original = NoduleSynthLib.NoduleSynthLogic.makeTeachingSheet

    def spy(self, input_node, out_path, vary, fixed=None, **kwargs):
        calls.append((type(input_node).__name__, list(vary), dict(fixed or {})))
        return original(self, input_node, out_path, vary, fixed, **kwargs)

    monkeypatch.setattr(NoduleSynthLib.NoduleSynthLogic, "makeTeachingSheet", spy)
    nodule.set_values(solid_fraction=0.4)
    assert make_sheet(nodule, columns="texture=solid,ggo", rows="") is not None
    (kind, vary, fixed), = calls
    assert kind == "Host" and vary == ["texture=solid,ggo"] and fixed["solid_fraction"] == 0.4


# =========================================================================== Cell synthesis
def cyto_panel(context):
    from medsynth_studio.cyto import CytoSynthPanel

    return make_panel(CytoSynthPanel, context)


def test_cells_sheet_is_a_png_of_every_class_by_seed(context):
    from medsynth.cyto.generate import classes_for

    cyto = cyto_panel(context)
    assert (context.state["cyto_sheet_columns"], context.state["cyto_sheet_rows"]) == ("cell_class=all", "seed=0,1,2")
    sheet = make_sheet(cyto)
    assert cyto.tasks.last_outcome == "done", context.state["cyto_error"]
    assert sheet["name"] == "cells_sheet_bethesda.png"
    w, h = png_size(sheet["content"])
    classes = classes_for("all", "bethesda")
    assert len(classes) >= 3 and w > h  # a column per class, a row per seed
    tiles = cyto.last_sheet["tiles"]
    assert len(tiles) == 3 * len(classes) and {t["seed"] for t in tiles} == {0, 1, 2}
    # the panel's class and naming when they do not vary
    cyto.set_values(cell_class="HSIL")
    assert make_sheet(cyto, columns="seed=3,4", rows="") is not None
    assert {t["label"] for t in cyto.last_sheet["tiles"]} == {"HSIL"}


@pytest.mark.parametrize("columns, rows, message", [
    ("seed=0,1", "", "choose one class"),  # the panel's class is 'all' and it does not vary
    ("count=1,2", "", "unknown parameter 'count'"),
    ("cell_class=NILM,warts", "", "warts"),
    ("seed=-1,2", "cell_class=all", "seed"),
])
def test_cells_bad_sheet_requests_show_an_error_and_produce_nothing(context, columns, rows, message):
    cyto = cyto_panel(context)
    assert make_sheet(cyto, columns, rows) is None
    assert message in context.state["cyto_error"], context.state["cyto_error"]


# =========================================================================== Slice super-resolution
def superres_panel(context):
    from medsynth_studio.superres import SliceSuperResPanel
    from medsynth_studio.volumes import VolumesLib, VolumesPanel

    VolumesLib(context.scene).load_file(SAMPLES / "mni_t1_2mm.nii.gz")
    make_panel(VolumesPanel, context)
    superres = make_panel(SliceSuperResPanel, context)
    context.flush_scene_changes()
    superres.set_values(method="bspline", live_preview=False)
    assert superres.run_action("thick") is None, context.state["superres_error"]  # 6 mm slices along k
    return superres


def test_superres_sheet_is_a_png_of_the_thick_input_at_each_setting(context):
    superres = superres_panel(context)
    thick = superres.node("volume")
    before = voxels(thick)
    assert (context.state["superres_sheet_columns"], context.state["superres_sheet_rows"]) == (
        "spacing=3,1.5", "method=sainr,bspline")
    sheet = make_sheet(superres, rows="method=linear,bspline")  # quick methods here; sainr: the engine's tests
    assert superres.tasks.last_outcome == "done", context.state["superres_error"]
    assert sheet["name"] == "mni_t1_2mm_thick3k_superres_sheet.png"
    w, h = png_size(sheet["content"])
    assert w > h  # the input and 2 spacings by 2 methods
    facts = superres.last_sheet
    assert len(facts["tiles"]) == 4 and facts["axis"] == "k" and facts["plane"] == "coronal"
    assert {t["spacing"] for t in facts["tiles"]} == {3.0, 1.5}
    red = next(v for v in context.slice_views() if v.get_orientation() == "Axial")
    assert facts["ras"] == pytest.approx(context.slice_plane(red)[0])  # around the middle of the axial view
    np.testing.assert_array_equal(voxels(thick), before)
    # the panel's spacing when it does not vary
    superres.set_values(spacing=2.0)
    assert make_sheet(superres, columns="method=linear,bspline", rows="") is not None
    assert [t["exact_spacing_mm"] for t in superres.last_sheet["tiles"]] == pytest.approx([2.0, 2.0], abs=0.05)


def test_superres_bad_sheet_requests_show_an_error_and_produce_nothing(context):
    superres = superres_panel(context)
    assert make_sheet(superres, columns="spacing=9", rows="") is None  # not below the 6 mm slices: the engine says
    assert superres.tasks.last_outcome == "error" and context.state["superres_error"]
    assert make_sheet(superres, columns="adapt_steps=0,50", rows="") is None
    assert "unknown parameter" in context.state["superres_error"]
    assert make_sheet(superres, columns="method=linear,magic", rows="") is None
    assert "magic" in context.state["superres_error"]


# =========================================================================== the page (built, not served)
def test_the_studio_page_has_a_sheet_area_in_each_of_the_three_panels(server):
    from medsynth_studio.app import build_studio

    studio = build_studio(server=server)
    html = studio.ui.html
    for panel_id in ("nodule", "cyto", "superres"):
        assert f"medsynth-sheet-{panel_id}" in html, panel_id
        assert f"{panel_id}_sheet_ready" in html  # the page fetches a sheet when this changes
    assert "Download teaching sheet" in html and "utils.download" in html
    assert "medsynth-sheet-volumes" not in html and "medsynth-sheet-crossmod" not in html


# =========================================================================== in the browser
@pytest.mark.heavy
@pytest.mark.skipif(browser.missing_requirements() is not None, reason=str(browser.missing_requirements()))
def test_browser_nodule_sheet_download(tmp_path_factory, tmp_path):
    """Click the Nodule panel's Download teaching sheet on the default chest phantom: a PNG download arrives."""
    from playwright.sync_api import sync_playwright

    from medsynth.runtime import list_models

    env = {} if "nodule-shape-vae" in list_models() else browser.shape_stand_in_env(
        tmp_path_factory.mktemp("shape_stand_in"))
    with browser.StudioServer(start_timeout=120, env=env) as server, sync_playwright() as pw:
        chromium = browser.launch_chromium(pw)
        try:
            page = chromium.new_context(viewport={"width": 1400, "height": 900}, accept_downloads=True).new_page()
            page.set_default_timeout(30_000)
            browser.open_studio(page, server.url, count=4, timeout_s=90)
            assert browser.get_state(page, "studio_panel") == ["nodule"]
            button = page.locator(".medsynth-panel-nodule .medsynth-action-sheet")
            button.scroll_into_view_if_needed()
            assert "download teaching sheet (png)" in button.inner_text().lower()
            with page.expect_download(timeout=120_000) as info:
                button.click()
            download = info.value
            assert download.suggested_filename == "chest_ct_phantom_simulated_nodule_sheet.png"
            path = tmp_path / download.suggested_filename
            download.save_as(str(path))
            content = path.read_bytes()
            w, h = png_size(content)
            assert w > h and w > 800  # 5 columns by 3 rows
            status = page.locator(".medsynth-panel-nodule .medsynth-sheet-status").inner_text()
            assert "15 tiles" in status, status
            assert browser.get_state(page, "nodule_error") == ""
        finally:
            chromium.close()
