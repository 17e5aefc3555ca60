import numpy as np
import pytest

from medsynth import InputError, Volume, make_ijk_to_ras


def test_geometry_is_derived_from_the_matrix(oblique_volume):
    v = oblique_volume
    np.testing.assert_allclose(v.spacing, [0.7, 1.3, 4.0])
    np.testing.assert_allclose(v.origin, [12.5, -40.25, 7.0])
    d = v.directions
    np.testing.assert_allclose(d.T @ d, np.eye(3), atol=1e-12)
    assert np.linalg.det(d) < 0
    assert v.shape_ijk == (9, 7, 5)


def test_point_mapping_round_trip(oblique_volume):
    ijk = np.array([[0, 0, 0], [8, 6, 4], [1.5, 2.25, 3.5]])
    ras = oblique_volume.ijk_to_ras_points(ijk)
    np.testing.assert_allclose(oblique_volume.ras_to_ijk_points(ras), ijk, atol=1e-9)
    np.testing.assert_allclose(ras[0], oblique_volume.origin)


def test_2d_image_becomes_one_slice_and_rgb_is_vector():
    grey = Volume(np.zeros((4, 6), np.uint8))
    assert grey.array.shape == (1, 4, 6) and not grey.is_vector
    rgb = Volume(np.zeros((1, 4, 6, 3), np.uint8))
    assert rgb.is_vector and rgb.components == 3 and rgb.shape_ijk == (6, 4, 1)


@pytest.mark.parametrize(
    "array, message",
    [
        (np.zeros((2, 2, 2, 2, 2)), "dimensions"),
        (np.zeros((0, 3, 3)), "empty"),
        (np.zeros(5), "dimensions"),
    ],
)
def test_bad_arrays_are_named(array, message):
    with pytest.raises(InputError, match=message):
        Volume(array, name="bad")


def test_nan_voxels_are_reported_with_position():
    arr = np.zeros((3, 3, 3), np.float32)
    arr[1, 2, 0] = np.nan
    with pytest.raises(InputError, match=r"1 NaN/Inf voxel.*\(1, 2, 0\)"):
        Volume(arr, name="nan").check_finite()


def test_bad_matrix_and_spacing():
    with pytest.raises(InputError, match="invertible"):
        Volume(np.zeros((2, 2, 2)), ijk_to_ras=np.zeros((4, 4)))
    with pytest.raises(InputError, match="spacing"):
        make_ijk_to_ras((1, 0, 1))


def test_with_array_keeps_geometry_and_checks_shape(oblique_volume):
    out = oblique_volume.with_array(oblique_volume.array * 2, name="twice")
    np.testing.assert_array_equal(out.ijk_to_ras, oblique_volume.ijk_to_ras)
    assert out.name == "twice"
    with pytest.raises(InputError, match="does not match"):
        oblique_volume.with_array(np.zeros((1, 2, 3)))
