"""Speed and accuracy of the PET affine registration to the MNI template (``register_to_template``): old vs new.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 PYTHONPATH=MedSynthExtension python benchmarks/bench_pet_register.py \
        [--cases 8] [--seed N] [--threads 1] [--max-rot 12] [--max-shift 15]

Each case is a simulated subject (FDG or CFT, NC or PD; scanner blur and noise, no random deformation, so the true
mapping is exactly known) moved by a random affine about the brain centre (rotations up to 12 deg about each axis,
shifts up to 15 mm, axis scales 0.95-1.05) and resampled onto an oblique native grid (2.5 mm, 2 x 2 x 3 mm,
2 mm with a large field of view, 3 x 3 x 3.3 mm). Both settings of ``register_to_template`` register the same
inputs in the same run, old and new alternating per case: ``RegistrationSettings.legacy()`` (similarity then
affine stage, 3 levels each, 150 iterations, 10 % random sampling) and the default. Printed per case and as means:
wall time of the call, registration error (distance in mm between the true and the recovered template -> input
mapping over the atlas brain voxels: mean and max) and the correlation with the template. A fresh seed is drawn
unless ``--seed`` is given; it is printed with the command that repeats the run.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "MedSynthExtension"))

# native grids: (label, spacing mm, shape ijk, grid rotation (axis, degrees) ...)
GRIDS = (
    ("2.5 mm 96x96x72", (2.5, 2.5, 2.5), (96, 96, 72), (("z", 4.0),)),
    ("2x2x3 mm 128x128x60", (2.0, 2.0, 3.0), (128, 128, 60), (("x", 5.0), ("z", -3.0))),
    ("2 mm 128x128x110 (large FOV)", (2.0, 2.0, 2.0), (128, 128, 110), (("y", -4.0),)),
    ("3x3x3.3 mm 80x80x60", (3.0, 3.0, 3.3), (80, 80, 60), (("z", -6.0), ("x", -3.0))),
)
TRACERS = ("FDG", "CFT")
GROUPS = ("NC", "PD")


def rotation(axis: str, degrees: float):
    """Rotation matrix about one RAS axis (right-handed, active)."""
    from scipy.spatial.transform import Rotation

    return Rotation.from_euler(axis, degrees, degrees=True).as_matrix()


def random_affine(rng, max_rot_deg: float = 12.0, max_shift_mm: float = 15.0, scale_range=(0.95, 1.05)):
    """A RAS affine (template point x shows at a @ x in the native image) about the brain centre, and its summary."""
    import numpy as np

    from medsynth.pet.simulate import BRAIN_CENTER_MM

    rot = rng.uniform(-max_rot_deg, max_rot_deg, 3)
    shift = rng.uniform(-max_shift_mm, max_shift_mm, 3)
    scale = rng.uniform(*scale_range, 3)
    r = rotation("z", rot[2]) @ rotation("y", rot[1]) @ rotation("x", rot[0]) @ np.diag(scale)
    c = np.asarray(BRAIN_CENTER_MM, float)
    a = np.eye(4)
    a[:3, :3] = r
    a[:3, 3] = c + shift - r @ c
    desc = (f"rot {rot[0]:+.0f}/{rot[1]:+.0f}/{rot[2]:+.0f} deg, shift {shift[0]:+.0f}/{shift[1]:+.0f}/{shift[2]:+.0f}"
            f" mm, scale {scale[0]:.2f}/{scale[1]:.2f}/{scale[2]:.2f}")
    return a, desc


def native_input(volume, a, grid, rng):
    """``volume`` (MNI grid) moved by ``a`` and resampled on an oblique native grid (its centre off by <= 10 mm)."""
    import numpy as np

    from medsynth.pet.simulate import BRAIN_CENTER_MM
    from medsynth.resample import resample
    from medsynth.volume import Volume, make_ijk_to_ras

    _, spacing, shape, rots = grid
    d = np.eye(3)
    for axis, deg in rots:
        d = d @ rotation(axis, deg)
    sp, n = np.asarray(spacing, float), np.asarray(shape)
    center = a[:3, :3] @ np.asarray(BRAIN_CENTER_MM) + a[:3, 3] + rng.uniform(-10.0, 10.0, 3)
    m = make_ijk_to_ras(sp, center - d @ (sp * (n - 1) / 2), d)
    moved = resample(volume, np.linalg.inv(a) @ m, n, "linear")
    return Volume(moved.array.astype(np.float32), m, f"native_{volume.name}", "PET")


def make_cases(seed: int, n: int, max_rot_deg: float = 12.0, max_shift_mm: float = 15.0):
    """``n`` cases: (label, native volume, tracer, true template -> native RAS affine)."""
    import numpy as np

    from medsynth.pet.atlas import load_atlas
    from medsynth.pet.simulate import draw_params, simulate_subject, subject_rng

    atlas = load_atlas()
    rng = np.random.default_rng([seed, 7])
    cases = []
    for i in range(n):
        tracer, group, grid = TRACERS[i % 2], GROUPS[(i // 2) % 2], GRIDS[i % len(GRIDS)]
        srng = subject_rng(seed, i)
        p = draw_params(srng, group, f"sub-{i:02d}")
        # no random head position or warp: the image is the subject in MNI space (scanner blur and noise kept)
        p = replace(p, affine_rot_deg=(0.0, 0.0, 0.0), affine_scale=(1.0, 1.0, 1.0), affine_shift_mm=(0.0, 0.0, 0.0),
                    warp_mm=0.0)
        sub = simulate_subject(p, srng, atlas)
        vol = sub.fdg if tracer == "FDG" else sub.cft
        a, desc = random_affine(rng, max_rot_deg, max_shift_mm)
        cases.append((f"{tracer} {group}, {grid[0]}; {desc}", native_input(vol, a, grid, rng), tracer, a))
    return cases


def mapping_error(m, a, points):
    """Distances (mm) between where the recovered (``m``) and the true (``a``) template -> input mappings send
    ``points`` (N x 3 RAS)."""
    import numpy as np

    p4 = np.c_[points, np.ones(len(points))]
    return np.linalg.norm((p4 @ np.asarray(m).T - p4 @ a.T)[:, :3], axis=1)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", type=int, default=8)
    p.add_argument("--seed", type=int, default=None, help="default: a fresh one (printed)")
    p.add_argument("--threads", type=int, default=1, help="SimpleITK threads (default 1)")
    p.add_argument("--max-rot", type=float, default=12.0, help="largest rotation about each axis (deg)")
    p.add_argument("--max-shift", type=float, default=15.0, help="largest shift along each axis (mm)")
    args = p.parse_args()
    import numpy as np
    import SimpleITK as sitk

    from medsynth.pet.atlas import load_atlas
    from medsynth.pet.register import RegistrationError, RegistrationSettings, register_to_template
    from medsynth.pet.simulate import pet_template

    seed = int(np.random.SeedSequence().entropy % 2**31) if args.seed is None else args.seed
    sitk.ProcessObject_SetGlobalDefaultNumberOfThreads(args.threads)
    atlas = load_atlas()
    points = atlas.labels.ijk_to_ras_points(np.argwhere(atlas.brain)[:, ::-1])
    templates = {t: pet_template(t) for t in TRACERS}
    head = atlas.labels.array > 0
    settings = {"old": RegistrationSettings.legacy(), "new": RegistrationSettings()}
    cmd = (f"python benchmarks/bench_pet_register.py --cases {args.cases} --seed {seed} --threads {args.threads} "
           f"--max-rot {args.max_rot:g} --max-shift {args.max_shift:g}")
    print(f"seed {seed}: {cmd}")
    print(f"machine: {platform.machine()} {platform.processor()}, {os.cpu_count()} CPU(s), SimpleITK "
          f"{sitk.Version.VersionString()} with {args.threads} thread(s), Python {platform.python_version()}; "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '-')}")
    for k, s in settings.items():
        print(f"{k}: {s.describe()}")
    cases = make_cases(seed, args.cases, args.max_rot, args.max_shift)
    # warm-up (first call pays for library loading)
    register_to_template(cases[0][1], templates[cases[0][2]], mask=head, settings=settings["new"])
    rows = []
    print()
    print("| # | case | settings | time (s) | mean error (mm) | max error (mm) | r with template | iterations |")
    print("|---:|---|---|---:|---:|---:|---:|---|")
    for i, (label, vol, tracer, a) in enumerate(cases):
        order = ("old", "new") if i % 2 == 0 else ("new", "old")
        res = {}
        for k in order:
            t = time.perf_counter()
            try:
                r = register_to_template(vol, templates[tracer], mask=head, settings=settings[k])
                dt = time.perf_counter() - t
                err = mapping_error(r.template_to_moving, a, points)
                res[k] = (dt, float(err.mean()), float(err.max()), r.correlation, r.iterations)
            except RegistrationError as exc:
                res[k] = (time.perf_counter() - t, np.nan, np.nan, np.nan, str(exc)[:60])
        for k in ("old", "new"):
            dt, em, ex, c, its = res[k]
            print(f"| {i} | {label if k == 'old' else ''} | {k} | {dt:.2f} | {em:.3f} | {ex:.3f} | {c:.4f} | {its} |")
        rows.append(res)
    print()
    print("| settings | mean time (s) | mean of mean error (mm) | worst mean error (mm) | worst max error (mm) | "
          "mean r | failures |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for k in ("old", "new"):
        v = np.array([r[k][:4] for r in rows], float)
        fails = int(np.isnan(v[:, 1]).sum())
        print(f"| {k} | {v[:, 0].mean():.2f} | {np.nanmean(v[:, 1]):.3f} | {np.nanmax(v[:, 1]):.3f} | "
              f"{np.nanmax(v[:, 2]):.3f} | {np.nanmean(v[:, 3]):.4f} | {fails} |")
    t_old = np.mean([r["old"][0] for r in rows])
    t_new = np.mean([r["new"][0] for r in rows])
    print(f"\nspeed ratio old / new: {t_old / t_new:.2f} x (mean time {t_old:.2f} s -> {t_new:.2f} s); {cmd}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
