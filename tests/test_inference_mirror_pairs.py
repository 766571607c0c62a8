"""Mirror TTA on a model with left/right classes (the COVID-19-CT-Seg joint model: left lung, right lung).

In the slice convention the columns run from the patient's right to left, so a left-right mirrored pass sees the
left lung where the right one was; the Predictor exchanges the declared pairs' channels back. Checked against:

* a hand-mirrored scan whose probabilities, mirrored back and with the lung channels swapped by hand, must
  equal the scan's own exactly (any weights, property-based; rows mirrored: no swap);
* the Dice of a tiny trained joint model, computed by hand from the release's ``Lung_and_Infection_Mask``:
  ``--tta flip`` / ``flip2`` keep the Dice of no TTA (without the swap they halve the lung Dice);
* a checkpoint with left/right classes and no declared pairs: ``--tta flip`` is one error line, nothing written.
"""
from __future__ import annotations

import copy
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmseg_medical.errors import MedSegError
from mmseg_medical.inference import Predictor, load_config, load_model
from mmseg_medical.inference_cli import build_parser, main
from mmseg_medical.runs import last_checkpoint, mim_train, run, tiny_overrides
from mmseg_medical.synthetic.covid19 import write_covid19_release

REPO = Path(__file__).resolve().parents[1]
JOINT = REPO / 'configs/covid19/fcn-unet-s5-d16_unet_1xb16-0.01-20k_covid19-task1-512x512.py'
JOINT_DICE = REPO / 'configs/covid19/fcn-unet-s5-d16-ce-1.0-dice-3.0_unet_1xb16-0.01-20k_covid19-task1-512x512.py'
CLASSES = ('background', 'left_lung', 'right_lung', 'infection')
SWAPPED = [0, 2, 1, 3]          # channel order of the mirrored image, by hand: left and right lung exchanged
SIZE = 32


def cfg_dict(options: list) -> dict:
    return build_parser().parse_args(['--input', 'x', '--output', 'y', '--cfg-options', *options]).cfg_options


def random_checkpoint(options: list, path: Path, seed: int, meta: dict) -> Path:
    import torch
    from mmseg.apis import init_model

    torch.manual_seed(seed)
    model = init_model(copy.deepcopy(load_config(JOINT, cfg_dict(options))), None, 'cpu')
    torch.save({'state_dict': model.state_dict(), 'meta': {'dataset_meta': meta}}, str(path))
    return path


@pytest.fixture(scope='module')
def random_joint(tmp_path_factory):
    """A randomly initialised joint model whose checkpoint names its classes only (as before mirror pairs were
    declared: the pairs come from Covid19Dataset's metainfo)."""
    work = tmp_path_factory.mktemp('mirror')
    options = tiny_overrides(work / 'data', scale=SIZE, base_channels=8, workers=0)
    checkpoint = random_checkpoint(options, work / 'joint.pth', 5, {'classes': CLASSES})
    return load_model(load_config(JOINT, cfg_dict(options)), checkpoint), options, work


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), slices=st.integers(1, 3), tta=st.sampled_from(['flip', 'flip2']))
def test_mirrored_scan_gives_the_mirrored_swapped_probabilities(random_joint, seed, slices, tta):
    model = random_joint[0]
    scan = np.random.default_rng(seed).integers(0, 256, size=(slices, SIZE, SIZE), dtype=np.uint8)
    predictor = Predictor([model], tta, batch_size=2)

    def probabilities(volume):
        return predictor.predict_volume(np.ascontiguousarray(volume), probabilities_dtype=np.float32)[1]

    plain = probabilities(scan)
    assert np.abs(plain[1] - plain[2]).max() > 1e-3          # the lung channels differ: a missing swap would show
    left_right = probabilities(scan[:, :, ::-1])              # columns: the patient's left-right axis
    np.testing.assert_array_equal(left_right[SWAPPED][:, :, :, ::-1], plain)
    if tta == 'flip2':                                        # rows (anterior-posterior): the sides stay
        np.testing.assert_array_equal(probabilities(scan[:, ::-1, :])[:, :, ::-1, :], plain)


