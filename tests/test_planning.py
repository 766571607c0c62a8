"""``tools/plan.py``: nnU-Net's fingerprint (against nnunetv2 2.8.1's own ``DatasetFingerprintExtractor``), planned
configs that train (UNet) and build (SegFormer) for 2 channels, and the first-layer adaptation by hand."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mmseg_medical.conversion import CONVERTERS, prepare
from mmseg_medical.runs import last_checkpoint, mim_test, mim_train, run, tiny_overrides
from mmseg_medical.synthetic.nnunet import CT_LABELS, write_nnunet_release

pytest.importorskip('SimpleITK')
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / 'tools'))
import plan  # noqa: E402

#: nnU-Net pools a sample of 1e8 foreground voxels (int(1e8 // cases) per case); both sides use 2e5 here.
POOLED = 2e5
NNUNET = f"""
from nnunetv2.experiment_planning.dataset_fingerprint.fingerprint_extractor import DatasetFingerprintExtractor
if __name__ == '__main__':
    extractor = DatasetFingerprintExtractor(901, num_processes=1)
    extractor.num_foreground_voxels_for_intensitystats = {POOLED}
    extractor.run()
"""


@pytest.fixture(autouse=True)
def small_sample(monkeypatch):
    import mmseg_medical.fingerprint as fingerprint
    monkeypatch.setattr(fingerprint, 'FOREGROUND_VOXELS', POOLED)


@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    import mmseg_medical.fingerprint as fingerprint
    fingerprint.FOREGROUND_VOXELS = POOLED  # module-scoped: set for the fixture, restored below
    root = tmp_path_factory.mktemp('plan')
    release = write_nnunet_release(root / 'nnUNet_raw', num_training=5, num_test=1)
    prepare(CONVERTERS['nnunet'](), release, root / 'data', workers=1, previews=0)
    assert plan.main([str(root / 'data')]) == 0
    fingerprint.FOREGROUND_VOXELS = 10e7
    return root


def test_fingerprint_equals_nnunet(toy, reference):
    reference('nnunetv2')
    (toy / 'fp.py').write_text(NNUNET)
    env = {'nnUNet_raw': str(toy / 'nnUNet_raw'), 'nnUNet_preprocessed': str(toy / 'pre'),
           'nnUNet_results': str(toy / 'res'), 'PATH': '/usr/bin:/bin'}
    subprocess.run([sys.executable, str(toy / 'fp.py')], check=True, env=env, capture_output=True)
    theirs = json.loads((toy / 'pre' / 'Dataset901_Toy' / 'dataset_fingerprint.json').read_text())
    ours = json.loads((toy / 'data' / 'fingerprint.json').read_text())
    assert set(ours) == set(theirs)
    assert ours['shapes_after_crop'] == theirs['shapes_after_crop']
    np.testing.assert_allclose(ours['spacings'], theirs['spacings'], rtol=1e-6)
    assert ours['median_relative_size_after_cropping'] == pytest.approx(theirs['median_relative_size_after_cropping'])
    assert set(ours['foreground_intensity_properties_per_channel']) == {'0', '1'}
    for channel, props in theirs['foreground_intensity_properties_per_channel'].items():
        got = ours['foreground_intensity_properties_per_channel'][channel]
        assert set(got) == set(props)
        for key, value in props.items():  # the same seeded sample: equal up to float32 summation order
            assert got[key] == pytest.approx(value, rel=1e-5), (channel, key)


def test_ct_channel_clip_is_the_fingerprint_percentiles(tmp_path):
    release = write_nnunet_release(tmp_path / 'raw', name='Dataset902_Organs', channels=('CT',), labels=CT_LABELS,
                                   num_training=3, num_test=0, shape=(4, 16, 20))
    prepare(CONVERTERS['nnunet'](), release, tmp_path / 'data', workers=1, previews=0)
    assert plan.main([str(tmp_path / 'data')]) == 0
    props = json.loads((tmp_path / 'data' / 'fingerprint.json').read_text())[
        'foreground_intensity_properties_per_channel']['0']
    rule = json.loads((tmp_path / 'data' / 'dataset.json').read_text())['intensity']['CT']
    assert rule['rule'] == 'ct'
    assert rule['clip'] == pytest.approx([props['percentile_00_5'], props['percentile_99_5']], rel=1e-5)


def test_walkthrough_planned_unet_trains_tests_and_scores_as_nnunet(toy, tmp_path):
    """The README's bring-your-own-dataset walk-through: plan → train (CPU-sized) → test → evaluate_volumes
    --protocol nnunet; the summary.json's counts checked by hand on the written volumes and the source labels."""
    import nibabel as nib

    from mmseg_medical.evaluation.cli import main as evaluate

    config = tmp_path / 'unet.py'
    assert plan.main([str(toy / 'data'), '--no-fingerprint', '--model', 'unet', '--out', str(config),
                      '--split', 'train', '--val-split', 'test']) == 0
    text = config.read_text()
    assert 'in_channels = 2' in text and "classes = ['background', 'peripheral', 'transition']" in text
    assert 'img_scale = (32, 32)' in text  # median slice 20 x 24 rounded up to multiples of 32
    options = tiny_overrides(toy / 'data', scale=32, iters=2, base_channels=8, batch_size=2, workers=0)
    run(mim_train(config, tmp_path / 'train', options + ['train_cfg.val_begin=3'], ['--gpus', '0']),
        log=tmp_path / 'train.log', cwd=REPO)
    checkpoint = last_checkpoint(tmp_path / 'train')
    assert checkpoint.is_file()
    run(mim_test(config, checkpoint, tmp_path / 'test', options, ['--gpus', '0', '--out', str(tmp_path / 'pred')]),
        log=tmp_path / 'test.log', cwd=REPO)
    assert evaluate(['--data', str(toy / 'data'), '--split', 'test', '--pred', str(tmp_path / 'pred' / 'volumes'),
                     '--out', str(tmp_path / 'eval' / 'metrics.csv'), '--protocol', 'nnunet', '--bootstrap', '0']) == 0
    summary = json.loads((tmp_path / 'eval' / 'summary.json').read_text())
    # VolumeMetric(protocol='nnunet') of the planned config wrote the same summary.json during mim test
    during_test = json.loads((tmp_path / 'pred' / 'volumes' / 'summary.json').read_text())
    assert during_test['mean'] == summary['mean'] and during_test['foreground_mean'] == summary['foreground_mean']
    assert len(summary['metric_per_case']) == 1  # imagesTs: toy_100
    case = summary['metric_per_case'][0]
    ref = np.asanyarray(nib.load(case['reference_file']).dataobj)
    pred = np.asanyarray(nib.load(case['prediction_file']).dataobj)
    assert ref.shape == pred.shape == (24, 20, 6)  # the source grid (i, j, k)
    for label in (1, 2):
        r, p = ref == label, pred == label
        got = case['metrics'][str(label)]
        assert (got['TP'], got['FP'], got['FN'], got['TN']) == (int((r & p).sum()), int((~r & p).sum()),
                                                                int((r & ~p).sum()), int((~r & ~p).sum()))


