"""Shared pytest fixtures: small volumes made here, and the optional ../shared/data."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from medsynth import Volume, make_ijk_to_ras  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("MEDSYNTH_SHARED_DATA", REPO.parent / "shared" / "data"))


def shared_file(rel: str) -> Path:
    """A file of ../shared/data, or skip the test saying what is missing."""
    path = SHARED_DATA / rel
    if not path.exists():
        pytest.skip(f"needs ../shared/data/{rel} (reference data not present at {SHARED_DATA})")
    return path


def rotation(axis: str, degrees: float) -> np.ndarray:
    a = np.deg2rad(degrees)
    c, s = np.cos(a), np.sin(a)
    if axis == "x":
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    if axis == "y":
        return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


@pytest.fixture
def oblique_volume() -> Volume:
    """Oblique, anisotropic, left-handed, with a non-symmetric array (so flips are caught)."""
    rng = np.random.default_rng(0)
    arr = rng.integers(-1000, 2000, size=(5, 7, 9)).astype(np.int16)
    arr[0, 0, 0] = 3000  # a marker voxel
    directions = rotation("z", 20) @ rotation("x", -15) @ np.diag([1.0, 1.0, -1.0])  # det < 0
    return Volume(arr, make_ijk_to_ras((0.7, 1.3, 4.0), (12.5, -40.25, 7.0), directions), name="oblique")


def tree_state(folder: Path, mtimes: bool = False) -> Dict[str, str]:
    """Every path under ``folder`` with the sha256 of its bytes (folders: 'dir', links: their target; with
    ``mtimes`` also each file's modification time, so a rewrite with the same bytes shows)."""
    state: Dict[str, str] = {}
    if not folder.exists():
        return state
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            p = Path(root) / name
            rel = str(p.relative_to(folder))
            if p.is_symlink():
                state[rel] = "link:" + os.readlink(p)
            elif p.is_dir():
                state[rel] = "dir"
            else:
                state[rel] = hashlib.sha256(p.read_bytes()).hexdigest() + (f" {p.stat().st_mtime_ns}" if mtimes else "")
    return state


def chest_phantoms(shape_kji: Tuple[int, int, int], spacing_kji: Tuple[float, float, float]):
    """A chest CT phantom (HU) and the radiograph projected from it: (ct, cxr) volumes."""
    from medsynth.nodule.phantom import chest_ct_phantom, radiograph_from_ct

    ct = chest_ct_phantom(shape_kji=shape_kji, spacing_kji=spacing_kji)
    return ct, radiograph_from_ct(ct)[0]


def interrupt_when(args: List[str], env: Dict[str, str], ready: Callable[[bytes], bool], delay: float = 0.0,
                   timeout: float = 180.0) -> Tuple[int, str]:
    """Run ``python -m medsynth ARGS``, send it SIGINT (the user's Ctrl-C) once ``ready(stderr so far)`` holds and
    ``delay`` seconds more have passed; returns (exit status, stderr). Fails the test if it ends before that."""
    # a job started in the background by a non-interactive shell inherits SIGINT ignored: the user's Ctrl-C
    # reaches a foreground command with the default disposition, so the child gets that
    proc = subprocess.Popen([sys.executable, "-m", "medsynth", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    chunks: List[bytes] = []

    def pump() -> None:
        assert proc.stderr is not None
        for block in iter(lambda: proc.stderr.read1(4096), b""):  # type: ignore[union-attr]
            chunks.append(block)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    deadline = time.time() + timeout
    while not ready(b"".join(chunks)) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, f"{args[0]} ended before it could be interrupted: {b''.join(chunks)[-500:]!r}"
    time.sleep(delay)  # let it write some of its outputs
    assert proc.poll() is None, f"{args[0]} ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    try:
        rc = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(timeout=10)
    return rc, b"".join(chunks).decode("utf-8", "replace")


def run_cli(argv: List[str]) -> Tuple[int, str, str]:
    """``medsynth ARGV`` in this process: (exit status, stdout, stderr); argparse exits become statuses."""
    from medsynth.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(argv)
        except SystemExit as exc:  # argparse
            rc = exc.code if isinstance(exc.code, int) else 1
    return rc, out.getvalue(), err.getvalue()


def pytest_sessionfinish(session, exitstatus):
    """VTK objects freed at interpreter exit can log errors after pytest's summary; silence them then,
    so the summary stays the run's closing line."""
    _EXIT["status"] = int(exitstatus)
    try:
        from vtkmodules.vtkCommonCore import vtkLogger, vtkObject
    except ImportError:
        return
    vtkObject.GlobalWarningDisplayOff()
    vtkLogger.SetStderrVerbosity(vtkLogger.VERBOSITY_OFF)


_EXIT: Dict[str, int] = {}


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    """End the test process right after pytest has finished (summary printed, every plugin unconfigured), with
    pytest's own exit status, without the interpreter's teardown: native libraries loaded by the tests (VTK, Qt,
    ONNX Runtime, torch) can crash while they are torn down at exit (seen once here: exit 139 after "919 passed"),
    which would turn a green run red.  ``MEDSYNTH_TEST_NORMAL_EXIT=1`` keeps the normal exit."""
    if "status" in _EXIT and not os.environ.get("MEDSYNTH_TEST_NORMAL_EXIT"):
        import sys

        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_EXIT["status"])
