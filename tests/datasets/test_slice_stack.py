"""2.5D input (LoadSliceStack, stack_slices) and the 2.5D configs of every dataset.

Independent references: the source NIfTI files of the synthetic releases read with nibabel and put in display
orientation by hand (L,P,S display: slice k of an L,P,S-stored array is ``data[:, :, k].T``; the Cranium files are
stored R,A,S, flipped in x and y first) with Cranium's 40/120 window and CrossMoDA's 0.5/99.5 percentile
normalisation written out; the prepared PNGs of the neighbour indices read with OpenCV; edge and offset rules
typed in as literal index lists.
"""
from __future__ import annotations

import argparse
import csv
import shutil
from pathlib import Path

import cv2
import nibabel as nib
import numpy as np
import pytest
import torch
from mmengine.config import Config, DictAction
from mmengine.registry import init_default_scope

import mmseg_medical  # noqa: F401  (registers datasets and transforms)
from mmseg.registry import DATASETS, TRANSFORMS
from mmseg_medical.conversion import CONVERTERS, prepare
from mmseg_medical.conversion.cranium import RELEASE
from mmseg_medical.datasets import BrightnessContrastDistortion, LoadSliceStack, neighbour_indices, stack_slices
from mmseg_medical.errors import MedSegError
from mmseg_medical.manifest import group_by_case, read_manifest
from mmseg_medical.runs import last_checkpoint, mim_test, mim_train, read_test_metrics, run, tiny_overrides
from mmseg_medical.synthetic import write_cranium_release, write_crossmoda_release
from mmseg_medical.synthetic.covid19 import write_covid19_release
from mmseg_medical.synthetic.hemseg import write_hemseg_release

REPO = Path(__file__).resolve().parents[2]
CONFIGS = {
    'cranium': REPO / 'configs/cranium/fcn-unet-s5-d16_unet_1xb16-0.01-20k_cranium-2.5d-512x512.py',
    'hemseg': REPO / 'configs/hemseg/fcn-unet-s5-d16_unet_1xb16-0.01-20k_hemseg-2.5d-512x512.py',
    'hemseg-3w': REPO / 'configs/hemseg/fcn-unet-s5-d16_unet_1xb16-0.01-20k_hemseg-3w-2.5d-512x512.py',
    'crossmoda': REPO / 'configs/crossmoda/fcn-unet-s5-d16_unet_1xb16-0.01-20k_crossmoda-2.5d-256x256.py',
    'covid19': REPO / 'configs/covid19/fcn-unet-s5-d16_unet_1xb16-0.01-20k_covid19-task1-2.5d-512x512.py',
}
SIZE, SLICES = 32, 5


@pytest.fixture(scope='module')
def data(tmp_path_factory) -> Path:
    """Every dataset prepared once from its synthetic release (raw files kept under raw/<name>)."""
    root = tmp_path_factory.mktemp('stack')
    raw = root / 'raw'
    write_cranium_release(raw / 'cranium', num_patients=5, num_slices=SLICES, size=SIZE, seed=0, layouts=('nifti',))
    prepare(CONVERTERS['cranium'](), raw / 'cranium', root / 'cranium', workers=1, previews=0)
    write_crossmoda_release(raw / 'crossmoda', num_source=4, num_target=0, num_val=0, size=SIZE, num_slices=SLICES)
    prepare(CONVERTERS['crossmoda'](), raw / 'crossmoda', root / 'crossmoda', workers=1, previews=0)
    write_hemseg_release(raw / 'hemseg', num_slices=SLICES, size=SIZE)
    for name, windows in (('hemseg', 'brain'), ('hemseg-3w', 'brain,subdural,bone')):
        prepare(CONVERTERS['hemseg'](windows=windows), raw / 'hemseg', root / name, workers=1, previews=0)
    write_covid19_release(raw / 'covid19', 'zenodo', num_slices=4, size=SIZE)
    prepare(CONVERTERS['covid19'](), raw / 'covid19', root / 'covid19', workers=1, previews=0)
    return root