def test_planned_segformer_builds_and_runs_on_two_channels(toy, tmp_path):
    from mmengine.config import Config
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules

    config = tmp_path / 'segformer.py'
    assert plan.main([str(toy / 'data'), '--no-fingerprint', '--model', 'segformer-mit-b0', '--out', str(config),
                      '--offsets=-1,0,1']) == 0
    register_all_modules()
    cfg = Config.fromfile(str(config))
    assert cfg.model.backbone.in_channels == 6 and cfg.model.backbone.init_cfg.type == 'PretrainedInChannels'
    model = MODELS.build(cfg.model).eval()
    with torch.no_grad():
        out = model(torch.zeros(1, 6, 64, 64), mode='tensor')
    assert out.shape == (1, 3, 16, 16)


@pytest.mark.parametrize('model', ['deeplabv3plus-r50', 'upernet-swin-t'])
def test_other_planned_models_build_and_run_on_two_channels(toy, tmp_path, model):
    from mmengine.config import Config
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules

    config = tmp_path / f'{model}.py'
    assert plan.main([str(toy / 'data'), '--no-fingerprint', '--model', model, '--out', str(config)]) == 0
    register_all_modules()
    cfg = Config.fromfile(str(config))
    assert cfg.model.backbone.in_channels == 2 and cfg.model.backbone.init_cfg.checkpoint.startswith(('http', 'open'))
    model = MODELS.build(cfg.model).eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 2, 64, 64), mode='tensor').shape[:2] == (1, 3)


def test_swin_patch_embedding_adapted_by_hand(tmp_path):
    from mmseg.models.backbones import SwinTransformer
    from mmseg.registry import MODELS

    import mmseg_medical  # noqa: F401  (registers SwinTransformerInChannels)

    small = dict(embed_dims=8, depths=[1, 1], num_heads=[1, 1], strides=(4, 2), out_indices=(0, 1), window_size=2,
                 pretrain_img_size=32)
    torch.manual_seed(0)
    rgb = SwinTransformer(in_channels=3, **small)
    torch.save({'state_dict': rgb.state_dict()}, tmp_path / 'swin.pth')
    two = MODELS.build(dict(type='SwinTransformerInChannels', in_channels=2, **small,
                            init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'swin.pth'))))
    two.init_weights()
    w = rgb.patch_embed.projection.weight.detach()
    torch.testing.assert_close(two.patch_embed.projection.weight.detach(),
                               w.mean(1, keepdim=True).repeat(1, 2, 1, 1) * 1.5)  # mean of RGB x 3/2, per channel
    torch.testing.assert_close(two.stages[0].blocks[0].ffn.layers[0][0].weight,  # other layers as they are
                               rgb.stages[0].blocks[0].ffn.layers[0][0].weight)


def test_first_layer_adapted_by_hand(tmp_path):
    from mmengine.model import initialize

    import mmseg_medical  # noqa: F401  (registers PretrainedInChannels)

    rgb = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3), torch.nn.Conv2d(2, 2, 1))
    torch.manual_seed(0)
    for p in rgb.parameters():
        torch.nn.init.normal_(p)
    torch.save({'state_dict': rgb.state_dict()}, tmp_path / 'small.pth')
    two = torch.nn.Sequential(torch.nn.Conv2d(2, 2, 3), torch.nn.Conv2d(2, 2, 1))
    initialize(two, dict(type='PretrainedInChannels', checkpoint=str(tmp_path / 'small.pth')))
    w = rgb[0].weight.detach()
    expected = torch.stack([(w[:, 0] + w[:, 1] + w[:, 2]) / 3 * 1.5] * 2, dim=1)  # mean of RGB x 3/2, per channel
    torch.testing.assert_close(two[0].weight.detach(), expected)
    torch.testing.assert_close(two[1].weight.detach(), rgb[1].weight.detach())  # other layers as they are
    grey = torch.rand(1, 1, 5, 5)
    torch.testing.assert_close(two[0](grey.repeat(1, 2, 1, 1)), rgb[0](grey.repeat(1, 3, 1, 1)))
