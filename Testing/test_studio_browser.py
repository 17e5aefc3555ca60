"""MedSynth Studio end to end in headless Chromium (system Chromium driven by Playwright's Python package).

Starts ``medsynth studio`` on 127.0.0.1 (a free port) as a subprocess, waits for Slicer's
views in the page, checks they show pixels and that it opened on the simulated chest CT with the
Nodule panel, loads a sample from the *Load sample* menu (one panel open at a time), changes a live
control, uploads a good and a bad file, downloads a volume; the server is stopped by its process id.
Every wait is bounded.  The page screenshot goes to docs/studio.png when that file is missing or
MEDSYNTH_UPDATE_DOCS=1 (else to the pytest temporary folder).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("trame_slicer", reason="needs trame-slicer (pip install 'trame-slicer[standalone]==2.0.0')")

from medsynth_studio import browser  # noqa: E402

pytestmark = [
    pytest.mark.heavy,
    pytest.mark.skipif(browser.missing_requirements() is not None, reason=str(browser.missing_requirements())),
]

REPO = Path(__file__).resolve().parent.parent
SCREENSHOT = REPO / "docs" / "studio.png"
WAIT_MS = 30_000


def shape_model_installed() -> bool:
    from medsynth.runtime import list_models

    return "nodule-shape-vae" in list_models()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    # without the nodule shape model the studio process gets a sphere stand-in (browser.shape_stand_in_env):
    # the NoduleSynth test then checks the panel's plumbing; the learned shapes are tested with the real model
    env = {} if shape_model_installed() else browser.shape_stand_in_env(tmp_path_factory.mktemp("shape_stand_in"))
    with browser.StudioServer(start_timeout=120, env=env) as s:
        yield s


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = browser.launch_chromium(pw)
        try:
            context = chromium.new_context(viewport={"width": 1400, "height": 900}, accept_downloads=True)
            pg = context.new_page()
            pg.set_default_timeout(WAIT_MS)
            pg.load_s = browser.open_studio(pg, server.url, count=4, timeout_s=90)
            yield pg
        finally:
            chromium.close()


def test_views_show_pixels(page, server):
    stats = browser.view_stats(page)
    assert len(stats) == 4, stats  # Quad View: coronal, sagittal, 3D, axial
    for s in stats:
        assert s["w"] > 50 and s["h"] > 50, s
        assert s["std"] > 5.0, f"a view is blank: {s}"
    # it opens on the simulated chest CT, the Nodule panel open with it as the input
    assert browser.get_state(page, "studio_panel") == ["nodule"]
    assert page.locator(".medsynth-panel-nodule").is_visible()
    assert not page.locator(".medsynth-panel-volumes").is_visible()
    assert "chest_ct_phantom_simulated" in page.locator(".medsynth-panel-nodule .medsynth-input-volume").inner_text()
    for panel in ("volumes", "superres"):  # the other panels are in the page (closed)
        assert page.locator(f".medsynth-studio-panel-{panel}").count() == 1, panel
    print(f"page load to views: {page.load_s:.2f} s; server start {server.started_s:.1f} s")


# --------------------------------------------------------------------------- module panels
AXIAL = browser.view_index("axial")
SAGITTAL = browser.view_index("sagittal")


def is_open(page, panel_id: str) -> bool:
    return panel_id in (browser.get_state(page, "studio_panel") or [])


def open_panel(page, panel_id: str) -> None:
    if not is_open(page, panel_id):
        page.locator(f".medsynth-studio-panel-{panel_id} .v-expansion-panel-title").click()
    browser.wait_for_state(page, "studio_panel", lambda v: v == [panel_id], timeout_s=10)  # the only one open
    page.locator(f".medsynth-panel-{panel_id}").wait_for(state="visible", timeout=WAIT_MS)


def close_panel(page, panel_id: str) -> None:
    if is_open(page, panel_id):
        page.locator(f".medsynth-studio-panel-{panel_id} .v-expansion-panel-title").click()
    browser.wait_for_state(page, "studio_panel", lambda v: panel_id not in (v or []), timeout_s=10)


def assert_chosen(page, selector_key: str, name: str) -> None:
    """The node selector ``selector_key`` (state, whether its panel is open or not) lists ``name`` and has it chosen."""
    items = browser.wait_for_state(page, selector_key + "_items", lambda v: any(i["title"] == name for i in v or []))
    node_id = next(i["value"] for i in items if i["title"] == name)
    browser.wait_for_state(page, selector_key, lambda v: v == node_id, timeout_s=10)


def load_sample(page, key: str) -> None:
    page.locator(".medsynth-load-sample").click()
    page.locator(f".medsynth-sample-{key}").click()


def test_load_sample_opens_its_panel_one_panel_at_a_time(page):
    axial = settled_pixels(page, AXIAL)
    load_sample(page, "brain_mri")  # the Load sample menu: the brain MRI, for the super-resolution panel
    browser.wait_for_state(page, "superres_volume_items", lambda v: any(i["title"] == "mni_t1_2mm" for i in v or []))
    browser.wait_for_state(page, "studio_panel", lambda v: v == ["superres"])  # its panel opened, Nodule closed
    page.locator(".medsynth-panel-superres").wait_for(state="visible", timeout=WAIT_MS)
    page.locator(".medsynth-panel-nodule").wait_for(state="hidden", timeout=WAIT_MS)
    assert "mni_t1_2mm" in page.locator(".medsynth-panel-superres .medsynth-input-volume").inner_text()
    assert browser.get_state(page, "studio_error") == ""
    browser.wait_for_pixels(page, AXIAL, axial, min_count=500)  # the views show the MRI now
    # one panel at a time, as a user clicks: opening one closes the other
    page.locator(".medsynth-studio-panel-volumes .v-expansion-panel-title").click()
    browser.wait_for_state(page, "studio_panel", lambda v: v == ["volumes"])
    page.locator(".medsynth-panel-superres").wait_for(state="hidden", timeout=WAIT_MS)
    assert page.locator(".medsynth-panel-volumes").is_visible()
    page.locator(".medsynth-studio-panel-volumes .v-expansion-panel-title").click()  # and closing leaves none
    browser.wait_for_state(page, "studio_panel", lambda v: v == [])
    # a panel's model card, shown in the page
    open_panel(page, "crossmod")
    link = page.locator(".medsynth-cards-crossmod .medsynth-card-fdg2cft")
    assert "simulated" in link.inner_text()
    link.click()
    text = page.locator(".medsynth-card-text")
    text.wait_for(state="visible", timeout=WAIT_MS)
    assert "Trained only on simulated PET" in text.inner_text()
    page.locator(".medsynth-card-close").click()
    text.wait_for(state="hidden", timeout=WAIT_MS)
    close_panel(page, "crossmod")


def click(page, panel_id: str, action: str) -> None:
    page.locator(f".medsynth-panel-{panel_id} .medsynth-action-{action}").click()


def move_slider(page, panel_id: str, param: str, steps: int) -> None:
    """Move a slider as a user does with the keyboard (arrow keys on its thumb)."""
    thumb = page.locator(f".medsynth-panel-{panel_id} .medsynth-param-{param} .v-slider-thumb")
    thumb.focus()
    for _ in range(abs(steps)):
        page.keyboard.press("ArrowRight" if steps > 0 else "ArrowLeft")


def settled_pixels(page, index: int, timeout_s: float = 20.0):
    """The view's pixels once two reads 0.4 s apart agree (the server has stopped pushing new frames)."""
    deadline = time.time() + timeout_s
    last = browser.view_pixels(page, index)
    while time.time() < deadline:
        page.wait_for_timeout(400)
        now = browser.view_pixels(page, index)
        if last is not None and now is not None and browser.changed_region(last, now, 8)["count"] == 0:
            return now
        last = now
    return last


