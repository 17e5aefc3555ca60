"""Benchmark MedSynth Studio in headless Chromium: page load -> first views, and slider -> updated view.

    python benchmarks/bench_studio.py [--loads 3] [--slider PANEL:PARAM:V1,V2,...] [--no-modules] [--json]

Starts ``medsynth studio --data`` on the sample MNI T1 and head CT (as the figures in docs/studio.md were
measured; without ``--data`` the studio opens on the chest CT phantom) on a free 127.0.0.1 port, opens the page in the
system Chromium through Playwright (nothing downloaded) and prints:

* page load -> views: from navigation start until all four views (axial, coronal, sagittal,
  3D) show a non-blank image; split into "app connected" (the panel is in the page),
  "first view image" and "all views drawn".  Each load is a fresh page (new browser context).
* slider -> view (generic): from setting a live slider's state value (what dragging it sends) until
  a view's mean/std changes; median over the values (default: the Volumes panel's window slider).
* NoduleSynth diameter slider -> updated axial view: on the chest phantom with a nodule at a
  suggested lung point, from setting ``nodule_diameter_mm`` until the axial view's pixels change
  (>= 10 pixels by more than 20 grey levels); the logic's own time (``lastUpdateMilliseconds``, from
  the panel's status line) beside it.  Without the shape model ``nodule-shape-vae`` the studio gets
  the tests' sphere stand-in (printed): a diameter change does not decode a new shape either way
  (the decoded field is cached per shape), so the figure is the same path.
* SliceSuperRes spacing slider -> preview: on a thick-slice copy of the sample MRI (B-spline), with
  the axial view between two thick slices, from setting ``superres_spacing`` until the server has
  computed the slab (the panel's preview counter in the page) and until the axial view's pixels change.

Run on an idle machine; the numbers depend on the CPU (software OpenGL renders the views).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import List

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "MedSynthExtension"))

from medsynth_studio import browser  # noqa: E402

#: Live sliders measured by the generic view-statistics method, as PANEL:PARAM:VALUES.
SLIDERS = [
    "volumes:window:60,120,240,480,960",
]
NODULE_DIAMETERS = (14.0, 18.0, 22.0, 26.0, 12.0, 16.0, 20.0, 24.0)
SUPERRES_SPACINGS = (1.5, 2.0, 2.5, 3.0, 1.25, 1.75, 2.25, 2.75)
AXIAL = browser.view_index("axial")


def measure_load(page, url: str, timeout_s: float = 90.0) -> dict:
    t0 = time.perf_counter()
    page.goto(url, wait_until="commit", timeout=int(timeout_s * 1000))
    page.locator(".medsynth-panel").first.wait_for(state="attached", timeout=int(timeout_s * 1000))
    connected = time.perf_counter() - t0
    first = None
    deadline = t0 + timeout_s
    while time.perf_counter() < deadline:
        stats = browser.view_stats(page)
        drawn = [s for s in stats if s["w"] > 0 and s["std"] > 2.0]
        if drawn and first is None:
            first = time.perf_counter() - t0
        if len(drawn) >= 4:
            return {"connected_s": connected, "first_view_s": first, "views_s": time.perf_counter() - t0}
        page.wait_for_timeout(20)
    raise TimeoutError(f"views not drawn within {timeout_s} s")


def measure_slider(page, spec: str) -> dict:
    panel, param, values = spec.split(":")
    key = f"{panel}_{param}"
    if browser.get_state(page, key) is None:
        return {"slider": spec, "skipped": f"no state key {key} (panel not in this studio)"}
    times = []
    for value in [float(v) for v in values.split(",")]:
        before = browser.view_stats(page)
        t0 = time.perf_counter()
        browser.set_state(page, key, value)
        try:
            browser.wait_for_view_change(page, before, min_delta=0.5, timeout_s=15)
        except TimeoutError:
            continue  # this value did not change the pixels visibly (e.g. already shown)
        times.append(time.perf_counter() - t0)
    if not times:
        return {"slider": spec, "skipped": "no value changed the views"}
    return {"slider": spec, "n": len(times), "median_ms": 1000 * statistics.median(times),
            "max_ms": 1000 * max(times)}


def _open_panel(page, panel_id: str) -> None:
    if panel_id not in (browser.get_state(page, "studio_panel") or []):  # one panel open at a time
        page.locator(f".medsynth-studio-panel-{panel_id} .v-expansion-panel-title").click()
    browser.wait_for_state(page, "studio_panel", lambda v: panel_id in (v or []), timeout_s=15)


def _close_panel(page, panel_id: str) -> None:
    if panel_id in (browser.get_state(page, "studio_panel") or []):
        page.locator(f".medsynth-studio-panel-{panel_id} .v-expansion-panel-title").click()
    browser.wait_for_state(page, "studio_panel", lambda v: panel_id not in (v or []), timeout_s=15)


def _settled(page, index: int, timeout_s: float = 20.0):
    deadline = time.perf_counter() + timeout_s
    last = browser.view_pixels(page, index)
    while time.perf_counter() < deadline:
        page.wait_for_timeout(300)
        now = browser.view_pixels(page, index)
        if browser.changed_region(last, now, 8)["count"] == 0:
            return now
        last = now
    return last


def _summary(times: List[float]) -> dict:
    return {"n": len(times), "median_ms": 1000 * statistics.median(times), "max_ms": 1000 * max(times)}


def measure_nodule(page) -> dict:
    """NoduleSynth: diameter slider -> updated axial view (chest phantom, suggested lung point)."""
    import re

    if browser.get_state(page, "nodule_diameter_mm") is None:
        return {"skipped": "no NoduleSynth panel in this studio"}
    _open_panel(page, "nodule")
    page.locator(".medsynth-panel-nodule .medsynth-action-phantom").click()
    browser.wait_for_state(page, "nodule_volume_items", lambda v: any(i["title"] == "chest_phantom" for i in v or []))
    page.locator(".medsynth-panel-nodule .medsynth-action-suggest").click()
    try:
        browser.wait_for_state(page, "nodule_output", lambda v: bool(v), timeout_s=30)
    except TimeoutError:
        return {"skipped": f"no nodule made: {browser.get_state(page, 'nodule_error')}"}
    view, logic = [], []
    for value in NODULE_DIAMETERS:
        before = _settled(page, AXIAL)
        n = browser.get_state(page, "nodule_updates")
        t0 = time.perf_counter()
        browser.set_state(page, "nodule_diameter_mm", value)
        try:
            browser.wait_for_pixels(page, AXIAL, before, min_count=10, threshold=20, timeout_s=15)
        except TimeoutError:
            continue
        view.append(time.perf_counter() - t0)
        browser.wait_for_state(page, "nodule_updates", lambda v: v > n, timeout_s=15)
        found = re.search(r"updated in (\d+) ms", browser.get_state(page, "nodule_status") or "")
        if found:
            logic.append(float(found.group(1)) / 1000.0)
    _close_panel(page, "nodule")
    if not view:
        return {"skipped": "no diameter change was seen in the axial view"}
    out = {"view": _summary(view)}
    if logic:
        out["logic"] = _summary(logic)
    return out


def measure_superres(page) -> dict:
    """SliceSuperRes: spacing slider -> slab preview computed (state) and axial view updated (pixels)."""
    if browser.get_state(page, "superres_spacing") is None:
        return {"skipped": "no SliceSuperRes panel in this studio"}
    _open_panel(page, "superres")
    browser.set_state(page, "superres_method", "bspline")
    page.locator(".medsynth-panel-superres .medsynth-action-thick").click()
    browser.wait_for_state(page, "superres_preview_n", lambda v: (v or 0) >= 1, timeout_s=30)
    red = "Red__SliderState__value"  # the axial view's slice slider: go between two thick slices
    n = browser.get_state(page, "superres_preview_n")
    browser.set_state(page, red, float(browser.get_state(page, red)) + 3.0)
    browser.wait_for_state(page, "superres_preview_n", lambda v: v > n)
    computed, view = [], []
    for value in SUPERRES_SPACINGS:
        before = _settled(page, AXIAL)
        n = browser.get_state(page, "superres_preview_n")
        t0 = time.perf_counter()
        browser.set_state(page, "superres_spacing", value)
        browser.wait_for_state(page, "superres_preview_n", lambda v: v > n, timeout_s=15)
        computed.append(time.perf_counter() - t0)
        try:
            browser.wait_for_pixels(page, AXIAL, before, min_count=50, threshold=2, timeout_s=5)
            view.append(time.perf_counter() - t0)
        except TimeoutError:
            pass  # this spacing put a slab plane on the view's plane: nothing visible changed
    _close_panel(page, "superres")
    out = {"computed": _summary(computed)}
    if view:
        out["view"] = _summary(view)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loads", type=int, default=3, help="page loads to time (fresh page each)")
    parser.add_argument("--slider", action="append", help="PANEL:PARAM:V1,V2,... (repeatable; default: SLIDERS)")
    parser.add_argument("--no-modules", action="store_true", help="skip the NoduleSynth and SliceSuperRes figures")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    missing = browser.missing_requirements()
    if missing:
        print(f"cannot run: {missing}", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    import tempfile

    from medsynth.runtime import list_models

    result = {"loads": [], "sliders": [], "shape_model": "installed"}
    env = {}
    stand_in_dir = tempfile.TemporaryDirectory(prefix="medsynth-bench-")
    if "nodule-shape-vae" not in list_models():
        env = browser.shape_stand_in_env(stand_in_dir.name)
        result["shape_model"] = "sphere stand-in (nodule-shape-vae not installed)"
    from medsynth.sample_data import sample_path

    data = [sample_path("brain_mri"), sample_path("head_ct")]
    with stand_in_dir, browser.StudioServer(start_timeout=180, env=env, data=data) as server, sync_playwright() as pw:
        result["server_start_s"] = server.started_s
        chromium = browser.launch_chromium(pw)
        try:
            for _ in range(args.loads):
                context = chromium.new_context(viewport={"width": 1400, "height": 900})
                page = context.new_page()
                result["loads"].append(measure_load(page, server.url))
                if _ < args.loads - 1:
                    context.close()
            for spec in args.slider or SLIDERS:
                result["sliders"].append(measure_slider(page, spec))
            if not args.no_modules:
                result["superres"] = measure_superres(page)
                result["nodule"] = measure_nodule(page)
        finally:
            chromium.close()
    views = [r["views_s"] for r in result["loads"]]
    result["views_median_s"] = statistics.median(views)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"server start (process -> address printed): {result['server_start_s']:.1f} s")
    for n, r in enumerate(result["loads"], 1):
        print(f"load {n}: app connected {r['connected_s']:.2f} s, first view {r['first_view_s']:.2f} s, "
              f"all 4 views {r['views_s']:.2f} s")
    print(f"page load -> views (median of {len(views)}): {result['views_median_s']:.2f} s")
    for s in result["sliders"]:
        if "skipped" in s:
            print(f"slider {s['slider']}: skipped ({s['skipped']})")
        else:
            print(f"slider {s['slider']}: change -> updated view median {s['median_ms']:.0f} ms "
                  f"(max {s['max_ms']:.0f} ms, n={s['n']})")
    sr = result.get("superres")
    if sr is not None:
        if "skipped" in sr:
            print(f"superres spacing slider: skipped ({sr['skipped']})")
        else:
            line = (f"superres spacing slider -> slab preview computed (in the page's state) median "
                    f"{sr['computed']['median_ms']:.0f} ms (max {sr['computed']['max_ms']:.0f} ms, n={sr['computed']['n']})")
            if "view" in sr:
                line += f"; -> axial view updated median {sr['view']['median_ms']:.0f} ms (n={sr['view']['n']})"
            print(line)
    nd = result.get("nodule")
    if nd is not None:
        if "skipped" in nd:
            print(f"nodule diameter slider: skipped ({nd['skipped']})")
        else:
            line = (f"nodule diameter slider -> updated axial view median {nd['view']['median_ms']:.0f} ms "
                    f"(max {nd['view']['max_ms']:.0f} ms, n={nd['view']['n']})")
            if "logic" in nd:
                line += f"; NoduleSynthLogic.update median {nd['logic']['median_ms']:.0f} ms"
            print(line + f"; shape model: {result['shape_model']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
