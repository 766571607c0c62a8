"""A checkpoint carries its training config (mmengine's ``meta['cfg']``): infer_volume, pseudo_label and the report
take a checkpoint alone; mim test and infer_volume refuse a checkpoint trained on other input than the config gives
even where its shapes fit (the 1-slice Cranium model in the 2.5D config: both 3 input channels)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from mmengine.config import Config

from mmseg_medical.checkpoints import INPUT_ADVICE, config_from_checkpoint, input_signature
from mmseg_medical.errors import MedSegError
from mmseg_medical.inference_cli import main as infer_main
from mmseg_medical.pseudo_label import PSEUDO_DIR

REPO = Path(__file__).resolve().parents[2]
CONFIG_25D = REPO / 'configs/cranium/fcn-unet-s5-d16_unet_1xb16-0.01-20k_cranium-2.5d-512x512.py'
#: The 1-slice model's line for the 2.5D config (shapes fit: 3 channels both): what the tools must say.
REFUSAL = (f"{INPUT_ADVICE}: test pipeline loading step is [{{'type': 'LoadImageFromFile'}}] in its training "
           "config, [{'offsets': [-1, 0, 1], 'type': 'LoadSliceStack'}] in the config (also "
           'data_preprocessor.bgr_to_rgb); use the config it was trained with')


def _options(m) -> list:
    """The tiny run's --cfg-options as words (the fixture keeps them as one bash ``$(...)`` word)."""
    line = subprocess.run(['bash', '-c', f'printf "%s\\n" {m.options}'], capture_output=True, text=True,
                          check=True, cwd=REPO).stdout.split('\n')
    return [w for w in line if w and w != '--cfg-options']


def test_input_signature_of_the_configs():
    """Read off the config files by hand: 1 slice in 3 grey channels, 3 slices, 3 slices x 3 windows."""
    one = input_signature(Config.fromfile(REPO / 'configs/cranium/fcn-unet-s5-d16_unet_1xb16-0.01-20k_cranium-512x512.py'))
    stack = input_signature(Config.fromfile(CONFIG_25D))
    windows = input_signature(Config.fromfile(
        REPO / 'configs/hemseg/fcn-unet-s5-d16_unet_1xb16-0.01-20k_hemseg-3w-2.5d-512x512.py'))
    assert one['test pipeline loading step'] == [{'type': 'LoadImageFromFile'}]
    assert stack['test pipeline loading step'] == [{'type': 'LoadSliceStack', 'offsets': [-1, 0, 1]}]
    assert stack['backbone.in_channels'] == 3 and one['backbone.in_channels'] == 3
    assert windows['test pipeline loading step'] == [{'type': 'LoadSliceStack', 'offsets': [-1, 0, 1],
                                                      'windows': [0, 1, 2]}]
    assert windows['backbone.in_channels'] == 9 and windows['data_preprocessor.mean'] == [123.675, 116.28, 103.53] * 3
    assert stack['data_preprocessor.bgr_to_rgb'] is False


def test_readme_line_is_what_the_2_5d_config_says_of_a_1_slice_checkpoint():
    """The README's refusal: a checkpoint whose training config is the shipped 1-slice Cranium config, given
    with the 2.5D config; word for word."""
    from mmseg_medical.checkpoints import check_same_input

    one = Config.fromfile(REPO / 'configs/cranium/fcn-unet-s5-d16_unet_1xb16-0.01-20k_cranium-512x512.py')
    [line] = [ln for ln in (REPO / 'README.md').read_text().splitlines()
              if ln.startswith('error: work_dirs/tiny-1slice/iter_300.pth: ')]
    with pytest.raises(MedSegError) as err:
        check_same_input({'meta': {'cfg': one.pretty_text}}, Config.fromfile(CONFIG_25D),
                         'work_dirs/tiny-1slice/iter_300.pth')
    assert line == f'error: {err.value}' == f'error: work_dirs/tiny-1slice/iter_300.pth: {REFUSAL}'
    check_same_input({'meta': {'cfg': one.pretty_text}}, one, 'same.pth')      # its own config: accepted
    check_same_input({'state_dict': {}}, Config.fromfile(CONFIG_25D), 'old.pth')  # no config carried: nothing
    check_same_input({'meta': {'cfg': "{'a': 1}"}}, Config.fromfile(CONFIG_25D), 'odd.pth')  # no model in it


def test_checkpoint_carries_its_training_config(cranium_model, shell):
    """The config read from the checkpoint is the run's: as mmengine dumped it into the work dir."""
    m = cranium_model
    cfg = config_from_checkpoint(m.checkpoint)
    dumped = Config.fromfile(m.work / 'train' / shell.cranium_config.name)
    assert cfg.filename == str(m.checkpoint)
    assert cfg.model.backbone.base_channels == dumped.model.backbone.base_channels == 16
    assert tuple(cfg.test_dataloader.dataset.pipeline[1].scale) == (32, 32)
    assert cfg.test_dataloader.dataset.data_root == dumped.test_dataloader.dataset.data_root
    assert cfg.model.decode_head.loss_decode.class_weight == [0.002, 1.0]
    with pytest.raises(MedSegError, match=r"carries no training config \(meta\['cfg'\]"):
        import torch
        bare = m.work / 'bare.pth'
        torch.save({'state_dict': torch.load(m.checkpoint, map_location='cpu')['state_dict']}, bare)
        config_from_checkpoint(bare)


