import numpy as np
import pytest
from mmseg.registry import DATASETS

import mmseg_medical  # noqa: F401  (registers CraniumDataset)
from mmseg_medical.conversion import CONVERTERS, prepare
from mmseg_medical.synthetic import write_cranium_release


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp('c')
    write_cranium_release(root / 'raw', num_patients=5, num_slices=4, size=32, seed=0, layouts=('jpg',))
    prepare(CONVERTERS['cranium'](), root / 'raw', root / 'data', workers=1, previews=0)
    return root / 'data'


def test_cranium_dataset_reads_prepared_slices(data):
    from mmengine.registry import init_default_scope
    init_default_scope('mmseg')  # LoadAnnotations must be mmseg's, not mmcv's
    ds = DATASETS.build(dict(type='CraniumDataset', data_root=str(data),
                             ann_file='splits/train.txt', data_prefix=dict(img_path='images/', seg_map_path='masks/'),
                             pipeline=[dict(type='LoadImageFromFile'), dict(type='LoadAnnotations')]))
    assert ds.metainfo['classes'] == ('background', 'hemorrhage')
    assert len(ds) == 4 * 4  # 4 train patients × 4 slices
    item = ds[0]
    assert item['img'].shape == (32, 32, 3)
    assert set(np.unique(item['gt_seg_map'])) <= {0, 1}
    assert item['img_path'].endswith('.png') and item['seg_map_path'].replace('masks', 'images') == item['img_path']
