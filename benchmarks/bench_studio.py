"""Benchmark MedSynth Studio in headless Chromium: page load -> first views, and slider -> updated view.

    python benchmarks/bench_studio.py [--loads 3] [--slider PANEL:PARAM:V1,V2,...] [--json]

Starts ``medsynth studio`` (sample data) on a free 127.0.0.1 port, opens the page in the
system Chromium through Playwright (nothing downloaded) and prints:

* page load -> views: from navigation start until all four views (axial, coronal, sagittal,
  3D) show a non-blank image; split into "app connected" (the panel is in the page),
  "first view image" and "all views drawn".  Each load is a fresh page (new browser context).
* slider -> view: from setting a live slider's state value (what dragging it sends) until a
  view's pixels change; median over the values.  The default is the Volumes panel's window
  slider.  HOOK: when the NoduleSynth panel lands, add its slider to SLIDERS below (e.g.
  ``"nodule:diameter:6,12,18,24"``) - it is measured the same way.

Run on an idle machine; the numbers depend on the CPU (software OpenGL renders the views).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "MedSynthExtension"))

from medsynth_studio import browser  # noqa: E402

#: Live sliders measured by default, as PANEL:PARAM:VALUES.  Add the nodule slider here once it exists.
SLIDERS = [
    "volumes:window:60,120,240,480,960",
    # "nodule:diameter:6,12,18,24",   # <- NoduleSynth panel (issue: slider change -> updated view)
]


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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loads", type=int, default=3, help="page loads to time (fresh page each)")
    parser.add_argument("--slider", action="append", help="PANEL:PARAM:V1,V2,... (repeatable; default: SLIDERS)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    missing = browser.missing_requirements()
    if missing:
        print(f"cannot run: {missing}", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    result = {"loads": [], "sliders": []}
    with browser.StudioServer(start_timeout=180) as server, sync_playwright() as pw:
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