def test_superres_thick_copy_live_spacing_and_apply(page, tmp_path):
    open_panel(page, "superres")
    grid = browser.wait_for_state(page, "superres_grid", lambda v: bool(v))
    assert "isotropic" in grid  # the sample MRI: the panel says why nothing is previewed
    if browser.get_state(page, "superres_method") != "bspline":
        page.locator(".medsynth-panel-superres .medsynth-param-method").click()
        page.get_by_role("option", name="bspline").click()
        browser.wait_for_state(page, "superres_method", lambda v: v == "bspline")
    sagittal = settled_pixels(page, SAGITTAL)

    click(page, "superres", "thick")  # demo input: 6 mm slices
    browser.wait_for_state(page, "superres_output", lambda v: "thick3k" in (v or ""))
    browser.wait_for_state(page, "superres_preview_n", lambda v: (v or 0) >= 1)
    assert "6 mm" in browser.get_state(page, "superres_grid")
    _s, _px, region = browser.wait_for_pixels(page, SAGITTAL, sagittal, min_count=500)  # blocky slices shown
    thick = settled_pixels(page, SAGITTAL)
    axial = settled_pixels(page, AXIAL)

    n = browser.get_state(page, "superres_preview_n")
    move_slider(page, "superres", "spacing", 10)  # 1 mm -> 1.5 mm, no button
    browser.wait_for_state(page, "superres_spacing", lambda v: abs(float(v) - 1.5) < 1e-6)
    browser.wait_for_state(page, "superres_preview_n", lambda v: v > n)
    browser.wait_for_state(page, "superres_grid", lambda v: "1.5 mm" in (v or ""))  # the last key's preview
    assert page.locator(".medsynth-superres-preview").inner_text().startswith("Preview:")
    assert browser.get_state(page, "superres_error") == ""

    # scrolling the axial view (its slice slider) between two thick slices moves the slab with it ...
    n = browser.get_state(page, "superres_preview_n")
    red = "Red__SliderState__value"  # trame-slicer's slice slider of the axial (red) view
    browser.set_state(page, red, float(browser.get_state(page, red)) + 3.0)  # half a thick slice
    browser.wait_for_state(page, "superres_preview_n", lambda v: v > n)
    # ... and the slab is the axial view's foreground: closing the panel gives the view back
    # (B-spline and Slicer's own trilinear display of the thick volume differ by a few grey levels, inside the head)
    with_preview = settled_pixels(page, AXIAL)
    close_panel(page, "superres")
    _s, _px, region = browser.wait_for_pixels(page, AXIAL, with_preview, min_count=500, threshold=4)
    assert 0.1 < region["box_fraction"][0] < 0.95, region
    no_preview = settled_pixels(page, AXIAL)
    open_panel(page, "superres")
    browser.wait_for_pixels(page, AXIAL, no_preview, min_count=500, threshold=4)

    click(page, "superres", "apply")  # long action: progress, then a new volume shown in the views
    out = browser.wait_for_state(page, "superres_output", lambda v: (v or "").endswith("bspline_1.5mm"), timeout_s=60)
    assert browser.get_state(page, "superres_busy") is False and browser.get_state(page, "superres_error") == ""
    _s, _px, region = browser.wait_for_pixels(page, SAGITTAL, thick, min_count=500, threshold=4)
    region = browser.changed_region(thick, settled_pixels(page, SAGITTAL), 4)
    assert region["box_fraction"][0] > 0.3, region  # across the head (1.5 mm slices), not a spot
    assert_chosen(page, "volumes_volume", out)  # the Volumes panel (closed) follows: the new active volume
    assert page.locator(".medsynth-panel-superres .medsynth-message").inner_text().startswith("Apply (")

    page.wait_for_timeout(500)  # the screenshot shows the module panel (the only one open)
    update = os.environ.get("MEDSYNTH_UPDATE_DOCS") == "1" or not SCREENSHOT.exists()
    target = SCREENSHOT if update else tmp_path / "studio.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target))
    assert target.stat().st_size > 20_000
    close_panel(page, "superres")


