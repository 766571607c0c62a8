"""Every shipped config parses from the repo root and its model trains a step (tiny input, CPU)."""
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted((REPO / 'configs').glob('*/*.py'))
LEAVES = [c for c in CONFIGS if c.parent.name != '_base_']


def test_configs_exist():
    names = {c.name for c in LEAVES}
    for lr in ('0.01', '0.001', '0.0001'):
        assert f'fcn-unet-s5-d16_unet_1xb16-{lr}-20k_cranium-512x512.py' in names
    assert (REPO / 'configs/_base_/datasets/cranium_512x512.py').is_file()


@pytest.mark.parametrize('path', LEAVES, ids=lambda p: p.name)
def test_config_builds_and_steps(path):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample
    from mmengine.structures import PixelData

    cfg = Config.fromfile(str(path))
    assert cfg.custom_imports['imports'] == ['mmseg_medical']
    assert cfg.train_dataloader.dataset.type == cfg.test_dataloader.dataset.type
    assert cfg.train_dataloader.dataset.data_root.startswith('data/')
    init_default_scope('mmseg')
    cfg.model.backbone.norm_cfg = dict(type='BN', requires_grad=True)
    cfg.model.decode_head.norm_cfg = dict(type='BN', requires_grad=True)
    cfg.model.data_preprocessor.size = (32, 32)
    cfg.model.backbone.base_channels = 8
    cfg.model.decode_head.in_channels = cfg.model.decode_head.channels = 8
    model = MODELS.build(cfg.model)
    channels = cfg.model.backbone.get('in_channels', 3)   # 2.5D configs: offsets x windows
    samples = []
    for _ in range(2):
        s = SegDataSample(metainfo=dict(img_shape=(32, 32), ori_shape=(32, 32), pad_shape=(32, 32)))
        s.gt_sem_seg = PixelData(data=(torch.rand(1, 32, 32) > 0.7).long())
        samples.append(s)
    data = model.data_preprocessor(dict(inputs=[torch.randint(0, 255, (channels, 32, 32), dtype=torch.uint8)] * 2,
                                        data_samples=samples), True)
    losses = model(**data, mode='loss')
    total = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total)
    total.backward()
    model.eval()
    with torch.no_grad():
        out = model(**model.data_preprocessor(dict(inputs=[torch.zeros(channels, 32, 32, dtype=torch.uint8)],
                                                   data_samples=[samples[0]]), False), mode='predict')
    assert out[0].pred_sem_seg.data.shape[-2:] == (32, 32)
    assert set(out[0].pred_sem_seg.data.unique().tolist()) <= set(range(cfg.model.decode_head.num_classes))


def test_fold_2_of_5_by_cfg_options_alone(tmp_path):
    """The documented switch: --cfg-options *.dataset.ann_file=splits/fold2_{train,val}.txt."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS

    from mmseg_medical.conversion import CONVERTERS, prepare
    from mmseg_medical.synthetic import write_cranium_release

    write_cranium_release(tmp_path / 'raw', num_patients=10, num_slices=3, size=32, seed=0, layouts=('nifti',))
    prepare(CONVERTERS['cranium'](folds=5), tmp_path / 'raw', tmp_path / 'data', workers=1, previews=0)
    cfg = Config.fromfile(str(REPO / 'configs/cranium/fcn-unet-s5-d16_unet_1xb16-0.01-20k_cranium-512x512.py'))
    root = str(tmp_path / 'data') + '/'
    cfg.merge_from_dict({f'{d}.dataset.data_root': root for d in ('train_dataloader', 'val_dataloader')})
    cfg.merge_from_dict({'train_dataloader.dataset.ann_file': 'splits/fold2_train.txt',
                         'val_dataloader.dataset.ann_file': 'splits/fold2_val.txt'})
    init_default_scope('mmseg')
    train, val = DATASETS.build(cfg.train_dataloader.dataset), DATASETS.build(cfg.val_dataloader.dataset)
    listed = (tmp_path / 'data/splits/fold2_val.txt').read_text().split()
    assert [Path(val.get_data_info(i)['img_path']).stem for i in range(len(val))] == listed
    cases = lambda ds: {Path(ds.get_data_info(i)['img_path']).stem[:3] for i in range(len(ds))}  # noqa: E731
    assert len(cases(val)) == 2 and not cases(train) & cases(val) and len(cases(train) | cases(val)) == 10
