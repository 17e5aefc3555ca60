"""Robustness benchmark of a radiograph nodule detector: one attribute at a time.

For every host radiograph: the detector runs on the unmodified image (every detection there is a false positive:
``false_positives_per_image``), then on copies with one synthetic nodule each, where one attribute takes each of
its values while the others stay at the reference (:data:`REFERENCE`: 12 mm solid, sliders 0, a random lung-field
point).  Attributes: diameter, texture, each shape slider, and the place (:data:`ZONES`).  A nodule counts as found
when a detection hits it (:func:`.cxr_detector.is_hit`).  The nodules are inserted into the image at its own
resolution by the product's insertion (:func:`.insertion.insert_cxr_region`), as a user's nodules would be.

Places (heuristics on the coarse lung-field mask of :mod:`.candidates`, not a segmentation): ``upper`` /
``middle`` / ``lower`` thirds of the lung fields' height; ``retrocardiac``: between the two lung fields in the
lower half (the heart shadow); ``subdiaphragmatic``: 10-40 mm below the lung fields' lower edge; ``over-rib`` /
``between-ribs``: lung points in the top / bottom 30 % of a rib-scale band-pass (bright bands about 10-20 mm
wide are rib shadows).

Same seed, same images, same detector: the same report.  ``trials.csv`` holds every trial.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
from scipy import ndimage

from ..errors import InputError
from ..progress import CancelToken, Reporter
from ..volume import Volume
from .cxr_detector import is_hit
from .detect import mask_box
from .params import NoduleSpec

REFERENCE = {"diameter_mm": 12.0, "texture": "solid", "solid_fraction": 0.5, "sphericity": 0.0, "lobulation": 0.0,
             "spiculation": 0.0}
ZONES = ("upper", "middle", "lower", "retrocardiac", "subdiaphragmatic", "over-rib", "between-ribs")
ATTRIBUTES: Dict[str, Sequence[Any]] = {
    "diameter_mm": (5.0, 8.0, 12.0, 16.0, 20.0, 25.0, 30.0),
    "texture": ("solid", "part-solid", "ggo"),
    "sphericity": (-2.0, -1.0, 0.0, 1.0, 2.0),
    "lobulation": (-2.0, -1.0, 0.0, 1.0, 2.0),
    "spiculation": (-2.0, -1.0, 0.0, 1.0, 2.0),
    "zone": ZONES,
}


@dataclass
class HostImage:
    """A radiograph for the benchmark: MONOCHROME2 volume with its pixel spacing in the geometry."""

    name: str
    volume: Volume
    pixel_mm: float


def collect_files(paths: Sequence[Path]) -> List[Path]:
    """The image files named by ``paths`` (files, or folders of images); missing ones and empty folders are errors."""
    from .batch import list_hosts

    files: List[Path] = []
    for item in paths:
        p = Path(item)
        if p.is_dir():
            files.extend(list_hosts(p))
        elif p.is_file():
            files.append(p)
        else:
            raise InputError(f"image not found: {p}")
    if not files:
        raise InputError("no images given")
    return files


def load_hosts(paths: Sequence[Path], pixel_spacing_mm: Optional[float] = None,
               assume_width_mm: Optional[float] = None) -> List[HostImage]:
    """Read radiographs (files or folders of them); MONOCHROME1 flipped.  Pixel spacing: ``pixel_spacing_mm`` for
    all, else the file's, else (PNG/JPEG carry none) ``assume_width_mm`` / image width; an image without any of
    these is an error naming it (nodule sizes in mm would be guesses)."""
    from ..volume import make_ijk_to_ras
    from .images import host_pixel_mm, read_host
    hosts = []
    files = collect_files(paths)
    for f in files:
        h = read_host(f)
        if h.kind != "cxr":
            raise InputError(f"{f} is a 3D volume; this benchmark takes radiographs (2D)")
        arr = h.volume.array[0].astype(np.float32)
        if h.photometric == "MONOCHROME1":
            arr = float(arr.max()) - arr
        ps = host_pixel_mm(h, pixel_spacing_mm, assume_width_mm)
        if ps is None:
            raise InputError(f"{f}: the image carries no pixel spacing; give --pixel-spacing MM, or --assume-width MM "
                             "(the detector width, e.g. 370) to derive it from the image width")
        vol = Volume(arr[None], make_ijk_to_ras((ps, ps, 1.0)), f.name, "CXR")
        hosts.append(HostImage(f.name, vol, ps))
    return hosts


def zone_points(host: HostImage, diameter_mm: float) -> Dict[str, np.ndarray]:
    """Candidate centres (j, i) in the image's pixels for every zone (empty arrays where a zone is not found)."""
    from .candidates import cxr_lung_mask

    lung, stride = cxr_lung_mask(host.volume, "MONOCHROME2", host.pixel_mm)
    step_mm = stride * host.pixel_mm
    margin = int(np.ceil((diameter_mm / 2 + 2) / step_mm))
    inner = ndimage.binary_erosion(lung, iterations=max(1, margin)) if lung.any() else lung
    if not inner.any():
        inner = lung
    out: Dict[str, np.ndarray] = {z: np.zeros((0, 2)) for z in ZONES}
    if not lung.any():
        return out
    rows = np.nonzero(lung.any(axis=1))[0]
    top, bottom = rows.min(), rows.max() + 1
    h = bottom - top
    jj, ii = np.nonzero(inner)
    for z, (a, b) in zip(("upper", "middle", "lower"), ((0, 1 / 3), (1 / 3, 2 / 3), (2 / 3, 1))):
        sel = (jj >= top + a * h) & (jj < top + b * h)
        out[z] = np.stack([jj[sel], ii[sel]], axis=1)
    # heart shadow: between the two lung fields, lower half of the lung height
    lab, n = ndimage.label(lung)
    if n >= 2:
        sizes = np.bincount(lab.ravel())[1:]
        a_lab, b_lab = np.argsort(-sizes)[:2] + 1
        ca, cb = ndimage.center_of_mass(lung, lab, [a_lab, b_lab])
        left, right = (a_lab, b_lab) if ca[1] < cb[1] else (b_lab, a_lab)
        mid_rows = np.arange(int(top + 0.55 * h), int(top + 0.9 * h))
        pts = []
        for r in mid_rows:
            li = np.nonzero(lab[r] == left)[0]
            ri = np.nonzero(lab[r] == right)[0]
            if len(li) and len(ri) and ri.min() - li.max() > 2 * margin:
                for c in range(li.max() + margin, ri.min() - margin):
                    pts.append((r, c))
        if pts:
            out["retrocardiac"] = np.array(pts)
        # below the diaphragm: 10-40 mm under the lowest lung row of each column of the two fields
        below = []
        for lbl in (left, right):
            cols = np.nonzero((lab == lbl).any(axis=0))[0]
            for c in cols[len(cols) // 5 : len(cols) - len(cols) // 5]:
                r_low = np.nonzero(lab[:, c] == lbl)[0].max()
                for dr in range(int(10 / step_mm), int(40 / step_mm) + 1):
                    if r_low + dr < lung.shape[0] and not lung[r_low + dr, c]:
                        below.append((r_low + dr, c))
        if below:
            out["subdiaphragmatic"] = np.array(below)
    # rib shadows: rib-scale band-pass of the attenuation image on the coarse grid
    small = host.volume.array[0, ::stride, ::stride].astype(np.float32)[: lung.shape[0], : lung.shape[1]]
    band = ndimage.gaussian_filter(small, 3.0 / step_mm) - ndimage.gaussian_filter(small, 12.0 / step_mm)
    vals = band[inner]
    if len(vals) > 10:
        hi, lo = np.percentile(vals, [70, 30])
        sel_hi, sel_lo = vals >= hi, vals <= lo
        out["over-rib"] = np.stack([jj[sel_hi], ii[sel_hi]], axis=1)
        out["between-ribs"] = np.stack([jj[sel_lo], ii[sel_lo]], axis=1)
    return {z: (p * stride + stride // 2).astype(float) for z, p in out.items()}


def _spec(attribute: str, value: Any, seed: int) -> NoduleSpec:
    values = dict(REFERENCE)
    if attribute != "zone":
        values[attribute] = value
    return NoduleSpec(seed=seed, **values)


def run_benchmark(paths: Sequence[Path], detector: Callable, seed: int = 0, per_image: int = 2,
                  attributes: Optional[Sequence[str]] = None, pixel_spacing_mm: Optional[float] = None,
                  assume_width_mm: Optional[float] = None, model=None, progress=None, cancel: Optional[CancelToken] = None) -> Dict[str, Any]:
    """Run the benchmark; returns the report (``sensitivity``, ``false_positives_per_image``, ``trials``...)."""
    from .insertion import CXRContext, _model, insert_cxr_region

    if per_image < 1:
        raise InputError(f"--per-image must be at least 1, got {per_image}")
    attrs = list(attributes or ATTRIBUTES)
    unknown = [a for a in attrs if a not in ATTRIBUTES]
    if unknown:
        raise InputError(f"unknown attribute(s) {', '.join(unknown)}; choose from {', '.join(ATTRIBUTES)}")
    hosts = load_hosts(paths, pixel_spacing_mm, assume_width_mm)
    rep = Reporter(progress, cancel)
    mdl = _model(model)
    total = len(hosts) * (1 + per_image * sum(len(ATTRIBUTES[a]) for a in attrs))
    done = 0
    fp_counts: List[int] = []
    trials: List[Dict[str, Any]] = []
    for h_idx, host in enumerate(hosts):
        dets0 = detector(host.volume)
        fp_counts.append(len(dets0))
        done += 1
        rep.step(done / total, f"{host.name}: {len(dets0)} detections without nodules")
        ctx = CXRContext(host.volume, "MONOCHROME2", host.pixel_mm)
        zones_by_diameter: Dict[float, Dict[str, np.ndarray]] = {}
        for a_idx, attr in enumerate(attrs):
            for v_idx, value in enumerate(ATTRIBUTES[attr]):
                rng = np.random.default_rng([seed, h_idx, a_idx, v_idx])
                d_mm = _spec(attr, value, 0).diameter_mm
                if d_mm not in zones_by_diameter:  # the lung mask and its zones, once per host and size
                    zones_by_diameter[d_mm] = zone_points(host, d_mm)
                zones = zones_by_diameter[d_mm]
                pts = zones[value] if attr == "zone" else zones["upper"].tolist() + zones["middle"].tolist() + \
                    zones["lower"].tolist()
                pts = np.asarray(pts, float).reshape(-1, 2)
                for t in range(per_image):
                    done += 1
                    row = {"image": host.name, "attribute": attr, "value": value, "trial": t}
                    if len(pts) == 0:
                        row.update(hit="", skipped="no place of this kind found")
                        trials.append(row)
                        continue
                    c = pts[int(rng.integers(len(pts)))]
                    spec = _spec(attr, value, int(rng.integers(0, 1_000_000)))
                    ras = host.volume.ijk_to_ras_points([[c[1], c[0], 0.0]])[0]
                    res = insert_cxr_region(host.volume, ras, spec, model=mdl, context=ctx)
                    arr = host.volume.array.copy()
                    arr[res.roi] = res.values
                    full = np.zeros(arr.shape, bool)
                    full[res.roi] = res.mask
                    gt = mask_box(full)
                    dets = detector(host.volume.with_array(arr))
                    hit = bool(gt is not None and any(is_hit(d.box, gt) for d in dets))
                    best = max((d.score for d in dets if gt is not None and is_hit(d.box, gt)), default=None)
                    row.update(hit=int(hit), score=best, j=float(c[0]), i=float(c[1]), box=gt, seed=spec.seed,
                               detections=len(dets))
                    trials.append(row)
                    rep.step(done / total, f"{host.name}: {attr}={value} {'hit' if hit else 'miss'}")
    sens = []
    for attr in attrs:
        for value in ATTRIBUTES[attr]:
            rows = [r for r in trials if r["attribute"] == attr and r["value"] == value and r["hit"] != ""]
            hits_n = sum(int(r["hit"]) for r in rows)
            sens.append({"attribute": attr, "value": value, "hits": hits_n, "total": len(rows),
                         "sensitivity": round(hits_n / len(rows), 4) if rows else None})
    return {
        "detector": getattr(detector, "name", repr(detector)),
        "threshold": getattr(detector, "threshold", None),
        "seed": seed,
        "per_image": per_image,
        "images": [h.name for h in hosts],
        "reference": REFERENCE,
        "hit_rule": "detection centre inside the nodule's box, or IoU >= 0.2",
        "false_positives_per_image": round(float(np.mean(fp_counts)), 4),
        "false_positives": dict(zip([h.name for h in hosts], fp_counts)),
        "sensitivity": sens,
        "trials": trials,
    }


def sensitivity_csv(report: Dict[str, Any]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["attribute", "value", "hits", "total", "sensitivity"])
    for s in report["sensitivity"]:
        w.writerow([s["attribute"], s["value"], s["hits"], s["total"], s["sensitivity"]])
    return buf.getvalue()


def trials_csv(report: Dict[str, Any]) -> str:
    buf = io.StringIO()
    cols = ["image", "attribute", "value", "trial", "hit", "score", "j", "i", "seed", "detections", "skipped"]
    w = csv.DictWriter(buf, cols, extrasaction="ignore")
    w.writeheader()
    for r in report["trials"]:
        w.writerow(r)
    return buf.getvalue()


def plot_attribute(report: Dict[str, Any], attribute: str, path: Path) -> Path:
    """Sensitivity against one attribute's values (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io import atomic_output

    rows = [s for s in report["sensitivity"] if s["attribute"] == attribute]
    labels = [str(s["value"]) for s in rows]
    vals = [s["sensitivity"] if s["sensitivity"] is not None else np.nan for s in rows]
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=100)
    numeric = all(isinstance(s["value"], (int, float)) for s in rows)
    if numeric:
        ax.plot([float(s["value"]) for s in rows], vals, "o-")
    else:
        ax.bar(labels, vals)
        ax.tick_params(axis="x", rotation=30)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel(attribute)
    ax.set_ylabel("sensitivity")
    ax.set_title(f"{report['detector']}: FP/image {report['false_positives_per_image']:.2f}", fontsize=9)
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def write_report(report: Dict[str, Any], out: Path) -> List[Path]:
    """report.json, sensitivity.csv, trials.csv and one PNG per attribute under ``out``."""
    from ..io import atomic_output, write_json

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = [write_json(report, out / "report.json")]
    for name, text in (("sensitivity.csv", sensitivity_csv(report)), ("trials.csv", trials_csv(report))):
        with atomic_output(out / name) as tmp:
            tmp.write_text(text, encoding="utf-8")
        written.append(out / name)
    for attr in dict.fromkeys(s["attribute"] for s in report["sensitivity"]):
        written.append(plot_attribute(report, attr, out / f"sensitivity_{attr}.png"))
    return written