def _png(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image is not None, path
    return image


def _dataset(name: str, root: Path, ann_file=None, offsets=None, windows=None, scale=None):
    """The config's test dataset (its pipeline: no random step) over ``root``, optionally of another split
    list; the first pipeline step optionally given other offsets/windows, Resize optionally to ``scale``
    (the native size: an exact copy)."""
    init_default_scope('mmseg')
    cfg = Config.fromfile(str(CONFIGS[name]))
    dataset = cfg.test_dataloader.dataset
    if ann_file is not None:
        dataset.ann_file = ann_file
    pipeline = dataset.pipeline
    assert pipeline[0].type == 'LoadSliceStack'
    if offsets is not None:
        pipeline[0].offsets = offsets
    if windows is not None:
        pipeline[0].windows = windows
    if scale is not None:
        [step for step in pipeline if step.type == 'Resize'][0].scale = scale
    return DATASETS.build({**dataset, 'data_root': str(root), 'pipeline': pipeline})


def _display_cranium(raw: Path, case: str) -> np.ndarray:
    """(Z, H, W) display slices of the Cranium CT at level 40 / width 120, by hand from the NIfTI file."""
    img = nib.load(str(raw / 'cranium' / 'Cranium' / RELEASE / 'ct_scans' / f'{case}.nii'))
    assert nib.aff2axcodes(img.affine) == ('R', 'A', 'S')
    lps = np.asanyarray(img.dataobj)[::-1, ::-1, :].astype(np.float64)      # R,A,S -> L,P,S
    display = np.stack([lps[:, :, k].T for k in range(lps.shape[2])])
    return np.clip(np.rint((display + 20.0) * 255.0 / 120.0), 0, 255).astype(np.uint8)


def _clamped(k: int, offsets, last: int) -> list:
    return [min(max(k + o, 0), last) for o in offsets]


@pytest.mark.parametrize('offsets', [None, (-2, 0, 3), (3, -1)])
def test_cranium_channels_are_the_neighbouring_nifti_slices(data, offsets):
    """Every val slice (both edges included) through the config's test pipeline: channel i = the display slice
    k + offsets[i] (clamped) of the source NIfTI at 40/120. None: the config's own offsets (-1, 0, 1)."""
    dataset = _dataset('cranium', data / 'cranium', offsets=offsets, scale=(SIZE, SIZE))
    wanted = (-1, 0, 1) if offsets is None else offsets
    stems = [Path(dataset.get_data_info(i)['img_path']).stem for i in range(len(dataset))]
    cases = sorted({s[:3] for s in stems})
    assert len(stems) == SLICES * len(cases)
    for i, stem in enumerate(stems):
        case, k = stem[:3], int(stem[-4:])
        display = _display_cranium(data / 'raw', case)
        expected = np.stack([display[j] for j in _clamped(k, wanted, SLICES - 1)])
        inputs = dataset[i]['inputs']
        assert inputs.dtype == torch.uint8 and inputs.shape == (len(wanted), SIZE, SIZE)
        np.testing.assert_array_equal(inputs.numpy(), expected, err_msg=stem)
    assert {int(s[-4:]) for s in stems} == set(range(SLICES))


def test_cranium_results_keys_as_load_image_from_file(data):
    """The keys LoadImageFromFile sets, an (H, W, 3) uint8 image, and the full test pipeline at 512²."""
    path = str(data / 'cranium' / 'images' / '049_0000.png')
    loaded = TRANSFORMS.build(dict(type='LoadImageFromFile'))(dict(img_path=path))
    stacked = TRANSFORMS.build(dict(type='LoadSliceStack'))(dict(img_path=path))
    assert set(loaded) <= set(stacked) and stacked['img_path'] == path
    assert stacked['img'].shape == (SIZE, SIZE, 3) and stacked['img'].dtype == np.uint8
    assert stacked['img_shape'] == stacked['ori_shape'] == (SIZE, SIZE) and stacked['stack_indices'] == (0, 0, 1)
    np.testing.assert_array_equal(stacked['img'][:, :, 1], loaded['img'][:, :, 0])  # the slice itself in the middle
    item = _dataset('cranium', data / 'cranium')[0]
    assert item['inputs'].shape == (3, 512, 512) and item['data_samples'].ori_shape == (SIZE, SIZE)


def test_crossmoda_channels_are_the_neighbour_pngs_and_those_the_nifti_slices(data):
    """CrossMoDA (L,P,S files): channels = the neighbours' prepared PNGs; each PNG = the display slice of the
    source scan (0.5/99.5 percentiles onto 0..255, by hand; rounding may differ by 1) and each mask PNG
    the label's display slice exactly."""
    offsets = (-2, 0, 3)
    dataset = _dataset('crossmoda', data / 'crossmoda', ann_file='splits/train.txt', offsets=offsets,
                       scale=(SIZE, SIZE))
    raw = data / 'raw' / 'crossmoda' / 'crossmoda_training' / 'source_training'
    checked = set()
    for i in range(len(dataset)):
        stem = Path(dataset.get_data_info(i)['img_path']).stem
        case, k = stem[:-5], int(stem[-4:])
        expected = np.stack([_png(data / 'crossmoda' / 'images' / f'{case}_{j:04d}.png')
                             for j in _clamped(k, offsets, SLICES - 1)])
        np.testing.assert_array_equal(dataset[i]['inputs'].numpy(), expected, err_msg=stem)
        if case in checked:
            continue
        checked.add(case)
        scan = nib.load(str(raw / f'{case}_ceT1.nii.gz'))
        label = nib.load(str(raw / f'{case}_Label.nii.gz'))
        assert nib.aff2axcodes(scan.affine) == ('L', 'P', 'S')
        volume = np.asanyarray(scan.dataobj).astype(np.float64)
        lo, hi = np.percentile(volume, [0.5, 99.5])
        for j in range(SLICES):
            by_hand = np.clip(np.rint((volume[:, :, j].T - lo) * 255.0 / (hi - lo)), 0, 255)
            png = _png(data / 'crossmoda' / 'images' / f'{case}_{j:04d}.png').astype(np.float64)
            assert np.abs(png - by_hand).max() <= 1.0, (case, j)
            np.testing.assert_array_equal(_png(data / 'crossmoda' / 'masks' / f'{case}_{j:04d}.png'),
                                          np.rint(np.asanyarray(label.dataobj)[:, :, j].T).astype(np.uint8))
    assert len(checked) >= 2


def test_hemseg_windows_times_offsets(data):
    """3-window PNGs: channel 3 i + w = window w of slice k + offsets[i] (the neighbours' PNGs read with
    OpenCV); windows=(0,) keeps the brain window, which equals the brain-window-only preparation."""
    root = data / 'hemseg-3w'
    full = _dataset('hemseg-3w', root, scale=(SIZE, SIZE))
    brain = _dataset('hemseg-3w', root, windows=(0,), scale=(SIZE, SIZE))
    assert len(full) == len(brain) > 0
    for i in range(len(full)):
        stem = Path(full.get_data_info(i)['img_path']).stem
        case, k = stem[:-5], int(stem[-4:])
        last = max(r.slice_index for r in read_manifest(root) if r.case_id == case)
        neighbours = [_png(root / 'images' / f'{case}_{j:04d}.png') for j in _clamped(k, (-1, 0, 1), last)]
        assert neighbours[0].shape == (SIZE, SIZE, 3)
        expected = np.stack([plane[:, :, w] for plane in neighbours for w in range(3)])
        np.testing.assert_array_equal(full[i]['inputs'].numpy(), expected, err_msg=stem)
        grey = np.stack([_png(data / 'hemseg' / 'images' / f'{case}_{j:04d}.png')
                         for j in _clamped(k, (-1, 0, 1), last)])
        np.testing.assert_array_equal(brain[i]['inputs'].numpy(), grey, err_msg=stem)


def test_stack_slices_edges_and_order():
    """Literal index lists: each slice of the volume holds its own index."""
    volume = np.broadcast_to(np.arange(4, dtype=np.uint8)[:, None, None], (4, 2, 3)).copy()
    cases = {(0, (-1, 0, 1)): [0, 0, 1], (3, (-1, 0, 1)): [2, 3, 3], (0, (-2, 0, 3)): [0, 0, 3],
             (2, (-2, 0, 3)): [0, 2, 3], (1, (5, -5)): [3, 0], (2, (0,)): [2]}
    for (index, offsets), slices in cases.items():
        out = stack_slices(volume, index, offsets)
        assert out.shape == (2, 3, len(offsets)) and out.dtype == np.uint8
        assert [int(out[0, 0, c]) for c in range(len(offsets))] == slices, (index, offsets)
        assert neighbour_indices(index, offsets, 0, 3) == slices
    windows = np.stack([volume, volume + 10, volume + 20], axis=-1)           # (Z, H, W, 3): window w = 10 w + z
    out = stack_slices(windows, 0, (-1, 0, 1))
    assert out[0, 0].tolist() == [0, 10, 20, 0, 10, 20, 1, 11, 21]
    assert stack_slices(windows, 3, (-1, 1), windows=(2, 0))[0, 0].tolist() == [22, 2, 23, 3]


@pytest.mark.parametrize('offsets', [(-1, 0, 1), (-2, 0, 3)])
def test_stack_slices_equals_load_slice_stack(data, offsets):
    """Inference's path (a (Z, H, W[, 3]) volume in memory) and the slice store's give the same arrays."""
    for name, windows in (('cranium', None), ('hemseg-3w', None), ('hemseg-3w', (2, 0))):
        root = data / name
        load = LoadSliceStack(offsets=offsets, windows=windows)
        for case, records in list(group_by_case(read_manifest(root)).items())[:2]:
            volume = np.stack([_png(root / r.image) for r in records])
            for r in records:
                stacked = load(dict(img_path=str(root / r.image)))['img']
                np.testing.assert_array_equal(stacked, stack_slices(volume, r.slice_index, offsets, windows))


def _copy(root: Path, to: Path) -> Path:
    shutil.copytree(root, to)
    return to


def test_missing_slices_name_the_slice(data, tmp_path):
    root = _copy(data / 'cranium', tmp_path / 'cranium')
    with open(root / 'manifest.csv', newline='') as f:
        rows = list(csv.reader(f))
    kept = [row for row in rows if not row[3].endswith('049_0002.png')]
    assert len(kept) == len(rows) - 1
    with open(root / 'manifest.csv', 'w', newline='') as f:
        csv.writer(f).writerows(kept)
    load = LoadSliceStack(offsets=(-1, 0, 1))
    with pytest.raises(MedSegError) as err:
        load(dict(img_path=str(root / 'images' / '049_0002.png')))           # PNG there, row not
    assert "slice '049_0002' is not listed in" in str(err.value) and '\n' not in str(err.value)
    with pytest.raises(MedSegError) as err:
        load(dict(img_path=str(root / 'images' / '049_0001.png')))           # its neighbour k+1 missing
    assert "neighbour slice 2 (offset +1) of case '049'" in str(err.value) and '049_0001.png' in str(err.value)
    assert LoadSliceStack(offsets=(-1, 0))(dict(img_path=str(root / 'images' / '049_0001.png')))['img'].shape[2] == 2
    (root / 'images' / '049_0004.png').unlink()                               # listed, file gone
    with pytest.raises(MedSegError, match='049_0004.png: cannot read'):
        LoadSliceStack(offsets=(0, 1))(dict(img_path=str(root / 'images' / '049_0003.png')))


def test_bad_arguments_one_line(data):
    for offsets in [(), (0.5,), 'abc', None, (True, 0)]:
        with pytest.raises(MedSegError, match='LoadSliceStack: offsets must be'):
            TRANSFORMS.build(dict(type='LoadSliceStack', offsets=offsets))
    with pytest.raises(MedSegError, match='LoadSliceStack: windows must be'):
        LoadSliceStack(windows=(-1,))
    grey = str(data / 'cranium' / 'images' / '049_0000.png')
    with pytest.raises(MedSegError, match=r"049_0000.png: windows=\[1\] but the slice has 1 channel"):
        LoadSliceStack(windows=(1,))(dict(img_path=grey))
    assert LoadSliceStack(windows=(0,))(dict(img_path=grey))['img'].shape == (SIZE, SIZE, 3)
    with pytest.raises(MedSegError, match='outside the case'):
        stack_slices(np.zeros((3, 2, 2), np.uint8), 3)
    with pytest.raises(MedSegError, match='uint8 volume'):
        stack_slices(np.zeros((3, 2, 2), np.float32), 1)


def test_brightness_contrast_distortion_by_hand():
    """PhotoMetricDistortion's draws (brightness; mode; contrast) redone by hand; the same map on every channel."""
    rng = np.random.default_rng(0)
    stack = rng.integers(0, 256, (8, 8, 9), dtype=np.uint8)
    transform = BrightnessContrastDistortion()
    changed = 0
    for seed in range(12):
        np.random.seed(seed)
        out = transform(dict(img=stack.copy()))['img']
        np.random.seed(seed)
        img = stack.astype(np.float32)
        if np.random.randint(2):
            img = np.clip(img + np.random.uniform(-32, 32), 0, 255).astype(np.uint8).astype(np.float32)
        np.random.randint(2)                                                  # mode: before or after, same map
        if np.random.randint(2):
            img = np.clip(img * np.random.uniform(0.5, 1.5), 0, 255).astype(np.uint8).astype(np.float32)
        np.testing.assert_array_equal(out, img.astype(np.uint8), err_msg=str(seed))
        changed += int(not np.array_equal(out, stack))
    assert changed >= 6
    # What it leaves out changes nothing on a grey slice copied three times (the 1-slice configs' input).
    from mmseg.datasets.transforms import PhotoMetricDistortion

    grey = np.repeat(stack[:, :, :1], 3, axis=2)
    for seed in range(12):
        np.random.seed(seed)
        np.testing.assert_array_equal(PhotoMetricDistortion().hue(PhotoMetricDistortion().saturation(grey.copy())),
                                      grey)


def _cfg_options(options) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(['--cfg-options', *options]).cfg_options


def _shrunk(name: str, root: Path, *extra: str) -> Config:
    cfg = Config.fromfile(str(CONFIGS[name]))
    options = tiny_overrides(root, scale=32, iters=2, base_channels=8, batch_size=2, workers=0)
    cfg.merge_from_dict(_cfg_options(options + ['train_cfg.val_begin=3', *extra]))
    channels = 9 if name == 'hemseg-3w' else 3
    assert cfg.model.backbone.in_channels == len(cfg.model.data_preprocessor.mean) == channels
    assert len(cfg.model.data_preprocessor.std) == channels and cfg.model.data_preprocessor.bgr_to_rgb is False
    return cfg


def _first_conv_inputs(model) -> int:
    return model.backbone.encoder[0][0].convs[0].conv.weight.shape[1]


@pytest.mark.parametrize('name', ['hemseg', 'crossmoda', 'covid19'])
def test_config_builds_and_steps(data, name):
    """The shrunk config's model takes one training step on two samples of its train pipeline and predicts
    one sample of its test pipeline (labels of the image's size, the config's classes)."""
    from mmengine.dataset import pseudo_collate
    from mmengine.model import revert_sync_batchnorm
    from mmengine.optim import OptimWrapper
    from mmseg.registry import MODELS

    init_default_scope('mmseg')
    cfg = _shrunk(name, data / name)
    model = revert_sync_batchnorm(MODELS.build(cfg.model))
    assert _first_conv_inputs(model) == 3
    train, test = DATASETS.build(cfg.train_dataloader.dataset), DATASETS.build(cfg.test_dataloader.dataset)
    assert train[0]['inputs'].shape == (3, 32, 32)
    torch.manual_seed(0)
    optimizer = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01))
    log = model.train_step(pseudo_collate([train[0], train[1]]), optimizer)
    assert torch.isfinite(log['loss'])
    model.eval()
    sample = test[0]
    out = model.test_step(pseudo_collate([sample]))[0]
    assert tuple(out.pred_sem_seg.data.shape[-2:]) == tuple(sample['data_samples'].ori_shape)
    assert set(out.pred_sem_seg.data.unique().tolist()) <= set(range(cfg.model.decode_head.num_classes))


