import numpy as np
import pytest

from mmseg_medical.errors import MedSegError
from mmseg_medical.manifest import (MANIFEST_COLUMNS, SliceRecord, group_by_case, read_manifest, restack,
                                    write_manifest)


def test_manifest_round_trip_and_columns(tmp_path):
    rows = [SliceRecord('train', '049', 1, 'images/train/049_0001.png', 'masks/train/049_0001.png', 0.5, 0.5, 5.0),
            SliceRecord('train', '049', 0, 'images/train/049_0000.png', '', None, None, None)]
    write_manifest(tmp_path / 'manifest.csv', rows)
    header = (tmp_path / 'manifest.csv').read_text().splitlines()[0]
    assert header.split(',')[:8] == list(MANIFEST_COLUMNS)
    back = read_manifest(tmp_path)
    assert back == rows
    assert [r.slice_index for r in group_by_case(back)['049']] == [0, 1]


def test_missing_manifest_names_the_file(tmp_path):
    with pytest.raises(MedSegError, match='manifest.csv: manifest not found'):
        read_manifest(tmp_path)


def test_restack_puts_slices_back_with_geometry():
    geometry = {'shape_zhw': [3, 2, 4], 'spacing': [0.5, 0.6, 5.0], 'affine': np.diag([0.5, 0.6, 5.0, 1]).tolist()}
    planes = {k: np.full((2, 4), k + 1, np.uint8) for k in (2, 0)}
    vol = restack(planes, geometry)
    assert vol.array.shape == (3, 2, 4)
    assert vol.array[:, 0, 0].tolist() == [1, 0, 3]
    assert vol.spacing == (0.5, 0.6, 5.0)
    with pytest.raises(MedSegError, match='expected'):
        restack({0: np.zeros((4, 2), np.uint8)}, geometry)
