"""HemSeg configs and dataset on prepared synthetic data: every config loads with the dataset type and the
paper's test protocol; 1- and 3-window slices go through the config pipelines; VolumeMetric(protocol='hemseg')
on the test split scores ground truth as a perfect prediction (Dice 100, HD95 0, as computed by hand)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config

import mmseg_medical  # noqa: F401  (registers the datasets and metrics)
from mmseg.registry import DATASETS
from mmseg_medical.conversion import CONVERTERS, prepare
from mmseg_medical.evaluation.volume_metric import VolumeMetric
from mmseg_medical.synthetic.hemseg import write_hemseg_release

CONFIGS = sorted((Path(__file__).resolve().parents[2] / 'configs' / 'hemseg').glob('*.py'))


@pytest.fixture(scope='module')
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp('hemseg_cfg')
    write_hemseg_release(root / 'raw', num_slices=6, size=48)
    for name, windows in (('hemseg', 'brain'), ('hemseg-3w', 'brain,subdural,bone')):
        prepare(CONVERTERS['hemseg'](windows=windows), root / 'raw', root / name, workers=1, previews=0)
    return root


def test_configs_load():
    assert len(CONFIGS) == 7   # lr 0.01/0.001/0.0001, CE+Dice, 3-window, 2.5D and 3-window 2.5D
    for path in CONFIGS:
        cfg = Config.fromfile(str(path))
        assert cfg.custom_imports['imports'] == ['mmseg_medical']
        assert cfg.train_dataloader.dataset.type == 'HemSegDataset' and cfg.model.decode_head.num_classes == 2
        assert cfg.test_dataloader.dataset.ann_file == 'splits/test.txt'
        volume = [m for m in cfg.test_evaluator.metrics if m.type == 'VolumeMetric'][0]
        assert volume.protocol == 'hemseg' and volume.n_bootstrap == 5000
        assert ('3w' in path.name) == ('hemseg-3w' in cfg.train_dataloader.dataset.data_root)


@pytest.mark.parametrize('name', ['fcn-unet-s5-d16_unet_1xb16-0.01-20k_hemseg-512x512.py',
                                  'fcn-unet-s5-d16_unet_1xb16-0.01-20k_hemseg-3w-512x512.py'])
def test_pipelines_and_hemseg_protocol(prepared, name):
    from mmengine.registry import init_default_scope

    init_default_scope('mmseg')
    cfg = Config.fromfile(str(CONFIGS[0].parent / name))
    root = prepared / Path(cfg.train_dataloader.dataset.data_root).name
    train = DATASETS.build({**cfg.train_dataloader.dataset, 'data_root': str(root)})
    item = train[0]
    image = item['inputs']
    assert image.shape == (3, 512, 512)
    same = bool(torch.equal(image[0], image[1]) and torch.equal(image[1], image[2]))
    assert same == ('3w' not in name)     # grayscale replicated vs three different windows
    test = DATASETS.build({**cfg.test_dataloader.dataset, 'data_root': str(root), 'pipeline': [
        dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'), dict(type='PackSegInputs')]})
    metric_cfg = {k: v for k, v in [m for m in cfg.test_evaluator.metrics if m.type == 'VolumeMetric'][0].items()
                  if k != 'type'}
    metric = VolumeMetric(**metric_cfg)
    metric.dataset_meta = test.metainfo
    for i in range(len(test)):
        sample = test[i]['data_samples']
        gt = sample.gt_sem_seg.data
        metric.process({}, [{'img_path': sample.img_path, 'pred_sem_seg': {'data': gt},
                             'gt_sem_seg': {'data': gt}}])
    out = metric.compute_metrics(metric.results)
    assert out['Dice.hemorrhage'] == 100.0 and out['HD95.hemorrhage'] == 0.0 and out['IoU.hemorrhage'] == 100.0
    assert out['Dice.hemorrhage.ci_low'] == 100.0
    assert np.isfinite(out['mHD95'])
