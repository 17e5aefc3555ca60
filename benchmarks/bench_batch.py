"""Batch synthesis: nodule-batch in this process vs on a local Dask cluster, compressed vs plain NRRD writes, and the
host preparation that is now done once per host.

    python benchmarks/bench_batch.py [--kind cxr|ct|both] [--count 640] [--workers 2] [--hosts DIR]

Hosts: --hosts DIR, else for ``cxr`` the held-out test radiographs of the detector benchmark
(benchmarks/data/cxr_test_hosts.txt, under ../shared/data) when present, else phantom radiographs; for ``ct`` three
chest CT phantoms (96 x 160 x 160 voxels). In the same run, the same batch (same seed) is made:

1. in this process with ``--compress`` (gzip NRRD for CT, PNG at zlib's default level for radiographs: the former
   behaviour),
2. in this process with the default now (plain NRRD, PNG at zlib level 1),
3. on a local Dask cluster of --workers processes (default writes; cluster start-up included).

Prints wall seconds, images per second and the ratios 1/2 and 2/3 (3: the speed-up from more workers), checks that
runs 2 and 3 wrote identical files, and times the host preparation (lung places) against one image's draw from it.
CPU; the machine's cores are printed.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "MedSynthExtension"))


def digest(folder: Path) -> Dict[str, str]:
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.name != "annotations.json":
            out[str(p.relative_to(folder))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def cxr_hosts(work: Path) -> List[Path]:
    listed = REPO / "benchmarks" / "data" / "cxr_test_hosts.txt"
    names = [ln.strip() for ln in listed.read_text().splitlines() if ln.strip() and not ln.startswith("#")] \
        if listed.is_file() else []
    files = [f for f in (REPO / n for n in names) if f.is_file()]  # paths relative to the repository
    d = work / "cxr_hosts"
    d.mkdir()
    if files:
        for f in files:
            shutil.copy(f, d / f.name)
        return sorted(d.iterdir())
    from medsynth.io import write_volume
    from medsynth.nodule.phantom import chest_ct_phantom, radiograph_from_ct

    for n in range(4):
        ct = chest_ct_phantom(shape_kji=(96, 160, 160), spacing_kji=(2.5, 2.2, 2.2), seed=n)
        cxr, _ = radiograph_from_ct(ct)
        write_volume(cxr, d / f"phantom_{n}.png")
    return sorted(d.iterdir())


def ct_hosts(work: Path) -> List[Path]:
    from medsynth.io import write_volume
    from medsynth.nodule.phantom import chest_ct_phantom

    d = work / "ct_hosts"
    d.mkdir()
    for n in range(3):
        write_volume(chest_ct_phantom(shape_kji=(96, 160, 160), spacing_kji=(2.5, 2.2, 2.2), seed=n),
                     d / f"ct_{n}.nrrd")
    return sorted(d.iterdir())


def one_kind(kind: str, folder: Path, count: int, workers: int, work: Path) -> None:
    from medsynth.nodule.batch import _PreparedHost, run_batch
    from medsynth.parallel import Workers

    print(f"\n== {kind}: {count} images from {len(list(folder.iterdir()))} hosts in {folder}")
    runs = [("1 this process, --compress", Workers(), True), ("2 this process, default", Workers(), False),
            (f"3 {workers} Dask workers, default", Workers(workers), False)]
    times, digests = {}, {}
    for name, w, compress in runs:
        out = work / f"{kind}_{name[0]}"
        t0 = time.perf_counter()
        res = run_batch(folder, count, out, seed=7, workers=w, compress=compress)
        times[name[0]] = time.perf_counter() - t0
        assert res["images"] == count and not res["failed"], res["failed"]
        mb = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 1e6
        print(f"  {name:<32} {times[name[0]]:7.1f} s  {count / times[name[0]]:6.2f} images/s  {mb:7.1f} MB")
        digests[name[0]] = digest(out)
        shutil.rmtree(out)  # a large batch need not stay on disk three times
    same = digests["2"] == digests["3"]
    print(f"  compression cost (1 / 2): {times['1'] / times['2']:.2f}x;  speed-up with {workers} workers (2 / 3): "
          f"{times['2'] / times['3']:.2f}x;  runs 2 and 3 wrote identical files: {same}")
    if not same:
        raise SystemExit("runs 2 and 3 differ")
    host = max(folder.iterdir(), key=lambda p: p.stat().st_size)  # the largest host file
    t0 = time.perf_counter()
    prep = _PreparedHost(str(host), None)
    t_prep = time.perf_counter() - t0
    t0 = time.perf_counter()
    for s in range(20):
        prep.points(12.0, seed=s)
    t_pts = (time.perf_counter() - t0) / 20
    print(f"  host preparation of the largest host (read + lung places; once per host and worker now, once per image "
          f"before): {t_prep:.3f} s; a draw of places from it: {1000 * t_pts:.2f} ms")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kind", choices=("cxr", "ct", "both"), default="both")
    p.add_argument("--count", type=int, default=640, help="radiograph images (CT: a quarter)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--hosts", type=Path, default=None, help="a folder of hosts (one kind) instead of the defaults")
    a = p.parse_args()
    print(f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; Python {platform.python_version()}")
    work = Path(tempfile.mkdtemp(prefix="medsynth-bench-batch-"))
    try:
        if a.hosts:
            one_kind("hosts", a.hosts, a.count, a.workers, work)
            return 0
        if a.kind in ("cxr", "both"):
            one_kind("cxr", Path(cxr_hosts(work)[0]).parent, a.count, a.workers, work)
        if a.kind in ("ct", "both"):
            one_kind("ct", Path(ct_hosts(work)[0]).parent, max(1, a.count // 4), a.workers, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