def test_nodule_live_diameter_add_undo_and_click_to_place(page, server):
    open_panel(page, "nodule")
    if not shape_model_installed():
        assert "not installed" in page.locator(".medsynth-panel-nodule .medsynth-model-note").inner_text()
        assert any("stand-in" in line for line in server.lines), server.output()
    axial = settled_pixels(page, AXIAL)
    click(page, "nodule", "phantom")
    browser.wait_for_state(page, "nodule_volume_items", lambda v: any(i["title"] == "chest_phantom" for i in v or []))
    browser.wait_for_pixels(page, AXIAL, axial, min_count=500)

    click(page, "nodule", "suggest")  # a point in the lung: the nodule appears at once (no button)
    browser.wait_for_state(page, "nodule_output", lambda v: v == "chest_phantom_nodules")
    browser.wait_for_state(page, "nodule_updates", lambda v: (v or 0) >= 1)
    assert browser.get_state(page, "nodule_error") == ""
    assert "updated in" in page.locator(".medsynth-nodule-status").inner_text()
    before = settled_pixels(page, AXIAL)

    updates = browser.get_state(page, "nodule_updates")
    move_slider(page, "nodule", "diameter_mm", 20)  # 10 mm -> 20 mm
    browser.wait_for_state(page, "nodule_diameter_mm", lambda v: abs(float(v) - 20.0) < 1e-6)
    browser.wait_for_state(page, "nodule_updates", lambda v: v > updates)
    _s, _px, region = browser.wait_for_pixels(page, AXIAL, before, min_count=30)
    after = settled_pixels(page, AXIAL)
    region = browser.changed_region(before, after)
    assert region["count"] >= 30, region
    assert max(region["box_fraction"]) < 0.35, region  # only around the nodule, not the whole view

    click(page, "nodule", "add")
    browser.wait_for_state(page, "nodule_kept", lambda v: v == 1)
    assert browser.get_state(page, "nodule_segmentation")
    with_segment = settled_pixels(page, AXIAL)
    r, g, b = (with_segment[..., c].astype(int) for c in range(3))
    assert ((r - b > 60) & (r - g > 60)).sum() > 10, "no segment colour in the axial view"
    click(page, "nodule", "undo")
    browser.wait_for_state(page, "nodule_kept", lambda v: v == 0)
    assert "Removed nodule 1" in page.locator(".medsynth-nodule-status").inner_text()

    # click to place: Slicer's markups placement in the axial view moves the centre
    centre = [browser.get_state(page, f"nodule_{k}") for k in "ras"]
    updates = browser.get_state(page, "nodule_updates")
    click(page, "nodule", "place")
    image = page.locator(browser.VIEW_IMAGES).nth(AXIAL)
    box = image.bounding_box()
    page.mouse.click(box["x"] + 0.35 * box["width"], box["y"] + 0.5 * box["height"])
    browser.wait_for_state(page, "nodule_updates", lambda v: v > updates)
    placed = [browser.get_state(page, f"nodule_{k}") for k in "ras"]
    assert placed != centre and placed[2] == pytest.approx(centre[2], abs=1.5)  # in the axial plane shown
    assert browser.get_state(page, "nodule_error") == ""
    close_panel(page, "nodule")


