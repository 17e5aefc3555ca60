import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, shared_file
from medsynth.cli import main
from medsynth.io import read_volume, write_volume


def test_info_lists_versions_providers_and_models(capsys):
    assert main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["versions"]["SimpleITK"] and info["versions"]["onnxruntime"]
    assert "CPUExecutionProvider" in info["providers_used"]
    assert all(m["checksum_ok"] for m in info["models"])


def test_convert_keeps_geometry(tmp_path, oblique_volume, capsys):
    src = write_volume(oblique_volume, tmp_path / "in.nrrd")
    assert main(["convert", str(src), str(tmp_path / "out.mha")]) == 0
    assert "wrote" in capsys.readouterr().out
    out = read_volume(tmp_path / "out.mha")
    np.testing.assert_array_equal(out.array, oblique_volume.array)
    np.testing.assert_allclose(out.ijk_to_ras, oblique_volume.ijk_to_ras, atol=1e-5)


def test_convert_errors_are_clear_and_leave_nothing(tmp_path, capsys):
    assert main(["convert", str(tmp_path / "nope.nii"), str(tmp_path / "out.nrrd")]) == 2
    err = capsys.readouterr().err
    assert "error: input not found" in err
    assert not (tmp_path / "out.nrrd").exists()


def test_entry_point_runs_as_a_process(tmp_path):
    r = subprocess.run([sys.executable, "-m", "medsynth", "--help"], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0 and "convert" in r.stdout and "demo" in r.stdout


def test_demo_writes_outputs_and_overviews(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--only", "foundation"]) == 0
    out = capsys.readouterr().out
    pngs = sorted((tmp_path / "foundation").glob("*_overview.png"))
    assert len(pngs) >= 2 and str(tmp_path) in out
    picture = read_volume(pngs[0])
    assert picture.is_vector and picture.array.std() > 10  # not a blank picture


@pytest.mark.shared
def test_convert_real_dicom_series_and_nifti(tmp_path):
    assert main(["convert", str(shared_file("ct/example_ct_dicom")), str(tmp_path / "ct.nrrd")]) == 0
    assert read_volume(tmp_path / "ct.nrrd").array.shape[1:] == (512, 512)
    src = shared_file("ct/chest_ct_crop_pulmonary.nii.gz")
    assert main(["convert", str(src), str(tmp_path / "chest.mha")]) == 0
    a, b = read_volume(src), read_volume(tmp_path / "chest.mha")
    np.testing.assert_array_equal(a.array, b.array)
    np.testing.assert_allclose(a.ijk_to_ras, b.ijk_to_ras, atol=1e-4)


def test_the_global_device_flag_reaches_every_command() -> None:
    """``medsynth --device X COMMAND`` holds for commands that also take ``--device`` (metaad, evaluate fdg2cft):
    theirs, when given, wins; not given, it does not reset the global one."""
    from medsynth.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["--device", "cpu", "metaad", "f.nii.gz", "m.nii.gz"]).device == "cpu"
    assert parser.parse_args(["--device", "gpu", "evaluate", "fdg2cft", "--cohort", "c"]).device == "gpu"
    assert parser.parse_args(["metaad", "f.nii.gz", "m.nii.gz", "--device", "cpu"]).device == "cpu"
    assert parser.parse_args(["--device", "gpu", "metaad", "f.nii.gz", "m.nii.gz", "--device", "cpu"]).device == "cpu"
    assert parser.parse_args(["metaad", "f.nii.gz", "m.nii.gz"]).device is None
    assert parser.parse_args(["--device", "cpu", "nodule-batch", "--images", "i", "--count", "1", "--out", "o"]
                             ).device == "cpu"


def test_the_device_flag_is_set_before_the_command_runs(monkeypatch) -> None:
    import medsynth.runtime as runtime
    from medsynth.cli import main

    seen = []
    monkeypatch.setattr(runtime, "set_device", lambda d: seen.append(d))
    rc = main(["--device", "cpu", "metaad", "/nonexistent/f.nii.gz", "/tmp/never/m.nii.gz"])
    assert rc == 2 and seen == ["cpu"]


def test_info_names_versions_without_importing_the_heavy_packages():
    """``medsynth info`` reads versions from package metadata: torch, MONAI, VTK and Slicer are not imported."""
    import subprocess
    import sys

    code = ("import sys; from medsynth.commands.info import collect; v = collect()['versions']; "
            "print(sorted(m for m in ('torch', 'monai', 'vtk', 'slicer') if m in sys.modules)); print(v['numpy'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    loaded, numpy_version = out.stdout.splitlines()[-2:]
    assert loaded == "[]"
    import numpy

    assert numpy_version == numpy.__version__
