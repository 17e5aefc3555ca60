"""MedSynth Studio end to end in headless Chromium (system Chromium driven by Playwright's Python package).

Starts ``medsynth studio`` on 127.0.0.1 (a free port) as a subprocess, waits for Slicer's
views in the page, checks they show pixels, changes a live control, uploads a good and a
bad file, downloads a volume; the server is stopped by its process id.  Every wait is
bounded.  The page screenshot goes to docs/studio.png when that file is missing or
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


@pytest.fixture(scope="module")
def server():
    with browser.StudioServer(start_timeout=120) as s:
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


def test_views_show_pixels_and_screenshot(page, server, tmp_path):
    stats = browser.view_stats(page)
    assert len(stats) == 4, stats  # Quad View: axial, coronal, sagittal, 3D
    for s in stats:
        assert s["w"] > 50 and s["h"] > 50, s
        assert s["std"] > 5.0, f"a view is blank: {s}"
    assert page.locator(".medsynth-panel-volumes").is_visible()
    assert "mni_t1_2mm" in page.locator(".medsynth-input-volume").inner_text()
    update = os.environ.get("MEDSYNTH_UPDATE_DOCS") == "1" or not SCREENSHOT.exists()
    target = SCREENSHOT if update else tmp_path / "studio.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target))
    assert target.stat().st_size > 20_000
    print(f"page load to views: {page.load_s:.2f} s; server start {server.started_s:.1f} s; screenshot {target}")


def test_live_preset_changes_the_views_without_a_button(page):
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
    while time.time() < deadline and "upload_test" not in page.locator(".medsynth-input-volume").inner_text():
        page.wait_for_timeout(100)
    assert "upload_test" in page.locator(".medsynth-input-volume").inner_text()
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