def test_live_preset_changes_the_views_without_a_button(page):
    open_panel(page, "volumes")
    before = browser.view_stats(page)
    page.locator(".medsynth-param-preset").click()
    page.get_by_role("option", name="ct-bone").click()
    waited = browser.wait_for_view_change(page, before, min_delta=2.0, timeout_s=20)
    assert browser.get_state(page, "volumes_preset") == "ct-bone"
    assert browser.get_state(page, "volumes_window") == pytest.approx(1000.0)
    assert waited < 20


def test_bad_upload_shows_an_error_not_a_blank_page(page, tmp_path):
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"this is not a NIfTI file\n" * 20)
    page.locator(".medsynth-upload input[type=file]").set_input_files(str(bad))
    error = page.locator(".medsynth-error-volumes")
    error.wait_for(state="visible", timeout=WAIT_MS)
    assert "cannot load 'broken.nii.gz'" in error.inner_text()
    # the page is still the studio: views still there and drawing
    assert len(browser.wait_for_views(page, count=4, timeout_s=10)) == 4


def test_upload_then_download_nifti(page, tmp_path):
    from medsynth import Volume, make_ijk_to_ras
    from medsynth.io import read_volume, write_volume

    k, j, i = np.meshgrid(np.arange(24), np.arange(28), np.arange(32), indexing="ij")
    array = ((i * 7 + j * 3 + k * 5) % 200).astype(np.int16)
    good = write_volume(Volume(array, make_ijk_to_ras((2.0, 2.0, 2.0), (0.0, 0.0, 0.0)), name="upload_test"),
                        tmp_path / "upload_test.nii.gz")
    before = browser.view_stats(page)
    page.locator(".medsynth-upload input[type=file]").set_input_files(str(good))
    deadline = time.time() + 30
    while time.time() < deadline and "upload_test" not in page.locator(".medsynth-input-volume").first.inner_text():
        page.wait_for_timeout(100)
    assert "upload_test" in page.locator(".medsynth-input-volume").first.inner_text()
    assert page.locator(".medsynth-error-volumes").count() == 0
    browser.wait_for_view_change(page, before, min_delta=2.0, timeout_s=20)

    with page.expect_download(timeout=WAIT_MS) as info:
        page.locator(".medsynth-action-save_nifti").click()
    download = info.value
    assert download.suggested_filename == "upload_test.nii.gz"
    path = tmp_path / "downloaded.nii.gz"
    download.save_as(str(path))
    volume = read_volume(path)
    assert volume.shape_ijk == (32, 28, 24)
    np.testing.assert_array_equal(volume.array, array)


