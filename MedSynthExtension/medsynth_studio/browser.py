"""Drive ``medsynth studio`` in headless Chromium (Playwright) - shared by the browser tests and the benchmark.

Nothing is downloaded: Playwright's Python package is pointed at the system Chromium
(Debian ``chromium``, ``/usr/bin/chromium``); ``playwright install`` is never needed.
The server runs as a subprocess on 127.0.0.1 and is stopped by its process id.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

CHROMIUM = os.environ.get("MEDSYNTH_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: Selector of the views' images (trame-rca image display areas inside the studio's layout grid).
VIEW_IMAGES = ".medsynth-views img.image-display-area"

# Statistics of every view image, drawn on a canvas (blob: images are same-origin, so readable).
_VIEW_STATS_JS = """
(sel) => Array.from(document.querySelectorAll(sel)).map((img) => {
  const w = img.naturalWidth, h = img.naturalHeight;
  if (!img.complete || !w || !h) return {w: 0, h: 0, mean: 0, std: 0};
  const c = document.createElement('canvas'); c.width = w; c.height = h;
  const ctx = c.getContext('2d'); ctx.drawImage(img, 0, 0);
  const d = ctx.getImageData(0, 0, w, h).data;
  let s = 0, s2 = 0, n = 0;
  for (let i = 0; i < d.length; i += 16) { const g = (d[i] + d[i + 1] + d[i + 2]) / 3; s += g; s2 += g * g; n++; }
  const mean = s / n;
  return {w: w, h: h, mean: mean, std: Math.sqrt(Math.max(s2 / n - mean * mean, 0)), src: img.src};
})
"""


# The RGB pixels of one view image, every ``step``-th pixel in x and y, base64 (read back with numpy).
_VIEW_PIXELS_JS = """
([sel, index, step]) => {
  const img = document.querySelectorAll(sel)[index];
  if (!img || !img.complete || !img.naturalWidth) return null;
  const w = img.naturalWidth, h = img.naturalHeight;
  const c = document.createElement('canvas'); c.width = w; c.height = h;
  const ctx = c.getContext('2d'); ctx.drawImage(img, 0, 0);
  const d = ctx.getImageData(0, 0, w, h).data;
  const ws = Math.ceil(w / step), hs = Math.ceil(h / step);
  const out = new Uint8Array(ws * hs * 3);
  let n = 0;
  for (let y = 0; y < h; y += step) for (let x = 0; x < w; x += step) {
    const i = 4 * (y * w + x); out[n++] = d[i]; out[n++] = d[i + 1]; out[n++] = d[i + 2];
  }
  let bin = '';
  for (let i = 0; i < out.length; i += 0x8000) bin += String.fromCharCode.apply(null, out.subarray(i, i + 0x8000));
  return {w: ws, h: hs, b64: btoa(bin)};
}
"""

#: Views of trame-slicer's "Quad View" in page order (its LayoutManager.default_grid_configuration():
#: a column coronal over sagittal, then a column 3D over axial).
QUAD_VIEW_ORDER = ("coronal", "sagittal", "3d", "axial")


def view_index(name: str, layout: Sequence[str] = QUAD_VIEW_ORDER) -> int:
    """Index of a view ("axial", "coronal", "sagittal", "3d") among the page's view images."""
    return list(layout).index(name)


# For the browser tests and the benchmark while the nodule shape model is not installed: a stand-in
# (a sphere's distance field) put into the studio process by a sitecustomize module.  It says so on
# its first line of output; it does nothing when the real model is installed.
SHAPE_STAND_IN = """
try:
    import types
    import numpy as np
    import medsynth.nodule.shape as _shape
    from medsynth.runtime import list_models as _list_models
    if "nodule-shape-vae" not in _list_models():
        class _Sphere:
            unit_voxels, sdf_clip, grid = 16.0, 8.0, 32
            entry = types.SimpleNamespace(id="sphere-stand-in", version="0")
            def __init__(self):
                g = np.arange(32) - 15.5
                r = np.sqrt(g[:, None, None] ** 2 + g[None, :, None] ** 2 + g[None, None, :] ** 2)
                self._f = np.clip((r - 8.0) / 8.0, -1.0, 1.0).astype(np.float32)
            def field(self, *args, **kwargs):
                return self._f
        _one = _Sphere()
        _shape.default_shape_model = lambda: _one
        print("MedSynth test: nodule shape model stand-in (sphere)", flush=True)
except Exception as exc:
    print("MedSynth test: stand-in not loaded:", exc, flush=True)
"""


