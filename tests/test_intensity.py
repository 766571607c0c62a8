import numpy as np
import pytest

from mmseg_medical.errors import MedSegError
from mmseg_medical.intensity import WINDOWS, KeepUint8, PercentileNormalize, Window, get_intensity


def test_presets_are_the_radiological_windows():
    assert (WINDOWS['brain'].center, WINDOWS['brain'].width) == (40, 80)
    assert (WINDOWS['subdural'].center, WINDOWS['subdural'].width) == (80, 200)
    assert (WINDOWS['bone'].center, WINDOWS['bone'].width) == (600, 2800)
    assert (WINDOWS['lung'].lower, WINDOWS['lung'].upper) == (-1250, 250)


@pytest.mark.parametrize('dtype', [np.int16, np.uint16, np.int32, np.float32, np.float64])
def test_window_maps_ends_and_middle_for_every_dtype(dtype):
    hu = np.array([[[-1000, 0, 40, 80, 2000]]])
    if np.issubdtype(dtype, np.unsignedinteger):
        hu = hu + 1024
        window = Window(1024, 1104)
    else:
        window = WINDOWS['brain']
    out = window(hu.astype(dtype))
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out[0, 0], [0, 0, 128, 255, 255])


def test_window_lookup_table_and_float_path_equal_the_formula_by_hand():
    """Subdural window (centre 80, width 200: [-20, 180]) on random integer HU, through the int16 lookup table and
    the float path, against ``clip(round((hu + 20) * 255 / 200), 0, 255)`` in exact integer arithmetic; at an
    exact .5 tie either neighbour is accepted (float rounding decides it)."""
    rng = np.random.default_rng(0)
    hu = rng.integers(-2000, 3000, size=(3, 17, 19)).astype(np.int16)
    hu.flat[:4] = [-20, 180, 0, 40]    # the window's ends; 0 and 40 are exact ties ((0 + 20) * 255 / 200 = 25.5)
    quotient, remainder = np.divmod((hu.astype(np.int64) + 20) * 255, 200)
    low = np.clip(quotient + (remainder > 100), 0, 255)
    high = np.clip(quotient + (remainder >= 100), 0, 255)      # differs from low only at ties
    assert (low != high).any()
    for out in (WINDOWS['subdural'](hu), WINDOWS['subdural'](hu.astype(np.float64))):
        assert out.dtype == np.uint8
        assert ((out == low) | (out == high)).all()
    assert (WINDOWS['subdural'](hu)[low == high] == low[low == high]).all()


def test_percentile_normalisation_ignores_outliers():
    rng = np.random.default_rng(0)
    mri = rng.normal(300, 50, size=(4, 64, 64))
    mri[0, 0, 0] = 1e6  # one hot pixel must not squash the range
    out = PercentileNormalize(0.5, 99.5)(mri)
    assert out[0, 0, 0] == 255
    assert 100 < out.mean() < 155
    assert (out == 0).mean() < 0.01 and (out == 255).mean() < 0.01


def test_keep_uint8_checks_range():
    assert KeepUint8()(np.array([[[0.0, 255.0]]])).dtype == np.uint8
    with pytest.raises(MedSegError, match=r'\[0, 255\]'):
        KeepUint8()(np.array([[[-1.0, 300.0]]]))


def test_get_intensity_by_name():
    assert get_intensity('lung') is WINDOWS['lung']
    assert isinstance(get_intensity('percentile'), PercentileNormalize)
    with pytest.raises(ValueError, match='unknown intensity'):
        get_intensity('nope')
