"""Bad input over every command of ``medsynth``: a table of cases, each checked for

- exit status 2 (argparse errors included),
- a message on stderr naming the problem (a pattern per case),
- no traceback,
- inputs unchanged (sha256 of every file of the input folder, and its listing),
- nothing left in the output folder (its tree and file hashes as before the run).

Most cases call :func:`medsynth.cli.main` in this process (fast); a few run ``python -m medsynth`` as a process.
Ctrl-C (SIGINT) during each long command: exit status 130, no traceback, inputs unchanged, nothing left.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np
import pytest
from conftest import chest_phantoms, interrupt_when, run_cli, tree_state

REPO = Path(__file__).resolve().parent.parent
ENGINE = REPO / "MedSynthExtension"
SAMPLE_MR = REPO / "Resources" / "SampleData" / "mni_t1_2mm.nii.gz"


# --------------------------------------------------------------------------- helpers
def subprocess_env() -> Dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ENGINE) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("QT_QPA_PLATFORM", "offscreen")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def read_only_folder(tmp: Path) -> Optional[Path]:
    """A folder nobody can create files in: chmod 555 for a normal user; for root (permission bits do not stop
    it) /sys, which refuses new files. None when neither holds here."""
    from medsynth.outputs import _probe_writable

    if hasattr(os, "geteuid") and os.geteuid() != 0:
        d = tmp / "readonly"
        d.mkdir(exist_ok=True)
        d.chmod(0o555)
        return d if not _probe_writable(d) else None
    d = Path("/sys")
    return d if d.is_dir() and not _probe_writable(d) else None


# --------------------------------------------------------------------------- inputs (made once)
@pytest.fixture(scope="module")
def inp(tmp_path_factory) -> Path:
    import SimpleITK as sitk

    from medsynth import Volume
    from medsynth.io import write_volume
    from medsynth.pet.simulate import example_subject

    d = tmp_path_factory.mktemp("inputs")
    ct, cxr = chest_phantoms((16, 40, 48), (4.0, 3.0, 3.0))
    write_volume(ct, d / "ct.nrrd")
    write_volume(ct, d / "ct.nii.gz")
    write_volume(ct, d / "in.mhd")  # with its data file in.raw
    write_volume(cxr, d / "cxr.png")
    subject = example_subject("NC")
    write_volume(subject.fdg, d / "fdg.nii.gz")
    write_volume(subject.cft, d / "cft.nii.gz")
    shutil.copy(SAMPLE_MR, d / "mr.nii.gz")
    (d / "hosts").mkdir()
    write_volume(ct, d / "hosts" / "a_ct.nrrd")
    write_volume(cxr, d / "hosts" / "b_cxr.png")
    # host folders with an image cut short: nodule-batch reports the images of that host and writes the others
    # (test_parallel.py); with only cut hosts, nothing is written
    (d / "hosts_bad").mkdir()
    write_volume(ct, d / "hosts_bad" / "a_ct.nrrd")
    good = (d / "ct.nii.gz").read_bytes()
    (d / "hosts_bad" / "b_cut.nii.gz").write_bytes(good[: len(good) // 2])
    (d / "hosts_cut").mkdir()
    (d / "hosts_cut" / "b_cut.nii.gz").write_bytes(good[: len(good) // 2])
    (d / "vols").mkdir()  # a folder of volumes: superres makes each
    write_volume(ct, d / "vols" / "a.nii.gz")
    (d / "vols_cut").mkdir()
    (d / "vols_cut" / "b_cut.nii.gz").write_bytes(good[: len(good) // 2])
    # a simulated cohort (one subject) for sbr --cohort and the evaluations
    (d / "cohort").mkdir()
    from medsynth.pet.simulate import simulate_cohort

    simulate_cohort(d / "cohort", 1, 0.0, 0)
    (d / "cells_real").mkdir()
    # corrupt and odd inputs
    rng = np.random.default_rng(0)
    fl = rng.random((6, 7, 8)).astype(np.float32)
    import nibabel as nib

    def nii(name: str, arr: np.ndarray) -> None:
        nib.save(nib.Nifti1Image(arr, np.eye(4)), str(d / name))

    nii("float.nii.gz", fl)
    nii("float.nii", fl)
    a = fl.copy()
    a[2, 3, 4] = np.nan
    nii("nan.nii.gz", a)
    nii("nan.nii", a)
    a = fl.copy()
    a[5, 6, 7] = np.inf
    nii("inf.nii.gz", a)
    a = fl.copy()
    a[0, 0, 0] = -np.inf
    nii("neginf.nii", a)
    nii("fourd.nii.gz", rng.random((4, 5, 6, 3)).astype(np.float32))
    gz = (d / "float.nii.gz").read_bytes()
    (d / "cut.nii.gz").write_bytes(gz[: len(gz) // 2])
    (d / "cut_tail.nii.gz").write_bytes(gz[:-4])  # only the CRC/size trailer missing
    raw = (d / "float.nii").read_bytes()
    (d / "cut.nii").write_bytes(raw[: int(len(raw) * 0.6)])
    (d / "cut_header.nii").write_bytes(raw[:200])
    cut_ct = (d / "ct.nii.gz").read_bytes()
    (d / "cut_ct.nii.gz").write_bytes(cut_ct[: int(len(cut_ct) * 0.8)])
    (d / "empty.nii.gz").write_bytes(b"")
    (d / "text.nii.gz").write_text("not an image\n")
    (d / "text.nrrd").write_text("not an image\n")
    (d / "notes.txt").write_text("hello\n")
    write_volume(Volume(np.where(fl > 0.5, np.nan, fl).astype(np.float32), np.eye(4), name="n"), d / "nan.nrrd")
    write_volume(Volume(np.where(fl > 0.5, np.inf, fl).astype(np.float32), np.eye(4), name="n"), d / "inf.mha")
    rgb = np.zeros((1, 20, 20, 3), np.uint8)
    rgb[..., 0] = 200
    write_volume(Volume(rgb, np.eye(4), name="rgb"), d / "rgb.png")
    (d / "series2").mkdir()
    for n in range(2):
        for z in range(2):
            im = sitk.GetImageFromArray((rng.random((8, 8)) * 100).astype(np.int16))
            im.SetMetaData("0008|0060", "CT")
            im.SetMetaData("0020|0032", f"0\\0\\{z}")
            sitk.WriteImage(im, str(d / "series2" / f"s{n}_{z}.dcm"))
    (d / "nodicom").mkdir()
    (d / "nodicom" / "readme.txt").write_text("no images here\n")
    return d


@pytest.fixture(scope="module")
def inp_state(inp) -> Dict[str, str]:
    return tree_state(inp)


# --------------------------------------------------------------------------- the table
Setup = Optional[Callable[[Path, Path], None]]
CASES: List = []


def case(cid: str, argv: str, pattern: str, setup: Setup = None) -> None:
    CASES.append(pytest.param(argv, pattern, setup, id=cid))


def link_to(name: str, target: str, hard: bool = False) -> Callable[[Path, Path], None]:
    def make(i: Path, o: Path) -> None:
        (os.link if hard else os.symlink)(i / target, o / name)

    return make


def make_dir(name: str) -> Callable[[Path, Path], None]:
    return lambda i, o: (o / name).mkdir(parents=True)


def make_file(name: str, data: bytes = b"x\n") -> Callable[[Path, Path], None]:
    def make(i: Path, o: Path) -> None:
        (o / name).parent.mkdir(parents=True, exist_ok=True)
        (o / name).write_bytes(data)

    return make


RO = "{ro}"  # replaced by a read-only folder

# Every output file option of every command: (id, argv with OUTPUT where the path goes, a good suffix,
# the input the output may not be, the suffix kinds it accepts)
FILE_OUTPUTS = [
    ("convert", "convert {i}/ct.nrrd OUTPUT", ".nrrd", "ct.nrrd"),
    ("superres", "superres {i}/ct.nrrd OUTPUT --spacing 2 --method bspline", ".nrrd", "ct.nrrd"),
    ("nodule", "nodule {i}/ct.nrrd OUTPUT --ras 0 0 0", ".nrrd", "ct.nrrd"),
    ("nodule-mask", "nodule {i}/ct.nrrd {o}/n.nrrd --ras 0 0 0 --mask OUTPUT", ".nrrd", "ct.nrrd"),
    ("nodule-json", "nodule {i}/ct.nrrd {o}/n.nrrd --ras 0 0 0 --json OUTPUT", ".json", "ct.nrrd"),
    ("mumap", "mumap {i}/ct.nrrd OUTPUT", ".nrrd", "ct.nrrd"),
    ("mr2ct", "mr2ct {i}/mr.nii.gz OUTPUT", ".nii.gz", "mr.nii.gz"),
    ("mr2ct-mu", "mr2ct {i}/mr.nii.gz {o}/sct.nii.gz --mu-map OUTPUT", ".nii.gz", "mr.nii.gz"),
    ("sbr-report", "sbr {i}/cft.nii.gz --report OUTPUT", ".json", "cft.nii.gz"),
    ("sbr-labels", "sbr {i}/cft.nii.gz --labels OUTPUT", ".nii.gz", "cft.nii.gz"),
    ("fdg2cft", "fdg2cft {i}/fdg.nii.gz OUTPUT", ".nii.gz", "fdg.nii.gz"),
    ("fdg2cft-report", "fdg2cft {i}/fdg.nii.gz {o}/cft.nii.gz --report OUTPUT", ".json", "fdg.nii.gz"),
    ("pd-classify-report", "pd-classify {i}/fdg.nii.gz --report OUTPUT", ".json", "fdg.nii.gz"),
    ("pd-classify-cft", "pd-classify {i}/fdg.nii.gz --cft-out OUTPUT", ".nii.gz", "fdg.nii.gz"),
    ("metaad", "metaad {i}/fdg.nii.gz OUTPUT", ".nii.gz", "fdg.nii.gz"),
    ("metaad-abs", "metaad {i}/fdg.nii.gz {o}/map.nii.gz --abs-map OUTPUT", ".nii.gz", "fdg.nii.gz"),
    ("metaad-z", "metaad {i}/fdg.nii.gz {o}/map.nii.gz --z-map OUTPUT", ".nii.gz", "fdg.nii.gz"),
    ("metaad-report", "metaad {i}/fdg.nii.gz {o}/map.nii.gz --report OUTPUT", ".json", "fdg.nii.gz"),
    ("eval-superres", "evaluate superres --reference {i}/ct.nrrd --methods linear --json OUTPUT", ".json", "ct.nrrd"),
    ("eval-metaad", "evaluate metaad --cohort {i}/cohort --report OUTPUT", ".json", "cohort/cohort.csv"),
    ("eval-fdg2cft", "evaluate fdg2cft --cohort {i}/cohort --report OUTPUT", ".json", "cohort/cohort.csv"),
    ("eval-pd-classify", "evaluate pd-classify --cohort {i}/cohort --report OUTPUT", ".json", "cohort/cohort.csv"),
    ("eval-cells", "evaluate cells --real-train {i}/cells_real --real-test {i}/cells_real --json OUTPUT", ".json",
     None),
    ("eval-cells-aug", "evaluate cells-augmentation --real-train {i}/cells_real --real-test {i}/cells_real "
     "--json OUTPUT", ".json", None),
    ("eval-mr2ct", "evaluate mr2ct --data {i}/cohort --report OUTPUT", ".json", "cohort/cohort.csv"),
    ("sbr-cohort-report", "sbr --cohort {i}/cohort --report OUTPUT", ".json", "cohort/sub-001_cft.nii.gz"),
    ("nodule-detect-json", "nodule-detect {i}/cxr.png --assume-width 370 --detector log --json OUTPUT", ".json",
     "cxr.png"),
    ("eval-nodule-mining", "evaluate nodule-mining --base {i}/cohort --work {o}/w --json OUTPUT", ".json", None),
    ("sheet-superres", "sheet superres --input {i}/ct.nrrd --vary spacing=1 --out OUTPUT", ".png", None),
    ("sheet-cells", "sheet cells --vary class=NILM --out OUTPUT", ".pdf", None),
]

for cid, argv, suf, src in FILE_OUTPUTS:
    if src is not None:
        case(f"{cid}:output-is-input", argv.replace("OUTPUT", "{i}/" + src), r"input")
        case(f"{cid}:output-symlink-to-input", argv.replace("OUTPUT", "{o}/link" + suf), r"an input",
             link_to("link" + suf, src))
        case(f"{cid}:output-hardlink-to-input", argv.replace("OUTPUT", "{o}/hard" + suf), r"an input",
             link_to("hard" + suf, src, hard=True))
    case(f"{cid}:output-is-folder", argv.replace("OUTPUT", "{o}/dir" + suf), r"is a folder", make_dir("dir" + suf))
    case(f"{cid}:output-under-a-file", argv.replace("OUTPUT", "{o}/f.txt/x" + suf), r"f\.txt is a file, not a folder",
         make_file("f.txt"))
    case(f"{cid}:unsupported-suffix", argv.replace("OUTPUT", "{o}/x.txt"), r"cannot write 'x\.txt'")
    case(f"{cid}:read-only-folder", argv.replace("OUTPUT", RO + "/x" + suf), r"not writable")
    case(f"{cid}:device-file", argv.replace("OUTPUT", "/dev/null"), r"(not a regular file|cannot write)")

# two outputs of one command on the same file; outputs that write an input's data file
case("nodule:mask-equals-output", "nodule {i}/ct.nrrd {o}/n.nrrd --ras 0 0 0 --mask {o}/n.nrrd", r"also given as OUT")
case("mr2ct:mu-equals-output", "mr2ct {i}/mr.nii.gz {o}/a.nrrd --mu-map {o}/a.nrrd", r"also given as OUT")
case("metaad:abs-equals-map", "metaad {i}/fdg.nii.gz {o}/a.nii.gz --abs-map {o}/a.nii.gz", r"also given as")
case("metaad:z-equals-abs", "metaad {i}/fdg.nii.gz {o}/m.nii.gz --abs-map {o}/a.nii.gz --z-map {o}/a.nii.gz",
     r"also given as")
case("convert:mhd-data-file-is-input", "convert {i}/in.mhd {i}/in.nhdr", r"in\.raw is an input")
case("convert:output-is-mhd-data-file", "convert {i}/ct.nrrd {i}/in.raw", r"cannot write")
case("convert:mhd-header-is-input", "convert {i}/in.mhd {i}/in.mhd", r"is an input")
case("convert:output-in-dicom-folder", "convert {i}/series2 {i}/series2/s0_0.dcm", r"(input folder|cannot write)")
case("convert:series-not-in-folder", "convert {i}/series2 {o}/x.nrrd --series x", r"series x not in")
case("convert:empty-output", "convert {i}/ct.nrrd ''", r"(empty path|cannot write)")
case("superres:png-output", "superres {i}/ct.nrrd {o}/x.png --spacing 2 --method linear", r"cannot write 'x\.png'")
case("convert:3d-as-png", "convert {i}/ct.nrrd {o}/x.png", r"(2D format needs a single|\.png stores)")
case("mr2ct:png-output", "mr2ct {i}/mr.nii.gz {o}/x.png", r"cannot write 'x\.png'")
case("fdg2cft:mhd-output", "fdg2cft {i}/fdg.nii.gz {o}/x.mhd", r"cannot write 'x\.mhd'")

# output folders
FOLDER_OUTPUTS = [
    ("nodule-batch", "nodule-batch --images {i}/hosts --count 2 --out OUTPUT", "hosts"),
    ("cells", "cells --class NILM --count 2 --out OUTPUT", None),
    ("pet-simulate", "pet-simulate --subjects 1 --out OUTPUT", None),
    ("demo", "demo --only foundation --out OUTPUT", None),
    ("nodule-benchmark", "nodule-benchmark --images {i}/cxr.png --assume-width 370 --detector log --per-image 1 "
     "--attributes texture --out OUTPUT", None),
]
for cid, argv, src in FOLDER_OUTPUTS:
    case(f"{cid}:out-is-a-file", argv.replace("OUTPUT", "{o}/f.txt"), r"exists and is a file", make_file("f.txt"))
    case(f"{cid}:out-under-a-file", argv.replace("OUTPUT", "{o}/f.txt/sub"), r"is a file, not a folder",
         make_file("f.txt"))
    case(f"{cid}:out-read-only", argv.replace("OUTPUT", RO + "/sub"), r"not writable")
    case(f"{cid}:out-is-input-file", argv.replace("OUTPUT", "{i}/ct.nrrd"), r"(is a file|input)")
    if src:
        case(f"{cid}:out-is-input-folder", argv.replace("OUTPUT", "{i}/" + src), r"input folder")
case("nodule-batch:every-host-cut-short", "nodule-batch --images {i}/hosts_cut --count 4 --out {o}/b",
     r"4 of 4 images failed.*b_cut\.nii\.gz.*cut short.*nothing was written")
case("nodule-batch:every-host-cut-short-existing-out", "nodule-batch --images {i}/hosts_cut --count 4 --out {o}",
     r"cut short", make_file("keep.txt"))
case("nodule-batch:every-host-cut-short-two-workers",
     "nodule-batch --images {i}/hosts_cut --count 3 --out {o}/b --workers 2", r"3 of 3 images failed.*cut short")
case("nodule-batch:workers-zero", "nodule-batch --images {i}/hosts --count 1 --out {o}/b --workers 0",
     r"workers.*minimum")
case("nodule-batch:scheduler-unreachable", "nodule-batch --images {i}/hosts --count 1 --out {o}/b "
     "--scheduler tcp://127.0.0.1:9", r"cannot reach the Dask scheduler")
case("cells:workers-huge", "cells --class NILM --count 1 --out {o}/c --workers 100000", r"workers.*maximum")
case("superres:folder-out-is-a-file", "superres {i}/vols {o}/f.nii.gz --spacing 2", r"exists and is a file",
     make_file("f.nii.gz"))
case("superres:folder-every-volume-cut", "superres {i}/vols_cut {o}/sr --spacing 2 --method bspline",
     r"1 of 1 volumes failed.*cut short.*nothing was written")
case("nodule-batch:count-huge", "nodule-batch --images {i}/hosts --count 100000000 --out {o}/b", r"count.*maximum")
case("nodule-batch:count-zero", "nodule-batch --images {i}/hosts --count 0 --out {o}/b", r"count.*minimum")
case("nodule-batch:seed-negative", "nodule-batch --images {i}/hosts --count 1 --seed -1 --out {o}/b", r"seed.*minimum")
case("nodule-batch:no-images", "nodule-batch --images {i}/nodicom --count 1 --out {o}/b", r"no images")
case("nodule-batch:images-missing", "nodule-batch --images {i}/nothere --count 1 --out {o}/b", r"not found")
case("nodule-batch:pixel-spacing-nan", "nodule-batch --images {i}/hosts --count 1 --out {o}/b --pixel-spacing nan",
     r"not a finite number")
case("nodule-batch:pixel-spacing-zero", "nodule-batch --images {i}/hosts --count 1 --out {o}/b --pixel-spacing 0",
     r"not above 0")
# radiograph detector and benchmark
NODULE_DETECT = "nodule-detect {i}/cxr.png --assume-width 370"
case("nodule-detect:missing-image", "nodule-detect {i}/nothere.png --detector log", r"not found")
case("nodule-detect:text-image", "nodule-detect {i}/text.nrrd --detector log", r"text\.nrrd")
case("nodule-detect:3d-volume", "nodule-detect {i}/ct.nrrd --detector log", r"3D volume")
case("nodule-detect:png-without-spacing", "nodule-detect {i}/cxr.png --detector log", r"cxr\.png.*no pixel spacing")
case("nodule-detect:detector-not-onnx", NODULE_DETECT + " --detector {i}/notes.txt", r"notes\.txt is not an ONNX")
case("nodule-detect:detector-missing", NODULE_DETECT + " --detector {i}/none.onnx", r"detector not found")
case("nodule-detect:detector-unknown", NODULE_DETECT + " --detector nonsense", r"give 'shipped'")
case("nodule-detect:detector-not-importable", NODULE_DETECT + " --detector no_such_mod_xyz:f", r"cannot be imported")
case("nodule-detect:detector-not-callable", NODULE_DETECT + " --detector medsynth:__version__", r"not callable")
case("nodule-detect:detector-raises", NODULE_DETECT + " --detector medsynth.errors:InputError",
     r"(raised|must return)")
case("nodule-detect:threshold-nan", NODULE_DETECT + " --detector log --threshold nan", r"not a finite number")
case("nodule-detect:threshold-negative", NODULE_DETECT + " --detector log --threshold -1", r"threshold must be >= 0")
case("nodule-detect:pixel-spacing-zero", "nodule-detect {i}/cxr.png --pixel-spacing 0", r"not above 0")
case("nodule-detect:assume-width-negative", "nodule-detect {i}/cxr.png --assume-width -3", r"not above 0")
NODULE_BENCH = "nodule-benchmark --assume-width 370 --detector log --out {o}/bm"
case("nodule-benchmark:no-images", NODULE_BENCH + " --images {i}/nodicom", r"no images")
case("nodule-benchmark:images-missing", NODULE_BENCH + " --images {i}/nothere", r"not found")
case("nodule-benchmark:ct-host", NODULE_BENCH + " --images {i}/hosts", r"a_ct\.nrrd is a 3D volume")
case("nodule-benchmark:per-image-zero", NODULE_BENCH + " --images {i}/cxr.png --per-image 0", r"at least 1")
case("nodule-benchmark:unknown-attribute", NODULE_BENCH + " --images {i}/cxr.png --attributes colour",
     r"unknown attribute.*colour")
case("nodule-benchmark:detector-not-a-detector",
     "nodule-benchmark --images {i}/cxr.png --assume-width 370 --out {o}/bm --detector "
     + str(REPO / "Resources" / "Models" / "nodule-shape-vae.onnx"), r"not a MedSynth radiograph detector")
case("nodule-benchmark:png-without-spacing", "nodule-benchmark --images {i}/cxr.png --detector log --out {o}/bm",
     r"cxr\.png.*no pixel spacing")
case("eval-nodule-mining:base-not-a-detector", "evaluate nodule-mining --base {i}/cohort --work {o}/w",
     r"not a trained detector folder")
case("cells:binary-csv", "cells --class NILM --count 2 --out {o}", r"cells\.csv cannot be read as CSV",
     make_file("cells.csv", bytes(range(256)) * 4))
case("cells:foreign-csv", "cells --class NILM --count 2 --out {o}", r"not a cells\.csv",
     make_file("cells.csv", b"a,b\n1,2\n"))
case("cells:csv-is-folder", "cells --class NILM --count 2 --out {o}", r"cells\.csv exists and is not a file",
     make_dir("cells.csv"))
case("cells:count-huge", "cells --class NILM --count 100000000 --out {o}/c", r"count.*maximum")
case("cells:count-zero", "cells --class NILM --count 0 --out {o}/c", r"count.*minimum")
case("cells:seed-negative", "cells --class NILM --count 1 --seed -1 --out {o}/c", r"seed.*minimum")
case("cells:count-text", "cells --class NILM --count many --out {o}/c", r"invalid int")
case("cells:unknown-class", "cells --class banana --count 1 --out {o}/c", r"banana")
case("cells:unknown-naming", "cells --class NILM --naming foo --count 1 --out {o}/c", r"naming")
case("cells:unknown-model", "cells --class NILM --count 1 --model nomodel --out {o}/c", r"nomodel")
case("pet-simulate:subjects-zero", "pet-simulate --subjects 0 --out {o}/c", r"subjects.*minimum")
case("pet-simulate:subjects-huge", "pet-simulate --subjects 100000000 --out {o}/c", r"subjects.*maximum")
case("pet-simulate:seed-negative", "pet-simulate --subjects 1 --seed -1 --out {o}/c", r"seed.*minimum")
case("pet-simulate:pd-fraction-nan", "pet-simulate --subjects 1 --pd-fraction nan --out {o}/c", r"not a finite")
case("pet-simulate:pd-fraction-2", "pet-simulate --subjects 1 --pd-fraction 2 --out {o}/c", r"pd_fraction.*maximum")
case("pet-simulate:existing-cohort", "pet-simulate --subjects 1 --out {o}", r"already holds a cohort",
     make_file("cohort.csv", b"subject\n"))
case("demo:unknown-part", "demo --only nothing --out {o}/d", r"unknown part")

# inputs: missing, empty, cut short, NaN/Inf, not an image, 4D, unsupported, several DICOM series
READERS = [
    ("convert", "convert INPUT {o}/x.nrrd"),
    ("superres", "superres INPUT {o}/x.nrrd --spacing 1 --method linear"),
    ("nodule", "nodule INPUT {o}/x.nrrd --ras 0 0 0"),
    ("mumap", "mumap INPUT {o}/x.nrrd"),
    ("mr2ct", "mr2ct INPUT {o}/x.nrrd"),
    ("sbr", "sbr INPUT"),
    ("fdg2cft", "fdg2cft INPUT {o}/x.nii.gz"),
    ("metaad", "metaad INPUT {o}/x.nii.gz"),
]
BAD_INPUTS = [
    ("missing", "{i}/nothere.nii.gz", r"not found"),
    ("empty", "{i}/empty.nii.gz", r"empty"),
    ("cut-gz", "{i}/cut.nii.gz", r"cut short"),
    ("cut-gz-trailer", "{i}/cut_tail.nii.gz", r"cut short"),
    ("cut-nii", "{i}/cut.nii", r"cut short"),
    ("nan-gz", "{i}/nan.nii.gz", r"NaN or infinite"),
    ("inf-gz", "{i}/inf.nii.gz", r"NaN or infinite"),
    ("nan-nii", "{i}/nan.nii", r"NaN or infinite"),
    ("text-nii-gz", "{i}/text.nii.gz", r"cannot read"),
    ("unsupported", "{i}/notes.txt", r"unsupported format"),
    ("fourd", "{i}/fourd.nii.gz", r"4D"),
    ("two-series", "{i}/series2", r"DICOM series"),
]
for rid, argv in READERS:
    for bid, path, pattern in BAD_INPUTS:
        case(f"{rid}:{bid}", argv.replace("INPUT", path), pattern)
for rid, argv in READERS[:4]:
    case(f"{rid}:cut-ct", argv.replace("INPUT", "{i}/cut_ct.nii.gz"), r"cut short")
    case(f"{rid}:neg-inf-nii", argv.replace("INPUT", "{i}/neginf.nii"), r"NaN or infinite")
    case(f"{rid}:nan-nrrd", argv.replace("INPUT", "{i}/nan.nrrd"), r"NaN")
    case(f"{rid}:inf-mha", argv.replace("INPUT", "{i}/inf.mha"), r"NaN|Inf")
    case(f"{rid}:header-only", argv.replace("INPUT", "{i}/cut_header.nii"), r"too short|cut short|cannot read")
    case(f"{rid}:text-nrrd", argv.replace("INPUT", "{i}/text.nrrd"), r"cannot read")
    case(f"{rid}:no-dicom-folder", argv.replace("INPUT", "{i}/nodicom"), r"no DICOM series")

# numeric options: NaN, Inf, out of range, wrong count of values
NODULE = "nodule {i}/ct.nrrd {o}/x.nrrd "
for opt in ("--diameter", "--solid-fraction", "--sphericity", "--lobulation", "--spiculation", "--solid-hu",
            "--ggo-hu"):
    case(f"nodule:{opt[2:]}-nan", NODULE + f"--ras 0 0 0 {opt} nan", r"not a finite number")
    case(f"nodule:{opt[2:]}-inf", NODULE + f"--ras 0 0 0 {opt} inf", r"not a finite number")
case("nodule:diameter-too-big", NODULE + "--ras 0 0 0 --diameter 31", r"diameter_mm.*maximum")
case("nodule:diameter-too-small", NODULE + "--ras 0 0 0 --diameter 1", r"diameter_mm.*minimum")
case("nodule:seed-negative", NODULE + "--ras 0 0 0 --seed -1", r"seed.*minimum")
case("nodule:texture-unknown", NODULE + "--ras 0 0 0 --texture wool", r"invalid choice")
case("nodule:ras-nan", NODULE + "--ras nan 0 0", r"not a finite number")
case("nodule:ras-two-values", NODULE + "--ras 0 0", r"expected 3 argument")
case("nodule:ijk-one-value-3d", NODULE + "--ijk 10", r"--ijk needs 3 values")
case("nodule:ijk-two-values-3d", NODULE + "--ijk 10 10", r"--ijk needs 3 values")
case("nodule:ijk-inf", NODULE + "--ijk 10 10 inf", r"not a finite number")
case("nodule:ijk-one-value-2d", "nodule {i}/cxr.png {o}/x.png --ijk 10", r"--ijk needs 2 or 3 values")
case("nodule:no-place", NODULE, r"give the nodule's place")
case("nodule:ras-and-ijk", NODULE + "--ras 0 0 0 --ijk 1 1 1", r"not allowed with")
case("nodule:suggest-and-ras", NODULE + "--suggest --ras 0 0 0", r"not allowed with")
case("nodule:suggest-seed-negative", NODULE + "--suggest -1", r"--suggest SEED must be 0 or more")
case("nodule:suggest-no-lung", "nodule {i}/fdg.nii.gz {o}/x.nrrd --suggest", r"no lung found in 'fdg")
case("nodule:pixel-spacing-three", "nodule {i}/cxr.png {o}/x.png --ijk 10 10 --pixel-spacing 1 1 1",
     r"--pixel-spacing takes 1 or 2")
case("nodule:pixel-spacing-negative", "nodule {i}/cxr.png {o}/x.png --ijk 10 10 --pixel-spacing -1", r"not above 0")
case("nodule:log-gain-nan", "nodule {i}/cxr.png {o}/x.png --ijk 10 10 --log-gain nan", r"not a finite number")
case("nodule:colour-image", "nodule {i}/rgb.png {o}/x.png --ijk 10 10", r"colour image")
case("nodule:dicom-output", NODULE.replace("x.nrrd", "x.dcm") + "--ras 0 0 0", r"cannot write 'x\.dcm'")
SUPERRES = "superres {i}/ct.nrrd {o}/x.nrrd "
case("superres:spacing-nan", SUPERRES + "--spacing nan", r"not a finite number")
case("superres:spacing-inf", SUPERRES + "--spacing inf", r"not a finite number")
case("superres:spacing-negative", SUPERRES + "--spacing -1", r"spacing.*minimum")
case("superres:spacing-missing", SUPERRES, r"--spacing")
case("superres:axis-unknown", SUPERRES + "--spacing 1 --axis q", r"invalid choice")
case("superres:method-unknown", SUPERRES + "--spacing 1 --method magic", r"invalid choice")
case("superres:adapt-steps-negative", SUPERRES + "--spacing 1 --adapt-steps -1", r"adapt_steps.*minimum")
case("mr2ct:tile-too-small", "mr2ct {i}/mr.nii.gz {o}/x.nrrd --tile 4", r"tile.*minimum")
case("mr2ct:kvp-text", "mr2ct {i}/mr.nii.gz {o}/x.nrrd --kvp high", r"invalid choice")
case("mr2ct:kvp-between", "mr2ct {i}/mr.nii.gz {o}/x.nrrd --kvp 90", r"invalid choice")
case("mumap:kvp-unknown", "mumap {i}/ct.nrrd {o}/x.nrrd --kvp 90", r"invalid choice")
case("sbr:nothing", "sbr", r"give a CFT volume")
case("sbr:cft-and-cohort", "sbr {i}/cft.nii.gz --cohort {i}/cohort", r"not both")
case("sbr:cohort-labels", "sbr --cohort {i}/cohort --labels {o}/l.nii.gz", r"--labels needs a CFT")
case("sbr:cohort-missing", "sbr --cohort {i}/nothere --report {o}/r.json", r"(not found|no cohort|cohort\.csv)")
case("sbr:reference-unknown", "sbr {i}/cft.nii.gz --reference nose", r"invalid choice")
case("fdg2cft:space-unknown", "fdg2cft {i}/fdg.nii.gz {o}/x.nii.gz --space mars", r"invalid choice")
case("metaad:space-unknown", "metaad {i}/fdg.nii.gz {o}/x.nii.gz --space mars", r"invalid choice")
case("eval-superres:factors-nan", "evaluate superres --reference {i}/ct.nrrd --factors nan", r"not a finite")
case("eval-superres:factors-one", "evaluate superres --reference {i}/ct.nrrd --factors 1 --json {o}/r.json",
     r"--factors must be above 1")
case("eval-superres:adapt-negative", "evaluate superres --reference {i}/ct.nrrd --adapt -3", r"outside")
case("eval-superres:reference-cut", "evaluate superres --reference {i}/cut_ct.nii.gz --methods linear "
     "--json {o}/r.json", r"cut short")
case("eval-cells:count-huge", "evaluate cells --real-train {i}/cells_real --real-test {i}/cells_real "
     "--count 100000000", r"outside")
case("eval-cells:seed-negative", "evaluate cells --real-train {i}/cells_real --real-test {i}/cells_real "
     "--seed -1", r"outside")
case("eval-metaad:cohort-missing", "evaluate metaad --cohort {i}/nothere --report {o}/r.json",
     r"(not found|cohort\.csv)")
case("eval-fdg2cft:cohort-missing", "evaluate fdg2cft --cohort {i}/nothere --report {o}/r.json",
     r"(not found|cohort\.csv)")
case("eval-pd-classify:cohort-missing", "evaluate pd-classify --cohort {i}/nothere --report {o}/r.json",
     r"(not found|cohort\.csv)")
case("eval-pd-classify:cohort-and-seed", "evaluate pd-classify --cohort {i}/cohort --seed 3 --report {o}/r.json",
     r"--seed and --keep-cohort are for a simulated one")
case("eval-metaad:one-subject", "evaluate metaad --subjects 1 --report {o}/r.json", r"--subjects must be 2")
case("eval-fdg2cft:seed-negative", "evaluate fdg2cft --subjects 4 --seed -3 --report {o}/r.json", r"--seed must be")
case("eval-fdg2cft:keep-existing", "evaluate fdg2cft --subjects 4 --keep-cohort {i} --report {o}/r.json",
     r"exists; give a new folder")
case("pd-classify:ct", "pd-classify {i}/ct.nrrd --report {o}/r.json", r"(CT|Hounsfield|PET)")
case("pd-classify:missing", "pd-classify {i}/nothere.nii.gz", r"(not found|does not exist|no such)")
case("cli:unknown-command", "paint {i}/ct.nrrd", r"invalid choice")
case("cli:device-unknown", "--device tpu info", r"invalid choice")


@pytest.mark.parametrize("argv,pattern,setup", CASES)
def test_bad_input(argv: str, pattern: str, setup: Setup, inp: Path, inp_state, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    if RO in argv:
        ro = read_only_folder(tmp_path)
        if ro is None:
            pytest.skip("no folder here refuses new files (neither chmod nor /sys)")
        argv = argv.replace(RO, str(ro))
    if setup is not None:
        setup(inp, out)
    before = tree_state(out)
    args = shlex.split(argv.format(i=inp, o=out))
    rc, stdout, stderr = run_cli(args)
    assert "Traceback" not in stderr and "Traceback" not in stdout
    assert rc == 2, f"exit status {rc}; stderr: {stderr[-800:]}"
    assert re.search(pattern, stderr, re.IGNORECASE | re.DOTALL), f"no /{pattern}/ in: {stderr[-800:]}"
    assert tree_state(inp) == inp_state, "an input changed"
    assert tree_state(out) == before, f"left behind: {sorted(set(tree_state(out)) - set(before))}"
    leftovers = [p for p in out.rglob("*") if ".partial-" in p.name]
    assert not leftovers


def test_the_table_is_large_enough() -> None:
    assert len(CASES) >= 150, len(CASES)
    ids = [c.id for c in CASES]
    assert len(set(ids)) == len(ids), "duplicate case ids"


# --------------------------------------------------------------------------- what must work (the other side)
def test_mhd_and_nhdr_outputs_name_their_final_data_file(inp: Path, tmp_path: Path) -> None:
    from medsynth.io import read_volume

    for suffix, data in ((".mhd", "x.raw"), (".nhdr", "x.raw.gz")):
        out = tmp_path / suffix[1:]
        rc, _, err = run_cli(["convert", str(inp / "ct.nrrd"), str(out / f"x{suffix}")])
        assert rc == 0, err
        assert sorted(p.name for p in out.iterdir()) == sorted([f"x{suffix}", data])
        header = (out / f"x{suffix}").read_bytes()[:2000].decode("latin-1")
        assert re.search(r"(ElementDataFile = |data file: )" + re.escape(data), header), header
        assert np.array_equal(read_volume(out / f"x{suffix}").array, read_volume(inp / "ct.nrrd").array)


def test_missing_output_folders_are_created(inp: Path, tmp_path: Path) -> None:
    rc, _, err = run_cli(["nodule", str(inp / "ct.nrrd"), str(tmp_path / "a" / "n.nrrd"), "--ijk", "24", "20", "8",
                          "--mask", str(tmp_path / "b" / "c" / "m.nrrd"), "--json", str(tmp_path / "d" / "n.json")])
    assert rc == 0, err
    for rel in ("a/n.nrrd", "b/c/m.nrrd", "d/n.json"):
        assert (tmp_path / rel).is_file()


def test_nodule_in_air_outside_the_body_warns(inp: Path, tmp_path: Path) -> None:
    rc, _, err = run_cli(["nodule", str(inp / "ct.nrrd"), str(tmp_path / "n.nrrd"), "--ijk", "1", "1", "8"])
    assert rc == 0, err
    assert "outside the body" in err
    rc, _, err = run_cli(["nodule", str(inp / "ct.nrrd"), str(tmp_path / "n2.nrrd"), "--ijk", "14", "20", "8"])
    assert rc == 0 and "outside the body" not in err  # in the right lung: no such warning


def test_two_series_error_names_series_option_only_where_it_exists(inp: Path, tmp_path: Path) -> None:
    rc, _, err = run_cli(["convert", str(inp / "series2"), str(tmp_path / "x.nrrd")])
    assert rc == 2 and "--series" in err
    rc, _, err = run_cli(["superres", str(inp / "series2"), str(tmp_path / "x.nrrd"), "--spacing", "1"])
    assert rc == 2 and "DICOM series" in err and "--series" not in err


def test_error_after_progress_starts_on_its_own_line(inp: Path, tmp_path: Path) -> None:
    rc, _, err = run_cli(["nodule-batch", "--images", str(inp / "hosts_cut"), "--count", "4", "--out",
                          str(tmp_path / "b")])
    assert rc == 2
    assert "\r[" in err  # progress was shown
    line = [ln for ln in err.split("\n") if "error:" in ln][0]
    assert line.startswith("medsynth nodule-batch: error:"), repr(line)


def test_system_errors_exit_2_with_one_line_and_leave_nothing(inp: Path, tmp_path: Path, monkeypatch) -> None:
    """A full disk (or any OSError) while writing: exit 2, one line, no traceback, nothing left."""
    import errno

    import SimpleITK as sitk

    real = sitk.WriteImage

    def full_disk(image, path, *a, **k):
        real(image, path, *a, **k)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)

    monkeypatch.setattr(sitk, "WriteImage", full_disk)
    out = tmp_path / "o"
    rc, _, err = run_cli(["nodule", str(inp / "ct.nrrd"), str(out / "n.nrrd"), "--ras", "0", "0", "0",
                          "--mask", str(out / "m.nrrd")])
    assert rc == 2 and "Traceback" not in err
    assert "No space left on device" in err and err.count("\n") == 1
    assert not out.exists()


def test_all_outputs_or_none_when_the_second_write_fails(inp: Path, tmp_path: Path, monkeypatch) -> None:
    """The main output is written, the mask fails: neither is left."""
    import medsynth.nodule.images as images

    def broken(mask, path):
        raise OSError(5, "Input/output error", str(path))

    monkeypatch.setattr(images, "write_mask", broken)
    rc, _, err = run_cli(["nodule", str(inp / "ct.nrrd"), str(tmp_path / "n.nrrd"), "--ras", "0", "0", "0",
                          "--mask", str(tmp_path / "m.nrrd"), "--json", str(tmp_path / "n.json")])
    assert rc == 2 and "Input/output error" in err
    assert list(tmp_path.iterdir()) == []


def test_every_help_text_renders() -> None:
    from medsynth.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    names = list(sub.choices)
    assert "metaad" in names and len(names) >= 15
    for name in names:
        rc, out, err = run_cli([name, "--help"])
        assert rc == 0 and "usage:" in out and "Traceback" not in err, name
    for what in ("superres", "cells", "cells-augmentation", "fdg2cft", "mr2ct", "metaad"):
        rc, out, err = run_cli(["evaluate", what, "--help"])
        assert rc == 0 and "usage:" in out, what


# --------------------------------------------------------------------------- as real processes
PROCESS_CASES = [
    ("convert {i}/cut.nii.gz {o}/x.nrrd", r"cut short"),
    ("superres {i}/ct.nrrd {i}/ct.nrrd --spacing 2", r"is an input"),
    ("nodule {i}/ct.nrrd {o}/x.nrrd --diameter nan --ras 0 0 0", r"not a finite number"),
    ("metaad --help", None),
    ("nodule-batch --images {i}/hosts_cut --count 3 --out {o}/b", r"cut short"),
    ("cells --class NILM --count 1 --out {o} --seed -1", r"seed.*minimum"),
]


@pytest.mark.parametrize("argv,pattern", PROCESS_CASES, ids=[c[0].split()[0] + str(n) for n, c in
                                                              enumerate(PROCESS_CASES)])
def test_as_a_process(argv: str, pattern: Optional[str], inp: Path, inp_state, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    args = shlex.split(argv.format(i=inp, o=out))
    proc = subprocess.run([sys.executable, "-m", "medsynth", *args], capture_output=True, text=True,
                          env=subprocess_env(), timeout=300)
    assert "Traceback" not in proc.stderr
    if pattern is None:
        assert proc.returncode == 0 and "usage:" in proc.stdout
        return
    assert proc.returncode == 2, proc.stderr
    assert re.search(pattern, proc.stderr, re.IGNORECASE)
    assert tree_state(inp) == inp_state
    assert list(out.iterdir()) == []


# --------------------------------------------------------------------------- Ctrl-C
# batch commands (nodule-batch, cells, superres over a folder) keep the whole items made before a Ctrl-C: see
# test_parallel.py
LONG_COMMANDS = [  # (id, command, seconds to wait after the first progress line before Ctrl-C)
    ("superres", "superres {i}/mr.nii.gz {o}/sr.nii.gz --spacing 0.3 --axis k", 0.3),
    ("pet-simulate", "pet-simulate --subjects 200 --out {o}/cohort", 2.5),
    ("mr2ct", "mr2ct {i}/mr.nii.gz {o}/sct.nii.gz --mu-map {o}/mu.nii.gz", 0.1),
    ("fdg2cft", "fdg2cft {i}/fdg.nii.gz {o}/cft.nii.gz --report {o}/r.json --space native", 0.3),
    ("metaad", "metaad {i}/fdg.nii.gz {o}/map.nii.gz --report {o}/r.json --space native", 0.2),
    ("demo", "demo --out {o}/demo", 3.0),
]


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process is POSIX")
@pytest.mark.parametrize("cid,argv,delay", LONG_COMMANDS, ids=[c[0] for c in LONG_COMMANDS])
def test_ctrl_c_leaves_nothing(cid: str, argv: str, delay: float, inp: Path, inp_state, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("the user's own file\n")
    before = tree_state(out)
    args = shlex.split(argv.format(i=inp, o=out))
    rc, err = interrupt_when(args, subprocess_env(), lambda seen: b"%]" in seen, delay)
    assert rc == 130, f"exit status {rc}: {err[-800:]}"
    assert "Traceback" not in err
    assert "interrupted; no output written" in err
    assert tree_state(inp) == inp_state
    assert tree_state(out) == before, f"left behind: {sorted(set(tree_state(out)) - set(before))}"
