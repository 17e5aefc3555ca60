"""``medsynth demo``: the main job on a fresh machine. Runs each module's part on the
shipped sample data, writes outputs and PNG overviews to a folder, and prints where.

The packages' parts come from :data:`medsynth.packages.PACKAGES`; each part's function takes
``(out_dir, reporter)`` and returns the paths it wrote.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, List, Tuple

from ..packages import demo_parts
from ..progress import Reporter
from ..runtime import resources_dir

DemoPart = Callable[[Path, Reporter], List[Path]]


def sample_path(name: str) -> Path:
    """A file of the shipped sample data (Resources/SampleData)."""
    path = resources_dir() / "SampleData" / name
    if not path.is_file():
        from ..errors import InputError

        raise InputError(f"sample data file missing: {path}")
    return path


def foundation_part(out_dir: Path, reporter: Reporter) -> List[Path]:
    """Read each sample volume, write it as NRRD (geometry kept) and a three-plane overview PNG."""
    from ..io import read_volume, write_volume
    from ..overview import overview, write_png

    written = []
    samples = sorted((resources_dir() / "SampleData").glob("*.nii.gz"))
    for n, path in enumerate(samples):
        reporter.step(n / max(len(samples), 1), f"sample {path.name}")
        volume = read_volume(path)
        written.append(write_volume(volume, out_dir / f"{volume.name}.nrrd"))
        written.append(write_png(overview(volume), out_dir / f"{volume.name}_overview.png"))
    return written


DEMO_PARTS: List[Tuple[str, DemoPart]] = [("foundation", foundation_part)] + demo_parts()


def run(args) -> int:
    from ..progress import progress_printer

    from ..errors import InputError
    from ..outputs import OutputPlan

    known = [n for n, _ in DEMO_PARTS]
    unknown = [n for n in (args.only or []) if n not in known]
    if unknown:
        raise InputError(f"--only: unknown part(s) {', '.join(unknown)}; known: {', '.join(known)}")
    plan = OutputPlan()
    plan.folder(args.out, "--out", defer=False)  # the parts read back what they write: no deferred renames
    out_dir = Path(args.out).resolve()
    parts = [(n, f) for n, f in DEMO_PARTS if not args.only or n in args.only]
    reporter = Reporter(progress_printer)
    all_written: List[Tuple[str, List[Path]]] = []
    with plan:
        for idx, (name, func) in enumerate(parts):
            part_dir = out_dir / name
            part_dir.mkdir(parents=True, exist_ok=True)
            all_written.append((name, func(part_dir, reporter.sub(idx / len(parts), (idx + 1) / len(parts)))))
    reporter.step(1.0, "done")
    print(f"MedSynth demo: outputs in {out_dir}")
    for name, paths in all_written:
        print(f"  {name}:")
        for p in paths:
            print(f"    {p}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("demo", help="run every module on the sample data; write outputs and PNG overviews")
    p.add_argument("--out", default="output/demo", help="output folder (default output/demo; created when missing; "
                   "what a failed or interrupted run added to it is removed)")
    p.add_argument("--only", nargs="*", default=None, help=f"parts to run: {', '.join(n for n, _ in DEMO_PARTS)}")
    p.set_defaults(func=run)
