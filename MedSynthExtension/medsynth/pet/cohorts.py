"""Evaluation cohorts of simulated brain PET: a given folder, or a fresh one with a seed never used in development.

Every PET evaluation command (``evaluate fdg2cft``, ``evaluate metaad``, ``evaluate pd-classify``) takes either
``--cohort DIR`` (a folder made by ``medsynth pet-simulate``) or simulates its own cohort: ``--subjects N`` subjects
(half PD) with ``--seed S``, or, without ``--seed``, a fresh seed drawn from the operating system. The seed is
printed and written to the report, so the figure can be made again; fresh seeds are at least
:data:`FIRST_FRESH_SEED`, above every seed used while the models were developed (training 0, validation and the old
evaluation cohort 1, examples 11, calibration and classifier training below 1000).
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional

from ..errors import InputError

#: Seeds below this were (or may have been) used while developing and training the PET models.
FIRST_FRESH_SEED = 1_000_000
MAX_SEED = 2**31 - 1


def fresh_seed() -> int:
    """A seed from the operating system's random source that no development run used (>= FIRST_FRESH_SEED)."""
    return FIRST_FRESH_SEED + secrets.randbelow(MAX_SEED - FIRST_FRESH_SEED)


@dataclass
class Cohort:
    """Where an evaluation cohort lies and how it came about."""

    folder: Path
    seed: Optional[int]  # None: a given folder (its cohort.csv says the seeds)
    simulated_here: bool
    fresh: bool

    def words(self) -> str:
        if not self.simulated_here:
            return f"cohort {self.folder}"
        how = "fresh seed" if self.fresh else "seed"
        return f"a cohort simulated for this run ({how} {self.seed})"


def add_cohort_arguments(p, subjects: int = 40) -> None:
    """``--cohort`` | ``--subjects`` / ``--seed`` / ``--keep-cohort`` on an evaluation command's parser."""
    p.add_argument("--cohort", help="simulated cohort folder (medsynth pet-simulate); without it a cohort is simulated "
                                    "for this run")
    p.add_argument("--subjects", type=int, default=subjects,
                   help=f"subjects to simulate without --cohort, half PD (default {subjects})")
    p.add_argument("--seed", type=int, help="seed of the simulated cohort (default: a fresh one, printed)")
    p.add_argument("--keep-cohort", metavar="DIR", help="keep the simulated cohort in this new folder")


def check_cohort_arguments(args) -> None:
    """Bad combinations are input errors (exit 2) before any work."""
    if args.cohort and (args.seed is not None or args.keep_cohort):
        raise InputError("--cohort uses a cohort that exists; --seed and --keep-cohort are for a simulated one")
    if not args.cohort:
        if not 2 <= args.subjects <= 10000:
            raise InputError(f"--subjects must be 2..10000, got {args.subjects}")
        if args.seed is not None and not 0 <= args.seed <= MAX_SEED:
            raise InputError(f"--seed must be 0..{MAX_SEED}, got {args.seed}")
        if args.keep_cohort and Path(args.keep_cohort).exists():
            raise InputError(f"--keep-cohort {args.keep_cohort} exists; give a new folder")


@contextmanager
def evaluation_cohort(args, log: Callable[[str], None] = print, reporter=None) -> Iterator[Cohort]:
    """The cohort an evaluation runs on (see the module docstring); a simulated one is removed afterwards unless
    ``--keep-cohort`` names a folder for it."""
    from .simulate import read_cohort, simulate_cohort

    check_cohort_arguments(args)
    if args.cohort:
        read_cohort(args.cohort)  # a clear error when it is not a cohort
        yield Cohort(Path(args.cohort), None, False, False)
        return
    fresh = args.seed is None
    seed = fresh_seed() if fresh else int(args.seed)
    log(f"evaluation cohort: {args.subjects} simulated subjects (half PD), seed {seed}"
        f"{' (fresh; --seed ' + str(seed) + ' makes the same cohort again)' if fresh else ''}")
    tmp = Path(tempfile.mkdtemp(prefix="medsynth-eval-cohort-"))
    try:
        folder = tmp / "cohort"
        simulate_cohort(folder, args.subjects, 0.5, seed, reporter=reporter)
        yield Cohort(folder, seed, True, fresh)
        if args.keep_cohort:
            shutil.move(str(folder), args.keep_cohort)
            log(f"kept the cohort in {args.keep_cohort}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_evaluation(args, what: str, evaluate: Callable[..., dict], show: Callable[[dict], None]) -> int:
    """The command-line body of ``medsynth evaluate WHAT`` for PET: the cohort (given or simulated), the
    evaluation, the report (with the cohort, its seed and the command that repeats it), the closing lines."""
    import json

    from ..io import atomic_output
    from ..outputs import JSON, OutputPlan
    from ..progress import Reporter, progress_printer

    plan = OutputPlan(inputs=[args.cohort])
    plan.file(args.report, "--report", JSON)
    with plan, evaluation_cohort(args, reporter=Reporter(progress_printer)) as cohort:
        res = evaluate(cohort.folder, Reporter(progress_printer))
        res["cohort"] = cohort.words()
        res["cohort_seed"] = cohort.seed
        if cohort.simulated_here:
            res["command"] = f"medsynth evaluate {what} --subjects {args.subjects} --seed {cohort.seed}"
        else:  # the evaluation's own command (it may say how the cohort was made) or the plain one
            res.setdefault("command", f"medsynth evaluate {what} --cohort {args.cohort}")
        if args.report:
            with atomic_output(Path(args.report)) as tmp:
                tmp.write_text(json.dumps(res, indent=2) + "\n")
    show(res)
    print(f"{len(res['subjects'])} subjects of {res['cohort']} in {res['seconds']:.0f} s ({res['device']}); "
          "simulated images, not real PET")
    if args.report:
        print(f"wrote {args.report}")
    return 0


__all__ = ["Cohort", "run_evaluation", "FIRST_FRESH_SEED", "add_cohort_arguments", "check_cohort_arguments", "evaluation_cohort",
           "fresh_seed"]
