import nibabel as nib
import numpy as np
import pytest

from mmseg_medical.errors import MedSegError
from mmseg_medical.manifest import (LABELS_DIR, MANIFEST_COLUMNS, SliceRecord, group_by_case, read_manifest,
                                    read_source_label, restack, source_label_path, write_manifest,
                                    write_source_label)
from mmseg_medical.volume import Volume


def test_manifest_round_trip_and_columns(tmp_path):
    rows = [SliceRecord('train', '049', 1, 'images/train/049_0001.png', 'masks/train/049_0001.png', 0.5, 0.5, 5.0),
            SliceRecord('train', '049', 0, 'images/train/049_0000.png', '', None, None, None)]
    write_manifest(tmp_path / 'manifest.csv', rows)
    header = (tmp_path / 'manifest.csv').read_text().splitlines()[0]
    assert header.split(',')[:8] == list(MANIFEST_COLUMNS)
    back = read_manifest(tmp_path)
    assert back == rows
    assert [r.slice_index for r in group_by_case(back)['049']] == [0, 1]


def test_extra_columns_follow_the_standard_ones(tmp_path):
    """A spec's per-slice columns (Cranium's flags) come after the standard ones, empty where a slice has none."""
    rows = [SliceRecord('train', '049', 0, 'images/049_0000.png', 'masks/049_0000.png', extra=(('Subdural', '1'),
                                                                                               ('No_Hemorrhage', '0'))),
            SliceRecord('val', 'x', 0, 'images/x_0000.png')]
    write_manifest(tmp_path / 'manifest.csv', rows)
    lines = (tmp_path / 'manifest.csv').read_text().splitlines()
    assert lines == ['split,case_id,slice_index,image,mask,spacing_x,spacing_y,spacing_z,Subdural,No_Hemorrhage',
                     'train,049,0,images/049_0000.png,masks/049_0000.png,,,,1,0',
                     'val,x,0,images/x_0000.png,,,,,,']
    assert read_manifest(tmp_path) == rows


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


def test_source_label_round_trip_and_absent_file(tmp_path):
    affine = np.array([[-0.4, 0, 0, 10], [0, 0, 1.5, -3], [0, -0.5, 0, 7], [0, 0, 0, 1.0]])   # voxels in L,S,P order
    label = Volume(array=np.arange(24, dtype=np.uint8).reshape(2, 3, 4) % 3, affine=affine)
    assert read_source_label(tmp_path, 'c1') is None                     # prepared before labels/ existed
    path = write_source_label(tmp_path, 'c1', label)
    assert path == source_label_path(tmp_path, 'c1') == tmp_path / LABELS_DIR / 'c1.nii.gz'
    img = nib.load(str(path))
    assert img.get_data_dtype() == np.uint8 and np.allclose(img.affine, affine)
    np.testing.assert_array_equal(np.asanyarray(img.dataobj), label.array.transpose(2, 1, 0))
    back = read_source_label(tmp_path, 'c1')
    np.testing.assert_array_equal(back.array, label.array)
    assert np.allclose(back.affine, affine) and back.spacing == pytest.approx((0.4, 0.5, 1.5))


def test_source_label_without_geometry_reads_back_without_one(tmp_path):
    """A source with no affine (e.g. JPG frames) is not given a made-up 1 mm grid."""
    label = Volume(array=np.ones((2, 3, 4), np.uint8))
    write_source_label(tmp_path, 'c1', label)
    back = read_source_label(tmp_path, 'c1')
    assert back.affine is None and back.spacing is None
    np.testing.assert_array_equal(back.array, label.array)