# --------------------------------------------------------------------------- later module panels (after the Volumes
# tests: their outputs replace what the slice views show)
def test_cyto_generate_gallery_and_insert_a_cell(page):
    open_panel(page, "cyto")
    axial = settled_pixels(page, AXIAL)
    click(page, "cyto", "generate")  # long action: a gallery RGB volume shown in the slice views
    browser.wait_for_state(page, "cyto_output", lambda v: (v or "").startswith("CellGallery"), timeout_s=60)
    assert browser.get_state(page, "cyto_error") == ""
    _s, _px, region = browser.wait_for_pixels(page, AXIAL, axial, min_count=500)
    assert "row 1" in page.locator(".medsynth-cyto-result").inner_text()

    click(page, "cyto", "smear")  # a synthetic Pap-smear host image, chosen, with the point at its centre
    browser.wait_for_state(page, "cyto_image_items", lambda v: any(i["title"] == "smear" for i in v or []))
    browser.wait_for_state(page, "cyto_status", lambda v: (v or "").startswith("Ready"))
    before = settled_pixels(page, AXIAL)
    click(page, "cyto", "insert")
    browser.wait_for_state(page, "cyto_inserted", lambda v: v == 1)
    assert browser.get_state(page, "cyto_error") == ""
    assert "inserted into" in page.locator(".medsynth-cyto-result").inner_text()
    # the output node (smear + cell) replaces the smear in the views; its automatic display range differs from
    # the smear's, so the change is not confined to the cell: only that the axial view changed is checked
    browser.wait_for_pixels(page, AXIAL, before, min_count=30, threshold=20)
    assert browser.get_state(page, "cyto_output").startswith("smear")
    close_panel(page, "cyto")


def test_crossmod_simulated_fdg_synthetic_cft_and_binding_table(page):
    open_panel(page, "crossmod")
    assert browser.get_state(page, "crossmod_mr")  # the sample MNI T1 is the MR
    axial = settled_pixels(page, AXIAL)
    click(page, "crossmod", "simulate")  # demo PET: one simulated FDG subject
    browser.wait_for_state(page, "crossmod_fdg", lambda v: bool(v), timeout_s=60)
    browser.wait_for_pixels(page, AXIAL, axial, min_count=500)
    before = settled_pixels(page, AXIAL)

    click(page, "crossmod", "synthesize")  # long action: the synthetic CFT over the FDG
    out = browser.wait_for_state(page, "crossmod_output", lambda v: (v or "").endswith("synthetic_CFT"), timeout_s=90)
    assert browser.get_state(page, "crossmod_error") == "" and browser.get_state(page, "crossmod_busy") is False
    assert_chosen(page, "volumes_overlay", out)  # the Volumes panel (closed) follows: the CFT is the overlay
    _s, _px, region = browser.wait_for_pixels(page, AXIAL, before, min_count=200, threshold=10)

    click(page, "crossmod", "binding")  # long action: SBR table in the panel, regions in the views
    browser.wait_for_state(page, "crossmod_sbr_rows", lambda v: len(v or []) == 5, timeout_s=90)
    assert page.locator(".medsynth-crossmod-sbr-row").count() == 5
    assert "putamen" in page.locator(".medsynth-crossmod-sbr").inner_text()
    assert "Posterior putamen SBR" in page.locator(".medsynth-crossmod-status").inner_text()
    close_panel(page, "crossmod")