def test_readme_five_slice_command_steps(data):
    """The README's 2.5D example (five offsets by --cfg-options) on the shrunk Cranium config: five channels
    in, one training step."""
    import shlex

    from mmengine.dataset import pseudo_collate
    from mmengine.model import revert_sync_batchnorm
    from mmengine.optim import OptimWrapper
    from mmseg.registry import MODELS

    section = (REPO / 'README.md').read_text().split('### 2.5D context')[1].split('\n### ')[0]
    words = shlex.split(section.split('```bash\n')[1].split('```')[0].replace('\\\n', ' '))
    assert words[:3] == ['mim', 'train', 'mmseg'] and (REPO / words[3]).resolve() == CONFIGS['cranium']
    options = words[words.index('--cfg-options') + 1:]
    init_default_scope('mmseg')
    cfg = Config.fromfile(str(CONFIGS['cranium']))
    cfg.merge_from_dict(_cfg_options(options + tiny_overrides(data / 'cranium', scale=32, base_channels=8,
                                                              workers=0)))
    model = revert_sync_batchnorm(MODELS.build(cfg.model))
    train = DATASETS.build(cfg.train_dataloader.dataset)
    assert train[0]['inputs'].shape == (5, 32, 32) and _first_conv_inputs(model) == 5
    log = model.train_step(pseudo_collate([train[0], train[1]]), OptimWrapper(torch.optim.SGD(model.parameters(),
                                                                                                lr=0.01)))
    assert torch.isfinite(log['loss'])


