"""Benchmark MedSynth Studio in headless Chromium: page load -> first views, and slider -> updated view.

    python benchmarks/bench_studio.py [--loads 3] [--slider PANEL:PARAM:V1,V2,...] [--no-modules] [--json] [--trace]

Starts ``medsynth studio --data`` on the sample MNI T1 and head CT (as the figures in docs/studio.md were
measured; without ``--data`` the studio opens on the chest CT phantom) on a free 127.0.0.1 port, opens the page in the
system Chromium through Playwright (nothing downloaded) and prints:

* page load -> views: from navigation start until all four views (axial, coronal, sagittal,
  3D) show a non-blank image; split into "app connected" (the panel is in the page),
  "first view image" and "all views drawn".  Each load is a fresh page (new browser context).
* slider -> updated view, for the Volumes window slider (default ``--slider``), the NoduleSynth diameter slider
  and the SliceSuperRes spacing slider, in one run: each value is set (what dragging the slider sends) once the
  axial view has been quiet for ``QUIET_S``, and the page itself logs every image the axial view then loads
  (its clock, at the image's 'load' event, with the image's pixels), until none came for ``QUIET_S``.  Two
  figures per slider: **first updated image** - the first image that shows the new content (over the region
  where the last image differs from the one before the change, closer to the new content than to the old:
  :func:`medsynth_studio.browser.frame_latency`; an image that differs by JPEG noise only does not count) -
  and **full-quality image**, the last one (trame-rca may send an interactive-quality image first and the
  still-quality one later).  ``--trace`` prints each image's time and ratio.
* NoduleSynth: chest phantom, a nodule at a suggested lung point; changed region: >= 10 pixels (every 2nd)
  changed by more than 20 grey levels; the logic's own time (``lastUpdateMilliseconds``, from the panel's
  status line) beside it.  Without the shape model ``nodule-shape-vae`` the studio gets the tests' sphere
  stand-in (printed): a diameter change does not decode a new shape either way (the decoded field is cached
  per shape), so the figure is the same path.
* SliceSuperRes: B-spline, a thick-slice copy of the sample MRI in automatic window/level, the axial view
  midway between two thick slices (on a thick slice a spacing change shows nothing); the slab changes the
  view by a few grey levels only, so the changed region is >= 8 blocks of 8x8 pixels whose mean moved by
  more than 1 grey level.  Also: until the server has computed the slab (the panel's counter in the page's
  state, polled every 10 ms).

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
#: A change is timed from the value set until the view has loaded no image for QUIET_S (the studio renders an
#: interactive-quality image at once, a still-quality one when no other change came for a while).
QUIET_S = 1.0



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


def _timed_change(page, index: int, key: str, value, threshold: float, min_count: int, on_set=None, block: int = 1):
    """Set ``key`` to ``value`` once view ``index`` is quiet and time, in the page, the images it then loads:
    :func:`browser.frame_latency` (None when nothing visible changed).  ``on_set(t)`` runs right after the set
    (``t``: perf_counter() just before it); what it returns is put in ``extra_s``."""
    browser.set_state_logged(page, index, None)  # settle: no image for a while (still render of the last change)
    browser.wait_frames_quiet(page, QUIET_S, need_frame=False)
    t_set = time.perf_counter()
    if not browser.set_state_logged(page, index, key, value):
        return None
    extra = on_set(t_set) if on_set is not None else None
    if not browser.wait_frames_quiet(page, QUIET_S):
        return None
    out = browser.frame_latency(browser.read_frame_log(page), threshold=threshold, min_count=min_count, block=block)
    if out is not None and extra is not None:
        out["extra_s"] = extra
    return out


def _frames_summary(rows: List[dict]) -> dict:
    first = [r["first_ms"] / 1000.0 for r in rows]
    full = [r["full_ms"] / 1000.0 for r in rows]
    return {"first": _summary(first), "full": _summary(full), "trace": [r["trace"] for r in rows]}


def measure_slider(page, spec: str) -> dict:
    """A live slider: first updated / full-quality image of the axial view after each value (page's clock)."""
    panel, param, values = spec.split(":")
    key = f"{panel}_{param}"
    if browser.get_state(page, key) is None:
        return {"slider": spec, "skipped": f"no state key {key} (panel not in this studio)"}
    rows = []
    for value in [float(v) for v in values.split(",")]:
        r = _timed_change(page, AXIAL, key, value, threshold=20, min_count=50)
        if r is not None:  # else this value did not change the view visibly (e.g. already shown)
            rows.append(r)
    if not rows:
        return {"slider": spec, "skipped": "no value changed the axial view"}
    return {"slider": spec, **_frames_summary(rows)}


def _open_panel(page, panel_id: str) -> None:
    if panel_id not in (browser.get_state(page, "studio_panel") or []):  # one panel open at a time
        page.locator(f".medsynth-studio-panel-{panel_id} .v-expansion-panel-title").click()
    browser.wait_for_state(page, "studio_panel", lambda v: panel_id in (v or []), timeout_s=15)


def _close_panel(page, panel_id: str) -> None:
    if panel_id in (browser.get_state(page, "studio_panel") or []):
        page.locator(f".medsynth-studio-panel-{panel_id} .v-expansion-panel-title").click()
    browser.wait_for_state(page, "studio_panel", lambda v: panel_id not in (v or []), timeout_s=15)


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
    rows, logic = [], []
    for value in NODULE_DIAMETERS:
        n = browser.get_state(page, "nodule_updates")
        r = _timed_change(page, AXIAL, "nodule_diameter_mm", value, threshold=20, min_count=10)
        if r is None:
            continue
        rows.append(r)
        browser.wait_for_state(page, "nodule_updates", lambda v: v > n, timeout_s=15)
        found = re.search(r"updated in (\d+) ms", browser.get_state(page, "nodule_status") or "")
        if found:
            logic.append(float(found.group(1)) / 1000.0)
    _close_panel(page, "nodule")
    if not rows:
        return {"skipped": "no diameter change was seen in the axial view"}
    out = _frames_summary(rows)
    if logic:
        out["logic"] = _summary(logic)
    return out


def measure_superres(page, method: str = "bspline") -> dict:
    """SliceSuperRes: spacing slider -> slab preview computed (state) and axial view updated (pixels), with the
    preview ``method`` (bspline, or sainr: the learned model; its encoder features are computed on the first
    change and reused, so the first change is not timed with the others)."""
    if browser.get_state(page, "superres_spacing") is None:
        return {"skipped": "no SliceSuperRes panel in this studio"}
    _open_panel(page, "superres")
    browser.set_state(page, "superres_method", method)
    page.locator(".medsynth-panel-superres .medsynth-action-thick").click()
    browser.wait_for_state(page, "superres_preview_n", lambda v: (v or 0) >= 1, timeout_s=30)
    if browser.get_state(page, "volumes_preset") is not None:  # automatic window/level on the thick copy (the
        browser.set_state(page, "volumes_preset", "custom")      # window slider figure left a wide window, under
        page.wait_for_timeout(200)                               # which the slab's change is hardly visible)
        browser.set_state(page, "volumes_preset", "auto")
        page.wait_for_timeout(500)
    red = "Red__SliderState__value"  # the axial view's slice slider: go between two thick slices
    n = browser.get_state(page, "superres_preview_n")
    browser.set_state(page, red, float(browser.get_state(page, red)) + 1.5)
    browser.wait_for_state(page, "superres_preview_n", lambda v: v > n)
    computed, rows = [], []
    for value in SUPERRES_SPACINGS:
        n = browser.get_state(page, "superres_preview_n")

        def on_set(t0):  # the slab computed: the panel's counter in the page's state (polled every 10 ms)
            browser.wait_for_state(page, "superres_preview_n", lambda v: v > n, timeout_s=15, poll_ms=10)
            return time.perf_counter() - t0

        r = _timed_change(page, AXIAL, "superres_spacing", value, threshold=1.0, min_count=8, on_set=on_set, block=4)
        if r is None:
            continue  # this spacing put a slab plane on the view's plane: nothing visible changed
        computed.append(r["extra_s"])
        rows.append(r)
    _close_panel(page, "superres")
    if not rows:
        return {"skipped": "no spacing change was seen in the axial view"}
    return {"computed": _summary(computed), **_frames_summary(rows)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loads", type=int, default=3, help="page loads to time (fresh page each)")
    parser.add_argument("--slider", action="append", help="PANEL:PARAM:V1,V2,... (repeatable; default: SLIDERS)")
    parser.add_argument("--no-modules", action="store_true", help="skip the NoduleSynth and SliceSuperRes figures")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--superres-method", default="bspline", choices=("bspline", "sainr"),
                        help="preview method of the SliceSuperRes figure (default bspline)")
    parser.add_argument("--trace", action="store_true", help="print every image each change loaded: its time and "
                        "how far it is from the new content relative to the old (< 0.5: shows the new content)")
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
                result["superres"] = measure_superres(page, args.superres_method)
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
    def frames(r: dict) -> str:
        first, full = r["first"], r["full"]
        return (f"first updated image median {first['median_ms']:.0f} ms (max {first['max_ms']:.0f} ms), "
                f"full-quality image median {full['median_ms']:.0f} ms (max {full['max_ms']:.0f} ms), n={first['n']}")

    for s in result["sliders"]:
        if "skipped" in s:
            print(f"slider {s['slider']}: skipped ({s['skipped']})")
        else:
            print(f"slider {s['slider']} -> axial view: {frames(s)}")
    sr = result.get("superres")
    if sr is not None:
        if "skipped" in sr:
            print(f"superres spacing slider: skipped ({sr['skipped']})")
        else:
            print(f"superres spacing slider -> axial view: {frames(sr)}; slab computed (page state, polled) median "
                  f"{sr['computed']['median_ms']:.0f} ms (max {sr['computed']['max_ms']:.0f} ms)")
    nd = result.get("nodule")
    if nd is not None:
        if "skipped" in nd:
            print(f"nodule diameter slider: skipped ({nd['skipped']})")
        else:
            line = f"nodule diameter slider -> axial view: {frames(nd)}"
            if "logic" in nd:
                line += f"; NoduleSynthLogic.update median {nd['logic']['median_ms']:.0f} ms"
            print(line + f"; shape model: {result['shape_model']}")
    if args.trace:
        for name, r in [(s["slider"], s) for s in result["sliders"]] + [("superres", sr), ("nodule", nd)]:
            for n, trace in enumerate((r or {}).get("trace", [])):
                print(f"trace {name} #{n}: " + ", ".join(f"{t:.0f} ms {q:.2f}" for t, q in trace))
    return 0


if __name__ == "__main__":
    sys.exit(main())