def test_infer_volume_takes_a_checkpoint_alone(cranium_model, cranium_data, tmp_path, capsys):
    """Checkpoint alone (no config, no --cfg-options) labels the val cases as config + the run's options do."""
    m = cranium_model
    common = ['--data', str(cranium_data), '--split', 'val', '--batch-size', '4', '--device', 'cpu']
    assert infer_main([str(m.checkpoint), *common, '--output', str(tmp_path / 'alone')]) == 0
    assert infer_main([str(REPO / 'configs/cranium/fcn-unet-s5-d16_unet_1xb16-0.01-20k_cranium-512x512.py'),
                       str(m.checkpoint), *common, '--output', str(tmp_path / 'given'),
                       '--cfg-options', *_options(m)]) == 0
    cases = json.loads((cranium_data / 'splits.json').read_text())['val']
    for case in cases:
        alone = np.asanyarray(nib.load(str(tmp_path / 'alone' / f'{case}.nii.gz')).dataobj)
        given = np.asanyarray(nib.load(str(tmp_path / 'given' / f'{case}.nii.gz')).dataobj)
        assert np.array_equal(alone, given), case
    # without the options, the config file alone builds another model: refused (shapes), as before
    assert infer_main([str(REPO / 'configs/cranium/fcn-unet-s5-d16_unet_1xb16-0.01-20k_cranium-512x512.py'),
                       str(m.checkpoint), *common, '--output', str(tmp_path / 'plain')]) == 1
    assert 'does not fit the model built from the config' in capsys.readouterr().err


def test_infer_volume_refuses_another_input_even_when_shapes_fit(cranium_model, cranium_data, tmp_path, capsys):
    m = cranium_model
    out = tmp_path / 'out'
    code = infer_main([str(CONFIG_25D), str(m.checkpoint), '--data', str(cranium_data), '--split', 'val',
                       '--output', str(out), '--device', 'cpu', '--cfg-options', *_options(m)])
    err = capsys.readouterr().err
    assert code == 1 and err == f'error: {m.checkpoint}: {REFUSAL}\n'
    assert not out.exists()


def test_mim_test_refuses_another_input_even_when_shapes_fit(cranium_model, shell, tmp_path):
    m = cranium_model
    with pytest.raises(RuntimeError) as failure:
        shell.bash(shell.mim('test', 'mmseg', CONFIG_25D, '--checkpoint', m.checkpoint, '--gpus', '0',
                             '--work-dir', tmp_path / 'work', m.options), tmp_path / 'test.log')
    log = (tmp_path / 'test.log').read_text()
    assert f'error: {m.checkpoint}: {REFUSAL}' in log.splitlines()
    assert 'Iter(test)' not in log


def test_pseudo_label_takes_a_checkpoint_alone(cranium_model, cranium_data, tmp_path):
    m = cranium_model
    data = tmp_path / 'data'
    shutil.copytree(cranium_data, data)
    proc = subprocess.run([sys.executable, 'tools/pseudo_label.py', str(m.checkpoint), '--data', str(data),
                           '--split', 'val', '--out-split', 'val_pseudo', '--mix-with', ''], cwd=REPO,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    stems = (data / 'splits' / 'val.txt').read_text().split()
    written = sorted(p.stem for p in (data / PSEUDO_DIR / 'val_pseudo').glob('*.png'))
    assert written == sorted(stems)
    proc = subprocess.run([sys.executable, 'tools/pseudo_label.py', str(CONFIG_25D), str(m.checkpoint), '--data',
                           str(data), '--split', 'val', '--out-split', 'other', '--mix-with', '',
                           '--cfg-options', *_options(m)], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 1 and proc.stderr == f'error: {m.checkpoint}: {REFUSAL}\n'


def test_report_takes_a_checkpoint_alone(cranium_model, cranium_data, tmp_path):
    """A folder of predictions scored by evaluate_volumes (no run.json, no log): --checkpoint alone names the
    prepared dataset through the training config it carries."""
    m = cranium_model
    out = tmp_path / 'run'
    assert infer_main([str(m.checkpoint), '--data', str(cranium_data), '--split', 'val', '--device', 'cpu',
                       '--output', str(out / 'volumes')]) == 0
    subprocess.run([sys.executable, 'tools/evaluate_volumes.py', '--pred', str(out / 'volumes'), '--data',
                    str(cranium_data), '--split', 'val', '--out', str(out / 'volumes' / 'metrics.csv'),
                    '--bootstrap', '0'], cwd=REPO, check=True, capture_output=True)
    report = [sys.executable, str(REPO / 'tools/report.py'), str(out)]
    alone = subprocess.run(report, capture_output=True, text=True, cwd=tmp_path)
    assert alone.returncode == 1 and 'cannot find the prepared dataset of this run' in alone.stderr
    proc = subprocess.run(report + ['--checkpoint', str(m.checkpoint)], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    page = (out / 'report.html').read_text()
    assert f'{cranium_data.resolve()} <span class="src">(data_root in the training config in the checkpoint' in page
