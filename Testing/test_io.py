import os

import numpy as np
import pytest
import SimpleITK as sitk

from conftest import shared_file
from medsynth import InputError, Volume, make_ijk_to_ras
from medsynth.io import read_volume, volume_from_sitk, volume_to_sitk, write_volume


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd", ".mha"])
def test_write_read_round_trip_keeps_voxels_and_geometry(tmp_path, oblique_volume, suffix):
    path = write_volume(oblique_volume, tmp_path / f"v{suffix}")
    back = read_volume(path)
    np.testing.assert_array_equal(back.array, oblique_volume.array)
    np.testing.assert_allclose(back.ijk_to_ras, oblique_volume.ijk_to_ras, atol=1e-5)
    assert back.name == "v"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary files left


def test_lps_ras_change_is_made_once():
    """A SimpleITK origin (LPS) of (10, 20, 30) is RAS (-10, -20, 30); identity directions flip i and j."""
    img = sitk.Image(4, 3, 2, sitk.sitkInt16)
    img.SetOrigin((10, 20, 30))
    img.SetSpacing((1, 2, 3))
    v = volume_from_sitk(img)
    np.testing.assert_allclose(v.origin, [-10, -20, 30])
    np.testing.assert_allclose(v.ijk_to_ras[:3, :3], np.diag([-1, -2, 3]))
    again = volume_to_sitk(v)
    assert again.GetOrigin() == (10, 20, 30) and again.GetDirection() == img.GetDirection()


def test_same_voxel_same_point_as_itk(tmp_path, oblique_volume):
    """ITK's own index->physical mapping (LPS) matches the engine's RAS mapping after the sign change."""
    path = write_volume(oblique_volume, tmp_path / "v.nrrd")
    img = sitk.ReadImage(str(path))
    for ijk in [(0, 0, 0), (8, 6, 4), (3, 1, 2)]:
        lps = np.array(img.TransformIndexToPhysicalPoint(ijk))
        ras = oblique_volume.ijk_to_ras_points(ijk)[0]
        np.testing.assert_allclose(lps * [-1, -1, 1], ras, atol=1e-4)


def test_png_rgb_and_grey(tmp_path):
    rgb = Volume(np.random.default_rng(1).integers(0, 255, (1, 5, 7, 3)).astype(np.uint8), name="rgb")
    back = read_volume(write_volume(rgb, tmp_path / "rgb.png"))
    assert back.is_vector and back.array.shape == (1, 5, 7, 3)
    np.testing.assert_array_equal(back.array, rgb.array)
    grey = Volume(np.arange(35, dtype=np.float32).reshape(1, 5, 7), name="grey")
    back = read_volume(write_volume(grey, tmp_path / "grey.png"))
    np.testing.assert_array_equal(back.array, grey.array.astype(np.uint8))


def test_png_refuses_values_it_cannot_hold(tmp_path):
    v = Volume(np.full((1, 3, 3), -5.5, np.float32), name="neg")
    with pytest.raises(InputError, match="png stores integers"):
        write_volume(v, tmp_path / "x.png")
    assert not list(tmp_path.iterdir())


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(sitk, "WriteImage", boom)
    with pytest.raises(RuntimeError):
        write_volume(Volume(np.zeros((2, 2, 2), np.int16)), tmp_path / "x.nii.gz")
    assert not list(tmp_path.iterdir())


def test_bad_inputs_are_named(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_volume(tmp_path / "missing.nii.gz")
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(InputError, match="unsupported format '.txt'"):
        read_volume(tmp_path / "x.txt")
    (tmp_path / "empty.nii.gz").write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        read_volume(tmp_path / "empty.nii.gz")
    (tmp_path / "junk.nrrd").write_bytes(b"not an image at all")
    with pytest.raises(InputError, match="cannot read"):
        read_volume(tmp_path / "junk.nrrd")
    with pytest.raises(InputError, match="no DICOM series"):
        read_volume(tmp_path)
    with pytest.raises(InputError, match="cannot write format"):
        write_volume(Volume(np.zeros((2, 2, 2))), tmp_path / "x.dcm")


def test_4d_and_nan_files_are_refused(tmp_path):
    img4 = sitk.JoinSeries([sitk.Image(3, 3, 3, sitk.sitkFloat32)] * 2)
    sitk.WriteImage(img4, str(tmp_path / "four.nii.gz"))
    with pytest.raises(InputError, match="4D image"):
        read_volume(tmp_path / "four.nii.gz")
    arr = np.zeros((3, 3, 3), np.float32)
    arr[2, 1, 1] = np.inf
    arr[0, 0, 1] = np.nan
    sitk.WriteImage(sitk.GetImageFromArray(arr), str(tmp_path / "inf.mha"))
    with pytest.raises(InputError, match="2 NaN/Inf"):
        read_volume(tmp_path / "inf.mha")


def _write_dicom_series(folder, uid, n=3):
    folder.mkdir(exist_ok=True)
    for z in range(n):
        img = sitk.GetImageFromArray(np.full((4, 5), z * 10 + len(uid) % 7, np.int16))
        img.SetOrigin((0, 0, 2.5 * z))
        img.SetSpacing((0.8, 0.8))
        for tag, value in {
            "0020|000e": uid,
            "0020|000d": "1.2.3",
            "0008|0060": "CT",
            "0020|0032": f"0\\0\\{2.5 * z}",
            "0020|0037": "1\\0\\0\\0\\1\\0",
            "0020|0013": str(z + 1),
            "0008|0018": f"{uid}.{z + 1}",
        }.items():
            img.SetMetaData(tag, value)
        writer = sitk.ImageFileWriter()
        writer.KeepOriginalImageUIDOn()
        writer.SetFileName(str(folder / f"{uid}_{z}.dcm"))
        writer.Execute(img)


def test_dicom_folder_with_several_series_needs_a_choice(tmp_path):
    _write_dicom_series(tmp_path / "d", "1.2.3.4")
    _write_dicom_series(tmp_path / "d", "1.2.3.5")
    with pytest.raises(InputError, match="2 DICOM series"):
        read_volume(tmp_path / "d")
    v = read_volume(tmp_path / "d", series_uid="1.2.3.5")
    assert v.shape_ijk == (5, 4, 3)
    np.testing.assert_allclose(v.spacing, [0.8, 0.8, 2.5], atol=1e-6)


@pytest.mark.shared
def test_real_ct_dicom_series_matches_its_geometry(tmp_path):
    folder = shared_file("ct/example_ct_dicom")
    v = read_volume(folder)
    assert v.array.ndim == 3 and v.array.shape[1:] == (512, 512)
    assert -1100 < float(v.array.min()) < 0 < float(v.array.max())  # HU
    out = read_volume(write_volume(v, tmp_path / "ct.nii.gz"))
    np.testing.assert_array_equal(out.array, v.array)
    np.testing.assert_allclose(out.ijk_to_ras, v.ijk_to_ras, atol=1e-4)


@pytest.mark.shared
def test_real_monochrome1_radiograph_reads_as_one_slice():
    v = read_volume(shared_file("cxr/RG1_UNCR.dcm"))
    assert v.array.shape[0] == 1 and v.shape_ijk[:2] == (1841, 1955)
