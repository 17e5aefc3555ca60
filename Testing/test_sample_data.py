"""The shipped sample data: files, terms, Slicer registration, and scripts/make_sample_data.py rebuilding them."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from medsynth.errors import InputError
from medsynth.io import read_volume
from medsynth.sample_data import SAMPLES, get_sample, sample_path

from conftest import shared_file

REPO = Path(__file__).resolve().parent.parent
FOLDER = REPO / "Resources" / "SampleData"
SCRIPT = REPO / "scripts" / "make_sample_data.py"
EARLIER = ("brain_mri", "head_ct")  # shipped before issue #22


def _script():
    spec = importlib.util.spec_from_file_location("make_sample_data", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_sample_is_shipped_small_with_its_terms():
    readme = (FOLDER / "README.md").read_text(encoding="utf-8")
    assert readme == _script().readme()  # the README is what the script writes from the catalogue
    for s in SAMPLES:
        path = sample_path(s.key)
        assert path.parent == FOLDER and path.stat().st_size > 10_000, s.file
        assert f"`{s.file}`" in readme and s.terms in readme, s.file
        assert ("simulated" in s.file) == s.simulated  # users see it in the name
    new = sum(sample_path(s.key).stat().st_size for s in SAMPLES if s.key not in EARLIER)
    assert new < 4.2e6, f"new sample files: {new / 1e6:.2f} MB"
    assert {s.key for s in SAMPLES} >= {"chest_ct", "chest_xray", "cytology", "fdg_pet"}
    # sources whose terms do not allow shipping: named as not shipped, and no file of theirs here
    assert "chest_ct_crop_pulmonary" in readme and "Herlev" in readme
    names = [p.name for p in FOLDER.iterdir()]
    assert not any("pulmonary" in n or "herlev" in n.lower() or n.endswith(".dcm") for n in names), names
    with pytest.raises(InputError, match="unknown sample"):
        get_sample("chest_ct_crop_pulmonary")


def test_slicer_registers_every_sample_under_medsynth():
    source = (REPO / "MedSynthExtension" / "MedSynthExtension.py").read_text(encoding="utf-8")
    tree = ast.parse(source)
    registered = next(ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)
                      and getattr(node.targets[0], "id", "") == "SAMPLE_DATA")
    assert list(registered) == [(s.title, s.file, s.node_name) for s in SAMPLES]
    assert 'category="MedSynth"' in source and "for title, fileName, nodeName in SAMPLE_DATA" in source


def test_the_samples_read_as_described():
    ct = read_volume(sample_path("chest_ct"))
    assert ct.array.dtype == np.int16 and ct.shape_ijk == (112, 96, 48)
    assert ct.spacing.tolist() == pytest.approx([2.0, 2.0, 2.5])
    cxr = read_volume(sample_path("chest_xray"))
    assert cxr.array.shape == (1, 977, 920) and cxr.array.dtype == np.uint16
    assert cxr.spacing[:2].tolist() == pytest.approx([2 * 370.0 / 1841] * 2, abs=1e-5)
    lungs = cxr.array[0, 300:600, 150:350].mean()
    spine = cxr.array[0, 300:600, 440:480].mean()
    assert spine > lungs  # MONOCHROME2: the mediastinum is brighter than the lung fields
    cells = read_volume(sample_path("cytology"))
    assert cells.is_vector and cells.components == 3 and cells.array.shape[:3] == (1, 336, 336)
    pet = read_volume(sample_path("fdg_pet"))
    assert pet.array.dtype == np.float32 and pet.shape_ijk == (91, 109, 91) and pet.array.max() > 1.0
    np.testing.assert_array_equal(pet.array, np.round(pet.array, 2))


def test_make_sample_data_rebuilds_the_simulated_samples(tmp_path):
    cmd = [sys.executable, str(SCRIPT), "--only", "chest_ct", "cytology", "fdg_pet", "--out", str(tmp_path)]
    subprocess.run(cmd, check=True, timeout=600, cwd=REPO, capture_output=True)
    assert (tmp_path / "README.md").read_text(encoding="utf-8") == (FOLDER / "README.md").read_text(encoding="utf-8")
    for key in ("chest_ct", "cytology", "fdg_pet"):
        made, shipped = read_volume(tmp_path / get_sample(key).file), read_volume(sample_path(key))
        np.testing.assert_allclose(made.ijk_to_ras, shipped.ijk_to_ras, atol=1e-6)
        # the generator runs through ONNX Runtime: another CPU may round a colour value differently
        np.testing.assert_allclose(made.array.astype(float), shipped.array.astype(float), atol=2 if key == "cytology" else 0)


@pytest.mark.shared
def test_make_sample_data_rebuilds_the_radiograph_from_the_dicom(tmp_path):
    shared = shared_file("cxr/RG1_UNCR.dcm").parent.parent
    cmd = [sys.executable, str(SCRIPT), "--only", "chest_xray", "--shared", str(shared), "--out", str(tmp_path)]
    subprocess.run(cmd, check=True, timeout=600, cwd=REPO, capture_output=True)
    made, shipped = read_volume(tmp_path / get_sample("chest_xray").file), read_volume(sample_path("chest_xray"))
    np.testing.assert_array_equal(made.array, shipped.array)
    np.testing.assert_allclose(made.ijk_to_ras, shipped.ijk_to_ras, atol=1e-6)