def shape_stand_in_env(folder: os.PathLike) -> Dict[str, str]:
    """Environment for :class:`StudioServer` that loads :data:`SHAPE_STAND_IN` (written into ``folder``)."""
    (Path(folder) / "sitecustomize.py").write_text(SHAPE_STAND_IN)
    return {"PYTHONPATH": os.pathsep.join(p for p in (str(folder), os.environ.get("PYTHONPATH", "")) if p)}


def missing_requirements() -> Optional[str]:
    """Why the browser tests cannot run here, or None."""
    if not Path(CHROMIUM).exists():
        return f"no Chromium at {CHROMIUM} (Debian: apt-get install -y chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright's Python package is missing (pip install playwright; never 'playwright install')"
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StudioServer:
    """``medsynth studio`` in a subprocess; ``with StudioServer() as server: server.url``.

    Stopped by its process id (SIGTERM, then SIGKILL), even when the test fails.
    """

    def __init__(self, port: Optional[int] = None, data: Sequence[os.PathLike] = (), start_timeout: float = 120.0,
                 env: Optional[Dict[str, str]] = None, args: Sequence[str] = ()) -> None:
        self.port = port or free_port()
        self.data = [str(p) for p in data]
        self.args = [str(a) for a in args]
        self.printed_url = ""
        self.start_timeout = start_timeout
        self.env = dict(os.environ, **(env or {}))
        self.env.setdefault("PYTHONUNBUFFERED", "1")
        self.proc: Optional[subprocess.Popen] = None
        self.lines: List[str] = []
        self.started_s = 0.0
        self._ready = threading.Event()

    @property
    def url(self) -> str:
        """The address the studio printed (with this launch's token)."""
        return self.printed_url or self.bare_url

    @property
    def bare_url(self) -> str:
        """The address without the token."""
        return f"http://127.0.0.1:{self.port}/"

    @property
    def token(self) -> str:
        from urllib.parse import parse_qs, urlsplit

        return parse_qs(urlsplit(self.url).query).get("secret", [""])[0]

    def start(self) -> "StudioServer":
        cmd = [sys.executable, "-m", "medsynth", "studio", "--host", "127.0.0.1", "--port", str(self.port)]
        cmd += self.args
        if self.data:
            cmd += ["--data"] + self.data
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=self.env,
            start_new_session=True,
        )
        threading.Thread(target=self._read, daemon=True).start()
        if not self._ready.wait(self.start_timeout):
            self.stop()
            raise RuntimeError(f"medsynth studio did not start within {self.start_timeout:.0f} s:\n{self.output()}")
        if self.proc.poll() is not None:
            raise RuntimeError(f"medsynth studio exited with {self.proc.returncode}:\n{self.output()}")
        self.started_s = time.perf_counter() - t0
        return self

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            if "running at http" in line:
                self.printed_url = line.split("running at ", 1)[1].split()[0]
                self._ready.set()
        self._ready.set()  # exited: let start() report it

    def output(self, last: int = 40) -> str:
        return "\n".join(self.lines[-last:])

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        pid = self.proc.pid
        try:
            os.kill(pid, signal.SIGTERM)
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        except ProcessLookupError:
            pass

    def __enter__(self) -> "StudioServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def launch_chromium(playwright):
    """The system Chromium, headless, through Playwright (no browser download)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)


def view_stats(page) -> List[dict]:
    """Per view image: size, mean and standard deviation of its grey values."""
    return page.evaluate(_VIEW_STATS_JS, VIEW_IMAGES)


def wait_for_views(page, count: int = 4, min_std: float = 2.0, timeout_s: float = 60.0) -> List[dict]:
    """Wait until ``count`` views show an image that is not blank (grey-value std above ``min_std``)."""
    deadline = time.perf_counter() + timeout_s
    stats: List[dict] = []
    while time.perf_counter() < deadline:
        stats = view_stats(page)
        if len(stats) >= count and sum(1 for s in stats if s["w"] > 0 and s["std"] > min_std) >= count:
            return stats
        page.wait_for_timeout(100)
    raise TimeoutError(f"views not shown within {timeout_s:.0f} s; last view stats: {stats}")


def open_studio(page, url: str, count: int = 4, timeout_s: float = 60.0) -> float:
    """Load the page and wait for the views; returns seconds from navigation start to the views shown."""
    t0 = time.perf_counter()
    page.goto(url, wait_until="commit", timeout=int(timeout_s * 1000))
    wait_for_views(page, count=count, timeout_s=timeout_s)
    return time.perf_counter() - t0


def set_state(page, key: str, value) -> None:
    """Change a trame state value as a control would (the server's @state.change listeners run)."""
    page.evaluate("([k, v]) => window.trame.state.set(k, v)", [key, value])


def get_state(page, key: str):
    return page.evaluate("(k) => window.trame.state.get(k)", key)


def _changed(a: dict, b: dict, min_delta: float) -> bool:
    return abs(a["mean"] - b["mean"]) > min_delta or abs(a["std"] - b["std"]) > min_delta


def view_pixels(page, index: int, step: int = 2):
    """The RGB pixels of view ``index`` (every ``step``-th pixel) as a uint8 array (rows, columns, 3), or None."""
    import base64

    import numpy as np

    out = page.evaluate(_VIEW_PIXELS_JS, [VIEW_IMAGES, index, step])
    if not out:
        return None
    return np.frombuffer(base64.b64decode(out["b64"]), np.uint8).reshape(out["h"], out["w"], 3)


def changed_region(before, after, threshold: float = 30.0) -> dict:
    """Where two view pixel arrays differ by more than ``threshold`` (grey levels, any channel).

    ``{"count", "fraction", "box": (row0, col0, row1, col1) or None, "box_fraction": (rows, cols)}``:
    how many pixels changed and the bounding box of the change as a fraction of the view.
    """
    import numpy as np

    if before is None or after is None or before.shape != after.shape:
        return {"count": -1, "fraction": 1.0, "box": None, "box_fraction": (1.0, 1.0)}
    diff = np.abs(after.astype(np.int16) - before.astype(np.int16)).max(axis=2) > threshold
    where = np.argwhere(diff)
    if len(where) == 0:
        return {"count": 0, "fraction": 0.0, "box": None, "box_fraction": (0.0, 0.0)}
    (r0, c0), (r1, c1) = where.min(axis=0), where.max(axis=0)
    h, w = diff.shape
    return {"count": int(len(where)), "fraction": float(len(where)) / diff.size, "box": (int(r0), int(c0), int(r1), int(c1)),
            "box_fraction": ((r1 - r0 + 1) / h, (c1 - c0 + 1) / w)}


def wait_for_pixels(page, index: int, before, min_count: int = 20, threshold: float = 30.0, step: int = 2,
                    timeout_s: float = 20.0):
    """Wait until at least ``min_count`` pixels of view ``index`` differ from ``before``; returns
    (seconds waited, the new pixels, :func:`changed_region`)."""
    t0 = time.perf_counter()
    region: dict = {}
    while time.perf_counter() - t0 < timeout_s:
        now = view_pixels(page, index, step)
        region = changed_region(before, now, threshold)
        if region["count"] >= min_count:
            return time.perf_counter() - t0, now, region
        page.wait_for_timeout(15)
    raise TimeoutError(f"view {index} did not change within {timeout_s:.0f} s (last: {region})")


def wait_for_state(page, key: str, predicate, timeout_s: float = 30.0, poll_ms: int = 50):
    """Poll a trame state value (every ``poll_ms``) until ``predicate(value)`` holds; returns the value."""
    t0 = time.perf_counter()
    value = None
    while time.perf_counter() - t0 < timeout_s:
        value = get_state(page, key)
        if predicate(value):
            return value
        page.wait_for_timeout(poll_ms)
    raise TimeoutError(f"state {key} = {value!r} after {timeout_s:.0f} s")


def wait_for_view_change(page, before: List[dict], index: Optional[int] = None, min_delta: float = 1.0,
                         timeout_s: float = 20.0) -> float:
    """Wait until view ``index`` (any view when None) differs from ``before``; returns the seconds waited."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout_s:
        now = view_stats(page)
        pairs = list(zip(now, before)) if index is None else [(now[index], before[index])] if len(now) > index else []
        if any(_changed(a, b, min_delta) for a, b in pairs):
            return time.perf_counter() - t0
        page.wait_for_timeout(20)
    raise TimeoutError(f"view {'any' if index is None else index} did not change within {timeout_s:.0f} s")


# Frame log, in the page: every image the page loads into view ``index`` is timed (performance.now() at its
# 'load' event, i.e. before it is painted) and its pixels kept (every ``step``-th pixel), so that what the user
# saw first is found afterwards without polling from outside.  One capturing listener on the document; arm()
# takes the view's current pixels as the baseline, starts the clock and sets a state value in one go.
_FRAME_LOG_JS = """
([sel, index, step, key, value]) => {
  const grab = (img) => {
    const w = img.naturalWidth, h = img.naturalHeight;
    if (!img.complete || !w || !h) return null;
    const c = document.createElement('canvas'); c.width = w; c.height = h;
    const ctx = c.getContext('2d'); ctx.drawImage(img, 0, 0);
    const d = ctx.getImageData(0, 0, w, h).data;
    const ws = Math.ceil(w / step), hs = Math.ceil(h / step);
    const out = new Uint8Array(ws * hs * 3);
    let n = 0;
    for (let y = 0; y < h; y += step) for (let x = 0; x < w; x += step) {
      const i = 4 * (y * w + x); out[n++] = d[i]; out[n++] = d[i + 1]; out[n++] = d[i + 2];
    }
    return {w: ws, h: hs, px: out};
  };
  if (!window.__msFrameHook) {
    window.__msFrameHook = true;
    document.addEventListener('load', (ev) => {
      const log = window.__msFrames;
      if (!log || ev.target.tagName !== 'IMG') return;
      const t = performance.now();
      if (Array.from(document.querySelectorAll(log.sel)).indexOf(ev.target) !== log.index) return;
      const f = grab(ev.target);
      if (f) { f.t = t - log.t0; log.frames.push(f); }
    }, true);
  }
  const img = document.querySelectorAll(sel)[index];
  const before = img ? grab(img) : null;
  window.__msFrames = {sel: sel, index: index, step: step, before: before, frames: [], t0: performance.now()};
  if (key !== null) window.trame.state.set(key, value);
  return !!before;
}
"""

_FRAME_LOG_READ_JS = """
(full) => {
  const log = window.__msFrames;
  if (!log) return null;
  if (!full) return {n: log.frames.length, last: log.frames.length ? log.frames[log.frames.length - 1].t : null,
                     now: performance.now() - log.t0};
  const b64 = (f) => {
    let bin = '';
    for (let i = 0; i < f.px.length; i += 0x8000) bin += String.fromCharCode.apply(null, f.px.subarray(i, i + 0x8000));
    return {w: f.w, h: f.h, t: f.t, b64: btoa(bin)};
  };
  return {before: log.before ? b64(log.before) : null, frames: log.frames.map(b64)};
}
"""


def set_state_logged(page, index: int, key: Optional[str], value=None, step: int = 2) -> bool:
    """Baseline view ``index``'s pixels, start the page's clock and set ``key`` (one evaluate; None: set
    nothing); the page then logs every image view ``index`` loads (see :func:`read_frame_log`).  False when
    the view has no image."""
    return bool(page.evaluate(_FRAME_LOG_JS, [VIEW_IMAGES, index, step, key, value]))


def wait_frames_quiet(page, quiet_s: float = 1.0, timeout_s: float = 15.0, need_frame: bool = True) -> int:
    """Wait until the logged view got at least one image (any number when not ``need_frame``) and then none
    for ``quiet_s`` (the still-quality re-render comes after the interactive one); returns the number of
    images logged (0 on timeout or when none was needed and none came)."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout_s:
        info = page.evaluate(_FRAME_LOG_READ_JS, False) or {}
        if info.get("n") and info["now"] - info["last"] >= 1000 * quiet_s:
            return info["n"]
        if not need_frame and info and not info.get("n") and info["now"] >= 1000 * quiet_s:
            return 0
        page.wait_for_timeout(100)
    return 0


def read_frame_log(page) -> dict:
    """``{"before": pixels, "frames": [(ms since the state was set, pixels), ...]}`` (uint8 arrays)."""
    import base64

    import numpy as np

    out = page.evaluate(_FRAME_LOG_READ_JS, True) or {}

    def arr(f):
        return np.frombuffer(base64.b64decode(f["b64"]), np.uint8).reshape(f["h"], f["w"], 3)

    return {"before": arr(out["before"]) if out.get("before") else None,
            "frames": [(f["t"], arr(f)) for f in out.get("frames", [])]}


def frame_latency(log: dict, threshold: float = 20.0, min_count: int = 20, block: int = 1,
                  max_ratio: float = 0.75) -> Optional[dict]:
    """When the logged view first showed the new content, and when its last (full-quality) image came.

    Images are compared in grey levels (mean of R, G, B), averaged over ``block`` x ``block`` logged pixels
    (``block=4`` with the log's ``step=2``: the 8 x 8 blocks JPEG codes, whose means its quantisation noise
    hardly moves - for changes of a few grey levels).  The changed region is where the last image differs
    from the baseline by more than ``threshold``; None when it has fewer than ``min_count`` pixels (blocks):
    nothing visible changed.  The first updated image is the first whose mean absolute difference to the new
    content over that region is under ``max_ratio`` times that to the old content: it is closer to the new
    content than to the old, so an image that still shows the old content (ratio above 1; JPEG noise alone
    does not make it) does not count.  ``{"first_ms", "full_ms", "frames", "changed", "box_fraction",
    "trace"}``; ``trace``: per image, its time and that ratio.
    """
    import numpy as np

    before, frames = log.get("before"), log.get("frames") or []
    if before is None or not frames or frames[-1][1].shape != before.shape:
        return None

    def grey(px):
        g = px.astype(np.float32).mean(axis=2)
        if block > 1:
            h, w = (g.shape[0] // block) * block, (g.shape[1] // block) * block
            g = g[:h, :w].reshape(h // block, block, w // block, block).mean(axis=(1, 3))
        return g

    final, old = grey(frames[-1][1]), grey(before)
    mask = np.abs(final - old) > threshold
    count = int(mask.sum())
    if count < min_count:
        return None
    rows, cols = np.nonzero(mask)
    h, w = mask.shape
    box = (float(rows.max() - rows.min() + 1) / h, float(cols.max() - cols.min() + 1) / w)
    trace, first = [], None
    for t, px in frames:
        if px.shape != before.shape:
            continue
        f = grey(px)[mask]
        e_new = float(np.abs(f - final[mask]).mean())
        e_old = float(np.abs(f - old[mask]).mean())
        ratio = e_new / max(e_old, 1e-9)
        trace.append((round(float(t), 1), round(ratio, 3)))
        if first is None and ratio < max_ratio:
            first = float(t)
    if first is None:
        return None
    return {"first_ms": first, "full_ms": float(frames[-1][0]), "frames": len(frames), "changed": count,
            "box_fraction": box, "trace": trace}