def test_left_right_classes_without_declared_pairs_refuse_mirror_tta(random_joint, tmp_path, capsys):
    _, options, work = random_joint
    checkpoint = random_checkpoint(options, tmp_path / 'unpaired.pth', 6, {'classes': CLASSES, 'mirror_pairs': []})
    model = load_model(load_config(JOINT, cfg_dict(options)), checkpoint)
    assert Predictor([model], 'none').num_classes == 4       # no mirroring: nothing to declare
    for tta in ('flip', 'flip2'):
        with pytest.raises(MedSegError, match=rf'^--tta: {tta} mirrors left and right, but .*unpaired\.pth: classes '
                                              r'left_lung, right_lung are left/right classes and no mirror pair'):
            Predictor([model], tta, names=[str(checkpoint)])
    raw = write_covid19_release(tmp_path / 'raw', 'zenodo', num_slices=2, size=SIZE)
    out = tmp_path / 'out'
    argv = [str(JOINT), str(checkpoint), '--input', str(raw / 'COVID-19-CT-Seg_20cases' / 'coronacases_001.nii.gz'),
            '--output', str(out), '--device', 'cpu', '--tta', 'flip', '--cfg-options', *options]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith('error: --tta: flip mirrors left and right') \
        and err.endswith('use --tta none')
    assert not out.exists()


def _dice_by_hand(pred_dir: Path, masks: Path, cases, value: int) -> float:
    scores = []
    for case in cases:
        pred = np.asanyarray(nib.load(str(pred_dir / f'{case}.nii.gz')).dataobj) == value
        truth = np.rint(np.asanyarray(nib.load(str(masks / f'{case}.nii.gz')).dataobj)) == value
        scores.append(2.0 * np.count_nonzero(pred & truth) / (np.count_nonzero(pred) + np.count_nonzero(truth)))
    return float(np.mean(scores))


def test_trained_joint_model_keeps_its_dice_with_mirror_tta(tmp_path):
    """A tiny joint model trained on 4 synthetic cases (no flips, as the config) segments 4 cases of the fold's
    test split; the lung Dice (by hand, against the release's masks) with --tta flip / flip2 is within 0.05 of
    no TTA."""
    from mmseg_medical.conversion import CONVERTERS, prepare

    raw = write_covid19_release(tmp_path / 'raw', 'zenodo', num_slices=3, size=SIZE)
    data = tmp_path / 'covid19'
    prepare(CONVERTERS['covid19'](), raw, data, workers=1, previews=0)
    iters = 200
    options = tiny_overrides(data, scale=SIZE, iters=iters, base_channels=8, batch_size=4, workers=0, lr=0.05)
    run(mim_train(JOINT_DICE, tmp_path / 'train', options + [f'train_cfg.val_begin={iters + 1}'], ['--gpus', '0']),
        log=tmp_path / 'train.log', cwd=REPO)
    checkpoint = last_checkpoint(tmp_path / 'train')
    cases = (data / 'splits' / 'task1_fold0_test.txt').read_text().split()
    cases = sorted({stem.rsplit('_', 1)[0] for stem in cases})[:4]
    scans = tmp_path / 'scans'
    scans.mkdir()
    for case in cases:
        shutil.copy(raw / 'COVID-19-CT-Seg_20cases' / f'{case}.nii.gz', scans)
    dice = {}
    for tta in ('none', 'flip', 'flip2'):
        assert main([str(JOINT_DICE), str(checkpoint), '--input', str(scans), '--output', str(tmp_path / tta),
                     '--device', 'cpu', '--tta', tta, '--cfg-options', *options]) == 0
        dice[tta] = [_dice_by_hand(tmp_path / tta, raw / 'Lung_and_Infection_Mask', cases, v) for v in (1, 2)]
    assert min(dice['none']) > 0.9, dice                       # the model tells the left lung from the right
    for tta in ('flip', 'flip2'):
        assert np.allclose(dice[tta], dice['none'], atol=0.05), dice   # without the exchange: about 0.5
