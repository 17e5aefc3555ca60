"""Batches beyond one process (medsynth.parallel): the same files serially, on a local Dask cluster of 2 workers and
on a Dask scheduler with 2 workers started as separate processes on loopback; item-by-item outputs; failures and
Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import chest_phantoms, interrupt_when, run_cli, tree_state

pytest.importorskip("distributed")

ENGINE = Path(__file__).resolve().parent.parent / "MedSynthExtension"


def env() -> dict:
    e = dict(os.environ)  # the engine, and this folder (the scheduler's workers import a task of this file)
    e["PYTHONPATH"] = os.pathsep.join([str(ENGINE), str(Path(__file__).resolve().parent), e.get("PYTHONPATH", "")])
    e["PYTHONUNBUFFERED"] = "1"
    return e


@pytest.fixture(scope="module")
def hosts(tmp_path_factory) -> Path:
    """Two radiographs and a small CT (three hosts: images 0, 3, 6... use the first)."""
    from medsynth.io import write_volume

    d = tmp_path_factory.mktemp("hosts")
    ct, cxr = chest_phantoms((24, 64, 72), (3.0, 2.5, 2.5))
    write_volume(ct, d / "a_ct.nrrd")
    write_volume(cxr, d / "b_cxr.png")
    write_volume(cxr.with_array(cxr.array[:, ::-1, :].copy()), d / "c_cxr_flipped.png")
    return d


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory):
    """``dask scheduler`` and two ``dask worker`` processes (one thread each) on loopback; yields the address."""
    d = tmp_path_factory.mktemp("dask")
    sched_file = d / "scheduler.json"
    exe = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    procs = [subprocess.Popen(exe + ["--host", "127.0.0.1", "--port", "0", "--dashboard-address", "127.0.0.1:0",
                                     "--scheduler-file", str(sched_file)], env=env(), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, cwd=d)]
    try:
        deadline = time.time() + 60
        while not sched_file.exists() and time.time() < deadline:
            time.sleep(0.2)
        assert sched_file.exists(), "the scheduler did not start"
        for _ in range(2):
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "distributed.cli.dask_worker", "--scheduler-file", str(sched_file),
                 "--nthreads", "1", "--nworkers", "1", "--host", "127.0.0.1", "--no-dashboard"],
                env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=d))
        from distributed import Client

        time.sleep(0.5)
        address = json.loads(sched_file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        with Client(address, timeout="30s") as c:
            c.wait_for_workers(2, timeout=60)
        yield address
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


def files_of(folder: Path) -> dict:
    return {k: v for k, v in tree_state(folder).items() if v != "dir"}


# --------------------------------------------------------------------------- the same files wherever they run
def test_nodule_batch_same_files_serial_local_cluster_and_scheduler(hosts: Path, scheduler: str, tmp_path) -> None:
    outs = {}
    for name, extra in (("serial", []), ("local2", ["--workers", "2"]), ("sched", ["--scheduler", scheduler])):
        out = tmp_path / name
        rc, stdout, err = run_cli(["nodule-batch", "--images", str(hosts), "--count", "7", "--seed", "5", "--out",
                                   str(out), *extra])
        assert rc == 0, err
        assert "wrote 7 images" in stdout
        outs[name] = files_of(out)
    assert len(outs["serial"]) == 7 * 2 + 1  # images, masks, annotations.json
    assert outs["serial"] == outs["local2"] == outs["sched"]
    coco = json.loads((tmp_path / "serial" / "annotations.json").read_text())
    assert [i["id"] for i in coco["images"]] == list(range(1, 8))
    assert [i["host"] for i in coco["images"]] == ["a_ct.nrrd", "b_cxr.png", "c_cxr_flipped.png"] * 2 + ["a_ct.nrrd"]
    assert coco["info"]["failed"] == [] and "incomplete" not in coco["info"]


def test_image_n_does_not_depend_on_the_batch_size(hosts: Path, tmp_path) -> None:
    from medsynth.nodule.batch import run_batch

    run_batch(hosts, 2, tmp_path / "two", seed=9)
    run_batch(hosts, 5, tmp_path / "five", seed=9)
    two, five = files_of(tmp_path / "two"), files_of(tmp_path / "five")
    images = [k for k in two if k.startswith(("images", "masks"))]
    assert len(images) == 4 and all(two[k] == five[k] for k in images)
    other = run_batch(hosts, 2, tmp_path / "other", seed=10)
    assert other["images"] == 2
    assert files_of(tmp_path / "other") != two  # another seed, other nodules


def test_cells_same_files_serial_and_two_workers(tmp_path) -> None:
    from medsynth.runtime import list_models

    if "cellgan" not in list_models():
        pytest.skip("cellgan model not installed")
    for name, extra in (("serial", []), ("two", ["--workers", "2"])):
        rc, _, err = run_cli(["cells", "--class", "all", "--count", "70", "--seed", "3", "--out", str(tmp_path / name),
                              *extra])
        assert rc == 0, err
    a, b = files_of(tmp_path / "serial"), files_of(tmp_path / "two")
    assert len(a) == 4 * 70 + 1 and a == b  # more than one run of 64 per class


def test_superres_folder_same_files_and_a_bad_volume(tmp_path) -> None:
    from medsynth import Volume, make_ijk_to_ras
    from medsynth.io import write_volume

    src = tmp_path / "in"
    rng = np.random.default_rng(0)
    for n in range(3):
        arr = rng.normal(100, 10, (8, 20, 18)).astype(np.float32)
        write_volume(Volume(arr, make_ijk_to_ras((1.0, 1.0, 4.0)), f"v{n}"), src / f"v{n}.nii.gz")
    (src / "notes.txt").write_text("not a volume\n")
    before = tree_state(src)
    for name, extra in (("serial", []), ("two", ["--workers", "2"])):
        rc, stdout, err = run_cli(["superres", str(src), str(tmp_path / name), "--spacing", "2", "--method", "bspline",
                                   *extra])
        assert rc == 0, err
        assert "wrote 3 volumes" in stdout
    assert files_of(tmp_path / "serial") == files_of(tmp_path / "two")
    assert sorted(files_of(tmp_path / "serial")) == ["v0.nii.gz", "v1.nii.gz", "v2.nii.gz"]
    from medsynth.io import read_volume

    assert read_volume(tmp_path / "serial" / "v1.nii.gz").array.shape[0] == 15  # 8 slices of 4 mm -> 2 mm
    # a cut file among them: reported, the others written
    good = (src / "v2.nii.gz").read_bytes()
    (src / "v2.nii.gz").write_bytes(good[: len(good) // 2])
    rc, _, err = run_cli(["superres", str(src), str(tmp_path / "cut"), "--spacing", "2", "--method", "bspline",
                          "--workers", "2"])
    assert rc == 2 and "Traceback" not in err
    assert "1 of 3 volumes failed" in err and "v2.nii.gz" in err
    assert sorted(files_of(tmp_path / "cut")) == ["v0.nii.gz", "v1.nii.gz"]
    assert not [p for p in (tmp_path / "cut").rglob("*") if ".partial-" in p.name]
    (src / "v2.nii.gz").write_bytes(good)
    assert tree_state(src) == before


# --------------------------------------------------------------------------- failures, bad options
def test_a_failed_image_is_reported_and_the_others_finish(hosts: Path, tmp_path) -> None:
    src = tmp_path / "hosts"
    src.mkdir()
    for f in hosts.iterdir():
        (src / f.name).write_bytes(f.read_bytes())
    good = (src / "b_cxr.png").read_bytes()
    (src / "b_cxr.png").write_bytes(good[: len(good) // 3])  # cut short: every image of this host fails
    out = tmp_path / "b"
    rc, _, err = run_cli(["nodule-batch", "--images", str(src), "--count", "6", "--out", str(out), "--workers", "2"])
    assert rc == 2 and "Traceback" not in err
    assert "2 of 6 images failed" in err and "b_cxr.png" in err and "annotations.json" in err
    coco = json.loads((out / "annotations.json").read_text())
    assert [i["id"] for i in coco["images"]] == [1, 3, 4, 6]
    assert [f["index"] for f in coco["info"]["failed"]] == [1, 4]
    listed = {"annotations.json"} | {i["file_name"] for i in coco["images"]} | {i["mask_file"] for i in coco["images"]}
    assert set(files_of(out)) == listed  # every file listed, nothing else


def test_bad_worker_options_exit_2(hosts: Path, tmp_path) -> None:
    base = ["nodule-batch", "--images", str(hosts), "--count", "1", "--out", str(tmp_path / "b")]
    rc, _, err = run_cli(base + ["--workers", "0"])
    assert rc == 2 and "workers" in err and "minimum" in err
    rc, _, err = run_cli(base + ["--scheduler", "tcp://127.0.0.1:9"])  # nothing listens on port 9
    assert rc == 2 and "Traceback" not in err and "cannot reach the Dask scheduler" in err
    assert not (tmp_path / "b").exists()


def test_without_dask_a_clear_error(monkeypatch, hosts: Path, tmp_path) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    rc, _, err = run_cli(["nodule-batch", "--images", str(hosts), "--count", "1", "--out", str(tmp_path / "b"),
                          "--workers", "2"])
    assert rc == 2 and "need Dask" in err
    rc, _, err = run_cli(["nodule-batch", "--images", str(hosts), "--count", "1", "--out", str(tmp_path / "b")])
    assert rc == 0, err  # one worker never needs it


def test_item_folder_keeps_whole_items_only(tmp_path) -> None:
    from medsynth.io import write_json
    from medsynth.parallel import ItemFolder, item_files

    out = tmp_path / "o"
    out.mkdir()
    (out / "user.txt").write_text("mine\n")
    with ItemFolder(out) as folder:
        with item_files(out):
            write_json({"a": 1}, out / "x" / "1a.json")
            write_json({"b": 1}, out / "x" / "1b.json")
            assert not (out / "x" / "1a.json").exists()  # not before the whole item is written
        folder.keep([out / "x" / "1a.json", out / "x" / "1b.json"])
        with pytest.raises(OSError):
            with item_files(out):
                write_json({"a": 2}, out / "x" / "2a.json")
                raise OSError(5, "Input/output error")
        (out / "x" / "stray.json").write_text("{}")  # e.g. an item renamed half-way when a worker was stopped
    assert sorted(files_of(out)) == ["user.txt", "x/1a.json", "x/1b.json"]
    new = tmp_path / "new" / "deeper"
    with ItemFolder(new):
        with item_files(new):
            write_json({}, new / "z.json")
    assert not (tmp_path / "new").exists()  # made by the run, nothing kept: gone again


# --------------------------------------------------------------------------- Ctrl-C
BATCHES = [  # (id, command, the number of items, how the whole items are listed)
    ("nodule-batch-1", "nodule-batch --images {hosts} --count 3000 --out {out} --workers 1", 3000, "images"),
    ("nodule-batch-2", "nodule-batch --images {hosts} --count 3000 --out {out} --workers 2", 3000, "images"),
    ("nodule-batch-scheduler", "nodule-batch --images {hosts} --count 3000 --out {out} --scheduler {sched}", 3000,
     "images"),
    ("cells-2", "cells --class all --naming herlev --count 2000 --out {out} --workers 2", 14000, "cells"),
]


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process is POSIX")
@pytest.mark.parametrize("cid,argv,total,what", BATCHES, ids=[b[0] for b in BATCHES])
def test_ctrl_c_leaves_whole_items_listed(cid: str, argv: str, total: int, what: str, hosts: Path, tmp_path,
                                          request) -> None:
    sched = request.getfixturevalue("scheduler") if "{sched}" in argv else ""
    if cid.startswith("cells"):
        from medsynth.runtime import list_models

        if "cellgan" not in list_models():
            pytest.skip("cellgan model not installed")
    out = tmp_path / "out"
    pattern = re.compile(rb"\] ([0-9]+)/%d" % total)

    def ready(seen: bytes) -> bool:  # some items are whole and more are being made
        done = pattern.findall(seen)
        return bool(done) and int(done[-1]) >= 8

    rc, err = interrupt_when(argv.format(hosts=hosts, out=out, sched=sched).split(), env(), ready)
    assert rc == 130, err[-800:]
    assert "Traceback" not in err
    assert "interrupted; the" in err and f"whole {what} made before are kept" in err
    if what == "images":
        coco = json.loads((out / "annotations.json").read_text())
        assert 8 <= len(coco["images"]) < total and "incomplete" in coco["info"]
        listed = {"annotations.json"} | {i["file_name"] for i in coco["images"]} | \
            {i["mask_file"] for i in coco["images"]}
    else:
        import csv

        with open(out / "cells.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        assert 8 <= len(rows) < total
        listed = {"cells.csv"} | {r["file"] for r in rows}
    assert set(files_of(out)) == listed  # whole items only: nothing unlisted, no partial file
    if sched:  # the scheduler's workers outlive the command: they were told to stop, and make no more items
        time.sleep(3.0)
        assert set(files_of(out)) == listed


def _slow_items(out: str, task: int) -> int:
    """A task of 20 one-file items, 0.3 s apart (run on the scheduler's workers)."""
    from medsynth.io import write_json
    from medsynth.parallel import item_files

    for k in range(20):
        time.sleep(0.3)
        with item_files(out):
            write_json({"task": task, "k": k}, Path(out) / f"{task}_{k}.json")
    return task


def test_a_stopped_batch_makes_no_new_items_on_remote_workers(scheduler: str, tmp_path) -> None:
    """Workers of a remote scheduler outlive the command; a cancel tells their running tasks to make no more items."""
    from medsynth.errors import Cancelled
    from medsynth.parallel import Workers, run_tasks
    from medsynth.progress import CancelToken

    out = tmp_path / "o"
    out.mkdir()
    token = CancelToken()
    threading.Timer(2.0, token.cancel).start()
    from functools import partial

    with pytest.raises(Cancelled):
        run_tasks(partial(_slow_items, str(out)), [0, 1], Workers(scheduler=scheduler), cancel=token)
    made = set(files_of(out))
    assert 0 < len(made) < 40
    time.sleep(3.0)  # the tasks would have made about 10 more items each by now
    assert set(files_of(out)) == made