def test_hemseg_3w_config_trains_and_tests_in_process(data, tmp_path):
    """The nine-channel config (3 slices × 3 windows), shrunk: 2 iterations and its test split scored with the
    HemSeg protocol (mmengine Runner in this process, as tools/train.py and tools/test.py run it)."""
    from mmengine.runner import Runner

    cfg = _shrunk('hemseg-3w', data / 'hemseg-3w')
    cfg.work_dir = str(tmp_path / 'work')
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert _first_conv_inputs(runner.model) == 9
    metrics = runner.test()
    assert np.isfinite(metrics['mDice']) and 'volume/Dice.hemorrhage.ci_low' in metrics


def test_cranium_config_trains_and_tests_with_mim(data, tmp_path):
    """mim train / mim test of the Cranium 2.5D config, shrunk (the recipe of mmseg_medical.runs)."""
    config = CONFIGS['cranium']
    options = tiny_overrides(data / 'cranium', scale=32, iters=2, base_channels=8, batch_size=2, workers=0)
    run(mim_train(config, tmp_path / 'train', options + ['train_cfg.val_begin=3'], ['--gpus', '0']),
        log=tmp_path / 'train.log', cwd=REPO)
    checkpoint = last_checkpoint(tmp_path / 'train')
    weights = torch.load(str(checkpoint), map_location='cpu', weights_only=False)['state_dict']
    assert weights['backbone.encoder.0.0.convs.0.conv.weight'].shape[1] == 3
    run(mim_test(config, checkpoint, tmp_path / 'test', options, ['--gpus', '0']), log=tmp_path / 'test.log', cwd=REPO)
    metrics = read_test_metrics(tmp_path / 'test')
    val_cases = {r.case_id for r in read_manifest(data / 'cranium') if r.split == 'val'}
    assert 'mDice' in metrics and np.isfinite(metrics['mDice']) and val_cases
    assert 'volume/Dice.hemorrhage' in metrics                                  # per-case volume metrics ran
    assert 'LoadSliceStack' in (tmp_path / 'test.log').read_text()
