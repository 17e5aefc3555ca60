import numpy as np
import pytest

from medsynth import InputError, Volume, make_ijk_to_ras
from medsynth.resample import grid_with_spacing, resample, resample_like, resample_to_spacing


def _ramp(oblique=False):
    k, j, i = np.mgrid[0:10, 0:12, 0:14].astype(np.float32)
    d = None
    if oblique:
        a = np.deg2rad(30)
        d = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    return Volume(2 * i + 3 * j + 5 * k, make_ijk_to_ras((1.0, 1.5, 2.0), (5, -3, 10), d), name="ramp")


def test_identity_resample_is_exact():
    v = _ramp(oblique=True)
    out = resample_like(v, v, "linear")
    np.testing.assert_allclose(out.array, v.array, atol=1e-4)
    np.testing.assert_array_equal(out.ijk_to_ras, v.ijk_to_ras)


def test_linear_resample_samples_the_same_physical_point():
    v = _ramp(oblique=True)
    m, shape, exact = grid_with_spacing(v, (0.5, 0.75, 1.0))
    out = resample(v, m, shape, "linear")
    # a linear ramp is reproduced exactly by linear interpolation at every RAS point inside
    ijk_out = np.array([[4, 6, 8], [10, 12, 6]])
    ras = out.ijk_to_ras_points(ijk_out)
    ijk_in = v.ras_to_ijk_points(ras)
    expected = 2 * ijk_in[:, 0] + 3 * ijk_in[:, 1] + 5 * ijk_in[:, 2]
    got = [out.array[k, j, i] for i, j, k in ijk_out]
    np.testing.assert_allclose(got, expected, atol=1e-3)


def test_new_spacing_keeps_first_and_last_voxel_centres():
    v = _ramp()
    m, shape, exact = grid_with_spacing(v, (1.0, 1.5, 0.7))
    first_last_in = v.ijk_to_ras_points([[0, 0, 0], np.array(v.shape_ijk) - 1])
    first_last_out = Volume(np.zeros(shape[::-1]), m).ijk_to_ras_points([[0, 0, 0], np.array(shape) - 1])
    np.testing.assert_allclose(first_last_out, first_last_in, atol=1e-9)
    assert shape[2] == 27 and abs(exact[2] - 18 / 26) < 1e-12  # span 18 mm / 26 steps


def test_bspline_gives_float_and_bad_names_are_refused():
    v = _ramp().with_array(_ramp().array.astype(np.int16))
    out = resample_to_spacing(v, (2.0, 2.0, 2.0), "bspline")
    assert out.array.dtype == np.float32
    with pytest.raises(InputError, match="unknown interpolation"):
        resample_to_spacing(v, (2, 2, 2), "cubic-ish")
    with pytest.raises(InputError, match="positive"):
        grid_with_spacing(v, (0, 1, 1))
