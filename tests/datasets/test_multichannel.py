"""LoadSliceStack on a multi-channel dataset (``prepare_dataset.py nnunet``): channels = offsets × image channels,
offset-major, checked against the channel PNGs read with OpenCV."""
from pathlib import Path

import cv2
import numpy as np
import pytest

from mmseg_medical.conversion import CONVERTERS, prepare
from mmseg_medical.datasets import LoadSliceStack
from mmseg_medical.synthetic.nnunet import write_nnunet_release

pytest.importorskip('SimpleITK')


@pytest.fixture(scope='module')
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp('multichannel')
    release = write_nnunet_release(root / 'raw', num_training=2, num_test=0, shape=(4, 12, 14))
    prepare(CONVERTERS['nnunet'](), release, root / 'out', workers=1, previews=0)
    return root / 'out'


def png(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


@pytest.mark.parametrize('offsets', [(0,), (-1, 0, 1)])
def test_channels_times_offsets(prepared, offsets):
    k = 0  # the first slice: offset -1 is replicated
    stem = f'toy_001_{k:04d}.png'
    out = LoadSliceStack(offsets=offsets).transform({'img_path': str(prepared / 'images' / stem)})
    img = out['img']
    assert img.shape == (12, 14, 2 * len(offsets)) and img.dtype == np.uint8
    for i, o in enumerate(offsets):
        j = min(max(k + o, 0), 3)
        name = f'toy_001_{j:04d}.png'
        np.testing.assert_array_equal(img[:, :, 2 * i], png(prepared / 'images' / name))
        np.testing.assert_array_equal(img[:, :, 2 * i + 1], png(prepared / 'images_0001' / name))
    assert not np.array_equal(img[:, :, 0], img[:, :, 1])


def test_windows_pick_image_channels(prepared):
    out = LoadSliceStack(offsets=(0,), windows=(1,)).transform(
        {'img_path': str(prepared / 'images' / 'toy_000_0002.png')})
    np.testing.assert_array_equal(out['img'][:, :, 0], png(prepared / 'images_0001' / 'toy_000_0002.png'))
